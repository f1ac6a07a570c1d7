//! The kernel side of a swarm network on this node: a Linux bridge with a VXLAN device
//! enslaved to it (`reference/networking.md` §0 item 2, §1.2), the node's own address and the
//! network's VIPs on the bridge, and static neighbour/FDB entries for remote endpoints.
//!
//! Driven through iproute2's `ip` and `bridge` commands rather than a netlink crate: they are
//! the tools an operator reads the same state with, their JSON output is stable, and the
//! rtnetlink crate breaks its API with every minor release (crates.md §9). Every function is
//! idempotent: it checks what is there and changes only what differs, so the reconciler can
//! run it after a restart or a crash halfway through.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::Value;
use tokio::process::Command;

/// Prefix of the bridges shoal creates (`shl` + the start of the network id).
pub const BRIDGE_PREFIX: &str = "shl";
/// Prefix of the VXLAN devices shoal creates.
pub const VXLAN_PREFIX: &str = "shv";
/// What the alias of every link shoal creates starts with (`shoal:<node id>:<network id>`), so a
/// node finds its own links after a restart and leaves other nodes' (tests run several nodes
/// on one host) alone.
pub const ALIAS_PREFIX: &str = "shoal:";

/// A command that failed, with what it printed.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {message}")]
pub struct LinkError {
    /// The command line.
    pub command: String,
    /// Its error output (or why it could not run).
    pub message: String,
}

/// Runs a command; its stdout on success.
pub(crate) async fn run(program: &str, args: &[&str]) -> Result<String, LinkError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| LinkError {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LinkError {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn ip_json(args: &[&str]) -> Result<Value, LinkError> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = run("ip", &full).await?;
    Ok(serde_json::from_str(&out).unwrap_or(Value::Array(Vec::new())))
}

/// The links of one swarm network on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkLinks {
    /// Bridge name.
    pub bridge: String,
    /// VXLAN device name.
    pub vxlan: String,
    /// VXLAN id.
    pub vni: u32,
    /// UDP port of the data path.
    pub port: u16,
    /// MTU of the bridge, the VXLAN device and the containers' interfaces.
    pub mtu: u32,
    /// The node's address to send VXLAN from (`local`), when known.
    pub local: Option<Ipv4Addr>,
    /// `shoal:<node id>:<network id>`.
    pub alias: String,
}

impl NetworkLinks {
    /// The links for network `network_id` on node `node_id`.
    pub fn new(network_id: &str, node_id: &str, vni: u32, port: u16, mtu: u32) -> Self {
        let short: String = network_id.chars().take(10).collect();
        NetworkLinks {
            bridge: format!("{BRIDGE_PREFIX}{short}"),
            vxlan: format!("{VXLAN_PREFIX}{short}"),
            vni,
            port,
            mtu,
            local: None,
            alias: format!("{ALIAS_PREFIX}{node_id}:{network_id}"),
        }
    }
}

async fn link(name: &str) -> Result<Option<Value>, LinkError> {
    match ip_json(&["-d", "link", "show", "dev", name]).await {
        Ok(Value::Array(mut v)) if !v.is_empty() => Ok(Some(v.remove(0))),
        Ok(_) => Ok(None),
        Err(e) if e.message.contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates (or repairs) the bridge and its VXLAN device, up, with the MTU; a VXLAN device
/// with another id or port is replaced. `route_localnet` is set on the bridge so that
/// connections to a published port on 127.0.0.1 can be forwarded into the network.
pub async fn ensure(l: &NetworkLinks) -> Result<(), LinkError> {
    let mtu = l.mtu.to_string();
    if link(&l.bridge).await?.is_none() {
        run("ip", &["link", "add", &l.bridge, "type", "bridge"]).await?;
    }
    run(
        "ip",
        &["link", "set", &l.bridge, "alias", &l.alias, "mtu", &mtu],
    )
    .await?;
    if let Some(v) = link(&l.vxlan).await? {
        let info = &v["linkinfo"]["info_data"];
        let same = info["id"].as_u64() == Some(l.vni as u64)
            && info["port"].as_u64() == Some(l.port as u64);
        if !same {
            run("ip", &["link", "del", &l.vxlan]).await?;
        }
    }
    if link(&l.vxlan).await?.is_none() {
        let vni = l.vni.to_string();
        let port = l.port.to_string();
        let mut args = vec![
            "link",
            "add",
            &l.vxlan,
            "type",
            "vxlan",
            "id",
            &vni,
            "dstport",
            &port,
            "nolearning",
            "proxy",
        ];
        let local = l.local.map(|a| a.to_string());
        if let Some(local) = &local {
            args.extend(["local", local.as_str()]);
        }
        run("ip", &args).await?;
    }
    run(
        "ip",
        &[
            "link", "set", &l.vxlan, "master", &l.bridge, "mtu", &mtu, "alias", &l.alias, "up",
        ],
    )
    .await?;
    run("ip", &["link", "set", &l.bridge, "up"]).await?;
    let _ = tokio::fs::write(
        format!("/proc/sys/net/ipv4/conf/{}/route_localnet", l.bridge),
        "1",
    )
    .await;
    Ok(())
}

/// Makes the bridge's /32 addresses exactly `wanted` (the node's address and the network's
/// VIPs), leaving the gateway address the engine put on it alone.
pub async fn set_host_addresses(
    bridge: &str,
    wanted: &BTreeSet<Ipv4Addr>,
) -> Result<(), LinkError> {
    let v = ip_json(&["-4", "addr", "show", "dev", bridge]).await?;
    let mut present = BTreeSet::new();
    for a in v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().into_iter().flatten())
    {
        if a["prefixlen"].as_u64() != Some(32) {
            continue;
        }
        if let Some(ip) = a["local"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
            present.insert(ip);
        }
    }
    for ip in wanted.difference(&present) {
        run("ip", &["addr", "add", &format!("{ip}/32"), "dev", bridge]).await?;
    }
    for ip in present.difference(wanted) {
        run("ip", &["addr", "del", &format!("{ip}/32"), "dev", bridge]).await?;
    }
    Ok(())
}

/// A remote endpoint of a network: its address, MAC and the VTEP (node address) behind it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// The endpoint's address on the network.
    pub ip: Ipv4Addr,
    /// The node it lives on.
    pub vtep: Ipv4Addr,
}

