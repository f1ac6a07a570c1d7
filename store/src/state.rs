//! The in-memory state: every object by kind, plus the secondary indexes controllers and the API
//! query. Persistent (structurally shared) maps make a snapshot of the whole state an O(1) clone,
//! so readers, watchers and the snapshot builder each hold a frozen view while apply moves on.

use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};

use crate::model::{Kind, NodeRole, Object, TaskState, Timestamp};

use crate::txn::{Action, Committed, Event, Op, Txn, TxnError, TxnResult};

/// An object id as the state's maps and indexes hold it: shared, so that copying a tree node
/// on write (while a published snapshot still holds it) costs reference counts, not
/// allocations.
pub type Id = Arc<str>;

/// Objects of one kind by id.
pub type ObjectMap = OrdMap<Id, Arc<Object>>;

/// The replicated state at one revision.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Revision (Raft log index) of the last applied entry.
    pub revision: u64,
    objects: [ObjectMap; Kind::ALL.len()],
    names: HashMap<(Kind, String), String>,
    tasks_by_service: OrdSet<(Id, Id)>,
    tasks_by_node: OrdSet<(Id, Id)>,
    tasks_by_slot: OrdSet<(Id, u64, Id)>,
    tasks_by_desired: OrdSet<(TaskState, Id)>,
    nodes_by_role: OrdSet<(NodeRole, Id)>,
}

/// Normalises a name for the case-insensitive uniqueness index.
fn name_key(kind: Kind, name: &str) -> (Kind, String) {
    (kind, name.to_lowercase())
}

impl State {
    /// Objects of `kind` by id.
    pub fn objects(&self, kind: Kind) -> &ObjectMap {
        &self.objects[kind.tag() as usize]
    }

    /// One object.
    pub fn get(&self, kind: Kind, id: &str) -> Option<&Arc<Object>> {
        self.objects(kind).get(id)
    }

    /// The id of the object of `kind` named `name` (case-insensitive).
    pub fn id_by_name(&self, kind: Kind, name: &str) -> Option<&String> {
        self.names.get(&name_key(kind, name))
    }

