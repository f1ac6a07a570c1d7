//! Placement constraints (`node.labels.zone==east`, `node.role!=manager`, `node.ip==10.0.0.0/8`)
//! and platform matching, with Docker's semantics: keys are case-insensitive, label names are
//! case-sensitive, values compare case-insensitively, a missing attribute is the empty string.

use std::net::IpAddr;

use shoal_store::model::{Node, Platform};

/// A parsed constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    key: Key,
    equal: bool,
    value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Id,
    Hostname,
    Ip,
    Role,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
    Unknown,
}

const NODE_LABELS: &str = "node.labels.";
const ENGINE_LABELS: &str = "engine.labels.";

fn valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && k.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c.is_whitespace()
                || matches!(
                    c,
                    ':' | '-'
                        | '_'
                        | '.'
                        | '*'
                        | '('
                        | ')'
                        | '?'
                        | '+'
                        | '['
                        | ']'
                        | '\\'
                        | '^'
                        | '$'
                        | '|'
                        | '/'
                )
        })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() > prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

impl Constraint {
    /// Parses one expression `key==value` or `key!=value`.
    pub fn parse(expr: &str) -> Result<Constraint, String> {
        let (parts, equal) = if let Some(p) = expr.split_once("==") {
            (p, true)
        } else if let Some(p) = expr.split_once("!=") {
            (p, false)
        } else {
            return Err("constraint expected one operator from ==, !=".into());
        };
        let key = parts.0.trim();
        let value = parts.1.trim();
        if !valid_key(key) {
            return Err(format!("key '{key}' is invalid"));
        }
        if !valid_value(value) {
            return Err(format!("value '{value}' is invalid"));
        }
        let k = if key.eq_ignore_ascii_case("node.id") {
            Key::Id
        } else if key.eq_ignore_ascii_case("node.hostname") {
            Key::Hostname
        } else if key.eq_ignore_ascii_case("node.ip") {
            Key::Ip
        } else if key.eq_ignore_ascii_case("node.role") {
            Key::Role
        } else if key.eq_ignore_ascii_case("node.platform.os") {
            Key::Os
        } else if key.eq_ignore_ascii_case("node.platform.arch") {
            Key::Arch
        } else if let Some(label) = strip_prefix_ci(key, NODE_LABELS) {
            Key::NodeLabel(label.to_string())
        } else if let Some(label) = strip_prefix_ci(key, ENGINE_LABELS) {
            Key::EngineLabel(label.to_string())
        } else {
            // Unknown keys never match (as SwarmKit), so the task stays pending with an
            // explanation instead of running anywhere.
            Key::Unknown
        };
        Ok(Constraint {
            key: k,
            equal,
            value: value.to_string(),
        })
    }

    /// Parses a list; the first bad expression fails the whole list.
    pub fn parse_all(exprs: &[String]) -> Result<Vec<Constraint>, String> {
        exprs.iter().map(|e| Constraint::parse(e)).collect()
    }

    fn matches_value(&self, actual: &str) -> bool {
        self.value.eq_ignore_ascii_case(actual) == self.equal
    }

    fn matches_ip(&self, addr: &str) -> bool {
        let node_ip: Option<IpAddr> = addr.parse().ok();
        let within = if let Ok(ip) = self.value.parse::<IpAddr>() {
            node_ip == Some(ip)
        } else if let Some((net, bits)) = self.value.split_once('/') {
            match (net.parse::<IpAddr>(), bits.parse::<u8>(), node_ip) {
                (Ok(net), Ok(bits), Some(ip)) => cidr_contains(net, bits, ip),
                (Ok(_), Ok(_), None) => false,
                _ => return false,
            }
        } else {
            return false;
        };
        within == self.equal
    }

    /// Whether `node` satisfies this constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let d = &node.description;
        match &self.key {
            Key::Id => self.matches_value(&node.meta.id),
            Key::Hostname => self.matches_value(&d.hostname),
            Key::Ip => self.matches_ip(&node.status.addr),
            Key::Role => self.matches_value(node.role.as_str()),
            Key::Os => self.matches_value(&d.platform.os),
            Key::Arch => self.matches_value(&d.platform.architecture),
            Key::NodeLabel(l) => {
                self.matches_value(node.spec.labels().get(l).map_or("", |v| v.as_str()))
            }
            Key::EngineLabel(l) => {
                self.matches_value(d.engine.labels.get(l).map_or("", |v| v.as_str()))
            }
            Key::Unknown => false,
        }
    }
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

