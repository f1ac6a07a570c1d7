//! The Raft log and vote in RocksDB. An append is acknowledged to openraft only after the WAL
//! holding it is synced; one flusher thread syncs once for every append queued behind it, so
//! concurrent appends share an fsync (group commit at the disk).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::db::{cf, io_err, key_u64, u64_key, CF_LOG, CF_RAFT};
use super::types::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

/// RocksDB-backed Raft log storage.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: std_mpsc::Sender<IOFlushed<TypeConfig>>,
}

impl LogStore {
    /// A log store over `db`, with its WAL flusher thread.
    pub fn new(db: Arc<DB>) -> Self {
        let (tx, rx) = std_mpsc::channel::<IOFlushed<TypeConfig>>();
        let flush_db = db.clone();
        std::thread::Builder::new()
            .name("raft-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let result = flush_db.flush_wal(true).map_err(io_err);
                    for cb in waiting {
                        let r = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::other(e.to_string())),
                        };
                        cb.io_completed(r);
                    }
                }
            })
            .expect("spawn WAL sync thread");
        LogStore { db, flusher: tx }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.db.get_cf(cf(&self.db, CF_RAFT), key).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io_err),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        self.db
            .put_cf(cf(&self.db, CF_RAFT), key, bytes)
            .map_err(io_err)
    }

    async fn sync_wal(&self) -> io::Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush_wal(true).map_err(io_err))
            .await
            .map_err(io_err)?
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
        let start_key = u64_key(start);
        let mut out = Vec::new();
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
            let entry: Entry = serde_json::from_slice(&v).map_err(io_err)?;
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
                let entry: Entry = serde_json::from_slice(&v).map_err(io_err)?;
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
        self.put_meta(KEY_VOTE, vote)?;
        // A vote must be durable before it is acted upon: sync now.
        self.sync_wal().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Not synced: it is an optimisation (a restarted node can apply up to it at once); the
        // next synced append makes it durable anyway.
        self.put_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(io_err)?;
            batch.put_cf(log, u64_key(entry.index()), bytes);
        }
        // Written (readable) now; durable once the flusher has synced the WAL.
        self.db.write(batch).map_err(io_err)?;
        self.flusher
            .send(callback)
            .map_err(|_| io::Error::other("WAL sync thread has stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        self.db
            .delete_range_cf(cf(&self.db, CF_LOG), u64_key(from), u64_key(u64::MAX))
            .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Record the purge point first: entries at or before it are ignored from then on.
        self.put_meta(KEY_LAST_PURGED, &log_id)?;
        self.db
            .delete_range_cf(
                cf(&self.db, CF_LOG),
                u64_key(0),
                u64_key(log_id.index() + 1),
            )
            .map_err(io_err)
    }
}
