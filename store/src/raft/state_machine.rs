//! The state machine: applies committed entries to the in-memory state and writes their watch
//! history to RocksDB (one write batch per apply call), then publishes each revision to the hub
//! and answers the proposers. The state is kept on disk only as snapshots; a restarted member
//! starts from its newest one and openraft applies the log after it again.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::db::Db;

use super::db::{
    cf, io_err, key_u64, u64_key, CF_DEDUP, CF_HISTORY, CF_HISTORY_OBJECTS, CF_OBJECTS, CF_SM,
};
use super::history;
use super::legacy;
use super::seal::{DataKey, Sealer};
use super::snapshot::{self, SnapshotFile};
use super::types::{BatchResponse, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::dedup::{DedupRecord, DedupTable};
use crate::hub::Hub;
use crate::state::State;
use crate::txn::{Action, Commit, Committed, TxnResult};
use crate::watch::{HistorySource, WatchError};

const KEY_FLOOR: &[u8] = b"history_floor";
/// The current snapshot's file name.
pub(super) const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The current snapshot's file key, sealed with the member's data key.
pub(super) const KEY_SNAPSHOT_KEY: &[u8] = b"snapshot_key";

/// The file name of the snapshot at log index `index`.
pub(super) fn snapshot_name(index: u64) -> String {
    format!("snapshot-{index}.jsonl")
}

/// How long applied transaction ids are remembered for retry deduplication, in revisions.
pub const DEDUP_WINDOW: u64 = 20_000;

/// Watch history retention.
#[derive(Clone, Copy, Debug)]
pub struct HistoryRetention {
    /// Keep at least the commits of this many most recent revisions.
    pub revisions: u64,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention { revisions: 100_000 }
    }
}

/// State shared between the state machine, its snapshot builders and the store handle.
pub struct SmShared {
    /// Taken by [`SmShared::close`] when the member stops, so that nothing the store handle
    /// keeps alive holds the database open (see `Store::shutdown`).
    db: Mutex<Option<Arc<Db>>>,
    /// Publishes revisions to readers and watchers.
    pub hub: Arc<Hub>,
    applied: Mutex<(Option<LogId>, StoredMembership)>,
    current_snapshot: Mutex<Option<CurrentSnapshot>>,
    /// Seals every value holding user data (objects, history, retry records).
    sealer: Arc<Sealer>,
    snapshot_dir: PathBuf,
    floor: AtomicU64,
    retention: HistoryRetention,
    bytes_since_snapshot: AtomicU64,
    /// How long snapshots take to build (`shoal_raft_snapshot_duration_seconds`).
    pub(crate) snapshot_seconds: prometheus::Histogram,
}

impl SmShared {
    /// The database, unless the member has stopped.
    fn db(&self) -> io::Result<Arc<Db>> {
        self.db
            .lock()
            .expect("db lock")
            .clone()
            .ok_or_else(|| io::Error::other("the store is stopped"))
    }

    /// A rough size of the stored objects: what a new member has to receive.
    pub fn estimated_data_bytes(&self) -> u64 {
        self.hub
            .state()
            .all_objects()
            .map(|o| o.approx_len() as u64)
            .sum()
    }

