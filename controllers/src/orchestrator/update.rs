//! The update supervisor: rolling updates and rollbacks, one step per orchestrator pass.
//!
//! SwarmKit runs a goroutine per update that waits for each new task; here every pass looks
//! at the slots and decides what the next step is, so a new leader continues an update exactly
//! where the stored tasks say it is:
//! - a slot is *in progress* while the update's task for it (the first task of the current spec
//!   created since the update started) has not reached RUNNING, and for `Delay` after that;
//! - at most `Parallelism` slots are in progress; the next dirty slots, in slot order, get a
//!   new task: stop-first shuts the old task down in the same transaction and the new one
//!   starts once it has stopped; start-first starts the new task at once and the old one is
//!   shut down when the new one runs;
//! - the update's tasks that end (fail, exit, are rejected) before RUNNING or within `Monitor`
//!   of it count as failures; above `MaxFailureRatio` the failure action applies (pause,
//!   continue, rollback; a rollback is never rolled back, it pauses);
//! - a task that does not reach RUNNING within the progress deadline counts as failed too, so
//!   an update never waits forever (the reason is in `UpdateStatus.Message`);
//! - with no dirty slot left and the monitor window passed, the update is completed.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_store::model::{
    Service, Task, TaskState, Timestamp, UpdateFailureAction, UpdateOrder, UpdateState,
    UpdateStatus,
};

use super::dirty::is_task_dirty;
use super::slots::{ServiceDraft, Slot, SlotKey};
use super::tasks::{after, elapsed, ended_on_its_own, is_due, new_task};
use super::timeline::{RunTimes, TaskTimeline};
use super::Pass;

fn dirty(pass: &Pass<'_>, service: &Service, t: &Task) -> bool {
    is_task_dirty(service, t, pass.cache.node(&t.node_id).as_deref())
}

/// A slot whose current-spec task runs keeps only that task (completes start-first
/// replacements, removes duplicates).
fn converge(pass: &Pass<'_>, service: &Service, slot: &mut Slot) {
    let live = slot.live(false);
    if live.len() < 2 {
        return;
    }
    let keep = live.iter().rev().copied().find(|i| {
        let t = slot.entries[*i].task();
        t.status.state == TaskState::Running && !dirty(pass, service, t)
    });
    if let Some(keep) = keep {
        for i in live {
            if i != keep {
                slot.entries[i].raise_desired(TaskState::Shutdown);
            }
        }
    }
}

/// Formats a duration the way Go prints one (`10m0s`, `1.5s`, `300ms`).
pub fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let frac = d.subsec_millis();
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[derive(Clone, Debug)]
struct Failure {
    task_id: String,
    at: Timestamp,
    deadline: Option<Duration>,
}

impl Failure {
    fn message(&self, what: &str) -> String {
        match self.deadline {
            None => format!(
                "{what} due to failure or early termination of task {}",
                self.task_id
            ),
            Some(d) => format!(
                "{what}: task {} did not reach running within {} (update progress deadline)",
                self.task_id,
                go_duration(d)
            ),
        }
    }
}

struct SlotInfo {
    key: SlotKey,
    dirty: bool,
    needs_update: bool,
    in_progress: bool,
    has_update_task: bool,
    reached: Option<Timestamp>,
    failure: Option<Failure>,
}

/// Whether an update's task that ended did so within the monitor window.
fn ended_early(t: &Task, times: RunTimes, monitor: Duration) -> bool {
    match (times.running_at, times.ended_at) {
        (Some(r), Some(e)) => elapsed(r, e) <= monitor,
        (Some(r), None) => elapsed(r, t.status.timestamp) <= monitor,
        // Never seen running (or not by this leader): count it, as SwarmKit does for tasks
        // that fail before RUNNING.
        (None, _) => true,
    }
}

