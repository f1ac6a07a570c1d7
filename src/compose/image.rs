//! Image references as `docker stack deploy` sends them. The stack's `com.docker.stack.image`
//! label keeps the image as written; the spec gets what the Docker client's `ServiceCreate`
//! makes of it: the familiar form of the normalised name with `:latest` added to a bare name
//! (`docker.io/library/nginx` -> `nginx:latest`, `localhost:5000/app` ->
//! `localhost:5000/app:latest`, digests untouched). The grammar is distribution/reference's.

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host: DNS labels or a bracketed IPv6 address, with an optional port.
fn valid_domain(s: &str) -> bool {
    let (host, port): (Option<&str>, Option<&str>) = if let Some(rest) = s.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match (after.is_empty(), after.strip_prefix(':')) {
            (true, _) => (None, None),
            (false, Some(p)) => (None, Some(p)),
            (false, None) => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|label| {
                    let b = label.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                })
        }
    }
}

fn valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_digest(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let alg_ok = !algorithm.is_empty()
        && algorithm.as_bytes()[0].is_ascii_alphabetic()
        && algorithm.split(['-', '_', '+', '.']).all(|p| {
            !p.is_empty()
                && p.as_bytes()[0].is_ascii_alphabetic()
                && p.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A parsed, normalised reference.
struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// distribution/reference's `ParseNormalizedNamed`.
fn parse_normalized(s: &str) -> Result<Reference, String> {
    if is_hex_id(s) {
        return Err(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (s, None),
    };
    // A tag is after the last `:` that follows the last `/`.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(rest[last_slash + i + 1..].to_string()),
        ),
        None => (rest, None),
    };
    let (domain, remainder) = match name.split_once('/') {
        Some((first, remainder))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), remainder.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder
    };
    if path.to_lowercase() != path {
        return Err(format!(
            "invalid reference format: repository name ({path}) must be lowercase"
        ));
    }
    let valid = valid_domain(&domain)
        && path.split('/').all(valid_component)
        && tag.as_deref().is_none_or(valid_tag)
        && digest.as_deref().is_none_or(valid_digest)
        && domain.len() + 1 + path.len() <= 255;
    if !valid {
        return Err("invalid reference format".into());
    }
    Ok(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

/// docker/cli's check of a service's image (`reference.ParseAnyReference`).
pub fn validate(image: &str) -> Result<(), String> {
    if is_hex_id(image) || valid_digest(image) {
        return Ok(());
    }
    parse_normalized(image).map(|_| ())
}

/// The image as the Docker client puts it in the spec: familiar form, `:latest` added to a bare
/// name; unchanged if it does not parse as a name.
pub fn spec_image(image: &str) -> String {
    let Ok(r) = parse_normalized(image) else {
        return image.to_string();
    };
    let mut out = if r.domain == "docker.io" {
        match r.path.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => r.path.clone(),
        }
    } else {
        format!("{}/{}", r.domain, r.path)
    };
    let tag = match (&r.tag, &r.digest) {
        (None, None) => Some("latest".to_string()),
        (t, _) => t.clone(),
    };
    if let Some(t) = tag {
        out.push(':');
        out.push_str(&t);
    }
    if let Some(d) = r.digest {
        out.push('@');
        out.push_str(&d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_images_like_the_docker_client() {
        assert_eq!(spec_image("nginx"), "nginx:latest");
        assert_eq!(spec_image("nginx:1.25"), "nginx:1.25");
        assert_eq!(spec_image("docker.io/library/redis"), "redis:latest");
        assert_eq!(spec_image("index.docker.io/foo/bar:1"), "foo/bar:1");
        assert_eq!(spec_image("traefik/whoami"), "traefik/whoami:latest");
        assert_eq!(
            spec_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(spec_image("ghcr.io/o/r/x:v1"), "ghcr.io/o/r/x:v1");
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            spec_image(&format!("nginx@{digest}")),
            format!("nginx@{digest}")
        );
        assert_eq!(
            spec_image(&format!("nginx:1@{digest}")),
            format!("nginx:1@{digest}")
        );
    }

    #[test]
    fn invalid_references() {
        assert!(validate("nginx").is_ok());
        assert!(validate("Nginx").is_err());
        assert!(validate("nginx:").is_err());
        assert!(validate("a b").is_err());
        assert!(validate(&"a".repeat(64).replace('a', "f")).is_ok());
        assert_eq!(spec_image("Nginx"), "Nginx");
    }
}
