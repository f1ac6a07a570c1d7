//! YAML text to a located tree. The only file that knows the YAML crate (serde-saphyr), so a swap
//! is a change here alone.
//!
//! Scalars are typed the way docker/cli's parser (gopkg.in/yaml.v3 decoding into `any`) types
//! them, because the types decide what the schema accepts and how values print: `0440` and
//! `0o440` are octal integers (288), `1.0` is a float, only `true`/`false` (any case variant
//! yaml.v3 knows) are booleans (`yes` stays a string), `~`/`null`/empty are null, quoted scalars
//! are strings, `22:22` is a string (no YAML 1.1 sexagesimals). Merge keys (`<<: *anchor`) are
//! expanded, duplicate keys are errors, and alias expansion runs under the crate's budget (alias
//! bombs fail instead of eating memory). Tags (`!reset`, `!override`, ...) are ignored, as
//! docker/cli ignores them.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::{ComposeError, Result};

/// A node of the tree with the line it was written on (for values brought in by an alias or a
/// merge key: where they are defined).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// 1-based line (0 when unknown, e.g. for values the loader made itself).
    pub line: usize,
    /// The value.
    pub value: Value,
}

/// A key of a mapping, with its line.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// 1-based line.
    pub line: usize,
}

/// The value of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits an i64.
    Int(i64),
    /// Any other number (including integers too large for an i64).
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in file order (merged keys after the file's own).
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses one compose file into its tree. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Node> {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options.strict_booleans = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options.with_snippet = false;
    // The default budget and alias limits stay on: they bound events, nesting, anchors and
    // alias replays, which is what stops a billion-laughs file.
    serde_saphyr::from_str_with_options::<Raw>(text, options)
        .map(|raw| raw.0)
        .map_err(|e| {
            let line = e.location().map(|l| l.line() as usize).unwrap_or(0);
            ComposeError::at(
                file,
                line,
                "",
                yaml_message(&e.without_snippet().to_string()),
            )
        })
}

/// The crate's message without its `error: line L column C: ` prefix (we print our own).
fn yaml_message(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    let text = match text.strip_prefix("line ") {
        Some(rest) => match rest.split_once(": ") {
            Some((position, message)) if position.contains("column") => message,
            _ => text,
        },
        None => text,
    };
    format!("invalid YAML: {}", text.lines().next().unwrap_or(""))
}

/// The deserialization target: a node with its location.
struct Raw(Node);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let spanned: Spanned<RawValue> = Spanned::deserialize(d)?;
        Ok(Raw(Node {
            line: spanned.defined.line() as usize,
            value: spanned.value.0,
        }))
    }
}

struct RawValue(Value);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(RawValue)
    }
}

/// A mapping key: must be a string, as docker/cli's loader requires.
struct RawKey(Option<String>);

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = d.deserialize_any(ValueVisitor)?;
        Ok(RawKey(match v {
            Value::Str(s) => Some(s),
            _ => None,
        }))
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(n))
    }
    fn visit_u64<E>(self, n: u64) -> std::result::Result<Value, E> {
        Ok(match i64::try_from(n) {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(n as f64),
        })
    }
    fn visit_i128<E>(self, n: i128) -> std::result::Result<Value, E> {
        Ok(match i64::try_from(n) {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(n as f64),
        })
    }
    fn visit_u128<E>(self, n: u128) -> std::result::Result<Value, E> {
        Ok(match i64::try_from(n) {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(n as f64),
        })
    }
    fn visit_f64<E>(self, n: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(n))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> std::result::Result<Value, E> {
        Ok(Value::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Raw(node)) = seq.next_element::<Raw>()? {
            items.push(node);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawKey>>()? {
            let line = key.defined.line() as usize;
            let Some(name) = key.value.0 else {
                return Err(serde::de::Error::custom(format!(
                    "line {line}: mapping keys must be strings (quote the key)"
                )));
            };
            let Raw(value) = map.next_value::<Raw>()?;
            entries.push((Key { name, line }, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str) -> Value {
        let node = parse("t.yml", &format!("v: {text}\n")).unwrap();
        node.get("v").unwrap().value.clone()
    }

    #[test]
    fn scalars_are_typed_like_yaml_v3() {
        assert_eq!(scalar("0440"), Value::Int(288));
        assert_eq!(scalar("0o440"), Value::Int(288));
        assert_eq!(scalar("\"0440\""), Value::Str("0440".into()));
        assert_eq!(scalar("08"), Value::Float(8.0));
        assert_eq!(scalar("1.0"), Value::Float(1.0));
        assert_eq!(scalar("-3"), Value::Int(-3));
        assert_eq!(scalar("yes"), Value::Str("yes".into()));
        assert_eq!(scalar("True"), Value::Bool(true));
        assert_eq!(scalar("~"), Value::Null);
        assert_eq!(scalar(""), Value::Null);
        assert_eq!(scalar("22:22"), Value::Str("22:22".into()));
        assert_eq!(scalar("2001-12-14"), Value::Str("2001-12-14".into()));
        assert_eq!(scalar("!reset foo"), Value::Str("foo".into()));
    }

    #[test]
    fn anchors_and_merge_keys_expand_with_lines() {
        let text = "x-base: &base\n  image: nginx\n  mode: 0440\nservices:\n  web:\n    <<: *base\n    mode: 0400\n    list: &l [a, b]\n    again: *l\n";
        let root = parse("t.yml", text).unwrap();
        let web = root.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("image").unwrap().as_str(), Some("nginx"));
        assert_eq!(web.get("image").unwrap().line, 2);
        assert_eq!(web.get("mode").unwrap().value, Value::Int(256));
        let Value::Seq(again) = &web.get("again").unwrap().value else {
            panic!("a list")
        };
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn duplicate_keys_and_bad_yaml_name_the_line() {
        let e = parse("t.yml", "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.yml:3: invalid YAML: duplicate mapping key"),
            "{e}"
        );
        let e = parse("t.yml", "a: [1, 2\n").unwrap_err();
        assert!(e.to_string().starts_with("t.yml:1: invalid YAML:"), "{e}");
        let e = parse("t.yml", "1: a\n").unwrap_err();
        assert!(
            e.to_string().contains("mapping keys must be strings"),
            "{e}"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse("bomb.yml", &text).is_err());
    }
}
