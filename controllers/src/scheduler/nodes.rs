//! The scheduler's own view of the nodes: what each has left, what runs there, and which tasks
//! wait for a node. Maintained incrementally from watch events (and from the scheduler's own
//! decisions before they commit), so a scheduling pass never scans all tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use shoal_store::model::{
    GenericResource, Node, NodeAvailability, NodeState, Object, PublishMode, Service, Task,
    TaskState, Timestamp,
};
use shoal_store::{Action, Event, Obj};

use super::resources::{Capacity, Request};
use crate::orchestrator::tasks::elapsed;
use crate::runtime::Cache;

/// A host-mode published port: protocol and port number.
pub type HostPort = (String, u32);

/// A node is avoided for a service version after this many failures ...
pub const MAX_FAILURES: usize = 5;
/// ... within this window (SwarmKit's `maxFailures`, `monitorFailures`).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// What a task placed on a node holds there.
#[derive(Clone, Debug)]
pub struct Charge {
    service_id: String,
    cpu: i64,
    mem: i64,
    generic: Vec<GenericResource>,
    ports: Vec<HostPort>,
    /// Set while the placement is the scheduler's own decision not yet seen committed: the
    /// task version the decision was made from.
    optimistic: Option<u64>,
}

/// One node as the scheduler sees it.
pub struct NodeInfo {
    /// The node object.
    pub node: Obj<Node>,
    /// Insertion order, a stable tie-breaker.
    pub ordinal: u32,
    /// Resources not reserved by its tasks.
    pub available: Capacity,
    charges: HashMap<String, Charge>,
    by_service: HashMap<String, u32>,
    /// Tasks counted against the node (ASSIGNED..RUNNING).
    pub total: u32,
    ports: HashMap<HostPort, u32>,
    failures: HashMap<(String, u64), Vec<Timestamp>>,
}

impl NodeInfo {
    /// A node with nothing placed on it yet.
    pub fn new(node: Obj<Node>, ordinal: u32) -> Self {
        let available = Capacity::of(&node.description.resources);
        NodeInfo {
            node,
            ordinal,
            available,
            charges: HashMap::new(),
            by_service: HashMap::new(),
            total: 0,
            ports: HashMap::new(),
            failures: HashMap::new(),
        }
    }

    /// Status READY and availability ACTIVE.
    pub fn ready(&self) -> bool {
        self.node.status.state == NodeState::Ready
            && self.node.spec.availability_or_default() == NodeAvailability::Active
    }

    /// Tasks of a service counted against the node.
    pub fn service_count(&self, service_id: &str) -> u32 {
        self.by_service.get(service_id).copied().unwrap_or(0)
    }

    /// Whether a host port is taken.
    pub fn port_used(&self, port: &HostPort) -> bool {
        self.ports.contains_key(port)
    }

    /// Whether the service (at this spec version) failed here often lately.
    pub fn is_failing(&self, service_id: &str, version: u64, now: Timestamp) -> bool {
        self.failures
            .get(&(service_id.to_string(), version))
            .is_some_and(|f| {
                f.iter()
                    .filter(|t| elapsed(**t, now) < FAILURE_WINDOW)
                    .count()
                    >= MAX_FAILURES
            })
    }

    /// Charges a task that holds this node (its resources, generic resources and host
    /// ports), as the scheduler's books do: for dry runs that start from the store.
    pub fn charge_task(&mut self, t: &Task, ports: Vec<HostPort>) {
        let req = Request::of(&t.spec);
        self.add(
            &t.meta.id,
            Charge {
                service_id: t.service_id.clone(),
                cpu: req.cpu,
                mem: req.mem,
                generic: t.generic_resources.clone(),
                ports,
                optimistic: None,
            },
        );
    }

    fn add(&mut self, task_id: &str, charge: Charge) {
        self.available.take(charge.cpu, charge.mem, &charge.generic);
        *self
            .by_service
            .entry(charge.service_id.clone())
            .or_default() += 1;
        self.total += 1;
        for p in &charge.ports {
            *self.ports.entry(p.clone()).or_default() += 1;
        }
        if let Some(old) = self.charges.insert(task_id.to_string(), charge) {
            // Never expected (callers remove first), but keep the books balanced.
            self.undo(&old);
        }
    }

