//! A fixed-size set of operation indices, the "which operations are linearized" half of the
//! checker's cache key. Its own type (rather than `Vec<bool>`) so the key is 64 operations per word.

/// A set of indices below a capacity fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BitSet {
    words: Box<[u64]>,
}

impl BitSet {
    /// An empty set able to hold `0..len`.
    pub(crate) fn new(len: usize) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
        }
    }

    pub(crate) fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    pub(crate) fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::BitSet;

    #[test]
    fn insert_and_remove_change_equality() {
        let mut a = BitSet::new(130);
        let b = BitSet::new(130);
        a.insert(129);
        assert_ne!(a, b);
        a.insert(0);
        a.remove(129);
        a.remove(0);
        assert_eq!(a, b);
    }
}
