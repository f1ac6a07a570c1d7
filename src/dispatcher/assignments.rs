//! What each node must run: the leader's index of tasks by node (plus the secrets and configs they
//! reference), fed by one store watch, and the `Assignments` streams of the registered nodes.
//!
//! One watch for the whole dispatcher (not one per node) keeps the store's fan-out cost
//! independent of the number of nodes. The index and the subscriber list change under one lock,
//! so a subscriber's COMPLETE set is exactly the state after the last commit applied, and every
//! later commit reaches it as an INCREMENTAL message: no gap, no replay.
//!
//! Rules (SwarmKit's):
//! - a node's set is every task with `node_id` = the node and observed state >= ASSIGNED;
//! - a task update that changes neither the desired state nor the set membership is not echoed
//!   (it is the agent's own status report coming back);
//! - secrets and configs are sent with the first task that references them while it is at most
//!   RUNNING, and removed when the last such task finishes or leaves the set.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use shoal_proto::dispatcher::assignment_change::{Action as ChangeAction, Kind as ChangeKind};
use shoal_proto::dispatcher::assignments_message::Type as MessageType;
use shoal_proto::dispatcher::{AssignmentChange, AssignmentsMessage};
use shoal_store::model::{Config, Object, Secret, Task, TaskState};
use shoal_store::{Action, Commit, Obj};
use tokio::sync::mpsc;
use tonic::Status;

/// Messages a subscriber may have queued before it is considered stuck and dropped.
pub const SUBSCRIBER_BUFFER: usize = 256;

/// The sending half of one `Assignments` stream.
pub type AssignmentSender = mpsc::Sender<Result<AssignmentsMessage, Status>>;

struct Subscriber {
    session_id: String,
    seq: u64,
    tx: AssignmentSender,
    /// Tasks whose secret/config references are counted (in the set and at most RUNNING).
    counted: HashSet<String>,
    secrets: HashMap<String, usize>,
    configs: HashMap<String, usize>,
}

/// The index of assignments and the streams subscribed to it.
#[derive(Default)]
pub struct AssignmentIndex {
    tasks: HashMap<String, HashMap<String, Obj<Task>>>,
    secrets: HashMap<String, Obj<Secret>>,
    configs: HashMap<String, Obj<Config>>,
    subscribers: HashMap<String, Subscriber>,
}

fn in_set(t: &Task) -> bool {
    !t.node_id.is_empty() && t.status.state >= TaskState::Assigned
}

fn counts_refs(t: &Task) -> bool {
    t.status.state <= TaskState::Running
}

fn secret_ids(t: &Task) -> Vec<String> {
    t.spec
        .container()
        .map(|c| c.secrets.iter().map(|s| s.secret_id.clone()).collect())
        .unwrap_or_default()
}

fn config_ids(t: &Task) -> Vec<String> {
    t.spec
        .container()
        .map(|c| c.configs.iter().map(|s| s.config_id.clone()).collect())
        .unwrap_or_default()
}

fn change<T: serde::Serialize>(kind: ChangeKind, id: &str, object: Option<&T>) -> AssignmentChange {
    let (action, object_json) = match object {
        Some(o) => (
            ChangeAction::Update,
            serde_json::to_vec(o).expect("store objects always serialize"),
        ),
        None => (ChangeAction::Remove, Vec::new()),
    };
    AssignmentChange {
        action: action as i32,
        kind: kind as i32,
        id: id.to_string(),
        object_json,
    }
}

fn task_obj(o: &Arc<Object>) -> Option<Obj<Task>> {
    Obj::new(o.clone())
}

