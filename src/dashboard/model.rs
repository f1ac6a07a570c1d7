//! What the pages show, read from one store view: plain rows the templates lay out.
//!
//! Everything here is a pure function of a [`View`] (and, for the Raft figures, the store's
//! metrics), so a page is consistent with itself: one revision, one picture.

use std::collections::{BTreeMap, HashMap};

use shoal_store::model::{
    Cluster, GitSource, Health, Node, NodeRole, Service, ServiceModeKind, Stack, Task, TaskState,
    Timestamp, STACK_NAMESPACE_LABEL,
};
use shoal_store::{Obj, Store, View};

/// The swarm's Raft group as this manager sees it.
#[derive(Clone, Debug, Default)]
pub struct RaftInfo {
    /// This member's role (`Leader`, `Follower`, `Learner`, `Candidate`).
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The last log index this member has.
    pub last_log: u64,
    /// The committed index.
    pub committed: u64,
    /// The applied index.
    pub applied: u64,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub quorum_ack_ms: Option<u64>,
    /// Voters.
    pub voters: usize,
    /// Learners (joining managers still catching up).
    pub learners: usize,
    /// Whether a leader is known.
    pub has_leader: bool,
    /// On the leader: voters it heard from recently (itself included).
    pub reachable_voters: Option<usize>,
}

impl RaftInfo {
    /// Reads the store's Raft metrics.
    pub fn of(store: &Store) -> RaftInfo {
        let m = store.raft_metrics();
        let members = store.members();
        RaftInfo {
            role: format!("{:?}", m.state),
            term: m.current_term,
            last_log: m.last_log_index.unwrap_or(0),
            committed: m.local_committed.as_ref().map(|l| l.index).unwrap_or(0),
            applied: m.last_applied.as_ref().map(|l| l.index).unwrap_or(0),
            quorum_ack_ms: m
                .last_quorum_acked
                .as_ref()
                .map(|at| openraft::Instant::elapsed(&**at).as_millis() as u64),
            voters: members.iter().filter(|m| m.voter).count(),
            learners: members.iter().filter(|m| !m.voter).count(),
            has_leader: m.current_leader.is_some(),
            // Only the leader knows who answers it (`reachable` is `None` elsewhere).
            reachable_voters: members.iter().any(|m| m.reachable.is_some()).then(|| {
                members
                    .iter()
                    .filter(|m| m.voter && (m.leader || m.reachable == Some(true)))
                    .count()
            }),
        }
    }

    /// Whether the group looks healthy from here: a leader is known and, seen from the
    /// leader, a quorum of voters answers it.
    pub fn healthy(&self) -> bool {
        let quorum = self.voters / 2 + 1;
        self.has_leader && self.reachable_voters.is_none_or(|r| r >= quorum)
    }
}

/// One manager in the Overview.
#[derive(Clone, Debug)]
pub struct ManagerRow {
    /// Host name.
    pub hostname: String,
    /// Node id.
    pub id: String,
    /// Its swarm address.
    pub addr: String,
    /// Whether it leads.
    pub leader: bool,
    /// `reachable`, `unreachable`, `unknown`.
    pub reachability: String,
}

/// One node.
#[derive(Clone, Debug)]
pub struct NodeRow {
    /// Node id.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause`, `drain`.
    pub availability: String,
    /// `ready`, `down`, ...
    pub state: String,
    /// Status message (why it is down).
    pub message: String,
    /// Its address.
    pub addr: String,
    /// For managers: leader / reachable / unreachable.
    pub manager: Option<String>,
    /// Engine version.
    pub engine: String,
    /// CPUs (nano) and memory the node has.
    pub cpus_total: i64,
    /// Memory in bytes.
    pub memory_total: i64,
    /// Reserved by the tasks placed on it.
    pub cpus_reserved: i64,
    /// Reserved memory.
    pub memory_reserved: i64,
    /// Tasks on it that are meant to run.
    pub tasks: usize,
    /// Of those, running.
    pub running: usize,
}

/// One service.
#[derive(Clone, Debug)]
pub struct ServiceRow {
    /// Service id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Its stack, if any.
    pub stack: String,
    /// `replicated`, `global`, ...
    pub mode: String,
    /// Tasks running that are meant to run.
    pub running: u64,
    /// Tasks wanted.
    pub desired: u64,
    /// Image (without its digest).
    pub image: String,
    /// Published ports (`8080:80/tcp`).
    pub ports: Vec<String>,
    /// Rolling update or rollback: state and message.
    pub update: Option<(String, String)>,
    /// Update progress: tasks of the current spec running / desired.
    pub updated: Option<(u64, u64)>,
    /// Conditions from the service's health (`Ready` true/false with reason and message).
    pub conditions: Vec<ConditionRow>,
    /// Last change.
    pub updated_at: Timestamp,
}

