//! Load balancing for VIPs and the routing mesh as one nftables table per node, replaced in one
//! atomic `nft -f` transaction whenever what it should say changes (kube-proxy's nftables mode
//! is the model, `reference/networking.md` §3.3, §8):
//!
//! - a connection to a service's VIP, or to a published port on any local address (127.0.0.1
//!   included), is DNATed to one running task chosen at random (`numgen random`), and marked;
//! - marked connections leaving into a swarm network are SNATed to this node's own address on
//!   that network, so replies come back through this node (and its conntrack entry) even when
//!   the task runs on another node;
//! - a VIP or port without running tasks is not DNATed: the connection reaches this node, where
//!   nothing listens, and is refused at once rather than hanging.
//!
//! nft's own rule language is used (not its JSON): the table reads like what an operator gets
//! from `nft list table`, and one `nft -f -` call replaces it atomically. Conntrack keeps
//! established connections on their task (no IPVS-style 900 s idle cliff).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::links::LinkError;

/// The connection mark of load-balanced connections.
pub const MARK: u32 = 0x5348;
/// The connection mark of connections routed into a network with direct routing from another
/// node (accepted into the bridge like the load-balanced ones, but not SNATed).
pub const ROUTED_MARK: u32 = 0x5349;

/// A VIP and the task addresses behind it (the port is kept, as with Swarm's VIPs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipRule {
    /// The virtual IP.
    pub vip: Ipv4Addr,
    /// Running tasks' addresses on the VIP's network.
    pub backends: Vec<Ipv4Addr>,
}

/// A port published through the routing mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The published port (on every local address).
    pub published: u16,
    /// The port inside the tasks.
    pub target: u16,
    /// Running tasks' addresses on the ingress network.
    pub backends: Vec<Ipv4Addr>,
}

/// Where load-balanced connections leave from: a local network's bridge and this node's
/// address on it (masquerade on the bridge's gateway address until the node has one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRule {
    /// The bridge.
    pub bridge: String,
    /// This node's address on the network.
    pub source: Option<Ipv4Addr>,
    /// The network's gateway: the same on every node, so what this host itself sends into
    /// the network from it is given the node's own address, or replies would land on the
    /// other node's gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Set when the network has direct routing: its endpoints on other nodes are reached by
    /// plain routing, out of another device than the bridge.
    pub routed: Option<RoutedSubnet>,
}

/// What a network with direct routing adds to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedSubnet {
    /// The network's subnet.
    pub subnet: String,
    /// Whether what leaves the network for elsewhere is masqueraded (the engine does not, see
    /// [`super::engine_net::EngineNetwork::masquerade`]); off for internal networks.
    pub masquerade: bool,
}

/// Everything the node's table says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// VIPs.
    pub vips: Vec<VipRule>,
    /// Published ports.
    pub ports: Vec<PortRule>,
    /// Source addresses per network.
    pub sources: Vec<SourceRule>,
}

/// A chain that marks the connection and DNATs it to one of `targets`, chosen at random;
/// `protocol` is matched first when the targets carry a port (nft needs it to map one).
fn backends_chain(out: &mut String, name: &str, protocol: Option<&str>, targets: &[String]) {
    let matched = protocol
        .map(|p| format!("meta l4proto {p} "))
        .unwrap_or_default();
    let _ = writeln!(out, "  chain {name} {{");
    let _ = writeln!(out, "    ct mark set {MARK:#x}");
    if targets.len() == 1 {
        let _ = writeln!(out, "    {matched}dnat to {}", targets[0]);
    } else {
        let arms: Vec<String> = (0..targets.len())
            .map(|i| format!("{i} : goto {name}_{i}"))
            .collect();
        let _ = writeln!(
            out,
            "    numgen random mod {} vmap {{ {} }}",
            targets.len(),
            arms.join(", ")
        );
    }
    let _ = writeln!(out, "  }}");
    if targets.len() > 1 {
        for (i, t) in targets.iter().enumerate() {
            let _ = writeln!(out, "  chain {name}_{i} {{\n    {matched}dnat to {t}\n  }}");
        }
    }
}

