//! The short port syntax (`"8080:80"`, `"127.0.0.1:53:53/udp"`, `"9000-9001:80-81"`, `80`),
//! expanded as docker/cli does (go-connections' `nat.ParsePortSpec`, then the CLI's
//! `ConvertPortToPortConfig`): one long-form port per published port, protocol lower-cased,
//! publish mode `ingress`, a host IP ignored (swarm publishes on every address).

use std::net::IpAddr;

use super::model::Port;

/// go-connections' `ParsePortRange`: `80` or `80-90`, each a u16.
fn port_range(s: &str) -> Result<(u32, u32), String> {
    if s.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let one = |p: &str| -> Result<u32, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port: {p:?}"));
        }
        p.parse::<u16>()
            .map(u32::from)
            .map_err(|_| format!("port out of range: {p}"))
    };
    match s.split_once('-') {
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (start, end) = (one(a)?, one(b)?);
            if end < start {
                return Err(format!("invalid range specified for port: {s}"));
            }
            Ok((start, end))
        }
    }
}

/// Expands one short-syntax port. `warnings` gets a note when a host IP is given.
pub fn parse_port_spec(spec: &str, warnings: &mut Vec<String>) -> Result<Vec<Port>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    // `SplitProtoPort`.
    let (proto, container) = {
        let pieces: Vec<&str> = container.split('/').collect();
        if container.is_empty() || pieces[0].is_empty() {
            ("", "")
        } else if pieces.len() == 1 || pieces[1].is_empty() {
            ("tcp", pieces[0])
        } else {
            (pieces[1], pieces[0])
        }
    };
    let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        Some(inner) => inner.to_string(),
        None => ip,
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    let (start, end) =
        port_range(container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let (host_start, host_end) = if host_port.is_empty() {
        (0, 0)
    } else {
        port_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?
    };
    if !host_port.is_empty() && end - start != host_end - host_start && end != start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container} and {host_port}"
        ));
    }
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    if let Ok(addr) = ip.parse::<IpAddr>() {
        if !addr.is_unspecified() {
            warnings.push(format!(
                "port {spec:?}: ignoring IP-address {ip}, the service will listen on every address"
            ));
        }
    }
    // One binding per container port; docker/cli then visits the ports sorted as strings
    // (`"10/tcp"` before `"9/tcp"`).
    // (sort key, container port, published range).
    type Binding = (String, u32, Option<(u32, u32)>);
    let mut bindings: Vec<Binding> = (0..=end - start)
        .map(|i| {
            let target = start + i;
            let published = if host_port.is_empty() {
                None
            } else if start == end && host_start != host_end {
                Some((host_start, host_end))
            } else {
                Some((host_start + i, host_start + i))
            };
            (format!("{target}/{proto}"), target, published)
        })
        .collect();
    bindings.sort_by(|a, b| a.0.cmp(&b.0));
    let mut ports = Vec::new();
    for (_, target, published) in bindings {
        let (from, to) = published.unwrap_or((0, 0));
        for p in from..=to {
            ports.push(Port {
                mode: "ingress".into(),
                target,
                published: p,
                protocol: proto.clone(),
            });
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(target: u32, published: u32, protocol: &str) -> Port {
        Port {
            mode: "ingress".into(),
            target,
            published,
            protocol: protocol.into(),
        }
    }

    fn parse(s: &str) -> Result<Vec<Port>, String> {
        parse_port_spec(s, &mut Vec::new())
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse("80").unwrap(), [p(80, 0, "tcp")]);
        assert_eq!(parse("8080:80").unwrap(), [p(80, 8080, "tcp")]);
        assert_eq!(parse("53:53/UDP").unwrap(), [p(53, 53, "udp")]);
        let mut w = Vec::new();
        assert_eq!(
            parse_port_spec("127.0.0.1:8080:80", &mut w).unwrap(),
            [p(80, 8080, "tcp")]
        );
        assert_eq!(w.len(), 1);
        assert_eq!(parse("[::1]:8080:80").unwrap(), [p(80, 8080, "tcp")]);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse("9000-9001:80-81").unwrap(),
            [p(80, 9000, "tcp"), p(81, 9001, "tcp")]
        );
        assert_eq!(
            parse("8000-8002:80").unwrap(),
            [p(80, 8000, "tcp"), p(80, 8001, "tcp"), p(80, 8002, "tcp")]
        );
        // Sorted as strings, like docker/cli.
        assert_eq!(parse("9-10").unwrap(), [p(10, 0, "tcp"), p(9, 0, "tcp")]);
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "x",
            "80:x",
            "1.2.3:80:80",
            "80/icmp",
            "9000-9002:80-81",
            "70000",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
