//! IPv4 address management for swarm networks, as pure arithmetic: subnets carved from the
//! swarm's default address pools, explicit subnets checked for overlaps, VXLAN ids, and a pool
//! per network that hands out addresses serially (a freed address is not reused at once, as
//! Swarm's IPAM does, so a stale DNS answer or conntrack entry does not reach a new task).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use shoal_store::model::{Cluster, NetworkAllocation, NetworkSpec, VXLAN_ID_OPTION};

/// The first VXLAN id handed out (below 4096 is left to 802.1Q VLAN ids, as Swarm does).
pub const FIRST_VNI: u32 = 4096;
/// The last valid VXLAN id (24 bits).
pub const LAST_VNI: u32 = (1 << 24) - 1;
/// The pool a swarm gets when `--default-addr-pool` is not given.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
/// The subnet size carved from it when `--default-addr-pool-mask-length` is not given.
pub const DEFAULT_SUBNET_SIZE: u8 = 24;

/// The pools and subnet size new networks are carved from: the swarm's, or the defaults.
pub fn swarm_pools(cluster: Option<&Cluster>) -> (Vec<String>, u8) {
    let pools = cluster
        .map(|c| c.default_addr_pool.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| vec![DEFAULT_POOL.to_string()]);
    let size = cluster
        .and_then(|c| u8::try_from(c.subnet_size).ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SUBNET_SIZE);
    (pools, size)
}

/// An IPv4 subnet (`10.0.1.0/24`), always with its host bits clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

impl Subnet {
    /// Parses `a.b.c.d/n`; refuses host bits set (`10.0.1.5/24`), as dockerd does.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let subnet = Subnet {
            base: u32::from(addr) & mask(prefix),
            prefix,
        };
        if subnet.base != u32::from(addr) {
            return Err(format!(
                "invalid subnet {s}: it has host bits set (did you mean {subnet}?)"
            ));
        }
        Ok(subnet)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address (the network address).
    pub fn first(&self) -> u32 {
        self.base
    }

    /// The last address (the broadcast address).
    pub fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    /// Whether `ip` lies in the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// Whether `other` lies entirely inside this subnet.
    pub fn covers(&self, other: &Subnet) -> bool {
        self.first() <= other.first() && other.last() <= self.last()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// Why a network could not be given addresses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworkAllocError {
    /// The request itself is wrong (bad CIDR, gateway outside the subnet, ...).
    #[error("{0}")]
    Invalid(String),
    /// The subnet overlaps another swarm network's.
    #[error("invalid pool request: Pool overlaps with other one on this address space: {subnet} overlaps network {other:?} ({other_subnet})")]
    Overlap {
        /// The requested subnet.
        subnet: String,
        /// The network already using addresses in it.
        other: String,
        /// Its subnet.
        other_subnet: String,
    },
    /// The default pools have no free subnet of the swarm's size left.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: every {size}-bit subnet of {pools} is in use; remove networks or give this one --subnet")]
    PoolsExhausted {
        /// The pools searched.
        pools: String,
        /// The subnet size.
        size: u8,
    },
    /// Every VXLAN id is taken (or the requested one is).
    #[error("{0}")]
    Vni(String),
}

/// What is already allocated: the other networks' names, subnets and VXLAN ids.
pub struct Taken<'a> {
    /// `(network name, allocation)` of every allocated network.
    pub networks: Vec<(&'a str, &'a NetworkAllocation)>,
}

