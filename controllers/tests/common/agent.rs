//! A fake agent: watches the tasks assigned to its nodes and reports their observed state
//! moving forward through `Op::TaskStatus` transactions, as a real agent's status reports do.
//! What happens to each task is up to the test ([`Fate`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_store::model::{ContainerStatus, Kind, Object, Task, TaskState, TaskStatus, Timestamp};
use shoal_store::{Op, Store, Txn, WatchFilter, WatchMessage, WatchRequest, WatchStart};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// What happens to a task on a fake node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Starts and keeps running (jobs: keep running too).
    Run,
    /// Prepares but never starts: stays READY.
    Hold,
    /// Fails when started (exit 1), before reaching RUNNING.
    FailOnStart,
    /// Runs, then fails (exit 1).
    FailAfterRunning,
    /// Runs, then exits 0 (COMPLETE).
    Complete,
    /// Refused before starting.
    Reject,
}

/// Decides each task's fate; called again whenever the agent looks at the task.
pub type FateFn = Arc<dyn Fn(&Task) -> Fate + Send + Sync>;

/// A running fake agent.
pub struct FakeAgent {
    nodes: Arc<Mutex<BTreeSet<String>>>,
    poke: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Everything runs.
pub fn always(f: Fate) -> FateFn {
    Arc::new(move |_| f)
}

fn status(state: TaskState, message: &str, exit: Option<i64>) -> TaskStatus {
    let mut s = TaskStatus::new(state, Timestamp::now(), message);
    if let Some(code) = exit {
        s.container_status = Some(ContainerStatus {
            container_id: "c".into(),
            pid: 0,
            exit_code: code,
        });
        if code != 0 {
            s.err = format!("task: non-zero exit ({code})");
        }
    }
    s
}

/// The next status an agent would report for `t`, if any.
fn next(t: &Task, fate: Fate) -> Option<TaskStatus> {
    let (s, d) = (t.status.state, t.desired_state);
    if s >= TaskState::Complete {
        return None;
    }
    if d >= TaskState::Shutdown {
        return Some(status(TaskState::Shutdown, "shutdown", Some(0)));
    }
    if fate == Fate::Reject {
        return Some(status(TaskState::Rejected, "rejected", None));
    }
    let wants_start = d >= TaskState::Running;
    match s {
        _ if s < TaskState::Ready => Some(status(TaskState::Ready, "prepared", None)),
        TaskState::Ready if !wants_start || fate == Fate::Hold => None,
        TaskState::Ready if fate == Fate::FailOnStart => {
            Some(status(TaskState::Failed, "starting", Some(1)))
        }
        TaskState::Ready | TaskState::Starting => Some(status(TaskState::Running, "started", None)),
        TaskState::Running => match fate {
            Fate::FailAfterRunning | Fate::FailOnStart => {
                Some(status(TaskState::Failed, "finished", Some(1)))
            }
            Fate::Complete => Some(status(TaskState::Complete, "finished", Some(0))),
            _ => None,
        },
        _ => None,
    }
}

impl FakeAgent {
    /// Starts an agent for `nodes`, reporting through `store`.
    pub fn start(store: Store, nodes: impl IntoIterator<Item = String>, fate: FateFn) -> FakeAgent {
        let nodes = Arc::new(Mutex::new(nodes.into_iter().collect::<BTreeSet<_>>()));
        let poke = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(store, nodes.clone(), fate, poke.clone(), stop_rx));
        FakeAgent {
            nodes,
            poke,
            stop,
            task,
        }
    }

    /// Adds a node to the agent.
    pub fn add_node(&self, id: &str) {
        self.nodes.lock().unwrap().insert(id.to_string());
        self.poke.notify_one();
    }

    /// Makes the agent look at every task again (after a test changed what the fate says).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Stops the agent.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    store: Store,
    nodes: Arc<Mutex<BTreeSet<String>>>,
    fate: FateFn,
    poke: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
    // What was reported per task and not seen back yet, so nothing is sent twice.
    let mut sent: HashMap<String, TaskState> = HashMap::new();
    'outer: loop {
        let req = WatchRequest::new(WatchStart::Snapshot).filter(WatchFilter::kinds([Kind::Task]));
        let mut w = match store.watch(req).await {
            Ok(w) => w,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut retry = false;
        loop {
            let msg = tokio::select! {
                _ = stop.changed() => return,
                _ = poke.notified() => None,
                _ = tokio::time::sleep(Duration::from_millis(100)), if retry => None,
                m = w.next() => match m {
                    Some(Ok(m)) => Some(m),
                    _ => continue 'outer,
                },
            };
            match msg {
                Some(WatchMessage::InitBegin { .. }) => tasks.clear(),
                Some(WatchMessage::InitObjects(objs)) => {
                    for o in objs {
                        if let Object::Task(t) = o.as_ref() {
                            tasks.insert(t.meta.id.clone(), t.clone());
                        }
                    }
                }
                Some(WatchMessage::Commit(c)) => {
                    for e in &c.events {
                        if let Object::Task(t) = e.object.as_ref() {
                            if e.action == shoal_store::Action::Delete {
                                tasks.remove(&t.meta.id);
                            } else {
                                tasks.insert(t.meta.id.clone(), t.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
            let mine = nodes.lock().unwrap().clone();
            let mut ops = Vec::new();
            for t in tasks.values() {
                if !mine.contains(&t.node_id) {
                    continue;
                }
                if sent.get(&t.meta.id).is_some_and(|s| *s > t.status.state) {
                    continue;
                }
                if let Some(st) = next(t, fate(t)) {
                    sent.insert(t.meta.id.clone(), st.state);
                    ops.push(Op::TaskStatus {
                        task_id: t.meta.id.clone(),
                        node_id: t.node_id.clone(),
                        status: serde_json::to_value(&st).unwrap(),
                    });
                }
            }
            retry = false;
            if !ops.is_empty() {
                let txn = Txn {
                    ops,
                    fence_term: None,
                };
                if store.submit(txn).await.is_err() {
                    // Report again on the next round.
                    sent.clear();
                    retry = true;
                }
            }
        }
    }
}
