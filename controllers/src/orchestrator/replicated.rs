//! The replicated orchestrator: keeps `Replicas` slots of each replicated service filled.
//!
//! Scale up creates tasks in the lowest free slot numbers; scale down removes whole slots
//! (their history too: desired REMOVE, the reaper deletes them once stopped), preferring
//! slots whose task does not run, then slots on the nodes with the most of the service's tasks,
//! then the highest numbers. Kept slots go to the restart and update supervisors.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use shoal_store::model::{Object, Service, ServiceModeKind, TaskState};

use super::slots::{group, ServiceDraft, Slot, SlotKey};
use super::tasks::{is_live, new_task};
use super::timeline::TaskTimeline;
use super::{
    node_liveness_changed, restart, service_of_change, services_of_mode, services_on_node,
    task_change_matters, update, write, Pass,
};
use crate::config::ControllersConfig;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

fn replicated(m: ServiceModeKind) -> bool {
    m == ServiceModeKind::Replicated
}

/// Reconciles replicated services (key: service id).
pub struct ReplicatedOrchestrator {
    config: ControllersConfig,
    timeline: TaskTimeline,
}

impl ReplicatedOrchestrator {
    /// An orchestrator sharing `timeline` with the other orchestrators of the term.
    pub fn new(config: ControllersConfig, timeline: TaskTimeline) -> Self {
        ReplicatedOrchestrator { config, timeline }
    }
}

/// Fills or empties slots until `Replicas` are occupied. A slot is occupied when it has a live
/// task, or when its last task stopped and its restart policy says it stays stopped.
fn scale(pass: &mut Pass<'_>, service: &Service, slots: &mut BTreeMap<SlotKey, Slot>) {
    let mut want = service.spec.replicas().unwrap_or(0) as usize;
    if shoal_store::mutation::active("extra-replica") {
        // Broken on purpose (debug builds only; see `shoal_store::mutation`): one task more
        // than asked for, which the chaos suite's task oracle must catch.
        want += 1;
    }
    let occupied: Vec<SlotKey> = slots
        .iter()
        .filter(|(_, s)| s.has_live(false) || restart::is_finished(pass, service, s))
        .map(|(k, _)| k.clone())
        .collect();
    if occupied.len() < want {
        let mut missing = want - occupied.len();
        let mut n = 1u64;
        while missing > 0 {
            let key = SlotKey::Number(n);
            if !occupied.contains(&key) {
                let t = new_task(service, n, "", TaskState::Running, pass.now);
                slots
                    .entry(key.clone())
                    .or_insert_with(|| Slot::new(key))
                    .create(t);
                missing -= 1;
            }
            n += 1;
        }
    } else if occupied.len() > want {
        let node_of = |s: &Slot| -> Option<String> {
            s.entries
                .iter()
                .map(|e| e.task())
                .find(|t| is_live(t, false))
                .map(|t| t.node_id.clone())
        };
        let mut load: HashMap<String, usize> = HashMap::new();
        for k in &occupied {
            if let Some(n) = node_of(&slots[k]).filter(|n| !n.is_empty()) {
                *load.entry(n).or_default() += 1;
            }
        }
        // Removal order: finished before live, not running before running, busiest node first,
        // highest slot first.
        type Rank = (bool, bool, Reverse<usize>, Reverse<u64>);
        let mut ranked: Vec<(SlotKey, Rank)> = occupied
            .iter()
            .map(|k| {
                let s = &slots[k];
                let live = s.has_live(false);
                let running = s.entries.iter().any(|e| {
                    is_live(e.task(), false) && e.task().status.state == TaskState::Running
                });
                let node_load = node_of(s).and_then(|n| load.get(&n).copied()).unwrap_or(0);
                (
                    k.clone(),
                    (live, running, Reverse(node_load), Reverse(k.slot_number())),
                )
            })
            .collect();
        ranked.sort_by_key(|r| r.1);
        for (key, _) in ranked.into_iter().take(occupied.len() - want) {
            let slot = slots.get_mut(&key).expect("ranked slots exist");
            for e in &mut slot.entries {
                e.raise_desired(TaskState::Remove);
            }
        }
    }
}

impl Reconciler for ReplicatedOrchestrator {
    type Key = String;

    fn name(&self) -> &'static str {
        "replicated-orchestrator"
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
            Object::Node(n) if node_liveness_changed(event) => {
                services_on_node(cache, &n.meta.id, replicated, keys)
            }
            Object::Node(_) => {}
            _ => {
                let Some((id, mode)) = service_of_change(event, cache) else {
                    return;
                };
                if mode.is_some_and(replicated) {
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
        services_of_mode(cache, replicated)
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let Some(service) = cache.service(key) else {
            // Deleted: the task reaper marks its tasks for removal.
            return Ok(Action::AwaitChange);
        };
        if !replicated(service.spec.mode_kind()) {
            return Ok(Action::AwaitChange);
        }
        let mut pass = Pass::new(cache, &self.config);
        let mut svc = ServiceDraft::new(service);
        let mut slots = group(cache, key, |_| true, |t| SlotKey::Number(t.slot));
        for slot in slots.values_mut() {
            restart::handle_failures(&mut pass, svc.get(), slot, true);
            restart::promote_ready(&mut pass, slot);
        }
        scale(&mut pass, svc.get(), &mut slots);
        update::supervise(&mut pass, &mut svc, &mut slots, &|_| true, &self.timeline);
        let mut groups = Vec::new();
        groups.extend(svc.op().map(|op| vec![op]));
        groups.extend(slots.values().map(Slot::ops));
        write::commit(ctx, groups).await?;
        Ok(pass.wake.action(pass.now))
    }
}
