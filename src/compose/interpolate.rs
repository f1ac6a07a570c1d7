//! Interpolation of a whole file: every string value (never a key) goes through
//! [`template::substitute`] with the caller's environment, then, where docker/cli casts a path
//! back to a number or boolean (`deploy.replicas`, `ports[].published`, `read_only`, ...), the
//! substituted string is cast. As in docker/cli, only strings that substitution changed are cast,
//! so `replicas: "3"` stays a string (and is refused later) while `replicas: ${N}` becomes 3.

use std::collections::BTreeSet;

use super::error::{ComposeError, Result};
use super::template::{self, TemplateError};
use super::yaml::{Node, Value};

/// The type a path is cast to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// docker/cli's `interpolateTypeCastMapping`: `*` is any key, `[]` any list item.
const CASTS: &[(&str, Cast)] = &[
    ("services.*.configs.[].mode", Cast::Int),
    ("services.*.secrets.[].mode", Cast::Int),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.ports.[].published", Cast::Int),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.read_only", Cast::Bool),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn cast_for(pattern_path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        let parts: Vec<&str> = pattern.split('.').collect();
        (parts.len() == pattern_path.len()
            && parts
                .iter()
                .zip(pattern_path)
                .all(|(p, k)| *p == "*" || p == k))
        .then_some(*cast)
    })
}

/// Interpolates `root` (one file, named `file` in errors) in place. Variables used without a
/// default that `lookup` does not know are added to `unset`.
pub fn interpolate(
    file: &str,
    root: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> Result<()> {
    let mut walk = Walk {
        file,
        lookup,
        unset,
        pattern: Vec::new(),
        shown: Vec::new(),
    };
    walk.node(root)
}

struct Walk<'a> {
    file: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: &'a mut BTreeSet<String>,
    /// The path as the cast table matches it (`[]` for list items).
    pattern: Vec<String>,
    /// The path as errors show it.
    shown: Vec<String>,
}