    /// Roughly how many bytes of entries were applied since the last snapshot (built or
    /// installed): the Raft log a restart would apply again, and keep on disk meanwhile.
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.bytes_since_snapshot.load(Ordering::Acquire)
    }

    /// The size of the newest snapshot file (0 without one).
    pub fn snapshot_bytes(&self) -> u64 {
        self.current_snapshot()
            .and_then(|c| std::fs::metadata(&c.path).ok())
            .map_or(0, |m| m.len())
    }

    /// Flushes every column family and compacts it whole (deleted rows and dropped log entries
    /// leave the files on disk only when compaction rewrites them).
    pub fn compact_database(&self) -> io::Result<()> {
        let db = self.db()?;
        db.flush_wal(true).map_err(io_err)?;
        for name in super::db::ALL {
            let family = cf(&db, name);
            db.flush_cf(family).map_err(io_err)?;
            db.compact_range_cf(family, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// Seals again with the current data key every value of the state machine's tables that
    /// is sealed with a retiring one (a data key rotation); returns how many. Each chunk is read
    /// and written while no writer is between sealing and writing (`Sealer::exclusive`), so a
    /// row a writer replaced or deleted meanwhile is never written back.
    pub fn reseal_at_rest(&self) -> io::Result<u64> {
        const CHUNK: usize = 512;
        let db = self.db()?;
        let mut resealed = 0;
        for name in [CF_SM, CF_HISTORY, CF_HISTORY_OBJECTS, CF_OBJECTS, CF_DEDUP] {
            let family = cf(&db, name);
            let mut from: Vec<u8> = Vec::new();
            loop {
                let _alone = self.sealer.exclusive();
                let mut wb = WriteBatch::default();
                let mut next = None;
                let it = db.iterator_cf(family, IteratorMode::From(&from, Direction::Forward));
                for (read, item) in it.enumerate() {
                    let (k, v) = item.map_err(io_err)?;
                    if read == CHUNK {
                        next = Some(k.to_vec());
                        break;
                    }
                    if let Some(sealed) = self.sealer.reseal(&v)? {
                        wb.put_cf(family, &k, sealed);
                        resealed += 1;
                    }
                }
                if !wb.is_empty() {
                    db.write(wb).map_err(io_err)?;
                }
                match next {
                    Some(k) => from = k,
                    None => break,
                }
            }
        }
        Ok(resealed)
    }

    /// Whether the data key is being rotated (values may be sealed with the retiring one).
    pub fn rotating_data_key(&self) -> bool {
        self.sealer.is_rotating()
    }

    /// The sealer of this member's values.
    pub(crate) fn sealer(&self) -> &Arc<Sealer> {
        &self.sealer
    }

    /// Lets go of the database: once openraft has stopped too, nothing holds it and it closes.
    pub fn close(&self) {
        self.db.lock().expect("db lock").take();
    }

    /// Last applied log id and the membership in effect.
    pub fn applied(&self) -> (Option<LogId>, StoredMembership) {
        self.applied.lock().expect("applied lock").clone()
    }

    /// Metadata, path and file key of the newest snapshot on disk.
    pub fn current_snapshot(&self) -> Option<CurrentSnapshot> {
        self.current_snapshot.lock().expect("snapshot lock").clone()
    }

    /// Where snapshots are written and received.
    pub fn snapshot_dir(&self) -> &PathBuf {
        &self.snapshot_dir
    }
}

impl HistorySource for SmShared {
    fn floor(&self) -> u64 {
        self.floor.load(Ordering::Acquire)
    }

    fn commits_between(&self, after: u64, upto: u64) -> Result<Vec<Arc<Commit>>, WatchError> {
        let start = u64_key(after + 1);
        let mut out = Vec::new();
        let db = self
            .db()
            .map_err(|e| WatchError::Unavailable(format!("reading history: {e}")))?;
        let it = db.iterator_cf(
            cf(&db, CF_HISTORY),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in it {
            let (k, v) =
                item.map_err(|e| WatchError::Unavailable(format!("reading history: {e}")))?;
            if key_u64(&k) > upto {
                break;
            }
            let plain = self
                .sealer
                .open(&v)
                .map_err(|e| WatchError::Unavailable(format!("reading history: {e}")))?;
            let commit = history::decode_row(&plain, &db, &self.sealer, &self.hub.state())
                .map_err(|e| WatchError::Unavailable(format!("decoding history: {e}")))?;
            out.push(Arc::new(commit));
        }
        // History may have been pruned concurrently below what we were asked for.
        let floor = self.floor();
        if after < floor {
            return Err(WatchError::Compacted {
                requested: after,
                oldest: floor,
                current: upto,
            });
        }
        Ok(out)
    }
}

/// The newest snapshot on disk.
#[derive(Clone, Debug)]
pub struct CurrentSnapshot {
    /// What it holds.
    pub meta: SnapshotMeta,
    /// Where it is.
    pub path: PathBuf,
    /// The key its records are sealed with (`None`: written in clear by an older version).
    pub key: Option<DataKey>,
}

impl CurrentSnapshot {
    fn file(&self) -> SnapshotFile {
        SnapshotFile {
            path: self.path.clone(),
            key: self.key.clone(),
        }
    }
}

/// openraft state machine over RocksDB and the in-memory [`State`].
pub struct StateMachine {
    shared: Arc<SmShared>,
    /// Only apply and snapshot installation change it; snapshot builders take a clone.
    dedup: DedupTable,
}

/// The JSON value at `key` in column family `cf_name`, if there is one.
pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    db: &Db,
    cf_name: &str,
    key: &[u8],
) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, cf_name), key).map_err(io_err)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v).map(Some).map_err(io_err),
    }
}

