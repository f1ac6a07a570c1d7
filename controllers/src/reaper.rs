//! The task reaper: keeps task history bounded (key: service id).
//!
//! - Per slot (per node for global services) at most `TaskHistoryRetentionLimit` tasks are kept
//!   (the swarm's `Orchestration` setting, default 5; negative keeps everything); when the
//!   restart policy has `MaxAttempts`, `MaxAttempts + 1` are kept so restarts can be counted.
//!   The oldest stopped (or never started) tasks go first; running ones are never deleted.
//! - Tasks with desired state REMOVE (scale-down, deleted services) are deleted as soon as they
//!   are not running.
//! - A deleted service's tasks get desired state REMOVE (running ones are stopped by their
//!   agent first) and are deleted once stopped.

use std::collections::{BTreeMap, BTreeSet};

use shoal_store::model::{Kind, Object, SwarmSpec, Task, TaskState};
use shoal_store::{Obj, Op};

use crate::orchestrator::tasks::{creation_order, has_stopped, NodeCondition};
use crate::orchestrator::{task_change_matters, write};
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

/// The task reaper.
#[derive(Default)]
pub struct TaskReaper;

impl TaskReaper {
    /// A task reaper.
    pub fn new() -> Self {
        TaskReaper
    }
}

/// Whether a task is not running and can go: stopped, never started, or its node is gone.
fn removable(cache: &Cache, t: &Task) -> bool {
    has_stopped(t) || NodeCondition::of(cache, &t.node_id) == NodeCondition::Missing
}

/// Whether a history task may be deleted to make room.
fn expendable(cache: &Cache, t: &Task) -> bool {
    t.status.state > TaskState::Running
        || (t.desired_state > TaskState::Running
            && (t.status.state < TaskState::Assigned
                || NodeCondition::of(cache, &t.node_id) == NodeCondition::Missing))
}

fn delete(t: &Task) -> Op {
    Op::Delete {
        kind: Kind::Task,
        id: t.meta.id.clone(),
        expected_version: Some(t.meta.version.index),
    }
}

fn mark_remove(t: &Obj<Task>) -> Op {
    let mut u = t.to_owned_value();
    u.desired_state = TaskState::Remove;
    Op::Update {
        object: Object::Task(u),
        expected_version: t.meta.version.index,
    }
}

impl Reconciler for TaskReaper {
    type Key = String;

    fn name(&self) -> &'static str {
        "task-reaper"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        match event.object.as_ref() {
            Object::Task(t) if task_change_matters(event) => keys.push(t.service_id.clone()),
            Object::Service(s) => keys.push(s.meta.id.clone()),
            Object::Cluster(_) => keys.extend(self.all_keys(cache)),
            Object::Node(n) if event.action == shoal_store::Action::Delete => {
                let services: BTreeSet<String> = cache
                    .tasks_on_node(&n.meta.id)
                    .map(|t| t.service_id.clone())
                    .collect();
                keys.extend(services);
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        // Services, and services that are gone but left tasks behind.
        let mut ids: BTreeSet<String> = cache.services().map(|s| s.meta.id.clone()).collect();
        ids.extend(cache.tasks().map(|t| t.service_id.clone()));
        ids.into_iter().collect()
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let tasks: Vec<Obj<Task>> = cache.tasks_of_service(key).collect();
        if tasks.is_empty() {
            return Ok(Action::AwaitChange);
        }
        let mut ops = Vec::new();
        let Some(service) = cache.service(key) else {
            for t in &tasks {
                if removable(cache, t) {
                    ops.push(delete(t));
                } else if t.desired_state < TaskState::Remove {
                    ops.push(mark_remove(t));
                }
            }
            write::commit(ctx, ops.into_iter().map(|o| vec![o]).collect()).await?;
            return Ok(Action::AwaitChange);
        };
        let mut kept: BTreeMap<(u64, &str), Vec<&Obj<Task>>> = BTreeMap::new();
        let global = service.spec.is_global();
        for t in &tasks {
            if t.desired_state >= TaskState::Remove {
                if removable(cache, t) {
                    ops.push(delete(t));
                }
                continue;
            }
            let slot = if global {
                (0, t.node_id.as_str())
            } else {
                (t.slot, "")
            };
            kept.entry(slot).or_default().push(t);
        }
        let limit = cache
            .cluster()
            .map(|c| c.spec.task_history_retention_limit_or_default())
            .unwrap_or(SwarmSpec::DEFAULT_TASK_HISTORY_RETENTION_LIMIT);
        let max_attempts = service
            .spec
            .task_template
            .restart_policy_or_default()
            .max_attempts_or_default();
        let history = if max_attempts > 0 {
            i64::try_from(max_attempts)
                .unwrap_or(i64::MAX)
                .saturating_add(1)
        } else {
            limit
        };
        if history >= 0 {
            let history = usize::try_from(history).unwrap_or(usize::MAX);
            for (_, mut slot) in kept {
                if slot.len() <= history {
                    continue;
                }
                slot.sort_by(|a, b| creation_order(a, b));
                let mut excess = slot.len() - history;
                for t in slot {
                    if excess == 0 {
                        break;
                    }
                    if expendable(cache, t) {
                        ops.push(delete(t));
                        excess -= 1;
                    }
                }
            }
        }
        write::commit(ctx, ops.into_iter().map(|o| vec![o]).collect()).await?;
        Ok(Action::AwaitChange)
    }
}