impl Subscriber {
    /// Starts counting `t`'s references if it should be counted and is not; stops if the
    /// reverse. Pushes the secret/config changes that follow into `out`.
    fn recount(
        &mut self,
        task_id: &str,
        task: Option<&Task>,
        secrets: &HashMap<String, Obj<Secret>>,
        configs: &HashMap<String, Obj<Config>>,
        prev: Option<&Task>,
        out: &mut Vec<AssignmentChange>,
    ) {
        let should = task.is_some_and(|t| in_set(t) && counts_refs(t));
        let is = self.counted.contains(task_id);
        if should && !is {
            let t = task.expect("should implies a task");
            self.counted.insert(task_id.to_string());
            for id in secret_ids(t) {
                let n = self.secrets.entry(id.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    if let Some(s) = secrets.get(&id) {
                        out.push(change(ChangeKind::Secret, &id, Some(&**s)));
                    }
                }
            }
            for id in config_ids(t) {
                let n = self.configs.entry(id.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    if let Some(c) = configs.get(&id) {
                        out.push(change(ChangeKind::Config, &id, Some(&**c)));
                    }
                }
            }
        } else if !should && is {
            // The references were counted from the task as it was (its spec never changes).
            let Some(t) = prev.or(task) else { return };
            self.counted.remove(task_id);
            for id in secret_ids(t) {
                if let Some(n) = self.secrets.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        self.secrets.remove(&id);
                        out.push(change::<Secret>(ChangeKind::Secret, &id, None));
                    }
                }
            }
            for id in config_ids(t) {
                if let Some(n) = self.configs.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        self.configs.remove(&id);
                        out.push(change::<Config>(ChangeKind::Config, &id, None));
                    }
                }
            }
        }
    }

    /// Sends the next INCREMENTAL message; false when the stream is gone or stuck.
    fn send_incremental(&mut self, changes: Vec<AssignmentChange>) -> bool {
        let msg = AssignmentsMessage {
            r#type: MessageType::Incremental as i32,
            applies_to: self.seq,
            results_in: self.seq + 1,
            changes,
        };
        self.seq += 1;
        self.tx.try_send(Ok(msg)).is_ok()
    }
}

