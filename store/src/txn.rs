//! Transactions: what callers submit, how the state machine judges them, and what they get back.
//!
//! A transaction is a list of operations applied atomically. Every update and delete names the
//! version the caller read; if the stored object has moved on, the whole transaction is rejected
//! with "update out of sequence" and nothing changes. Validation runs on apply, on every manager,
//! from the transaction alone and the state before it, so all replicas decide the same way.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Kind, Object, TaskState};

/// Identifies one submitted transaction across retries, so a retry after a lost reply is answered
/// with the original result instead of being applied twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxnId {
    /// Random per store handle.
    pub client: u64,
    /// Increasing per store handle.
    pub seq: u64,
}

/// One change inside a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Create a new object; its id must be unused and its name (if the kind has unique names) free.
    Create(Object),
    /// Replace an object; `expected_version` is the version the caller read.
    Update {
        /// The new object (its `meta.id` names the object; version and timestamps are set by the store).
        object: Object,
        /// Version the caller read; a mismatch rejects the transaction.
        expected_version: u64,
    },
    /// Delete an object.
    Delete {
        /// Kind of the object.
        kind: Kind,
        /// Its id.
        id: String,
        /// Version the caller read, or `None` to delete whatever version is stored.
        expected_version: Option<u64>,
    },
    /// Move a task's observed state forward (written by the dispatcher for agents). A status
    /// whose state is older than the stored one is dropped without failing the transaction, so
    /// observed state never goes backwards.
    TaskStatus {
        /// The task.
        task_id: String,
        /// The node that reports it; a report from another node than the task's is dropped.
        node_id: String,
        /// The new status, as the agent reported it (Docker `TaskStatus` JSON).
        status: serde_json::Value,
    },
}

impl Op {
    /// The kind and id the operation touches.
    pub fn target(&self) -> (Kind, &str) {
        match self {
            Op::Create(o) | Op::Update { object: o, .. } => (o.kind(), o.id()),
            Op::Delete { kind, id, .. } => (*kind, id),
            Op::TaskStatus { task_id, .. } => (Kind::Task, task_id),
        }
    }
}

/// An atomic list of operations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
    /// When set, the transaction only applies if the Raft entry carrying it was appended by the
    /// leader of this term: writes of a controller whose leader was deposed are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_term: Option<u64>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a create.
    pub fn create(mut self, object: impl Into<Object>) -> Self {
        self.ops.push(Op::Create(object.into()));
        self
    }

    /// Adds an update guarded by the version of the object as passed (its `meta.version`).
    pub fn update(mut self, object: impl Into<Object>) -> Self {
        let object = object.into();
        let expected_version = object.version();
        self.ops.push(Op::Update {
            object,
            expected_version,
        });
        self
    }

    /// Adds a delete guarded by `expected_version` (or unguarded with `None`).
    pub fn delete(
        mut self,
        kind: Kind,
        id: impl Into<String>,
        expected_version: Option<u64>,
    ) -> Self {
        self.ops.push(Op::Delete {
            kind,
            id: id.into(),
            expected_version,
        });
        self
    }

    /// Fences the transaction to a leader term (see [`Txn::fence_term`]).
    pub fn fenced(mut self, term: u64) -> Self {
        self.fence_term = Some(term);
        self
    }

    /// Whether the transaction has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Why the state machine rejected a transaction. Deterministic: every replica gives the same one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxnError {
    /// The object changed since the caller read it.
    #[error("update out of sequence")]
    OutOfSequence {
        /// Kind of the object.
        kind: Kind,
        /// Its id.
        id: String,
        /// Version the caller read.
        expected: u64,
        /// Version stored.
        actual: u64,
    },
    /// The object does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// An object with this id already exists.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// Another object of the kind already has this name (names are unique case-insensitively).
    #[error("{kind} with name {name} already exists")]
    NameConflict {
        /// Kind.
        kind: Kind,
        /// The name asked for.
        name: String,
        /// Id of the object holding it.
        existing_id: String,
    },
    /// The transaction was fenced to a leader term that is no longer current.
    #[error("write fenced: proposed under leader term {fence_term}, committed under term {entry_term}; the proposer is no longer leader")]
    Fenced {
        /// Term the writer believed it led.
        fence_term: u64,
        /// Term of the leader that appended the entry.
        entry_term: u64,
    },
    /// The transaction itself is malformed.
    #[error("invalid transaction: {0}")]
    Invalid(String),
}

/// What a committed transaction changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    /// The revision (Raft log index) that committed it; every object it wrote has this version.
    pub revision: u64,
    /// The objects as stored after the commit, in operation order (deleted objects as they were
    /// last stored). Task status reports that were dropped as stale are absent.
    pub objects: Vec<Arc<Object>>,
}

/// The per-transaction result the state machine produces.
pub type TxnResult = Result<Committed, TxnError>;

/// What happened to one object in a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Created.
    Create,
    /// Changed.
    Update,
    /// Deleted (the event carries the last stored object: a tombstone).
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "remove",
        })
    }
}

/// One object change, as watchers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The object after the change; for deletes, the object as last stored.
    pub object: Arc<Object>,
    /// The object before the change (updates and deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Arc<Object>>,
}

impl Event {
    /// Kind of the changed object.
    pub fn kind(&self) -> Kind {
        self.object.kind()
    }
}

/// Everything one revision changed, delivered to watchers as one message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The revision.
    pub revision: u64,
    /// Leader clock when the revision was proposed.
    pub at: crate::model::Timestamp,
    /// The changes, in commit order.
    pub events: Vec<Event>,
}

impl Commit {
    /// The commit without the objects before each change (what is kept on disk: the previous
    /// objects are only offered to live watchers).
    pub fn without_prev(&self) -> Commit {
        Commit {
            revision: self.revision,
            at: self.at,
            events: self
                .events
                .iter()
                .map(|e| Event {
                    action: e.action,
                    object: e.object.clone(),
                    prev: None,
                })
                .collect(),
        }
    }
}

/// Returns whether `new` is a valid observed-state successor of `old` (never backwards).
pub fn state_moves_forward(old: TaskState, new: TaskState) -> bool {
    new >= old
}
