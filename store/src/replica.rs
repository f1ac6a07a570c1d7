//! [`Store`]: one manager's member of the replicated store, and the API everything else uses.
//!
//! Writes: [`Store::submit`] queues a transaction with this member's proposer, which
//! group-commits everything queued into one Raft entry (on the leader) or forwards the batch to
//! the leader (on a follower). Each transaction carries an id, so a retry after a lost answer is
//! answered from the state machine's memory instead of being applied twice.
//!
//! Reads: [`Store::view`] is this replica's state (never ahead of what is committed);
//! [`Store::linearizable_view`] first confirms with a quorum (ReadIndex) that no newer committed
//! revision exists. Watches: [`Store::watch`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use openraft::async_runtime::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::StreamAppendResult;
use openraft::{ChangeMembers, Config, ReadPolicy, ServerState, SnapshotPolicy};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::codec::{self, Encoding};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::forward::Forwarder;
use crate::model::{Node, NodeRole, RaftMembership};
use crate::quorum::{self, Assessment, Voter, VoterChange};
use crate::raft::db;
use base64::Engine as _;

use crate::raft::log_store::{self, LogStore};
use crate::raft::network::{NetworkFactory, PeerFailures};
use crate::raft::seal::{self, DataKey, Sealer};
use crate::raft::snapshot::SnapshotFile;
use crate::raft::state_machine::{SmShared, StateMachine};
use crate::raft::types::*;
use crate::transport::{RequestStream, Rpc, Transport, TransportError};
use crate::txn::{Committed, Txn, TxnId, TxnResult};
use crate::view::View;
use crate::watch::{Watch, WatchError, WatchRequest};

/// A member of the store as seen in the Raft membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft id.
    pub raft_id: RaftId,
    /// Address and swarm node id.
    pub node: PeerNode,
    /// Voter (true) or learner still catching up (false).
    pub voter: bool,
    /// Whether the leader heard from it recently (`None` when this member is not the leader).
    pub reachable: Option<bool>,
    /// Whether it is the current leader.
    pub leader: bool,
}

impl Member {
    /// Whether this is the store member of `node` (by its node id, or by the Raft id the node
    /// object records).
    pub fn is_of(&self, node: &Node) -> bool {
        is_member_of(self.raft_id, &self.node, node)
    }
}

/// Whether store member `raft_id` at `peer` is the member of `node` (see [`Member::is_of`]).
fn is_member_of(raft_id: RaftId, peer: &PeerNode, node: &Node) -> bool {
    (!peer.node_id.is_empty() && peer.node_id == node.meta.id)
        || (node.raft_id != 0 && raft_id == node.raft_id)
}

/// This member's role, as controllers need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// This member leads in `term`; writes fenced to `term` only apply while it does.
    Leader {
        /// The term.
        term: u64,
    },
    /// Another member (or nobody) leads.
    Follower {
        /// The leader, if known.
        leader: Option<RaftId>,
    },
}

type Reply = oneshot::Sender<Result<TxnResult, StoreError>>;

/// Forwarded batches one follower's stream may have under way on the leader at once.
const FORWARDS_IN_FLIGHT: usize = 64;

struct Proposal {
    id: TxnId,
    txn: Txn,
    reply: Reply,
    /// Sent here by a follower that forwarded it: commit it only while this member leads
    /// (forwarding it again could bounce between members with stale views of the leader).
    forwarded: bool,
}

#[derive(Serialize, Deserialize)]
enum ForwardError {
    NotLeader(Option<RaftId>),
    Unavailable(String),
}

struct Inner {
    config: StoreConfig,
    raft: Raft,
    shared: Arc<SmShared>,
    transport: Arc<dyn Transport>,
    forwarder: Forwarder,
    proposals: mpsc::Sender<Proposal>,
    client: u64,
    seq: AtomicU64,
    leadership: watch::Receiver<Leadership>,
    snapshot_seq: AtomicU64,
    /// Set by `shutdown`: from then on every write fails with `Shutdown` at once instead of
    /// being retried until its deadline (a caller mid-write would otherwise keep this member's
    /// database open for the whole write deadline).
    stopped: AtomicBool,
    /// One handle to the database, taken by `shutdown`, which waits until it is the last one
    /// and then closes the database itself (see there).
    database: std::sync::Mutex<Option<Arc<crate::raft::db::Db>>>,
    /// Set once `shutdown` has closed the database.
    closed: AtomicBool,
    /// Held around each membership change this member proposes as leader (openraft takes one
    /// at a time; concurrent joins and removals wait their turn instead of failing).
    membership_changes: tokio::sync::Mutex<()>,
    /// When each peer's connection last failed (see [`PeerFailures`]).
    peer_failures: Arc<PeerFailures>,
    /// A handle to the Raft log (data key rotations seal its entries again), taken by
    /// `shutdown` so that it does not keep the database open.
    log: std::sync::Mutex<Option<LogStore>>,
    /// One data key rotation at a time.
    rotation: tokio::sync::Mutex<()>,
    /// Latencies and batch sizes (see [`crate::metrics`]).
    metrics: crate::metrics::StoreMetrics,
}

/// How long a restarted member may take to apply its log again from its last snapshot.
const RESTORE_DEADLINE: Duration = Duration::from_secs(600);

/// A snapshot is built once this many bytes of entries (roughly), or as many as the last
/// snapshot holds if that is more, were applied since the last one, whatever their count, and
/// the log behind it is dropped: the Raft log of a store that takes large objects stays no
/// larger than its state, and a restart has little to apply again. Growing with the state, the
/// snapshots of a store that keeps growing cost about twice its size in writes, not its size
/// for every 64 MiB.
const SNAPSHOT_AFTER_BYTES: u64 = 64 << 20;

/// How long `shutdown` waits for openraft's tasks and threads to let go of the database.
const CLOSE_DEADLINE: Duration = Duration::from_secs(15);

/// A handle to this manager's store member. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// A handle to a store member that does not keep it open: servers hold one, so a connection a
/// peer keeps open cannot keep a stopped member's database locked (which would stop the member
/// from being reopened from its directory in the same process).
#[derive(Clone)]
pub struct WeakStore {
    inner: std::sync::Weak<Inner>,
}

impl WeakStore {
    /// The member, while some [`Store`] handle still holds it open.
    pub fn upgrade(&self) -> Option<Store> {
        self.inner.upgrade().map(|inner| Store { inner })
    }
}

fn raft_config(c: &StoreConfig) -> Result<Config, StoreError> {
    let config = Config {
        cluster_name: "shoal".into(),
        heartbeat_interval: c.heartbeat_interval.as_millis() as u64,
        election_timeout_min: c.election_timeout.0.as_millis() as u64,
        election_timeout_max: c.election_timeout.1.as_millis() as u64,
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(c.snapshot_every),
        max_in_snapshot_log_to_keep: c.logs_kept_after_snapshot,
        // Purge in batches, but never wait for more than a quarter of a snapshot interval.
        purge_batch_size: (c.snapshot_every / 4).clamp(1, 256),
        enable_pre_vote: Some(true),
        // A restarted leader must win a new election: our state machine is not flushed on
        // every apply (see README).
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| StoreError::Invalid(format!("invalid Raft configuration: {e}")))
}

/// Waits to hold the last handle to `db`, then closes it on a blocking thread, so the close
/// (flushes, background jobs) has finished when this returns, whichever thread let go last.
/// Returns false if other handles are still held after [`CLOSE_DEADLINE`] (it closes when
/// they let go).
/// What seals the values of the store of `config`: its data key (given, or kept beside the
/// data), or nothing for a benchmark store written in clear.
pub(crate) fn sealer_for(config: &StoreConfig) -> Result<Arc<Sealer>, StoreError> {
    if !config.seal_at_rest {
        return Ok(Arc::new(Sealer::clear()));
    }
    let data_key = match &config.data_key {
        Some(key) => key.clone(),
        None => DataKey::load_or_create(&config.data_dir.join("data.key"))
            .map_err(|e| StoreError::Storage(format!("the store's data key: {e}")))?,
    };
    Ok(Arc::new(Sealer::rotating(
        &data_key,
        config.retiring_data_key.as_ref(),
    )))
}

