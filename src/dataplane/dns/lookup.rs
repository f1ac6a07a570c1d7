//! Which addresses a name has for the container that asks: the scoping rules of Docker's resolver
//! applied to [`Records`].

use std::net::{IpAddr, Ipv4Addr};

use super::Records;

/// The form names are stored and compared in: lower case, without the trailing dot.
pub(super) fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The addresses of `name` (normalised) on the networks of `asker`, or `None` if the name is not
/// known there, or `asker` is not a container of this node: such queries are forwarded.
///
/// `Some(vec![])` means the name is known without addresses. The union over the asker's networks
/// is deduplicated, in record order (the caller shuffles). If the full name is unknown and ends
/// with one of `search_domains`, the name without it is tried, once.
pub(super) fn resolve(
    records: &Records,
    asker: IpAddr,
    name: &str,
    search_domains: &[String],
) -> Option<Vec<Ipv4Addr>> {
    // A dual-stack listener sees IPv4 containers as IPv4-mapped IPv6 addresses.
    let IpAddr::V4(asker) = asker.to_canonical() else {
        return None;
    };
    let networks = records.networks_of.get(&asker)?;
    resolve_exact(records, networks, name).or_else(|| {
        search_domains.iter().find_map(|domain| {
            let bare = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            if bare.is_empty() {
                return None;
            }
            resolve_exact(records, networks, bare)
        })
    })
}

fn resolve_exact(records: &Records, networks: &[String], name: &str) -> Option<Vec<Ipv4Addr>> {
    let mut known = false;
    let mut addrs = Vec::new();
    for network in networks {
        let Some(found) = records.names.get(network).and_then(|names| names.get(name)) else {
            continue;
        };
        known = true;
        for addr in found {
            if !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
    }
    known.then_some(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn records() -> Records {
        let mut records = Records::default();
        records
            .networks_of
            .insert(ip(2), vec!["front".into(), "back".into()]);
        records.networks_of.insert(ip(3), vec!["back".into()]);
        records.add_name("front", "web", [ip(100)]);
        records.add_name("front", "tasks.web", [ip(10), ip(11)]);
        records.add_name("back", "tasks.web", [ip(11), ip(12)]);
        records.add_name("back", "db", [ip(200)]);
        records.add_name("back", "empty", []);
        records
    }

    #[test]
    fn union_over_the_askers_networks_is_deduplicated() {
        let found = resolve(&records(), ip(2).into(), "tasks.web", &[]).unwrap();
        assert_eq!(found, vec![ip(10), ip(11), ip(12)]);
    }

    #[test]
    fn names_of_other_networks_are_not_seen() {
        assert_eq!(resolve(&records(), ip(3).into(), "web", &[]), None);
        assert_eq!(
            resolve(&records(), ip(3).into(), "tasks.web", &[]).unwrap(),
            vec![ip(11), ip(12)]
        );
    }

    #[test]
    fn unknown_askers_get_nothing() {
        assert_eq!(resolve(&records(), ip(9).into(), "db", &[]), None);
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(resolve(&records(), v6, "db", &[]), None);
    }

    #[test]
    fn ipv4_mapped_askers_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:10.0.0.3".parse().unwrap();
        assert_eq!(resolve(&records(), mapped, "db", &[]), Some(vec![ip(200)]));
    }

    #[test]
    fn a_known_name_without_addresses_is_still_known() {
        assert_eq!(
            resolve(&records(), ip(3).into(), "empty", &[]),
            Some(vec![])
        );
    }

    #[test]
    fn a_search_domain_is_ignored_only_when_the_full_name_is_unknown() {
        let mut records = records();
        let search = vec!["corp.example".to_owned()];
        assert_eq!(
            resolve(&records, ip(3).into(), "db.corp.example", &search),
            Some(vec![ip(200)])
        );
        // Not a suffix at a label boundary, and not a configured domain.
        assert_eq!(
            resolve(&records, ip(3).into(), "dbcorp.example", &search),
            None
        );
        assert_eq!(resolve(&records, ip(3).into(), "db.other", &search), None);
        assert_eq!(
            resolve(&records, ip(3).into(), "corp.example", &search),
            None
        );
        // Only one domain comes off.
        assert_eq!(
            resolve(
                &records,
                ip(3).into(),
                "db.corp.example.corp.example",
                &search
            ),
            None
        );
        records.add_name("back", "db.corp.example", [ip(201)]);
        assert_eq!(
            resolve(&records, ip(3).into(), "db.corp.example", &search),
            Some(vec![ip(201)])
        );
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise("Tasks.WEB."), "tasks.web");
        let mut records = Records::default();
        records.add_name("n", "WeB.", [ip(1), ip(1)]);
        assert_eq!(records.names["n"]["web"], vec![ip(1)]);
    }
}
