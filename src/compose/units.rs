//! The Go parsers and printers whose exact behaviour shows in the specs: `time.ParseDuration`
//! (`interval: 1m30s`), go-units' `RAMInBytes` (`memory: 512M`), the CLI's `ParseCPUs` (`cpus:
//! "0.5"`), `fmt.Sprint` of a float (`FOO: 1.0` in an environment mapping is `FOO=1`), and
//! google/shlex (`command: echo "a b"`).

/// Go's `time.ParseDuration`: nanoseconds, or `None` if `s` is not a Go duration.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return None;
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let whole: u128 = if int_len > 0 {
            rest[..int_len].parse().ok().filter(|v| *v < 1u128 << 63)?
        } else {
            0
        };
        rest = &rest[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0u128, 1u128, 0);
        if rest.starts_with('.') {
            rest = &rest[1..];
            frac_len = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
            for d in rest[..frac_len].bytes() {
                // Go stops accumulating digits that would overflow, but still consumes them.
                if frac < (1u128 << 63) / 10 {
                    frac = frac * 10 + u128::from(d - b'0');
                    scale *= 10;
                }
            }
            rest = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let mut v = whole.checked_mul(unit)?;
        if frac > 0 {
            v += (frac as f64 * (unit as f64 / scale as f64)) as u128;
        }
        total += v;
        if total > 1u128 << 63 {
            return None;
        }
    }
    if negative {
        Some((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u128 {
        None
    } else {
        Some(total as i64)
    }
}

/// go-units' `RAMInBytes`: `512M`, `1.5g`, `1024`, `2 GiB` (powers of 1024).
pub fn ram_in_bytes(s: &str) -> Option<i64> {
    let sep = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')?;
    let (num, suffix) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    let size: f64 = parse_go_float(num)?;
    if size < 0.0 {
        return None;
    }
    if suffix.is_empty() {
        return Some(size as i64);
    }
    if suffix.len() > 3 {
        return None;
    }
    let suffix = suffix.to_ascii_lowercase();
    let b = suffix.as_bytes();
    if b[0] == b'b' {
        return (b.len() == 1).then_some(size as i64);
    }
    let mul: f64 = match b[0] {
        b'k' => 1024.0,
        b'm' => 1024.0 * 1024.0,
        b'g' => 1024.0 * 1024.0 * 1024.0,
        b't' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        b'p' => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let ok = match b.len() {
        2 => b[1] == b'b',
        3 => &b[1..] == b"ib",
        _ => true,
    };
    ok.then_some((size * mul) as i64)
}

/// Go's `strconv.ParseFloat` for the decimal forms compose files use.
fn parse_go_float(s: &str) -> Option<f64> {
    let valid = !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'));
    if !valid {
        return None;
    }
    s.replace('_', "").parse().ok()
}

/// The CLI's `ParseCPUs` (a `big.Rat` times 10^9, which must be whole): `"0.5"` is 500000000.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    // (numerator, power of ten) or an explicit fraction.
    let (num, den): (i128, i128) = if let Some((a, b)) = s.split_once('/') {
        let a: i128 = parse_rat_int(a).ok_or_else(bad)?;
        let b: i128 = parse_rat_int(b).ok_or_else(bad)?;
        if b == 0 {
            return Err(bad());
        }
        (a, b)
    } else {
        decimal_fraction(s).ok_or_else(bad)?
    };
    let scaled = num.checked_mul(1_000_000_000).ok_or_else(bad)?;
    if scaled % den != 0 {
        return Err("value is too precise".into());
    }
    i64::try_from(scaled / den).map_err(|_| bad())
}

fn parse_rat_int(s: &str) -> Option<i128> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i128 = digits.parse().ok()?;
    Some(if s.starts_with('-') { -v } else { v })
}

/// `[-+]digits[.digits][e[-+]digits]` as an exact fraction.
fn decimal_fraction(s: &str) -> Option<(i128, i128)> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = format!("{int}{frac}");
    if digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut num: i128 = digits.parse().ok()?;
    let mut den: i128 = 1;
    let shift = exponent - frac.len() as i32;
    if shift >= 0 {
        num = num.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        den = 10i128.checked_pow((-shift) as u32)?;
    }
    Some((if negative { -num } else { num }, den))
}

/// Go's `fmt.Sprint` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits,
/// in exponent form below 1e-4 and from 1e6 up).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.5e-5`, `1e6`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{body}")
}

/// google/shlex's `Split`: words separated by blanks, `'…'` literal, `"…"` and bare `\x`
/// escaping the next character, `#` at the start of a word commenting out the rest of the line.
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    // Between words.
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        // A word.
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\\' => word.push(chars.next().ok_or("EOF found after escape character")?),
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.push(
                            chars
                                .next()
                                .ok_or("EOF found when expecting closing quote")?,
                        ),
                        Some(c) => word.push(c),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("10s"), Some(10_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("-2us"), Some(-2_000));
        assert_eq!(parse_duration(".5s"), Some(500_000_000));
        for bad in ["", "10", "1x", "s", "1.s.", "1 s", "++1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(ram_in_bytes("512M"), Some(512 * 1024 * 1024));
        assert_eq!(ram_in_bytes("1.5g"), Some(1536 * 1024 * 1024));
        assert_eq!(ram_in_bytes("2 GiB"), Some(2 << 30));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("100b"), Some(100));
        assert_eq!(ram_in_bytes("10kb"), Some(10240));
        for bad in ["", "M", "1x", "1mbb", "1gi"] {
            assert_eq!(ram_in_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn cpus_like_the_cli() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("1/4"), Ok(250_000_000));
        assert_eq!(parse_cpus("1e-3"), Ok(1_000_000));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert!(parse_cpus("half").is_err());
    }

    #[test]
    fn floats_print_like_fmt_sprint() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1000000.0), "1e+06");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(-2.25), "-2.25");
    }

    #[test]
    fn shell_words_like_shlex() {
        assert_eq!(
            shlex_split(r#"sh -c "echo \"hi\" 'there'" x\ y '' # comment"#).unwrap(),
            ["sh", "-c", "echo \"hi\" 'there'", "x y", ""]
        );
        assert_eq!(shlex_split("a#b").unwrap(), ["a#b"]);
        assert!(shlex_split("'open").is_err());
    }
}