pub(crate) async fn close_database(db: Arc<crate::raft::db::Db>) -> bool {
    let deadline = Instant::now() + CLOSE_DEADLINE;
    while Arc::strong_count(&db) > 1 {
        if Instant::now() > deadline {
            tracing::error!(
                handles = Arc::strong_count(&db) - 1,
                "the store's database is still held {CLOSE_DEADLINE:?} after shutdown; it closes when they let go"
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = tokio::task::spawn_blocking(move || drop(db)).await;
    true
}

/// A message to another manager (or an answer to one) in `encoding`.
fn encode<T: Serialize>(encoding: Encoding, v: &T) -> Vec<u8> {
    codec::encode(encoding, v).expect("store messages always encode")
}

impl Store {
    /// Opens (or creates) this member's store in `config.data_dir`. The member does nothing
    /// until it is initialised as a new cluster ([`Store::initialize`]) or added to one.
    pub async fn open(
        config: StoreConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Storage(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let db_dir = config.data_dir.join("db");
        let fresh = !db_dir.try_exists().unwrap_or(true);
        seal::check_mode(&config.data_dir, config.seal_at_rest, fresh)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        let database = db::open(&db_dir).map_err(|e| {
            let text = e.to_string();
            if text.contains("Corruption") {
                // Not the torn tail of a crash (that is tolerated): synced data is damaged, and
                // replaying around it would make this member forget what it acknowledged.
                StoreError::Storage(format!(
                    "this manager's store at {} is damaged ({text}) and is not opened: its data cannot be trusted. If the swarm has other managers, they hold the data: on another manager `docker node demote` and `docker node rm` this node; here stop the daemon, move {} aside, start it again and join the swarm anew. A swarm's only manager is restored from a backup (`shoal restore`)",
                    config.data_dir.display(),
                    config.data_dir.parent().unwrap_or(&config.data_dir).display()
                ))
            } else {
                StoreError::Storage(format!("opening {}: {text}", config.data_dir.display()))
            }
        })?;
        let own_handle = database.clone();
        match Self::start(config, transport, database, own_handle.clone()).await {
            Ok(store) => Ok(store),
            Err(e) => {
                // Whatever had opened lets go of the database as it unwinds (the WAL thread
                // only when its channel closes): close it before saying so, as shutdown does.
                close_database(own_handle).await;
                Err(e)
            }
        }
    }

    /// Opens the rest of the member over its opened `database` (`own_handle` is the store's
    /// own handle to it, kept to close it at shutdown).
    async fn start(
        config: StoreConfig,
        transport: Arc<dyn Transport>,
        database: Arc<crate::raft::db::Db>,
        own_handle: Arc<crate::raft::db::Db>,
    ) -> Result<Store, StoreError> {
        let sealer = sealer_for(&config)?;
        let repair = log_store::repair_after_crash(&database, &sealer).map_err(|e| {
            StoreError::Storage(format!("checking the Raft log after a crash: {e}"))
        })?;
        if let Some(from) = repair.hole_at {
            tracing::warn!(
                from,
                "the Raft log had a hole after a crash (unsynced writes lost out of order); dropped the entries from the hole on, none of which was acknowledged"
            );
        }
        if let Some(commit) = repair.dropped_commit {
            tracing::warn!(
                %commit,
                "the saved commit point names an entry the log does not hold after a crash; dropped it (the leader tells it again)"
            );
        }
        let restore_to = log_store::saved_commit(&database)
            .map(|c| c.map(|l| l.index))
            .map_err(|e| StoreError::Storage(format!("reading the saved commit point: {e}")))?;
        let log_store = LogStore::new(database.clone(), sealer.clone(), config.encoding);
        let log_handle = log_store.clone();
        let sm = StateMachine::open(
            database,
            sealer,
            config.data_dir.join("snapshots"),
            config.history,
        )
        .map_err(|e| StoreError::Storage(e.to_string()))?;
        let shared = sm.shared();
        let peer_failures = Arc::new(PeerFailures::default());
        let network =
            NetworkFactory::new(transport.clone(), config.encoding, peer_failures.clone());
        let raft = Raft::new(
            config.raft_id,
            Arc::new(raft_config(&config)?),
            network,
            log_store,
            sm,
        )
        .await
        .map_err(|e| StoreError::Storage(format!("starting Raft: {e}")))?;
        // The state is on disk as of the last snapshot; openraft applies the log again up to
        // the saved commit point as it starts. Readers must not see the older state meanwhile.
        if let Some(index) = restore_to {
            raft.wait(Some(RESTORE_DEADLINE))
                .applied_index_at_least(Some(index), "restoring the state")
                .await
                .map_err(|e| {
                    StoreError::Storage(format!(
                        "applying the log again up to entry {index} after a restart: {e}"
                    ))
                })?;
        }

        let metrics = crate::metrics::StoreMetrics {
            snapshot_seconds: shared.snapshot_seconds.clone(),
            ..Default::default()
        };
        let (proposals_tx, proposals_rx) = mpsc::channel(65_536);
        let (lead_tx, lead_rx) = watch::channel(Leadership::Follower { leader: None });
        let forwarder = Forwarder::new(transport.clone(), config.attempt_timeout * 2);
        let inner = Arc::new(Inner {
            config,
            raft: raft.clone(),
            shared,
            transport,
            forwarder,
            proposals: proposals_tx,
            client: rand::rng().random(),
            seq: AtomicU64::new(0),
            leadership: lead_rx,
            snapshot_seq: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            database: std::sync::Mutex::new(Some(own_handle)),
            closed: AtomicBool::new(false),
            membership_changes: tokio::sync::Mutex::new(()),
            peer_failures,
            log: std::sync::Mutex::new(Some(log_handle)),
            rotation: tokio::sync::Mutex::new(()),
            metrics,
        });
        tokio::spawn(track_leadership(raft, lead_tx));
        tokio::spawn(snapshot_by_size(Arc::downgrade(&inner)));
        tokio::spawn(run_proposer(Arc::downgrade(&inner), proposals_rx));
        Ok(Store { inner })
    }

    /// A handle that does not keep this member open.
    pub fn downgrade(&self) -> WeakStore {
        WeakStore {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// This member's Raft id.
    pub fn raft_id(&self) -> RaftId {
        self.inner.config.raft_id
    }

    /// This member's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Starts a new cluster with this member as its only voter (no-op if already initialised).
    pub async fn initialize(&self) -> Result<(), StoreError> {
        if self.is_initialized().await {
            return Ok(());
        }
        let me = PeerNode {
            addr: self.inner.config.advertise_addr.clone(),
            node_id: self.inner.config.node_id.clone(),
        };
        let mut members = BTreeMap::new();
        members.insert(self.raft_id(), me);
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(e) if e.api_error().is_some() => Ok(()), // already initialised
            Err(e) => Err(StoreError::Storage(e.to_string())),
        }
    }

    /// Whether this member has joined or started a cluster.
    pub async fn is_initialized(&self) -> bool {
        self.inner.raft.is_initialized().await.unwrap_or(false)
    }

    /// Stops this member (its data stays on disk) and returns once its database is closed:
    /// RocksDB must never be open when the process exits, or its static background timer is
    /// destroyed under a running thread and the process aborts (or crashes in a close still
    /// under way) instead of exiting.
    pub async fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.shared.hub.close();
        let _ = self.inner.raft.shutdown().await;
        // openraft's core, its storage tasks and the WAL sync thread let go of their handles as
        // they end; the state machine's shared part is kept alive by every store handle, so it
        // lets go explicitly.
        self.inner.shared.close();
        self.inner.log.lock().expect("log handle lock").take();
        let Some(db) = self.inner.database.lock().expect("database lock").take() else {
            return; // another shutdown closes it
        };
        if close_database(db).await {
            self.inner.closed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether [`Store::shutdown`] has begun.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Whether this member's database is closed (after [`Store::shutdown`]).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    // ---------------------------------------------------------------- writes

    /// Commits a transaction; returns what it wrote at which revision, or why it was rejected.
    /// Waits for a leader with a quorum for at most the configured write deadline.
    pub async fn submit(&self, txn: Txn) -> Result<Committed, StoreError> {
        match self.submit_once(txn).await {
            // Not an orderly shutdown: say what stopped this member.
            Err(StoreError::Shutdown) => match self.failure() {
                Some(why) => Err(StoreError::Unavailable(format!(
                    "this manager's store stopped: {why}; it opens again by itself once its disk has room, and the other managers take writes meanwhile"
                ))),
                None => Err(StoreError::Shutdown),
            },
            other => other,
        }
    }

    async fn submit_once(&self, txn: Txn) -> Result<Committed, StoreError> {
        let _timer = self.inner.metrics.txn_seconds.start_timer();
        if txn.is_empty() {
            return Err(StoreError::Invalid("empty transaction".into()));
        }
        // The size it has in this member's log and messages (this runs on every write).
        let size = codec::encoded_len(self.inner.config.encoding, &txn);
        if size > self.inner.config.max_txn_bytes {
            return Err(StoreError::Invalid(format!(
                "transaction of {size} bytes exceeds the {} byte limit; make the objects smaller",
                self.inner.config.max_txn_bytes
            )));
        }
        let id = TxnId {
            client: self.inner.client,
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed),
        };
        let deadline = Instant::now() + self.inner.config.write_deadline;
        let mut backoff = Duration::from_millis(10);
        let mut leadership = self.inner.leadership.clone();
        loop {
            if self.inner.stopped.load(Ordering::SeqCst) {
                return Err(StoreError::Shutdown);
            }
            let leader_at_attempt = *leadership.borrow_and_update();
            let (tx, rx) = oneshot::channel();
            let proposal = Proposal {
                id,
                txn: txn.clone(),
                reply: tx,
                forwarded: false,
            };
            if self.inner.proposals.send(proposal).await.is_err() {
                return Err(StoreError::Shutdown);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = self
                .inner
                .config
                .attempt_timeout
                .min(remaining.max(Duration::from_millis(1)));
            let why = match tokio::time::timeout(attempt, rx).await {
                Ok(Ok(Ok(Ok(committed)))) => return Ok(committed),
                Ok(Ok(Ok(Err(rejected)))) => return Err(StoreError::Rejected(rejected)),
                Ok(Ok(Err(StoreError::Unavailable(why)))) => why,
                Ok(Ok(Err(other))) => return Err(other),
                Ok(Err(_)) => return Err(StoreError::Shutdown),
                Err(_) => format!("no commit within {attempt:?}"),
            };
            if Instant::now() + backoff >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "write not committed within {:?}: {why}; the store may have lost quorum (fewer than half of the managers reachable)",
                    self.inner.config.write_deadline
                )));
            }
            // Retry as soon as a leader is elected (or another one is learnt), else after the
            // backoff: during a failover the wait is the election, not our retry timer. A change
            // that came while the attempt was under way counts too.
            if *leadership.borrow() != leader_at_attempt {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                changed = leadership.changed() => {
                    if changed.is_err() {
                        // The member is shutting down: no leader news will come.
                        return Err(StoreError::Shutdown);
                    }
                }
            }
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    // ---------------------------------------------------------------- reads

    /// This replica's current state (local read: may trail the leader, never shows uncommitted data).
    pub fn view(&self) -> View {
        View::new(self.inner.shared.hub.state())
    }

    /// The revision this replica has applied.
    pub fn current_revision(&self) -> u64 {
        self.inner.shared.hub.published()
    }

    /// Waits until this replica has applied `revision`.
    pub async fn wait_for_revision(
        &self,
        revision: u64,
        timeout: Duration,
    ) -> Result<View, StoreError> {
        let mut rx = self.inner.shared.hub.subscribe_revisions();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(self.view()),
            Ok(false) => Err(StoreError::Shutdown),
            Err(_) => Err(StoreError::Unavailable(format!(
                "this manager has applied revision {} and did not reach {revision} within {timeout:?}",
                self.current_revision()
            ))),
        }
    }

    /// The revision a linearizable read must see (confirmed with a quorum by the leader).
    pub async fn read_index(&self) -> Result<u64, StoreError> {
        let timeout = self.inner.config.write_deadline;
        let inner = &self.inner;
        if inner.raft.current_leader().await == Some(inner.config.raft_id) {
            return local_read_index(&inner.raft, timeout).await;
        }
        let leader = self.leader_node().await.ok_or_else(|| {
            StoreError::Unavailable("no leader is elected; the store may have lost quorum".into())
        })?;
        let answer = inner
            .transport
            .call(&leader.addr, Rpc::ReadIndex, Vec::new(), timeout)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let r: Result<u64, String> =
            codec::decode(&answer).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        r.map_err(StoreError::Unavailable)
    }

    /// A view that includes every write committed before this call (ReadIndex).
    pub async fn linearizable_view(&self) -> Result<View, StoreError> {
        let index = self.read_index().await?;
        self.wait_for_revision(index, self.inner.config.write_deadline)
            .await
    }

    /// Starts a watch served by this replica (see [`crate::watch`]).
    pub async fn watch(&self, req: WatchRequest) -> Result<Watch, WatchError> {
        Watch::start(
            self.inner.shared.hub.clone(),
            &*self.inner.shared,
            req,
            self.inner.config.write_deadline,
        )
        .await
    }

    /// The oldest revision a watch can resume after.
    pub fn history_floor(&self) -> u64 {
        use crate::watch::HistorySource;
        self.inner.shared.floor()
    }

    // ---------------------------------------------------------------- leadership & membership

    /// Changes of this member's leadership.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.inner.leadership.clone()
    }

    /// Whether this member currently leads.
    pub fn is_leader(&self) -> bool {
        matches!(*self.inner.leadership.borrow(), Leadership::Leader { .. })
    }

    /// The current leader's id, if known.
    pub async fn leader(&self) -> Option<RaftId> {
        self.inner.raft.current_leader().await
    }

    async fn leader_node(&self) -> Option<PeerNode> {
        let leader = self.leader().await?;
        let m = self
            .inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        m.membership().get_node(&leader).cloned()
    }

    /// The Raft members, with reachability as the leader sees it.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<RaftId> = membership.voter_ids().collect();
        let reach = reachability(
            &metrics,
            &self.inner.peer_failures,
            self.inner.config.election_timeout.1,
        );
        membership
            .nodes()
            .map(|(id, node)| Member {
                raft_id: *id,
                node: node.clone(),
                voter: voters.contains(id),
                reachable: reach.as_ref().map(|r| r.get(id).copied().unwrap_or(false)),
                leader: metrics.current_leader == Some(*id),
            })
            .collect()
    }

    /// Adds a member: first as a learner that catches up (by log or snapshot), then as a voter.
    /// Runs on the leader; called on a follower it is forwarded.
    pub async fn add_member(&self, raft_id: RaftId, node: PeerNode) -> Result<(), StoreError> {
        if self.leader().await == Some(self.raft_id()) {
            return add_member_on_leader(&self.inner, raft_id, node).await;
        }
        self.forward_membership(Rpc::Join, &(raft_id, node)).await
    }

    /// Removes a member, refusing if the remaining voters that are reachable would not form a
    /// quorum. Runs on the leader; called on a follower it is forwarded.
    pub async fn remove_member(&self, raft_id: RaftId) -> Result<(), StoreError> {
        if self.leader().await == Some(self.raft_id()) {
            return remove_member_on_leader(&self.inner, raft_id).await;
        }
        self.forward_membership(Rpc::RemoveMember, &raft_id).await
    }

    /// What adding or removing a voter would do to how many manager failures the swarm
    /// survives, judged on the leader's view of which managers are reachable (see
    /// [`crate::quorum`]). Voters whose demotion the swarm has accepted count as gone already,
    /// so two demotions asked for one after the other are judged together, not each against a
    /// membership the first is about to change. Called on a follower it is forwarded to the
    /// leader.
    pub async fn assess_voter_change(&self, change: VoterChange) -> Result<Assessment, StoreError> {
        if self.leader().await == Some(self.raft_id()) {
            return assess_on_leader(&self.inner, change, Judged::Staying);
        }
        self.forward_membership(Rpc::AssessVoterChange, &change)
            .await
    }

    /// The voting members, from the membership every member holds (no reachability needed).
    pub fn voter_count(&self) -> usize {
        self.inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .count()
    }

    async fn forward_membership<T: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        rpc: Rpc,
        body: &T,
    ) -> Result<R, StoreError> {
        let leader = self.leader_node().await.ok_or_else(|| {
            StoreError::Unavailable("no leader is elected; the store may have lost quorum".into())
        })?;
        let answer = self
            .inner
            .transport
            .call(
                &leader.addr,
                rpc,
                encode(self.inner.config.encoding, body),
                membership_rpc_timeout(rpc),
            )
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let r: Result<R, StoreError> = codec::decode::<Result<R, RemoteStoreError>>(&answer)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(Into::into);
        r
    }

    /// Asks openraft to build a snapshot now (tests and operators).
    pub async fn trigger_snapshot(&self) -> Result<(), StoreError> {
        self.inner
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))
    }

    /// Compacts this member's storage now: builds a snapshot of the current state, drops the
    /// log up to it (followers that lack it get the snapshot), and has RocksDB flush and compact
    /// everything, so what is left on disk is what the state needs (operators and benchmarks).
    pub async fn compact(&self) -> Result<(), StoreError> {
        snapshot_and_drop_log(&self.inner.raft)
            .await
            .map_err(StoreError::Storage)?;
        let shared = self.inner.shared.clone();
        tokio::task::spawn_blocking(move || shared.compact_database())
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))?
            .map_err(|e| StoreError::Storage(format!("compacting the database: {e}")))
    }

    /// Rotates this member's data key to `new` (swarmkit does when autolock is turned on: the
    /// old key lay on disk in clear). Values are sealed with `new` at once; a snapshot is built
    /// under it and the log behind it dropped; every value still sealed with the old key is
    /// sealed again and the database compacted, so the old versions leave the disk; then the
    /// old key is forgotten. The owner keeps both keys (`StoreConfig::retiring_data_key`) until
    /// this returns: a member stopped in the middle opens with both and finishes with
    /// [`Store::finish_data_key_rotation`].
    pub async fn rotate_data_key(&self, new: DataKey) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.rotation.lock().await;
        let sealer = self.inner.shared.sealer().clone();
        tokio::task::spawn_blocking(move || sealer.rotate(&new))
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))?
            .map_err(|e| StoreError::Invalid(format!("rotating the data key: {e}")))?;
        self.reseal_with_current_key().await
    }

    /// Finishes a data key rotation this member was stopped in the middle of (it was opened
    /// with a `retiring_data_key`); does nothing otherwise.
    pub async fn finish_data_key_rotation(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.rotation.lock().await;
        if !self.inner.shared.rotating_data_key() {
            return Ok(());
        }
        self.reseal_with_current_key().await
    }

    /// Whether values may still be sealed with a retiring data key.
    pub fn rotating_data_key(&self) -> bool {
        self.inner.shared.rotating_data_key()
    }

    async fn reseal_with_current_key(&self) -> Result<(), StoreError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Storage(format!("rotating the data key: {what}: {e}"))
        };
        // A snapshot whose file key is sealed with the new data key; the log behind it goes.
        if self.is_initialized().await {
            snapshot_and_drop_log(&self.inner.raft)
                .await
                .map_err(|e| failed("building a snapshot", &e))?;
        }
        let log = self
            .inner
            .log
            .lock()
            .expect("log handle lock")
            .clone()
            .ok_or(StoreError::Shutdown)?;
        log.reseal()
            .await
            .map_err(|e| failed("sealing the Raft log again", &e))?;
        let shared = self.inner.shared.clone();
        let resealed = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let resealed = shared.reseal_at_rest()?;
            // Rewrites every table file: the versions sealed with the old key leave the disk.
            shared.compact_database()?;
            shared.sealer().retire();
            Ok(resealed)
        })
        .await
        .map_err(|e| StoreError::Storage(e.to_string()))?
        .map_err(|e| failed("sealing stored values again", &e))?;
        tracing::info!(
            resealed,
            "the store's data key is rotated; the old key opens nothing on disk"
        );
        Ok(())
    }

    /// The store's histograms (see [`crate::metrics`]).
    pub fn metrics(&self) -> &crate::metrics::StoreMetrics {
        &self.inner.metrics
    }

    /// The size of this member's newest snapshot file (0 without one).
    pub fn snapshot_bytes(&self) -> u64 {
        self.inner.shared.snapshot_bytes()
    }

    /// Watches open on this member.
    pub fn watcher_count(&self) -> usize {
        self.inner.shared.hub.watcher_count()
    }

    /// Why this member stopped working on its own, if it did: a write to its database failed
    /// (the disk is full, an IO error) and openraft stopped on the storage error. Such a member
    /// serves nothing until it is opened again (the node runtime does that once the disk has
    /// room). `None` while it works, and after an orderly [`Store::shutdown`].
    pub fn failure(&self) -> Option<String> {
        if self.inner.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let db = self
            .inner
            .database
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|db| db.write_failure().map(str::to_string));
        if let Some(first) = db {
            return Some(format!("a write to its database failed: {first}"));
        }
        match &self.inner.raft.metrics().borrow_watched().running_state {
            Ok(()) => None,
            Err(fatal) => Some(format!("openraft stopped: {fatal}")),
        }
    }

    /// Whether `other` is a handle to this same store.
    pub fn is_same(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Raft metrics (for status pages and tests).
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        self.inner.raft.metrics().borrow_watched().clone()
    }

    // ---------------------------------------------------------------- server side

    /// Serves one request from another manager (the transport's server calls this).
    pub async fn handle(&self, rpc: Rpc, body: &[u8]) -> Vec<u8> {
        let raft = &self.inner.raft;
        let enc = self.inner.config.encoding;
        fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
            codec::decode(body).map_err(|e| format!("malformed request: {e}"))
        }
        match rpc {
            Rpc::AppendEntries => encode(
                enc,
                &match decode::<AppendEntriesRequest>(body) {
                    Ok(req) => raft.append_entries(req).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            ),
            Rpc::Vote => encode(
                enc,
                &match decode::<VoteRequest>(body) {
                    Ok(req) => raft.vote(req).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            ),
            Rpc::PreVote => encode(
                enc,
                &match decode::<VoteRequest>(body) {
                    Ok(req) => raft.pre_vote(req).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            ),
            Rpc::TransferLeader => encode(
                enc,
                &match decode::<TransferLeaderRequest>(body) {
                    Ok(req) => raft
                        .handle_transfer_leader(req)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            ),
            Rpc::Forward => encode(
                enc,
                &match decode::<Batch>(body) {
                    Ok(batch) => self.handle_forward(batch).await,
                    Err(e) => Err(ForwardError::Unavailable(e)),
                },
            ),
            Rpc::ReadIndex => encode(
                enc,
                &local_read_index(raft, self.inner.config.write_deadline)
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Rpc::Join => encode(
                enc,
                &match decode::<(RaftId, PeerNode)>(body) {
                    Ok((id, node)) => add_member_on_leader(&self.inner, id, node)
                        .await
                        .map_err(RemoteStoreError::from),
                    Err(e) => Err(RemoteStoreError::Invalid(e)),
                },
            ),
            Rpc::AssessVoterChange => encode(
                enc,
                &match decode::<VoterChange>(body) {
                    Ok(change) => assess_on_leader(&self.inner, change, Judged::Staying)
                        .map_err(RemoteStoreError::from),
                    Err(e) => Err(RemoteStoreError::Invalid(e)),
                },
            ),
            Rpc::RemoveMember => encode(
                enc,
                &match decode::<RaftId>(body) {
                    Ok(id) => remove_member_on_leader(&self.inner, id)
                        .await
                        .map_err(RemoteStoreError::from),
                    Err(e) => Err(RemoteStoreError::Invalid(e)),
                },
            ),
        }
    }

    /// Serves a stream of requests from another manager (the transport's server calls this):
    /// one answer per request, in order. Raft replication (`AppendEntries`) and forwarded
    /// writes (`Forward`) are streamed. Each append goes into openraft's pipelined append as
    /// soon as it arrives, so a leader does not wait for one answer before sending the next
    /// entries; each forwarded batch joins the proposals at once.
    pub fn handle_stream(&self, rpc: Rpc, requests: RequestStream) -> BoxStream<'static, Vec<u8>> {
        let enc = self.inner.config.encoding;
        if rpc == Rpc::Forward {
            // Batches from a follower: each joins this leader's proposals as it arrives (many in
            // flight at once), answered in the order they came.
            // Only a weak handle: a stream that outlives this member (a follower keeps its link
            // open) must not keep its database open.
            let inner = Arc::downgrade(&self.inner);
            return requests
                .map(move |body| {
                    let inner = inner.upgrade();
                    async move {
                        match inner {
                            Some(inner) => Store { inner }.handle(Rpc::Forward, &body).await,
                            None => encode(
                                enc,
                                &Err::<BatchResponse, _>(ForwardError::Unavailable(
                                    "the store is shutting down".into(),
                                )),
                            ),
                        }
                    }
                })
                .buffered(FORWARDS_IN_FLIGHT)
                .boxed();
        }
        if rpc != Rpc::AppendEntries {
            let refused: Result<(), String> =
                Err(format!("the {} request cannot be streamed", rpc.as_str()));
            return futures::stream::once(std::future::ready(encode(enc, &refused))).boxed();
        }
        // A request that does not decode ends the stream with an answer saying so (after the
        // answers to the requests before it).
        let malformed: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let seen = malformed.clone();
        let decoded = requests.scan((), move |_, body| {
            let next = match codec::decode::<AppendEntriesRequest>(&body) {
                Ok(req) => Some(req),
                Err(e) => {
                    *seen.lock().expect("malformed lock") = Some(format!("malformed request: {e}"));
                    None
                }
            };
            std::future::ready(next)
        });
        let answers = self.inner.raft.stream_append(decoded).map(move |r| {
            let r: Result<StreamAppendResult<TypeConfig>, String> = r.map_err(|e| e.to_string());
            encode(enc, &r)
        });
        let trailer = futures::stream::once(async move {
            malformed
                .lock()
                .expect("malformed lock")
                .take()
                .map(|e| encode(enc, &Err::<(), String>(e)))
        })
        .filter_map(std::future::ready);
        answers.chain(trailer).boxed()
    }

    /// Commits a follower's batch. Its transactions join this leader's own proposal queue, so
    /// writes arriving through every member share Raft entries (group commit across members)
    /// instead of each forwarded batch costing an entry of its own.
    async fn handle_forward(&self, batch: Batch) -> Result<BatchResponse, ForwardError> {
        let raft = &self.inner.raft;
        if raft.current_leader().await != Some(self.raft_id()) {
            return Err(ForwardError::NotLeader(raft.current_leader().await));
        }
        let mut pending = Vec::with_capacity(batch.txns.len());
        for (id, txn) in Arc::unwrap_or_clone(batch.txns) {
            let (reply, rx) = oneshot::channel();
            let proposal = Proposal {
                id,
                txn,
                reply,
                forwarded: true,
            };
            if self.inner.proposals.send(proposal).await.is_err() {
                return Err(ForwardError::Unavailable(
                    "the store is shutting down".into(),
                ));
            }
            pending.push(rx);
        }
        let all = futures::future::join_all(pending);
        let answers = match tokio::time::timeout(self.inner.config.attempt_timeout, all).await {
            Ok(answers) => answers,
            Err(_) => {
                return Err(ForwardError::Unavailable(
                    "leader did not commit in time".into(),
                ))
            }
        };
        // All or nothing towards the follower: if any part failed it retries the whole batch,
        // and the dedup table answers the parts that did commit with their original results.
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer {
                Ok(Ok(result)) => results.push(result),
                Ok(Err(StoreError::Unavailable(why))) => {
                    return Err(ForwardError::Unavailable(why))
                }
                Ok(Err(e)) => return Err(ForwardError::Unavailable(e.to_string())),
                Err(_) => {
                    return Err(ForwardError::Unavailable(
                        "the store is shutting down".into(),
                    ))
                }
            }
        }
        Ok(BatchResponse { results })
    }

    /// The newest snapshot if it covers log index `index`: its transfer header (what a member
    /// receiving it is sent: the vote, the metadata and the file key), its file and the store
    /// revision of its state.
    pub(crate) async fn current_snapshot(
        &self,
        index: u64,
    ) -> Result<Option<(Vec<u8>, PathBuf, u64)>, StoreError> {
        let Some(snapshot) = self
            .inner
            .raft
            .get_snapshot()
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))?
        else {
            return Ok(None);
        };
        if snapshot.meta.last_log_id.as_ref().map_or(0, |l| l.index) < index {
            return Ok(None);
        }
        let vote = self.inner.raft.metrics().borrow_watched().vote;
        let key = snapshot
            .snapshot
            .key
            .as_ref()
            .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_bytes()));
        let header = encode(
            self.inner.config.encoding,
            &(vote, snapshot.meta.clone(), key),
        );
        let revision = crate::raft::snapshot::revision_of(&snapshot.snapshot.path)
            .map_err(|e| StoreError::Storage(format!("reading the snapshot: {e}")))?;
        Ok(Some((header, snapshot.snapshot.path.clone(), revision)))
    }

    /// A fresh path to receive a snapshot into (the transport's server writes the chunks there).
    pub fn snapshot_receive_path(&self) -> PathBuf {
        let n = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .shared
            .snapshot_dir()
            .join(format!("incoming-{}-{n}.jsonl", std::process::id()))
    }

    /// Installs a snapshot fully received at `path` with the sender's JSON `header`.
    pub async fn install_received_snapshot(&self, header: &[u8], path: PathBuf) -> Vec<u8> {
        let parsed: Result<(Vote, SnapshotMeta, Option<String>), _> = codec::decode(header);
        let key = |b64: Option<String>| -> Result<Option<DataKey>, String> {
            let Some(b64) = b64 else { return Ok(None) };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("malformed snapshot key: {e}"))?;
            DataKey::from_bytes(&bytes)
                .map(Some)
                .ok_or_else(|| "malformed snapshot key: not 32 bytes".to_string())
        };
        let result: Result<SnapshotResponse, String> = match parsed {
            Err(e) => Err(format!("malformed snapshot header: {e}")),
            Ok((vote, meta, b64)) => match key(b64) {
                Err(e) => Err(e),
                Ok(key) => self
                    .inner
                    .raft
                    .install_full_snapshot(
                        vote,
                        Snapshot {
                            meta,
                            snapshot: SnapshotFile {
                                path: path.clone(),
                                key,
                            },
                        },
                    )
                    .await
                    .map_err(|e| e.to_string()),
            },
        };
        // The state machine moved the file if it installed it; otherwise clean up.
        let _ = std::fs::remove_file(&path);
        encode(self.inner.config.encoding, &result)
    }
}