/// The snapshot the state machine recorded as its newest, if any.
fn stored_snapshot(
    db: &Db,
    sealer: &Sealer,
    snapshot_dir: &std::path::Path,
) -> io::Result<Option<CurrentSnapshot>> {
    let Some(name) = get_json::<String>(db, CF_SM, KEY_SNAPSHOT)? else {
        return Ok(None);
    };
    let key =
        match db.get_cf(cf(db, CF_SM), KEY_SNAPSHOT_KEY).map_err(io_err)? {
            Some(sealed) => Some(DataKey::from_bytes(&sealer.open(&sealed)?).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "malformed snapshot key")
            })?),
            None => None,
        };
    let path = snapshot_dir.join(name);
    let meta = snapshot::read_meta(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("reading the store's snapshot {}: {e}", path.display()),
        )
    })?;
    Ok(Some(CurrentSnapshot { meta, path, key }))
}

impl StateMachine {
    /// Opens the state machine at its newest snapshot: the state is kept on disk only as
    /// snapshots (and the Raft log after them, which openraft applies again from there up to
    /// the commit point it saved). A data directory of an earlier version, which kept every
    /// object in a table of its own, is converted on the way: its objects become a snapshot.
    pub fn open(
        db: Arc<Db>,
        sealer: Arc<Sealer>,
        snapshot_dir: PathBuf,
        retention: HistoryRetention,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(&snapshot_dir)?;
        let floor: u64 = get_json(&db, CF_SM, KEY_FLOOR)?.unwrap_or(0);
        let mut current_snapshot = stored_snapshot(&db, &sealer, &snapshot_dir)?;
        let (state, dedup, applied, membership) = if legacy::has_objects(&db) {
            let (meta, state, dedup) = legacy::load(&db, &sealer)?;
            current_snapshot = Some(legacy::convert(
                &db,
                &sealer,
                &snapshot_dir,
                &meta,
                &state,
                &dedup,
            )?);
            (state, dedup, meta.last_log_id, meta.last_membership)
        } else if let Some(current) = &current_snapshot {
            let (_, mut state, dedup) =
                snapshot::read(&current.path, current.key.as_ref(), sealer.seals()).map_err(
                    |e| {
                        io::Error::new(
                            e.kind(),
                            format!(
                                "reading the store's snapshot {}: {e}",
                                current.path.display()
                            ),
                        )
                    },
                )?;
            let meta = current.meta.clone();
            state.revision = meta.last_log_id.map(|l| l.index).unwrap_or(0);
            (state, dedup, meta.last_log_id, meta.last_membership)
        } else {
            (
                State::default(),
                DedupTable::default(),
                None,
                StoredMembership::default(),
            )
        };

        let hub = Arc::new(Hub::new(Arc::new(state), 4096));
        Ok(StateMachine {
            dedup,
            shared: Arc::new(SmShared {
                db: Mutex::new(Some(db)),
                hub,
                applied: Mutex::new((applied, membership)),
                current_snapshot: Mutex::new(current_snapshot),
                sealer,
                snapshot_dir,
                floor: AtomicU64::new(floor),
                retention,
                bytes_since_snapshot: AtomicU64::new(0),
                snapshot_seconds: crate::metrics::StoreMetrics::default().snapshot_seconds,
            }),
        })
    }

