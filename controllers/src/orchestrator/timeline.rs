//! When tasks reached RUNNING and when they ended, as the leader observed it.
//!
//! The update supervisor needs this to tell a task that failed within the monitor window from
//! one that ran for a while: the stored task only keeps its latest status. Like SwarmKit's
//! updater, this lives in memory; after a leader change it restarts from the stored status of
//! running tasks, and tasks that ended before are judged conservatively.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal_store::model::{Object, TaskState, Timestamp};
use shoal_store::{Action, Event};

use crate::runtime::Cache;

/// Observed run times of one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTimes {
    /// When it reached RUNNING (or later), if seen.
    pub running_at: Option<Timestamp>,
    /// When it passed RUNNING (ended), if seen.
    pub ended_at: Option<Timestamp>,
}

/// Shared by the orchestrators of one leader term.
#[derive(Clone, Default)]
pub struct TaskTimeline {
    inner: Arc<Mutex<HashMap<String, RunTimes>>>,
}

impl TaskTimeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what a task change tells (commit time `at`).
    pub fn observe(&self, event: &Event, at: Timestamp) {
        let Object::Task(t) = event.object.as_ref() else {
            return;
        };
        let mut map = self.inner.lock().expect("timeline lock");
        if event.action == Action::Delete {
            map.remove(&t.meta.id);
            return;
        }
        let before = match event.prev.as_deref() {
            Some(Object::Task(p)) => p.status.state,
            _ => TaskState::New,
        };
        let now = t.status.state;
        if before < TaskState::Running && now >= TaskState::Running {
            let e = map.entry(t.meta.id.clone()).or_default();
            if now == TaskState::Running {
                e.running_at.get_or_insert(at);
            }
        }
        if before <= TaskState::Running && now > TaskState::Running {
            map.entry(t.meta.id.clone()).or_default().ended_at = Some(at);
        }
    }

    /// Starts over from a snapshot: running tasks have been running since their status time.
    pub fn resync(&self, cache: &Cache) {
        let mut map = self.inner.lock().expect("timeline lock");
        map.clear();
        for t in cache.tasks() {
            if t.status.state == TaskState::Running {
                map.insert(
                    t.meta.id.clone(),
                    RunTimes {
                        running_at: Some(t.status.timestamp),
                        ended_at: None,
                    },
                );
            }
        }
    }

    /// What is known about a task.
    pub fn get(&self, task_id: &str) -> RunTimes {
        self.inner
            .lock()
            .expect("timeline lock")
            .get(task_id)
            .copied()
            .unwrap_or_default()
    }
}