/// One step of the rolling update of `svc` over `slots` (iterated in update order).
/// `updatable` says whether a slot may get new tasks (for global services: its node is active).
pub fn supervise(
    pass: &mut Pass<'_>,
    svc: &mut ServiceDraft,
    slots: &mut BTreeMap<SlotKey, Slot>,
    updatable: &dyn Fn(&SlotKey) -> bool,
    timeline: &TaskTimeline,
) {
    let now = pass.now;
    let service = svc.get().clone();
    for slot in slots.values_mut() {
        converge(pass, &service, slot);
    }
    let status = service.update_status.clone().unwrap_or_default();
    let state = status.state;
    let rolling_back = state == Some(UpdateState::RollbackStarted);
    let active = matches!(
        state,
        Some(UpdateState::Updating) | Some(UpdateState::RollbackStarted)
    );
    let paused = matches!(
        state,
        Some(UpdateState::Paused) | Some(UpdateState::RollbackPaused)
    );
    let cfg = if rolling_back {
        service.spec.rollback_config_or_default()
    } else {
        service.spec.update_config_or_default()
    };
    let monitor = cfg.monitor_or_default();
    let delay = cfg.delay_duration();
    let mut started_at = if active { status.started_at } else { None };
    // A rollback requested on another manager carries that manager's clock; tasks carry the
    // leader's. A start time ahead of this clock would hide the rollout's first tasks, so it
    // is brought back to now.
    if started_at.is_some_and(|s| s > now) {
        started_at = Some(now);
        if let Some(st) = svc.edit().update_status.as_mut() {
            st.started_at = Some(now);
        }
    }

    let mut infos = Vec::new();
    for (key, slot) in slots.iter() {
        if !updatable(key) {
            continue;
        }
        let live = slot.live(false);
        let dirty_live = live
            .iter()
            .any(|i| dirty(pass, &service, slot.entries[*i].task()));
        let clean_live = live
            .iter()
            .any(|i| !dirty(pass, &service, slot.entries[*i].task()));
        // The update's task for this slot: the first current-spec task made since it started.
        let update_task = started_at.and_then(|s| {
            slot.entries.iter().map(|e| e.task()).find(|t| {
                !t.meta.created_at.is_zero() && t.meta.created_at >= s && !dirty(pass, &service, t)
            })
        });
        if live.is_empty() && update_task.is_none() {
            continue;
        }
        let mut info = SlotInfo {
            key: key.clone(),
            dirty: dirty_live,
            needs_update: false,
            in_progress: false,
            has_update_task: update_task.is_some(),
            reached: None,
            failure: None,
        };
        if let Some(u) = update_task {
            let times = timeline.get(&u.meta.id);
            if u.status.state >= TaskState::Running {
                let reached = times
                    .running_at
                    .or(times.ended_at)
                    .unwrap_or(u.status.timestamp);
                info.reached = Some(reached);
                if ended_on_its_own(u) && ended_early(u, times, monitor) {
                    info.failure = Some(Failure {
                        task_id: u.meta.id.clone(),
                        at: times.ended_at.unwrap_or(u.status.timestamp),
                        deadline: None,
                    });
                }
                let until = after(reached, delay);
                if !is_due(now, until, delay) {
                    info.in_progress = true;
                    pass.wake.at(until);
                }
            } else if u.desired_state <= TaskState::Running {
                let deadline = after(u.meta.created_at, pass.config.update_progress_deadline);
                if now >= deadline {
                    info.failure = Some(Failure {
                        task_id: u.meta.id.clone(),
                        at: deadline,
                        deadline: Some(pass.config.update_progress_deadline),
                    });
                } else {
                    info.in_progress = true;
                    pass.wake.at(deadline);
                }
            }
        }
        info.needs_update = dirty_live && !clean_live && !info.in_progress;
        infos.push(info);
    }

    if active {
        let failures: Vec<&Failure> = infos.iter().filter_map(|i| i.failure.as_ref()).collect();
        let total = infos
            .iter()
            .filter(|i| i.has_update_task || i.dirty)
            .count()
            .max(1);
        if !failures.is_empty() && failures.len() as f32 / total as f32 > cfg.max_failure_ratio {
            let culprit = failures
                .iter()
                .max_by_key(|f| f.at)
                .map(|f| (*f).clone())
                .expect("non-empty");
            match cfg.failure_action_or_default() {
                UpdateFailureAction::Continue => {}
                UpdateFailureAction::Rollback if rolling_back => {
                    pause(svc, true, culprit.message("rollback paused"));
                    return;
                }
                UpdateFailureAction::Rollback if service.previous_spec.is_some() => {
                    rollback(svc, culprit.message("update rolled back"), now);
                    pass.wake.now(now);
                    return;
                }
                _ => {
                    pause(svc, rolling_back, culprit.message("update paused"));
                    return;
                }
            }
        }
    }
    if paused {
        return;
    }

    let busy = infos.iter().filter(|i| i.in_progress).count();
    let waiting: Vec<SlotKey> = infos
        .iter()
        .filter(|i| i.needs_update)
        .map(|i| i.key.clone())
        .collect();
    if waiting.is_empty() && busy == 0 {
        if active {
            // Keep watching the last updated tasks for the monitor period before completing.
            let period = if delay >= monitor {
                delay + Duration::from_secs(1)
            } else {
                monitor
            };
            match infos.iter().filter_map(|i| i.reached).max() {
                Some(last) if !is_due(now, after(last, period), period) => {
                    pass.wake.at(after(last, period))
                }
                _ => complete(svc, rolling_back, now),
            }
        }
        return;
    }
    if !active && !waiting.is_empty() {
        let s = svc.edit();
        s.update_status = Some(UpdateStatus {
            state: Some(UpdateState::Updating),
            started_at: Some(now),
            completed_at: None,
            message: "update in progress".into(),
        });
    } else if active && started_at.is_none() {
        if let Some(st) = svc.edit().update_status.as_mut() {
            st.started_at = Some(now);
        }
    }
    let cap = if cfg.parallelism == 0 {
        usize::MAX
    } else {
        cfg.parallelism as usize
    };
    let start_first = cfg.order_or_default() == UpdateOrder::StartFirst;
    let current = svc.get().clone();
    for key in waiting.into_iter().take(cap.saturating_sub(busy)) {
        let slot = slots.get_mut(&key).expect("slot exists");
        let desired = if start_first {
            TaskState::Running
        } else {
            TaskState::Ready
        };
        if !start_first {
            for i in slot.live(false) {
                if dirty(pass, &current, slot.entries[i].task()) {
                    slot.entries[i].raise_desired(TaskState::Shutdown);
                }
            }
        }
        let t = new_task(&current, key.slot_number(), key.node_id(), desired, now);
        slot.create(t);
    }
}

