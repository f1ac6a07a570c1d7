//! Variable substitution in one string, with docker/cli's grammar (`cli/compose/template`), so
//! that a value comes out exactly as `docker stack deploy` makes it:
//!
//! - `$$` is a literal `$`;
//! - `$NAME` and `${NAME}` (NAME = `[_a-zA-Z][_a-zA-Z0-9]*`) are the variable's value, empty when
//!   unset;
//! - `${NAME:-default}` (unset or empty) and `${NAME-default}` (unset) fall back to `default`;
//! - `${NAME:?message}` (unset or empty) and `${NAME?message}` (unset) are errors;
//! - anything else after a `$` is an invalid template.
//!
//! docker/cli's quirks are kept on purpose, since a file must give the same result here as there:
//! the modifier is chosen by searching the whole `NAME…` text for `:-`, then `-`, then `:?`, then
//! `?` (so `${A:?no-way}` is read as name `A:?no` with default `way`); a default runs to the first
//! `}` and is not substituted again (`${A:-${B}}` gives `${B}` followed by `}`); the unbraced form
//! takes a modifier too (`$A-x`); and, as there, only the last substitution in a string decides
//! whether the string is in error.

/// What went wrong in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// A `$` not followed by a valid name, `{name…}` or `$`.
    Invalid,
    /// A `?` / `:?` variable without a (non-empty) value: the variable and its message.
    Required {
        /// The variable.
        name: String,
        /// The message the file gives.
        message: String,
    },
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid => f.write_str(
                "invalid interpolation format; you may need to escape any $ with another $",
            ),
            TemplateError::Required { name, message } => {
                write!(f, "required variable {name} is missing a value: {message}")
            }
        }
    }
}

/// One `$…` occurrence in a string.
enum Token<'a> {
    /// `$$`.
    Escaped,
    /// `$NAME…` or `${NAME…}`: the text after `$` / inside the braces.
    Substitution(&'a str),
    /// A `$` that starts nothing valid.
    Invalid,
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// The length of `NAME` plus an optional modifier (`:-…`, `-…`, `:?…`, `?…`, running up to the
/// first `}` or the end) at the start of `s`; 0 if `s` does not start with a name.
fn substitution_len(s: &[u8]) -> usize {
    if s.is_empty() || !is_name_start(s[0]) {
        return 0;
    }
    let mut i = 1;
    while i < s.len() && is_name_char(s[i]) {
        i += 1;
    }
    let modifier_at = if s.get(i) == Some(&b':') { i + 1 } else { i };
    if matches!(s.get(modifier_at), Some(b'-') | Some(b'?')) {
        i = modifier_at + 1;
        while i < s.len() && s[i] != b'}' {
            i += 1;
        }
    }
    i
}

/// Splits a string into literal text and `$` tokens: `(literal, token, length of the token)`.
fn tokens(s: &str) -> Vec<(usize, usize, Token<'_>)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let rest = &bytes[i + 1..];
        let (token, len) = if rest.first() == Some(&b'$') {
            (Token::Escaped, 2)
        } else if rest.first() == Some(&b'{') {
            let n = substitution_len(&rest[1..]);
            if n > 0 && rest.get(1 + n) == Some(&b'}') {
                (Token::Substitution(&s[i + 2..i + 2 + n]), n + 3)
            } else {
                (Token::Invalid, 1)
            }
        } else {
            let n = substitution_len(rest);
            if n > 0 {
                (Token::Substitution(&s[i + 1..i + 1 + n]), n + 1)
            } else {
                (Token::Invalid, 1)
            }
        };
        out.push((i, len, token));
        i += len;
    }
    out
}