/// Membership errors as they cross the wire.
#[derive(Serialize, Deserialize)]
enum RemoteStoreError {
    QuorumAtRisk(String),
    Unavailable(String),
    Invalid(String),
}

impl From<StoreError> for RemoteStoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QuorumAtRisk(m) => RemoteStoreError::QuorumAtRisk(m),
            StoreError::Invalid(m) => RemoteStoreError::Invalid(m),
            other => RemoteStoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<RemoteStoreError> for StoreError {
    fn from(e: RemoteStoreError) -> Self {
        match e {
            RemoteStoreError::QuorumAtRisk(m) => StoreError::QuorumAtRisk(m),
            RemoteStoreError::Invalid(m) => StoreError::Invalid(m),
            RemoteStoreError::Unavailable(m) => StoreError::Unavailable(m),
        }
    }
}

async fn local_read_index(raft: &Raft, timeout: Duration) -> Result<u64, StoreError> {
    match tokio::time::timeout(timeout, raft.ensure_linearizable(ReadPolicy::ReadIndex)).await {
        Ok(Ok(read)) => Ok(read.log_id().index),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!(
            "linearizable read refused: {e}"
        ))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "the leader could not confirm its leadership with a quorum within {timeout:?}"
        ))),
    }
}

/// Which members the leader heard from within `window` and whose connection has not failed
/// since (None when this member does not lead).
fn reachability(
    metrics: &openraft::RaftMetrics<TypeConfig>,
    failures: &PeerFailures,
    window: Duration,
) -> Option<BTreeMap<RaftId, bool>> {
    if metrics.state != ServerState::Leader {
        return None;
    }
    let heartbeat = metrics.heartbeat.as_ref()?;
    let mut out: BTreeMap<RaftId, bool> = heartbeat
        .iter()
        .map(|(id, last)| {
            let answered = last.as_ref().map(|t| t.elapsed());
            let failed = failures.since_last_failure(*id);
            let reachable = match (answered, failed) {
                (None, _) => false,
                // The connection broke after its last answer.
                (Some(answered), Some(failed)) if failed < answered => false,
                (Some(answered), _) => answered < window,
            };
            (*id, reachable)
        })
        .collect();
    out.insert(metrics.id, true);
    Some(out)
}

