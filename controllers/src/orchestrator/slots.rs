//! Slots: a replicated service's numbered places (1..N) or a global service's nodes, each with
//! its task history. An orchestrator pass edits copies of the tasks slot by slot, then writes
//! each slot's changes atomically (a replacement is never created without its predecessor
//! being shut down in the same transaction).

use std::collections::BTreeMap;

use shoal_store::model::{Object, Service, Task, TaskState};
use shoal_store::{Obj, Op};

use super::tasks::{creation_order, is_live};
use crate::runtime::Cache;

/// Identifies a slot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotKey {
    /// Replica number (replicated services and jobs).
    Number(u64),
    /// Node id (global services and jobs).
    Node(String),
}

impl SlotKey {
    /// The `Slot` field of tasks created in this slot.
    pub fn slot_number(&self) -> u64 {
        match self {
            SlotKey::Number(n) => *n,
            SlotKey::Node(_) => 0,
        }
    }

    /// The `NodeID` field of tasks created in this slot (empty: the scheduler picks).
    pub fn node_id(&self) -> &str {
        match self {
            SlotKey::Number(_) => "",
            SlotKey::Node(n) => n,
        }
    }
}

/// A task as a pass sees it: the stored one, possibly edited, or a new one.
pub struct Entry {
    stored: Option<Obj<Task>>,
    edited: Option<Task>,
}

impl Entry {
    fn stored(t: Obj<Task>) -> Self {
        Entry {
            stored: Some(t),
            edited: None,
        }
    }

    /// The task as it will be after this pass.
    pub fn task(&self) -> &Task {
        match (&self.edited, &self.stored) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => unreachable!("an entry holds a task"),
        }
    }

    /// Edits the task (copied on first edit).
    pub fn edit(&mut self) -> &mut Task {
        if self.edited.is_none() {
            let copy = self
                .stored
                .as_ref()
                .expect("new entries are always edited")
                .to_owned_value();
            self.edited = Some(copy);
        }
        self.edited.as_mut().expect("just set")
    }

    /// Whether this pass creates the task.
    pub fn is_new(&self) -> bool {
        self.stored.is_none()
    }

    /// Whether this pass changes the task.
    pub fn is_changed(&self) -> bool {
        self.edited.is_some()
    }

    /// Raises the desired state (never lowers it).
    pub fn raise_desired(&mut self, state: TaskState) -> bool {
        if self.task().desired_state >= state {
            return false;
        }
        self.edit().desired_state = state;
        true
    }

    fn op(&self) -> Option<Op> {
        let t = self.edited.as_ref()?;
        Some(match &self.stored {
            None => Op::Create(Object::Task(t.clone())),
            Some(s) => Op::Update {
                object: Object::Task(t.clone()),
                expected_version: s.meta.version.index,
            },
        })
    }
}

/// One slot's tasks, oldest first.
pub struct Slot {
    /// Which slot.
    pub key: SlotKey,
    /// Its tasks (history included, tasks being removed excluded), in creation order.
    pub entries: Vec<Entry>,
}

impl Slot {
    /// An empty slot.
    pub fn new(key: SlotKey) -> Self {
        Slot {
            key,
            entries: Vec::new(),
        }
    }

    /// Indexes of live tasks.
    pub fn live(&self, job: bool) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|i| is_live(self.entries[*i].task(), job))
            .collect()
    }

    /// Whether some task is live.
    pub fn has_live(&self, job: bool) -> bool {
        self.entries.iter().any(|e| is_live(e.task(), job))
    }

    /// The newest task.
    pub fn latest(&self) -> Option<&Task> {
        self.entries.last().map(|e| e.task())
    }

    /// Adds a task created by this pass.
    pub fn create(&mut self, task: Task) {
        self.entries.push(Entry {
            stored: None,
            edited: Some(task),
        });
    }

    /// The writes of this pass for this slot.
    pub fn ops(&self) -> Vec<Op> {
        self.entries.iter().filter_map(Entry::op).collect()
    }
}

/// Groups the tasks of `service_id` into slots with `key_of`, skipping tasks being removed.
pub fn group(
    cache: &Cache,
    service_id: &str,
    mut keep: impl FnMut(&Task) -> bool,
    key_of: impl Fn(&Task) -> SlotKey,
) -> BTreeMap<SlotKey, Slot> {
    let mut tasks: Vec<Obj<Task>> = cache
        .tasks_of_service(service_id)
        .filter(|t| t.desired_state < TaskState::Remove && keep(t))
        .collect();
    tasks.sort_by(|a, b| creation_order(a, b));
    let mut slots: BTreeMap<SlotKey, Slot> = BTreeMap::new();
    for t in tasks {
        let key = key_of(&t);
        slots
            .entry(key.clone())
            .or_insert_with(|| Slot::new(key))
            .entries
            .push(Entry::stored(t));
    }
    slots
}

/// A service as a pass sees it: stored, possibly edited (update status, rollback).
pub struct ServiceDraft {
    stored: Obj<Service>,
    edited: Option<Service>,
}

impl ServiceDraft {
    /// Starts from the stored service.
    pub fn new(stored: Obj<Service>) -> Self {
        ServiceDraft {
            stored,
            edited: None,
        }
    }

    /// The service as it will be after this pass.
    pub fn get(&self) -> &Service {
        self.edited.as_ref().unwrap_or(&self.stored)
    }

    /// Edits the service.
    pub fn edit(&mut self) -> &mut Service {
        if self.edited.is_none() {
            self.edited = Some(self.stored.to_owned_value());
        }
        self.edited.as_mut().expect("just set")
    }

    /// The write of this pass, if the service changed.
    pub fn op(&self) -> Option<Op> {
        let s = self.edited.as_ref()?;
        if s == &*self.stored {
            return None;
        }
        Some(Op::Update {
            object: Object::Service(s.clone()),
            expected_version: self.stored.meta.version.index,
        })
    }

    /// Whether the spec was replaced in this pass (a rollback): tasks must be judged again.
    pub fn spec_changed(&self) -> bool {
        self.edited
            .as_ref()
            .is_some_and(|s| s.spec_version != self.stored.spec_version)
    }
}