/// Allocates a subnet, gateway and VXLAN id for a new network: the explicit `--subnet`,
/// `--gateway` and `--ip-range` when given (checked against the other networks), else the
/// first free `subnet_size` subnet of `pools`.
pub fn allocate_network(
    spec: &NetworkSpec,
    taken: &Taken<'_>,
    pools: &[String],
    subnet_size: u8,
) -> Result<NetworkAllocation, NetworkAllocError> {
    let others: Vec<(&str, Subnet)> = taken
        .networks
        .iter()
        .filter_map(|(name, a)| Subnet::parse(&a.subnet).ok().map(|s| (*name, s)))
        .collect();
    let ipv4_pools: Vec<_> = spec
        .ipam
        .iter()
        .flat_map(|i| i.config.iter())
        .filter(|p| !p.subnet.contains(':'))
        .collect();
    if spec
        .ipam
        .iter()
        .any(|i| i.config.iter().any(|p| p.subnet.contains(':')))
    {
        return Err(NetworkAllocError::Invalid(format!(
            "network {}: IPv6 subnets are not supported by shoal yet; give IPv4 subnets only",
            spec.name
        )));
    }
    if ipv4_pools.len() > 1 {
        return Err(NetworkAllocError::Invalid(format!(
            "network {}: shoal gives a network one IPv4 subnet; {} were given",
            spec.name,
            ipv4_pools.len()
        )));
    }
    let (subnet, gateway, ip_range) = match ipv4_pools.first() {
        Some(pool) if !pool.subnet.is_empty() => {
            let subnet = Subnet::parse(&pool.subnet).map_err(NetworkAllocError::Invalid)?;
            if subnet.prefix() > 30 {
                return Err(NetworkAllocError::Invalid(format!(
                    "subnet {subnet} is too small: a swarm network needs at least a /30"
                )));
            }
            if let Some((name, other)) = others.iter().find(|(_, o)| o.overlaps(&subnet)) {
                return Err(NetworkAllocError::Overlap {
                    subnet: subnet.to_string(),
                    other: name.to_string(),
                    other_subnet: other.to_string(),
                });
            }
            let range = match pool.ip_range.as_str() {
                "" => None,
                r => {
                    let range = Subnet::parse(r).map_err(NetworkAllocError::Invalid)?;
                    if !subnet.covers(&range) {
                        return Err(NetworkAllocError::Invalid(format!(
                            "ip range {range} is not inside subnet {subnet}"
                        )));
                    }
                    Some(range)
                }
            };
            let gateway = match pool.gateway.as_str() {
                "" => Ipv4Addr::from(subnet.first() + 1),
                g => {
                    let ip: Ipv4Addr = g.parse().map_err(|_| {
                        NetworkAllocError::Invalid(format!("invalid gateway address {g:?}"))
                    })?;
                    if !subnet.contains(ip) || usable(&subnet, u32::from(ip)).is_none() {
                        return Err(NetworkAllocError::Invalid(format!(
                            "gateway {ip} is not a host address of subnet {subnet}"
                        )));
                    }
                    ip
                }
            };
            (subnet, gateway, range)
        }
        Some(pool) if !pool.gateway.is_empty() || !pool.ip_range.is_empty() => {
            return Err(NetworkAllocError::Invalid(
                "a gateway or an ip range needs a subnet: give --subnet too".into(),
            ))
        }
        _ => {
            let subnet = carve(pools, subnet_size, &others)?;
            (subnet, Ipv4Addr::from(subnet.first() + 1), None)
        }
    };
    let vni = vni_for(spec, taken)?;
    Ok(NetworkAllocation {
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        ip_range: ip_range.map(|r| r.to_string()).unwrap_or_default(),
        vni,
        node_addresses: Default::default(),
    })
}

/// The first subnet of `size` bits in `pools` that overlaps none of `others`.
fn carve(
    pools: &[String],
    size: u8,
    others: &[(&str, Subnet)],
) -> Result<Subnet, NetworkAllocError> {
    let exhausted = || NetworkAllocError::PoolsExhausted {
        pools: pools.join(", "),
        size,
    };
    for pool in pools {
        let pool = Subnet::parse(pool).map_err(NetworkAllocError::Invalid)?;
        if size < pool.prefix() || size > 30 {
            continue;
        }
        let step = 1u64 << (32 - size);
        let mut base = pool.first() as u64;
        while base + step - 1 <= pool.last() as u64 {
            let candidate = Subnet {
                base: base as u32,
                prefix: size,
            };
            match others
                .iter()
                .filter(|(_, o)| o.overlaps(&candidate))
                .map(|(_, o)| o.last())
                .max()
            {
                None => return Ok(candidate),
                // Skip past the overlapping network rather than step by step through it.
                Some(end) => base = (base + step).max((end as u64 + 1).div_ceil(step) * step),
            }
        }
    }
    Err(exhausted())
}

/// The network's VXLAN id: the one its driver options ask for, else the lowest free one.
fn vni_for(spec: &NetworkSpec, taken: &Taken<'_>) -> Result<u32, NetworkAllocError> {
    let used: BTreeSet<u32> = taken.networks.iter().map(|(_, a)| a.vni).collect();
    if let Some(asked) = spec.options.get(VXLAN_ID_OPTION) {
        let first = asked.split(',').next().unwrap_or_default().trim();
        let vni: u32 = first
            .parse()
            .ok()
            .filter(|v| (1..=LAST_VNI).contains(v))
            .ok_or_else(|| {
                NetworkAllocError::Vni(format!(
                    "invalid {VXLAN_ID_OPTION} {asked:?}: give a number from 1 to {LAST_VNI}"
                ))
            })?;
        if used.contains(&vni) {
            return Err(NetworkAllocError::Vni(format!(
                "VXLAN id {vni} is already used by another network"
            )));
        }
        return Ok(vni);
    }
    (FIRST_VNI..=LAST_VNI)
        .find(|v| !used.contains(v))
        .ok_or_else(|| NetworkAllocError::Vni("every VXLAN id is in use".into()))
}

