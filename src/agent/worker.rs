//! The agent's worker (SwarmKit's `agent/worker.go`): reconciles the node's assignments with the
//! task runners, keeps secrets and configs in memory, and on start resumes the tasks recorded
//! locally so their workloads are adopted rather than started again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use shoal_proto::dispatcher::assignment_change::{Action as ChangeAction, Kind as ChangeKind};
use shoal_proto::dispatcher::assignments_message::Type as MessageType;
use shoal_proto::dispatcher::{AssignmentChange, AssignmentsMessage};
use shoal_store::model::{Config, ContainerSpec, Meta, Secret, Task, TaskSpec, TaskStatus};

use super::reporter::Reporter;
use super::storage::TaskStore;
use super::task_runner::{self, RunnerContext, RunnerHandle};
use crate::exec::{Dependencies, Executor, TaskController};

/// Why an assignments message could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    /// The message does not apply on top of the last one: the stream must restart.
    #[error("assignments out of sequence: message applies to {applies_to}, last was {last}")]
    OutOfSequence {
        /// What the message applies to.
        applies_to: u64,
        /// The last sequence number applied.
        last: u64,
    },
    /// A payload did not decode.
    #[error("malformed assignment {id}: {error}")]
    Malformed {
        /// The object id.
        id: String,
        /// Why.
        error: String,
    },
}

struct State {
    runners: HashMap<String, RunnerHandle>,
    secrets: HashMap<String, Secret>,
    configs: HashMap<String, Config>,
    /// Sequence number of the last assignments message applied (0: none on this stream).
    seq: u64,
}

/// The secrets and configs a worker holds in memory, as its controllers read them.
struct HeldDependencies(Weak<Mutex<State>>);

impl Dependencies for HeldDependencies {
    fn secret(&self, id: &str) -> Option<Secret> {
        let state = self.0.upgrade()?;
        let held = state.lock().unwrap().secrets.get(id).cloned();
        held
    }

    fn config(&self, id: &str) -> Option<Config> {
        let state = self.0.upgrade()?;
        let held = state.lock().unwrap().configs.get(id).cloned();
        held
    }
}

/// The worker of one agent. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    node_id: Arc<str>,
    executor: Arc<dyn Executor>,
    ctx: RunnerContext,
    state: Arc<Mutex<State>>,
}

impl Worker {
    /// A worker for `node_id` that resumes every task recorded in `db`.
    pub fn start(
        node_id: &str,
        executor: Arc<dyn Executor>,
        db: Arc<dyn TaskStore>,
        reporter: Reporter,
    ) -> std::io::Result<Worker> {
        let state = Arc::new(Mutex::new(State {
            runners: HashMap::new(),
            secrets: HashMap::new(),
            configs: HashMap::new(),
            seq: 0,
        }));
        let weak = Arc::downgrade(&state);
        let on_removed = Arc::new(move |id: &str| {
            if let Some(state) = weak.upgrade() {
                // The runner is finishing: drop its handle (its join handle just detaches).
                let mut s = state.lock().unwrap();
                if s.runners.get(id).is_some_and(|r| *r.removed.borrow()) {
                    s.runners.remove(id);
                }
            }
        });
        let deps = Arc::new(HeldDependencies(Arc::downgrade(&state)));
        let worker = Worker {
            node_id: node_id.into(),
            executor,
            ctx: RunnerContext {
                db: db.clone(),
                reporter,
                on_removed,
                deps,
            },
            state,
        };
        for task in db.load()? {
            if task.node_id == *worker.node_id || task.node_id.is_empty() {
                worker.spawn(task);
            }
        }
        Ok(worker)
    }

    fn spawn(&self, task: Task) {
        let id = task.meta.id.clone();
        let handle = task_runner::spawn(task, self.executor.as_ref(), self.ctx.clone());
        self.state.lock().unwrap().runners.insert(id, handle);
    }

    /// Starts a new assignments stream: the next message must be COMPLETE.
    pub fn reset_sequence(&self) {
        self.state.lock().unwrap().seq = 0;
    }

    /// Applies one assignments message.
    pub fn apply(&self, msg: AssignmentsMessage) -> Result<(), AssignmentError> {
        let complete = msg.r#type == MessageType::Complete as i32;
        {
            let mut s = self.state.lock().unwrap();
            if !complete && msg.applies_to != s.seq {
                return Err(AssignmentError::OutOfSequence {
                    applies_to: msg.applies_to,
                    last: s.seq,
                });
            }
            s.seq = msg.results_in;
            if complete {
                // A complete set carries every secret and config the node needs.
                s.secrets.clear();
                s.configs.clear();
            }
        }
        let mut seen = HashSet::new();
        for change in msg.changes {
            if complete && change.kind == ChangeKind::Task as i32 {
                seen.insert(change.id.clone());
            }
            self.apply_change(change)?;
        }
        if complete {
            // Everything not in a complete set goes: it was removed while we were away.
            let gone: Vec<String> = {
                let s = self.state.lock().unwrap();
                s.runners
                    .keys()
                    .filter(|id| !seen.contains(*id))
                    .cloned()
                    .collect()
            };
            for id in gone {
                self.remove(&id);
            }
        }
        Ok(())
    }

