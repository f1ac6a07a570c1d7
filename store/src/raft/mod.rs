//! openraft on RocksDB: type configuration, log storage, state machine, snapshots, network.

pub mod db;
pub mod history;
mod legacy;
pub mod log_store;
pub mod network;
pub mod seal;
pub mod snapshot;
pub mod state_machine;
pub mod types;

/// Entries larger than this (roughly) are encoded, sealed and written off the async workers;
/// below it, `block_in_place`'s hand-over costs more than the work (a fifth of a single
/// client's write rate when every append and apply paid it).
pub(crate) const OFF_RUNTIME_BYTES: usize = 256 << 10;

/// A rough encoded size of `entries` (see [`types::entry_approx_len`]).
pub(crate) fn entries_approx_len<'a>(entries: impl IntoIterator<Item = &'a types::Entry>) -> usize {
    entries.into_iter().map(types::entry_approx_len).sum()
}

/// Whether `entries` are large enough (roughly) to be encoded, sealed and written off the async
/// workers.
pub(crate) fn entries_are_large<'a>(entries: impl IntoIterator<Item = &'a types::Entry>) -> bool {
    entries_approx_len(entries) > OFF_RUNTIME_BYTES
}

/// Runs `f`, which may hold the CPU for a while (encoding and sealing large objects) or wait
/// on the disk (a RocksDB write behind a WAL sync or a stall), when `large`, without holding up
/// the other tasks of the async worker it runs on: with tokio's `block_in_place` the worker
/// hands them to another thread first. Raft's heartbeats and votes are such tasks; on a
/// two-core machine a few hundred milliseconds of encoding on both workers cost a leader its
/// lease. Inline when small, or on a current-thread runtime, which has no other worker to hand
/// them to.
pub(crate) fn off_runtime_if<R>(large: bool, f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if large && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
