//! The health controller (key: service id): every service's health on the server.
//!
//! For each service, how many tasks run its current spec against how many are wanted, and
//! whether a rolling update is under way, paused or rolled back, as Kubernetes-style conditions
//! (Ready / Progressing / Degraded with a reason) with the service version they describe
//! (`observed_generation`). Written to a [`Health`] that shares the service's id, only
//! when something changed, and removed with the service.

use std::collections::HashSet;

use shoal_store::model::{
    Condition, Health, Kind, Object, Service, ServiceHealth, Task, TaskState, Timestamp,
    UpdateState, STACK_NAMESPACE_LABEL,
};
use shoal_store::{Obj, Op};

use crate::orchestrator::write;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

/// The health controller.
#[derive(Default)]
pub struct HealthController;

impl HealthController {
    /// A health controller.
    pub fn new() -> Self {
        HealthController
    }
}

impl Reconciler for HealthController {
    type Key = String;

    fn name(&self) -> &'static str {
        "health"
    }

    fn observe(&self, change: &Change<'_>, _cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        match event.object.as_ref() {
            Object::Service(s) => keys.push(s.meta.id.clone()),
            Object::Task(t) => keys.push(t.service_id.clone()),
            // A status written or removed by someone else is put right.
            Object::Health(s) => keys.push(s.meta.id.clone()),
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        let mut keys: Vec<String> = cache.services().map(|s| s.meta.id.clone()).collect();
        keys.extend(cache.list::<Health>().map(|s| s.meta.id.clone()));
        keys.sort();
        keys.dedup();
        keys
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let old = cache.get::<Health>(key);
        let op = match (cache.service(key), old) {
            (None, None) => return Ok(Action::AwaitChange),
            (None, Some(old)) => Op::Delete {
                kind: Kind::Health,
                id: old.meta.id.clone(),
                expected_version: Some(old.meta.version.index),
            },
            (Some(service), old) => {
                let mut h = health(cache, &service, Timestamp::now());
                if let Some(old) = &old {
                    carry_transitions(&mut h.conditions, &old.health.conditions);
                }
                let status = Health {
                    meta: old.as_ref().map(|o| o.meta.clone()).unwrap_or_default(),
                    service_name: service.spec.name.clone(),
                    stack: service
                        .spec
                        .labels
                        .get(STACK_NAMESPACE_LABEL)
                        .cloned()
                        .unwrap_or_default(),
                    health: h,
                };
                match old {
                    Some(old) if *old == status => return Ok(Action::AwaitChange),
                    Some(old) => Op::Update {
                        object: Object::Health(status),
                        expected_version: old.meta.version.index,
                    },
                    None => {
                        let mut status = status;
                        status.meta.id = service.meta.id.clone();
                        Op::Create(Object::Health(status))
                    }
                }
            }
        };
        write::commit(ctx, vec![vec![op]]).await?;
        Ok(Action::AwaitChange)
    }
}

pub(crate) fn condition(
    kind: &str,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    Condition {
        kind: kind.into(),
        status,
        reason: reason.into(),
        message,
        last_transition: now,
    }
}

/// Keeps the previous transition time of conditions whose status did not change.
pub(crate) fn carry_transitions(new: &mut [Condition], old: &[Condition]) {
    for c in new {
        if let Some(o) = old
            .iter()
            .find(|o| o.kind == c.kind && o.status == c.status)
        {
            c.last_transition = o.last_transition;
        }
    }
}

/// A service's health now.
pub(crate) fn health(cache: &Cache, service: &Service, now: Timestamp) -> ServiceHealth {
    let tasks: Vec<Obj<Task>> = cache
        .tasks_of_service(&service.meta.id)
        .filter(|t| t.desired_state <= TaskState::Running)
        .collect();
    let current = |t: &Task| t.spec == service.spec.task_template;
    let running = tasks
        .iter()
        .filter(|t| current(t) && t.status.state == TaskState::Running)
        .count() as u64;
    let desired = if service.spec.is_global() {
        tasks
            .iter()
            .map(|t| t.node_id.clone())
            .collect::<HashSet<_>>()
            .len() as u64
    } else if service.spec.is_job() {
        running
    } else {
        service.spec.replicas().unwrap_or(1)
    };
    let update = service.update_status.as_ref().and_then(|u| u.state);
    let update_message = service
        .update_status
        .as_ref()
        .map(|u| u.message.clone())
        .unwrap_or_default();
    let failing = tasks
        .iter()
        .filter(|t| t.status.state > TaskState::Running && current(t))
        .map(|t| {
            if t.status.err.is_empty() {
                t.status.message.clone()
            } else {
                t.status.err.clone()
            }
        })
        .next();
    let ready = running >= desired
        && !matches!(
            update,
            Some(UpdateState::Updating) | Some(UpdateState::RollbackStarted)
        );
    let (degraded, reason, message) = match (&update, &failing) {
        (Some(UpdateState::Paused), _) => (true, "UpdatePaused", update_message.clone()),
        (Some(UpdateState::RollbackPaused), _) => (true, "RollbackPaused", update_message.clone()),
        (Some(UpdateState::RollbackCompleted), _) => (true, "RolledBack", update_message.clone()),
        (_, Some(err)) if !ready => (true, "TaskFailed", err.clone()),
        _ => (false, "", String::new()),
    };
    let progressing = matches!(
        update,
        Some(UpdateState::Updating) | Some(UpdateState::RollbackStarted)
    ) || (!ready && !degraded);
    let conditions = vec![
        condition(
            "Ready",
            ready,
            if ready {
                "TasksRunning"
            } else {
                "TasksNotRunning"
            },
            format!("{running} of {desired} tasks running the current spec"),
            now,
        ),
        condition(
            "Progressing",
            progressing,
            if progressing {
                "RolloutInProgress"
            } else {
                "RolloutComplete"
            },
            match &update {
                Some(UpdateState::Updating) => "rolling update in progress".into(),
                Some(UpdateState::RollbackStarted) => "rollback in progress".into(),
                _ if progressing => "tasks are starting".into(),
                _ => String::new(),
            },
            now,
        ),
        condition("Degraded", degraded, reason, message, now),
    ];
    ServiceHealth {
        observed_generation: service.meta.version.index,
        desired,
        running,
        conditions,
    }
}

/// The condition of type `kind`, if it holds.
pub(crate) fn holds<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.kind == kind && c.status)
}
