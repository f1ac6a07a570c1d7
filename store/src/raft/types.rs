//! openraft type configuration: what a log entry carries and what applying it returns.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;
use crate::txn::{Txn, TxnId, TxnResult};

/// A Raft member's address book entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of the member's Raft/store gRPC listener.
    pub addr: String,
    /// The swarm node id of the member (empty for store-only members, e.g. in benchmarks).
    #[serde(default)]
    pub node_id: String,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node_id.is_empty() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}@{}", self.node_id, self.addr)
        }
    }
}

/// One Raft entry's payload: many transactions group-committed together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The proposing leader's clock: used as `CreatedAt`/`UpdatedAt` so apply is deterministic.
    pub at: Timestamp,
    /// The transactions, applied in order, each all-or-nothing. Shared: openraft clones
    /// entries to replicate and apply them, and a clone should not copy every object.
    pub txns: std::sync::Arc<Vec<(TxnId, Txn)>>,
}

impl Batch {
    /// A rough encoded size of the batch (see [`crate::model::Object::approx_len`]), without
    /// encoding it.
    pub fn approx_len(&self) -> usize {
        self.txns
            .iter()
            .flat_map(|(_, txn)| txn.ops.iter())
            .map(|op| match op {
                crate::txn::Op::Create(o) | crate::txn::Op::Update { object: o, .. } => {
                    o.approx_len()
                }
                _ => 128,
            })
            .sum()
    }
}

/// A rough encoded size of an entry (see [`Batch::approx_len`]).
pub fn entry_approx_len(entry: &Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(b) => b.approx_len(),
        _ => 256,
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Batch({} txns)", self.txns.len())
    }
}

/// What applying a [`Batch`] returns: one result per transaction, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Per-transaction results.
    pub results: Vec<TxnResult>,
}

openraft::declare_raft_types!(
    /// shoal's Raft types: u64 member ids, standard (one leader per term) leader ids.
    pub TypeConfig:
        D = Batch,
        R = BatchResponse,
        Node = PeerNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// Raft member id.
pub type RaftId = u64;
/// A Raft handle over our state machine.
pub type Raft = openraft::Raft<TypeConfig, crate::raft::state_machine::StateMachine>;
/// Log id.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// Log entry.
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
/// Vote.
pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot backed by a file.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, crate::raft::snapshot::SnapshotFile>;
/// AppendEntries request.
pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
/// AppendEntries response.
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<TypeConfig>;
/// Vote request.
pub type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
/// Vote response.
pub type VoteResponse = openraft::raft::VoteResponse<TypeConfig>;
/// Snapshot response.
pub type SnapshotResponse = openraft::raft::SnapshotResponse<TypeConfig>;
/// Transfer-leader request.
pub type TransferLeaderRequest = openraft::raft::TransferLeaderRequest<TypeConfig>;
