//! Choosing nodes: spread preferences as a tree of node heaps.
//!
//! Each spread descriptor (`node.labels.zone`, then `node.labels.rack`, ...) splits the
//! candidate nodes into branches by value (nodes without the label form their own branch).
//! A task goes to the branch with the fewest tasks of the service, recursively, and within the
//! leaf to the best node: not failing the service lately, then fewest tasks of the service,
//! then fewest tasks overall. Branches and nodes are kept in heaps, so one placement costs
//! O(depth × log(branches) + log(nodes)); a node or branch that can take no more is dropped.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// How good a node is for the next task (smaller is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeKey {
    /// The service failed here repeatedly of late.
    pub failing: bool,
    /// Tasks of the service on the node.
    pub service_tasks: u32,
    /// Tasks on the node.
    pub total: u32,
    /// Stable tie-breaker.
    pub ordinal: u32,
    /// Index of the node among the candidates.
    pub idx: usize,
}

/// Applies placements for the tree.
pub trait Placer {
    /// Places the next task on candidate `idx` if it still fits; returns the node's new key.
    fn try_place(&mut self, idx: usize) -> Option<NodeKey>;
}

enum Tree {
    Leaf(BinaryHeap<Reverse<NodeKey>>),
    Branch {
        children: Vec<Tree>,
        order: BinaryHeap<Reverse<(u64, usize)>>,
    },
}

/// The candidates of one batch, arranged by spread preferences.
pub struct SpreadTree {
    root: Tree,
}

/// A candidate with its value for each spread descriptor.
type Candidate<'a> = (NodeKey, Vec<Option<&'a str>>);

fn build(nodes: Vec<Candidate<'_>>, level: usize, depth: usize) -> (Tree, u64) {
    if level == depth {
        let count = nodes.iter().map(|(k, _)| u64::from(k.service_tasks)).sum();
        let heap = nodes.into_iter().map(|(k, _)| Reverse(k)).collect();
        return (Tree::Leaf(heap), count);
    }
    let mut groups: BTreeMap<Option<&str>, Vec<Candidate<'_>>> = BTreeMap::new();
    for n in nodes {
        groups.entry(n.1[level]).or_default().push(n);
    }
    let mut children = Vec::new();
    let mut order = BinaryHeap::new();
    let mut total = 0;
    for (_, members) in groups {
        let (child, count) = build(members, level + 1, depth);
        order.push(Reverse((count, children.len())));
        children.push(child);
        total += count;
    }
    (Tree::Branch { children, order }, total)
}

impl Tree {
    fn place(&mut self, placer: &mut dyn Placer) -> Option<usize> {
        match self {
            Tree::Leaf(heap) => {
                while let Some(Reverse(key)) = heap.pop() {
                    if let Some(next) = placer.try_place(key.idx) {
                        heap.push(Reverse(next));
                        return Some(key.idx);
                    }
                }
                None
            }
            Tree::Branch { children, order } => {
                while let Some(Reverse((count, i))) = order.pop() {
                    if let Some(idx) = children[i].place(placer) {
                        order.push(Reverse((count + 1, i)));
                        return Some(idx);
                    }
                }
                None
            }
        }
    }
}

impl SpreadTree {
    /// Arranges candidates given their keys and their value for each spread descriptor.
    pub fn new(candidates: Vec<Candidate<'_>>, depth: usize) -> Self {
        SpreadTree {
            root: build(candidates, 0, depth).0,
        }
    }

