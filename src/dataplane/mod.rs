//! The node's data plane: what makes the tasks a node runs reachable, reconciled from the store
//! with no gossip (`reference/networking.md` §8):
//!
//! - [`links`]: per swarm network a bridge + VXLAN device, the node's address and the VIPs on
//!   the bridge, neighbour/FDB entries for every remote endpoint;
//! - [`engine_net`]: the engine's bridge network on it, so the engine plumbs the containers;
//! - [`nft`]: VIPs and the routing mesh in one nftables table per node;
//! - [`dns`]: service names for containers, scoped to the networks they are on.
//!
//! Two entry points: [`DataPlane::attach`], called by the docker executor before it creates a
//! task's container (it makes the task's networks exist and says how to attach), and
//! [`DataPlane::run`], the reconcile loop every node runs: on every change of the
//! [`NetState`] the leader's dispatcher streams to the node's agent it computes what this
//! node's kernel and engine should hold ([`desired`]) and makes it so, removing what is no
//! longer wanted; it also repairs drift on a timer and after a restart.

pub mod desired;
pub mod dns;
pub mod engine_net;
pub mod links;
pub mod nft;
pub mod state;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use shoal_store::model::{NetworkAttachment, Task, VXLAN_ID_OPTION};
use tokio::sync::watch;

use desired::Desired;
use dns::{DnsServer, Records};
use engine_net::EngineNetwork;
use links::NetworkLinks;
pub use state::NetState;

/// The VXLAN port when the swarm does not say otherwise.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// The MTU of a swarm network unless its `com.docker.network.driver.mtu` option says
/// otherwise: 1500 minus the 50 bytes of VXLAN encapsulation.
pub const DEFAULT_MTU: u32 = 1450;
/// The network driver option that turns on direct routing (`docker network create -d overlay
/// --opt shoal.direct-routing ...`): endpoints on nodes that share an L2 segment with this one
/// are reached by plain routing instead of VXLAN; others still over VXLAN.
pub const DIRECT_ROUTING_OPTION: &str = "shoal.direct-routing";
/// Longest a stopping task waits to leave the load balancers before its container is stopped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// What a stopping task waits after this node dropped it, for the other nodes (they apply the
/// same change from the same stream, about as fast).
const DRAIN_GRACE: Duration = Duration::from_millis(300);
/// How long a failed reconcile waits before the next attempt.
const RETRY: Duration = Duration::from_secs(1);
/// How often everything is re-checked even without a change (repairs drift).
const RESYNC: Duration = Duration::from_secs(30);

/// How a task's container joins one swarm network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineEndpoint {
    /// The engine network.
    pub network: String,
    /// The task's address on it.
    pub ip: Ipv4Addr,
    /// Its MAC (derived from the address, so remote nodes know it).
    pub mac: String,
    /// Whether this is the ingress network.
    pub ingress: bool,
}

/// What the executor needs to attach a container: its endpoints (the first is the one it is
/// created on) and the DNS server it should ask.
#[derive(Clone, Debug, Default)]
pub struct Attachment {
    /// One per network, user networks first.
    pub endpoints: Vec<EngineEndpoint>,
    /// The node's DNS server for the task's networks.
    pub dns: Option<Ipv4Addr>,
}

/// Why a task's networks could not be set up (the task is rejected with it).
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The attachment itself is unusable.
    #[error("network {network}: {message}")]
    Attachment {
        /// Network name.
        network: String,
        /// What is wrong.
        message: String,
    },
    /// The kernel refused a change.
    #[error("setting up network {network}: {source}")]
    Links {
        /// Network name.
        network: String,
        /// The failed command.
        source: links::LinkError,
    },
    /// The engine refused a change.
    #[error("setting up network {network} in the engine: {source}")]
    Engine {
        /// Network name.
        network: String,
        /// The engine's error.
        source: bollard::errors::Error,
    },
}