    fn undo(&mut self, c: &Charge) {
        self.available.give_back(c.cpu, c.mem, &c.generic);
        if let Some(n) = self.by_service.get_mut(&c.service_id) {
            *n -= 1;
            if *n == 0 {
                self.by_service.remove(&c.service_id);
            }
        }
        self.total = self.total.saturating_sub(1);
        for p in &c.ports {
            if let Some(n) = self.ports.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.ports.remove(p);
                }
            }
        }
    }

    fn remove(&mut self, task_id: &str) -> Option<Charge> {
        let c = self.charges.remove(task_id)?;
        self.undo(&c);
        Some(c)
    }

    /// Recomputes what is left after the node's description changed.
    fn recompute(&mut self) {
        let mut available = Capacity::of(&self.node.description.resources);
        for c in self.charges.values() {
            available.take(c.cpu, c.mem, &c.generic);
        }
        self.available = available;
    }

    fn record_failure(&mut self, service_id: &str, version: u64, at: Timestamp) {
        let list = self
            .failures
            .entry((service_id.to_string(), version))
            .or_default();
        list.retain(|t| elapsed(*t, at) < FAILURE_WINDOW);
        list.push(at);
    }
}

/// Host-mode published ports of a service.
pub fn host_ports(service: Option<&Service>) -> Vec<HostPort> {
    let Some(spec) = service.and_then(|s| s.spec.endpoint_spec.as_ref()) else {
        return Vec::new();
    };
    spec.ports
        .iter()
        .filter(|p| p.publish_mode_or_default() == PublishMode::Host && p.published_port != 0)
        .map(|p| (p.protocol_or_default().to_string(), p.published_port))
        .collect()
}

fn counts_against_node(t: &Task) -> bool {
    !t.node_id.is_empty() && (TaskState::Assigned..=TaskState::Running).contains(&t.status.state)
}

/// Whether the scheduler should look for (or confirm) a node for the task.
pub fn wants_node(t: &Task) -> bool {
    t.status.state < TaskState::Assigned && t.desired_state <= TaskState::Complete
}

/// What a change did, for the scheduler's triggers.
#[derive(Debug, Default)]
pub struct Effect {
    /// A task of this service waits for a node.
    pub pending_service: Option<String>,
    /// Resources or ports were freed on a node.
    pub freed: bool,
}

/// The scheduler's state.
#[derive(Default)]
pub struct SchedState {
    /// Nodes by id.
    pub nodes: BTreeMap<String, NodeInfo>,
    charged: HashMap<String, String>,
    pending: HashMap<String, BTreeMap<String, Obj<Task>>>,
    inflight: HashMap<String, u64>,
    /// Services whose tasks did not fit last time: retried when capacity appears.
    pub waiting: BTreeSet<String>,
    next_ordinal: u32,
}

impl SchedState {
    /// Rebuilds everything from a snapshot.
    pub fn rebuild(&mut self, cache: &Cache) {
        *self = SchedState::default();
        for n in cache.nodes() {
            self.insert_node(n);
        }
        for t in cache.tasks() {
            self.track(&t, cache);
        }
    }

    fn insert_node(&mut self, n: Obj<Node>) {
        self.next_ordinal += 1;
        let id = n.meta.id.clone();
        self.nodes.insert(id, NodeInfo::new(n, self.next_ordinal));
    }

