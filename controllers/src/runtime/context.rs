//! What a reconcile gets: a cache snapshot and a writer fenced to the leader's term.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shoal_store::{Committed, Store, StoreError, Txn, TxnError};

use super::cache::Cache;

/// Submits transactions for one controller while this member leads in `term`.
#[derive(Clone)]
pub struct Writer {
    store: Store,
    term: u64,
}

impl Writer {
    /// A writer fenced to `term`.
    pub fn new(store: Store, term: u64) -> Self {
        Writer { store, term }
    }

    /// The leader term every write is fenced to.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The store (for reads and membership changes; writes go through [`Writer::submit`]).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Commits `txn`, fenced: if this member lost the leadership of `term` before the entry was
    /// appended, the store rejects it instead of letting a deposed leader write.
    pub async fn submit(&self, txn: Txn) -> Result<Committed, StoreError> {
        self.store.submit(txn.fenced(self.term)).await
    }
}

/// The context of one reconcile.
pub struct Ctx {
    cache: Cache,
    writer: Writer,
    /// Highest revision written, or seen in a rejection, during this reconcile (read-your-writes).
    seen: Arc<AtomicU64>,
}

impl Ctx {
    /// A context over a cache snapshot.
    pub fn new(cache: Cache, writer: Writer) -> Self {
        Ctx {
            cache,
            writer,
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The cache snapshot the reconcile works on (at least as new as the change that queued it
    /// and as the controller's own last write to this key).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The writer (fenced to the leader term).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Commits a transaction fenced to the leader term. The revision it commits at (or, for
    /// "update out of sequence", the revision the conflicting object is at) gates the next
    /// reconcile of this key until the cache has caught up with it.
    pub async fn submit(&self, txn: Txn) -> Result<Committed, StoreError> {
        let result = self.writer.submit(txn).await;
        match &result {
            Ok(c) => self.note(c.revision),
            Err(StoreError::Rejected(TxnError::OutOfSequence { actual, .. })) => self.note(*actual),
            Err(_) => {}
        }
        result
    }

    fn note(&self, revision: u64) {
        self.seen.fetch_max(revision, Ordering::AcqRel);
    }

    /// Highest revision this reconcile wrote or learned of (0: none).
    pub fn seen_revision(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }
}
