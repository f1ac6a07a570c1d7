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
pub fn open(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Reuse WAL files instead of creating new ones: saves a metadata sync per fsync.
    opts.set_recycle_log_file_num(4);
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
    Ok(Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?))
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