impl Walk<'_> {
    fn node(&mut self, node: &mut Node) -> Result<()> {
        match &mut node.value {
            Value::Str(s) => {
                let Some(new) = self.string(s, node.line)? else {
                    return Ok(());
                };
                node.value = match cast_for(&self.pattern) {
                    None => Value::Str(new),
                    Some(cast) => self.cast(cast, &new, node.line)?,
                };
                Ok(())
            }
            Value::Map(entries) => {
                for (key, value) in entries.iter_mut() {
                    self.pattern.push(key.name.clone());
                    self.shown.push(key.name.clone());
                    let r = self.node(value);
                    self.pattern.pop();
                    self.shown.pop();
                    r?;
                }
                Ok(())
            }
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.pattern.push("[]".into());
                    let last = self.shown.pop().unwrap_or_default();
                    self.shown.push(format!("{last}[{i}]"));
                    let r = self.node(item);
                    self.shown.pop();
                    self.shown.push(last);
                    self.pattern.pop();
                    r?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The substituted string, or `None` if substitution changed nothing.
    fn string(&mut self, s: &str, line: usize) -> Result<Option<String>> {
        if !s.contains('$') {
            return Ok(None);
        }
        let new = template::substitute(s, self.lookup).map_err(|e| {
            let message = match e {
                TemplateError::Invalid => format!(
                    "invalid interpolation format {s:?}; you may need to escape any $ with another $"
                ),
                required => required.to_string(),
            };
            self.error(line, message)
        })?;
        self.unset.extend(template::unset_variables(s, self.lookup));
        Ok((new != s).then_some(new))
    }

    fn cast(&self, cast: Cast, s: &str, line: usize) -> Result<Value> {
        let bad = |what: &str| self.error(line, format!("expected {what}, got {s:?}"));
        match cast {
            Cast::Int => parse_go_int(s)
                .map(Value::Int)
                .ok_or_else(|| bad("an integer")),
            Cast::Float => s
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| bad("a number")),
            Cast::Bool => match s.to_ascii_lowercase().as_str() {
                "y" | "yes" | "true" | "on" => Ok(Value::Bool(true)),
                "n" | "no" | "false" | "off" => Ok(Value::Bool(false)),
                _ => Err(bad("a boolean")),
            },
        }
    }

    fn error(&self, line: usize, message: String) -> ComposeError {
        ComposeError::at(self.file, line, &self.shown.join("."), message)
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(if s.starts_with('-') { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::yaml::parse;

    fn run(text: &str, env: &[(&str, &str)]) -> Result<Node> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut root = parse("c.yml", text)?;
        let mut unset = BTreeSet::new();
        interpolate("c.yml", &mut root, &lookup, &mut unset)?;
        Ok(root)
    }

    fn at<'a>(root: &'a Node, path: &[&str]) -> &'a Value {
        let mut n = root;
        for p in path {
            n = match p.parse::<usize>() {
                Ok(i) => match &n.value {
                    Value::Seq(items) => &items[i],
                    _ => panic!("not a list at {p}"),
                },
                Err(_) => n.get(p).unwrap_or_else(|| panic!("no {p}")),
            };
        }
        &n.value
    }

    #[test]
    fn substitutes_values_not_keys() {
        let root = run(
            "services:\n  $X:\n    image: ${IMG:-nginx}:$TAG\n    environment:\n      - A=$X\n",
            &[("X", "x"), ("TAG", "1")],
        )
        .unwrap();
        assert_eq!(
            at(&root, &["services", "$X", "image"]),
            &Value::Str("nginx:1".into())
        );
        assert_eq!(
            at(&root, &["services", "$X", "environment", "0"]),
            &Value::Str("A=x".into())
        );
    }

    #[test]
    fn casts_known_paths_after_substitution_only() {
        let text = "services:\n  web:\n    read_only: ${RO}\n    deploy:\n      replicas: ${N}\n      update_config:\n        max_failure_ratio: ${R}\n    ports:\n      - target: ${P}\n        published: \"8080\"\n    secrets:\n      - source: s\n        mode: ${MODE}\nnetworks:\n  n:\n    external: ${EXT}\n";
        let root = run(
            text,
            &[
                ("RO", "yes"),
                ("N", "3"),
                ("R", "0.5"),
                ("P", "80"),
                ("MODE", "288"),
                ("EXT", "off"),
            ],
        )
        .unwrap();
        let web = ["services", "web"];
        assert_eq!(
            at(&root, &[&web[..], &["read_only"]].concat()),
            &Value::Bool(true)
        );
        assert_eq!(
            at(&root, &[&web[..], &["deploy", "replicas"]].concat()),
            &Value::Int(3)
        );
        assert_eq!(
            at(
                &root,
                &[&web[..], &["deploy", "update_config", "max_failure_ratio"]].concat()
            ),
            &Value::Float(0.5)
        );
        assert_eq!(
            at(&root, &[&web[..], &["ports", "0", "target"]].concat()),
            &Value::Int(80)
        );
        // Unchanged strings are not cast (the schema check refuses them later).
        assert_eq!(
            at(&root, &[&web[..], &["ports", "0", "published"]].concat()),
            &Value::Str("8080".into())
        );
        assert_eq!(
            at(&root, &[&web[..], &["secrets", "0", "mode"]].concat()),
            &Value::Int(288)
        );
        assert_eq!(
            at(&root, &["networks", "n", "external"]),
            &Value::Bool(false)
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = run(
            "services:\n  web:\n    deploy:\n      replicas: ${N}\n",
            &[("N", "three")],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yml:4: services.web.deploy.replicas: expected an integer, got \"three\""
        );
        let e = run("services:\n  web:\n    image: ${IMG?set IMG}\n", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yml:3: services.web.image: required variable IMG is missing a value: set IMG"
        );
        let e = run(
            "services:\n  web:\n    command: [\"a\", \"cost 5$\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yml:3: services.web.command[1]: invalid interpolation format \"cost 5$\"; you may need to escape any $ with another $"
        );
    }

    #[test]
    fn reports_unset_variables() {
        let mut root = parse("c.yml", "a: $A\nb: ${B:-x}\nc: $C\n").unwrap();
        let mut unset = BTreeSet::new();
        interpolate(
            "c.yml",
            &mut root,
            &|k| (k == "C").then(String::new),
            &mut unset,
        )
        .unwrap();
        assert_eq!(unset.into_iter().collect::<Vec<_>>(), ["A"]);
    }
}
