//! The jobs orchestrator: replicated jobs run until `TotalCompletions` tasks completed, at most
//! `MaxConcurrent` at a time, each completion in its own slot; global jobs run once to
//! completion on every eligible node (nodes that join later included). Job tasks are desired
//! COMPLETE. Each run is an iteration (`JobStatus.JobIteration`, bumped by every service
//! update): tasks of older iterations are shut down and the job runs again. Failed tasks are
//! restarted per the restart policy ("any" behaves as "on-failure").

use shoal_store::model::{Object, ServiceModeKind, TaskState};

use super::global::{evict_ineligible, Eligibility};
use super::slots::{group, ServiceDraft, Slot, SlotKey};
use super::tasks::new_task;
use super::{
    node_change_matters, node_liveness_changed, restart, service_of_change, services_of_mode,
    services_on_node, task_change_matters, write, Pass,
};
use crate::config::ControllersConfig;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

fn job(m: ServiceModeKind) -> bool {
    matches!(
        m,
        ServiceModeKind::ReplicatedJob | ServiceModeKind::GlobalJob
    )
}

/// Reconciles replicated and global jobs (key: service id).
pub struct JobsOrchestrator {
    config: ControllersConfig,
}

impl JobsOrchestrator {
    /// A jobs orchestrator.
    pub fn new(config: ControllersConfig) -> Self {
        JobsOrchestrator { config }
    }
}

impl Reconciler for JobsOrchestrator {
    type Key = String;

    fn name(&self) -> &'static str {
        "jobs-orchestrator"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        match event.object.as_ref() {
            Object::Node(n) if node_change_matters(event) => {
                keys.extend(services_of_mode(cache, |m| m == ServiceModeKind::GlobalJob));
                if !node_liveness_changed(event) {
                    return;
                }
                services_on_node(
                    cache,
                    &n.meta.id,
                    |m| m == ServiceModeKind::ReplicatedJob,
                    keys,
                );
            }
            Object::Node(_) => {}
            _ => {
                let Some((id, mode)) = service_of_change(event, cache) else {
                    return;
                };
                if mode.is_some_and(job) {
                    if matches!(event.object.as_ref(), Object::Task(_))
                        && !task_change_matters(event)
                    {
                        return;
                    }
                    keys.push(id);
                }
            }
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        services_of_mode(cache, job)
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let Some(service) = cache.service(key) else {
            return Ok(Action::AwaitChange);
        };
        let mode = service.spec.mode_kind();
        if !job(mode) {
            return Ok(Action::AwaitChange);
        }
        // The API bumps the iteration on every update; a service it never set one for runs
        // one iteration per spec version.
        let iteration = service
            .job_status
            .as_ref()
            .map(|j| j.job_iteration)
            .filter(|v| v.index != 0)
            .unwrap_or(service.spec_version);
        let mut pass = Pass::new(cache, &self.config);
        pass.job = true;
        pass.job_iteration = Some(iteration);
        let svc = ServiceDraft::new(service);
        let current = |t: &shoal_store::model::Task| t.job_iteration == Some(iteration);

        // Earlier iterations stop.
        let mut stale = group(cache, key, |t| !current(t), |t| SlotKey::Number(t.slot));
        for slot in stale.values_mut() {
            for i in slot.live(true) {
                slot.entries[i].raise_desired(TaskState::Shutdown);
            }
        }

        let slots = if mode == ServiceModeKind::GlobalJob {
            let eligible = Eligibility::of(cache, svc.get());
            let mut slots = group(cache, key, current, |t| SlotKey::Node(t.node_id.clone()));
            evict_ineligible(true, &mut slots, &eligible);
            for (k, slot) in slots.iter_mut() {
                let takes = eligible.takes.contains(k.node_id());
                restart::handle_failures(&mut pass, svc.get(), slot, takes);
                restart::promote_ready(&mut pass, slot);
            }
            for node in &eligible.takes {
                let k = SlotKey::Node(node.clone());
                let slot = slots.entry(k.clone()).or_insert_with(|| Slot::new(k));
                if slot.entries.is_empty() {
                    let mut t = new_task(svc.get(), 0, node, TaskState::Complete, pass.now);
                    t.job_iteration = Some(iteration);
                    slot.create(t);
                }
            }
            slots
        } else {
            let spec = svc
                .get()
                .spec
                .mode
                .replicated_job
                .clone()
                .unwrap_or_default();
            let total = spec.total_completions_or_default();
            let concurrency = spec.max_concurrent_or_default();
            let mut slots = group(cache, key, current, |t| SlotKey::Number(t.slot));
            for slot in slots.values_mut() {
                restart::handle_failures(&mut pass, svc.get(), slot, true);
                restart::promote_ready(&mut pass, slot);
            }
            let done = |s: &Slot| {
                s.entries
                    .iter()
                    .any(|e| e.task().status.state == TaskState::Complete)
            };
            let running = slots.values().filter(|s| s.has_live(true)).count() as u64;
            let mut room = concurrency.saturating_sub(running);
            for n in 1..=total {
                if room == 0 {
                    break;
                }
                let k = SlotKey::Number(n);
                let free = slots.get(&k).is_none_or(|s| {
                    !done(s) && !s.has_live(true) && !restart::is_finished(&pass, svc.get(), s)
                });
                if free {
                    let mut t = new_task(svc.get(), n, "", TaskState::Complete, pass.now);
                    t.job_iteration = Some(iteration);
                    slots
                        .entry(k.clone())
                        .or_insert_with(|| Slot::new(k))
                        .create(t);
                    room -= 1;
                }
            }
            slots
        };
        let groups: Vec<_> = stale
            .values()
            .map(Slot::ops)
            .chain(slots.values().map(Slot::ops))
            .collect();
        write::commit(ctx, groups).await?;
        Ok(pass.wake.action(pass.now))
    }
}