    /// State shared with the store handle.
    pub fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }

    /// Records one batch's transactions into `state` and `wb`; returns the results and the
    /// commit to publish.
    #[allow(clippy::too_many_arguments)]
    fn apply_batch(
        state: &mut State,
        dedup: &mut DedupTable,
        wb: &mut WriteBatch,
        db: &Db,
        sealer: &Sealer,
        batch: &super::types::Batch,
        log_id: &LogId,
        history_floor: u64,
    ) -> io::Result<(BatchResponse, Option<Commit>)> {
        let index = log_id.index;
        let term = log_id.leader_id.term;
        let mut results: Vec<TxnResult> = Vec::with_capacity(batch.txns.len());
        let mut events = Vec::new();
        for (txn_id, txn) in batch.txns.iter() {
            if let Some(prev) = dedup.recall(txn_id) {
                // A retry of a transaction already applied: answer as the first time.
                let result = match &prev.error {
                    Some(e) => Err(e.clone()),
                    None => Ok(Committed {
                        revision: prev.revision,
                        objects: txn
                            .ops
                            .iter()
                            .filter_map(|op| {
                                let (kind, id) = op.target();
                                state
                                    .get(kind, id)
                                    .filter(|o| o.version() == prev.revision)
                                    .cloned()
                            })
                            .collect(),
                    }),
                };
                results.push(result);
                continue;
            }
            let (result, txn_events) = state.apply_txn(txn, index, batch.at, term);
            let record = DedupRecord {
                revision: index,
                error: result.as_ref().err().cloned(),
            };
            dedup.remember(*txn_id, record);
            events.extend(txn_events);
            results.push(result);
        }
        // The state lives in memory and in snapshots; what is written here is the watch
        // history, each object encoded once for it.
        let mut encoded = Vec::with_capacity(events.len());
        for e in &events {
            let bytes = serde_json::to_vec(&*e.object).map_err(io_err)?;
            // A large object that leaves the state stays readable for the history rows that
            // name it (see `history`): a deleted one for its deletion's row too, a replaced
            // one only while the row of its own revision is kept.
            match (e.action, &e.prev) {
                (Action::Delete, _) if history::is_large(&e.object) => {
                    history::keep_displaced(wb, db, sealer, &e.object, &bytes, index);
                }
                (Action::Update, Some(prev))
                    if history::is_large(prev) && prev.version() > history_floor =>
                {
                    let prev_bytes = serde_json::to_vec(&**prev).map_err(io_err)?;
                    history::keep_displaced(wb, db, sealer, prev, &prev_bytes, index);
                }
                _ => {}
            }
            encoded.push(bytes);
        }
        let commit = if events.is_empty() {
            None
        } else {
            let commit = Commit {
                revision: index,
                at: batch.at,
                events,
            };
            wb.put_cf(
                cf(db, CF_HISTORY),
                u64_key(index),
                sealer.seal(&history::encode_row(&commit, &encoded)?),
            );
            Some(commit)
        };
        Ok((BatchResponse { results }, commit))
    }
}

