//! The Raft log and vote in RocksDB. An append is acknowledged to openraft only after the WAL
//! holding it is synced; one flusher thread syncs once for every append queued behind it, so
//! concurrent appends share an fsync (group commit at the disk).
//!
//! Log writes themselves are done by that thread too, in order: openraft's core calls
//! `append`, `truncate_after` and `purge` on its own task, and a RocksDB write can wait for a
//! long time (behind a WAL sync while the disk is busy writing a snapshot's tables, or a write
//! stall): a core blocked there hears no heartbeats and calls an election.
//!
//! openraft reads entries back from the log to replicate and to apply them; the newest entries
//! are also kept decoded in memory ([`TailCache`]) so those reads do not decode JSON again.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::db::Db;

use super::db::{cf, io_err, key_u64, u64_key, CF_LOG, CF_RAFT};
use super::seal::Sealer;
use super::types::{Entry, LogId, TypeConfig, Vote};
use crate::codec::{self, Encoding};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// The commit point last saved (see `save_committed`).
const KEY_COMMITTED: &[u8] = b"committed";

/// Most entries the tail cache holds.
const TAIL_MAX_ENTRIES: usize = 4096;
/// Most encoded bytes the tail cache holds (entries are counted at their encoded size). Only
/// the entries still being replicated and applied are read back, a few hundred at most; a
/// follower further behind is served from RocksDB.
const TAIL_MAX_BYTES: usize = 16 << 20;

/// What the tail cache needs of an entry.
trait Indexed: Clone {
    /// The entry's log index.
    fn position(&self) -> u64;
}

impl Indexed for Entry {
    fn position(&self) -> u64 {
        self.index()
    }
}

/// The newest log entries, decoded: a contiguous run ending at the last appended entry. It
/// mirrors every change to the log in RocksDB (append, truncate, purge), so any index it holds
/// has the entry RocksDB holds.
struct TailCache<E = Entry> {
    entries: VecDeque<(E, usize)>,
    bytes: usize,
}