/// The MAC address Docker and Swarm derive from an IPv4 address (`02:42:` + its four bytes), so
/// a remote endpoint's MAC is known without asking anyone.
pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Makes the VXLAN device's permanent neighbour entries (IP -> MAC, answered by its ARP proxy)
/// and FDB entries (MAC -> remote VTEP) exactly those of `peers`.
pub async fn set_peers(vxlan: &str, peers: &BTreeSet<Peer>) -> Result<(), LinkError> {
    let neigh = ip_json(&["neigh", "show", "dev", vxlan]).await?;
    let mut have_neigh: BTreeSet<(Ipv4Addr, String)> = BTreeSet::new();
    for n in neigh.as_array().into_iter().flatten() {
        if let (Some(ip), Some(mac)) = (
            n["dst"].as_str().and_then(|s| s.parse().ok()),
            n["lladdr"].as_str(),
        ) {
            have_neigh.insert((ip, mac.to_string()));
        }
    }
    let fdb_out = run("bridge", &["-j", "fdb", "show", "dev", vxlan]).await?;
    let fdb: Value = serde_json::from_str(&fdb_out).unwrap_or(Value::Array(Vec::new()));
    let mut have_fdb: BTreeSet<(String, Ipv4Addr)> = BTreeSet::new();
    for f in fdb.as_array().into_iter().flatten() {
        if let (Some(mac), Some(dst)) = (
            f["mac"].as_str(),
            f["dst"].as_str().and_then(|s| s.parse().ok()),
        ) {
            have_fdb.insert((mac.to_string(), dst));
        }
    }
    let want_neigh: BTreeSet<(Ipv4Addr, String)> =
        peers.iter().map(|p| (p.ip, mac_of(p.ip))).collect();
    let want_fdb: BTreeSet<(String, Ipv4Addr)> =
        peers.iter().map(|p| (mac_of(p.ip), p.vtep)).collect();
    for (mac, dst) in have_fdb.difference(&want_fdb) {
        if mac == "00:00:00:00:00:00" {
            continue;
        }
        let dst = dst.to_string();
        run(
            "bridge",
            &["fdb", "del", mac, "dev", vxlan, "dst", &dst, "self"],
        )
        .await?;
    }
    for (ip, mac) in have_neigh.difference(&want_neigh) {
        let ip = ip.to_string();
        run("ip", &["neigh", "del", &ip, "lladdr", mac, "dev", vxlan]).await?;
    }
    for (mac, dst) in want_fdb.difference(&have_fdb) {
        let dst = dst.to_string();
        run(
            "bridge",
            &[
                "fdb",
                "append",
                mac,
                "dev",
                vxlan,
                "dst",
                &dst,
                "self",
                "permanent",
            ],
        )
        .await?;
    }
    for (ip, mac) in want_neigh.difference(&have_neigh) {
        let ip = ip.to_string();
        run(
            "ip",
            &[
                "neigh",
                "replace",
                &ip,
                "lladdr",
                mac,
                "dev",
                vxlan,
                "nud",
                "permanent",
            ],
        )
        .await?;
    }
    Ok(())
}

/// The routing protocol number on the routes shoal adds for directly routed peers (`ip route
/// show proto 215`), so a node finds its own routes again after a restart.
pub const ROUTE_PROTO: &str = "215";

/// A route to a remote endpoint of a network with direct routing: plain IP to the node it runs
/// on, which shares an L2 segment with this one, instead of VXLAN (flannel's `DirectRouting`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirectRoute {
    /// The endpoint's address on the network.
    pub ip: Ipv4Addr,
    /// Its node's data path address (the next hop).
    pub via: Ipv4Addr,
    /// This node's own address on the network, as the source of what the host itself sends
    /// (so the other node accepts it as traffic of the network), when it has one.
    pub src: Option<Ipv4Addr>,
}

