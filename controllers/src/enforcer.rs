//! The constraint enforcer (key: node id): when an active node changes (labels, role,
//! resources), the tasks placed on it that it no longer satisfies (their service's current
//! placement constraints, or the node's resources) get observed state REJECTED, so their
//! orchestrator replaces them elsewhere. Desired state stays the orchestrator's to change.

use shoal_store::model::{NodeAvailability, Object, TaskState, TaskStatus, Timestamp};
use shoal_store::{Obj, Op};

use crate::orchestrator::tasks::creation_order;
use crate::orchestrator::write;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use crate::scheduler::constraint::node_matches_exprs;
use crate::scheduler::resources::{Capacity, Request};

/// Status message of a task the enforcer rejected.
pub const REJECTED_MESSAGE: &str = "task rejected by constraint enforcer";
/// Status error of a task the enforcer rejected.
pub const REJECTED_ERR: &str = "assigned node no longer meets constraints";

/// The constraint enforcer.
#[derive(Default)]
pub struct ConstraintEnforcer;

impl ConstraintEnforcer {
    /// A constraint enforcer.
    pub fn new() -> Self {
        ConstraintEnforcer
    }
}

impl Reconciler for ConstraintEnforcer {
    type Key = String;

    fn name(&self) -> &'static str {
        "constraint-enforcer"
    }

    fn observe(&self, change: &Change<'_>, _cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        if let Object::Node(n) = event.object.as_ref() {
            let changed = match event.prev.as_deref() {
                Some(Object::Node(p)) => {
                    p.spec != n.spec || p.role != n.role || p.description != n.description
                }
                _ => true,
            };
            if changed && event.action != shoal_store::Action::Delete {
                keys.push(n.meta.id.clone());
            }
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.nodes().map(|n| n.meta.id.clone()).collect()
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let Some(node) = cache.node(key) else {
            return Ok(Action::AwaitChange);
        };
        // Drained nodes lose their tasks anyway; paused ones keep theirs untouched.
        if node.spec.availability_or_default() != NodeAvailability::Active {
            return Ok(Action::AwaitChange);
        }
        let mut tasks: Vec<_> = cache
            .tasks_on_node(key)
            .filter(|t| {
                t.desired_state <= TaskState::Complete
                    && (TaskState::Assigned..TaskState::Complete).contains(&t.status.state)
            })
            .collect();
        tasks.sort_by(|a, b| creation_order(a, b));
        let mut available = Capacity::of(&node.description.resources);
        let now = Timestamp::now();
        let mut ops = Vec::new();
        for t in tasks {
            // The service's current constraints, not the task's copy: an update that only
            // changed constraints the node still met did not replace the task.
            let placement = match cache.service(&t.service_id) {
                Some(s) => s.spec.task_template.placement.clone(),
                None => t.spec.placement.clone(),
            }
            .unwrap_or_default();
            let mut ok = node_matches_exprs(placement.constraints(), &node);
            let req = Request::of(&t.spec);
            if ok && (req.cpu > available.cpu || req.mem > available.mem) {
                ok = false;
            }
            if ok {
                let missing = t.generic_resources.iter().any(|g| {
                    let want = Request {
                        generic: vec![(
                            g.kind().to_string(),
                            g.discrete_resource_spec.as_ref().map_or(1, |d| d.value),
                        )],
                        ..Default::default()
                    };
                    let has_named = g.named_resource_spec.as_ref().is_none_or(|n| {
                        available
                            .named
                            .get(&n.kind)
                            .is_some_and(|s| s.contains(&n.value))
                    });
                    !available.fits(&want) || !has_named
                });
                ok = !missing;
            }
            if ok {
                available.take(req.cpu, req.mem, &t.generic_resources);
            } else {
                ops.push(vec![reject(&t, now)]);
            }
        }
        write::commit(ctx, ops).await?;
        Ok(Action::AwaitChange)
    }
}

fn reject(t: &Obj<shoal_store::model::Task>, now: Timestamp) -> Op {
    let mut u = t.to_owned_value();
    u.status = TaskStatus::new(TaskState::Rejected, now, REJECTED_MESSAGE);
    u.status.err = REJECTED_ERR.into();
    Op::Update {
        object: Object::Task(u),
        expected_version: t.meta.version.index,
    }
}