impl<E> Default for TailCache<E> {
    fn default() -> Self {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<E: Indexed> TailCache<E> {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.position())
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.position() + 1)
    }

    fn push(&mut self, entry: E, size: usize) {
        if self
            .next_index()
            .is_some_and(|next| next != entry.position())
        {
            // Not contiguous (cannot happen: openraft truncates before overwriting): start over.
            self.clear();
        }
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.entries.len() > TAIL_MAX_ENTRIES || self.bytes > TAIL_MAX_BYTES {
            match self.entries.pop_front() {
                Some((_, n)) => self.bytes -= n,
                None => break,
            }
        }
    }

    /// Drops entries with an index at or above `from`.
    fn truncate_from(&mut self, from: u64) {
        while self
            .entries
            .back()
            .is_some_and(|(e, _)| e.position() >= from)
        {
            if let Some((_, n)) = self.entries.pop_back() {
                self.bytes -= n;
            }
        }
    }

    /// Drops entries with an index at or below `upto`.
    fn purge_upto(&mut self, upto: u64) {
        while self.first_index().is_some_and(|first| first <= upto) {
            if let Some((_, n)) = self.entries.pop_front() {
                self.bytes -= n;
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Clones the cached entries in `[start, end)`, if the cache holds `start`.
    fn get(&self, start: u64, end: u64) -> Option<Vec<E>> {
        let first = self.first_index()?;
        if start < first || start >= self.next_index()? {
            return None;
        }
        let skip = (start - first) as usize;
        Some(
            self.entries
                .iter()
                .skip(skip)
                .take_while(|(e, _)| e.position() < end)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

/// What the log's IO thread is asked to do, in order.
enum LogIo {
    /// Write these changes (after everything queued before).
    Write(WriteBatch),
    /// Report to openraft once everything queued before is written and synced.
    Flushed(IOFlushed<TypeConfig>),
    /// Say so once everything queued before is written (not necessarily synced).
    Written(tokio::sync::oneshot::Sender<io::Result<()>>),
    /// Say so once everything queued before is written and synced.
    Synced(tokio::sync::oneshot::Sender<io::Result<()>>),
    /// Seal again with the current data key the entries from index `from` on that are sealed
    /// with a retiring one, at most [`RESEAL_CHUNK`] of them; answer the index to go on from
    /// (`None`: done). Done here, in order with every other write to the log, so no entry a
    /// truncation replaced is ever written back.
    Reseal {
        from: u64,
        reply: tokio::sync::oneshot::Sender<io::Result<Option<u64>>>,
    },
}

/// How many log entries one [`LogIo::Reseal`] reads: appends wait behind it meanwhile.
const RESEAL_CHUNK: usize = 512;

/// Seals again the entries from `from` on that need it (see [`LogIo::Reseal`]).
fn reseal_entries(db: &Db, sealer: &Sealer, from: u64) -> io::Result<Option<u64>> {
    let log = cf(db, CF_LOG);
    let start = u64_key(from);
    let mut batch = WriteBatch::default();
    let mut next = None;
    for (read, item) in db
        .iterator_cf(log, IteratorMode::From(&start, Direction::Forward))
        .enumerate()
    {
        let (k, v) = item.map_err(io_err)?;
        if read == RESEAL_CHUNK {
            next = Some(key_u64(&k));
            break;
        }
        if let Some(resealed) = sealer.reseal(&v)? {
            batch.put_cf(log, &k, resealed);
        }
    }
    if !batch.is_empty() {
        db.write(batch).map_err(io_err)?;
    }
    Ok(next)
}

/// RocksDB-backed Raft log storage.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    /// Entries are sealed at rest (they carry the objects users write).
    sealer: Arc<Sealer>,
    /// How entries are written (either is read: [`crate::codec::decode`]).
    encoding: Encoding,
    io: std_mpsc::Sender<LogIo>,
    tail: Arc<Mutex<TailCache<Entry>>>,
}

/// The IO thread: writes what is queued, in order, and syncs the WAL once for every group of
/// appends waiting (group commit). A failed write fails everything after it in the group.
fn run_log_io(db: Arc<Db>, sealer: Arc<Sealer>, rx: std_mpsc::Receiver<LogIo>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        group.extend(rx.try_iter());
        let mut failed: Option<String> = None;
        let mut flushed = Vec::new();
        let mut synced = Vec::new();
        for op in group {
            match op {
                LogIo::Write(batch) => {
                    if failed.is_none() {
                        if let Err(e) = db.write(batch) {
                            failed = Some(format!("writing the Raft log: {e}"));
                        }
                    }
                }
                LogIo::Flushed(cb) => flushed.push(cb),
                LogIo::Synced(tx) => synced.push(tx),
                LogIo::Reseal { from, reply } => {
                    let _ = reply.send(match &failed {
                        None => reseal_entries(&db, &sealer, from),
                        Some(e) => Err(io::Error::other(e.clone())),
                    });
                }
                LogIo::Written(tx) => {
                    let _ = tx.send(match &failed {
                        None => Ok(()),
                        Some(e) => Err(io::Error::other(e.clone())),
                    });
                }
            }
        }
        if flushed.is_empty() && synced.is_empty() {
            continue;
        }
        if !flushed.is_empty() {
            crate::mutation::failpoint("log-before-sync");
        }
        let result = match &failed {
            Some(e) => Err(e.clone()),
            // `skip-fsync` (debug builds only): written to the OS, acknowledged unsynced.
            None => db
                .flush_wal(!crate::mutation::active("skip-fsync"))
                .map_err(|e| e.to_string()),
        };
        if !flushed.is_empty() {
            crate::mutation::failpoint("log-after-sync");
        }
        for cb in flushed {
            cb.io_completed(result.clone().map_err(io::Error::other));
        }
        for tx in synced {
            let _ = tx.send(result.clone().map_err(io::Error::other));
        }
    }
}

/// In debug builds (every test), that `bytes` decode to `entry` again, compared as JSON: an
/// object the binary encoding cannot carry faithfully fails the write that holds it, instead
/// of reaching a follower or a restart as something else.
fn check_round_trip(entry: &Entry, bytes: &[u8]) -> io::Result<()> {
    if cfg!(debug_assertions) {
        let back: Entry = codec::decode(bytes).map_err(io_err)?;
        let (want, got) = (serde_json::to_value(entry)?, serde_json::to_value(&back)?);
        if want != got {
            return Err(io::Error::other(format!(
                "log entry {} does not survive its encoding: wrote {want}, read back {got}",
                entry.index()
            )));
        }
    }
    Ok(())
}

impl LogStore {
    /// A log store over `db` that writes entries in `encoding`, with its IO thread.
    pub fn new(db: Arc<Db>, sealer: Arc<Sealer>, encoding: Encoding) -> Self {
        let (tx, rx) = std_mpsc::channel::<LogIo>();
        let io_db = db.clone();
        let io_sealer = sealer.clone();
        std::thread::Builder::new()
            .name("raft-log-io".into())
            .spawn(move || run_log_io(io_db, io_sealer, rx))
            .expect("spawn the Raft log's IO thread");
        LogStore {
            db,
            sealer,
            encoding,
            io: tx,
            tail: Arc::default(),
        }
    }

    fn queue(&self, op: LogIo) -> io::Result<()> {
        self.io
            .send(op)
            .map_err(|_| io::Error::other("the Raft log's IO thread has stopped"))
    }

    /// Waits until everything queued so far is written.
    async fn written(&self) -> io::Result<()> {
        self.answered(LogIo::Written).await
    }

    /// Waits until everything queued so far is written and synced.
    async fn synced(&self) -> io::Result<()> {
        self.answered(LogIo::Synced).await
    }

    /// Queues the request `ask` makes of a reply channel and waits for the IO thread's answer.
    async fn answered(
        &self,
        ask: fn(tokio::sync::oneshot::Sender<io::Result<()>>) -> LogIo,
    ) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue(ask(tx))?;
        rx.await
            .map_err(|_| io::Error::other("the Raft log's IO thread has stopped"))?
    }

    /// Seals again with the current data key every entry sealed with a retiring one (a data
    /// key rotation), in chunks queued behind the log's other writes.
    pub async fn reseal(&self) -> io::Result<()> {
        let mut from = 0;
        loop {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.queue(LogIo::Reseal { from, reply })?;
            match answer
                .await
                .map_err(|_| io::Error::other("the Raft log's IO thread has stopped"))??
            {
                Some(next) => from = next,
                None => return Ok(()),
            }
        }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        raft_meta(&self.db, key)
    }
}

/// The Raft metadata value at `key` in `db` (vote, purge point), if there is one.
fn raft_meta<T: serde::de::DeserializeOwned>(db: &Db, key: &[u8]) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, CF_RAFT), key).map_err(io_err)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io_err),
    }
}

