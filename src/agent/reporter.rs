//! The agent's reliable status reporter (SwarmKit's `agent/reporter.go`): it keeps only the
//! newest status per task, never lets a report go backwards, and keeps a report until a manager
//! accepted it. The session's pump takes batches with [`Reporter::batch`], sends them in one
//! `UpdateTaskStatus` call and confirms them with [`Reporter::sent`]; a failed call leaves them
//! queued for the next session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal_store::model::{TaskState, TaskStatus};
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    /// Reports not yet accepted.
    pending: HashMap<String, TaskStatus>,
    /// The newest state accepted per task (reports older than it are dropped).
    accepted: HashMap<String, TaskState>,
}

/// The queue of status reports. Cheap to clone.
#[derive(Clone, Default)]
pub struct Reporter {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Reporter {
    /// A reporter with nothing queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `status` for `task_id` unless a newer one is queued or was accepted.
    pub fn report(&self, task_id: &str, status: TaskStatus) {
        {
            let mut s = self.state.lock().unwrap();
            if s.accepted.get(task_id).is_some_and(|a| status.state < *a) {
                return;
            }
            match s.pending.get(task_id) {
                Some(p) if status.state < p.state => return,
                _ => {
                    s.pending.insert(task_id.to_string(), status);
                }
            }
        }
        self.wake.notify_one();
    }

    /// Forgets a task (removed from the node): nothing more is sent for it.
    pub fn forget(&self, task_id: &str) {
        let mut s = self.state.lock().unwrap();
        s.pending.remove(task_id);
        s.accepted.remove(task_id);
    }

    /// Up to `max` queued reports (they stay queued until [`Reporter::sent`]).
    pub fn batch(&self, max: usize) -> Vec<(String, TaskStatus)> {
        let s = self.state.lock().unwrap();
        s.pending
            .iter()
            .take(max)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Confirms that `batch` was accepted: each report is dropped from the queue unless a newer
    /// one replaced it meanwhile.
    pub fn sent(&self, batch: &[(String, TaskStatus)]) {
        let mut s = self.state.lock().unwrap();
        for (id, status) in batch {
            if s.pending.get(id) == Some(status) {
                s.pending.remove(id);
            }
            let a = s.accepted.entry(id.clone()).or_insert(status.state);
            *a = (*a).max(status.state);
        }
    }

    /// Number of queued reports.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().pending.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until something is queued.
    pub async fn ready(&self) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_store::model::Timestamp;

    use super::*;

    fn st(state: TaskState) -> TaskStatus {
        TaskStatus::new(state, Timestamp::now(), state.as_str())
    }

    #[test]
    fn keeps_the_newest_never_regresses_and_retries_until_accepted() {
        let r = Reporter::new();
        r.report("t1", st(TaskState::Preparing));
        r.report("t1", st(TaskState::Running));
        r.report("t1", st(TaskState::Starting));
        let batch = r.batch(10);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].1.state, TaskState::Running);
        // A failed send: still queued.
        assert_eq!(r.batch(10), batch);
        // A newer report while the batch is in flight survives its confirmation.
        r.report("t1", st(TaskState::Complete));
        r.sent(&batch);
        assert_eq!(r.batch(10)[0].1.state, TaskState::Complete);
        let b2 = r.batch(10);
        r.sent(&b2);
        assert!(r.is_empty());
        // Older than what was accepted: dropped (a re-sent status on a new session).
        r.report("t1", st(TaskState::Running));
        assert!(r.is_empty());
        r.forget("t1");
        r.report("t1", st(TaskState::Running));
        assert_eq!(r.len(), 1);
    }
}
