//! Store objects as the Docker API shows them: internal bookkeeping stripped, `ManagerStatus`
//! computed live from the Raft membership, `ServiceStatus` counted from the tasks, and the
//! defaults `insertDefaults=true` adds.

use serde_json::Value;
use shoal_store::model::{
    ContainerSpec, DNSConfig, ManagerStatus, Node, NodeRole, NodeState, Placement, Reachability,
    ResourceRequirements, RestartPolicy, Service, ServiceModeKind, ServiceSpec, ServiceStatus,
    Task, TaskState, UpdateConfig,
};
use shoal_store::{Member, View};

use super::version::ApiVersion;

/// Serializes `value` and removes the top-level `keys` (fields marked internal in the model).
fn without(value: &impl serde::Serialize, keys: &[&str]) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    v
}

/// A service (never with `ServiceStatus`, as `GET /services/{id}`).
pub fn service(s: &Service) -> Value {
    without(
        s,
        &[
            "SpecVersion",
            "PreviousSpecVersion",
            "SpecRevision",
            "ServiceStatus",
        ],
    )
}

/// A service with its task counts (`GET /services?status=true`).
pub fn service_with_status(s: &Service, status: ServiceStatus) -> Value {
    let mut v = service(s);
    if let Some(o) = v.as_object_mut() {
        let status = serde_json::to_value(status).unwrap_or(Value::Null);
        // Go's field order: ServiceStatus comes after UpdateStatus, before JobStatus.
        let job = o.remove("JobStatus");
        o.insert("ServiceStatus".into(), status);
        if let Some(job) = job {
            o.insert("JobStatus".into(), job);
        }
    }
    v
}

/// A task as a client of API `version` knows it (`Volumes` came with cluster volumes in 1.42).
pub fn task(t: &Task, version: ApiVersion) -> Value {
    if version.at_least(1, 42) {
        without(t, &["SpecVersion", "ServiceName", "HostPorts"])
    } else {
        without(t, &["SpecVersion", "ServiceName", "HostPorts", "Volumes"])
    }
}

/// A node, with `ManagerStatus` from the store's current Raft membership.
pub fn node(n: &Node, members: &[Member]) -> Value {
    let mut n = n.clone();
    n.manager_status = manager_status(&n, members);
    without(&n, &["Role", "RaftID", "RaftMembership"])
}

/// Leader, reachability and address of a manager, live from the Raft membership; what the node
/// object recorded when the node is not (yet) a member; `None` for workers.
pub fn manager_status(n: &Node, members: &[Member]) -> Option<ManagerStatus> {
    let member = members.iter().find(|m| m.is_of(n));
    let Some(m) = member else {
        return (n.role == NodeRole::Manager).then(|| n.manager_status.clone().unwrap_or_default());
    };
    let recorded = n
        .manager_status
        .as_ref()
        .map(|s| s.reachability)
        .unwrap_or_default();
    let reachability = match m.reachable {
        Some(true) => Reachability::Reachable,
        Some(false) => Reachability::Unreachable,
        // Only the leader tracks its peers; elsewhere the leader itself is evidently reachable
        // and a voter of a swarm with a leader is taken as reachable unless recorded otherwise.
        None if m.leader => Reachability::Reachable,
        None if recorded != Reachability::Unknown => recorded,
        None if m.voter && members.iter().any(|x| x.leader) => Reachability::Reachable,
        None => Reachability::Unknown,
    };
    Some(ManagerStatus {
        leader: m.leader,
        reachability,
        addr: if m.node.addr.is_empty() {
            n.manager_status
                .as_ref()
                .map(|s| s.addr.clone())
                .unwrap_or_default()
        } else {
            m.node.addr.clone()
        },
    })
}

/// Task counts of a service, as dockerd computes them for `status=true`: tasks running on nodes
/// that are not down, desired tasks (replicas, or live tasks for global services), and
/// completed tasks (jobs).
pub fn service_status(view: &View, s: &Service) -> ServiceStatus {
    let node_up = |id: &str| {
        view.get::<Node>(id)
            .is_some_and(|n| n.status.state != NodeState::Down)
    };
    let mut status = ServiceStatus::default();
    let mut live = 0u64;
    for t in view.tasks_of_service(&s.meta.id) {
        if t.status.state == TaskState::Running && node_up(&t.node_id) {
            status.running_tasks += 1;
        }
        if t.status.state == TaskState::Complete {
            status.completed_tasks += 1;
        }
        let wanted = if s.spec.is_job() {
            TaskState::Complete
        } else {
            TaskState::Running
        };
        if t.desired_state == wanted && t.status.state != TaskState::Complete {
            live += 1;
        }
    }
    status.desired_tasks = match s.spec.mode_kind() {
        ServiceModeKind::Replicated => s.spec.replicas().unwrap_or(1),
        ServiceModeKind::ReplicatedJob => {
            let job = s.spec.mode.replicated_job.clone().unwrap_or_default();
            let remaining = job
                .total_completions_or_default()
                .saturating_sub(status.completed_tasks);
            remaining.min(job.max_concurrent_or_default())
        }
        ServiceModeKind::Global | ServiceModeKind::GlobalJob => live,
    };
    status
}

