//! The network allocator: gives services their virtual IPs, tasks their addresses and nodes
//! their own address on the networks they carry, all from the networks' subnets
//! (`reference/networking.md` §1.1, §8). Subnets and VXLAN ids are allocated when a network is
//! created ([`ipam::allocate_network`], called by the API in the create transaction); this
//! reconciler gives one to networks stored before allocation existed.
//!
//! As in SwarmKit, a task on a network is not scheduled before it has its addresses: the
//! allocator writes them with the task's move to PENDING, and the scheduler skips tasks that
//! still [`awaits_allocation`]. Addresses are released when a task stops (its observed state
//! passes RUNNING) or is deleted, VIPs when the service leaves a network or is deleted. A task
//! that cannot get an address stays NEW with the reason in its status, which `docker service
//! ps` shows, and is retried.
//!
//! Keys: [`AllocKey::Service`] (its VIPs and its tasks' addresses) and one
//! [`AllocKey::Networks`] (legacy networks' subnets and the node addresses), so that writes to
//! one network object never race each other. The address pools are derived state kept in
//! `observe` (like the scheduler's node accounting); a reconcile reserves what it hands out
//! before it commits and gives it back if the commit fails.

pub mod ipam;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use shoal_store::model::{
    AttachedNetwork, Driver, EndpointVirtualIP, IPAMConfig, IPAMOptions, Network,
    NetworkAttachment, Object, PublishMode, ResolutionMode, Service, Task, TaskState, TaskStatus,
    Timestamp, VXLAN_ID_OPTION,
};
use shoal_store::{Obj, Op, Txn};

use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use ipam::{Pool, Taken};

/// How long a task that could not get an address waits before the allocator tries again (it
/// is also retried whenever its service changes).
const RETRY_FAILED: Duration = Duration::from_secs(5);
/// Most task updates in one transaction.
const TASKS_PER_TXN: usize = 200;

/// What the allocator reconciles.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocKey {
    /// Networks without a subnet yet, and every node's addresses on the networks it carries.
    Networks,
    /// A service's VIPs and its waiting tasks' addresses.
    Service(String),
}

/// Whether a service publishes ports through the routing mesh (its tasks then join the
/// ingress network, and it gets a VIP there).
pub fn publishes_ingress(s: &Service) -> bool {
    s.endpoint
        .ports
        .iter()
        .chain(s.spec.endpoint_spec.iter().flat_map(|e| e.ports.iter()))
        .any(|p| p.publish_mode_or_default() != PublishMode::Host)
}

/// Whether the service resolves by DNS round robin (no VIPs).
fn is_dnsrr(s: &Service) -> bool {
    s.spec
        .endpoint_spec
        .as_ref()
        .and_then(|e| e.mode.as_ref())
        .is_some_and(|m| *m == ResolutionMode::Dnsrr)
}

/// The ids of the user networks a task of `service` attaches to (its own spec's, and the
/// service's deprecated top-level `Networks`), in order, without repeats.
fn user_networks<'a>(t: &'a Task, service: Option<&'a Service>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let service_level = service.into_iter().flat_map(|s| s.spec.networks.iter());
    for a in t.spec.networks.iter().chain(service_level) {
        if !out.contains(&a.target.as_str()) {
            out.push(a.target.as_str());
        }
    }
    out
}

/// Whether the task still needs addresses before it can be scheduled: a network it attaches
/// to (or the ingress network, when its service publishes ports through the routing mesh)
/// has not given it one yet.
pub fn awaits_allocation(t: &Task, service: Option<&Service>) -> bool {
    let has = |pred: &dyn Fn(&NetworkAttachment) -> bool| {
        t.networks_attachments
            .iter()
            .any(|a| pred(a) && !a.addresses.is_empty())
    };
    let user = user_networks(t, service)
        .into_iter()
        .any(|id| !has(&|a| a.network.id == id));
    user || (service.is_some_and(publishes_ingress) && !has(&|a| a.network.spec.ingress))
}

/// The address part of `10.0.1.7/24` (how attachments and VIPs carry addresses).
pub fn address(with_prefix: &str) -> Option<Ipv4Addr> {
    with_prefix.split('/').next()?.parse().ok()
}

