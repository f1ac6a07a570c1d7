//! A register whose every change carries a revision, like an object in shoal's store: each write
//! is committed at a store revision (a Raft log index), a read returns the value together with the
//! revision of its last change, and an update may be conditional on the revision the client read
//! (shoal's "update out of sequence" check).
//!
//! Revisions of one key strictly increase but are not consecutive (other keys' changes take the
//! indices in between), so a successful write may return any revision above the current one. A
//! read that returns an older revision than an acknowledged write, two writes that return the same
//! revision, or a read of a revision no write could have produced are all illegal.
//!
//! An unknown-outcome write leaves the revision unknown (only a lower bound), and an unknown
//! conditional update in such a state may have succeeded or not, so the model's state is the set
//! of states the key could be in (the classic power-set construction) rather than one state.
//! Answers narrow the set; a set that becomes empty is a violation.
//!
//! One deliberate over-approximation: a `Conflict` answer in a state whose revision is only
//! bounded does not record "the revision was not `expected`". The model may therefore accept a
//! few histories that are wrong only through that fact; it never rejects a correct one.

use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::model::Model;

/// What a client asks a versioned register.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionedInput<V> {
    /// Read the value and the revision of its last change.
    Read,
    /// Write unconditionally.
    Write(V),
    /// Write if the key's revision is still `expected` (`0`: the key was never written).
    Update {
        /// The value to write.
        value: V,
        /// The revision the client read.
        expected: u64,
    },
}

/// What a versioned register answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionedOutput<V> {
    /// The current value (`None`: never written, revision `0`) and the revision of its last change.
    Read {
        /// The value.
        value: Option<V>,
        /// The revision of the change that wrote it.
        revision: u64,
    },
    /// The write or update was committed at `revision`.
    Written {
        /// The revision it was committed at.
        revision: u64,
    },
    /// The update found another revision than `expected` and changed nothing.
    Conflict,
}

/// What is known about a key's current revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Revision {
    /// Exactly this revision (acknowledged by a write or seen by a read).
    Exact(u64),
    /// Some revision strictly above this one: the last change was an unacknowledged write.
    After(u64),
}

impl Revision {
    /// Whether the current revision may be `r`.
    fn could_be(self, r: u64) -> bool {
        match self {
            Revision::Exact(c) => c == r,
            Revision::After(floor) => r > floor,
        }
    }

    /// Whether the current revision may be something other than `r`.
    fn could_differ_from(self, r: u64) -> bool {
        match self {
            Revision::Exact(c) => c != r,
            Revision::After(_) => true,
        }
    }

    /// Whether a new change may be committed at `r`, i.e. the current revision may be below it.
    fn could_precede(self, r: u64) -> bool {
        match self {
            Revision::Exact(c) => c < r,
            // The current revision is at least floor + 1, so r must be at least floor + 2.
            Revision::After(floor) => floor.checked_add(1).is_some_and(|least| least < r),
        }
    }

    /// What is known about the revision of a change made on top of this one without learning it.
    fn unacknowledged_successor(self) -> Revision {
        match self {
            Revision::Exact(c) => Revision::After(c),
            Revision::After(floor) => Revision::After(floor.saturating_add(1)),
        }
    }
}

/// One state the key may be in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Candidate<V> {
    /// The value (`None`: never written).
    pub value: Option<V>,
    /// What is known about its revision.
    pub revision: Revision,
}

/// The set of states the key may be in: sorted and without duplicates, so that equal sets are
/// equal values for the checker's cache, and never empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionedState<V> {
    candidates: Vec<Candidate<V>>,
}

impl<V: Ord> VersionedState<V> {
    /// `None` when no candidate is left: the answer was impossible.
    fn from_candidates(mut candidates: Vec<Candidate<V>>) -> Option<Self> {
        candidates.sort_unstable();
        candidates.dedup();
        (!candidates.is_empty()).then_some(VersionedState { candidates })
    }

    /// The states the key may be in.
    pub fn candidates(&self) -> &[Candidate<V>] {
        &self.candidates
    }
}

/// The versioned register model.
#[derive(Clone, Copy, Debug, Default)]
pub struct VersionedRegister<V>(PhantomData<fn() -> V>);

impl<V> VersionedRegister<V> {
    /// A versioned register model for values of type `V`.
    pub fn new() -> Self {
        VersionedRegister(PhantomData)
    }
}

impl<V: Clone + Ord + Hash + Debug> Model for VersionedRegister<V> {
    type State = VersionedState<V>;
    type Input = VersionedInput<V>;
    type Output = VersionedOutput<V>;

    fn init(&self) -> VersionedState<V> {
        VersionedState {
            candidates: vec![Candidate {
                value: None,
                revision: Revision::Exact(0),
            }],
        }
    }