impl ServiceRow {
    /// Whether the service runs what it should: every wanted task running and its health (when
    /// known) Ready.
    pub fn converged(&self) -> bool {
        let ready = self
            .conditions
            .iter()
            .find(|c| c.kind == "Ready")
            .is_none_or(|c| c.status);
        self.running >= self.desired
            && ready
            && self.update.as_ref().is_none_or(|(s, _)| !in_progress(s))
    }
}

/// Whether an update state means "still moving".
pub fn in_progress(state: &str) -> bool {
    matches!(state, "updating" | "rollback_started")
}

/// One health condition.
#[derive(Clone, Debug)]
pub struct ConditionRow {
    /// `Ready`, `Progressing`, `Degraded`.
    pub kind: String,
    /// Whether it holds.
    pub status: bool,
    /// Why.
    pub reason: String,
    /// For people.
    pub message: String,
}

/// One task.
#[derive(Clone, Debug)]
pub struct TaskRow {
    /// Task id.
    pub id: String,
    /// `service.slot` (or `service.node` for global services).
    pub name: String,
    /// Slot (0 for global services).
    pub slot: u64,
    /// Node host name (empty until scheduled).
    pub node: String,
    /// Desired state.
    pub desired: TaskState,
    /// Observed state.
    pub state: TaskState,
    /// Status message.
    pub message: String,
    /// Error.
    pub err: String,
    /// When its status last changed.
    pub since: Timestamp,
    /// Image.
    pub image: String,
    /// Whether it is an older task of its slot (history).
    pub history: bool,
}

/// Counts for the Overview.
#[derive(Clone, Debug, Default)]
pub struct Overview {
    /// The swarm's id.
    pub swarm_id: String,
    /// When the swarm was created.
    pub created: Option<Timestamp>,
    /// The store revision shown.
    pub revision: u64,
    /// Raft.
    pub raft: RaftInfo,
    /// Managers, leader first.
    pub managers: Vec<ManagerRow>,
    /// Nodes by state (`ready`, `down`, ...).
    pub nodes_by_state: BTreeMap<String, usize>,
    /// Nodes by availability.
    pub nodes_by_availability: BTreeMap<String, usize>,
    /// All nodes.
    pub nodes: usize,
    /// Tasks meant to run, by observed state.
    pub tasks_by_state: BTreeMap<TaskState, usize>,
    /// Services that run what they should.
    pub converged: usize,
    /// Services that do not (yet), with why.
    pub not_converged: Vec<ServiceRow>,
    /// All services.
    pub services: usize,
    /// Stacks.
    pub stacks: usize,
    /// GitOps sources.
    pub git_sources: usize,
    /// Of those, Ready (their commit applied and healthy).
    pub git_sources_ready: usize,
}

fn hostname(n: &Node) -> String {
    if n.description.hostname.is_empty() {
        n.meta.id.clone()
    } else {
        n.description.hostname.clone()
    }
}

fn node_state(n: &Node) -> String {
    format!("{:?}", n.status.state).to_ascii_lowercase()
}

fn reachability(n: &Node) -> Option<String> {
    let m = n.manager_status.as_ref()?;
    Some(if m.leader {
        "leader".to_string()
    } else {
        format!("{:?}", m.reachability).to_ascii_lowercase()
    })
}

/// The Overview's figures.
pub fn overview(view: &View, raft: RaftInfo) -> Overview {
    let cluster = view.list::<Cluster>().next();
    let mut o = Overview {
        swarm_id: cluster
            .as_ref()
            .map(|c| c.meta.id.clone())
            .unwrap_or_default(),
        created: cluster.as_ref().map(|c| c.meta.created_at),
        revision: view.revision(),
        raft,
        ..Default::default()
    };
    for n in view.list::<Node>() {
        o.nodes += 1;
        *o.nodes_by_state.entry(node_state(&n)).or_default() += 1;
        *o.nodes_by_availability
            .entry(n.spec.availability_or_default().to_string())
            .or_default() += 1;
    }
    o.managers = managers(view);
    for t in view.tasks_with_desired_state(TaskState::Running) {
        *o.tasks_by_state.entry(t.status.state).or_default() += 1;
    }
    let services = services(view);
    o.services = services.len();
    for s in services {
        if s.converged() {
            o.converged += 1;
        } else {
            o.not_converged.push(s);
        }
    }
    o.stacks = view.list::<Stack>().count();
    for g in view.list::<GitSource>() {
        o.git_sources += 1;
        if g.status
            .conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status)
        {
            o.git_sources_ready += 1;
        }
    }
    o
}