/// How long a member waits for the leader to answer a forwarded membership change. A join is
/// answered once the new member has caught up, on the leader's own size-based deadline.
fn membership_rpc_timeout(rpc: Rpc) -> Duration {
    match rpc {
        Rpc::Join => Duration::from_secs(3600),
        _ => Duration::from_secs(120),
    }
}

/// How many entries behind the leader's log a learner may still be when it is made a voter:
/// what it lacks then arrives within a heartbeat or two.
const PROMOTION_LAG: u64 = 64;

/// The least time a new member gets to catch up, whatever the store's size.
const CATCH_UP_BASE: Duration = Duration::from_secs(30);

/// The transfer rate the catch-up deadline assumes beyond [`CATCH_UP_BASE`] (a snapshot is
/// read, sent over TLS, written, synced and installed).
const CATCH_UP_BYTES_PER_SEC: u64 = 2 << 20;

/// A learner that has answered nothing for this long is gone (its daemon stopped or was
/// killed mid-join): its admission ends there rather than at the size-based deadline.
const LEARNER_SILENCE: Duration = Duration::from_secs(20);

/// Adds `raft_id` on the leader: as a learner, which counts for no quorum, until it has caught
/// up (snapshot installed, log within [`PROMOTION_LAG`] of the leader's), and only then as a
/// voter. A learner that does not catch up before a deadline that grows with the store's size
/// is removed again. The admission runs as a task of its own: a caller that gives up waiting
/// (the joining daemon's answer timed out) does not leave it half done.
async fn add_member_on_leader(
    inner: &Arc<Inner>,
    raft_id: RaftId,
    node: PeerNode,
) -> Result<(), StoreError> {
    if raft_id == 0 {
        // Else a learner 0 would be added that no manager is, and the caller would wait for it
        // to catch up until the deadline.
        return Err(StoreError::Invalid(
            "Raft id 0 is not a member id (0 means \"not a manager\"): a manager gets its id when it joins or is promoted".into(),
        ));
    }
    let inner = inner.clone();
    tokio::spawn(async move { admit_member(inner, raft_id, node).await })
        .await
        .map_err(|e| StoreError::Unavailable(format!("adding member {raft_id}: {e}")))?
}