    /// Ids of the tasks of a service.
    pub fn task_ids_of_service<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let from: (Id, Id) = (Id::from(service_id), Id::from(""));
        self.tasks_by_service
            .range(from..)
            .take_while(move |(s, _)| &**s == service_id)
            .map(|(_, t)| &**t)
    }

    /// Ids of the tasks placed on a node.
    pub fn task_ids_on_node<'a>(&'a self, node_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let from: (Id, Id) = (Id::from(node_id), Id::from(""));
        self.tasks_by_node
            .range(from..)
            .take_while(move |(n, _)| &**n == node_id)
            .map(|(_, t)| &**t)
    }

    /// Ids of the tasks in one slot of a service.
    pub fn task_ids_in_slot<'a>(
        &'a self,
        service_id: &'a str,
        slot: u64,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let from: (Id, u64, Id) = (Id::from(service_id), slot, Id::from(""));
        self.tasks_by_slot
            .range(from..)
            .take_while(move |(s, sl, _)| &**s == service_id && *sl == slot)
            .map(|(_, _, t)| &**t)
    }

    /// Ids of the tasks whose desired state is `state`.
    pub fn task_ids_with_desired(&self, state: TaskState) -> impl Iterator<Item = &str> + '_ {
        let from: (TaskState, Id) = (state, Id::from(""));
        self.tasks_by_desired
            .range(from..)
            .take_while(move |(s, _)| *s == state)
            .map(|(_, t)| &**t)
    }

    /// Ids of the nodes that hold `role`.
    pub fn node_ids_with_role(&self, role: NodeRole) -> impl Iterator<Item = &str> + '_ {
        let from: (NodeRole, Id) = (role, Id::from(""));
        self.nodes_by_role
            .range(from..)
            .take_while(move |(r, _)| *r == role)
            .map(|(_, n)| &**n)
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.objects.iter().map(|m| m.len()).sum()
    }

    /// Whether the state holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every object, kind by kind.
    pub fn all_objects(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.objects.iter().flat_map(|m| m.values())
    }

    /// Inserts or replaces an object and maintains the indexes (no validation; used by apply and
    /// when loading from disk or a snapshot).
    pub fn put(&mut self, object: Arc<Object>) {
        let kind = object.kind();
        let map = &self.objects[kind.tag() as usize];
        let (id, old) = match map.get_key_value(object.id()) {
            Some((k, v)) => (k.clone(), Some(v.clone())),
            None => (Id::from(object.id()), None),
        };
        match old {
            // Only the index entries whose keys changed are touched: an agent's status report
            // changes none, a placement only the node's.
            Some(old) => self.reindex(&old, &object, &id),
            None => self.index(&object, &id),
        }
        self.objects[kind.tag() as usize].insert(id, object);
    }

    /// Removes an object and its index entries; returns it.
    pub fn remove(&mut self, kind: Kind, id: &str) -> Option<Arc<Object>> {
        let old = self.objects[kind.tag() as usize].remove(id)?;
        self.unindex(&old, &Id::from(id));
        Some(old)
    }

    fn index_name(&mut self, o: &Object, id: &Id) {
        if o.kind().has_unique_names() {
            if let Some(name) = o.name().filter(|n| !n.is_empty()) {
                self.names.insert(name_key(o.kind(), name), id.to_string());
            }
        }
    }

    fn unindex_name(&mut self, o: &Object, id: &Id) {
        if o.kind().has_unique_names() {
            if let Some(name) = o.name().filter(|n| !n.is_empty()) {
                let key = name_key(o.kind(), name);
                if self.names.get(&key).map(String::as_str) == Some(&**id) {
                    self.names.remove(&key);
                }
            }
        }
    }

    fn index(&mut self, o: &Object, id: &Id) {
        self.index_name(o, id);
        match o {
            Object::Task(t) => {
                let service = Id::from(t.service_id.as_str());
                self.tasks_by_service.insert((service.clone(), id.clone()));
                self.tasks_by_node
                    .insert((Id::from(t.node_id.as_str()), id.clone()));
                self.tasks_by_slot.insert((service, t.slot, id.clone()));
                self.tasks_by_desired.insert((t.desired_state, id.clone()));
            }
            Object::Node(n) => {
                self.nodes_by_role.insert((n.role, id.clone()));
            }
            _ => {}
        }
    }

    fn unindex(&mut self, o: &Object, id: &Id) {
        self.unindex_name(o, id);
        match o {
            Object::Task(t) => {
                let service = Id::from(t.service_id.as_str());
                self.tasks_by_service.remove(&(service.clone(), id.clone()));
                self.tasks_by_node
                    .remove(&(Id::from(t.node_id.as_str()), id.clone()));
                self.tasks_by_slot.remove(&(service, t.slot, id.clone()));
                self.tasks_by_desired.remove(&(t.desired_state, id.clone()));
            }
            Object::Node(n) => {
                self.nodes_by_role.remove(&(n.role, id.clone()));
            }
            _ => {}
        }
    }

    fn reindex(&mut self, old: &Object, new: &Object, id: &Id) {
        if old.name() != new.name() {
            self.unindex_name(old, id);
            self.index_name(new, id);
        }
        match (old, new) {
            (Object::Task(o), Object::Task(n)) => {
                if o.service_id != n.service_id || o.slot != n.slot {
                    let (before, after) = (
                        Id::from(o.service_id.as_str()),
                        Id::from(n.service_id.as_str()),
                    );
                    self.tasks_by_service.remove(&(before.clone(), id.clone()));
                    self.tasks_by_service.insert((after.clone(), id.clone()));
                    self.tasks_by_slot.remove(&(before, o.slot, id.clone()));
                    self.tasks_by_slot.insert((after, n.slot, id.clone()));
                }
                if o.node_id != n.node_id {
                    self.tasks_by_node
                        .remove(&(Id::from(o.node_id.as_str()), id.clone()));
                    self.tasks_by_node
                        .insert((Id::from(n.node_id.as_str()), id.clone()));
                }
                if o.desired_state != n.desired_state {
                    self.tasks_by_desired.remove(&(o.desired_state, id.clone()));
                    self.tasks_by_desired.insert((n.desired_state, id.clone()));
                }
            }
            (Object::Node(o), Object::Node(n)) => {
                if o.role != n.role {
                    self.nodes_by_role.remove(&(o.role, id.clone()));
                    self.nodes_by_role.insert((n.role, id.clone()));
                }
            }
            _ => {
                self.unindex(old, id);
                self.index(new, id);
            }
        }
    }

    /// Applies one transaction at `revision`, all or nothing. On success the state holds its
    /// changes and the returned events describe them; on error the state is unchanged.
    ///
    /// `entry_term` is the term of the leader that appended the Raft entry (for fencing).
    pub fn apply_txn(
        &mut self,
        txn: &Txn,
        revision: u64,
        at: Timestamp,
        entry_term: u64,
    ) -> (TxnResult, Vec<Event>) {
        if let Some(fence_term) = txn.fence_term {
            if fence_term != entry_term {
                return (
                    Err(TxnError::Fenced {
                        fence_term,
                        entry_term,
                    }),
                    Vec::new(),
                );
            }
        }
        // Apply in place; on a failed op, undo what the earlier ops did (each event records the
        // object it replaced), so a rejected transaction leaves no trace. Cloning the whole state
        // per transaction instead would copy index nodes on every write.
        let mut events: Vec<Event> = Vec::with_capacity(txn.ops.len());
        for op in &txn.ops {
            match self.apply_op(op, revision, at) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => {}
                Err(e) => {
                    for ev in events.iter().rev() {
                        match (&ev.action, &ev.prev) {
                            (Action::Create, _) => {
                                self.remove(ev.object.kind(), ev.object.id());
                            }
                            (_, Some(prev)) => self.put(prev.clone()),
                            (_, None) => {}
                        }
                    }
                    return (Err(e), Vec::new());
                }
            }
        }
        let objects = events.iter().map(|e| e.object.clone()).collect();
        (Ok(Committed { revision, objects }), events)
    }

    /// A task is only created for a service that exists. Writers judge a service from a view
    /// that may be stale by the time their transaction commits: without this, an orchestrator
    /// pass that began before the service's removal would create a live task of a service that
    /// is gone, still holding its networks (SwarmKit reads the service inside the same
    /// serializable transaction; this is our equivalent). Tasks without a service (network
    /// attachments) are not concerned.
    fn check_task_owner(&self, o: &Object) -> Result<(), TxnError> {
        let Object::Task(t) = o else {
            return Ok(());
        };
        if t.service_id.is_empty() || self.get(Kind::Service, &t.service_id).is_some() {
            return Ok(());
        }
        Err(TxnError::NotFound {
            kind: Kind::Service,
            id: t.service_id.clone(),
        })
    }

    fn check_name_free(&self, o: &Object) -> Result<(), TxnError> {
        if !o.kind().has_unique_names() {
            return Ok(());
        }
        let Some(name) = o.name().filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        match self.id_by_name(o.kind(), name) {
            Some(existing) if existing != o.id() => Err(TxnError::NameConflict {
                kind: o.kind(),
                name: name.to_string(),
                existing_id: existing.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn apply_op(
        &mut self,
        op: &Op,
        revision: u64,
        at: Timestamp,
    ) -> Result<Option<Event>, TxnError> {
        match op {
            Op::Create(object) => {
                let kind = object.kind();
                if object.id().is_empty() {
                    return Err(TxnError::Invalid(format!("{kind} without an id")));
                }
                if self.get(kind, object.id()).is_some() {
                    return Err(TxnError::AlreadyExists {
                        kind,
                        id: object.id().to_string(),
                    });
                }
                self.check_name_free(object)?;
                self.check_task_owner(object)?;
                let mut stored = object.clone();
                if let Object::Service(service) = &mut stored {
                    service.note_spec_written(None, revision);
                }
                let meta = stored.meta_mut();
                meta.version.index = revision;
                meta.created_at = at;
                meta.updated_at = at;
                let stored = Arc::new(stored);
                self.put(stored.clone());
                Ok(Some(Event {
                    action: Action::Create,
                    object: stored,
                    prev: None,
                }))
            }
            Op::Update {
                object,
                expected_version,
            } => {
                let kind = object.kind();
                let id = object.id();
                let current = self
                    .get(kind, id)
                    .cloned()
                    .ok_or_else(|| TxnError::NotFound {
                        kind,
                        id: id.to_string(),
                    })?;
                if current.version() != *expected_version {
                    return Err(TxnError::OutOfSequence {
                        kind,
                        id: id.to_string(),
                        expected: *expected_version,
                        actual: current.version(),
                    });
                }
                self.check_name_free(object)?;
                let mut stored = object.clone();
                if crate::mutation::active("diverge") {
                    if let (Object::Secret(new), Object::Secret(old)) = (&mut stored, &*current) {
                        new.spec.labels = old.spec.labels.clone();
                    }
                }
                if let (Object::Service(service), Object::Service(prev)) = (&mut stored, &*current)
                {
                    service.note_spec_written(Some(prev), revision);
                }
                let meta = stored.meta_mut();
                meta.version.index = revision;
                meta.created_at = current.meta().created_at;
                meta.updated_at = at;
                let stored = Arc::new(stored);
                self.put(stored.clone());
                Ok(Some(Event {
                    action: Action::Update,
                    object: stored,
                    prev: Some(current),
                }))
            }
            Op::Delete {
                kind,
                id,
                expected_version,
            } => {
                let current = self
                    .get(*kind, id)
                    .cloned()
                    .ok_or_else(|| TxnError::NotFound {
                        kind: *kind,
                        id: id.clone(),
                    })?;
                if let Some(expected) = expected_version {
                    if current.version() != *expected {
                        return Err(TxnError::OutOfSequence {
                            kind: *kind,
                            id: id.clone(),
                            expected: *expected,
                            actual: current.version(),
                        });
                    }
                }
                self.remove(*kind, id);
                Ok(Some(Event {
                    action: Action::Delete,
                    object: current.clone(),
                    prev: Some(current),
                }))
            }
            Op::TaskStatus {
                task_id,
                node_id,
                status,
            } => self.apply_task_status(task_id, node_id, status, revision, at),
        }
    }

    fn apply_task_status(
        &mut self,
        task_id: &str,
        node_id: &str,
        status: &serde_json::Value,
        revision: u64,
        at: Timestamp,
    ) -> Result<Option<Event>, TxnError> {
        // A report for a task that is gone, or from a node it is not on, is stale: drop it.
        let Some(current) = self.get(Kind::Task, task_id).cloned() else {
            return Ok(None);
        };
        let Object::Task(task) = current.as_ref() else {
            return Ok(None);
        };
        if task.node_id != node_id {
            return Ok(None);
        }
        let new_state: TaskState = status
            .get("State")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .ok_or_else(|| {
                TxnError::Invalid(format!("task {task_id}: status without a valid State"))
            })?;
        if !crate::txn::state_moves_forward(task.status.state, new_state) {
            return Ok(None);
        }
        let new_status = serde_json::from_value(status.clone())
            .map_err(|e| TxnError::Invalid(format!("task {task_id}: malformed status: {e}")))?;
        let mut updated = task.clone();
        updated.status = new_status;
        updated.meta.version.index = revision;
        updated.meta.updated_at = at;
        let stored = Arc::new(Object::Task(updated));
        self.put(stored.clone());
        Ok(Some(Event {
            action: Action::Update,
            object: stored,
            prev: Some(current),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{new_id, Config, ConfigSpec, Meta};

    fn config(name: &str) -> Object {
        Object::Config(Config {
            meta: Meta::with_id(new_id()),
            spec: ConfigSpec {
                name: name.into(),
                ..Default::default()
            },
        })
    }

    #[test]
    fn a_rejected_transaction_leaves_no_trace() {
        let mut s = State::default();
        let a = config("a");
        let (r, _) = s.apply_txn(&Txn::new().create(a.clone()), 1, Timestamp::now(), 1);
        let a = r.unwrap().objects[0].as_ref().clone();
        let before = s.get(Kind::Config, a.id()).unwrap().clone();

        // Update `a` (valid), create `b` (valid), then a stale update of `a`: all undone.
        let mut renamed = a.clone();
        if let Object::Config(c) = &mut renamed {
            c.spec.name = "a2".into();
        }
        let b = config("b");
        let mut stale = a.clone();
        stale.meta_mut().version.index = 0;
        let txn = Txn {
            ops: vec![
                Op::Update {
                    object: renamed,
                    expected_version: 1,
                },
                Op::Create(b.clone()),
                Op::Update {
                    object: stale,
                    expected_version: 0,
                },
            ],
            fence_term: None,
        };
        let (r, events) = s.apply_txn(&txn, 2, Timestamp::now(), 1);
        assert!(matches!(r, Err(TxnError::OutOfSequence { .. })));
        assert!(events.is_empty());
        assert_eq!(s.get(Kind::Config, a.id()), Some(&before), "update undone");
        assert!(s.get(Kind::Config, b.id()).is_none(), "create undone");
        assert_eq!(
            s.id_by_name(Kind::Config, "a"),
            Some(&a.id().to_string()),
            "name index restored"
        );
        assert!(s.id_by_name(Kind::Config, "a2").is_none());
        assert!(s.id_by_name(Kind::Config, "b").is_none());
    }

    #[test]
    fn indexes_follow_the_keys_that_change() {
        use crate::model::Task;
        let mut s = State::default();
        let task = |node: &str, desired: TaskState| {
            Arc::new(Object::Task(Task {
                meta: Meta::with_id("t1"),
                service_id: "s1".into(),
                slot: 3,
                node_id: node.into(),
                desired_state: desired,
                ..Default::default()
            }))
        };
        s.put(task("", TaskState::Running));
        assert_eq!(s.task_ids_on_node("").collect::<Vec<_>>(), ["t1"]);
        s.put(task("n1", TaskState::Running));
        assert_eq!(s.task_ids_on_node("").count(), 0);
        assert_eq!(s.task_ids_on_node("n1").collect::<Vec<_>>(), ["t1"]);
        assert_eq!(s.task_ids_in_slot("s1", 3).collect::<Vec<_>>(), ["t1"]);
        s.put(task("n1", TaskState::Shutdown));
        assert_eq!(s.task_ids_with_desired(TaskState::Running).count(), 0);
        assert_eq!(
            s.task_ids_with_desired(TaskState::Shutdown)
                .collect::<Vec<_>>(),
            ["t1"]
        );
        assert_eq!(s.task_ids_of_service("s1").collect::<Vec<_>>(), ["t1"]);
        s.remove(Kind::Task, "t1");
        assert_eq!(s.task_ids_of_service("s1").count(), 0);
        assert_eq!(s.task_ids_on_node("n1").count(), 0);
        assert_eq!(s.task_ids_in_slot("s1", 3).count(), 0);
        assert_eq!(s.task_ids_with_desired(TaskState::Shutdown).count(), 0);
    }

    #[test]
    fn fenced_transactions_apply_only_under_their_term() {
        let mut s = State::default();
        let (r, _) = s.apply_txn(
            &Txn::new().create(config("x")).fenced(3),
            1,
            Timestamp::now(),
            4,
        );
        assert!(matches!(
            r,
            Err(TxnError::Fenced {
                fence_term: 3,
                entry_term: 4
            })
        ));
        assert!(s.is_empty());
        let (r, _) = s.apply_txn(
            &Txn::new().create(config("x")).fenced(4),
            2,
            Timestamp::now(),
            4,
        );
        assert!(r.is_ok());
    }
    #[test]
    fn a_task_is_only_created_for_a_service_that_exists() {
        use crate::model::{Service, Task};
        let mut s = State::default();
        let task = |id: &str, service: &str| Task {
            meta: Meta::with_id(id),
            service_id: service.into(),
            ..Default::default()
        };
        // A pass that read the service before it was removed: nothing is written.
        let (r, _) = s.apply_txn(
            &Txn::new().create(task("t1", "gone")),
            1,
            Timestamp::now(),
            1,
        );
        assert!(
            matches!(&r, Err(TxnError::NotFound { kind: Kind::Service, id }) if id == "gone"),
            "{r:?}"
        );
        assert!(s.is_empty());
        // The service created first in the same transaction, or a task of no service: fine.
        let service = Service {
            meta: Meta::with_id("s1"),
            ..Default::default()
        };
        let txn = Txn::new()
            .create(service)
            .create(task("t2", "s1"))
            .create(task("t3", ""));
        let (r, _) = s.apply_txn(&txn, 2, Timestamp::now(), 1);
        assert!(r.is_ok(), "{r:?}");
        // Updating a task whose service is gone is still allowed (agents report, the reaper
        // cleans up).
        let (r, _) = s.apply_txn(
            &Txn::new().delete(Kind::Service, "s1".to_string(), None),
            3,
            Timestamp::now(),
            1,
        );
        assert!(r.is_ok());
        let mut t2 = task("t2", "s1");
        t2.meta.version.index = 2;
        t2.desired_state = TaskState::Remove;
        let (r, _) = s.apply_txn(&Txn::new().update(t2), 4, Timestamp::now(), 1);
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn a_write_built_on_a_task_the_reaper_deleted_is_a_stale_read_and_changes_nothing() {
        use crate::model::{Service, Task};
        use crate::StoreError;
        let mut s = State::default();
        let service = Service {
            meta: Meta::with_id("s1"),
            ..Default::default()
        };
        let task = Task {
            meta: Meta::with_id("t1"),
            service_id: "s1".into(),
            ..Default::default()
        };
        let (r, _) = s.apply_txn(
            &Txn::new().create(service).create(task),
            1,
            Timestamp::now(),
            1,
        );
        assert!(r.is_ok(), "{r:?}");
        // A service removal read t1 (version 1); the reaper deleted it before the removal landed.
        let mut read = s.get(Kind::Task, "t1").unwrap().as_ref().clone();
        let (r, _) = s.apply_txn(
            &Txn::new().delete(Kind::Task, "t1".to_string(), None),
            2,
            Timestamp::now(),
            1,
        );
        assert!(r.is_ok(), "{r:?}");
        if let Object::Task(t) = &mut read {
            t.desired_state = TaskState::Remove;
        }
        let removal = Txn::new()
            .delete(Kind::Service, "s1".to_string(), None)
            .update(read);
        let (r, _) = s.apply_txn(&removal, 3, Timestamp::now(), 1);
        let err = StoreError::Rejected(r.unwrap_err());
        assert!(err.is_stale_read(), "{err:?}");
        assert!(!err.is_out_of_sequence(), "{err:?}");
        assert!(s.get(Kind::Service, "s1").is_some(), "nothing changed");
    }
}
