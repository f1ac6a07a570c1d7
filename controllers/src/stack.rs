//! The stack controller (key: stack id): health and clean-up of stacks that `shoal apply` made.
//!
//! - **Health**: each service of the stack's inventory with its health (computed as the
//!   [`health`](crate::health) controller does, so both agree at every revision); the stack's
//!   own conditions sum them up. Written to the stack's status with the
//!   revision they describe (`observed_revision`) and each service's version
//!   (`observed_generation`).
//! - **Result** of the current revision, once the rollout has ended: `Succeeded` (every service
//!   ready on its new spec), `Failed` (an update paused on failures, with the reason) or
//!   `RolledBack` (the update supervisor rolled a service back). `shoal apply --wait` ends on it.
//! - **Retired secret and config revisions** are removed once no live task uses them and no
//!   retained stack revision has their content.

use std::collections::{BTreeMap, HashSet};

use shoal_store::model::{
    Config, Kind, Object, Secret, Stack, StackRevision, StackStatus, TaskState, Timestamp,
    STACK_NAMESPACE_LABEL,
};
use shoal_store::{Obj, Op};

use crate::health::{carry_transitions, condition, health, holds};
use crate::orchestrator::write;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

/// The stack controller.
#[derive(Default)]
pub struct StackController;

impl StackController {
    /// A stack controller.
    pub fn new() -> Self {
        StackController
    }
}

fn stack_of_service(cache: &Cache, service_id: &str) -> Option<String> {
    let s = cache.service(service_id)?;
    s.spec.labels.get(STACK_NAMESPACE_LABEL).cloned()
}

fn stack_id_by_name(cache: &Cache, name: &str) -> Option<String> {
    cache
        .list::<Stack>()
        .find(|s| s.spec.name == name)
        .map(|s| s.meta.id.clone())
}

impl Reconciler for StackController {
    type Key = String;

    fn name(&self) -> &'static str {
        "stack"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        let stack_name = match event.object.as_ref() {
            Object::Stack(s) => {
                keys.push(s.meta.id.clone());
                return;
            }
            Object::StackRevision(r) => {
                keys.push(r.stack_id.clone());
                return;
            }
            Object::Service(s) => s.spec.labels.get(STACK_NAMESPACE_LABEL).cloned(),
            Object::Task(t) => stack_of_service(cache, &t.service_id),
            _ => None,
        };
        if let Some(id) = stack_name.and_then(|n| stack_id_by_name(cache, &n)) {
            keys.push(id);
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.list::<Stack>().map(|s| s.meta.id.clone()).collect()
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let Some(stack) = cache.get::<Stack>(key) else {
            return Ok(Action::AwaitChange);
        };
        let now = Timestamp::now();
        let status = status_of(cache, &stack, now);
        let mut ops = Vec::new();
        if status != stack.status {
            let mut updated: Stack = stack.to_owned_value();
            updated.status = status.clone();
            ops.push(Op::Update {
                object: Object::Stack(updated),
                expected_version: stack.meta.version.index,
            });
        }
        if let Some(op) = revision_result(cache, &stack, &status) {
            ops.push(op);
        }
        let unused = unused_retired(cache, &stack);
        if !unused.is_empty() && ops.is_empty() {
            // One write at a time on the stack (its version guards the next one).
            let mut updated: Stack = stack.to_owned_value();
            updated.retired.retain(|i| !unused.contains(&i.id));
            ops.push(Op::Update {
                object: Object::Stack(updated),
                expected_version: stack.meta.version.index,
            });
            for item in stack.retired.iter().filter(|i| unused.contains(&i.id)) {
                ops.push(Op::Delete {
                    kind: item.kind,
                    id: item.id.clone(),
                    expected_version: None,
                });
            }
        }
        write::commit(ctx, vec![ops]).await?;
        Ok(Action::AwaitChange)
    }
}