    fn apply_change(&self, change: AssignmentChange) -> Result<(), AssignmentError> {
        let remove = change.action == ChangeAction::Remove as i32;
        let malformed = |e: serde_json::Error| AssignmentError::Malformed {
            id: change.id.clone(),
            error: e.to_string(),
        };
        match ChangeKind::try_from(change.kind) {
            Ok(ChangeKind::Task) if remove => self.remove(&change.id),
            Ok(ChangeKind::Task) => {
                let task: Task = serde_json::from_slice(&change.object_json).map_err(malformed)?;
                self.upsert(task);
            }
            Ok(ChangeKind::Secret) => {
                let mut s = self.state.lock().unwrap();
                if remove {
                    s.secrets.remove(&change.id);
                } else {
                    let v: Secret =
                        serde_json::from_slice(&change.object_json).map_err(malformed)?;
                    s.secrets.insert(change.id.clone(), v);
                }
            }
            Ok(ChangeKind::Config) => {
                let mut s = self.state.lock().unwrap();
                if remove {
                    s.configs.remove(&change.id);
                } else {
                    let v: Config =
                        serde_json::from_slice(&change.object_json).map_err(malformed)?;
                    s.configs.insert(change.id.clone(), v);
                }
            }
            Err(_) => tracing::debug!("ignoring an assignment of an unknown kind"),
        }
        Ok(())
    }

    fn upsert(&self, task: Task) {
        let known = {
            let s = self.state.lock().unwrap();
            match s.runners.get(&task.meta.id) {
                Some(r) if *r.removed.borrow() => {
                    // Being removed; a late update must not resurrect it.
                    return;
                }
                Some(r) => {
                    r.assigned.send_replace(Arc::new(task.clone()));
                    true
                }
                None => false,
            }
        };
        if !known {
            self.spawn(task);
        }
    }

    fn remove(&self, task_id: &str) {
        let s = self.state.lock().unwrap();
        if let Some(r) = s.runners.get(task_id) {
            r.removed.send_replace(true);
        }
    }

    /// Every task's current status as last recorded (re-sent on each new session).
    pub fn statuses(&self) -> Vec<(String, TaskStatus)> {
        self.ctx
            .db
            .load()
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.meta.id.clone(), t.status))
            .collect()
    }

    /// The controller of a task this node runs (for its logs).
    pub fn controller(&self, task_id: &str) -> Option<Arc<dyn TaskController>> {
        let s = self.state.lock().unwrap();
        s.runners.get(task_id).and_then(|r| r.controller.clone())
    }

    /// Ids of the tasks this worker drives (including ones being removed).
    pub fn task_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state.lock().unwrap().runners.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Number of secrets held in memory.
    pub fn secret_count(&self) -> usize {
        self.state.lock().unwrap().secrets.len()
    }

    /// Removes workloads of this node that no task here accounts for (left by an agent whose
    /// records were lost), and the files (secrets, configs) of tasks this node does not have
    /// (left by an agent that crashed after making them but before recording the task). Called
    /// after a COMPLETE set, so every task the node should run has a runner by then.
    pub async fn remove_strays(&self) {
        // Both are listed before the known tasks are: a task assigned meanwhile counts as
        // known, and one whose workload or files appear after the listing is not looked at.
        let with_files = self.executor.tasks_with_files();
        let found = match self.executor.adoptable().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot list this node's workloads: {e}");
                Vec::new()
            }
        };
        let known: HashSet<String> = self.task_ids().into_iter().collect();
        for task_id in with_files.iter().filter(|t| !known.contains(*t)) {
            tracing::info!(task = %task_id, "removing the files of a task this node no longer has");
            if let Err(e) = self.executor.release_task_files(task_id) {
                tracing::warn!(task = %task_id, "could not remove a stray task's files: {e}");
            }
        }
        for w in found {
            if w.node_id != *self.node_id || known.contains(&w.task_id) {
                continue;
            }
            tracing::info!(task = %w.task_id, "removing a workload of a task this node no longer has");
            // The executor finds workloads by task id; the spec only has to be acceptable.
            let stub = Task {
                meta: Meta::with_id(w.task_id.clone()),
                service_id: w.service_id.clone(),
                node_id: w.node_id.clone(),
                spec: TaskSpec {
                    container_spec: Some(ContainerSpec {
                        image: "stray".into(),
                        command: vec!["true".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            match self
                .executor
                .controller(&stub, Arc::new(crate::exec::NoDependencies))
            {
                Ok(ctl) => {
                    if let Err(e) = ctl.remove().await {
                        tracing::warn!(task = %w.task_id, "could not remove a stray workload: {e}");
                    }
                }
                Err(e) => tracing::warn!(task = %w.task_id, "stray workload: {e}"),
            }
        }
    }

    /// Stops every runner, leaving the workloads as they are (a restarted agent adopts them).
    pub async fn stop(&self) {
        let runners: Vec<RunnerHandle> = {
            let mut s = self.state.lock().unwrap();
            s.runners.drain().map(|(_, r)| r).collect()
        };
        for r in runners {
            r.join.abort();
            let _ = r.join.await;
        }
    }

    /// Removes every task's workload and record (the node leaves the swarm).
    pub async fn remove_all(&self) {
        let runners: Vec<RunnerHandle> = {
            let mut s = self.state.lock().unwrap();
            s.runners.drain().map(|(_, r)| r).collect()
        };
        for r in runners {
            r.join.abort();
            let _ = r.join.await;
            if let Some(ctl) = &r.controller {
                let _ = ctl.remove().await;
            }
        }
        for t in self.ctx.db.load().unwrap_or_default() {
            let _ = self.ctx.db.remove(&t.meta.id);
        }
    }
}
