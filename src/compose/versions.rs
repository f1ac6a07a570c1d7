//! The compose schema versions docker/cli 28 knows (3.0 to 3.13) and the keys each one added,
//! so that a file declaring an earlier version is refused what that version's schema refuses.

/// The versions (`3` and no version mean 3.13).
pub const VERSIONS: &[&str] = &[
    "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12",
    "3.13",
];

/// Whether version `a` is `b` or later (numerically: 3.10 is after 3.9).
pub fn at_least(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) >= parse(b)
}

/// Keys docker/cli's schema only knows from a version on (`*`: any name, `[]`: any list item,
/// `x-*`: an extension): in a file that declares an earlier version they are refused, as the
/// earlier schema refuses them.
const SINCE: &[(&str, &str)] = &[
    ("secrets", "3.1"),
    ("services.*.secrets", "3.1"),
    ("networks.*.attachable", "3.2"),
    ("services.*.deploy.endpoint_mode", "3.2"),
    ("services.*.ports[].mode", "3.2"),
    ("services.*.ports[].protocol", "3.2"),
    ("services.*.ports[].published", "3.2"),
    ("services.*.ports[].target", "3.2"),
    ("services.*.volumes[].bind", "3.2"),
    ("services.*.volumes[].consistency", "3.2"),
    ("services.*.volumes[].read_only", "3.2"),
    ("services.*.volumes[].source", "3.2"),
    ("services.*.volumes[].target", "3.2"),
    ("services.*.volumes[].type", "3.2"),
    ("services.*.volumes[].volume", "3.2"),
    ("configs", "3.3"),
    ("services.*.configs", "3.3"),
    ("services.*.credential_spec", "3.3"),
    ("services.*.deploy.placement.preferences", "3.3"),
    ("x-*", "3.4"),
    ("services.*.deploy.update_config.order", "3.4"),
    ("services.*.healthcheck.start_period", "3.4"),
    ("volumes.*.name", "3.4"),
    ("configs.*.name", "3.5"),
    ("networks.*.name", "3.5"),
    ("secrets.*.name", "3.5"),
    (
        "services.*.deploy.resources.reservations.generic_resources",
        "3.5",
    ),
    ("services.*.isolation", "3.5"),
    ("services.*.volumes[].tmpfs", "3.6"),
    ("services.*.deploy.rollback_config", "3.7"),
    ("services.*.init", "3.7"),
    ("services.*.x-*", "3.7"),
    ("networks.*.x-*", "3.7"),
    ("volumes.*.x-*", "3.7"),
    ("secrets.*.x-*", "3.7"),
    ("configs.*.x-*", "3.7"),
    ("configs.*.template_driver", "3.8"),
    ("secrets.*.driver", "3.8"),
    ("secrets.*.driver_opts", "3.8"),
    ("secrets.*.template_driver", "3.8"),
    ("services.*.credential_spec.config", "3.8"),
    ("services.*.deploy.placement.max_replicas_per_node", "3.8"),
    ("services.*.cgroupns_mode", "3.9"),
    ("services.*.deploy.resources.limits.pids", "3.9"),
    ("volumes.*.x-cluster-spec", "3.10"),
    ("services.*.healthcheck.start_interval", "3.12"),
    ("services.*.networks.*.driver_opts", "3.13"),
    ("services.*.oom_score_adj", "3.13"),
];

/// The version from which the schema knows the key at `path`, if later than 3.0.
pub fn since(path: &str) -> Option<&'static str> {
    // `services.web.ports[0].mode` -> `services`, `web`, `ports[]`, `mode`.
    let mut normalized = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                normalized.push('[');
            }
            ']' => {
                in_index = false;
                normalized.push(']');
            }
            _ if in_index => {}
            c => normalized.push(c),
        }
    }
    let segments: Vec<&str> = normalized.split('.').collect();
    let mut found = None;
    for (pattern, version) in SINCE {
        let parts: Vec<&str> = pattern.split('.').collect();
        let matches = parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(p, s)| match *p {
                "*" => true,
                "x-*" => s.starts_with("x-"),
                p => p == *s,
            });
        // The most specific rule wins (`volumes.*.x-cluster-spec` over `volumes.*.x-*`).
        if matches
            && found.is_none_or(|(p, _): (&str, &str)| {
                !p.contains('*') || pattern.matches('*').count() < p.matches('*').count()
            })
        {
            found = Some((*pattern, *version));
        }
    }
    found.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_version_that_added_them() {
        assert_eq!(since("services.web.init"), Some("3.7"));
        assert_eq!(since("services.web.ports[3].target"), Some("3.2"));
        assert_eq!(since("volumes.data.x-cluster-spec"), Some("3.10"));
        assert_eq!(since("volumes.data.x-other"), Some("3.7"));
        assert_eq!(since("x-anchors"), Some("3.4"));
        assert_eq!(since("services.web.image"), None);
        assert!(at_least("3.10", "3.9") && !at_least("3.6", "3.7"));
    }
}