/// The addresses a task holds: those of its attachments while it may still run.
fn held_by_task(t: &Task) -> Vec<(String, Ipv4Addr)> {
    if t.status.state > TaskState::Running {
        return Vec::new();
    }
    t.networks_attachments
        .iter()
        .flat_map(|a| {
            a.addresses
                .iter()
                .filter_map(|s| address(s))
                .map(|ip| (a.network.id.clone(), ip))
        })
        .collect()
}

fn held_by_service(s: &Service) -> Vec<(String, Ipv4Addr)> {
    s.endpoint
        .virtual_ips
        .iter()
        .filter_map(|v| address(&v.addr).map(|ip| (v.network_id.clone(), ip)))
        .collect()
}

fn held_by_network(n: &Network) -> Vec<(String, Ipv4Addr)> {
    n.allocation
        .iter()
        .flat_map(|a| a.node_addresses.values())
        .filter_map(|ip| ip.parse().ok())
        .map(|ip| (n.meta.id.clone(), ip))
        .collect()
}

/// The networks a running task keeps its node on.
fn carried_by_task(t: &Task) -> Option<(String, Vec<String>)> {
    if t.status.state > TaskState::Running || t.node_id.is_empty() {
        return None;
    }
    let nets: Vec<String> = t
        .networks_attachments
        .iter()
        .filter(|a| !a.addresses.is_empty())
        .map(|a| a.network.id.clone())
        .collect();
    (!nets.is_empty()).then(|| (t.node_id.clone(), nets))
}

fn txn_of(ops: Vec<Op>) -> Txn {
    let mut txn = Txn::new();
    txn.ops = ops;
    txn
}

/// The network as a task attachment shows it (moby's `swarm.Network`).
pub fn attached_network(n: &Network) -> AttachedNetwork {
    let mut spec = n.spec.to_swarm_spec();
    let alloc = n.allocation.clone().unwrap_or_default();
    let ipam = IPAMOptions {
        driver: Driver {
            name: "default".into(),
            options: Default::default(),
        },
        configs: vec![IPAMConfig {
            subnet: alloc.subnet.clone(),
            range: alloc.ip_range.clone(),
            gateway: alloc.gateway.clone(),
        }],
    };
    spec.ipam_options = Some(spec.ipam_options.clone().unwrap_or(IPAMOptions {
        driver: ipam.driver.clone(),
        configs: Vec::new(),
    }));
    AttachedNetwork {
        id: n.meta.id.clone(),
        version: n.meta.version,
        created_at: n.meta.created_at,
        updated_at: n.meta.updated_at,
        spec,
        driver_state: Driver {
            name: "overlay".into(),
            options: [(VXLAN_ID_OPTION.to_string(), alloc.vni.to_string())]
                .into_iter()
                .collect(),
        },
        ipam_options: Some(ipam),
    }
}

/// The address pools and what the reconciles need to know of the tasks, kept in step with the
/// cache by `observe`.
#[derive(Default)]
struct State {
    pools: HashMap<String, Pool>,
    /// Running (or about to run) tasks with addresses: task id -> (node, networks).
    carried: HashMap<String, (String, Vec<String>)>,
}

impl State {
    fn reserve(&mut self, held: &[(String, Ipv4Addr)]) {
        for (net, ip) in held {
            if let Some(p) = self.pools.get_mut(net) {
                p.reserve(*ip);
            }
        }
    }

    fn release(&mut self, held: &[(String, Ipv4Addr)]) {
        for (net, ip) in held {
            if let Some(p) = self.pools.get_mut(net) {
                p.release(*ip);
            }
        }
    }

    /// Reserves what `now` holds and releases what only `before` held.
    fn swap(&mut self, before: &[(String, Ipv4Addr)], now: &[(String, Ipv4Addr)]) {
        let gone: Vec<_> = before
            .iter()
            .filter(|h| !now.contains(h))
            .cloned()
            .collect();
        self.release(&gone);
        self.reserve(now);
    }

    fn add_pool(&mut self, n: &Network) {
        let Some(a) = &n.allocation else { return };
        match Pool::new(a) {
            Ok(pool) => {
                self.pools.insert(n.meta.id.clone(), pool);
                self.reserve(&held_by_network(n));
            }
            Err(e) => {
                tracing::warn!(network = %n.meta.id, error = %e, "network has a malformed allocation")
            }
        }
    }

    fn rebuild(&mut self, cache: &Cache) {
        *self = State::default();
        for n in cache.networks() {
            self.add_pool(&n);
        }
        for s in cache.services() {
            self.reserve(&held_by_service(&s));
        }
        for t in cache.tasks() {
            self.reserve(&held_by_task(&t));
            if let Some(c) = carried_by_task(&t) {
                self.carried.insert(t.meta.id.clone(), c);
            }
        }
    }
}

