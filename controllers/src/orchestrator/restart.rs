//! The restart supervisor: replaces tasks that failed, exited, or lost their node, following
//! the task's restart policy (condition none / on-failure / any, delay, max attempts, window),
//! in the same slot (or on the same node for global services).
//!
//! A replacement is created with desired state READY, so the agent prepares it (pulls the
//! image) while it waits; it is moved to RUNNING once the task it replaces has stopped (at most
//! `stop_wait_timeout`) and the restart delay has passed. Everything is derived from stored
//! tasks and timestamps, so a new leader resumes pending restarts exactly (SwarmKit keeps the
//! restart history in memory and approximates it after a leader change).

use shoal_store::model::{RestartCondition, Service, Task, TaskState, Timestamp};

use super::dirty::is_task_dirty;
use super::slots::Slot;
use super::tasks::{after, elapsed, ended_on_its_own, is_due, is_live, new_task, NodeCondition};
use super::Pass;

/// Whether a live task must be replaced: it ended, or its node is gone, down or drained.
pub fn needs_restart(pass: &Pass<'_>, t: &Task) -> bool {
    let ended = if pass.job {
        t.status.state > TaskState::Running && t.status.state != TaskState::Complete
    } else {
        t.status.state > TaskState::Running
    };
    ended || NodeCondition::of(pass.cache, &t.node_id).evicts()
}

/// When a task stopped, for restart windows (the agent's status time, else the last change).
fn stopped_at(t: &Task) -> Timestamp {
    if t.status.timestamp.is_zero() {
        t.meta.updated_at
    } else {
        t.status.timestamp
    }
}

/// Whether the policy of `t` (which stopped) asks for a replacement, given its slot's history.
pub fn should_restart(job: bool, t: &Task, slot: &Slot) -> bool {
    let policy = t.spec.restart_policy_or_default();
    let completed = t.status.state == TaskState::Complete;
    match policy.condition_or_default() {
        RestartCondition::None => return false,
        RestartCondition::OnFailure if completed => return false,
        // Jobs treat "any" as "on-failure": a completed job task is done.
        _ if job && completed => return false,
        _ => {}
    }
    let max = policy.max_attempts_or_default();
    if max == 0 {
        return true;
    }
    let window = policy.window_or_default();
    let at = stopped_at(t);
    // Restarts are the tasks of the same spec version after the first one, made before `t`
    // stopped (and within the window, if one is set).
    let restarts = slot
        .entries
        .iter()
        .map(|e| e.task())
        .filter(|x| !x.meta.created_at.is_zero() && x.spec_version == t.spec_version)
        .skip(1)
        .filter(|x| x.meta.created_at <= at || x.meta.id == t.meta.id)
        .filter(|x| window.is_zero() || elapsed(x.meta.created_at, at) < window)
        .count() as u64;
    restarts < max
}

/// Shuts down the live tasks of `slot` that need a restart and creates their replacement
/// (one per slot) if the policy allows and `can_place` (the slot's node takes new tasks).
/// Returns whether a replacement was created.
pub fn handle_failures(
    pass: &mut Pass<'_>,
    service: &Service,
    slot: &mut Slot,
    can_place: bool,
) -> bool {
    let failed: Vec<usize> = slot
        .live(pass.job)
        .into_iter()
        .filter(|i| needs_restart(pass, slot.entries[*i].task()))
        .collect();
    let Some(&last) = failed.last() else {
        return false;
    };
    for &i in &failed {
        slot.entries[i].raise_desired(TaskState::Shutdown);
    }
    // A healthy task of the current spec still holds the slot: nothing to replace.
    let cache = pass.cache;
    let healthy = slot.entries.iter().any(|e| {
        let t = e.task();
        is_live(t, pass.job) && !is_task_dirty(service, t, cache.node(&t.node_id).as_deref())
    });
    if healthy || !can_place {
        return false;
    }
    if !should_restart(pass.job, slot.entries[last].task(), slot) {
        return false;
    }
    let mut t = new_task(
        service,
        slot.key.slot_number(),
        slot.key.node_id(),
        TaskState::Ready,
        pass.now,
    );
    t.job_iteration = pass.job_iteration;
    slot.create(t);
    true
}