async fn admit_member(
    inner: Arc<Inner>,
    raft_id: RaftId,
    node: PeerNode,
) -> Result<(), StoreError> {
    let raft = &inner.raft;
    let current = raft.metrics().borrow_watched().membership_config.clone();
    if current.membership().voter_ids().any(|v| v == raft_id) {
        return Ok(());
    }
    // A swarm that has lost its quorum cannot commit the change; say so at once. (Whether a
    // new voter would leave it one failure from that is decided where the join or promotion
    // was asked for.)
    match assess_on_leader(&inner, VoterChange::Add, Judged::Current)? {
        Assessment::Refused(why) => return Err(StoreError::QuorumAtRisk(why)),
        Assessment::Warn(why) => tracing::warn!(raft_id, "adding a manager: {why}"),
        Assessment::Safe | Assessment::Risky(_) => {}
    }
    // A learner left by an earlier attempt that is still catching up is kept as it is.
    if current.membership().get_node(&raft_id).is_none() {
        let turn = membership_turn(&inner).await?;
        let added = raft
            .add_learner(raft_id, node.clone(), false)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("adding member {raft_id} as learner: {e}"))
            })?;
        wait_membership_published(&inner, &added.log_id).await;
        drop(turn);
        record_membership(&inner, &node.node_id, RaftMembership::Learner).await;
    }
    let deadline = catch_up_deadline(&inner);
    if let Err(why) = wait_caught_up(&inner, raft_id, deadline).await {
        // Whoever leads now takes it out (leadership may have moved while it caught up).
        let removed = Store {
            inner: inner.clone(),
        }
        .remove_member(raft_id)
        .await;
        return Err(StoreError::Unavailable(format!(
            "member {raft_id} did not catch up with the store: {why}; {}",
            match removed {
                Ok(()) => "it was removed again and may join again".to_string(),
                Err(e) => format!("removing it again failed too: {e}"),
            }
        )));
    }
    let mut ids = BTreeSet::new();
    ids.insert(raft_id);
    let promoted = {
        let _turn = membership_turn(&inner).await?;
        let change = raft.change_membership(ChangeMembers::AddVoterIds(ids), false);
        match tokio::time::timeout(inner.config.write_deadline * 4, change).await {
            Ok(Ok(changed)) => {
                wait_membership_published(&inner, &changed.log_id).await;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("not committed in time".to_string()),
        }
    };
    if let Err(why) = promoted {
        // The change may have committed all the same (leadership moved under it): a voter it
        // is, then, and the join succeeded; otherwise it must not stay behind as a learner.
        tokio::time::sleep(inner.config.election_timeout.1).await;
        let store = Store {
            inner: inner.clone(),
        };
        if store
            .members()
            .iter()
            .any(|m| m.raft_id == raft_id && m.voter)
        {
            record_membership(&inner, &node.node_id, RaftMembership::Voter).await;
            return Ok(());
        }
        let removed = store.remove_member(raft_id).await;
        return Err(StoreError::Unavailable(format!(
            "promoting member {raft_id} to voter: {why}; {}",
            match removed {
                Ok(()) => "it was removed again and may join again".to_string(),
                Err(e) => format!("removing it again failed too: {e}"),
            }
        )));
    }
    tracing::info!(raft_id, "store member caught up and became a voter");
    record_membership(&inner, &node.node_id, RaftMembership::Voter).await;
    Ok(())
}