/// Whether `node` satisfies every constraint.
pub fn node_matches(constraints: &[Constraint], node: &Node) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

/// Whether `node` satisfies the constraint strings (unparsable constraints never match).
pub fn node_matches_exprs(exprs: &[String], node: &Node) -> bool {
    match Constraint::parse_all(exprs) {
        Ok(cs) => node_matches(&cs, node),
        Err(_) => false,
    }
}

fn normalize_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".into(),
        "aarch64" | "arm64" => "arm64".into(),
        "i386" | "i686" | "386" => "386".into(),
        other => other.to_string(),
    }
}

/// Whether the node's platform is among `platforms` (empty list: any platform).
pub fn platform_matches(platforms: &[Platform], node: &Node) -> bool {
    if platforms.is_empty() {
        return true;
    }
    let os = &node.description.platform.os;
    let arch = normalize_arch(&node.description.platform.architecture);
    platforms.iter().any(|p| {
        (p.os.is_empty() || os.is_empty() || p.os.eq_ignore_ascii_case(os))
            && (p.architecture.is_empty()
                || arch.is_empty()
                || normalize_arch(&p.architecture) == arch)
    })
}

/// The value a spread descriptor (`node.labels.zone`, `engine.labels.az`) takes on a node;
/// `None` when the node lacks it (such nodes form their own group).
pub fn descriptor_value<'a>(descriptor: &str, node: &'a Node) -> Option<&'a str> {
    if let Some(label) = strip_prefix_ci(descriptor, NODE_LABELS) {
        return node.spec.labels().get(label).map(|s| s.as_str());
    }
    if let Some(label) = strip_prefix_ci(descriptor, ENGINE_LABELS) {
        return node
            .description
            .engine
            .labels
            .get(label)
            .map(|s| s.as_str());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{Meta, NodeRole};

    fn node() -> Node {
        let mut n = Node {
            meta: Meta::with_id("n1"),
            role: NodeRole::Manager,
            ..Default::default()
        };
        n.description.hostname = "Host-A".into();
        n.description.platform.os = "linux".into();
        n.description.platform.architecture = "x86_64".into();
        n.spec.labels.insert("zone".into(), "East".into());
        n.description
            .engine
            .labels
            .insert("disk".into(), "ssd".into());
        n.status.addr = "10.1.2.3".into();
        n
    }

    fn m(expr: &str) -> bool {
        Constraint::parse(expr).unwrap().matches(&node())
    }

    #[test]
    fn keys_values_and_operators() {
        assert!(m("node.id==n1"));
        assert!(
            m("node.hostname==host-a"),
            "values compare case-insensitively"
        );
        assert!(
            m("NODE.ROLE == manager"),
            "keys too, and spaces are trimmed"
        );
        assert!(m("node.platform.os==linux") && m("node.platform.arch!=arm64"));
        assert!(m("node.labels.zone==east"));
        assert!(
            !m("node.labels.Zone==east"),
            "label names are case-sensitive"
        );
        assert!(
            m("node.labels.rack!=r1"),
            "a missing label is the empty value"
        );
        assert!(!m("node.labels.rack==r1"));
        assert!(m("engine.labels.disk==ssd"));
        assert!(m("node.ip==10.1.2.3") && m("node.ip==10.0.0.0/8") && m("node.ip!=192.168.0.0/16"));
        assert!(!m("node.ip==10.1.2.4"));
        assert!(!m("node.something==x"), "unknown keys never match");
    }

    #[test]
    fn parse_errors_use_dockers_wording() {
        assert_eq!(
            Constraint::parse("node.role").unwrap_err(),
            "constraint expected one operator from ==, !="
        );
        assert_eq!(
            Constraint::parse("node.labels.a==b,c").unwrap_err(),
            "value 'b,c' is invalid"
        );
        assert!(!node_matches_exprs(&["garbage".into()], &node()));
    }

    #[test]
    fn platforms_and_descriptors() {
        let n = node();
        let p = |os: &str, arch: &str| Platform {
            os: os.into(),
            architecture: arch.into(),
        };
        assert!(platform_matches(&[], &n));
        assert!(platform_matches(&[p("linux", "amd64")], &n));
        assert!(!platform_matches(
            &[p("windows", "amd64"), p("linux", "arm64")],
            &n
        ));
        assert_eq!(descriptor_value("node.labels.zone", &n), Some("East"));
        assert_eq!(descriptor_value("engine.labels.disk", &n), Some("ssd"));
        assert_eq!(descriptor_value("node.labels.rack", &n), None);
    }
}