/// Makes the log and the saved commit point agree again with what a crash or a power cut left
/// on disk; called when the store opens, before openraft reads either. Returns what it
/// repaired (nothing after a clean stop).
///
/// A power cut keeps every write that was synced, but of the writes after the last sync it
/// keeps some and loses others, not necessarily the newest: RocksDB's WAL recovery skips a
/// block the disk never wrote (zeros, an extent whose conversion the journal lost) and replays
/// the blocks after it. So after a cut:
/// - the log may have a hole: an append written after the last sync survived, an earlier one
///   did not. Nothing from the hole on was acknowledged (an append is acknowledged only after
///   a sync, which would have kept the entries before it too), so it is dropped;
/// - the saved commit point (written unsynced, behind the appends) may name an entry the log
///   no longer holds, or holds from another leader. It is then dropped too: openraft takes the
///   state machine's snapshot as the commit point and learns the rest from the leader.
pub fn repair_after_crash(db: &Db, sealer: &Sealer) -> io::Result<CrashRepair> {
    let log = cf(db, CF_LOG);
    let mut repair = CrashRepair::default();
    let mut expected: Option<u64> = None;
    for item in db.iterator_cf(log, IteratorMode::Start) {
        let (k, _) = item.map_err(io_err)?;
        let index = key_u64(&k);
        match expected {
            Some(next) if index != next => {
                repair.hole_at = Some(next);
                break;
            }
            _ => expected = Some(index + 1),
        }
    }
    let mut batch = WriteBatch::default();
    if let Some(from) = repair.hole_at {
        batch.delete_range_cf(log, u64_key(from), u64_key(u64::MAX));
    }
    if let Some(committed) = saved_commit(db)? {
        let last_purged: Option<LogId> = raft_meta(db, KEY_LAST_PURGED)?;
        let covered = last_purged.is_some_and(|p| committed.index() <= p.index());
        let kept = repair.hole_at.is_none_or(|from| committed.index() < from);
        let holds = covered
            || (kept
                && match db.get_cf(log, u64_key(committed.index())).map_err(io_err)? {
                    Some(v) => {
                        let entry: Entry = codec::decode(&sealer.open(&v)?).map_err(io_err)?;
                        entry.log_id() == committed
                    }
                    None => false,
                });
        if !holds {
            batch.delete_cf(cf(db, CF_RAFT), KEY_COMMITTED);
            repair.dropped_commit = Some(committed);
        }
    }
    if !batch.is_empty() {
        db.write(batch)?;
        db.flush_wal(true)?;
    }
    Ok(repair)
}

/// What [`repair_after_crash`] repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashRepair {
    /// The log had a hole here: the entries from this index on were dropped.
    pub hole_at: Option<u64>,
    /// The saved commit point named an entry the log does not hold; it was dropped.
    pub dropped_commit: Option<LogId>,
}

