//! The orchestrators: they turn services into tasks. Each pass over a service runs, in order,
//! the restart supervisor (replace failed tasks, start delayed ones), the scaling or placement
//! logic of its mode, and the update supervisor, then writes the changes slot by slot.

pub mod dirty;
pub mod global;
pub mod jobs;
pub mod replicated;
pub mod restart;
pub mod slots;
pub mod tasks;
pub mod timeline;
pub mod update;
pub mod write;

use shoal_store::model::{Object, Service, ServiceModeKind, TaskState, Timestamp, Version};
use shoal_store::Event;

use crate::config::ControllersConfig;
use crate::runtime::Cache;

pub use global::GlobalOrchestrator;
pub use jobs::JobsOrchestrator;
pub use replicated::ReplicatedOrchestrator;
pub use timeline::TaskTimeline;

use tasks::Wake;

/// What one orchestrator pass over a service works with.
pub struct Pass<'a> {
    /// The cache snapshot.
    pub cache: &'a Cache,
    /// Timeouts.
    pub config: &'a ControllersConfig,
    /// The leader's clock at the start of the pass.
    pub now: Timestamp,
    /// Whether the service is a job (tasks run to COMPLETE).
    pub job: bool,
    /// The job iteration new tasks belong to.
    pub job_iteration: Option<Version>,
    /// When the pass wants to run again.
    pub wake: Wake,
}

impl<'a> Pass<'a> {
    /// A pass for a service (not a job).
    pub fn new(cache: &'a Cache, config: &'a ControllersConfig) -> Self {
        Pass {
            cache,
            config,
            now: Timestamp::now(),
            job: false,
            job_iteration: None,
            wake: Wake::none(),
        }
    }
}

/// The mode of a service as stored (or as it was when deleted).
pub fn mode_of(service: &Service) -> ServiceModeKind {
    service.spec.mode_kind()
}

/// The service id and mode a change concerns (services and their tasks), using the cache for
/// tasks.
pub fn service_of_change(
    event: &Event,
    cache: &Cache,
) -> Option<(String, Option<ServiceModeKind>)> {
    match event.object.as_ref() {
        Object::Service(s) => Some((s.meta.id.clone(), Some(mode_of(s)))),
        Object::Task(t) => Some((
            t.service_id.clone(),
            cache.service(&t.service_id).map(|s| mode_of(&s)),
        )),
        _ => None,
    }
}

/// Whether a task change matters to orchestration: creation, deletion, a new desired state or
/// node, or its observed state reaching or leaving RUNNING (agent progress in between does not).
pub fn task_change_matters(event: &Event) -> bool {
    let Object::Task(t) = event.object.as_ref() else {
        return false;
    };
    let Some(Object::Task(p)) = event.prev.as_deref() else {
        return true;
    };
    if event.action == shoal_store::Action::Delete {
        return true;
    }
    let (before, now) = (p.status.state, t.status.state);
    p.desired_state != t.desired_state
        || p.node_id != t.node_id
        || (before < TaskState::Running) != (now < TaskState::Running)
        || (before <= TaskState::Running) != (now <= TaskState::Running)
}

/// Whether a node's ability to keep tasks changed (availability, liveness, removal): what
/// replicated services and jobs react to.
pub fn node_liveness_changed(event: &Event) -> bool {
    let Object::Node(n) = event.object.as_ref() else {
        return false;
    };
    let Some(Object::Node(p)) = event.prev.as_deref() else {
        return true;
    };
    event.action == shoal_store::Action::Delete
        || p.status.state != n.status.state
        || p.spec.availability != n.spec.availability
}

/// Whether a node change may change which global services it runs (liveness, availability,
/// and anything constraints look at: labels, role, description).
pub fn node_change_matters(event: &Event) -> bool {
    if node_liveness_changed(event) {
        return true;
    }
    match (event.object.as_ref(), event.prev.as_deref()) {
        (Object::Node(n), Some(Object::Node(p))) => {
            p.spec != n.spec || p.role != n.role || p.description != n.description
        }
        _ => false,
    }
}

/// Services with a task on `node_id`, filtered by mode.
pub fn services_on_node(
    cache: &Cache,
    node_id: &str,
    mode: impl Fn(ServiceModeKind) -> bool,
    keys: &mut Vec<String>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for t in cache.tasks_on_node(node_id) {
        if seen.contains(&t.service_id) {
            continue;
        }
        if let Some(s) = cache.service(&t.service_id) {
            if mode(mode_of(&s)) {
                keys.push(t.service_id.clone());
            }
        }
        seen.insert(t.service_id.clone());
    }
}

/// Ids of services of the given modes.
pub fn services_of_mode(cache: &Cache, mode: impl Fn(ServiceModeKind) -> bool) -> Vec<String> {
    cache
        .services()
        .filter(|s| mode(mode_of(s)))
        .map(|s| s.meta.id.clone())
        .collect()
}
