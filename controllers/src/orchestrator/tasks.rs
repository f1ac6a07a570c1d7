//! Facts about tasks and nodes that every orchestrator step relies on, and the task factory.

use std::time::{Duration, Instant};

use shoal_store::model::{
    new_id, Labels, Meta, NodeAvailability, NodeState, PublishMode, Service, Task, TaskState,
    TaskStatus, Timestamp,
};

use crate::runtime::{Action, Cache};

/// How a task's node stands, as far as orchestration is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeCondition {
    /// The task is not placed yet.
    Unassigned,
    /// Takes new tasks.
    Active,
    /// Keeps its tasks, takes no new ones.
    Paused,
    /// Its tasks must move.
    Drained,
    /// Missed its heartbeats: its tasks are replaced elsewhere.
    Down,
    /// Deleted.
    Missing,
}

impl NodeCondition {
    /// Of the node with this id (`""`: unassigned).
    pub fn of(cache: &Cache, node_id: &str) -> NodeCondition {
        if node_id.is_empty() {
            return NodeCondition::Unassigned;
        }
        let Some(node) = cache.node(node_id) else {
            return NodeCondition::Missing;
        };
        if node.status.state == NodeState::Down {
            return NodeCondition::Down;
        }
        match node.spec.availability_or_default() {
            NodeAvailability::Drain => NodeCondition::Drained,
            NodeAvailability::Pause => NodeCondition::Paused,
            _ => NodeCondition::Active,
        }
    }

    /// Whether tasks on such a node must be replaced (or, for global services, stopped).
    pub fn evicts(&self) -> bool {
        matches!(
            self,
            NodeCondition::Drained | NodeCondition::Down | NodeCondition::Missing
        )
    }
}

/// Whether the task is still meant to make progress: desired at most RUNNING (services) or,
/// for jobs, desired at most COMPLETE and not complete yet.
pub fn is_live(t: &Task, job: bool) -> bool {
    if job {
        t.desired_state <= TaskState::Complete && t.status.state != TaskState::Complete
    } else {
        t.desired_state <= TaskState::Running
    }
}

/// Whether a task no longer runs (or never ran): observed past RUNNING, or never placed.
pub fn has_stopped(t: &Task) -> bool {
    t.status.state > TaskState::Running || t.status.state < TaskState::Assigned
}

/// Whether a task ended on its own (failure, exit, rejection, lost node), as opposed to being
/// stopped on request (observed SHUTDOWN).
pub fn ended_on_its_own(t: &Task) -> bool {
    t.status.state > TaskState::Running && t.status.state != TaskState::Shutdown
}

/// Order of tasks within a slot: by creation.
pub fn creation_order(a: &Task, b: &Task) -> std::cmp::Ordering {
    (a.meta.created_at, a.meta.version, &a.meta.id).cmp(&(
        b.meta.created_at,
        b.meta.version,
        &b.meta.id,
    ))
}

/// A new task of `service`, in `slot` (replicated) or on `node_id` (global), observed NEW.
pub fn new_task(
    service: &Service,
    slot: u64,
    node_id: &str,
    desired: TaskState,
    now: Timestamp,
) -> Task {
    Task {
        meta: Meta::with_id(new_id()),
        name: String::new(),
        labels: Labels::new(),
        spec: service.spec.task_template.clone(),
        service_name: service.spec.name.clone(),
        service_id: service.meta.id.clone(),
        slot,
        node_id: node_id.to_string(),
        status: TaskStatus::new(TaskState::New, now, "created"),
        desired_state: desired,
        networks_attachments: Vec::new(),
        generic_resources: Vec::new(),
        job_iteration: None,
        volumes: None,
        spec_version: service.spec_version,
        host_ports: service
            .endpoint
            .ports
            .iter()
            .filter(|p| p.publish_mode_or_default() == PublishMode::Host)
            .cloned()
            .collect(),
    }
}

/// `t + d`.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_unix_nanos(t.unix_nanos().saturating_add(nanos))
}

/// Whether a wait of `wait` that ends at `due` (a stored timestamp plus `wait`) is over, as
/// this manager's clock sees it. A timestamp stored by a manager or agent whose wall clock runs
/// ahead of this one's puts `due` more than `wait` from now: such a wait is over at once, so a
/// skewed clock can shorten a delay but never hold a slot for the length of the skew.
pub fn is_due(now: Timestamp, due: Timestamp, wait: Duration) -> bool {
    now >= due || due > after(now, wait)
}

/// `later - earlier` (zero if negative).
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    let nanos = later.unix_nanos().saturating_sub(earlier.unix_nanos());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// The earliest time a reconcile wants to run again.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wake(Option<Timestamp>);

impl Wake {
    /// Nothing scheduled.
    pub fn none() -> Self {
        Wake(None)
    }

    /// Asks to run again at `at` (the earliest request wins).
    pub fn at(&mut self, at: Timestamp) {
        self.0 = Some(self.0.map_or(at, |w| w.min(at)));
    }

    /// Asks to run again right away.
    pub fn now(&mut self, now: Timestamp) {
        self.at(now)
    }

    /// The requested time, if any.
    pub fn get(&self) -> Option<Timestamp> {
        self.0
    }

    /// As a reconcile result, relative to `now`.
    pub fn action(&self, now: Timestamp) -> Action {
        match self.0 {
            // A few milliseconds of slack so a timer does not fire just before its deadline.
            Some(at) => Action::at_earliest(Some(
                Instant::now() + elapsed(now, at) + Duration::from_millis(5),
            )),
            None => Action::AwaitChange,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_from_a_clock_ahead_of_ours_is_over_at_once() {
        let now = Timestamp::from_unix_nanos(1_000_000_000_000);
        let wait = Duration::from_secs(5);
        // Our own timestamp, 2 s ago: 3 s left.
        let due = after(Timestamp::from_unix_nanos(998_000_000_000), wait);
        assert!(!is_due(now, due, wait));
        // Written by a clock 4 minutes ahead: it would wait 4 minutes more; it is over.
        let due = after(Timestamp::from_unix_nanos(1_240_000_000_000), wait);
        assert!(is_due(now, due, wait));
        // Written by a clock behind ours: long past.
        let due = after(Timestamp::from_unix_nanos(700_000_000_000), wait);
        assert!(is_due(now, due, wait));
    }

    #[test]
    fn timestamps_add_and_subtract() {
        let t = Timestamp::from_unix_nanos(1_000_000_000);
        let u = after(t, Duration::from_millis(1500));
        assert_eq!(u.unix_nanos(), 2_500_000_000);
        assert_eq!(elapsed(t, u), Duration::from_millis(1500));
        assert_eq!(elapsed(u, t), Duration::ZERO);
    }

    #[test]
    fn liveness_differs_for_jobs() {
        let mut t = Task {
            desired_state: TaskState::Complete,
            ..Default::default()
        };
        assert!(is_live(&t, true));
        assert!(!is_live(&t, false));
        t.status.state = TaskState::Complete;
        assert!(!is_live(&t, true));
        t.desired_state = TaskState::Running;
        t.status.state = TaskState::Failed;
        assert!(is_live(&t, false));
        assert!(ended_on_its_own(&t) && has_stopped(&t));
        t.status.state = TaskState::Shutdown;
        assert!(!ended_on_its_own(&t));
    }
}
