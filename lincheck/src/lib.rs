//! A linearizability checker for histories recorded against shoal's public API, in the manner of
//! Porcupine: concurrent clients read, write and compare-and-set keys while faults are injected,
//! every operation is recorded with its call and return time, and [`check`] decides whether some
//! sequential order of those operations, consistent with real time, explains every answer.
//!
//! ```
//! use std::time::Duration;
//! use shoal_lincheck::models::{Register, RegisterInput as In, RegisterOutput as Out};
//! use shoal_lincheck::{check, CheckResult, History, Operation};
//!
//! // Client 1 wrote "a" and was told so at t=10; client 2 then read nothing at t=20..30.
//! let history = History::from_operations([
//!     Operation::completed(1, "svc/label", In::Write("a".to_string()), 0, Out::Written, 10),
//!     Operation::completed(2, "svc/label", In::Read, 20, Out::Read(None), 30),
//! ])
//! .unwrap();
//! let result = check(&Register::new(), &history, Duration::from_secs(10));
//! assert!(matches!(result, CheckResult::Illegal { ref key, .. } if key == "svc/label"));
//!
//! // Saved and read back, it checks the same.
//! let again: History<In<String>, Out<String>> = History::from_json(&history.to_json()).unwrap();
//! assert_eq!(check(&Register::new(), &again, Duration::from_secs(10)), result);
//! ```
//!
//! # Algorithm
//!
//! Wing & Gong's search with Lowe's memoization, per partition (Horn & Kroening):
//!
//! 1. The history is split by [`Model::partition`] (by default: by key). A history is
//!    linearizable exactly when each partition is, and small partitions are exponentially cheaper.
//! 2. Each partition becomes an entry list: one call entry and one return entry per operation,
//!    sorted by time.
//! 3. A cursor walks the list. At a call entry it tries to make that operation the next one in the
//!    linearization: the model must accept the operation's output in the current state. If it
//!    does, the operation's call and return are unlinked from the list ("lifted"), pushed on a
//!    stack with the previous state, and the walk restarts at the front. If not, the cursor moves
//!    to the next entry (a later call, concurrent with the ones skipped).
//! 4. At a return entry the operation it closes has not been linearized, yet everything after
//!    this point happened after it returned: after trying the unknown-outcome operations called
//!    before this point (see below), the search backtracks, popping the last linearized
//!    operation, relinking it, and resuming with the candidate after it.
//! 5. A cache of visited configurations prunes the search: a configuration is the set of
//!    linearized operations and the model state, and reaching one already visited leads to the
//!    same future, so the second arrival is a failure.
//! 6. The partition is linearizable when every operation with a known outcome has been lifted; it
//!    is not when the search backtracks with an empty stack. The longest stack seen is rendered
//!    as the failure report ([`CheckResult::Illegal`]).
//!
//! One deadline covers the whole check; when it passes the answer is [`CheckResult::Unknown`],
//! never a pass.
//!
//! # Model contract
//!
//! A [`Model`] is a sequential specification: `init` gives the state, `step(state, input,
//! output)` the next state if `output` is a possible answer (see the trait for the full contract:
//! `step` must be pure, and states must hold everything that decides future answers, because the
//! cache compares them). Provided models: [`models::Register`] (read / write / compare-and-set)
//! and [`models::VersionedRegister`] (writes return a revision, reads return value and revision,
//! updates conditional on a revision).
//!
//! # Unknown outcomes
//!
//! A client that timed out or lost its connection does not know whether its operation happened.
//! Such an operation is recorded with no output and no return time ([`Operation::unknown`]),
//! which stands for a return at infinity, as in Jepsen and Porcupine: it may take effect at any
//! point after its call, with any output (`step` is called with `output = None`), or never. It
//! has a call entry but no return entry, so it never forces a backtrack, and the search succeeds
//! without it.
//!
//! Because such an operation stays a candidate from its call to the end of the history, a few
//! hundred of them can multiply the configurations by up to `2^k`. The search therefore tries
//! them only after the completed operations at each point, and prunes applications that another
//! configuration the search also visits subsumes (fewer unknown operations applied, same
//! completed set and state): one that changes nothing, a later twin of one with an equal input,
//! one that right after another unknown operation reaches the same state without it, and any
//! configuration whose cache entry has a subset of its unknown operations applied. None of these
//! changes a verdict; the differential test against an exhaustive search checks it.
//!
//! # Time and the equal-time convention
//!
//! Times are nanoseconds of one monotonic clock ([`Time`]). Operation `a` precedes operation `b`
//! in real time only when `a` returned strictly before `b` was called: `a.return < b.call`. An
//! operation returning at `t` and another called at the same `t` are concurrent and may be
//! linearized in either order. This is the permissive reading of a tie (the entry list puts calls
//! before returns at equal times): with a clock of finite resolution, equal timestamps do not show
//! which event came first, and a checker must not report a violation that rests on a tie. Client
//! ids do not order anything (as in Porcupine); a client's own operations are ordered by their
//! times like anyone else's, so a recorder must take the call time after the previous return.
//!
//! # Saving histories
//!
//! [`History::to_json`] and [`History::from_json`] write and read a history, so a failing history
//! from a chaos run can be kept and checked again offline. Each operation is `{client_id, key,
//! input, call, output, return}`, Porcupine's fields plus the key, with `null` output and return
//! for an unknown outcome (Porcupine itself wants a return time; use the largest `int64`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bitset;
pub mod checker;
mod entries;
mod explored;
pub mod history;
pub mod model;
pub mod models;
mod render;

pub use checker::{check, CheckResult};
pub use history::{History, HistoryError, Operation, Time};
pub use model::Model;