/// `ip` if it is a host address of the subnet (not the network or broadcast address of a
/// subnet that has them).
fn usable(subnet: &Subnet, ip: u32) -> Option<u32> {
    if subnet.prefix() >= 31 {
        return Some(ip);
    }
    (ip != subnet.first() && ip != subnet.last()).then_some(ip)
}

/// The addresses of one network: which are handed out, and where the next search starts.
#[derive(Clone, Debug)]
pub struct Pool {
    subnet: Subnet,
    /// First and last address that may be handed out (the ip range, or the subnet's hosts).
    lo: u32,
    hi: u32,
    used: BTreeSet<u32>,
    /// The next address to try: just past the last one handed out.
    cursor: u32,
}

impl Pool {
    /// The pool of an allocated network, with its gateway reserved.
    pub fn new(a: &NetworkAllocation) -> Result<Pool, String> {
        let subnet = Subnet::parse(&a.subnet)?;
        let (lo, hi) = match a.ip_range.as_str() {
            "" => (subnet.first(), subnet.last()),
            r => {
                let r = Subnet::parse(r)?;
                (r.first(), r.last())
            }
        };
        let (lo, hi) = if subnet.prefix() >= 31 {
            (lo, hi)
        } else {
            (lo.max(subnet.first() + 1), hi.min(subnet.last() - 1))
        };
        let mut pool = Pool {
            subnet,
            lo,
            hi,
            used: BTreeSet::new(),
            cursor: lo,
        };
        if let Ok(gw) = a.gateway.parse::<Ipv4Addr>() {
            pool.reserve(gw);
        }
        Ok(pool)
    }