/// When a new member must have caught up: [`CATCH_UP_BASE`] plus the time the store's objects
/// take at [`CATCH_UP_BYTES_PER_SEC`].
fn catch_up_deadline(inner: &Inner) -> Instant {
    let bytes = inner.shared.estimated_data_bytes();
    Instant::now() + CATCH_UP_BASE + Duration::from_secs(bytes / CATCH_UP_BYTES_PER_SEC)
}

/// Waits until the leader has replicated to `raft_id` up to [`PROMOTION_LAG`] entries of its
/// own log; the reason otherwise (deadline passed, leadership lost, member removed, stopping).
async fn wait_caught_up(inner: &Inner, raft_id: RaftId, deadline: Instant) -> Result<(), String> {
    let started = Instant::now();
    let mut seen = false;
    loop {
        let m = inner.raft.metrics().borrow_watched().clone();
        if m.state != ServerState::Leader {
            return Err("this manager stopped leading the store meanwhile".into());
        }
        // The metrics may not show the learner yet right after it was added: it is only
        // "removed" once it has been seen.
        if m.membership_config
            .membership()
            .get_node(&raft_id)
            .is_none()
        {
            if seen {
                return Err("it was removed meanwhile".into());
            }
            if Instant::now() >= deadline {
                return Err("it never appeared in the membership".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        seen = true;
        let last = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&raft_id).cloned())
            .flatten()
            .map(|id| id.index);
        if matched.is_some_and(|i| last.saturating_sub(i) <= PROMOTION_LAG) {
            return Ok(());
        }
        if inner.stopped.load(Ordering::SeqCst) {
            return Err("this manager is shutting down".into());
        }
        let heard = m
            .heartbeat
            .as_ref()
            .and_then(|h| h.get(&raft_id).cloned())
            .flatten();
        let silent = match &heard {
            Some(at) => at.elapsed() > LEARNER_SILENCE,
            None => started.elapsed() > LEARNER_SILENCE,
        };
        if silent {
            return Err(format!(
                "it has not answered for {LEARNER_SILENCE:?} (holding {} of the leader's {last} entries)",
                matched.map_or("none".to_string(), |i| i.to_string()),
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {:.0?} it holds {} of the leader's {last} entries",
                started.elapsed(),
                matched.map_or("none".to_string(), |i| i.to_string()),
            ));
        }
        // The metrics are in memory: looking often costs nothing and ends the wait as soon
        // as the learner is there.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records `place` on the node of a member (the leader's membership changes are no store
/// writes of their own), so that every change is a change of the node, with an event. The
/// role manager keeps it up to date too; this records a change the moment it is made (a
/// learner's catch-up may be over before the role manager looks again). A member without a
/// node object (outside a swarm) is skipped; a failure is only logged: the change itself is
/// done.
async fn record_membership(inner: &Arc<Inner>, node_id: &str, place: RaftMembership) {
    if node_id.is_empty() {
        return;
    }
    let store = Store {
        inner: inner.clone(),
    };
    for _ in 0..5 {
        let Some(node) = store.view().get::<Node>(node_id) else {
            return;
        };
        if node.raft_membership == place {
            return;
        }
        let mut updated = node.to_owned_value();
        updated.raft_membership = place;
        match store.submit(Txn::new().update(updated)).await {
            Ok(_) => return,
            Err(e) if e.is_out_of_sequence() => continue,
            Err(e) => {
                tracing::warn!(node = node_id, "recording a store membership change: {e}");
                return;
            }
        }
    }
}

/// The swarm node id of member `raft_id`, if it is one.
fn node_id_of(inner: &Inner, raft_id: RaftId) -> Option<String> {
    inner
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .get_node(&raft_id)
        .map(|n| n.node_id.clone())
}

/// Takes a learner out of the membership (it held no vote; nothing else changes).
async fn remove_learner(inner: &Arc<Inner>, raft_id: RaftId) -> Result<(), StoreError> {
    let node_id = node_id_of(inner, raft_id);
    let mut ids = BTreeSet::new();
    ids.insert(raft_id);
    let turn = membership_turn(inner).await?;
    let change = inner
        .raft
        .change_membership(ChangeMembers::RemoveNodes(ids), false);
    let changed = tokio::time::timeout(inner.config.write_deadline * 4, change)
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("removing learner {raft_id}: not committed in time"))
        })?
        .map_err(|e| StoreError::Unavailable(format!("removing learner {raft_id}: {e}")))?;
    wait_membership_published(inner, &changed.log_id).await;
    drop(turn);
    if let Some(node_id) = node_id {
        record_membership(inner, &node_id, RaftMembership::None).await;
    }
    Ok(())
}

