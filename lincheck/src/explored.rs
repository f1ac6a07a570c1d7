//! The search's memory of explored configurations (Lowe's cache), extended with subsumption for
//! unknown-outcome operations.
//!
//! A configuration is what decides the rest of the search: which completed operations are
//! linearized, which unknown-outcome operations were applied, and the model state. Two
//! configurations with the same completed set and state, where one has applied a subset of the
//! other's unknown operations, are not equal but are ordered: the one with fewer has every move the
//! other has (an unknown operation is never required, so having one still available never hurts).
//! Once the search has visited the stronger one, the weaker one can only fail where it would have
//! succeeded, so it is pruned. Without this, `k` unknown operations that each may or may not have
//! been applied multiply the configurations by up to `2^k` for the same observable situation.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::bitset::BitSet;

/// One visited configuration.
struct Config<S> {
    completed: BitSet,
    state: S,
    unknown: BitSet,
}

/// Visited configurations, bucketed by a hash of `(completed, state)`: the unknown set is compared
/// by inclusion, so it cannot be part of the hash.
pub(crate) struct Explored<S> {
    buckets: HashMap<u64, Vec<Config<S>>>,
}

impl<S: Clone + Eq + Hash> Explored<S> {
    pub(crate) fn new() -> Self {
        Explored {
            buckets: HashMap::new(),
        }
    }

    /// Records the configuration and returns true, or returns false when a configuration at
    /// least as strong was visited before (the same one included).
    pub(crate) fn visit(&mut self, completed: &BitSet, state: &S, unknown: &BitSet) -> bool {
        // DefaultHasher::new() has fixed keys, so runs are reproducible; the hash is only a
        // bucket index, collisions are resolved by comparing the configurations themselves.
        let mut hasher = DefaultHasher::new();
        completed.fingerprint().hash(&mut hasher);
        state.hash(&mut hasher);
        let bucket = self.buckets.entry(hasher.finish()).or_default();
        let subsumed = bucket.iter().any(|c| {
            c.completed == *completed && c.state == *state && c.unknown.is_subset(unknown)
        });
        if !subsumed {
            bucket.push(Config {
                completed: completed.clone(),
                state: state.clone(),
                unknown: unknown.clone(),
            });
        }
        !subsumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_with_more_unknown_operations_applied_is_subsumed() {
        let mut explored = Explored::new();
        let done = BitSet::new(4);
        let (none, mut one) = (BitSet::new(4), BitSet::new(4));
        one.insert(2);
        assert!(explored.visit(&done, &7u8, &none));
        assert!(!explored.visit(&done, &7u8, &none));
        assert!(!explored.visit(&done, &7u8, &one));
        // Another state, or fewer unknown operations than anything seen, is new.
        assert!(explored.visit(&done, &8u8, &one));
        assert!(explored.visit(&done, &8u8, &none));
    }
}