/// The table's text (without the delete that makes applying it a replacement).
pub fn render(table: &str, r: &Ruleset) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table ip {table} {{");
    let mut dispatch = Vec::new();
    for (i, v) in r
        .vips
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.backends.is_empty())
    {
        let name = format!("vip{i}");
        dispatch.push(format!("ip daddr {} goto {name}", v.vip));
        let targets: Vec<String> = v.backends.iter().map(|b| b.to_string()).collect();
        backends_chain(&mut out, &name, None, &targets);
    }
    for (i, p) in r
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.backends.is_empty())
    {
        let name = format!("port{i}");
        dispatch.push(format!(
            "fib daddr type local {} dport {} goto {name}",
            p.protocol, p.published
        ));
        let targets: Vec<String> = p
            .backends
            .iter()
            .map(|b| format!("{b}:{}", p.target))
            .collect();
        backends_chain(&mut out, &name, Some(&p.protocol), &targets);
    }
    let _ = writeln!(out, "  chain services {{");
    for d in &dispatch {
        let _ = writeln!(out, "    {d}");
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(
        out,
        "  chain prerouting {{\n    type nat hook prerouting priority -110; policy accept;\n    jump services\n  }}"
    );
    let _ = writeln!(
        out,
        "  chain output {{\n    type nat hook output priority -110; policy accept;\n    jump services\n  }}"
    );
    let _ = writeln!(
        out,
        "  chain postrouting {{\n    type nat hook postrouting priority 90; policy accept;"
    );
    for s in r.sources.iter() {
        let Some(routed) = &s.routed else { continue };
        // Load-balanced connections routed to a backend on another node leave by the
        // underlay device, not the bridge: given this node's address all the same, so the
        // replies come back through this node's conntrack entry.
        if let Some(ip) = s.source {
            let _ = writeln!(
                out,
                "    ct mark {MARK:#x} ip daddr {} oifname != \"{}\" snat to {ip}",
                routed.subnet, s.bridge
            );
        }
        if routed.masquerade {
            let _ = writeln!(
                out,
                "    oifname != \"{}\" ip saddr {net} ip daddr != {net} masquerade",
                s.bridge,
                net = routed.subnet
            );
        }
    }
    for s in &r.sources {
        match s.source {
            Some(ip) => {
                let _ = writeln!(
                    out,
                    "    ct mark {MARK:#x} oifname \"{}\" snat to {ip}",
                    s.bridge
                );
                if let Some(gw) = s.gateway {
                    let _ = writeln!(
                        out,
                        "    oifname \"{}\" ip saddr {gw} fib daddr type != local snat to {ip}",
                        s.bridge
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "    ct mark {MARK:#x} oifname \"{}\" masquerade",
                    s.bridge
                );
            }
        }
    }
    let _ = writeln!(out, "  }}");
    // New connections routed in from another node towards a network with direct routing: the
    // engine's FORWARD chain only lets its own published ports into a bridge, so they are
    // marked here and accepted by the `DOCKER-USER` rule (see `allow_forwarding`).
    let routed: Vec<&SourceRule> = r.sources.iter().filter(|s| s.routed.is_some()).collect();
    if !routed.is_empty() {
        let _ = writeln!(
            out,
            "  chain forward {{\n    type filter hook forward priority -5; policy accept;"
        );
        for s in routed {
            let net = &s.routed.as_ref().expect("filtered").subnet;
            let _ = writeln!(
                out,
                "    ct mark 0x0 iifname != \"{b}\" oifname \"{b}\" ip saddr {net} ip daddr {net} ct mark set {ROUTED_MARK:#x}",
                b = s.bridge
            );
        }
        let _ = writeln!(out, "  }}");
    }
    let _ = writeln!(out, "}}");
    out
}

async fn nft(input: &str) -> Result<(), LinkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| LinkError {
            command: "nft -f -".into(),
            message: e.to_string(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let out = child.wait_with_output().await.map_err(|e| LinkError {
        command: "nft -f -".into(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(LinkError {
            command: "nft -f -".into(),
            message: format!(
                "{}\n--- ruleset ---\n{input}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Replaces the table with `r` in one transaction (creating it the first time).
pub async fn apply(table: &str, r: &Ruleset) -> Result<(), LinkError> {
    let script = format!(
        "table ip {table} {{}}\ndelete table ip {table}\n{}",
        render(table, r)
    );
    nft(&script).await
}

/// Lets load-balanced connections be forwarded into the swarm networks: the engine's FORWARD
/// policy is DROP and only its own published ports are accepted, and a drop in another table
/// cannot be overridden from ours, so one rule goes where the engine expects users' rules
/// (`DOCKER-USER`). Idempotent; a no-op when the engine manages no firewall.
pub async fn allow_forwarding() -> Result<(), LinkError> {
    for mark in [MARK, ROUTED_MARK] {
        if forwarding_rule("-C", mark).await.is_ok() {
            continue;
        }
        match forwarding_rule("-I", mark).await {
            Err(e) if e.message.contains("No chain") || e.message.contains("does not exist") => {
                return Ok(())
            }
            other => other?,
        }
    }
    Ok(())
}

/// Removes the rules [`allow_forwarding`] added (absent is fine).
pub async fn disallow_forwarding() {
    for mark in [MARK, ROUTED_MARK] {
        let _ = forwarding_rule("-D", mark).await;
    }
}

/// Checks (`-C`), inserts (`-I`) or deletes (`-D`) the `DOCKER-USER` rule accepting
/// connections marked `mark`.
async fn forwarding_rule(op: &str, mark: u32) -> Result<(), LinkError> {
    let mark = format!("{mark:#x}");
    let args = [
        "-w",
        op,
        "DOCKER-USER",
        "-m",
        "connmark",
        "--mark",
        &mark,
        "-j",
        "ACCEPT",
    ];
    super::links::run("iptables", &args).await.map(|_| ())
}

/// Whether any node's table is left in this network namespace (tests run several nodes on one
/// host; the forwarding rule is shared).
pub async fn any_table_left() -> bool {
    super::links::run("nft", &["list", "tables"])
        .await
        .map(|t| t.contains(" shoal_"))
        .unwrap_or(false)
}

/// Removes the table (absent is fine).
pub async fn remove(table: &str) -> Result<(), LinkError> {
    nft(&format!("table ip {table} {{}}\ndelete table ip {table}\n")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vips_ports_and_sources() {
        let r = Ruleset {
            vips: vec![
                VipRule {
                    vip: "10.0.1.2".parse().unwrap(),
                    backends: vec!["10.0.1.4".parse().unwrap(), "10.0.1.5".parse().unwrap()],
                },
                VipRule {
                    vip: "10.0.1.9".parse().unwrap(),
                    backends: vec![],
                },
            ],
            ports: vec![PortRule {
                protocol: "tcp".into(),
                published: 8080,
                target: 80,
                backends: vec!["10.0.0.4".parse().unwrap()],
            }],
            sources: vec![
                SourceRule {
                    bridge: "shlabc".into(),
                    source: Some("10.0.1.3".parse().unwrap()),
                    gateway: Some("10.0.1.1".parse().unwrap()),
                    routed: None,
                },
                SourceRule {
                    bridge: "shldef".into(),
                    source: None,
                    gateway: None,
                    routed: None,
                },
            ],
        };
        let text = render("shoal_n1", &r);
        assert!(text.contains("ip daddr 10.0.1.2 goto vip0"), "{text}");
        assert!(
            !text.contains("10.0.1.9"),
            "a VIP without backends is not DNATed: {text}"
        );
        assert!(text.contains("numgen random mod 2 vmap { 0 : goto vip0_0, 1 : goto vip0_1 }"));
        assert!(
            text.contains("fib daddr type local tcp dport 8080 goto port0"),
            "{text}"
        );
        assert!(
            text.contains("meta l4proto tcp dnat to 10.0.0.4:80"),
            "{text}"
        );
        assert!(text.contains("oifname \"shlabc\" snat to 10.0.1.3"));
        assert!(text.contains(
            "oifname \"shlabc\" ip saddr 10.0.1.1 fib daddr type != local snat to 10.0.1.3"
        ));
        assert!(text.contains("oifname \"shldef\" masquerade"));
        assert!(
            !text.contains("chain forward"),
            "no forward chain without direct routing: {text}"
        );
    }

    #[test]
    fn a_network_with_direct_routing_snats_marks_and_masquerades_routed_traffic() {
        let r = Ruleset {
            sources: vec![SourceRule {
                bridge: "shlabc".into(),
                source: Some("10.0.1.3".parse().unwrap()),
                gateway: Some("10.0.1.1".parse().unwrap()),
                routed: Some(RoutedSubnet {
                    subnet: "10.0.1.0/24".into(),
                    masquerade: true,
                }),
            }],
            ..Default::default()
        };
        let text = render("shoal_n1", &r);
        assert!(
            text.contains(
                "ct mark 0x5348 ip daddr 10.0.1.0/24 oifname != \"shlabc\" snat to 10.0.1.3"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "oifname != \"shlabc\" ip saddr 10.0.1.0/24 ip daddr != 10.0.1.0/24 masquerade"
            ),
            "{text}"
        );
        assert!(
            text.contains("ct mark 0x0 iifname != \"shlabc\" oifname \"shlabc\" ip saddr 10.0.1.0/24 ip daddr 10.0.1.0/24 ct mark set 0x5349"),
            "{text}"
        );
        let internal = Ruleset {
            sources: vec![SourceRule {
                routed: Some(RoutedSubnet {
                    subnet: "10.0.1.0/24".into(),
                    masquerade: false,
                }),
                ..r.sources[0].clone()
            }],
            ..Default::default()
        };
        assert!(!render("shoal_n1", &internal).contains("masquerade"));
    }
}