/// One swarm network as this node sets it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNetwork {
    /// Swarm network id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The routing-mesh network.
    pub ingress: bool,
    /// Subnet.
    pub subnet: String,
    /// Gateway.
    pub gateway: Ipv4Addr,
    /// VXLAN id.
    pub vni: u32,
    /// MTU.
    pub mtu: u32,
    /// No external connectivity.
    pub internal: bool,
    /// Endpoints on nodes of the same L2 segment are routed to, not tunnelled
    /// ([`DIRECT_ROUTING_OPTION`]).
    pub direct_routing: bool,
}

impl LocalNetwork {
    /// The network as a task attachment describes it.
    pub fn from_attachment(a: &NetworkAttachment) -> Result<LocalNetwork, DataPlaneError> {
        let n = &a.network;
        let bad = |message: &str| DataPlaneError::Attachment {
            network: n.spec.name.clone(),
            message: message.to_string(),
        };
        let pool = n
            .ipam_options
            .as_ref()
            .and_then(|i| i.configs.first())
            .ok_or_else(|| bad("no subnet was allocated"))?;
        let vni = n
            .driver_state
            .options
            .get(VXLAN_ID_OPTION)
            .and_then(|v| v.split(',').next()?.parse().ok())
            .ok_or_else(|| bad("no VXLAN id was allocated"))?;
        let options = n.spec.driver_configuration.as_ref().map(|d| &d.options);
        Ok(LocalNetwork {
            id: n.id.clone(),
            name: n.spec.name.clone(),
            ingress: n.spec.ingress,
            subnet: pool.subnet.clone(),
            gateway: pool
                .gateway
                .parse()
                .map_err(|_| bad("its gateway address is malformed"))?,
            vni,
            mtu: mtu_option(options),
            internal: n.spec.internal,
            direct_routing: direct_routing_option(options).map_err(|e| bad(&e))?,
        })
    }
}

/// Whether a network's driver options ask for direct routing ([`DIRECT_ROUTING_OPTION`]): set
/// with no value (`--opt shoal.direct-routing`), `true` or `false`; anything else is refused.
pub fn direct_routing_option(options: Option<&shoal_store::model::Labels>) -> Result<bool, String> {
    match options.and_then(|o| o.get(DIRECT_ROUTING_OPTION)).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("" | "true") => Ok(true),
        Some(other) => Err(format!(
            "option {DIRECT_ROUTING_OPTION}={other:?} is neither true nor false; give it as --opt {DIRECT_ROUTING_OPTION}=true or leave it out"
        )),
    }
}

/// The MTU a network's driver options ask for, else [`DEFAULT_MTU`].
pub fn mtu_option(options: Option<&shoal_store::model::Labels>) -> u32 {
    options
        .and_then(|o| o.get("com.docker.network.driver.mtu"))
        .and_then(|v| v.parse().ok())
        .filter(|m| (576..=9216).contains(m))
        .unwrap_or(DEFAULT_MTU)
}

struct Inner {
    /// The engine (`None` until one answers, on a node that started without it).
    docker: std::sync::RwLock<Option<Docker>>,
    dns: DnsServer,
    records: watch::Sender<Arc<Records>>,
    data_path_port: AtomicU16,
    /// Serialises changes to links and engine networks (attach and the loop both make them).
    changing: tokio::sync::Mutex<()>,
    /// What the loop applied last, to skip unchanged work.
    applied: Mutex<Option<Desired>>,
    /// The direct routes the loop programmed last (see [`links::set_direct_routes`]).
    routes: Mutex<Option<BTreeSet<links::DirectRoute>>>,
    /// Whether each node address seen is on a directly connected segment (asked again on
    /// every full pass).
    on_link: Mutex<std::collections::BTreeMap<Ipv4Addr, bool>>,
    /// Something of a network this node no longer carries could not be removed yet (an
    /// engine network still held by a container being removed): retried soon.
    removal_pending: std::sync::atomic::AtomicBool,
    /// The input of the last successful reconcile (what [`DataPlane::drained`] looks at).
    applied_state: watch::Sender<Option<Arc<NetState>>>,
    /// Load-balancing endpoints the latest input wants on this node, and those the last
    /// successful reconcile programmed (the node's `/metrics`).
    endpoints_desired: AtomicU64,
    endpoints_programmed: AtomicU64,
}