/// Moves tasks held at desired READY to RUNNING (COMPLETE for jobs) once the task they
/// replace has stopped and the restart delay has passed; schedules a wake-up otherwise.
pub fn promote_ready(pass: &mut Pass<'_>, slot: &mut Slot) {
    let target = if pass.job {
        TaskState::Complete
    } else {
        TaskState::Running
    };
    for i in 0..slot.entries.len() {
        let e = &slot.entries[i];
        if e.is_new() {
            continue;
        }
        let t = e.task();
        if t.desired_state != TaskState::Ready || !is_live(t, pass.job) {
            continue;
        }
        let created = t.meta.created_at;
        // Wait for tasks being stopped in this slot (unless their node is down or gone).
        let stopping = slot.entries.iter().enumerate().any(|(j, o)| {
            let o = o.task();
            j != i
                && o.desired_state >= TaskState::Shutdown
                && (TaskState::Assigned..=TaskState::Running).contains(&o.status.state)
                && !matches!(
                    NodeCondition::of(pass.cache, &o.node_id),
                    NodeCondition::Down | NodeCondition::Missing
                )
        });
        let give_up = after(created, pass.config.stop_wait_timeout);
        if stopping && !is_due(pass.now, give_up, pass.config.stop_wait_timeout) {
            pass.wake.at(give_up);
            continue;
        }
        // The restart delay applies when the predecessor ended on its own (or its node went
        // down), not when it was stopped on request or drained.
        let prev = slot.entries[..i]
            .iter()
            .rev()
            .map(|p| p.task())
            .find(|p| p.meta.created_at <= created);
        let delayed = prev.is_some_and(|p| {
            let node = NodeCondition::of(pass.cache, &p.node_id);
            node != NodeCondition::Drained
                && (ended_on_its_own(p) || (p.status.state <= TaskState::Running && node.evicts()))
        });
        let delay = if delayed {
            t.spec.restart_policy_or_default().delay_or_default()
        } else {
            std::time::Duration::ZERO
        };
        let due = after(created, delay);
        if is_due(pass.now, due, delay) {
            slot.entries[i].raise_desired(target);
        } else {
            pass.wake.at(due);
        }
    }
}

/// Whether a slot without live tasks is finished: its last task stopped and its policy says
/// not to replace it (for the current spec). Such a slot is not refilled until the spec
/// changes, so "restart: none" and exhausted max attempts stick across leader changes.
pub fn is_finished(pass: &Pass<'_>, service: &Service, slot: &Slot) -> bool {
    let Some(last) = slot.latest() else {
        return false;
    };
    if slot.has_live(pass.job) || last.spec_version != service.spec_version {
        return false;
    }
    if let Some(iteration) = pass.job_iteration {
        if last.job_iteration != Some(iteration) {
            return false;
        }
    }
    !should_restart(pass.job, last, slot)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use shoal_store::model::{Meta, Object, RestartPolicy, Task, Version};

    use super::super::slots::{group, SlotKey};
    use super::super::tasks::after;
    use super::*;
    use crate::runtime::Cache;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_nanos(1_000_000_000_000 + secs * 1_000_000_000)
    }

    /// A failed task of spec version 1 in slot 1, created at `created`, failed at `failed`.
    fn failed(id: &str, created: i64, failed: i64, policy: &RestartPolicy) -> Arc<Object> {
        let mut t = Task {
            meta: Meta {
                id: id.into(),
                version: Version::at(created as u64 + 10),
                created_at: at(created),
                updated_at: at(failed),
            },
            service_id: "s".into(),
            slot: 1,
            desired_state: TaskState::Shutdown,
            spec_version: Version::at(1),
            ..Default::default()
        };
        t.spec.restart_policy = Some(policy.clone());
        t.status = shoal_store::model::TaskStatus::new(TaskState::Failed, at(failed), "");
        Arc::new(Object::Task(t))
    }

    fn decide(policy: &RestartPolicy, history: &[(i64, i64)]) -> bool {
        let mut cache = Cache::new();
        for (i, (c, f)) in history.iter().enumerate() {
            cache.put(failed(&format!("t{i}"), *c, *f, policy));
        }
        let slots = group(&cache, "s", |_| true, |t| SlotKey::Number(t.slot));
        let slot = &slots[&SlotKey::Number(1)];
        should_restart(false, slot.latest().unwrap(), slot)
    }

    #[test]
    fn max_attempts_count_restarts_of_the_spec_version() {
        let policy = RestartPolicy {
            condition: Some(RestartCondition::OnFailure),
            delay: Some(0),
            max_attempts: Some(2),
            window: None,
        };
        // The original and one restart failed: one attempt left.
        assert!(decide(&policy, &[(0, 1), (2, 3)]));
        // The original and two restarts failed: none left.
        assert!(!decide(&policy, &[(0, 1), (2, 3), (4, 5)]));
    }

    #[test]
    fn a_window_only_counts_recent_restarts() {
        let policy = RestartPolicy {
            condition: Some(RestartCondition::Any),
            delay: Some(0),
            max_attempts: Some(2),
            window: Some(10 * 1_000_000_000),
        };
        // Two restarts long ago, the last failure now: they are outside the window.
        assert!(decide(&policy, &[(0, 1), (2, 3), (100, 101)]));
        // Two restarts within the window before the last failure.
        assert!(!decide(&policy, &[(0, 1), (95, 96), (98, 101)]));
        assert_eq!(after(at(0), Duration::from_secs(1)), at(1));
    }
}