/// The stack's status now.
fn status_of(cache: &Cache, stack: &Stack, now: Timestamp) -> StackStatus {
    let mut services = BTreeMap::new();
    for item in stack.inventory.iter().filter(|i| i.kind == Kind::Service) {
        let Some(service) = cache.service(&item.id) else {
            continue;
        };
        let mut h = health(cache, &service, now);
        if let Some(old) = stack.status.services.get(&item.name) {
            carry_transitions(&mut h.conditions, &old.conditions);
        }
        services.insert(item.name.clone(), h);
    }
    let not_ready: Vec<&String> = services
        .iter()
        .filter(|(_, h)| holds(&h.conditions, "Ready").is_none())
        .map(|(n, _)| n)
        .collect();
    let degraded: Vec<String> = services
        .iter()
        .filter_map(|(n, h)| {
            holds(&h.conditions, "Degraded").map(|c| format!("{n}: {} {}", c.reason, c.message))
        })
        .collect();
    let progressing = services
        .values()
        .any(|h| holds(&h.conditions, "Progressing").is_some());
    let mut conditions = vec![
        condition(
            "Ready",
            not_ready.is_empty(),
            if not_ready.is_empty() {
                "AllServicesReady"
            } else {
                "ServicesNotReady"
            },
            if not_ready.is_empty() {
                format!("{} services ready", services.len())
            } else {
                format!(
                    "not ready: {}",
                    not_ready
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
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
            String::new(),
            now,
        ),
        condition(
            "Degraded",
            !degraded.is_empty(),
            if degraded.is_empty() {
                ""
            } else {
                "ServiceDegraded"
            },
            degraded.join("; "),
            now,
        ),
    ];
    carry_transitions(&mut conditions, &stack.status.conditions);
    StackStatus {
        observed_revision: stack.revision,
        conditions,
        services,
    }
}

/// The current revision's result, once its rollout has ended and it is not recorded yet.
fn revision_result(cache: &Cache, stack: &Stack, status: &StackStatus) -> Option<Op> {
    let revision = cache
        .list::<StackRevision>()
        .find(|r| r.stack_id == stack.meta.id && r.number == stack.revision)?;
    if revision.result.state != "Applied" {
        return None;
    }
    // A service's rollout counts for this revision if the revision (or what followed from it:
    // the update supervisor's writes) changed it; an older service's rolled-back state belongs
    // to an earlier revision.
    let applied_at = revision.meta.version.index;
    let mut rolled_back = Vec::new();
    let mut failed = Vec::new();
    for (name, h) in &status.services {
        if h.observed_generation < applied_at {
            continue;
        }
        if let Some(c) = holds(&h.conditions, "Degraded") {
            match c.reason.as_str() {
                "RolledBack" => rolled_back.push(format!("{name}: {}", c.message)),
                "UpdatePaused" | "RollbackPaused" => {
                    failed.push(format!("{name}: {} {}", c.reason, c.message))
                }
                // Failing tasks alone do not end a rollout: they are restarted, and the wait
                // ends with a timeout if they never run.
                _ => {}
            }
        }
    }
    let state = if !rolled_back.is_empty() {
        ("RolledBack", rolled_back.join("; "))
    } else if !failed.is_empty() {
        ("Failed", failed.join("; "))
    } else if holds(&status.conditions, "Ready").is_some()
        && holds(&status.conditions, "Progressing").is_none()
    {
        ("Succeeded", String::new())
    } else {
        return None;
    };
    let mut updated: StackRevision = revision.to_owned_value();
    updated.result.state = state.0.into();
    updated.result.message = state.1;
    Some(Op::Update {
        object: Object::StackRevision(updated),
        expected_version: revision.meta.version.index,
    })
}

/// Ids of retired secret and config revisions nothing needs any more.
fn unused_retired(cache: &Cache, stack: &Stack) -> HashSet<String> {
    if stack.retired.is_empty() {
        return HashSet::new();
    }
    let revisions: Vec<Obj<StackRevision>> = cache
        .list::<StackRevision>()
        .filter(|r| r.stack_id == stack.meta.id)
        .collect();
    // Revisions a retained stack revision still has are kept; only the others are worth the
    // scan of every task (this runs on every task change of the stack's services).
    let mut candidates: HashSet<String> = stack
        .retired
        .iter()
        .filter(|item| {
            let name = item.spec_name();
            let kept = match item.kind {
                Kind::Secret => cache.get::<Secret>(&item.id).is_some_and(|s| {
                    revisions.iter().any(|r| {
                        r.objects
                            .secrets
                            .iter()
                            .any(|d| d.name == name && d.data == s.spec.data)
                    })
                }),
                Kind::Config => cache.get::<Config>(&item.id).is_some_and(|c| {
                    revisions.iter().any(|r| {
                        r.objects
                            .configs
                            .iter()
                            .any(|d| d.name == name && d.data == c.spec.data)
                    })
                }),
                _ => true,
            };
            !kept
        })
        .map(|item| item.id.clone())
        .collect();
    if candidates.is_empty() {
        return candidates;
    }
    for t in cache.tasks() {
        if t.desired_state > TaskState::Running && t.status.state > TaskState::Running {
            continue;
        }
        if let Some(c) = t.spec.container() {
            for id in c.secrets.iter().map(|r| &r.secret_id) {
                candidates.remove(id);
            }
            for id in c.configs.iter().map(|r| &r.config_id) {
                candidates.remove(id);
            }
        }
    }
    candidates
}
