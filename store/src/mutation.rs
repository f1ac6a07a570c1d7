//! Breakage on purpose, for the chaos suite to show that its oracles catch what they guard
//! against (`shoal chaos run --mutation NAME`), crashes at named points ([`failpoint`]), and
//! a shorter snapshot interval ([`snapshot_every`]). A mutation is chosen by the environment variable
//! [`ENV`] of a daemon and exists only in debug builds (the ones tests run): a release build
//! compiles every check here to `false`, so no setting can break a production daemon.
//!
//! The mutations, and where they act:
//! - `stale-reads` (the Docker API): a linearizable read is answered from the local replica
//!   without asking the leader: a deposed or lagging manager serves old state.
//! - `ack-without-commit` (the Docker API): every tenth secret update is answered 200 and never
//!   submitted: an acknowledged write that does not exist.
//! - `diverge` (this crate's state machine): secret updates keep their old labels on this
//!   member only: its replica differs from the others while its revision matches.
//! - `skip-watch-event` (the native watch API): the changes of every seventh revision are
//!   left out of the commits a watch sends (on the member that has it: the third).
//! - `extra-replica` (the replicated orchestrator): a service runs one task more than its
//!   replicas.
//! - `skip-fsync` (this crate's Raft log): appended entries and votes are acknowledged once
//!   written to the operating system, without an fsync: a power cut loses what was
//!   acknowledged.

/// The environment variable naming the daemon's mutation.
pub const ENV: &str = "SHOAL_CHAOS_MUTATION";

/// The mutations this build knows.
pub const KNOWN: [&str; 6] = [
    "stale-reads",
    "ack-without-commit",
    "diverge",
    "skip-watch-event",
    "extra-replica",
    "skip-fsync",
];

/// Whether mutation `name` is on in this process.
#[cfg(debug_assertions)]
pub fn active(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name)
}

/// Whether mutation `name` is on in this process: never, in a release build.
#[cfg(not(debug_assertions))]
pub fn active(_name: &str) -> bool {
    false
}

/// Whether this build can break itself on purpose (debug builds only).
pub const AVAILABLE: bool = cfg!(debug_assertions);

/// The environment variable naming a failpoint and when it fires: `NAME` (its first hit) or
/// `NAME:N` (its N-th hit).
pub const FAILPOINT_ENV: &str = "SHOAL_FAILPOINT";

/// The failpoints, where the process crashes when told to (`abort`, as sudden as `kill -9`):
/// - `log-before-sync`: appended entries written to RocksDB, not yet synced nor acknowledged;
/// - `log-after-sync`: synced, not yet acknowledged to openraft;
/// - `apply-before`: committed entries received by the state machine, nothing applied;
/// - `apply-after`: applied and written, the proposers not yet answered;
/// - `snapshot-build`: a snapshot file written, not yet recorded;
/// - `log-purge`: about to delete log entries a snapshot covers;
/// - `snapshot-install`: a snapshot received from the leader is in place as a file, not yet
///   recorded nor applied (on a follower that fell behind the leader's log).
pub const FAILPOINTS: [&str; 7] = [
    "log-before-sync",
    "log-after-sync",
    "apply-before",
    "apply-after",
    "snapshot-build",
    "log-purge",
    "snapshot-install",
];

/// Crashes the process at failpoint `name` when [`FAILPOINT_ENV`] says so (debug builds only).
#[cfg(debug_assertions)]
pub fn failpoint(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CHOSEN: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let chosen = CHOSEN.get_or_init(|| {
        let v = std::env::var(FAILPOINT_ENV).ok()?;
        let (point, at) = v.split_once(':').unwrap_or((v.as_str(), "1"));
        Some((point.to_string(), at.parse().unwrap_or(1)))
    });
    if let Some((point, at)) = chosen {
        if point == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 >= *at {
            eprintln!("failpoint {name}: crashing on purpose ({FAILPOINT_ENV})");
            std::process::abort();
        }
    }
}

/// Crashes the process at failpoint `name`: never, in a release build.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn failpoint(_name: &str) {}

/// The environment variable that sets how many log entries lie between two snapshots, so
/// tests reach snapshots and purges quickly (debug builds only; Raft's default otherwise).
pub const SNAPSHOT_EVERY_ENV: &str = "SHOAL_TEST_SNAPSHOT_EVERY";

/// The snapshot interval tests asked for (debug builds only).
pub fn snapshot_every() -> Option<u64> {
    if !AVAILABLE {
        return None;
    }
    std::env::var(SNAPSHOT_EVERY_ENV)
        .ok()?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}
