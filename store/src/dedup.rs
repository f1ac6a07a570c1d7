//! The retry deduplication table: how each recently applied transaction ended, by its id, so a
//! client that retries after a lost answer gets the first answer instead of a second apply.
//!
//! Only the state machine reads and writes it, so it lives beside the published [`State`]
//! rather than in it: a published state is shared with readers, and every insert into a shared
//! persistent map copies the nodes on its path. Here it is a plain hash map (one lookup and one
//! insert per applied transaction, hundreds of thousands of entries on a busy store) plus the
//! ids in revision order for expiry; a snapshot builder takes a copy, once per snapshot.
//!
//! [`State`]: crate::state::State

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

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

/// Hashes a [`TxnId`]: its client half is random already, so mixing in the sequence number is
/// enough (the ids come from managers, not from users: no flooding to defend against).
#[derive(Default)]
struct TxnIdHasher(u64);

impl Hasher for TxnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Recently applied transactions, by id and in the order they were applied (for expiry).
#[derive(Clone, Debug, Default)]
pub struct DedupTable {
    by_id: HashMap<TxnId, DedupRecord, BuildHasherDefault<TxnIdHasher>>,
    /// Ids by revision, oldest first (applies come in revision order).
    by_revision: VecDeque<(u64, TxnId)>,
}

impl DedupTable {
    /// A table holding `records`, in any order (loading from disk or a snapshot).
    pub fn from_records(records: impl IntoIterator<Item = (TxnId, DedupRecord)>) -> Self {
        let mut table = DedupTable::default();
        let mut order = Vec::new();
        for (id, record) in records {
            order.push((record.revision, id));
            table.by_id.insert(id, record);
        }
        order.sort_unstable();
        table.by_revision = order.into();
        table
    }

    /// How a transaction applied recently ended, if it is still remembered.
    pub fn recall(&self, id: &TxnId) -> Option<&DedupRecord> {
        self.by_id.get(id)
    }

    /// Remembers how a transaction ended.
    pub fn remember(&mut self, id: TxnId, record: DedupRecord) {
        let revision = record.revision;
        if self.by_id.insert(id, record).is_none() {
            // Loading from disk or a snapshot comes in any order; applies in revision order.
            match self.by_revision.back() {
                Some((last, _)) if *last > revision => {
                    let at = self.by_revision.partition_point(|(r, _)| *r <= revision);
                    self.by_revision.insert(at, (revision, id));
                }
                _ => self.by_revision.push_back((revision, id)),
            }
        }
    }

    /// Forgets transactions applied before `revision`; returns the forgotten ids.
    pub fn forget_before(&mut self, revision: u64) -> Vec<TxnId> {
        let mut gone = Vec::new();
        while let Some((rev, id)) = self.by_revision.front().copied() {
            if rev >= revision {
                break;
            }
            self.by_revision.pop_front();
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
    fn records_loaded_out_of_order_expire_in_revision_order() {
        let records = [(3, 12), (1, 10), (4, 13), (2, 11)].map(|(seq, revision)| {
            (
                id(seq),
                DedupRecord {
                    revision,
                    error: None,
                },
            )
        });
        let mut t = DedupTable::from_records(records);
        t.remember(
            id(5),
            DedupRecord {
                revision: 14,
                error: None,
            },
        );
        assert_eq!(t.forget_before(12), vec![id(1), id(2)]);
        assert_eq!(t.forget_before(14), vec![id(3), id(4)]);
        assert_eq!(t.len(), 1);
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