/// The network allocator reconciler.
#[derive(Default)]
pub struct Allocator {
    state: Mutex<State>,
}

impl Allocator {
    /// An allocator with empty state (filled by the first snapshot).
    pub fn new() -> Self {
        Self::default()
    }
}

/// Addresses reserved by a reconcile, given back if its commit fails.
#[derive(Default)]
struct Reserved(Vec<(String, Ipv4Addr)>);

impl Reserved {
    fn take(&mut self, st: &mut State, net: &str) -> Option<Ipv4Addr> {
        let ip = st.pools.get_mut(net)?.allocate()?;
        self.0.push((net.to_string(), ip));
        Some(ip)
    }
}

impl Reconciler for Allocator {
    type Key = AllocKey;

    fn name(&self) -> &'static str {
        "allocator"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<AllocKey>) {
        let mut st = self.state.lock().expect("allocator lock");
        let Change::Event { event, .. } = change else {
            st.rebuild(cache);
            return;
        };
        let deleted = event.action == shoal_store::Action::Delete;
        let prev = event.prev.as_deref();
        match event.object.as_ref() {
            Object::Network(n) => {
                let before = match prev {
                    Some(Object::Network(p)) => held_by_network(p),
                    _ => Vec::new(),
                };
                if deleted {
                    st.pools.remove(&n.meta.id);
                    return;
                }
                if !st.pools.contains_key(&n.meta.id) {
                    st.add_pool(n);
                } else {
                    st.swap(&before, &held_by_network(n));
                }
                if n.allocation.is_none() {
                    keys.push(AllocKey::Networks);
                }
                // Tasks may have waited for this network.
                keys.extend(
                    cache
                        .services()
                        .map(|s| AllocKey::Service(s.meta.id.clone())),
                );
            }
            Object::Service(s) => {
                let before = match prev {
                    Some(Object::Service(p)) => held_by_service(p),
                    _ => Vec::new(),
                };
                let now = if deleted {
                    Vec::new()
                } else {
                    held_by_service(s)
                };
                st.swap(&before, &now);
                if !deleted {
                    keys.push(AllocKey::Service(s.meta.id.clone()));
                }
            }
            Object::Task(t) => {
                let before = match prev {
                    Some(Object::Task(p)) => held_by_task(p),
                    _ => Vec::new(),
                };
                let now = if deleted { Vec::new() } else { held_by_task(t) };
                st.swap(&before, &now);
                let carried = if deleted { None } else { carried_by_task(t) };
                if st.carried.get(&t.meta.id) != carried.as_ref() {
                    match carried {
                        Some(c) => st.carried.insert(t.meta.id.clone(), c),
                        None => st.carried.remove(&t.meta.id),
                    };
                    keys.push(AllocKey::Networks);
                }
                if !deleted
                    && t.status.state < TaskState::Assigned
                    && t.desired_state <= TaskState::Complete
                {
                    let svc = cache.service(&t.service_id);
                    if awaits_allocation(t, svc.as_deref()) {
                        keys.push(AllocKey::Service(t.service_id.clone()));
                    }
                }
            }
            Object::Node(_) => keys.push(AllocKey::Networks),
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<AllocKey> {
        let mut keys = vec![AllocKey::Networks];
        keys.extend(
            cache
                .services()
                .map(|s| AllocKey::Service(s.meta.id.clone())),
        );
        keys
    }

    async fn reconcile(&self, key: &AllocKey, ctx: &Ctx) -> Result<Action, ReconcileError> {
        match key {
            AllocKey::Networks => self.networks(ctx).await,
            AllocKey::Service(id) => self.service(id, ctx).await,
        }
    }
}

impl Allocator {
    /// Legacy networks' subnets, and node addresses: the ingress network on every node, other
    /// networks on the nodes running their tasks.
    async fn networks(&self, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let mut ops = Vec::new();
        let mut reserved = Reserved::default();
        {
            let mut st = self.state.lock().expect("allocator lock");
            let networks: Vec<Obj<Network>> = cache.networks().collect();
            // Networks without a subnet (stored before allocation existed).
            let mut fresh: Vec<Network> = Vec::new();
            for n in networks.iter().filter(|n| n.allocation.is_none()) {
                let cluster = cache.cluster();
                let (pools, size) = ipam::swarm_pools(cluster.as_deref());
                let taken = Taken {
                    networks: networks
                        .iter()
                        .filter_map(|o| o.allocation.as_ref().map(|a| (o.spec.name.as_str(), a)))
                        .chain(fresh.iter().filter_map(|o| {
                            o.allocation.as_ref().map(|a| (o.spec.name.as_str(), a))
                        }))
                        .collect(),
                };
                match ipam::allocate_network(&n.spec, &taken, &pools, size) {
                    Ok(a) => {
                        let mut u = n.to_owned_value();
                        u.allocation = Some(a);
                        fresh.push(u);
                    }
                    Err(e) => {
                        tracing::warn!(network = %n.spec.name, error = %e, "cannot allocate a subnet")
                    }
                }
            }
            for u in fresh {
                let version = networks
                    .iter()
                    .find(|n| n.meta.id == u.meta.id)
                    .map(|n| n.meta.version.index)
                    .unwrap_or_default();
                ops.push(Op::Update {
                    object: Object::Network(u),
                    expected_version: version,
                });
            }
            // Which nodes need an address on which network.
            let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            if let Some(ingress) = networks.iter().find(|n| n.spec.ingress) {
                needed
                    .entry(ingress.meta.id.clone())
                    .or_default()
                    .extend(cache.nodes().map(|n| n.meta.id.clone()));
            }
            for (node, nets) in st.carried.values() {
                for net in nets {
                    needed.entry(net.clone()).or_default().insert(node.clone());
                }
            }
            for n in &networks {
                let Some(a) = &n.allocation else { continue };
                let want = needed.get(&n.meta.id).cloned().unwrap_or_default();
                let mut next: BTreeMap<String, String> = a
                    .node_addresses
                    .iter()
                    .filter(|(node, _)| want.contains(*node))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for node in want.iter().filter(|w| !a.node_addresses.contains_key(*w)) {
                    match reserved.take(&mut st, &n.meta.id) {
                        Some(ip) => {
                            next.insert(node.clone(), ip.to_string());
                        }
                        None => tracing::warn!(
                            network = %n.spec.name,
                            node = %node,
                            "no address left for the node on the network: traffic it load-balances into the network will fail"
                        ),
                    }
                }
                if next != a.node_addresses {
                    let mut u = n.to_owned_value();
                    if let Some(ua) = u.allocation.as_mut() {
                        ua.node_addresses = next;
                    }
                    ops.push(Op::Update {
                        object: Object::Network(u),
                        expected_version: n.meta.version.index,
                    });
                }
            }
        }
        for op in ops {
            if let Err(e) = ctx.submit(txn_of(vec![op])).await {
                self.state
                    .lock()
                    .expect("allocator lock")
                    .release(&reserved.0);
                return Err(e.into());
            }
        }
        Ok(Action::AwaitChange)
    }

    /// A service's VIPs, then its waiting tasks' addresses.
    async fn service(&self, id: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let Some(service) = cache.service(id) else {
            return Ok(Action::AwaitChange);
        };
        let ingress = cache.ingress_network();
        let now = Timestamp::now();
        let mut reserved = Reserved::default();
        let mut service_op = None;
        let mut task_writes: Vec<(Op, Vec<(String, Ipv4Addr)>)> = Vec::new();
        let mut retry = false;
        {
            let mut st = self.state.lock().expect("allocator lock");
            // VIPs: one per attached network (and on ingress when it publishes through the mesh).
            let mut vip_nets: Vec<String> = Vec::new();
            if !is_dnsrr(&service) {
                for a in service
                    .spec
                    .task_template
                    .networks
                    .iter()
                    .chain(service.spec.networks.iter())
                {
                    if !vip_nets.contains(&a.target) {
                        vip_nets.push(a.target.clone());
                    }
                }
            }
            if publishes_ingress(&service) {
                if let Some(i) = &ingress {
                    vip_nets.insert(0, i.meta.id.clone());
                }
            }
            let mut vips = Vec::new();
            for net in &vip_nets {
                let Some(n) = cache.network(net).filter(|n| n.allocation.is_some()) else {
                    continue;
                };
                let alloc = n.allocation.as_ref().expect("checked");
                let kept = service
                    .endpoint
                    .virtual_ips
                    .iter()
                    .find(|v| &v.network_id == net);
                let addr = match kept {
                    Some(v) => Some(v.addr.clone()),
                    None => reserved
                        .take(&mut st, net)
                        .map(|ip| alloc.with_prefix(&ip.to_string())),
                };
                match addr {
                    Some(addr) => vips.push(EndpointVirtualIP {
                        network_id: net.clone(),
                        addr,
                    }),
                    None => {
                        retry = true;
                        tracing::warn!(service = %service.spec.name(), network = %n.spec.name, "no address left for the service's virtual IP");
                    }
                }
            }
            if vips != service.endpoint.virtual_ips {
                let mut u = service.to_owned_value();
                u.endpoint.virtual_ips = vips;
                service_op = Some(Op::Update {
                    object: Object::Service(u),
                    expected_version: service.meta.version.index,
                });
            }

            // Tasks waiting for addresses.
            for t in cache.tasks_of_service(id) {
                if t.status.state >= TaskState::Assigned
                    || t.desired_state > TaskState::Complete
                    || !awaits_allocation(&t, Some(&service))
                {
                    continue;
                }
                let mut wanted: Vec<Obj<Network>> = Vec::new();
                let mut problem = None;
                if publishes_ingress(&service) {
                    match &ingress {
                        Some(i) => wanted.push(i.clone()),
                        None => problem = Some("the service publishes ports through the routing mesh but the swarm has no ingress network: create one with docker network create --driver overlay --ingress ingress".to_string()),
                    }
                }
                for net in user_networks(&t, Some(&service)) {
                    match cache.network(net) {
                        Some(n) if n.allocation.is_some() => wanted.push(n),
                        Some(_) => retry = true,
                        None => problem = Some(format!("network {net} not found")),
                    }
                }
                let mut mine = Vec::new();
                let mut attachments = Vec::new();
                for n in &wanted {
                    let alloc = n.allocation.as_ref().expect("checked");
                    let kept = t
                        .networks_attachments
                        .iter()
                        .find(|a| a.network.id == n.meta.id && !a.addresses.is_empty());
                    if let Some(a) = kept {
                        attachments.push(a.clone());
                        continue;
                    }
                    match reserved.take(&mut st, &n.meta.id) {
                        Some(ip) => {
                            mine.push((n.meta.id.clone(), ip));
                            attachments.push(NetworkAttachment {
                                network: attached_network(n),
                                addresses: vec![alloc.with_prefix(&ip.to_string())],
                            });
                        }
                        None => {
                            problem.get_or_insert_with(|| {
                                format!(
                                    "could not allocate an IP address on network {} ({}): every address is in use; free some or use a network with a larger subnet",
                                    n.spec.name, alloc.subnet
                                )
                            });
                        }
                    }
                }
                let mut u = t.to_owned_value();
                if let Some(problem) = problem {
                    st.release(&mine);
                    retry = true;
                    let err = format!("allocation failed: {problem}");
                    if t.status.err == err {
                        continue;
                    }
                    let mut status = TaskStatus::new(t.status.state, now, "allocation failed");
                    status.err = err;
                    u.status = status;
                    mine.clear();
                } else if wanted.len() == attachments.len() {
                    u.networks_attachments = attachments;
                    u.status = TaskStatus::new(TaskState::Pending, now, "pending task scheduling");
                } else {
                    st.release(&mine);
                    continue;
                }
                task_writes.push((
                    Op::Update {
                        object: Object::Task(u),
                        expected_version: t.meta.version.index,
                    },
                    mine,
                ));
            }
        }
        if let Some(op) = service_op {
            if let Err(e) = ctx.submit(txn_of(vec![op])).await {
                let mut st = self.state.lock().expect("allocator lock");
                st.release(&reserved.0);
                return Err(e.into());
            }
        }
        let mut first_error = None;
        let mut chunk = Vec::new();
        let mut rest = task_writes.into_iter().peekable();
        while rest.peek().is_some() {
            chunk.clear();
            chunk.extend(rest.by_ref().take(TASKS_PER_TXN));
            let txn = txn_of(chunk.iter().map(|(op, _)| op.clone()).collect());
            if let Err(e) = ctx.submit(txn).await {
                let mut st = self.state.lock().expect("allocator lock");
                for (_, mine) in &chunk {
                    st.release(mine);
                }
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None if retry => Ok(Action::Requeue(RETRY_FAILED)),
            None => Ok(Action::AwaitChange),
        }
    }
}