    /// The subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// Marks an address as in use (idempotent; addresses outside the subnet are ignored).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        if self.subnet.contains(ip) {
            self.used.insert(u32::from(ip));
        }
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// Whether the address is in use.
    pub fn is_used(&self, ip: Ipv4Addr) -> bool {
        self.used.contains(&u32::from(ip))
    }

    /// Hands out the next free address after the last one handed out (wrapping around).
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        if self.lo > self.hi {
            return None;
        }
        let start = self.cursor.clamp(self.lo, self.hi);
        let found = (start..=self.hi)
            .chain(self.lo..start)
            .find(|ip| !self.used.contains(ip))?;
        self.used.insert(found);
        self.cursor = if found == self.hi { self.lo } else { found + 1 };
        Some(Ipv4Addr::from(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{IPAMPool, IPAMSpec};

    fn spec(name: &str, subnet: &str, gateway: &str, range: &str) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            ipam: (!subnet.is_empty() || !gateway.is_empty() || !range.is_empty()).then(|| {
                IPAMSpec {
                    config: vec![IPAMPool {
                        subnet: subnet.into(),
                        gateway: gateway.into(),
                        ip_range: range.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            }),
            ..Default::default()
        }
    }

    fn alloc(subnet: &str, vni: u32) -> NetworkAllocation {
        NetworkAllocation {
            subnet: subnet.into(),
            gateway: String::new(),
            vni,
            ..Default::default()
        }
    }

    #[test]
    fn subnets_parse_and_compare() {
        let s = Subnet::parse("10.0.1.0/24").unwrap();
        assert_eq!(s.to_string(), "10.0.1.0/24");
        assert!(s.contains("10.0.1.255".parse().unwrap()));
        assert!(!s.contains("10.0.2.0".parse().unwrap()));
        assert!(s.overlaps(&Subnet::parse("10.0.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.0.2.0/24").unwrap()));
        let err = Subnet::parse("10.0.1.5/24").unwrap_err();
        assert!(err.contains("10.0.1.0/24"), "{err}");
        assert!(Subnet::parse("10.0.1.0").is_err());
        assert!(Subnet::parse("10.0.1.0/33").is_err());
    }

    #[test]
    fn default_pool_is_carved_in_order_around_taken_subnets() {
        let pools = vec![DEFAULT_POOL.to_string()];
        let none = Taken { networks: vec![] };
        let a = allocate_network(&spec("a", "", "", ""), &none, &pools, 24).unwrap();
        assert_eq!(
            (a.subnet.as_str(), a.gateway.as_str(), a.vni),
            ("10.0.0.0/24", "10.0.0.1", FIRST_VNI)
        );
        let first = alloc("10.0.0.0/24", 4096);
        let second = alloc("10.0.1.0/24", 4097);
        let big = alloc("10.0.2.0/23", 4099);
        let taken = Taken {
            networks: vec![("ingress", &first), ("second", &second), ("big", &big)],
        };
        let b = allocate_network(&spec("b", "", "", ""), &taken, &pools, 24).unwrap();
        assert_eq!(b.subnet, "10.0.4.0/24", "past the /23");
        assert_eq!(b.vni, 4098, "the lowest free VXLAN id");
        let small = vec!["192.168.0.0/23".to_string()];
        let full = alloc("192.168.0.0/23", 5000);
        let err = allocate_network(
            &spec("c", "", "", ""),
            &Taken {
                networks: vec![("x", &full)],
            },
            &small,
            24,
        )
        .unwrap_err();
        assert!(
            matches!(err, NetworkAllocError::PoolsExhausted { .. }),
            "{err}"
        );
    }

    #[test]
    fn explicit_subnets_are_checked() {
        let pools = vec![DEFAULT_POOL.to_string()];
        let existing = alloc("10.0.9.0/24", 4096);
        let taken = Taken {
            networks: vec![("appnet", &existing)],
        };
        let err =
            allocate_network(&spec("n", "10.0.0.0/16", "", ""), &taken, &pools, 24).unwrap_err();
        assert!(err.to_string().contains("Pool overlaps"), "{err}");
        assert!(err.to_string().contains("appnet"), "{err}");
        let ok = allocate_network(
            &spec("n", "172.28.0.0/16", "172.28.5.254", "172.28.5.0/24"),
            &taken,
            &pools,
            24,
        )
        .unwrap();
        assert_eq!(ok.gateway, "172.28.5.254");
        assert_eq!(ok.ip_range, "172.28.5.0/24");
        let bad_gw = allocate_network(
            &spec("n", "172.28.0.0/16", "172.29.0.1", ""),
            &taken,
            &pools,
            24,
        );
        assert!(bad_gw
            .unwrap_err()
            .to_string()
            .contains("not a host address"));
        let bad_range = allocate_network(
            &spec("n", "172.28.0.0/16", "", "172.27.0.0/24"),
            &taken,
            &pools,
            24,
        );
        assert!(bad_range.unwrap_err().to_string().contains("not inside"));
        let no_subnet = allocate_network(&spec("n", "", "10.0.0.1", ""), &taken, &pools, 24);
        assert!(no_subnet
            .unwrap_err()
            .to_string()
            .contains("needs a subnet"));
    }

    #[test]
    fn requested_vni_is_honoured_and_checked() {
        let pools = vec![DEFAULT_POOL.to_string()];
        let existing = alloc("10.0.9.0/24", 5000);
        let taken = Taken {
            networks: vec![("a", &existing)],
        };
        let mut s = spec("n", "", "", "");
        s.options.insert(VXLAN_ID_OPTION.into(), "6000".into());
        assert_eq!(allocate_network(&s, &taken, &pools, 24).unwrap().vni, 6000);
        s.options.insert(VXLAN_ID_OPTION.into(), "5000".into());
        assert!(allocate_network(&s, &taken, &pools, 24).is_err());
    }

    #[test]
    fn pool_hands_out_addresses_serially_and_skips_used_ones() {
        let mut a = alloc("10.0.1.0/29", 1);
        a.gateway = "10.0.1.1".into();
        let mut pool = Pool::new(&a).unwrap();
        // Hosts .1-.6; .1 is the gateway.
        pool.reserve("10.0.1.3".parse().unwrap());
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(
            got,
            ["10.0.1.2", "10.0.1.4", "10.0.1.5", "10.0.1.6"]
                .map(|s| s.parse::<Ipv4Addr>().unwrap())
        );
        // A freed address is not handed out again before the others wrap around.
        pool.release("10.0.1.4".parse().unwrap());
        pool.release("10.0.1.2".parse().unwrap());
        assert_eq!(pool.allocate(), Some("10.0.1.2".parse().unwrap()));
        assert_eq!(pool.allocate(), Some("10.0.1.4".parse().unwrap()));
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn pool_respects_the_ip_range() {
        let a = NetworkAllocation {
            subnet: "10.0.1.0/24".into(),
            gateway: "10.0.1.1".into(),
            ip_range: "10.0.1.128/30".into(),
            vni: 1,
            ..Default::default()
        };
        let mut pool = Pool::new(&a).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], "10.0.1.128".parse::<Ipv4Addr>().unwrap());
    }
}
