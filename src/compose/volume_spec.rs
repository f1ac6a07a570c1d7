//! The short volume syntax of a service (`data:/var/lib/data:ro`, `./conf:/etc/conf`, `/cache`)
//! expanded as docker/cli's `ParseVolume` does, and the resolution of a bind mount's source
//! against the compose file's directory (`~` from the caller's `HOME`).

use super::model::{ServiceVolume, VolumeOptions};

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

fn is_windows_drive(buffer: &[char], c: char) -> bool {
    c == ':' && buffer.len() == 1 && buffer[0].is_alphabetic()
}

/// Expands a short-syntax service volume.
pub fn parse_volume(spec: &str) -> Result<ServiceVolume, String> {
    let mut volume = ServiceVolume::default();
    match spec.len() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => {
            volume.target = spec.to_string();
            volume.kind = "volume".into();
            return Ok(volume);
        }
        _ => {}
    }
    let mut buffer: Vec<char> = Vec::new();
    let chars: Vec<char> = spec.chars().collect();
    for i in 0..=chars.len() {
        let c = chars.get(i).copied();
        match c {
            Some(c) if is_windows_drive(&buffer, c) => buffer.push(c),
            Some(':') | None => {
                let end = c.is_none();
                if let Err(e) = populate(end, &buffer, &mut volume) {
                    return Err(format!("invalid spec: {spec}: {e}"));
                }
                buffer.clear();
            }
            Some(c) => buffer.push(c),
        }
    }
    volume.kind = if !volume.source.is_empty() && is_file_path(&volume.source) {
        "bind".into()
    } else {
        "volume".into()
    };
    Ok(volume)
}

fn populate(end: bool, buffer: &[char], volume: &mut ServiceVolume) -> Result<(), String> {
    let text: String = buffer.iter().collect();
    if buffer.is_empty() {
        return Err("empty section between colons".into());
    }
    if volume.source.is_empty() && end {
        volume.target = text;
        return Ok(());
    }
    if volume.source.is_empty() {
        volume.source = text;
        return Ok(());
    }
    if volume.target.is_empty() {
        volume.target = text;
        return Ok(());
    }
    if !end {
        return Err("too many colons".into());
    }
    for option in text.split(',') {
        match option {
            "ro" => volume.read_only = true,
            "rw" => volume.read_only = false,
            "nocopy" => {
                volume.volume = Some(VolumeOptions {
                    nocopy: true,
                    subpath: String::new(),
                })
            }
            p if PROPAGATIONS.contains(&p) => volume.bind = Some(p.to_string()),
            // docker/cli ignores unknown options.
            _ => {}
        }
    }
    Ok(())
}

fn is_file_path(source: &str) -> bool {
    if source.starts_with(['.', '/', '~']) {
        return true;
    }
    let chars: Vec<char> = source.chars().collect();
    if chars.len() == 1 {
        return false;
    }
    source.starts_with("\\\\") || is_windows_drive(&chars[..1], chars[1])
}

/// Whether `path` is absolute for a Unix or a Windows daemon.
fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

/// A bind mount's source as docker/cli resolves it on the client: `~` is the caller's `HOME`,
/// a relative path is joined to `working_dir` (the first compose file's directory) and cleaned.
pub fn resolve_bind_source(
    source: &str,
    working_dir: &str,
    home: Option<&str>,
) -> Result<String, String> {
    let expanded = match (source.starts_with('~'), home) {
        (true, Some(home)) => source.replacen('~', home, 1),
        _ => source.to_string(),
    };
    if is_absolute(&expanded) {
        return Ok(expanded);
    }
    if working_dir.is_empty() {
        return Err(format!(
            "relative bind mount source {source:?} needs the compose file's directory"
        ));
    }
    Ok(clean_path(&format!("{working_dir}/{expanded}")))
}

/// Go's `path.Clean` (what `filepath.Join` applies on Unix).
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(kind: &str, source: &str, target: &str, ro: bool) -> ServiceVolume {
        ServiceVolume {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            read_only: ro,
            ..Default::default()
        }
    }

    #[test]
    fn short_volumes() {
        assert_eq!(
            parse_volume("/data").unwrap(),
            vol("volume", "", "/data", false)
        );
        assert_eq!(
            parse_volume("data:/data:ro").unwrap(),
            vol("volume", "data", "/data", true)
        );
        assert_eq!(
            parse_volume("./conf:/etc/conf").unwrap(),
            vol("bind", "./conf", "/etc/conf", false)
        );
        let v = parse_volume("/src:/dst:ro,rshared").unwrap();
        assert_eq!(v.bind.as_deref(), Some("rshared"));
        assert!(v.read_only);
        let v = parse_volume("data:/data:nocopy").unwrap();
        assert!(v.volume.unwrap().nocopy);
        assert_eq!(
            parse_volume("C:\\data:/data").unwrap(),
            vol("bind", "C:\\data", "/data", false)
        );
        assert!(parse_volume("aa:bb:cc:dd").is_err());
        // As in docker/cli, a one-letter section followed by `:` reads as a Windows drive.
        assert!(parse_volume("a:b:c:d").is_ok());
        assert!(parse_volume("aa::bb").is_err());
        assert!(parse_volume("").is_err());
    }

    #[test]
    fn bind_sources_resolve_like_the_cli() {
        assert_eq!(
            resolve_bind_source("./conf/../x", "/home/u/app", None).unwrap(),
            "/home/u/app/x"
        );
        assert_eq!(
            resolve_bind_source("~/data", "/w", Some("/home/u")).unwrap(),
            "/home/u/data"
        );
        assert_eq!(resolve_bind_source("/abs", "", None).unwrap(), "/abs");
        assert!(resolve_bind_source("rel", "", None).is_err());
        assert_eq!(clean_path("/a/./b/../../.."), "/");
    }
}