    fn step(
        &self,
        state: &VersionedState<V>,
        input: &VersionedInput<V>,
        output: Option<&VersionedOutput<V>>,
    ) -> Option<VersionedState<V>> {
        use VersionedInput as I;
        use VersionedOutput as O;
        let all = state.candidates.iter();
        let written = |value: &V, revision: u64| {
            VersionedState::from_candidates(vec![Candidate {
                value: Some(value.clone()),
                revision: Revision::Exact(revision),
            }])
        };
        match (input, output) {
            (I::Read, None) => Some(state.clone()),
            (I::Read, Some(O::Read { value, revision })) => {
                let possible = all
                    .filter(|c| &c.value == value && c.revision.could_be(*revision))
                    .map(|_| Candidate {
                        value: value.clone(),
                        revision: Revision::Exact(*revision),
                    })
                    .collect();
                VersionedState::from_candidates(possible)
            }
            (I::Write(v), Some(O::Written { revision })) => {
                let mut possible = all;
                if possible.any(|c| c.revision.could_precede(*revision)) {
                    written(v, *revision)
                } else {
                    None
                }
            }
            (I::Write(v), None) => VersionedState::from_candidates(
                all.map(|c| Candidate {
                    value: Some(v.clone()),
                    revision: c.revision.unacknowledged_successor(),
                })
                .collect(),
            ),
            (I::Update { value, expected }, Some(O::Written { revision })) => {
                let mut possible = all;
                if *revision > *expected && possible.any(|c| c.revision.could_be(*expected)) {
                    written(value, *revision)
                } else {
                    None
                }
            }
            (I::Update { expected, .. }, Some(O::Conflict)) => VersionedState::from_candidates(
                all.filter(|c| c.revision.could_differ_from(*expected))
                    .cloned()
                    .collect(),
            ),
            (I::Update { value, expected }, None) => {
                // If it took effect here it either matched (and wrote at some revision above
                // `expected`) or conflicted (and changed nothing); keep every way that can be.
                let mut possible = Vec::new();
                for c in all {
                    if c.revision.could_be(*expected) {
                        possible.push(Candidate {
                            value: Some(value.clone()),
                            revision: Revision::After(*expected),
                        });
                    }
                    if c.revision.could_differ_from(*expected) {
                        possible.push(c.clone());
                    }
                }
                VersionedState::from_candidates(possible)
            }
            // Answers of the wrong kind: a read answered "written", a plain write "conflict", ...
            (I::Read, Some(_))
            | (I::Write(_), Some(_))
            | (I::Update { .. }, Some(O::Read { .. })) => None,
        }
    }

    fn describe_operation(
        &self,
        input: &VersionedInput<V>,
        output: Option<&VersionedOutput<V>>,
    ) -> String {
        let call = match input {
            VersionedInput::Read => "read".to_string(),
            VersionedInput::Write(v) => format!("write({v:?})"),
            VersionedInput::Update { value, expected } => {
                format!("update({value:?} if revision {expected})")
            }
        };
        let answer = match output {
            None => "? (outcome unknown)".to_string(),
            Some(VersionedOutput::Read { value, revision }) => format!("{value:?}@{revision}"),
            Some(VersionedOutput::Written { revision }) => format!("ok@{revision}"),
            Some(VersionedOutput::Conflict) => "conflict".to_string(),
        };
        format!("{call} -> {answer}")
    }

    fn describe_state(&self, state: &VersionedState<V>) -> String {
        let one = |c: &Candidate<V>| match c.revision {
            Revision::Exact(r) => format!("{:?}@{r}", c.value),
            Revision::After(floor) => format!("{:?}@>{floor}", c.value),
        };
        let all: Vec<String> = state.candidates.iter().map(one).collect();
        all.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type M = VersionedRegister<u8>;

    fn at(value: Option<u8>, revision: Revision) -> VersionedState<u8> {
        VersionedState::from_candidates(vec![Candidate { value, revision }]).unwrap()
    }

    #[test]
    fn a_write_must_move_the_revision_forward() {
        let m = M::new();
        let s = at(Some(1), Revision::Exact(5));
        let w = VersionedInput::Write(2);
        assert!(m
            .step(&s, &w, Some(&VersionedOutput::Written { revision: 6 }))
            .is_some());
        assert!(m
            .step(&s, &w, Some(&VersionedOutput::Written { revision: 5 }))
            .is_none());
        // After an unacknowledged write on top of 5 (at 6 or later), the next one is 7 or later.
        let s = at(Some(1), Revision::After(5));
        assert!(m
            .step(&s, &w, Some(&VersionedOutput::Written { revision: 6 }))
            .is_none());
        assert!(m
            .step(&s, &w, Some(&VersionedOutput::Written { revision: 7 }))
            .is_some());
    }

    #[test]
    fn a_read_pins_an_unknown_revision() {
        let m = M::new();
        let s = at(Some(1), Revision::After(5));
        let read = |revision| VersionedOutput::Read {
            value: Some(1),
            revision,
        };
        assert_eq!(
            m.step(&s, &VersionedInput::Read, Some(&read(9))),
            Some(at(Some(1), Revision::Exact(9)))
        );
        assert_eq!(m.step(&s, &VersionedInput::Read, Some(&read(5))), None);
    }

    #[test]
    fn an_unknown_update_on_an_unknown_revision_forks_the_state() {
        let m = M::new();
        let s = at(Some(1), Revision::After(5));
        let update = VersionedInput::Update {
            value: 2,
            expected: 8,
        };
        let forked = m.step(&s, &update, None).unwrap();
        assert_eq!(forked.candidates().len(), 2);
        // A later read decides which branch happened.
        let saw_new = VersionedOutput::Read {
            value: Some(2),
            revision: 9,
        };
        assert!(m
            .step(&forked, &VersionedInput::Read, Some(&saw_new))
            .is_some());
        let saw_too_old = VersionedOutput::Read {
            value: Some(2),
            revision: 8,
        };
        assert!(m
            .step(&forked, &VersionedInput::Read, Some(&saw_too_old))
            .is_none());
    }

    #[test]
    fn a_conditional_update_is_decided_by_the_revision() {
        let m = M::new();
        let s = at(Some(1), Revision::Exact(5));
        let update = |expected| VersionedInput::Update { value: 2, expected };
        let ok = VersionedOutput::Written { revision: 7 };
        assert!(m.step(&s, &update(5), Some(&ok)).is_some());
        assert!(m.step(&s, &update(4), Some(&ok)).is_none());
        assert!(m
            .step(&s, &update(4), Some(&VersionedOutput::Conflict))
            .is_some());
        assert!(m
            .step(&s, &update(5), Some(&VersionedOutput::Conflict))
            .is_none());
    }
}
