//! Errors the store's API returns.

use crate::txn::TxnError;

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The transaction was judged and rejected; nothing changed.
    #[error(transparent)]
    Rejected(#[from] TxnError),
    /// No answer in time: there is no leader reachable with a quorum (the store has lost quorum
    /// or is electing a leader). The operation may or may not have been applied only if it was
    /// a membership change; transactions are deduplicated on retry.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A membership change was refused because it would leave the store without quorum.
    #[error("{0}")]
    QuorumAtRisk(String),
    /// A request was malformed or not allowed.
    #[error("{0}")]
    Invalid(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Shutdown,
    /// Local storage failed.
    #[error("storage error: {0}")]
    Storage(String),
}

impl StoreError {
    /// Whether the error is "update out of sequence" (a stale version).
    pub fn is_out_of_sequence(&self) -> bool {
        matches!(self, StoreError::Rejected(TxnError::OutOfSequence { .. }))
    }

    /// Whether the transaction lost a race with another writer: an object it read changed
    /// (out of sequence) or was deleted (not found) before it committed. A caller that built the
    /// transaction from a view retries on a fresh one, which also turns a deletion of the object
    /// it was asked about into its own "not found".
    pub fn is_stale_read(&self) -> bool {
        matches!(
            self,
            StoreError::Rejected(TxnError::OutOfSequence { .. } | TxnError::NotFound { .. })
        )
    }

    /// Whether retrying later might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
