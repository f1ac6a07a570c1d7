//! shoal's replicated store: the object model, transactions with per-object versions, revisions,
//! the watch hub, and the openraft log and state machine on RocksDB.
//!
//! Layering: controllers and the binary use [`Store`] (transactions, views, watches, membership)
//! and never see RocksDB or Raft; the binary supplies a [`Transport`] and serves [`Store::handle`].

pub mod backup;
pub mod clock;
pub mod codec;
pub mod config;
pub mod dedup;
pub mod error;
mod forward;
pub mod hub;
pub mod local_transport;
pub mod metrics;
pub mod model;
pub mod mutation;
pub mod quorum;
pub mod raft;
pub mod recovery;
pub mod replica;
pub mod state;
pub mod transport;
pub mod txn;
pub mod view;
pub mod watch;

pub use config::StoreConfig;
pub use error::StoreError;
pub use quorum::{Assessment, VoterChange};
pub use raft::seal::DataKey;
pub use raft::types::{PeerNode, RaftId};
pub use replica::{Leadership, Member, Store, WeakStore};
pub use transport::{ReplyStream, RequestStream, Rpc, Transport, TransportError};
pub use txn::{Action, Commit, Committed, Event, Op, Txn, TxnError};
pub use view::{Obj, View};
pub use watch::{Watch, WatchError, WatchFilter, WatchMessage, WatchRequest, WatchStart};