/// Substitutes the variables of `template` from `lookup`: the new string, or the error docker/cli
/// would report for it.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    let mut error = None;
    for (at, len, token) in tokens(template) {
        out.push_str(&template[last..at]);
        last = at + len;
        match token {
            Token::Escaped => out.push('$'),
            Token::Invalid => error = Some(TemplateError::Invalid),
            Token::Substitution(text) => {
                let (value, err) = resolve(text, lookup);
                error = err;
                out.push_str(&value);
            }
        }
    }
    out.push_str(&template[last..]);
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// One substitution, in docker/cli's order of modifiers.
fn resolve(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (String, Option<TemplateError>) {
    if let Some((name, default)) = text.split_once(":-") {
        return match lookup(name) {
            Some(v) if !v.is_empty() => (v, None),
            _ => (default.to_string(), None),
        };
    }
    if let Some((name, default)) = text.split_once('-') {
        return (lookup(name).unwrap_or_else(|| default.to_string()), None);
    }
    for (sep, non_empty) in [(":?", true), ("?", false)] {
        if let Some((name, message)) = text.split_once(sep) {
            return match lookup(name) {
                Some(v) if !(non_empty && v.is_empty()) => (v, None),
                _ => (
                    String::new(),
                    Some(TemplateError::Required {
                        name: name.to_string(),
                        message: message.to_string(),
                    }),
                ),
            };
        }
    }
    (lookup(text).unwrap_or_default(), None)
}

/// The variables `template` refers to (docker/cli's `ExtractVariables`: the name before the
/// first `:?`, `?`, `:-` or `-`).
pub fn variables(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (_, _, token) in tokens(template) {
        if let Token::Substitution(text) = token {
            let name = [":?", "?", ":-", "-"]
                .iter()
                .find_map(|sep| text.split_once(sep).map(|(n, _)| n))
                .unwrap_or(text);
            if !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The variables `template` uses without a modifier that `lookup` does not know: they become
/// empty strings, which deserves a warning.
pub fn unset_variables(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    tokens(template)
        .into_iter()
        .filter_map(|(_, _, token)| match token {
            Token::Substitution(name)
                if name.bytes().all(is_name_char) && lookup(name).is_none() =>
            {
                Some(name.to_string())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(s: &str) -> Result<String, TemplateError> {
        substitute(s, &|k| match k {
            "FOO" => Some("foo".into()),
            "EMPTY" => Some(String::new()),
            "lower_1" => Some("low".into()),
            _ => None,
        })
    }

    #[test]
    fn plain_and_braced_names() {
        assert_eq!(env("$FOO").unwrap(), "foo");
        assert_eq!(env("${FOO}").unwrap(), "foo");
        assert_eq!(env("a${FOO}b").unwrap(), "afoob");
        assert_eq!(env("$FOO/bar").unwrap(), "foo/bar");
        assert_eq!(env("${lower_1}").unwrap(), "low");
        assert_eq!(env("$UNSET").unwrap(), "");
        assert_eq!(env("no dollar").unwrap(), "no dollar");
    }

    #[test]
    fn escapes() {
        assert_eq!(env("$$FOO").unwrap(), "$FOO");
        assert_eq!(env("a$$$$b").unwrap(), "a$$b");
        assert_eq!(env("$${FOO}").unwrap(), "${FOO}");
    }

    #[test]
    fn defaults() {
        assert_eq!(env("${UNSET:-def}").unwrap(), "def");
        assert_eq!(env("${EMPTY:-def}").unwrap(), "def");
        assert_eq!(env("${FOO:-def}").unwrap(), "foo");
        assert_eq!(env("${UNSET-def}").unwrap(), "def");
        assert_eq!(env("${EMPTY-def}").unwrap(), "");
        assert_eq!(env("${UNSET:-}").unwrap(), "");
        assert_eq!(env("${UNSET:-a b:c}").unwrap(), "a b:c");
        // The unbraced form takes modifiers too, up to the end or a `}`.
        assert_eq!(env("$UNSET-x y").unwrap(), "x y");
    }

    #[test]
    fn nested_defaults_are_not_substituted_again() {
        // docker/cli: the default runs to the first `}` and is used as written.
        assert_eq!(env("${UNSET:-${FOO}}").unwrap(), "${FOO}");
        assert_eq!(env("${FOO:-${BAR}}").unwrap(), "foo}");
    }

    #[test]
    fn required_variables() {
        assert_eq!(env("${FOO?msg}").unwrap(), "foo");
        assert_eq!(env("${EMPTY?msg}").unwrap(), "");
        assert_eq!(
            env("${UNSET?set it}").unwrap_err(),
            TemplateError::Required {
                name: "UNSET".into(),
                message: "set it".into()
            }
        );
        assert!(env("${EMPTY:?msg}").is_err());
        assert_eq!(
            env("${UNSET:?}").unwrap_err().to_string(),
            "required variable UNSET is missing a value: "
        );
        // docker/cli searches for `-` before `?`: this is a default, not an error.
        assert_eq!(env("${UNSET:?no-way}").unwrap(), "way");
    }

    #[test]
    fn invalid_templates() {
        for bad in [
            "${}",
            "${ FOO}",
            "${FOO BAR}",
            "$1",
            "price: 5$",
            "${FOO",
            "${-x}",
        ] {
            assert_eq!(env(bad), Err(TemplateError::Invalid), "{bad}");
        }
        // As in docker/cli, the last substitution of a string decides.
        assert_eq!(env("5$ ${FOO}").unwrap(), "5 foo");
        assert_eq!(env("${UNSET?x} ${FOO}").unwrap(), " foo");
    }

    #[test]
    fn lists_unset_variables_used_without_default() {
        let unset = unset_variables("$FOO ${BAR} ${BAZ:-x} $QUX", &|k| {
            (k == "FOO").then(String::new)
        });
        assert_eq!(unset, ["BAR", "QUX"]);
    }

    #[test]
    fn extracts_variable_names() {
        assert_eq!(
            variables("$A ${B} ${C:-x} ${D-y} ${E:?m} ${F?m} $$G ${}"),
            ["A", "B", "C", "D", "E", "F"]
        );
    }
}