/// The data plane of this node. Cheap to clone.
#[derive(Clone)]
pub struct DataPlane {
    inner: Arc<Inner>,
}

impl DataPlane {
    /// A data plane that plumbs containers into the engine `docker`; names it does not know are
    /// forwarded to this host's resolvers.
    pub fn new(docker: Docker) -> Self {
        let plane = Self::without_engine();
        plane.set_engine(docker);
        plane
    }

    /// A data plane with no engine yet ([`DataPlane::set_engine`] gives it one): the node
    /// follows the swarm's state meanwhile, and plumbs containers once an engine answers.
    pub fn without_engine() -> Self {
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (records, rx) = watch::channel(Arc::new(Records::default()));
        DataPlane {
            inner: Arc::new(Inner {
                docker: std::sync::RwLock::new(None),
                dns: DnsServer::new(rx, dns::host_upstreams(&resolv)),
                records,
                data_path_port: AtomicU16::new(DEFAULT_DATA_PATH_PORT),
                changing: tokio::sync::Mutex::new(()),
                applied: Mutex::new(None),
                routes: Mutex::new(None),
                on_link: Mutex::default(),
                applied_state: watch::channel(None).0,
                removal_pending: Default::default(),
                endpoints_desired: AtomicU64::new(0),
                endpoints_programmed: AtomicU64::new(0),
            }),
        }
    }

    /// Load-balancing endpoints (VIP and published-port backends) the swarm wants on this
    /// node, and those programmed by the last successful reconcile.
    pub fn endpoints(&self) -> (u64, u64) {
        (
            self.inner.endpoints_desired.load(Ordering::Relaxed),
            self.inner.endpoints_programmed.load(Ordering::Relaxed),
        )
    }

    /// Gives the data plane the engine it plumbs containers into.
    pub fn set_engine(&self, docker: Docker) {
        *self.inner.docker.write().unwrap() = Some(docker);
    }

    fn engine(&self) -> Option<Docker> {
        self.inner.docker.read().unwrap().clone()
    }

    fn links_for(&self, n: &LocalNetwork, node_id: &str) -> NetworkLinks {
        let port = self.inner.data_path_port.load(Ordering::Relaxed);
        NetworkLinks::new(&n.id, node_id, n.vni, port, n.mtu)
    }

    async fn ensure_network(
        &self,
        n: &LocalNetwork,
        node_id: &str,
        local: Option<Ipv4Addr>,
    ) -> Result<(), DataPlaneError> {
        let mut l = self.links_for(n, node_id);
        l.local = local;
        links::ensure(&l)
            .await
            .map_err(|source| DataPlaneError::Links {
                network: n.name.clone(),
                source,
            })?;
        let engine = EngineNetwork {
            name: EngineNetwork::name_for(&n.name, &n.id),
            bridge: l.bridge.clone(),
            network_id: n.id.clone(),
            node_id: node_id.to_string(),
            subnet: n.subnet.clone(),
            gateway: n.gateway.to_string(),
            mtu: n.mtu,
            internal: n.internal,
            masquerade: !n.internal && !n.direct_routing,
        };
        let docker = self.engine().ok_or_else(|| DataPlaneError::Attachment {
            network: n.name.clone(),
            message: "no Docker Engine answers on this node".into(),
        })?;
        engine_net::ensure(&docker, &engine)
            .await
            .map_err(|source| DataPlaneError::Engine {
                network: n.name.clone(),
                source,
            })?;
        links::set_proxy_arp(&l.bridge, n.direct_routing)
            .await
            .map_err(|source| DataPlaneError::Links {
                network: n.name.clone(),
                source,
            })?;
        if !n.ingress {
            let addr = SocketAddr::from((n.gateway, 53));
            if let Err(e) = self.inner.dns.listen(addr).await {
                tracing::warn!(network = %n.name, %addr, error = %e, "cannot serve service names on the network");
            }
        }
        Ok(())
    }