/// The managers, leader first.
pub fn managers(view: &View) -> Vec<ManagerRow> {
    let mut rows: Vec<ManagerRow> = view
        .nodes_with_role(NodeRole::Manager)
        .map(|n| ManagerRow {
            hostname: hostname(&n),
            id: n.meta.id.clone(),
            addr: n
                .manager_status
                .as_ref()
                .map(|m| m.addr.clone())
                .unwrap_or_else(|| n.status.addr.clone()),
            leader: n.manager_status.as_ref().is_some_and(|m| m.leader),
            reachability: n
                .manager_status
                .as_ref()
                .map(|m| format!("{:?}", m.reachability).to_ascii_lowercase())
                .unwrap_or_else(|| "unknown".into()),
        })
        .collect();
    rows.sort_by(|a, b| b.leader.cmp(&a.leader).then(a.hostname.cmp(&b.hostname)));
    rows
}

/// Every node, by host name.
pub fn nodes(view: &View) -> Vec<NodeRow> {
    let mut rows: Vec<NodeRow> = view.list::<Node>().map(|n| node_row(view, &n)).collect();
    rows.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
    rows
}

fn node_row(view: &View, n: &Obj<Node>) -> NodeRow {
    let (mut tasks, mut running, mut cpus, mut mem) = (0, 0, 0i64, 0i64);
    for t in view.tasks_on_node(&n.meta.id) {
        // What the scheduler counts against the node: tasks meant to run that have not ended.
        if t.desired_state > TaskState::Running || t.status.state.is_terminal() {
            continue;
        }
        tasks += 1;
        if t.status.state == TaskState::Running {
            running += 1;
        }
        if let Some(r) = t
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.reservations.as_ref())
        {
            cpus += r.nano_cpus;
            mem += r.memory_bytes;
        }
    }
    NodeRow {
        id: n.meta.id.clone(),
        hostname: hostname(n),
        role: n.role.as_str().to_string(),
        availability: n.spec.availability_or_default().to_string(),
        state: node_state(n),
        message: n.status.message.clone(),
        addr: n.status.addr.clone(),
        manager: reachability(n),
        engine: n.description.engine.engine_version.clone(),
        cpus_total: n.description.resources.nano_cpus,
        memory_total: n.description.resources.memory_bytes,
        cpus_reserved: cpus,
        memory_reserved: mem,
        tasks,
        running,
    }
}

fn mode(s: &Service) -> String {
    s.spec.mode.kind().as_str().to_string()
}

fn image(s: &Service) -> String {
    let image = s
        .spec
        .task_template
        .container_spec
        .as_ref()
        .map(|c| c.image.as_str())
        .unwrap_or_default();
    // `docker service ls` shows the image without the digest the CLI pins.
    image.split('@').next().unwrap_or_default().to_string()
}

fn ports(s: &Service) -> Vec<String> {
    let ports = if s.endpoint.ports.is_empty() {
        s.spec
            .endpoint_spec
            .as_ref()
            .map(|e| e.ports.as_slice())
            .unwrap_or_default()
    } else {
        s.endpoint.ports.as_slice()
    };
    ports
        .iter()
        .map(|p| {
            let proto = p
                .protocol
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "tcp".into());
            if p.published_port == 0 {
                format!("{}/{proto}", p.target_port)
            } else {
                format!("{}:{}/{proto}", p.published_port, p.target_port)
            }
        })
        .collect()
}