/// Drops history and dedup records that fell out of their windows.
fn prune(
    shared: &SmShared,
    dedup: &mut DedupTable,
    wb: &mut WriteBatch,
    index: u64,
) -> io::Result<()> {
    let db = &shared.db()?;
    if index > DEDUP_WINDOW && index.is_multiple_of(1024) {
        dedup.forget_before(index - DEDUP_WINDOW);
    }
    let keep = shared.retention.revisions.max(1);
    let floor = shared.floor.load(Ordering::Acquire);
    if index > keep && index - keep > floor && index.is_multiple_of(256) {
        let new_floor = index - keep;
        wb.delete_range_cf(cf(db, CF_HISTORY), u64_key(0), u64_key(new_floor + 1));
        history::prune_displaced(wb, db, new_floor)?;
        wb.put_cf(
            cf(db, CF_SM),
            KEY_FLOOR,
            serde_json::to_vec(&new_floor).map_err(io_err)?,
        );
        shared.floor.store(new_floor, Ordering::Release);
    }
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok(self.shared.applied())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let db = self.shared.db()?;
        let sealer = &*self.shared.sealer.clone();
        let mut state: State = (*self.shared.hub.state()).clone();
        let dedup = &mut self.dedup;
        let (mut applied, mut membership) = self.shared.applied();
        let mut received = Vec::new();
        while let Some(item) = entries.try_next().await? {
            received.push(item);
        }
        if received.is_empty() {
            return Ok(());
        }
        crate::mutation::failpoint("apply-before");
        let shared = &self.shared;
        // Encoding, sealing and writing many or large objects happen off the async workers.
        let bytes = super::entries_approx_len(received.iter().map(|(entry, _)| entry));
        let large = bytes > super::OFF_RUNTIME_BYTES;
        let (outcomes, applied, membership) = super::off_runtime_if(large, || -> io::Result<_> {
            // From the first value sealed to the write (see `Sealer::writing`).
            let _writing = sealer.writing();
            let mut wb = WriteBatch::default();
            let mut outcomes = Vec::with_capacity(received.len());
            for (entry, responder) in received {
                let log_id = entry.log_id;
                state.revision = log_id.index;
                let (response, commit) = match &entry.payload {
                    EntryPayload::Blank => (BatchResponse::default(), None),
                    EntryPayload::Normal(batch) => Self::apply_batch(
                        &mut state,
                        dedup,
                        &mut wb,
                        &db,
                        sealer,
                        batch,
                        &log_id,
                        shared.floor.load(Ordering::Acquire),
                    )?,
                    EntryPayload::Membership(m) => {
                        membership = StoredMembership::new(Some(log_id), m.clone());
                        (BatchResponse::default(), None)
                    }
                };
                prune(shared, dedup, &mut wb, log_id.index)?;
                applied = Some(log_id);
                outcomes.push((commit.map(Arc::new), responder, response));
            }
            // Not synced here: the entries are durable in the log, and a restart applies them
            // again from the last snapshot (writing the same rows).
            if !wb.is_empty() {
                db.write(wb).map_err(io_err)?;
            }
            Ok((outcomes, applied, membership))
        })?;
        crate::mutation::failpoint("apply-after");
        *self.shared.applied.lock().expect("applied lock") = (applied, membership);
        self.shared
            .bytes_since_snapshot
            .fetch_add(bytes as u64, Ordering::AcqRel);
        // One publish for the whole call: watchers get every commit in order, readers the final
        // state (no intermediate state is ever observable, which is fine: each commit's effects
        // are all in it). Answer proposers only after their writes are visible.
        let mut commits = Vec::with_capacity(outcomes.len());
        let mut replies = Vec::with_capacity(outcomes.len());
        for (commit, responder, response) in outcomes {
            commits.extend(commit);
            replies.push((responder, response));
        }
        self.shared.hub.publish(Arc::new(state), commits);
        for (responder, response) in replies {
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (applied, membership) = self.shared.applied();
        SnapshotBuilder {
            shared: self.shared.clone(),
            state: self.shared.hub.state(),
            dedup: self.dedup.clone(),
            meta: SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
            },
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> io::Result<()> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        let (state, dedup) =
            tokio::task::spawn_blocking(move || -> io::Result<(State, DedupTable)> {
                let (_file_meta, mut state, dedup) =
                    snapshot::read(&snapshot.path, snapshot.key.as_ref(), shared.sealer.seals())?;
                let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
                state.revision = index;
                let db = &shared.db()?;
                let _writing = shared.sealer.writing();
                let mut wb = WriteBatch::default();
                wb.delete_range_cf(cf(db, CF_HISTORY), u64_key(0), u64_key(u64::MAX));
                history::clear_displaced(&mut wb, db);
                let sealer = &shared.sealer;
                let sm = cf(db, CF_SM);
                wb.put_cf(sm, KEY_FLOOR, serde_json::to_vec(&index).map_err(io_err)?);
                // Keep the received file as our current snapshot.
                let name = snapshot_name(index);
                let dest = shared.snapshot_dir.join(&name);
                // It is the state from now on: on disk before it is named as such.
                File::open(&snapshot.path)?.sync_all()?;
                std::fs::rename(&snapshot.path, &dest)?;
                File::open(&shared.snapshot_dir)?.sync_all()?;
                crate::mutation::failpoint("snapshot-install");
                wb.put_cf(sm, KEY_SNAPSHOT, serde_json::to_vec(&name).map_err(io_err)?);
                match &snapshot.key {
                    Some(key) => wb.put_cf(sm, KEY_SNAPSHOT_KEY, sealer.seal(key.as_bytes())),
                    None => wb.delete_cf(sm, KEY_SNAPSHOT_KEY),
                }
                db.write(wb).map_err(io_err)?;
                db.flush_wal(true).map_err(io_err)?;
                shared.floor.store(index, Ordering::Release);
                shared.bytes_since_snapshot.store(0, Ordering::Release);
                *shared.applied.lock().expect("applied lock") =
                    (meta.last_log_id, meta.last_membership.clone());
                *shared.current_snapshot.lock().expect("snapshot lock") = Some(CurrentSnapshot {
                    meta: meta.clone(),
                    path: dest.clone(),
                    key: snapshot.key.clone(),
                });
                remove_older_snapshots(&shared.snapshot_dir, &dest);
                Ok((state, dedup))
            })
            .await
            .map_err(io_err)??;
        tracing::info!(
            revision = state.revision,
            objects = state.len(),
            "installed snapshot"
        );
        self.dedup = dedup;
        self.shared.hub.reset(Arc::new(state));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self.shared.current_snapshot().map(|c| Snapshot {
            meta: c.meta.clone(),
            snapshot: c.file(),
        }))
    }
}