/// Whether `addr` is another host on a segment this one is directly connected to: reachable
/// without a router and not one of this host's own addresses (several nodes of a test share a
/// host). Only such a peer can be sent plain packets addressed to a container behind it.
pub async fn on_link(addr: Ipv4Addr) -> Result<bool, LinkError> {
    let v = ip_json(&["route", "get", &addr.to_string()]).await?;
    let Some(r) = v.as_array().and_then(|a| a.first()) else {
        return Ok(false);
    };
    let unicast = r["type"].as_str().is_none_or(|t| t == "unicast");
    let via_router = r.get("gateway").is_some();
    let device = r["dev"].as_str().unwrap_or("lo");
    Ok(unicast && !via_router && device != "lo")
}

/// Makes the routes shoal added (protocol [`ROUTE_PROTO`]) exactly `wanted`.
pub async fn set_direct_routes(wanted: &BTreeSet<DirectRoute>) -> Result<(), LinkError> {
    let v = ip_json(&["-4", "route", "show", "proto", ROUTE_PROTO]).await?;
    let mut have = BTreeSet::new();
    for r in v.as_array().into_iter().flatten() {
        let Some(dst) = r["dst"].as_str() else {
            continue;
        };
        let parsed = dst.trim_end_matches("/32").parse::<Ipv4Addr>().ok();
        let via = r["gateway"].as_str().and_then(|s| s.parse().ok());
        match (parsed, via) {
            (Some(ip), Some(via)) => {
                let src = r["prefsrc"].as_str().and_then(|s| s.parse().ok());
                have.insert(DirectRoute { ip, via, src });
            }
            // Not a route of the form shoal adds: its own, left broken by hand.
            _ => {
                run("ip", &["route", "del", dst, "proto", ROUTE_PROTO]).await?;
            }
        }
    }
    for r in have.difference(wanted) {
        if !wanted.iter().any(|w| w.ip == r.ip) {
            let dst = format!("{}/32", r.ip);
            run("ip", &["route", "del", &dst, "proto", ROUTE_PROTO]).await?;
        }
    }
    for r in wanted.difference(&have) {
        let dst = format!("{}/32", r.ip);
        let via = r.via.to_string();
        let src = r.src.map(|s| s.to_string());
        let mut args = vec!["route", "replace", &dst, "via", &via];
        if let Some(src) = &src {
            args.extend(["src", src.as_str()]);
        }
        args.extend(["proto", ROUTE_PROTO]);
        run("ip", &args).await?;
    }
    Ok(())
}

/// Turns the bridge's proxy ARP on or off. With direct routing a container asks for a remote
/// endpoint's MAC on the bridge; the host answers with its own (it has a route to the address
/// through another device) and routes the packet, at once rather than after the kernel's
/// default random delay of up to 0.8 s.
pub async fn set_proxy_arp(bridge: &str, on: bool) -> Result<(), LinkError> {
    let write = |path: String, value: &'static str| async move {
        tokio::fs::write(&path, value).await.map_err(|e| LinkError {
            command: format!("echo {value} > {path}"),
            message: e.to_string(),
        })
    };
    if on {
        write(
            format!("/proc/sys/net/ipv4/neigh/{bridge}/proxy_delay"),
            "0",
        )
        .await?;
    }
    write(
        format!("/proc/sys/net/ipv4/conf/{bridge}/proxy_arp"),
        if on { "1" } else { "0" },
    )
    .await
}

/// The bridges this node created, by network id (read back from their aliases).
pub async fn owned_bridges(node_id: &str) -> Result<Vec<(String, String)>, LinkError> {
    let v = ip_json(&["link", "show", "type", "bridge"]).await?;
    let prefix = format!("{ALIAS_PREFIX}{node_id}:");
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let alias = l["ifalias"].as_str()?;
            let network = alias.strip_prefix(&prefix)?;
            Some((l["ifname"].as_str()?.to_string(), network.to_string()))
        })
        .collect())
}

/// Removes a network's bridge and VXLAN device (absent ones are fine).
pub async fn remove(l: &NetworkLinks) -> Result<(), LinkError> {
    for name in [&l.vxlan, &l.bridge] {
        if link(name).await?.is_some() {
            run("ip", &["link", "del", name]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_macs_follow_docker() {
        let l = NetworkLinks::new("09kq3t71yns7e6lqyzhwb1ouv", "node1", 4097, 4789, 1450);
        assert_eq!(l.bridge, "shl09kq3t71yn");
        assert!(l.bridge.len() <= 15 && l.vxlan.len() <= 15);
        assert_eq!(l.alias, "shoal:node1:09kq3t71yns7e6lqyzhwb1ouv");
        assert_eq!(mac_of("10.0.1.7".parse().unwrap()), "02:42:0a:00:01:07");
    }
}