/// Every service, by name.
pub fn services(view: &View) -> Vec<ServiceRow> {
    let mut rows: Vec<ServiceRow> = view
        .list::<Service>()
        .map(|s| service_row(view, &s))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// One service's row.
pub fn service_row(view: &View, s: &Obj<Service>) -> ServiceRow {
    let (mut running, mut meant, mut current, mut done) = (0u64, 0u64, 0u64, 0u64);
    for t in view.tasks_of_service(&s.meta.id) {
        if t.desired_state == TaskState::Running {
            meant += 1;
            if t.status.state == TaskState::Running {
                running += 1;
                if t.spec_version == s.spec_version {
                    current += 1;
                }
            }
        }
        if t.status.state == TaskState::Complete {
            done += 1;
        }
    }
    let kind = s.spec.mode.kind();
    let desired = match kind {
        ServiceModeKind::Replicated => s.spec.mode.replicas().unwrap_or(1),
        ServiceModeKind::Global => meant,
        // Jobs: completions wanted, counted as done.
        ServiceModeKind::ReplicatedJob => s
            .spec
            .mode
            .replicated_job
            .as_ref()
            .and_then(|j| j.total_completions)
            .unwrap_or(1),
        ServiceModeKind::GlobalJob => meant + done,
    };
    let running = match kind {
        ServiceModeKind::ReplicatedJob | ServiceModeKind::GlobalJob => done,
        _ => running,
    };
    let update = s.update_status.as_ref().and_then(|u| {
        u.state
            .as_ref()
            .map(|st| (st.to_string(), u.message.clone()))
    });
    let updated = update
        .as_ref()
        .filter(|(st, _)| in_progress(st))
        .map(|_| (current, desired));
    let conditions = view
        .get::<Health>(&s.meta.id)
        .map(|h| condition_rows(&h.health.conditions))
        .unwrap_or_default();
    ServiceRow {
        id: s.meta.id.clone(),
        name: s.spec.name.clone(),
        stack: s
            .spec
            .labels
            .get(STACK_NAMESPACE_LABEL)
            .cloned()
            .unwrap_or_default(),
        mode: mode(s),
        running,
        desired,
        image: image(s),
        ports: ports(s),
        update,
        updated,
        conditions,
        updated_at: s.meta.updated_at,
    }
}

/// A service's tasks as `docker service ps` orders them: by slot (or node), the current task
/// first and its history under it, newest first.
pub fn tasks(view: &View, service_id: &str) -> Vec<TaskRow> {
    let hostnames: HashMap<String, String> = view
        .list::<Node>()
        .map(|n| (n.meta.id.clone(), hostname(&n)))
        .collect();
    let mut groups: BTreeMap<(u64, String), Vec<Obj<Task>>> = BTreeMap::new();
    for t in view.tasks_of_service(service_id) {
        let key = if t.slot != 0 {
            (t.slot, String::new())
        } else {
            (0, t.node_id.clone())
        };
        groups.entry(key).or_default().push(t);
    }
    let mut rows = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|a, b| {
            b.meta
                .created_at
                .unix_nanos()
                .cmp(&a.meta.created_at.unix_nanos())
                .then(b.meta.id.cmp(&a.meta.id))
        });
        for (i, t) in group.iter().enumerate() {
            let node = hostnames.get(&t.node_id).cloned().unwrap_or_default();
            let name = if t.slot != 0 {
                format!("{}.{}", t.service_name, t.slot)
            } else {
                format!("{}.{}", t.service_name, node)
            };
            rows.push(TaskRow {
                id: t.meta.id.clone(),
                name,
                slot: t.slot,
                node,
                desired: t.desired_state,
                state: t.status.state,
                message: t.status.message.clone(),
                err: t.status.err.clone(),
                since: t.status.timestamp,
                image: t
                    .spec
                    .container_spec
                    .as_ref()
                    .map(|c| c.image.split('@').next().unwrap_or_default().to_string())
                    .unwrap_or_default(),
                history: i > 0,
            });
        }
    }
    rows
}

/// One stack with its services' health.
#[derive(Clone, Debug)]
pub struct StackRow {
    /// Name.
    pub name: String,
    /// Current revision number.
    pub revision: u64,
    /// Services it owns.
    pub services: usize,
    /// Other objects it owns (networks, secrets, configs).
    pub others: usize,
    /// Its conditions.
    pub conditions: Vec<ConditionRow>,
}

/// Every stack, by name.
pub fn stacks(view: &View) -> Vec<StackRow> {
    let mut rows: Vec<StackRow> = view
        .list::<Stack>()
        .map(|s| StackRow {
            name: s.spec.name.clone(),
            revision: s.revision,
            services: s
                .inventory
                .iter()
                .filter(|i| i.kind == shoal_store::model::Kind::Service)
                .count(),
            others: s
                .inventory
                .iter()
                .filter(|i| i.kind != shoal_store::model::Kind::Service)
                .count(),
            conditions: condition_rows(&s.status.conditions),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Every GitOps source, by name.
pub fn git_sources(view: &View) -> Vec<Obj<GitSource>> {
    let mut rows: Vec<Obj<GitSource>> = view.list::<GitSource>().collect();
    rows.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    rows
}

/// Conditions as rows (for the templates' chips).
pub fn condition_rows(cs: &[shoal_store::model::Condition]) -> Vec<ConditionRow> {
    cs.iter()
        .map(|c| ConditionRow {
            kind: c.kind.clone(),
            status: c.status,
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect()
}

/// Human-readable size of a byte count (`1.5 GiB`).
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// CPUs from nano-CPUs (`2`, `0.25`).
pub fn cpus(nano: i64) -> String {
    let v = nano as f64 / 1e9;
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// How long ago `t` was (`3s`, `5m`, `2h`, `4d`), as `docker service ps` says it.
pub fn age(t: &Timestamp, now: &Timestamp) -> String {
    if t.is_zero() {
        return "-".into();
    }
    let secs = ((now.unix_nanos() - t.unix_nanos()) / 1_000_000_000).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