    /// Starts accounting for a task as it is now.
    fn track(&mut self, t: &Obj<Task>, cache: &Cache) {
        if counts_against_node(t) {
            let ports = host_ports(cache.service(&t.service_id).as_deref());
            let req = Request::of(&t.spec);
            let node_id = t.node_id.clone();
            self.charge(
                t,
                &node_id,
                req.cpu,
                req.mem,
                t.generic_resources.clone(),
                ports,
                None,
            );
        } else if wants_node(t) {
            self.pending
                .entry(t.service_id.clone())
                .or_default()
                .insert(t.meta.id.clone(), t.clone());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn charge(
        &mut self,
        t: &Task,
        node_id: &str,
        cpu: i64,
        mem: i64,
        generic: Vec<GenericResource>,
        ports: Vec<HostPort>,
        optimistic: Option<u64>,
    ) {
        let Some(node) = self.nodes.get_mut(node_id) else {
            return;
        };
        node.add(
            &t.meta.id,
            Charge {
                service_id: t.service_id.clone(),
                cpu,
                mem,
                generic,
                ports,
                optimistic,
            },
        );
        self.charged.insert(t.meta.id.clone(), node_id.to_string());
    }

    fn forget(&mut self, task_id: &str, service_id: &str) -> bool {
        let mut freed = false;
        if let Some(node_id) = self.charged.remove(task_id) {
            if let Some(n) = self.nodes.get_mut(&node_id) {
                freed = n.remove(task_id).is_some();
            }
        }
        self.inflight.remove(task_id);
        if let Some(p) = self.pending.get_mut(service_id) {
            p.remove(task_id);
            if p.is_empty() {
                self.pending.remove(service_id);
            }
        }
        freed
    }

    /// Applies a task change.
    pub fn apply_task(&mut self, event: &Event, at: Timestamp, cache: &Cache) -> Effect {
        let Object::Task(t) = event.object.as_ref() else {
            return Effect::default();
        };
        // Fast path for most task traffic: a task that stays on the node it is charged to
        // (the commit of our own placement, an agent's progress report) changes nothing here
        // but the confirmation of an optimistic placement.
        if event.action != Action::Delete && counts_against_node(t) {
            if let Some(node_id) = self.charged.get(&t.meta.id) {
                if *node_id == t.node_id {
                    if let Some(c) = self
                        .nodes
                        .get_mut(node_id)
                        .and_then(|n| n.charges.get_mut(&t.meta.id))
                    {
                        c.optimistic = None;
                    }
                    self.inflight.remove(&t.meta.id);
                    // The pending entry is the task before it was placed: left there, the
                    // next event of its service would plan it again from that old version.
                    if let Some(p) = self.pending.get_mut(&t.service_id) {
                        p.remove(&t.meta.id);
                        if p.is_empty() {
                            self.pending.remove(&t.service_id);
                        }
                    }
                    return Effect::default();
                }
            }
        }
        let was_charged = self.charged.contains_key(&t.meta.id);
        let freed = self.forget(&t.meta.id, &t.service_id);
        let mut effect = Effect::default();
        if event.action != Action::Delete {
            let obj = Obj::<Task>::new(event.object.clone()).expect("a task");
            self.track(&obj, cache);
            if wants_node(t) {
                effect.pending_service = Some(t.service_id.clone());
            }
            let prev_state = match event.prev.as_deref() {
                Some(Object::Task(p)) => p.status.state,
                _ => TaskState::New,
            };
            if prev_state <= TaskState::Running
                && matches!(t.status.state, TaskState::Failed | TaskState::Rejected)
            {
                if let Some(n) = self.nodes.get_mut(&t.node_id) {
                    n.record_failure(&t.service_id, t.spec_version.index, at);
                }
            }
        }
        effect.freed = freed && was_charged && !self.charged.contains_key(&t.meta.id);
        effect
    }

    /// Applies a node change; returns whether it may let waiting tasks run.
    pub fn apply_node(&mut self, event: &Event, cache: &Cache) -> bool {
        let Object::Node(n) = event.object.as_ref() else {
            return false;
        };
        let id = n.meta.id.clone();
        if event.action == Action::Delete {
            if let Some(info) = self.nodes.remove(&id) {
                for task_id in info.charges.keys() {
                    self.charged.remove(task_id);
                }
            }
            return false;
        }
        let obj = Obj::<Node>::new(event.object.clone()).expect("a node");
        match self.nodes.get_mut(&id) {
            Some(info) => {
                info.node = obj;
                info.recompute();
            }
            None => {
                self.insert_node(obj);
                // Tasks that named this node before it was known.
                for t in cache.tasks_on_node(&id) {
                    if counts_against_node(&t) && !self.charged.contains_key(&t.meta.id) {
                        self.track(&t, cache);
                    }
                }
            }
        }
        true
    }

    /// Services with tasks waiting for a node.
    pub fn pending_services(&self) -> Vec<String> {
        self.pending.keys().cloned().collect()
    }

    /// A service's tasks waiting for a node, minus those being written.
    pub fn pending_of(&self, service_id: &str) -> Vec<Obj<Task>> {
        self.pending
            .get(service_id)
            .map(|p| {
                p.values()
                    .filter(|t| !self.inflight.contains_key(&t.meta.id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Marks a write for `t` (made from version `v`) as in flight.
    pub fn begin_write(&mut self, t: &Task) {
        self.inflight
            .insert(t.meta.id.clone(), t.meta.version.index);
    }

    /// Records the scheduler's own placement of `t` on `node_id` before it commits.
    pub fn place(
        &mut self,
        t: &Task,
        node_id: &str,
        req: &Request,
        generic: Vec<GenericResource>,
        ports: Vec<HostPort>,
    ) {
        self.begin_write(t);
        self.charge(
            t,
            node_id,
            req.cpu,
            req.mem,
            generic,
            ports,
            Some(t.meta.version.index),
        );
    }

    /// A write made from `t` failed: undo its optimistic placement (unless newer events
    /// already replaced it) so the task can be scheduled again.
    pub fn write_failed(&mut self, t: &Task) {
        let id = &t.meta.id;
        if self.inflight.get(id) == Some(&t.meta.version.index) {
            self.inflight.remove(id);
        }
        let Some(node_id) = self.charged.get(id).cloned() else {
            return;
        };
        let Some(n) = self.nodes.get_mut(&node_id) else {
            return;
        };
        if n.charges
            .get(id)
            .is_some_and(|c| c.optimistic == Some(t.meta.version.index))
        {
            n.remove(id);
            self.charged.remove(id);
        }
    }
}