    /// Makes the task's networks exist on this node (bridge, VXLAN device, engine network, DNS
    /// listener) and says how to attach its container.
    pub async fn attach(&self, task: &Task) -> Result<Attachment, DataPlaneError> {
        let mut out = Attachment::default();
        if task.networks_attachments.is_empty() {
            return Ok(out);
        }
        let _changing = self.inner.changing.lock().await;
        let mut ingress = None;
        for a in &task.networks_attachments {
            let n = LocalNetwork::from_attachment(a)?;
            let ip: Ipv4Addr = a
                .addresses
                .first()
                .and_then(|s| shoal_controllers::allocator::address(s))
                .ok_or_else(|| DataPlaneError::Attachment {
                    network: n.name.clone(),
                    message: "the task has no address on it".into(),
                })?;
            self.ensure_network(&n, &task.node_id, None).await?;
            let ep = EngineEndpoint {
                network: EngineNetwork::name_for(&n.name, &n.id),
                ip,
                mac: links::mac_of(ip),
                ingress: n.ingress,
            };
            if n.ingress {
                ingress = Some(ep);
            } else {
                if out.dns.is_none() {
                    out.dns = Some(n.gateway);
                }
                out.endpoints.push(ep);
            }
        }
        out.endpoints.extend(ingress);
        Ok(out)
    }

