//! A LAN of network namespaces for the chaos suite's network faults: each manager gets a
//! namespace joined by a veth pair to one bridge, and faults are nftables rules inside a
//! member's own namespace (`reference/networking.md` §6: entered with `nsenter`, never `ip
//! netns exec`). Partitions drop packets to or from chosen peers, in one direction or both;
//! loss drops a share of every packet at random (TCP's retransmissions turn it into delay:
//! this kernel has no `sch_netem` for `tc netem delay`). Everything is removed on drop.
//!
//! The members' Docker API sockets are files, so the harness and the workload reach every
//! member whatever its network does (like clients on each manager's own host).

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context};

/// The nftables table that holds a member's faults (one per namespace).
const TABLE: &str = "shoal_chaos";

/// Which packets of a partition are dropped, seen from the isolated member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Neither side hears the other.
    Both,
    /// The member hears nothing from the peers; they still receive what it sends (with TCP
    /// this breaks its connections too, but new packets from it still arrive: etcd's
    /// "blackhole RX").
    Inbound,
}

/// The faults in force on one member, rendered into its namespace's table at once.
#[derive(Clone, Debug, Default, PartialEq)]
struct Faults {
    /// Peers it drops packets from.
    deaf_to: Vec<Ipv4Addr>,
    /// Peers it drops packets to.
    mute_to: Vec<Ipv4Addr>,
    /// Percent of all its packets dropped, each way.
    loss_percent: u8,
}

/// The namespaces, their bridge and the faults in force.
pub struct Lan {
    bridge: String,
    namespaces: Vec<String>,
    ips: Vec<Ipv4Addr>,
    faults: Vec<Faults>,
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output().with_context(|| format!("running {cmd:?}"))
}

fn must(cmd: &mut Command) -> anyhow::Result<()> {
    let out = run(cmd)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The root namespace's FORWARD rule that lets frames between the members pass: this
/// machine's engine sets the FORWARD policy to DROP, and br_netfilter sends bridged frames
/// through it (`-I` or `-D`).
fn forward_rule<'a>(op: &'a str, bridge: &'a str) -> [&'a str; 9] {
    [
        "-w", op, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT",
    ]
}

impl Lan {
    /// `n` namespaces on one bridge, member `k` (0-based) at `198.18.<net>.<k + 1>` (the
    /// benchmarking range, away from the engines' and swarms' address pools).
    pub fn create(n: usize) -> anyhow::Result<Lan> {
        for tool in ["nsenter", "ip", "nft", "iptables"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                bail!(
                    "the chaos suite's network faults need {tool} (scripts/setup.sh installs it)"
                );
            }
        }
        // Unique per LAN, not only per process: one run's scenarios follow each other, and a
        // namespace (with its end of a veth pair) lingers until its last process is gone.
        static LANS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = LANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100;
        let tag = (std::process::id() % 10_000) * 100 + nth;
        let net = (tag % 250) as u8;
        let bridge = format!("shch{tag}");
        let _ = run(Command::new("ip").args(["link", "del", &bridge]));
        must(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
        let mut lan = Lan {
            bridge,
            namespaces: Vec::new(),
            ips: Vec::new(),
            faults: vec![Faults::default(); n],
        };
        must(Command::new("ip").args(["link", "set", &lan.bridge, "up"]))?;
        must(Command::new("iptables").args(forward_rule("-I", &lan.bridge)))?;
        for k in 0..n {
            let netns = format!("shoal-chaos-{tag}-{k}");
            let veth = format!("shc{tag}x{k}");
            let ip = Ipv4Addr::new(198, 18, net, k as u8 + 1);
            let _ = run(Command::new("ip").args(["netns", "del", &netns]));
            let _ = run(Command::new("ip").args(["link", "del", &veth]));
            must(Command::new("ip").args(["netns", "add", &netns]))?;
            lan.namespaces.push(netns.clone());
            must(Command::new("ip").args([
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ]))?;
            must(Command::new("ip").args(["link", "set", &veth, "master", &lan.bridge, "up"]))?;
            must(Command::new("ip").args([
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]))?;
            must(Command::new("ip").args(["-n", &netns, "link", "set", "eth0", "up"]))?;
            must(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
            lan.ips.push(ip);
        }
        Ok(lan)
    }

    /// Member `k`'s address.
    pub fn ip(&self, k: usize) -> Ipv4Addr {
        self.ips[k]
    }

    /// The `nsenter` argument that enters member `k`'s network namespace.
    pub fn enter(&self, k: usize) -> String {
        format!("--net=/run/netns/{}", self.namespaces[k])
    }

    /// Cuts member `k` off from `peers` (0-based), in `direction`; adds to what is in force.
    pub fn partition(
        &mut self,
        k: usize,
        peers: &[usize],
        direction: Direction,
    ) -> anyhow::Result<()> {
        let ips: Vec<Ipv4Addr> = peers.iter().map(|&p| self.ips[p]).collect();
        let f = &mut self.faults[k];
        f.deaf_to.extend(&ips);
        if direction == Direction::Both {
            f.mute_to.extend(&ips);
        }
        self.apply(k)
    }

    /// Drops `percent` of every packet member `k` sends or receives, at random.
    pub fn loss(&mut self, k: usize, percent: u8) -> anyhow::Result<()> {
        self.faults[k].loss_percent = percent.min(100);
        self.apply(k)
    }

    /// Removes every fault on every member.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for k in 0..self.faults.len() {
            if self.faults[k] != Faults::default() {
                self.faults[k] = Faults::default();
                self.apply(k)?;
            }
        }
        Ok(())
    }

    /// Whether any fault is in force.
    pub fn faulty(&self) -> bool {
        self.faults.iter().any(|f| *f != Faults::default())
    }

    /// Replaces member `k`'s table with one that holds its faults (one `nft -f` transaction,
    /// so a member never runs with half a rule set).
    fn apply(&self, k: usize) -> anyhow::Result<()> {
        let f = &self.faults[k];
        let set = |ips: &[Ipv4Addr]| {
            let mut v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
            v.sort();
            v.dedup();
            v.join(", ")
        };
        let mut input = Vec::new();
        let mut output = Vec::new();
        if !f.deaf_to.is_empty() {
            input.push(format!("ip saddr {{ {} }} drop", set(&f.deaf_to)));
        }
        if !f.mute_to.is_empty() {
            output.push(format!("ip daddr {{ {} }} drop", set(&f.mute_to)));
        }
        if f.loss_percent > 0 {
            // Only the LAN's traffic: the loopback inside the namespace stays clean.
            let rule = format!(
                "iifname \"eth0\" numgen random mod 100 < {} drop",
                f.loss_percent
            );
            input.push(rule);
            output.push(format!(
                "oifname \"eth0\" numgen random mod 100 < {} drop",
                f.loss_percent
            ));
        }
        let script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  chain input {{\n    type filter hook input priority -10\n{}  }}\n  chain output {{\n    type filter hook output priority -10\n{}  }}\n}}\n",
            input.iter().map(|r| format!("    {r}\n")).collect::<String>(),
            output.iter().map(|r| format!("    {r}\n")).collect::<String>(),
        );
        let mut child = Command::new("nsenter")
            .arg(self.enter(k))
            .args(["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("nft")?;
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .context("nft's stdin")?
                .write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft on member {k}: {}\n{script}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = run(Command::new("ip").args(["netns", "del", ns]));
        }
        let _ = run(Command::new("iptables").args(forward_rule("-D", &self.bridge)));
        let _ = run(Command::new("ip").args(["link", "del", &self.bridge]));
    }
}
