//! How managers reach each other. The store only needs to send opaque requests to an address
//! and stream a snapshot file; the binary supplies the real implementation (gRPC over mutual
//! TLS) and tests may supply an in-process one. Keeping sockets out of this crate is the layering
//! rule: `src/` owns every socket.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// The requests managers exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rpc {
    /// Raft AppendEntries.
    AppendEntries,
    /// Raft RequestVote.
    Vote,
    /// Raft pre-vote round.
    PreVote,
    /// Raft leadership transfer.
    TransferLeader,
    /// A batch of transactions forwarded from a follower to the leader.
    Forward,
    /// A follower asks the leader for a linearizable read index.
    ReadIndex,
    /// A manager asks the leader to add it to the Raft membership.
    Join,
    /// Membership change forwarded to the leader.
    RemoveMember,
    /// A follower asks the leader what a change of voters would do to the quorum.
    AssessVoterChange,
}

impl Rpc {
    /// Every RPC.
    pub const ALL: [Rpc; 9] = [
        Rpc::AppendEntries,
        Rpc::Vote,
        Rpc::PreVote,
        Rpc::TransferLeader,
        Rpc::Forward,
        Rpc::ReadIndex,
        Rpc::Join,
        Rpc::RemoveMember,
        Rpc::AssessVoterChange,
    ];

    /// Stable name, used as the gRPC method discriminator.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rpc::AppendEntries => "append_entries",
            Rpc::Vote => "vote",
            Rpc::PreVote => "pre_vote",
            Rpc::TransferLeader => "transfer_leader",
            Rpc::Forward => "forward",
            Rpc::ReadIndex => "read_index",
            Rpc::Join => "join",
            Rpc::RemoveMember => "remove_member",
            Rpc::AssessVoterChange => "assess_voter_change",
        }
    }

    /// Inverse of [`Rpc::as_str`].
    pub fn parse(s: &str) -> Option<Rpc> {
        Rpc::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// Why a call to another manager failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Could not connect (down, partitioned, refused).
    #[error("manager {addr} is unreachable: {reason}")]
    Unreachable {
        /// Target address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("manager {addr} did not answer within {after:?}")]
    Timeout {
        /// Target address.
        addr: String,
        /// The deadline.
        after: Duration,
    },
    /// The request reached the other manager but failed there.
    #[error("manager {addr} failed the request: {reason}")]
    Remote {
        /// Target address.
        addr: String,
        /// What it said.
        reason: String,
    },
}

/// Request bodies sent one after another to one peer over [`Transport::open_stream`].
pub type RequestStream = BoxStream<'static, Vec<u8>>;

/// A peer's answers on a stream: one per request, in request order. The stream ends after the
/// last answer once the requests have ended, or with an error if the exchange broke.
pub type ReplyStream = BoxStream<'static, Result<Vec<u8>, TransportError>>;

/// The client side of manager-to-manager communication.
pub trait Transport: Send + Sync + 'static {
    /// Sends `body` (JSON) to the manager at `addr`; returns its JSON answer.
    fn call(
        &self,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;

    /// Opens a long-lived exchange with the manager at `addr`: every body `requests` yields is
    /// sent as soon as it is available (without waiting for earlier answers) and answered in
    /// order on the returned stream. Used to pipeline Raft replication to a follower.
    fn open_stream(
        &self,
        addr: &str,
        rpc: Rpc,
        requests: RequestStream,
    ) -> BoxFuture<'static, Result<ReplyStream, TransportError>>;

    /// Streams the snapshot file at `file` with a JSON `header` to `addr`, in chunks; returns the
    /// receiver's JSON answer once it installed the snapshot.
    fn send_snapshot(
        &self,
        addr: &str,
        header: Vec<u8>,
        file: PathBuf,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;
}
