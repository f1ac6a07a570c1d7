//! The global orchestrator: one task of each global service on every eligible node.
//!
//! A node is eligible when it is not down, not drained, and satisfies the service's placement
//! constraints and platforms. Paused nodes keep their tasks but get no new or updated ones.
//! When a node stops being eligible (drained, down, deleted, labels changed) its tasks are shut
//! down rather than replaced, which also keeps rolling updates from waiting on it. The node is
//! the slot: restarts happen on the same node, and updates go node by node.

use std::collections::BTreeSet;

use shoal_store::model::{Node, Object, Service, ServiceModeKind, TaskState};
use shoal_store::Obj;

use super::slots::{group, ServiceDraft, Slot, SlotKey};
use super::tasks::{is_live, new_task, NodeCondition};
use super::timeline::TaskTimeline;
use super::{
    node_change_matters, restart, service_of_change, services_of_mode, task_change_matters, update,
    write, Pass,
};
use crate::config::ControllersConfig;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use crate::scheduler::constraint::{node_matches_exprs, platform_matches};

fn global(m: ServiceModeKind) -> bool {
    m == ServiceModeKind::Global
}

/// Which nodes keep and which take tasks of a global service (or global job).
pub struct Eligibility {
    /// Nodes whose tasks may keep running (active or paused, matching).
    pub keeps: BTreeSet<String>,
    /// Nodes that take new tasks (active, matching).
    pub takes: BTreeSet<String>,
}

impl Eligibility {
    /// Computes eligibility of every node for `service`.
    pub fn of(cache: &Cache, service: &Service) -> Self {
        let placement = service
            .spec
            .task_template
            .placement
            .clone()
            .unwrap_or_default();
        let mut keeps = BTreeSet::new();
        let mut takes = BTreeSet::new();
        for n in cache.nodes() {
            if !matches_node(&placement, &n) {
                continue;
            }
            match NodeCondition::of(cache, &n.meta.id) {
                NodeCondition::Active => {
                    keeps.insert(n.meta.id.clone());
                    takes.insert(n.meta.id.clone());
                }
                NodeCondition::Paused => {
                    keeps.insert(n.meta.id.clone());
                }
                _ => {}
            }
        }
        Eligibility { keeps, takes }
    }
}

fn matches_node(placement: &shoal_store::model::Placement, n: &Obj<Node>) -> bool {
    node_matches_exprs(placement.constraints(), n) && platform_matches(&placement.platforms, n)
}

/// Shuts down the live tasks of slots whose node no longer keeps them (no replacement).
pub fn evict_ineligible(
    job: bool,
    slots: &mut std::collections::BTreeMap<SlotKey, Slot>,
    eligible: &Eligibility,
) {
    for (key, slot) in slots.iter_mut() {
        if eligible.keeps.contains(key.node_id()) {
            continue;
        }
        for i in slot.live(job) {
            slot.entries[i].raise_desired(TaskState::Shutdown);
        }
    }
}

/// Reconciles global services (key: service id).
pub struct GlobalOrchestrator {
    config: ControllersConfig,
    timeline: TaskTimeline,
}

impl GlobalOrchestrator {
    /// An orchestrator sharing `timeline` with the other orchestrators of the term.
    pub fn new(config: ControllersConfig, timeline: TaskTimeline) -> Self {
        GlobalOrchestrator { config, timeline }
    }
}

impl Reconciler for GlobalOrchestrator {
    type Key = String;

    fn name(&self) -> &'static str {
        "global-orchestrator"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<String>) {
        let (event, at) = match change {
            Change::Resync => {
                self.timeline.resync(cache);
                return;
            }
            Change::Event { event, at, .. } => (*event, *at),
        };
        match event.object.as_ref() {
            // Any node may become (in)eligible for any global service.
            Object::Node(_) if node_change_matters(event) => {
                keys.extend(services_of_mode(cache, global))
            }
            Object::Node(_) => {}
            _ => {
                let Some((id, mode)) = service_of_change(event, cache) else {
                    return;
                };
                if mode.is_some_and(global) {
                    if matches!(event.object.as_ref(), Object::Task(_)) {
                        self.timeline.observe(event, at);
                        if !task_change_matters(event) {
                            return;
                        }
                    }
                    keys.push(id);
                }
            }
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        services_of_mode(cache, global)
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let Some(service) = cache.service(key) else {
            return Ok(Action::AwaitChange);
        };
        if !global(service.spec.mode_kind()) {
            return Ok(Action::AwaitChange);
        }
        let mut pass = Pass::new(cache, &self.config);
        let eligible = Eligibility::of(cache, &service);
        let mut svc = ServiceDraft::new(service);
        let mut slots = group(cache, key, |_| true, |t| SlotKey::Node(t.node_id.clone()));
        evict_ineligible(false, &mut slots, &eligible);
        for (k, slot) in slots.iter_mut() {
            let takes = eligible.takes.contains(k.node_id());
            restart::handle_failures(&mut pass, svc.get(), slot, takes);
            restart::promote_ready(&mut pass, slot);
        }
        for node in &eligible.takes {
            let key = SlotKey::Node(node.clone());
            let slot = slots.entry(key.clone()).or_insert_with(|| Slot::new(key));
            let occupied = slot.entries.iter().any(|e| is_live(e.task(), false))
                || restart::is_finished(&pass, svc.get(), slot);
            if !occupied {
                slot.create(new_task(svc.get(), 0, node, TaskState::Running, pass.now));
            }
        }
        let takes = &eligible.takes;
        update::supervise(
            &mut pass,
            &mut svc,
            &mut slots,
            &|k| takes.contains(k.node_id()),
            &self.timeline,
        );
        let mut groups = Vec::new();
        groups.extend(svc.op().map(|op| vec![op]));
        groups.extend(slots.values().map(Slot::ops));
        write::commit(ctx, groups).await?;
        Ok(pass.wake.action(pass.now))
    }
}