    /// Places one task; `None` when no candidate can take it.
    pub fn place(&mut self, placer: &mut dyn Placer) -> Option<usize> {
        self.root.place(placer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes with a capacity in tasks.
    struct Caps {
        cap: Vec<u32>,
        keys: Vec<NodeKey>,
    }

    impl Placer for Caps {
        fn try_place(&mut self, idx: usize) -> Option<NodeKey> {
            if self.cap[idx] == 0 {
                return None;
            }
            self.cap[idx] -= 1;
            let k = &mut self.keys[idx];
            k.service_tasks += 1;
            k.total += 1;
            Some(*k)
        }
    }

    fn key(idx: usize, existing: u32) -> NodeKey {
        NodeKey {
            failing: false,
            service_tasks: existing,
            total: existing,
            ordinal: idx as u32,
            idx,
        }
    }

    #[test]
    fn spreads_evenly_over_zones_counting_existing_tasks() {
        // Zone a: 2 nodes, zone b: 1 node with 2 tasks already, zone c: 3 nodes.
        let zones = ["a", "a", "b", "c", "c", "c"];
        let keys: Vec<NodeKey> = (0..6).map(|i| key(i, if i == 2 { 2 } else { 0 })).collect();
        let cands = keys
            .iter()
            .zip(zones)
            .map(|(k, z)| (*k, vec![Some(z)]))
            .collect();
        let mut tree = SpreadTree::new(cands, 1);
        let mut caps = Caps {
            cap: vec![100; 6],
            keys,
        };
        let mut per_zone = BTreeMap::new();
        for _ in 0..7 {
            let idx = tree.place(&mut caps).unwrap();
            *per_zone.entry(zones[idx]).or_insert(0) += 1;
        }
        // 2 existing + 7 new = 9 = 3 per zone.
        assert_eq!(per_zone["a"], 3);
        assert_eq!(per_zone["b"], 1);
        assert_eq!(per_zone["c"], 3);
    }

    #[test]
    fn spreads_over_several_levels_in_order() {
        // Two datacenters; dc1 has racks r1 (2 nodes) and r2 (1 node), dc2 has one rack r3
        // with 3 nodes and one node without a rack label.
        let labels = [
            ("dc1", Some("r1")),
            ("dc1", Some("r1")),
            ("dc1", Some("r2")),
            ("dc2", Some("r3")),
            ("dc2", Some("r3")),
            ("dc2", Some("r3")),
            ("dc2", None),
        ];
        let keys: Vec<NodeKey> = (0..labels.len()).map(|i| key(i, 0)).collect();
        let cands = keys
            .iter()
            .zip(labels)
            .map(|(k, (dc, rack))| (*k, vec![Some(dc), rack]))
            .collect();
        let mut tree = SpreadTree::new(cands, 2);
        let mut caps = Caps {
            cap: vec![100; labels.len()],
            keys,
        };
        let mut per_dc = BTreeMap::new();
        let mut per_rack = BTreeMap::new();
        for _ in 0..8 {
            let idx = tree.place(&mut caps).unwrap();
            *per_dc.entry(labels[idx].0).or_insert(0) += 1;
            *per_rack.entry(labels[idx].1).or_insert(0) += 1;
        }
        assert_eq!(per_dc["dc1"], 4);
        assert_eq!(per_dc["dc2"], 4);
        // Within each datacenter, its racks (and the unlabelled group) split evenly.
        assert_eq!(per_rack[&Some("r1")], 2);
        assert_eq!(per_rack[&Some("r2")], 2);
        assert_eq!(per_rack[&Some("r3")], 2);
        assert_eq!(per_rack[&None], 2);
    }

    #[test]
    fn full_nodes_and_branches_are_skipped() {
        let keys: Vec<NodeKey> = (0..3).map(|i| key(i, 0)).collect();
        let cands = keys
            .iter()
            .zip(["x", "y", "y"])
            .map(|(k, z)| (*k, vec![Some(z)]))
            .collect();
        let mut tree = SpreadTree::new(cands, 1);
        let mut caps = Caps {
            cap: vec![1, 2, 0],
            keys,
        };
        let placed: Vec<usize> = std::iter::from_fn(|| tree.place(&mut caps)).collect();
        assert_eq!(placed.len(), 3);
        assert_eq!(placed.iter().filter(|i| **i == 2).count(), 0);
    }
}