/// Takes this member's turn to change the membership as leader (openraft takes one change at
/// a time; concurrent joins and removals wait instead of failing). Refused when, by the time
/// the turn comes, this member no longer leads as a voter of its own membership: a leader
/// whose removal committed keeps leading for a moment to tell the followers, and a change it
/// proposed then would come from outside the configuration it is committed under.
///
/// The turn also waits until the membership this leader holds is committed: a leader just
/// elected (or just initialized) holds one that commits with its first entry, and openraft
/// refuses a change proposed before that ("already undergoing a configuration change").
async fn membership_turn(inner: &Inner) -> Result<tokio::sync::MutexGuard<'_, ()>, StoreError> {
    let turn = inner.membership_changes.lock().await;
    if !leads_as_voter(inner) {
        return Err(StoreError::Unavailable(
            "this manager no longer leads the store as one of its voters (it was removed or \
             leadership moved); try again: the next leader makes the change"
                .into(),
        ));
    }
    let committed = inner
        .raft
        .wait(Some(inner.config.write_deadline))
        .metrics(
            |m| m.last_applied.as_ref() >= m.membership_config.log_id().as_ref(),
            "the leader's membership committed",
        )
        .await;
    if committed.is_err() {
        return Err(StoreError::Unavailable(
            "the store's last membership change is not committed yet (the leader cannot reach \
             a quorum of its voters); try again once it is"
                .into(),
        ));
    }
    Ok(turn)
}

/// Whether this member leads and is a voter of its own (latest) membership.
fn leads_as_voter(inner: &Inner) -> bool {
    let me = inner.config.raft_id;
    let metrics = inner.raft.metrics().borrow_watched().clone();
    metrics.state == ServerState::Leader
        && metrics.current_leader == Some(me)
        && metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == me)
}

/// Waits (briefly) until this member's published membership is the one committed at `log_id`
/// or later, so that the next change's check ([`membership_turn`]) and anyone reading
/// [`Store::members`] see it: openraft answers a membership change once it is applied but
/// publishes its metrics a moment later.
async fn wait_membership_published(inner: &Inner, log_id: &LogId) {
    let shown = inner
        .raft
        .wait(Some(inner.config.election_timeout.1))
        .metrics(
            |m| m.membership_config.log_id().as_ref() >= Some(log_id),
            format!("the membership of {log_id} published"),
        )
        .await;
    if let Err(e) = shown {
        tracing::warn!("a membership change committed but is not shown yet: {e}");
    }
}

/// Which voters a change is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judged {
    /// The store's voters as they are: for the membership changes the store itself makes.
    Current,
    /// The voters that will remain once the demotions the swarm has accepted are made: for a
    /// change an operator asks for (see [`Store::assess_voter_change`]).
    Staying,
}

/// The voters and whether the leader heard from them lately; `None` when this member does
/// not lead (only the leader knows who is reachable). With [`Judged::Staying`], a voter whose
/// node the swarm wants to be a worker is left out: the role manager removes it from the store
/// as soon as that keeps the quorum, so it is as good as gone.
fn voters_on_leader(inner: &Inner, judged: Judged) -> Option<Vec<Voter>> {
    let metrics = inner.raft.metrics().borrow_watched().clone();
    let reach = reachability(
        &metrics,
        &inner.peer_failures,
        inner.config.election_timeout.1,
    )?;
    let view = (judged == Judged::Staying).then(|| View::new(inner.shared.hub.state()));
    let membership = metrics.membership_config.membership();
    let voters = membership
        .voter_ids()
        .filter(|id| match (&view, membership.get_node(id)) {
            (Some(view), Some(peer)) => !being_demoted(view, *id, peer),
            _ => true,
        })
        .map(|id| Voter {
            raft_id: id,
            reachable: reach.get(&id).copied().unwrap_or(false),
        })
        .collect();
    Some(voters)
}

/// Whether the swarm wants the node of store member `raft_id` to be a worker (its demotion is
/// accepted but the member not yet removed). A member no node is known for is not. The node
/// still holds the manager role then: the role manager sets it only after the removal.
fn being_demoted(view: &View, raft_id: RaftId, peer: &PeerNode) -> bool {
    view.nodes_with_role(NodeRole::Manager)
        .find(|n| is_member_of(raft_id, peer, n))
        .is_some_and(|n| n.spec.role_or_default() == NodeRole::Worker)
}

fn assess_on_leader(
    inner: &Inner,
    change: VoterChange,
    judged: Judged,
) -> Result<Assessment, StoreError> {
    let voters = voters_on_leader(inner, judged).ok_or_else(|| {
        StoreError::Unavailable("this manager stopped leading the store; try again".into())
    })?;
    Ok(quorum::assess(&voters, change))
}

