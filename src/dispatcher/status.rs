//! Task status reports, batched into few store transactions.
//!
//! `UpdateTaskStatus` calls queue their statuses here; a flusher writes everything queued in one
//! pass at most `interval` after the first report arrived (or at once when `max_items` are
//! queued; with a zero interval, as soon as the previous pass is done), as `Op::TaskStatus` operations split into transactions of [`OPS_PER_TXN`], fenced to
//! the dispatcher's term. Only the newest status per task is kept, and a status that is older than
//! or identical to the stored one is dropped before it costs a write. Callers are answered once
//! the pass that carried their statuses committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use shoal_store::model::{Task, TaskStatus};
use shoal_store::{Op, Store, Txn};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// Operations per transaction (keeps each well under the store's size limit).
pub const OPS_PER_TXN: usize = 500;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Pending {
    updates: HashMap<String, (String, TaskStatus)>,
    waiters: Vec<Waiter>,
}

/// Whether `new` is worth writing over `stored`: never backwards, never a repeat.
pub fn worth_writing(stored: &TaskStatus, new: &TaskStatus) -> bool {
    new.state >= stored.state && new != stored
}

/// Keeps the newer of two reports for one task (the greater state; the later one on a tie).
fn merge(slot: &mut (String, TaskStatus), node_id: &str, status: TaskStatus) {
    if status.state >= slot.1.state {
        *slot = (node_id.to_string(), status);
    }
}

/// The batching queue. Cheap to clone.
#[derive(Clone)]
pub struct StatusBatcher {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    max_items: usize,
}

impl StatusBatcher {
    /// Starts the flusher for `store`, fencing writes to `term`.
    pub fn start(
        store: Store,
        term: u64,
        interval: Duration,
        max_items: usize,
    ) -> (StatusBatcher, tokio::task::JoinHandle<()>) {
        let batcher = StatusBatcher {
            pending: Arc::default(),
            wake: Arc::new(Notify::new()),
            max_items: max_items.max(1),
        };
        let flusher = tokio::spawn(batcher.clone().run(store, term, interval));
        (batcher, flusher)
    }

    /// Queues `updates` (task id, status) reported by `node_id` and waits until they are
    /// committed or dropped as stale.
    pub async fn submit(
        &self,
        node_id: &str,
        updates: Vec<(String, TaskStatus)>,
    ) -> Result<(), String> {
        if updates.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().expect("status queue lock");
            for (task_id, status) in updates {
                match p.updates.get_mut(&task_id) {
                    Some(slot) => merge(slot, node_id, status),
                    None => {
                        p.updates.insert(task_id, (node_id.to_string(), status));
                    }
                }
            }
            p.waiters.push(tx);
        }
        self.wake.notify_one();
        rx.await
            .unwrap_or_else(|_| Err("the dispatcher stopped before writing the status".into()))
    }

    fn len(&self) -> usize {
        self.pending
            .lock()
            .expect("status queue lock")
            .updates
            .len()
    }

    async fn run(self, store: Store, term: u64, interval: Duration) {
        loop {
            while self.len() == 0 {
                self.wake.notified().await;
            }
            let deadline = Instant::now() + interval;
            while self.len() < self.max_items {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.wake.notified() => {}
                }
            }
            let batch = std::mem::take(&mut *self.pending.lock().expect("status queue lock"));
            let result = flush(&store, term, batch.updates).await;
            for w in batch.waiters {
                let _ = w.send(result.clone());
            }
        }
    }
}

/// Writes the statuses that are still news, in transactions of [`OPS_PER_TXN`].
async fn flush(
    store: &Store,
    term: u64,
    updates: HashMap<String, (String, TaskStatus)>,
) -> Result<(), String> {
    let view = store.view();
    let mut ops = Vec::new();
    for (task_id, (node_id, status)) in updates {
        let Some(task) = view.get::<Task>(&task_id) else {
            continue;
        };
        if task.node_id != node_id || !worth_writing(&task.status, &status) {
            continue;
        }
        let status = serde_json::to_value(&status).map_err(|e| e.to_string())?;
        ops.push(Op::TaskStatus {
            task_id,
            node_id,
            status,
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    let mut txns = Vec::new();
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(OPS_PER_TXN));
        txns.push(Txn { ops, ..Txn::new() }.fenced(term));
        ops = rest;
    }
    let results = join_all(txns.into_iter().map(|t| store.submit(t))).await;
    for r in results {
        r.map_err(|e| format!("writing task statuses: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shoal_store::model::{TaskState, Timestamp};

    use super::*;

    fn status(state: TaskState, message: &str) -> TaskStatus {
        TaskStatus::new(state, Timestamp::from_unix_nanos(1_000), message)
    }

    #[test]
    fn stale_and_repeated_statuses_are_not_worth_a_write() {
        let stored = status(TaskState::Running, "started");
        assert!(!worth_writing(&stored, &status(TaskState::Starting, "x")));
        assert!(!worth_writing(&stored, &stored.clone()));
        assert!(worth_writing(&stored, &status(TaskState::Shutdown, "")));
        // Same state with more information (e.g. an error while retrying) is news.
        let mut retry = stored.clone();
        retry.err = "engine unreachable".into();
        assert!(worth_writing(&stored, &retry));
    }

    #[test]
    fn the_newest_report_per_task_wins() {
        let mut slot = ("n1".to_string(), status(TaskState::Running, "started"));
        merge(&mut slot, "n1", status(TaskState::Preparing, "late"));
        assert_eq!(slot.1.state, TaskState::Running);
        merge(&mut slot, "n1", status(TaskState::Complete, "finished"));
        assert_eq!(slot.1.state, TaskState::Complete);
    }
}