/// What `insertDefaults=true` adds (swarmkit's `defaults.InterpolateService`): missing
/// structures whole, and inside a restart policy or update/rollback config the client sent only
/// the restart delay (5 s) and the monitor period (5 s; swarmkit stores 0 as unset).
pub fn insert_defaults(spec: &mut ServiceSpec) {
    let t = &mut spec.task_template;
    if let Some(c) = t.container_spec.as_mut() {
        if c.stop_grace_period.is_none() {
            c.stop_grace_period = Some(ContainerSpec::DEFAULT_STOP_GRACE_PERIOD);
        }
        if c.dns_config.is_none() {
            c.dns_config = Some(DNSConfig::default());
        }
    }
    if t.resources.is_none() {
        t.resources = Some(ResourceRequirements::default());
    }
    match t.restart_policy.as_mut() {
        None => t.restart_policy = Some(RestartPolicy::swarm_default()),
        Some(rp) => {
            rp.delay.get_or_insert(RestartPolicy::DEFAULT_DELAY);
        }
    }
    if t.placement.is_none() {
        t.placement = Some(Placement::default());
    }
    for cfg in [&mut spec.update_config, &mut spec.rollback_config] {
        match cfg.as_mut() {
            None => *cfg = Some(UpdateConfig::swarm_default()),
            Some(c) if c.monitor == 0 => c.monitor = UpdateConfig::DEFAULT_MONITOR,
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::Meta;
    use shoal_store::PeerNode;

    fn member(raft_id: u64, node_id: &str, leader: bool, reachable: Option<bool>) -> Member {
        Member {
            raft_id,
            node: PeerNode {
                addr: format!("127.0.0.1:{}", 2000 + raft_id),
                node_id: node_id.into(),
            },
            voter: true,
            reachable,
            leader,
        }
    }

    #[test]
    fn manager_status_comes_from_the_membership() {
        let mut n = Node {
            meta: Meta::with_id("a"),
            role: NodeRole::Manager,
            raft_id: 1,
            ..Default::default()
        };
        let members = [
            member(1, "a", true, Some(true)),
            member(2, "b", false, None),
        ];
        let s = manager_status(&n, &members).unwrap();
        assert!(s.leader);
        assert_eq!(s.reachability, Reachability::Reachable);
        assert_eq!(s.addr, "127.0.0.1:2001");
        n.meta.id = "b".into();
        n.raft_id = 2;
        let s = manager_status(&n, &members).unwrap();
        assert!(!s.leader);
        assert_eq!(s.reachability, Reachability::Reachable);
        let worker = Node::default();
        assert!(manager_status(&worker, &members).is_none());
        let rendered = node(&worker, &members);
        assert!(rendered.get("Role").is_none() && rendered.get("ManagerStatus").is_none());
    }

    #[test]
    fn insert_defaults_fills_only_missing_structures() {
        let mut spec: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},"RestartPolicy":{"Condition":"none"}}}"#,
        )
        .unwrap();
        insert_defaults(&mut spec);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
            10_000_000_000i64
        );
        assert_eq!(
            v["TaskTemplate"]["RestartPolicy"],
            serde_json::json!({"Condition":"none","Delay":5_000_000_000i64})
        );
        assert_eq!(v["UpdateConfig"]["Monitor"], 5_000_000_000i64);
        assert_eq!(v["RollbackConfig"]["Order"], "stop-first");
        assert!(v.get("EndpointSpec").is_none());
    }

    #[test]
    fn insert_defaults_completes_what_docker_stack_deploy_sends() {
        // restart_policy: {condition: on-failure}, update_config: {parallelism: 2}, as stored
        // after the API's normalisation; `docker service inspect` then shows dockerd's values.
        let mut spec: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x"},
                "RestartPolicy":{"Condition":"on-failure","MaxAttempts":0}},
                "UpdateConfig":{"Parallelism":2,"FailureAction":"pause","MaxFailureRatio":0,"Order":"stop-first"}}"#,
        )
        .unwrap();
        insert_defaults(&mut spec);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v["TaskTemplate"]["RestartPolicy"],
            serde_json::json!({"Condition":"on-failure","Delay":5_000_000_000i64,"MaxAttempts":0})
        );
        assert_eq!(
            v["UpdateConfig"],
            serde_json::json!({"Parallelism":2,"FailureAction":"pause","Monitor":5_000_000_000i64,"MaxFailureRatio":0,"Order":"stop-first"})
        );
        assert_eq!(
            v["RollbackConfig"],
            serde_json::json!({"Parallelism":1,"FailureAction":"pause","Monitor":5_000_000_000i64,"MaxFailureRatio":0,"Order":"stop-first"})
        );
    }
}
