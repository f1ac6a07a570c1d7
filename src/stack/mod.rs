//! Stacks on the server: what `shoal plan` / `shoal apply` / `shoal rollback` do with a stack's
//! canonical objects (from the compose loader, [`crate::compose`], or from a stored revision).
//!
//! - [`plan`]: compares the objects with the store, object by object and field by field, checks
//!   ownership (a stack only changes what its inventory holds, adopting what `docker stack
//!   deploy` labelled for it) and whether tasks would find nodes, and builds the one
//!   transaction that makes the change;
//! - [`apply`]: commits it (or reports the plan for a dry run), records a revision;
//! - [`diff`]: field-level differences with keyed lists.
//!
//! The HTTP routes that expose this live in [`crate::native`].

pub mod apply;
pub mod diff;
pub mod plan;
pub mod source;
mod versions;

use shoal_store::StoreError;

/// Why a plan or an apply was refused.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The stack's objects are invalid or cannot be applied as they are (nothing was written).
    #[error("{0}")]
    Invalid(String),
    /// Another owner, a concurrent change, or a stale plan token.
    #[error("{0}")]
    Conflict(String),
    /// No such stack or revision.
    #[error("{0}")]
    NotFound(String),
    /// The store refused or could not commit.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StackError {
    /// An invalid-input error naming the object.
    pub fn invalid(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Self {
        StackError::Invalid(format!("{what}: {why}"))
    }
}