/// Removes every snapshot file in `dir` except `keep`. One being sent to a peer is not
/// disturbed: the sender holds it open, and Linux keeps an open file's data until it is closed.
pub(super) fn remove_older_snapshots(dir: &std::path::Path, keep: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let files: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let idx = name
                .strip_prefix("snapshot-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            Some((idx, e.path()))
        })
        .collect();
    for (_, path) in files {
        if path != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Builds a snapshot from a frozen view of the state, off the apply path.
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
    state: Arc<State>,
    dedup: DedupTable,
    meta: SnapshotMeta,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let shared = self.shared.clone();
        let state = self.state.clone();
        let dedup = self.dedup.clone();
        let meta = self.meta.clone();
        tokio::task::spawn_blocking(move || -> io::Result<Snapshot> {
            let _timer = shared.snapshot_seconds.start_timer();
            // Make the state machine's own writes up to this point durable before openraft is
            // told the snapshot exists (it may then purge the log entries behind it).
            let db = shared.db()?;
            db.flush_wal(true).map_err(io_err)?;
            let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
            let name = snapshot_name(index);
            // Every snapshot gets a key of its own: it travels with the file to a member that
            // installs it, while the data key never leaves this member. A store that does not
            // seal at rest writes it in clear, with no key.
            let key = shared.sealer.seals().then(DataKey::generate);
            let path = snapshot::write(
                &shared.snapshot_dir,
                &name,
                &meta,
                &state,
                &dedup,
                key.as_ref(),
            )?;
            crate::mutation::failpoint("snapshot-build");
            let _writing = shared.sealer.writing();
            let mut wb = WriteBatch::default();
            let sm = cf(&db, CF_SM);
            wb.put_cf(sm, KEY_SNAPSHOT, serde_json::to_vec(&name).map_err(io_err)?);
            match &key {
                Some(key) => wb.put_cf(sm, KEY_SNAPSHOT_KEY, shared.sealer.seal(key.as_bytes())),
                None => wb.delete_cf(sm, KEY_SNAPSHOT_KEY),
            }
            db.write(wb).map_err(io_err)?;
            // Synced before the older snapshot goes: its removal may reach the disk before
            // the log's next sync, and a power cut between the two would leave the store naming
            // a file that is gone (found by the chaos suite's power-loss scenario).
            db.flush_wal(true).map_err(io_err)?;
            *shared.current_snapshot.lock().expect("snapshot lock") = Some(CurrentSnapshot {
                meta: meta.clone(),
                path: path.clone(),
                key: key.clone(),
            });
            remove_older_snapshots(&shared.snapshot_dir, &path);
            shared.bytes_since_snapshot.store(0, Ordering::Release);
            tracing::debug!(index, objects = state.len(), "built snapshot");
            Ok(Snapshot {
                meta,
                snapshot: SnapshotFile { path, key },
            })
        })
        .await
        .map_err(io_err)?
    }
}