/// Removes `raft_id` on the leader. A voter's removal is refused when it would lose the quorum
/// at once (whoever asked: the role manager retries a demotion later); whether it may leave the
/// swarm one failure from that is the API's call, made before it asked.
async fn remove_member_on_leader(inner: &Arc<Inner>, raft_id: RaftId) -> Result<(), StoreError> {
    let raft = &inner.raft;
    let metrics = raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership().clone();
    let is_node = membership.get_node(&raft_id).is_some();
    if !is_node {
        return Ok(());
    }
    if membership.voter_ids().any(|v| v == raft_id) {
        if let Assessment::Refused(why) =
            assess_on_leader(inner, VoterChange::Remove(raft_id), Judged::Current)?
        {
            return Err(StoreError::QuorumAtRisk(why));
        }
        let mut ids = BTreeSet::new();
        ids.insert(raft_id);
        let turn = membership_turn(inner).await?;
        let change = raft.change_membership(ChangeMembers::RemoveVoters(ids), false);
        let changed = tokio::time::timeout(inner.config.write_deadline * 4, change)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!("removing member {raft_id}: not committed in time"))
            })?
            .map_err(|e| StoreError::Unavailable(format!("removing member {raft_id}: {e}")))?;
        wait_membership_published(inner, &changed.log_id).await;
        drop(turn);
        if let Some(node) = membership.get_node(&raft_id) {
            record_membership(inner, &node.node_id, RaftMembership::None).await;
        }
    } else {
        remove_learner(inner, raft_id).await?;
    }
    Ok(())
}

/// Builds a snapshot whenever [`SNAPSHOT_AFTER_BYTES`] (or the last snapshot's size) were
/// applied since the last one, then drops the log up to it (openraft's own policy counts
/// entries and keeps a tail of them).
async fn snapshot_by_size(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(inner) = inner.upgrade() else { return };
        let applied_since = inner.shared.bytes_since_snapshot();
        if inner.stopped.load(Ordering::Acquire)
            || applied_since < SNAPSHOT_AFTER_BYTES
            || applied_since < inner.shared.snapshot_bytes()
        {
            continue;
        }
        let raft = inner.raft.clone();
        drop(inner);
        if let Err(e) = snapshot_and_drop_log(&raft).await {
            tracing::warn!("a snapshot by size: {e}");
        }
    }
}

/// Builds a snapshot of everything applied so far, waits for it, and drops the log up to it
/// (openraft keeps a tail of entries behind its own snapshots; this keeps none).
async fn snapshot_and_drop_log(raft: &Raft) -> Result<(), String> {
    let applied = raft
        .metrics()
        .borrow_watched()
        .last_applied
        .map(|l| l.index);
    raft.trigger()
        .snapshot()
        .await
        .map_err(|e| format!("building a snapshot: {e}"))?;
    let m = raft
        .wait(Some(Duration::from_secs(600)))
        .metrics(|m| m.snapshot.map(|l| l.index) >= applied, "a snapshot")
        .await
        .map_err(|e| format!("building a snapshot: {e}"))?;
    let Some(index) = m.snapshot.map(|l| l.index) else {
        return Ok(());
    };
    raft.trigger()
        .purge_log(index)
        .await
        .map_err(|e| format!("dropping the log: {e}"))?;
    raft.wait(Some(Duration::from_secs(60)))
        .metrics(
            |m| m.purged.map(|l| l.index) >= Some(index),
            "the log purged",
        )
        .await
        .map_err(|e| format!("dropping the log: {e}"))?;
    Ok(())
}

async fn track_leadership(raft: Raft, tx: watch::Sender<Leadership>) {
    let mut metrics = raft.metrics();
    loop {
        let m = metrics.borrow_and_update().clone();
        let now = if m.state == ServerState::Leader && m.current_leader == Some(m.id) {
            Leadership::Leader {
                term: m.current_term,
            }
        } else {
            Leadership::Follower {
                leader: m.current_leader,
            }
        };
        tx.send_if_modified(|cur| {
            if *cur != now {
                *cur = now;
                true
            } else {
                false
            }
        });
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Group commit: takes every queued proposal (up to the batch limit) into one Raft entry, with a
/// bounded number of entries in flight so batches grow under load instead of queueing entries.
async fn run_proposer(inner: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Proposal>) {
    let (max_batch, inflight) = match inner.upgrade() {
        Some(i) => (i.config.max_batch_txns, i.config.max_inflight_batches),
        None => return,
    };
    let permits = Arc::new(Semaphore::new(inflight.max(1)));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        tokio::spawn(async move {
            let _permit = permit;
            flush(&inner, batch).await;
        });
    }
}

async fn flush(inner: &Inner, mut proposals: Vec<Proposal>) {
    if inner.stopped.load(Ordering::SeqCst) {
        for p in proposals {
            let _ = p.reply.send(Err(StoreError::Shutdown));
        }
        return;
    }
    let leader = inner.raft.current_leader().await;
    if leader != Some(inner.config.raft_id) {
        // Forwarded proposals are only committed by the member they were forwarded to.
        let (forwarded, own): (Vec<_>, Vec<_>) = proposals.into_iter().partition(|p| p.forwarded);
        for p in forwarded {
            let _ = p.reply.send(Err(StoreError::Unavailable(format!(
                "member {} is no longer the leader",
                inner.config.raft_id
            ))));
        }
        proposals = own;
        if proposals.is_empty() {
            return;
        }
    }
    let (ids, replies): (Vec<(TxnId, Txn)>, Vec<Reply>) = proposals
        .into_iter()
        .map(|p| ((p.id, p.txn), p.reply))
        .unzip();
    let batch = Batch {
        at: crate::model::Timestamp::now(),
        txns: Arc::new(ids),
    };
    let started = std::time::Instant::now();
    let size = batch.txns.len();
    let outcome = commit_batch(inner, leader, batch).await;
    inner.metrics.batch_transactions.observe(size as f64);
    if outcome.is_ok() {
        inner
            .metrics
            .proposal_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    tracing::debug!(
        target: "shoal_store::proposer",
        member = inner.config.raft_id,
        txns = size,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = outcome.is_ok(),
        "batch committed"
    );
    match outcome {
        Ok(resp) => {
            for (reply, result) in replies.into_iter().zip(resp.results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Commits `batch` through `leader` (this member or another), as `flush` found it.
async fn commit_batch(
    inner: &Inner,
    leader: Option<RaftId>,
    batch: Batch,
) -> Result<BatchResponse, StoreError> {
    let raft = &inner.raft;
    let me = inner.config.raft_id;
    if leader == Some(me) {
        return match raft.client_write(batch).await {
            Ok(resp) => Ok(resp.data),
            Err(openraft::errors::RaftError::Fatal(_)) => Err(StoreError::Shutdown),
            Err(e) => Err(StoreError::Unavailable(match e.forward_to_leader() {
                Some(f) => format!("leadership moved to {:?}", f.leader_id),
                None => e.to_string(),
            })),
        };
    }
    let Some(leader) = leader else {
        return Err(StoreError::Unavailable("no leader is elected".into()));
    };
    let membership = raft.metrics().borrow_watched().membership_config.clone();
    let Some(node) = membership.membership().get_node(&leader).cloned() else {
        return Err(StoreError::Unavailable(format!(
            "leader {leader} has no known address"
        )));
    };
    // A forward to a leader that has since been deposed (or died) may hang until its timeout;
    // give up on it as soon as this member learns of another leader. Retrying is safe: the
    // transactions are deduplicated by id.
    let mut leadership = inner.leadership.clone();
    leadership.borrow_and_update();
    let timeout = inner.config.attempt_timeout;
    let call = async {
        match tokio::time::timeout(
            timeout,
            inner
                .forwarder
                .send(&node.addr, encode(inner.config.encoding, &batch)),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(TransportError::Timeout {
                addr: node.addr.clone(),
                after: timeout,
            }),
        }
    };
    let leader_moved = async {
        loop {
            if leadership.changed().await.is_err() {
                return std::future::pending().await;
            }
            let now = match *leadership.borrow() {
                Leadership::Leader { .. } => Some(me),
                Leadership::Follower { leader } => leader,
            };
            if now.is_some() && now != Some(leader) {
                return;
            }
        }
    };
    let answer = tokio::select! {
        answer = call => answer.map_err(|e: TransportError| StoreError::Unavailable(e.to_string()))?,
        _ = leader_moved => {
            return Err(StoreError::Unavailable(format!(
                "leadership moved away from member {leader} during the write"
            )))
        }
    };
    let r: Result<BatchResponse, ForwardError> =
        codec::decode(&answer).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    r.map_err(|e| match e {
        ForwardError::NotLeader(l) => {
            StoreError::Unavailable(format!("member {leader} is no longer leader (now {l:?})"))
        }
        ForwardError::Unavailable(m) => StoreError::Unavailable(m),
    })
}
