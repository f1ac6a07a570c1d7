//! A fixed-size set of operation indices, the "which operations are linearized" part of the
//! checker's cache key: 64 operations per word, plus a running fingerprint so that the cache does
//! not rehash the whole set (over a kilobyte for 10,000 operations) at every step of the search.

/// A set of indices below a capacity fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BitSet {
    words: Box<[u64]>,
    /// XOR of `mix(i)` over the members (Zobrist hashing): updated in O(1) by insert and remove,
    /// equal for equal sets, and well spread, so it can stand for the set in a hash.
    fingerprint: u64,
}

/// A bijective scrambling of an index (SplitMix64's finalizer), so that fingerprints of sets
/// differing in a few members differ in many bits.
fn mix(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl BitSet {
    /// An empty set able to hold `0..len`.
    pub(crate) fn new(len: usize) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
            fingerprint: 0,
        }
    }

    pub(crate) fn insert(&mut self, i: usize) {
        let (word, bit) = (i / 64, 1 << (i % 64));
        if self.words[word] & bit == 0 {
            self.words[word] |= bit;
            self.fingerprint ^= mix(i);
        }
    }

    pub(crate) fn remove(&mut self, i: usize) {
        let (word, bit) = (i / 64, 1 << (i % 64));
        if self.words[word] & bit != 0 {
            self.words[word] &= !bit;
            self.fingerprint ^= mix(i);
        }
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether every member of `self` is in `other` (both of the same capacity).
    pub(crate) fn is_subset(&self, other: &BitSet) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .all(|(a, b)| a & !b == 0)
    }

    /// A hash of the members, kept up to date by insert and remove.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::BitSet;

    #[test]
    fn insert_and_remove_change_equality_and_fingerprint() {
        let mut a = BitSet::new(130);
        let b = BitSet::new(130);
        a.insert(129);
        assert!(a.contains(129) && !a.contains(128));
        assert_ne!(a, b);
        assert_ne!(a.fingerprint(), b.fingerprint());
        a.insert(0);
        a.insert(0);
        a.remove(129);
        a.remove(0);
        a.remove(0);
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn subsets() {
        let (mut small, mut big) = (BitSet::new(100), BitSet::new(100));
        assert!(small.is_subset(&big));
        small.insert(70);
        assert!(!small.is_subset(&big));
        big.insert(70);
        big.insert(3);
        assert!(small.is_subset(&big));
        assert!(!big.is_subset(&small));
    }
}