impl AssignmentIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an object of the initial snapshot (or of a rebuild).
    pub fn load(&mut self, o: &Arc<Object>) {
        match o.as_ref() {
            Object::Task(t) if in_set(t) => {
                if let Some(obj) = task_obj(o) {
                    self.tasks
                        .entry(t.node_id.clone())
                        .or_default()
                        .insert(t.meta.id.clone(), obj);
                }
            }
            Object::Secret(s) => {
                if let Some(obj) = Obj::new(o.clone()) {
                    self.secrets.insert(s.meta.id.clone(), obj);
                }
            }
            Object::Config(c) => {
                if let Some(obj) = Obj::new(o.clone()) {
                    self.configs.insert(c.meta.id.clone(), obj);
                }
            }
            _ => {}
        }
    }

    /// Replaces the index with `fresh` (a rebuilt snapshot) and sends every subscriber a new
    /// COMPLETE set: after a rebuild no incremental diff is known.
    pub fn replace_with(&mut self, fresh: AssignmentIndex) {
        let subscribers = std::mem::take(&mut self.subscribers);
        self.tasks = fresh.tasks;
        self.secrets = fresh.secrets;
        self.configs = fresh.configs;
        for (node, sub) in subscribers {
            self.subscribe(&node, sub.session_id, sub.tx);
        }
    }

    /// Number of tasks assigned to `node_id` (in its set).
    pub fn task_count(&self, node_id: &str) -> usize {
        self.tasks.get(node_id).map_or(0, HashMap::len)
    }

    /// Subscribes the `Assignments` stream of `node_id`'s session `session_id`, replacing any
    /// earlier stream of the node, and sends it the COMPLETE set.
    pub fn subscribe(&mut self, node_id: &str, session_id: String, tx: AssignmentSender) {
        let mut sub = Subscriber {
            session_id,
            seq: 1,
            tx,
            counted: HashSet::new(),
            secrets: HashMap::new(),
            configs: HashMap::new(),
        };
        let mut changes = Vec::new();
        let mut refs = Vec::new();
        if let Some(tasks) = self.tasks.get(node_id) {
            for (id, t) in tasks {
                changes.push(change(ChangeKind::Task, id, Some(&**t)));
                sub.recount(id, Some(t), &self.secrets, &self.configs, None, &mut refs);
            }
        }
        // Secrets and configs first: a task is never started before what it references.
        refs.extend(changes);
        let msg = AssignmentsMessage {
            r#type: MessageType::Complete as i32,
            applies_to: 0,
            results_in: sub.seq,
            changes: refs,
        };
        if sub.tx.try_send(Ok(msg)).is_ok() {
            self.subscribers.insert(node_id.to_string(), sub);
        }
    }

    /// Drops the stream of `node_id` if it belongs to `session_id`.
    pub fn unsubscribe(&mut self, node_id: &str, session_id: &str) {
        if self
            .subscribers
            .get(node_id)
            .is_some_and(|s| s.session_id == session_id)
        {
            self.subscribers.remove(node_id);
        }
    }

    /// Ends every stream with `why` (the term is over).
    pub fn close_all(&mut self, why: Status) {
        for (_, sub) in self.subscribers.drain() {
            let _ = sub.tx.try_send(Err(why.clone()));
        }
    }

    /// Whether `node_id` has a live stream.
    pub fn is_subscribed(&self, node_id: &str) -> bool {
        self.subscribers.contains_key(node_id)
    }

    /// Applies one commit and sends each affected subscriber one INCREMENTAL message with all of
    /// its changes. Subscribers whose stream is gone or full are dropped (their agent reconnects
    /// and gets a COMPLETE set).
    pub fn apply(&mut self, commit: &Commit) {
        let mut out: HashMap<String, Vec<AssignmentChange>> = HashMap::new();
        for event in &commit.events {
            match event.object.as_ref() {
                Object::Task(_) => self.apply_task(event, &mut out),
                Object::Secret(s) => {
                    let id = s.meta.id.clone();
                    let obj = (event.action != Action::Delete)
                        .then(|| Obj::<Secret>::new(event.object.clone()))
                        .flatten();
                    match &obj {
                        Some(o) => self.secrets.insert(id.clone(), o.clone()),
                        None => self.secrets.remove(&id),
                    };
                    for (node, sub) in &self.subscribers {
                        if sub.secrets.contains_key(&id) {
                            let c = change(ChangeKind::Secret, &id, obj.as_deref());
                            out.entry(node.clone()).or_default().push(c);
                        }
                    }
                }
                Object::Config(c) => {
                    let id = c.meta.id.clone();
                    let obj = (event.action != Action::Delete)
                        .then(|| Obj::<Config>::new(event.object.clone()))
                        .flatten();
                    match &obj {
                        Some(o) => self.configs.insert(id.clone(), o.clone()),
                        None => self.configs.remove(&id),
                    };
                    for (node, sub) in &self.subscribers {
                        if sub.configs.contains_key(&id) {
                            let c = change(ChangeKind::Config, &id, obj.as_deref());
                            out.entry(node.clone()).or_default().push(c);
                        }
                    }
                }
                _ => {}
            }
        }
        for (node, changes) in out {
            if changes.is_empty() {
                continue;
            }
            let alive = match self.subscribers.get_mut(&node) {
                Some(sub) => sub.send_incremental(changes),
                None => continue,
            };
            if !alive {
                self.subscribers.remove(&node);
            }
        }
    }

    fn apply_task(
        &mut self,
        event: &shoal_store::Event,
        out: &mut HashMap<String, Vec<AssignmentChange>>,
    ) {
        let prev: Option<&Task> = event.prev.as_deref().and_then(|o| match o {
            Object::Task(t) => Some(t),
            _ => None,
        });
        let now: Option<Obj<Task>> = (event.action != Action::Delete)
            .then(|| task_obj(&event.object))
            .flatten();
        let was = prev.filter(|t| in_set(t));
        let is = now.as_ref().filter(|t| in_set(t));
        let id = event.object.id().to_string();

        if let Some(old) = was {
            let moved = is.is_none_or(|t| t.node_id != old.node_id);
            if moved {
                if let Some(tasks) = self.tasks.get_mut(&old.node_id) {
                    tasks.remove(&id);
                    if tasks.is_empty() {
                        self.tasks.remove(&old.node_id);
                    }
                }
                if let Some(sub) = self.subscribers.get_mut(&old.node_id) {
                    let changes = out.entry(old.node_id.clone()).or_default();
                    changes.push(change::<Task>(ChangeKind::Task, &id, None));
                    sub.recount(&id, None, &self.secrets, &self.configs, Some(old), changes);
                }
            }
        }
        let Some(t) = is else { return };
        let node = t.node_id.clone();
        let echo = match was {
            Some(old) if old.node_id == t.node_id => old.desired_state != t.desired_state,
            _ => true,
        };
        self.tasks
            .entry(node.clone())
            .or_default()
            .insert(id.clone(), t.clone());
        if let Some(sub) = self.subscribers.get_mut(&node) {
            let changes = out.entry(node).or_default();
            // References first, so the agent has them before it acts on the task.
            let mut refs = Vec::new();
            sub.recount(&id, Some(t), &self.secrets, &self.configs, was, &mut refs);
            changes.extend(refs);
            if echo {
                changes.push(change(ChangeKind::Task, &id, Some(&**t)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_store::model::{
        ContainerSpec, Meta, SecretReference, SecretSpec, TaskSpec, TaskStatus, Timestamp,
    };
    use shoal_store::Event;

    use super::*;

    fn task(id: &str, node: &str, state: TaskState, desired: TaskState) -> Task {
        Task {
            meta: Meta::with_id(id),
            node_id: node.into(),
            status: TaskStatus::new(state, Timestamp::now(), ""),
            desired_state: desired,
            ..Default::default()
        }
    }

    fn with_secret(mut t: Task, secret: &str) -> Task {
        t.spec = TaskSpec {
            container_spec: Some(ContainerSpec {
                image: "img".into(),
                secrets: vec![SecretReference {
                    secret_id: secret.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        t
    }

    fn secret(id: &str) -> Secret {
        Secret {
            meta: Meta::with_id(id),
            spec: SecretSpec::default(),
        }
    }

    fn commit(revision: u64, events: Vec<(Action, Object, Option<Object>)>) -> Commit {
        Commit {
            revision,
            at: Timestamp::now(),
            events: events
                .into_iter()
                .map(|(action, object, prev)| Event {
                    action,
                    object: Arc::new(object),
                    prev: prev.map(Arc::new),
                })
                .collect(),
        }
    }

    type Rx = mpsc::Receiver<Result<AssignmentsMessage, Status>>;

    fn next(rx: &mut Rx) -> AssignmentsMessage {
        rx.try_recv().expect("a message").expect("not an error")
    }

    fn ids(m: &AssignmentsMessage, action: ChangeAction, kind: ChangeKind) -> Vec<String> {
        let mut v: Vec<String> = m
            .changes
            .iter()
            .filter(|c| c.action == action as i32 && c.kind == kind as i32)
            .map(|c| c.id.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn complete_set_then_chained_incremental_changes() {
        use TaskState::*;
        let mut idx = AssignmentIndex::new();
        for o in [
            task("t1", "n1", Assigned, Running),
            task("t2", "n1", Running, Running),
            task("t3", "n2", Assigned, Running),
            task("t4", "n1", Pending, Running),
        ] {
            idx.load(&Arc::new(Object::Task(o)));
        }
        let (tx, mut rx) = mpsc::channel(16);
        idx.subscribe("n1", "s1".into(), tx);
        let complete = next(&mut rx);
        assert_eq!(complete.r#type, MessageType::Complete as i32);
        assert_eq!(complete.applies_to, 0);
        assert_eq!(
            ids(&complete, ChangeAction::Update, ChangeKind::Task),
            ["t1", "t2"]
        );

        // The scheduler assigns t4 to n1 and t5 to n2 in one commit.
        idx.apply(&commit(
            10,
            vec![
                (
                    Action::Update,
                    Object::Task(task("t4", "n1", Assigned, Running)),
                    Some(Object::Task(task("t4", "", Pending, Running))),
                ),
                (
                    Action::Update,
                    Object::Task(task("t5", "n2", Assigned, Running)),
                    Some(Object::Task(task("t5", "", Pending, Running))),
                ),
            ],
        ));
        let m1 = next(&mut rx);
        assert_eq!(m1.r#type, MessageType::Incremental as i32);
        assert_eq!(m1.applies_to, complete.results_in);
        assert_eq!(ids(&m1, ChangeAction::Update, ChangeKind::Task), ["t4"]);

        // The agent's own status report is not echoed.
        idx.apply(&commit(
            11,
            vec![(
                Action::Update,
                Object::Task(task("t1", "n1", Running, Running)),
                Some(Object::Task(task("t1", "n1", Assigned, Running))),
            )],
        ));
        assert!(rx.try_recv().is_err(), "status-only change echoed");

        // A desired-state change is sent; then the task is deleted.
        idx.apply(&commit(
            12,
            vec![(
                Action::Update,
                Object::Task(task("t2", "n1", Running, Shutdown)),
                Some(Object::Task(task("t2", "n1", Running, Running))),
            )],
        ));
        let m2 = next(&mut rx);
        assert_eq!(m2.applies_to, m1.results_in);
        assert_eq!(ids(&m2, ChangeAction::Update, ChangeKind::Task), ["t2"]);
        let gone = task("t2", "n1", Shutdown, Shutdown);
        idx.apply(&commit(
            13,
            vec![(
                Action::Delete,
                Object::Task(gone.clone()),
                Some(Object::Task(gone)),
            )],
        ));
        let m3 = next(&mut rx);
        assert_eq!(m3.applies_to, m2.results_in);
        assert_eq!(m3.results_in, m2.results_in + 1);
        assert_eq!(ids(&m3, ChangeAction::Remove, ChangeKind::Task), ["t2"]);
        assert_eq!(idx.task_count("n1"), 2);
        assert_eq!(idx.task_count("n2"), 2);

        // A new session's stream starts over with a COMPLETE set of the current state.
        let (tx2, mut rx2) = mpsc::channel(16);
        idx.subscribe("n1", "s2".into(), tx2);
        let again = next(&mut rx2);
        assert_eq!(again.r#type, MessageType::Complete as i32);
        assert_eq!(
            ids(&again, ChangeAction::Update, ChangeKind::Task),
            ["t1", "t4"]
        );
        // The replaced stream's unsubscribe does not remove the new one.
        idx.unsubscribe("n1", "s1");
        assert!(idx.is_subscribed("n1"));
    }

    #[test]
    fn secrets_follow_the_tasks_that_reference_them() {
        use TaskState::*;
        let mut idx = AssignmentIndex::new();
        idx.load(&Arc::new(Object::Secret(secret("sec1"))));
        let (tx, mut rx) = mpsc::channel(16);
        idx.subscribe("n1", "s1".into(), tx);
        assert!(next(&mut rx).changes.is_empty());

        let a = with_secret(task("a", "n1", Assigned, Running), "sec1");
        let b = with_secret(task("b", "n1", Assigned, Running), "sec1");
        idx.apply(&commit(
            2,
            vec![
                (Action::Create, Object::Task(a.clone()), None),
                (Action::Create, Object::Task(b.clone()), None),
            ],
        ));
        let m = next(&mut rx);
        assert_eq!(ids(&m, ChangeAction::Update, ChangeKind::Secret), ["sec1"]);
        assert_eq!(m.changes[0].kind, ChangeKind::Secret as i32, "secret first");
        assert_eq!(ids(&m, ChangeAction::Update, ChangeKind::Task), ["a", "b"]);

        // One finishes: the secret stays for the other.
        let mut a_done = a.clone();
        a_done.status.state = Complete;
        idx.apply(&commit(
            3,
            vec![(
                Action::Update,
                Object::Task(a_done.clone()),
                Some(Object::Task(a)),
            )],
        ));
        assert!(rx.try_recv().is_err());
        // The other is deleted: the secret goes.
        idx.apply(&commit(
            4,
            vec![(
                Action::Delete,
                Object::Task(b.clone()),
                Some(Object::Task(b)),
            )],
        ));
        let m = next(&mut rx);
        assert_eq!(ids(&m, ChangeAction::Remove, ChangeKind::Secret), ["sec1"]);
        assert_eq!(ids(&m, ChangeAction::Remove, ChangeKind::Task), ["b"]);
    }

    #[test]
    fn a_stuck_stream_is_dropped_and_a_rebuild_resends_complete_sets() {
        use TaskState::*;
        let mut idx = AssignmentIndex::new();
        let (tx, mut rx) = mpsc::channel(1);
        idx.subscribe("n1", "s1".into(), tx);
        idx.apply(&commit(
            2,
            vec![(
                Action::Create,
                Object::Task(task("t1", "n1", Assigned, Running)),
                None,
            )],
        ));
        assert!(!idx.is_subscribed("n1"), "full stream kept");
        let _ = next(&mut rx);

        let (tx, mut rx) = mpsc::channel(4);
        idx.subscribe("n1", "s2".into(), tx);
        let _ = next(&mut rx);
        let mut fresh = AssignmentIndex::new();
        fresh.load(&Arc::new(Object::Task(task("t9", "n1", Assigned, Running))));
        idx.replace_with(fresh);
        let m = next(&mut rx);
        assert_eq!(m.r#type, MessageType::Complete as i32);
        assert_eq!(ids(&m, ChangeAction::Update, ChangeKind::Task), ["t9"]);
    }
}
