//! The RocksDB instance a manager keeps everything in, one column family per purpose. One
//! database means one write-ahead log: syncing it after a log append also makes every earlier
//! state-machine write durable.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

/// Raft log entries by big-endian index.
pub const CF_LOG: &str = "log";
/// Raft metadata: vote and last purged log id.
pub const CF_RAFT: &str = "raft";
/// Objects by kind tag + id: only in data directories of earlier versions, which are
/// converted to a snapshot when opened (`legacy`).
pub const CF_OBJECTS: &str = "objects";
/// State-machine metadata: applied log id, membership, history floor.
pub const CF_SM: &str = "sm";
/// Watch history: commits by big-endian revision.
pub const CF_HISTORY: &str = "history";
/// Recently applied transaction ids (retry deduplication) by client + seq: only in data
/// directories of earlier versions, like [`CF_OBJECTS`].
pub const CF_DEDUP: &str = "dedup";
/// Large objects that history rows name and an update or delete replaced ([`super::history`]).
pub const CF_HISTORY_OBJECTS: &str = "history_objects";

/// Every column family.
pub const ALL: [&str; 7] = [
    CF_LOG,
    CF_RAFT,
    CF_OBJECTS,
    CF_SM,
    CF_HISTORY,
    CF_DEDUP,
    CF_HISTORY_OBJECTS,
];

/// Opens (creating if needed) the manager's database.
pub fn open(path: &Path) -> Result<Arc<Db>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Every write shoal acknowledges was synced, so only a WAL's unsynced tail may be torn by a
    // crash; damage anywhere else (a bit flipped on disk, synced data lost) must stop the open,
    // not be replayed up to and silently cut there (RocksDB's default, point-in-time recovery,
    // which would make this member forget entries it acknowledged to the leader: a hole Raft
    // cannot see). (WAL recycling, which was set here once, is turned off by RocksDB itself
    // under every recovery mode but the one that skips corrupt records.)
    opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    opts.set_max_background_jobs(2);
    // A WAL file is deleted only once every column family with data in it has flushed; the
    // small ones (Raft metadata, state-machine metadata) flush rarely and kept every WAL of a
    // burst alive (400 MB of WAL after 100 MB of configs). Past 64 MiB of WAL the column
    // families holding the oldest one are flushed.
    opts.set_max_total_wal_size(64 << 20);
    // The log append and the state machine's history write share one write group; pipelined
    // writes let one group's WAL write overlap the previous one's memtable inserts.
    opts.set_enable_pipelined_write(true);
    // Write table files back to disk as they are built (1 MiB at a time) rather than in one
    // sync at the end of a flush: a 64 MiB burst of writeback would sit in front of the
    // Raft log's next fsync.
    opts.set_bytes_per_sync(1 << 20);
    // RocksDB's own info LOG lives beside the data. When the disk fills up, its first failed
    // line leaves the LOG's writer in an error state, and the next line (the report of the
    // failed write itself) aborts the process in RocksDB's assertion (Debian's build keeps
    // assertions): a full disk would crash the manager. Only fatal lines are written; shoal
    // logs what matters itself.
    opts.set_log_level(rocksdb::LogLevel::Fatal);
    opts.set_keep_log_file_num(2);
    // Flushes and compactions run at a lower CPU and IO priority: on a small machine a large
    // flush (a snapshot just installed) must not take the cores from the threads that answer
    // heartbeats.
    let mut env = rocksdb::Env::new()?;
    env.lower_thread_pool_cpu_priority();
    env.lower_high_priority_thread_pool_cpu_priority();
    env.lower_thread_pool_io_priority();
    env.lower_high_priority_thread_pool_io_priority();
    opts.set_env(&env);
    let cfs = ALL
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options()))
        .collect::<Vec<_>>();
    Ok(Arc::new(Db {
        db: DB::open_cf_descriptors(&opts, path, cfs)?,
        failed: std::sync::OnceLock::new(),
    }))
}

/// The manager's database, which stops writing after its first failed write.
///
/// A write that fails (the disk is full, an IO error) leaves RocksDB's WAL writer in an error
/// state, and a WAL sync after that aborts the process in RocksDB's own assertion (Debian's
/// build keeps assertions). So the first failure is kept here and every later write or sync
/// answers it without touching RocksDB: the store fails its writes cleanly, openraft stops
/// this member, and the node runtime opens the store again once there is room
/// (`shoal::node::store_watch`). Reads go straight to RocksDB through `Deref`.
pub struct Db {
    db: DB,
    failed: std::sync::OnceLock<String>,
}

impl std::ops::Deref for Db {
    type Target = DB;
    fn deref(&self) -> &DB {
        &self.db
    }
}

impl Db {
    fn refused(&self) -> Option<std::io::Error> {
        self.failed.get().map(|first| {
            std::io::Error::other(format!(
                "the database took no more writes after one failed: {first}"
            ))
        })
    }

    fn record<T>(&self, r: Result<T, rocksdb::Error>) -> std::io::Result<T> {
        r.map_err(|e| {
            let _ = self.failed.set(e.to_string());
            std::io::Error::other(e.to_string())
        })
    }

    /// Writes `batch` (not synced), unless an earlier write failed.
    pub fn write(&self, batch: rocksdb::WriteBatch) -> std::io::Result<()> {
        if let Some(e) = self.refused() {
            return Err(e);
        }
        self.record(self.db.write(batch))
    }

    /// Writes out (and with `sync`, syncs) the WAL, unless an earlier write failed.
    pub fn flush_wal(&self, sync: bool) -> std::io::Result<()> {
        if let Some(e) = self.refused() {
            return Err(e);
        }
        self.record(self.db.flush_wal(sync))
    }

    /// The first write that failed, if one did.
    pub fn write_failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }
}

/// Per column family options.
fn cf_options() -> Options {
    let mut opts = Options::default();
    // Room for bursts (a run of large objects, a snapshot installed): writes stall when every
    // memtable is full and waiting for its flush, and the writers are the Raft log append and
    // the apply, on the async runtime. Four 64 MiB memtables absorb a burst of ~200 MiB while
    // the flushes catch up.
    opts.set_max_write_buffer_number(4);
    opts
}

/// The handle of a column family that `open` created.
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created by db::open"))
}

/// Big-endian u64 key, so iteration order is numeric order.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Inverse of [`u64_key`].
pub fn key_u64(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[..8]);
    u64::from_be_bytes(b)
}

/// Maps any displayable error into an `io::Error` (the error type openraft's storage traits use).
pub fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// How many values in the stopped member's database under `data_dir` open with `key`, and how
/// many values are sealed at all: what a data key rotation is checked by (afterwards the old
/// key must open none). Opens the database read-only; the member must not be running.
pub fn values_opened_by(
    data_dir: &Path,
    key: &super::seal::DataKey,
) -> std::io::Result<(u64, u64)> {
    let db = DB::open_cf_for_read_only(&Options::default(), data_dir.join("db"), ALL, false)
        .map_err(io_err)?;
    let sealer = super::seal::Sealer::new(key);
    let (mut opened, mut sealed) = (0, 0);
    for name in ALL {
        for item in db.iterator_cf(cf(&db, name), rocksdb::IteratorMode::Start) {
            let (_, v) = item.map_err(io_err)?;
            if v.first() == Some(&super::seal::SEALED_V1) {
                sealed += 1;
                if sealer.open(&v).is_ok() {
                    opened += 1;
                }
            }
        }
    }
    Ok((opened, sealed))
}