    /// Resolves once this node has stopped sending new connections to task `task_id` (the
    /// state it last applied no longer has the task as running, or never had it), plus a short
    /// grace for the other nodes, which get the same change from the same stream; at most
    /// [`DRAIN_TIMEOUT`]. A node with no data plane input yet has nothing to drain.
    pub async fn drained(&self, task_id: &str) {
        let mut applied = self.inner.applied_state.subscribe();
        let serving = |s: &Option<Arc<NetState>>| {
            s.as_ref().is_some_and(|s| {
                s.tasks.iter().any(|t| {
                    t.meta.id == task_id
                        && t.desired_state <= shoal_store::model::TaskState::Running
                })
            })
        };
        let drained = async {
            while serving(&applied.borrow_and_update()) {
                if applied.changed().await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(DRAIN_GRACE).await;
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    }

    /// The node's nftables table (one per node: tests run several nodes on one host).
    fn table(node_id: &str) -> String {
        let short: String = node_id.chars().take(12).collect();
        format!("shoal_{short}")
    }

    /// Reconciles this node's data plane from `state` (the latest [`NetState`], as the leader's
    /// dispatcher streams it) until `stop` turns true: on every change, and every 30 s to
    /// repair drift. On the way out it leaves everything in place: containers keep working
    /// across a daemon restart, and the next start re-adopts what is there.
    pub async fn run(
        self,
        node_id: String,
        mut state: watch::Receiver<Option<Arc<NetState>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        // The first pass is a full one: it adopts (or removes) what an earlier run left.
        let mut last_full = tokio::time::Instant::now()
            .checked_sub(RESYNC)
            .unwrap_or_else(tokio::time::Instant::now);
        loop {
            let current = state.borrow_and_update().clone();
            let full = last_full.elapsed() >= RESYNC;
            if let Some(current) = current {
                let want = Desired::compute(&current, &node_id);
                let endpoints = want.endpoint_count() as u64;
                self.inner
                    .endpoints_desired
                    .store(endpoints, Ordering::Relaxed);
                let applied = self.apply(&node_id, want, full).await;
                if applied.is_ok() {
                    self.inner.applied_state.send_replace(Some(current.clone()));
                    // Without an engine nothing is programmed (see `apply`).
                    let programmed = if self.engine().is_some() {
                        endpoints
                    } else {
                        0
                    };
                    self.inner
                        .endpoints_programmed
                        .store(programmed, Ordering::Relaxed);
                }
                match applied {
                    Ok(()) if full => last_full = tokio::time::Instant::now(),
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "data plane: reconcile failed; retrying");
                        *self.inner.applied.lock().unwrap() = None;
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY) => continue,
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
            }
            let next = if self.inner.removal_pending.load(Ordering::Relaxed) {
                tokio::time::Instant::now() + RETRY
            } else {
                last_full + RESYNC
            };
            tokio::select! {
                changed = state.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Makes the node match `want`; with `force`, re-checks even what did not change.
    async fn apply(&self, node_id: &str, want: Desired, force: bool) -> Result<(), DataPlaneError> {
        if self.engine().is_none() {
            // Nothing runs here without an engine; the next change or full pass after one
            // answers sets everything up.
            return Ok(());
        }
        let prev = self.inner.applied.lock().unwrap().clone();
        let pending = self.inner.removal_pending.load(Ordering::Relaxed);
        if !force && !pending && prev.as_ref() == Some(&want) {
            return Ok(());
        }
        // Only what changed is touched between full passes: each change costs a few `ip` and
        // engine calls per network otherwise, and a new task's latency to being reachable is
        // mostly that.
        let prev = prev.filter(|_| !force).unwrap_or_default();
        self.inner
            .data_path_port
            .store(want.data_path_port, Ordering::Relaxed);
        let _changing = self.inner.changing.lock().await;
        // Names first: a task that is going away leaves DNS before its rules.
        if prev.records != want.records || force {
            let _ = self.inner.records.send(Arc::new(want.records.clone()));
        }
        let same_vtep = prev.vtep == want.vtep && prev.data_path_port == want.data_path_port;
        // Which nodes share an L2 segment with this one: asked only when a network with direct
        // routing has peers on them, and again on every full pass.
        let mut on_link = if force {
            Default::default()
        } else {
            self.inner.on_link.lock().unwrap().clone()
        };
        let mut routes: BTreeSet<links::DirectRoute> = BTreeSet::new();
        for n in want.networks.values() {
            let l = self.links_for(n, node_id);
            let links_err = |source| DataPlaneError::Links {
                network: n.name.clone(),
                source,
            };
            if !(same_vtep && prev.networks.get(&n.id) == Some(n)) {
                self.ensure_network(n, node_id, want.vtep).await?;
            }
            let host = want.host_addresses.get(&n.id);
            if !same_vtep || prev.host_addresses.get(&n.id) != host {
                links::set_host_addresses(&l.bridge, &host.cloned().unwrap_or_default())
                    .await
                    .map_err(links_err)?;
            }
            // Peers before the rules: a new remote backend is reachable once DNATed to.
            let peers = want.peers.get(&n.id).cloned().unwrap_or_default();
            let (routed, tunnelled) = if n.direct_routing {
                let own = want.own_addresses.get(&n.id).copied();
                split_peers(peers, own, &mut on_link)
                    .await
                    .map_err(links_err)?
            } else {
                (BTreeSet::new(), peers)
            };
            routes.extend(routed);
            if force || !same_vtep || prev.peers.get(&n.id) != want.peers.get(&n.id) {
                links::set_peers(&l.vxlan, &tunnelled)
                    .await
                    .map_err(links_err)?;
            }
        }
        *self.inner.on_link.lock().unwrap() = on_link;
        // Routes after the peers they replace are gone from the VXLAN device, before the rules.
        let routes_changed = self.inner.routes.lock().unwrap().as_ref() != Some(&routes);
        if force || routes_changed {
            links::set_direct_routes(&routes)
                .await
                .map_err(|source| DataPlaneError::Links {
                    network: "(direct routes)".into(),
                    source,
                })?;
            *self.inner.routes.lock().unwrap() = Some(routes);
        }
        let all_err = |source| DataPlaneError::Links {
            network: "(all)".into(),
            source,
        };
        if prev.rules != want.rules || force || prev == Desired::default() {
            // No rules at all: no table either (a node that carries no network leaves nothing).
            let table = Self::table(node_id);
            if want.rules == nft::Ruleset::default() {
                nft::remove(&table).await.map_err(all_err)?;
            } else {
                nft::apply(&table, &want.rules).await.map_err(all_err)?;
            }
        }
        if !want.networks.is_empty() && (prev.networks.is_empty() || force) {
            nft::allow_forwarding().await.map_err(all_err)?;
        }
        if force || pending || prev.networks.keys().any(|k| !want.networks.contains_key(k)) {
            let done = self.remove_unwanted(node_id, &want).await;
            self.inner.removal_pending.store(!done, Ordering::Relaxed);
        }
        *self.inner.applied.lock().unwrap() = Some(want);
        Ok(())
    }

    /// Removes the engine networks, links and DNS listeners of networks this node no longer
    /// carries. An engine network still holding a container is left for the next pass; says
    /// whether everything went.
    async fn remove_unwanted(&self, node_id: &str, want: &Desired) -> bool {
        let Some(docker) = self.engine() else {
            return true;
        };
        let docker = &docker;
        let mut kept_engine: BTreeSet<String> = BTreeSet::new();
        match engine_net::owned(docker, node_id).await {
            Ok(list) => {
                for (name, network) in list {
                    if want.networks.contains_key(&network) {
                        continue;
                    }
                    if let Err(e) = docker.remove_network(&name).await {
                        tracing::debug!(network = %name, error = %e, "engine network not removed yet");
                        kept_engine.insert(network);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the engine's networks"),
        }
        if let Ok(bridges) = links::owned_bridges(node_id).await {
            for (_, network) in bridges {
                if want.networks.contains_key(&network) || kept_engine.contains(&network) {
                    continue;
                }
                let l = NetworkLinks::new(&network, node_id, 0, 0, 0);
                if let Err(e) = links::remove(&l).await {
                    tracing::warn!(network = %network, error = %e, "cannot remove the network's links");
                }
            }
        }
        let wanted_dns: BTreeSet<SocketAddr> = want
            .networks
            .values()
            .filter(|n| !n.ingress)
            .map(|n| SocketAddr::from((n.gateway, 53)))
            .collect();
        for addr in self.inner.dns.listening() {
            if !wanted_dns.contains(&addr) {
                self.inner.dns.stop(addr);
            }
        }
        kept_engine.is_empty()
    }

    /// Removes everything this node set up (when it leaves the swarm).
    pub async fn clear(&self, node_id: &str) {
        let empty = Desired::default();
        let _ = nft::remove(&Self::table(node_id)).await;
        if let Err(e) = links::set_direct_routes(&BTreeSet::new()).await {
            tracing::warn!(error = %e, "cannot remove the direct routes");
        }
        *self.inner.routes.lock().unwrap() = None;
        if !nft::any_table_left().await {
            nft::disallow_forwarding().await;
        }
        let _ = self.remove_unwanted(node_id, &empty).await;
        *self.inner.applied.lock().unwrap() = None;
    }
}

/// A direct-routing network's peers split by where they live: those on nodes that share an L2
/// segment with this one get a route to their node (sourced from this node's address on the
/// network, `own`), the others stay behind the VXLAN device. Whether a node is on-link is
/// asked of the kernel once and remembered in `on_link`.
async fn split_peers(
    peers: BTreeSet<links::Peer>,
    own: Option<Ipv4Addr>,
    on_link: &mut std::collections::BTreeMap<Ipv4Addr, bool>,
) -> Result<(BTreeSet<links::DirectRoute>, BTreeSet<links::Peer>), links::LinkError> {
    let mut routed = BTreeSet::new();
    let mut tunnelled = BTreeSet::new();
    for p in peers {
        let direct = match on_link.get(&p.vtep) {
            Some(d) => *d,
            None => {
                let d = links::on_link(p.vtep).await?;
                on_link.insert(p.vtep, d);
                d
            }
        };
        if direct {
            routed.insert(links::DirectRoute {
                ip: p.ip,
                via: p.vtep,
                src: own,
            });
        } else {
            tunnelled.insert(p);
        }
    }
    Ok((routed, tunnelled))
}
