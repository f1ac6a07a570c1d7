//! The retry deduplication table: how each recently applied transaction ended, by its id, so a
//! client that retries after a lost answer gets the first answer instead of a second apply.
//!
//! Only the state machine reads and writes it, so it lives beside the published [`State`]
//! rather than in it: a published state is shared with readers, and every insert into a shared
//! persistent map copies the nodes on its path. Here the maps are normally owned once and
//! updated in place; a snapshot takes an O(1) clone and shares the nodes while it is written.
//!
//! [`State`]: crate::state::State

use imbl::{HashMap, OrdSet};
use serde::{Deserialize, Serialize};

use crate::txn::{TxnError, TxnId};

/// How a recently applied transaction ended, kept so a retried submission gets the same answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DedupRecord {
    /// Revision of the entry that carried it.
    pub revision: u64,
    /// The rejection, if it was rejected.
    pub error: Option<TxnError>,
}

/// Recently applied transactions, by id and by revision (for expiry).
#[derive(Clone, Debug, Default)]
pub struct DedupTable {
    by_id: HashMap<TxnId, DedupRecord>,
    by_revision: OrdSet<(u64, TxnId)>,
}

impl DedupTable {
    /// How a transaction applied recently ended, if it is still remembered.
    pub fn recall(&self, id: &TxnId) -> Option<&DedupRecord> {
        self.by_id.get(id)
    }

    /// Remembers how a transaction ended.
    pub fn remember(&mut self, id: TxnId, record: DedupRecord) {
        self.by_revision.insert((record.revision, id));
        self.by_id.insert(id, record);
    }

    /// Forgets transactions applied before `revision`; returns the forgotten ids.
    pub fn forget_before(&mut self, revision: u64) -> Vec<TxnId> {
        let mut gone = Vec::new();
        while let Some((rev, id)) = self.by_revision.get_min().cloned() {
            if rev >= revision {
                break;
            }
            self.by_revision.remove(&(rev, id));
            self.by_id.remove(&id);
            gone.push(id);
        }
        gone
    }

    /// Every remembered transaction.
    pub fn entries(&self) -> impl Iterator<Item = (&TxnId, &DedupRecord)> {
        self.by_id.iter()
    }

    /// How many transactions are remembered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> TxnId {
        TxnId { client: 7, seq }
    }

    #[test]
    fn forgets_by_revision_and_keeps_the_rest() {
        let mut t = DedupTable::default();
        for (seq, revision) in [(1, 10), (2, 10), (3, 11), (4, 12)] {
            t.remember(
                id(seq),
                DedupRecord {
                    revision,
                    error: None,
                },
            );
        }
        let mut gone = t.forget_before(11);
        gone.sort_by_key(|i| i.seq);
        assert_eq!(gone, vec![id(1), id(2)]);
        assert!(t.recall(&id(1)).is_none());
        assert_eq!(t.recall(&id(3)).map(|r| r.revision), Some(11));
        assert_eq!(t.len(), 2);
    }
}