fn pause(svc: &mut ServiceDraft, rolling_back: bool, message: String) {
    let s = svc.edit();
    let st = s.update_status.get_or_insert_with(UpdateStatus::default);
    st.state = Some(if rolling_back {
        UpdateState::RollbackPaused
    } else {
        UpdateState::Paused
    });
    st.message = message;
    st.completed_at = None;
}

fn rollback(svc: &mut ServiceDraft, message: String, now: Timestamp) {
    let s = svc.edit();
    if let Some(previous) = s.previous_spec.take() {
        s.spec = previous;
        s.spec_version = s.previous_spec_version.take().unwrap_or_default();
    }
    // The rollback is a new rollout: its own start time tells its tasks from the update's.
    s.update_status = Some(UpdateStatus {
        state: Some(UpdateState::RollbackStarted),
        started_at: Some(now),
        completed_at: None,
        message,
    });
}

fn complete(svc: &mut ServiceDraft, rolling_back: bool, now: Timestamp) {
    let s = svc.edit();
    let st = s.update_status.get_or_insert_with(UpdateStatus::default);
    if rolling_back {
        st.state = Some(UpdateState::RollbackCompleted);
        st.message = "rollback completed".into();
    } else {
        st.state = Some(UpdateState::Completed);
        st.message = "update completed".into();
    }
    st.completed_at = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(600)), "10m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
    }
}
