//! `env_file` contents, read as docker/cli's `kvfile` reads them: one `KEY=VALUE` a line, taken
//! as written (no quotes, no interpolation), leading blanks and a UTF-8 BOM dropped, `#` lines
//! and blank lines skipped, and a bare `KEY` taken from the caller's environment (left out when
//! the caller has no such variable).

/// The `KEY=VALUE` lines of an env file. `lookup` answers bare keys.
pub fn parse(
    content: &[u8],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, raw) in content.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw)
            .map_err(|_| format!("invalid utf8 bytes at line {}", i + 1))?;
        let text = if i == 0 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let line = text.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        if has_value {
            out.push(line.to_string());
        } else if let Some(value) = lookup(line) {
            out.push(format!("{key}={value}"));
        }
    }
    Ok(out)
}

/// The bare keys of an env file: the variables the caller must send for it.
pub fn bare_keys(content: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(content);
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('='))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_as_written() {
        let content = "\u{feff}# comment\n  A=1\nB=\"quoted\" \n\nC\nD\nE=x=y\r\n".as_bytes();
        let lines = parse(content, &|k| (k == "C").then(|| "from-env".to_string())).unwrap();
        assert_eq!(lines, ["A=1", "B=\"quoted\" ", "C=from-env", "E=x=y"]);
        assert_eq!(bare_keys(content), ["C", "D"]);
    }

    #[test]
    fn refuses_bad_keys() {
        assert!(parse(b"=x\n", &|_| None).is_err());
        assert!(parse(b"A B=x\n", &|_| None).is_err());
        assert!(parse(&[0xff, b'\n'], &|_| None).is_err());
    }
}
