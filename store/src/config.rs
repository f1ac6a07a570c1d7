//! Store configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::raft::seal::DataKey;
use crate::raft::state_machine::HistoryRetention;
use crate::raft::types::RaftId;

/// How a manager's store member is set up.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// This member's Raft id (unique in the cluster, never reused).
    pub raft_id: RaftId,
    /// Address other managers reach this member's Raft/store listener at (`host:port`).
    pub advertise_addr: String,
    /// The swarm node id of this manager (may be empty outside a swarm, e.g. in benchmarks).
    pub node_id: String,
    /// Directory for the RocksDB database and snapshots.
    pub data_dir: PathBuf,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// Election timeout range. A follower campaigns once it has heard no leader for the upper
    /// bound (openraft's leader lease) plus a random time in the range, so after a leader dies
    /// writes resume after about `max + min + (max - min) / 3` (the earlier of two followers).
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot every this many log entries.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot for slow followers.
    pub logs_kept_after_snapshot: u64,
    /// Deadline of one attempt to commit (after it, the attempt is retried; retries are safe).
    pub attempt_timeout: Duration,
    /// Overall deadline of a write (after it the caller gets `Unavailable`).
    pub write_deadline: Duration,
    /// Watch history retention.
    pub history: HistoryRetention,
    /// Most transactions group-committed into one Raft entry.
    pub max_batch_txns: usize,
    /// Largest encoded transaction accepted.
    pub max_txn_bytes: usize,
    /// Raft entries in flight at once from this member's proposer.
    pub max_inflight_batches: usize,
    /// The key everything holding user data is sealed with at rest. `None`: the store keeps a
    /// key of its own in clear beside its data (`data.key`); a node that protects the key
    /// itself (autolock) passes it here.
    pub data_key: Option<DataKey>,
    /// The data key being rotated out, when the member stopped in the middle of a rotation:
    /// values still sealed with it are opened, and sealed again with `data_key` when the owner
    /// calls `Store::finish_data_key_rotation`.
    pub retiring_data_key: Option<DataKey>,
    /// Whether values are sealed at rest (default true). False only for benchmarks that measure
    /// what sealing costs (`shoal bench store --compare-encryption`): the store then writes its
    /// Raft log, watch history and snapshots in clear. No `shoal daemon` flag or setting reaches
    /// it, and a manager must never run with it off. A data directory opens only in the mode it
    /// was written in (a directory written in clear is marked, and refused by a sealing store).
    pub seal_at_rest: bool,
    /// How this member encodes its Raft log entries and its messages to other managers
    /// ([`crate::codec`]); it reads either. Binary by default; JSON only for the benchmark
    /// that compares the two (`shoal bench store --compare-encoding`).
    pub encoding: crate::codec::Encoding,
}

impl StoreConfig {
    /// Defaults for a member with the given id, address and directory.
    pub fn new(
        raft_id: RaftId,
        advertise_addr: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        StoreConfig {
            raft_id,
            advertise_addr: advertise_addr.into(),
            node_id: String::new(),
            data_dir: data_dir.into(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(200), Duration::from_millis(400)),
            snapshot_every: 10_000,
            logs_kept_after_snapshot: 1_000,
            attempt_timeout: Duration::from_millis(1_000),
            write_deadline: Duration::from_secs(5),
            history: HistoryRetention::default(),
            max_batch_txns: 2_048,
            max_txn_bytes: 4 << 20,
            max_inflight_batches: 8,
            data_key: None,
            retiring_data_key: None,
            seal_at_rest: true,
            encoding: crate::codec::Encoding::default(),
        }
    }
}
