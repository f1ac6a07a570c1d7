//! Breakage on purpose, for the chaos suite to show that its oracles catch what they guard
//! against (`shoal chaos run --mutation NAME`). A mutation is chosen by the environment variable
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

/// The environment variable naming the daemon's mutation.
pub const ENV: &str = "SHOAL_CHAOS_MUTATION";

/// The mutations this build knows.
pub const KNOWN: [&str; 4] = [
    "stale-reads",
    "ack-without-commit",
    "diverge",
    "skip-watch-event",
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