/// The commit point last saved in `db` (see `save_committed`); also read before the log
/// store opens.
pub fn saved_commit(db: &Db) -> io::Result<Option<LogId>> {
    match db.get_cf(cf(db, CF_RAFT), KEY_COMMITTED).map_err(io_err)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(io_err),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let mut out = self
            .tail
            .lock()
            .expect("log tail lock")
            .get(start, end)
            .unwrap_or_default();
        // Whatever the cache did not have (normally nothing) comes from RocksDB, once the
        // writes queued before are in.
        let from = out.last().map(|e| e.index() + 1).unwrap_or(start);
        if from >= end {
            return Ok(out);
        }
        self.written().await?;
        let start_key = u64_key(from);
        let it = self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&start_key, Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(io_err)?;
            let index = key_u64(&k);
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = codec::decode(&self.sealer.open(&v)?).map_err(io_err)?;
            out.push(entry);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last = match self
            .db
            .iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End)
            .next()
        {
            None => None,
            Some(item) => {
                let (_, v) = item.map_err(io_err)?;
                let entry: Entry = codec::decode(&self.sealer.open(&v)?).map_err(io_err)?;
                Some(entry.log_id())
            }
        };
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_VOTE,
            serde_json::to_vec(vote).map_err(io_err)?,
        );
        self.queue(LogIo::Write(batch))?;
        // A vote must be durable before it is acted upon.
        self.synced().await
    }

    /// The state machine keeps its state on disk only as snapshots, so a restarted member
    /// applies the log again from its last snapshot: up to the commit point saved here at once
    /// (openraft does so when it starts), the rest when the leader tells it. Queued behind the
    /// appends and not synced on its own: it is never ahead of the log it points into, and a
    /// commit point lost in a crash only means a restarted member learns it from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_COMMITTED,
            serde_json::to_vec(&committed).map_err(io_err)?,
        );
        self.queue(LogIo::Write(batch))
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        saved_commit(&self.db)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, CF_LOG);
        // Encoding and sealing large entries happen off the async workers (this is openraft's
        // core, which must keep answering heartbeats).
        let entries: Vec<Entry> = entries.into_iter().collect();
        let large = super::entries_are_large(&entries);
        // From the first value sealed until the batch is queued (see `Sealer::writing`): a key
        // rotation then finds every value sealed with the old key already queued ahead of it.
        let writing = self.sealer.writing();
        let (batch, appended) = super::off_runtime_if(large, || -> io::Result<_> {
            let mut batch = WriteBatch::default();
            let mut appended = Vec::new();
            for entry in entries {
                let bytes = codec::encode(self.encoding, &entry).map_err(io_err)?;
                check_round_trip(&entry, &bytes)?;
                batch.put_cf(log, u64_key(entry.index()), self.sealer.seal(&bytes));
                appended.push((entry, bytes.len()));
            }
            Ok((batch, appended))
        })?;
        // Readable from the tail cache now; written and synced by the IO thread, which then
        // reports to openraft.
        {
            let mut tail = self.tail.lock().expect("log tail lock");
            for (entry, size) in appended {
                tail.push(entry, size);
            }
        }
        self.queue(LogIo::Write(batch))?;
        drop(writing);
        self.queue(LogIo::Flushed(callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        self.tail.lock().expect("log tail lock").truncate_from(from);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG), u64_key(from), u64_key(u64::MAX));
        self.queue(LogIo::Write(batch))?;
        // Synced before anything else is written: the entries appended next replace the ones
        // deleted here, and a power cut that kept them but lost the deletion (see
        // `repair_after_crash`: unsynced writes do not survive in order) would leave a log
        // whose older entries follow newer ones. Truncations are rare (a follower's
        // conflicting tail), so the sync costs little. It also means no read can see the
        // entries it removes.
        self.synced().await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        crate::mutation::failpoint("log-purge");
        self.tail
            .lock()
            .expect("log tail lock")
            .purge_upto(log_id.index());
        // The purge point and the deletion in one write: entries at or before the point are
        // ignored from then on.
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_LAST_PURGED,
            serde_json::to_vec(&log_id).map_err(io_err)?,
        );
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            u64_key(0),
            u64_key(log_id.index() + 1),
        );
        self.queue(LogIo::Write(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database whose log holds `(term, index)` entries and whose saved commit is `commit`.
    fn log_with(
        dir: &std::path::Path,
        entries: &[(u64, u64)],
        commit: Option<(u64, u64)>,
    ) -> Arc<Db> {
        let db = super::super::db::open(dir).expect("open");
        let sealer = Sealer::clear();
        let mut batch = WriteBatch::default();
        for &(term, index) in entries {
            let entry = Entry::new_blank(LogId::new_term_index(term, index));
            let bytes = codec::encode(Encoding::Binary, &entry).expect("encode");
            batch.put_cf(cf(&db, CF_LOG), u64_key(index), sealer.seal(&bytes));
        }
        let commit = commit.map(|(t, i)| LogId::new_term_index(t, i));
        batch.put_cf(
            cf(&db, CF_RAFT),
            KEY_COMMITTED,
            serde_json::to_vec(&commit).expect("json"),
        );
        db.write(batch).expect("write");
        db
    }

    fn indexes(db: &Db) -> Vec<u64> {
        db.iterator_cf(cf(db, CF_LOG), IteratorMode::Start)
            .map(|item| key_u64(&item.expect("read").0))
            .collect()
    }

    #[test]
    fn a_log_that_survived_whole_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = log_with(dir.path(), &[(1, 1), (1, 2), (2, 3), (2, 4)], Some((2, 3)));
        let repair = repair_after_crash(&db, &Sealer::clear()).expect("repair");
        assert_eq!(repair, CrashRepair::default());
        assert_eq!(indexes(&db), vec![1, 2, 3, 4]);
        assert_eq!(
            saved_commit(&db).expect("read"),
            Some(LogId::new_term_index(2, 3))
        );
    }

    #[test]
    fn entries_after_a_hole_and_a_commit_point_past_it_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Entry 4 was lost in the cut; 5 and 6, written after it, survived.
        let db = log_with(dir.path(), &[(1, 2), (1, 3), (1, 5), (1, 6)], Some((1, 5)));
        let repair = repair_after_crash(&db, &Sealer::clear()).expect("repair");
        assert_eq!(repair.hole_at, Some(4));
        assert_eq!(repair.dropped_commit, Some(LogId::new_term_index(1, 5)));
        assert_eq!(indexes(&db), vec![2, 3]);
        assert_eq!(saved_commit(&db).expect("read"), None);
    }

    #[test]
    fn a_commit_point_naming_another_leaders_entry_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = log_with(dir.path(), &[(1, 1), (3, 2), (3, 3)], Some((2, 3)));
        let repair = repair_after_crash(&db, &Sealer::clear()).expect("repair");
        assert_eq!(repair.hole_at, None);
        assert_eq!(repair.dropped_commit, Some(LogId::new_term_index(2, 3)));
        assert_eq!(indexes(&db), vec![1, 2, 3]);
        // Behind the purge point a commit needs no entry.
        let dir = tempfile::tempdir().expect("tempdir");
        let db = log_with(dir.path(), &[(2, 8), (2, 9)], Some((2, 5)));
        db.put_cf(
            cf(&db, CF_RAFT),
            KEY_LAST_PURGED,
            serde_json::to_vec(&LogId::new_term_index(2, 7)).expect("json"),
        )
        .expect("put");
        let repair = repair_after_crash(&db, &Sealer::clear()).expect("repair");
        assert_eq!(repair, CrashRepair::default());
    }

    impl Indexed for u64 {
        fn position(&self) -> u64 {
            *self
        }
    }

    fn cache(range: std::ops::Range<u64>) -> TailCache<u64> {
        let mut c = TailCache::default();
        for i in range {
            c.push(i, 10);
        }
        c
    }

    #[test]
    fn serves_only_ranges_that_start_inside_it() {
        let c = cache(5..10);
        assert_eq!(c.get(5, 10), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(c.get(7, 9), Some(vec![7, 8]));
        assert_eq!(c.get(8, u64::MAX), Some(vec![8, 9]));
        assert_eq!(c.get(4, 10), None, "index 4 is not cached");
        assert_eq!(c.get(10, 12), None, "nothing at or past the end");
    }

    #[test]
    fn mirrors_truncate_and_purge() {
        let mut c = cache(1..11);
        c.truncate_from(8);
        assert_eq!(c.get(1, u64::MAX), Some((1..8).collect()));
        assert_eq!(c.bytes, 70);
        c.purge_upto(3);
        assert_eq!(c.get(4, u64::MAX), Some((4..8).collect()));
        assert_eq!(c.get(3, u64::MAX), None);
        c.push(8, 10);
        assert_eq!(c.get(7, u64::MAX), Some(vec![7, 8]));
    }

    #[test]
    fn a_gap_restarts_the_cache_and_the_size_is_bounded() {
        let mut c = cache(1..4);
        c.push(9, 10);
        assert_eq!(c.get(1, u64::MAX), None);
        assert_eq!(c.get(9, u64::MAX), Some(vec![9]));
        let big = cache(0..(TAIL_MAX_ENTRIES as u64 + 10));
        assert_eq!(big.entries.len(), TAIL_MAX_ENTRIES);
        assert_eq!(big.first_index(), Some(10));
    }
}
