//! The checker's entry list: every call and return of a partition in time order, threaded on
//! linked lists so that linearizing an operation and undoing it are O(1).

use crate::history::{Operation, Time};

/// One event of the entry list.
pub(crate) struct Entry {
    /// Index of the operation in the partition.
    pub(crate) op: usize,
    /// For the call of a completed operation, the node of its return entry; `None` for returns
    /// and for calls of unknown-outcome operations (which have no return).
    pub(crate) ret_node: Option<usize>,
    pub(crate) is_call: bool,
}

/// The entry list as doubly linked lists over indices, so an operation's call and return can be
/// taken out when it is linearized and put back, in O(1), when the search backtracks over it.
///
/// Entries are numbered in time order (entry `k` is node `k + 1`), so comparing node numbers
/// compares positions in time. They are threaded on two chains: the main chain holds the calls and
/// returns of completed operations, the unknown chain the calls of unknown-outcome operations.
/// Keeping the latter apart lets the search try them last (see `checker::Searcher`).
pub(crate) struct EntryList {
    entries: Vec<Entry>,
    /// The node after each node on its chain.
    pub(crate) next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    pub(crate) const MAIN: usize = 0;

    /// Builds the chains in time order. Equal times: calls before returns, so that an operation
    /// returning at `t` and one called at `t` count as concurrent (neither is known to precede
    /// the other); among equals, by operation index, only to make runs reproducible.
    pub(crate) fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
        // (time, 0 = call / 1 = return, op)
        let mut events: Vec<(Time, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, 0, i));
            if let Some(ret) = op.return_time {
                events.push((ret, 1, i));
            }
        }
        events.sort_unstable();
        let mut ret_node_of_op = vec![None; ops.len()];
        for (k, &(_, kind, op)) in events.iter().enumerate() {
            if kind == 1 {
                ret_node_of_op[op] = Some(k + 1);
            }
        }
        let entries: Vec<Entry> = events
            .iter()
            .map(|&(_, kind, op)| Entry {
                op,
                ret_node: if kind == 0 { ret_node_of_op[op] } else { None },
                is_call: kind == 0,
            })
            .collect();
        let m = entries.len();
        let mut list = EntryList {
            entries,
            next: vec![usize::MAX; m + 4],
            prev: vec![usize::MAX; m + 4],
        };
        let (mut main_last, mut unknown_last) = (Self::MAIN, list.unknown_head());
        for node in 1..=m {
            let entry = list.entry(node);
            let last = if entry.is_call && entry.ret_node.is_none() {
                &mut unknown_last
            } else {
                &mut main_last
            };
            list.next[*last] = node;
            list.prev[node] = *last;
            *last = node;
        }
        let (main_tail, unknown_tail) = (list.main_tail(), list.unknown_tail());
        list.next[main_last] = main_tail;
        list.prev[main_tail] = main_last;
        list.next[unknown_last] = unknown_tail;
        list.prev[unknown_tail] = unknown_last;
        list
    }

    pub(crate) fn main_tail(&self) -> usize {
        self.entries.len() + 1
    }

    pub(crate) fn unknown_head(&self) -> usize {
        self.entries.len() + 2
    }

    pub(crate) fn unknown_tail(&self) -> usize {
        self.entries.len() + 3
    }

    pub(crate) fn entry(&self, node: usize) -> &Entry {
        &self.entries[node - 1]
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    /// Undoes `unlink(node)`; valid only in the reverse order of the unlinks, which the search's
    /// stack discipline guarantees.
    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        self.prev[n] = node;
    }

    /// Takes a linearized operation out: its call and, if it has one, its return.
    pub(crate) fn lift(&mut self, call_node: usize) {
        self.unlink(call_node);
        if let Some(ret) = self.entry(call_node).ret_node {
            self.unlink(ret);
        }
    }

    pub(crate) fn unlift(&mut self, call_node: usize) {
        if let Some(ret) = self.entry(call_node).ret_node {
            self.relink(ret);
        }
        self.relink(call_node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain from `head` to `tail` as (op, is_call) pairs.
    fn walk(list: &EntryList, head: usize, tail: usize) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut node = list.next[head];
        while node != tail {
            out.push((list.entry(node).op, list.entry(node).is_call));
            node = list.next[node];
        }
        out
    }

    #[test]
    fn calls_sort_before_returns_at_equal_times_and_unknown_calls_go_apart() {
        let a = Operation::completed(1, "k", (), 0, (), 10);
        let b = Operation::completed(2, "k", (), 10, (), 20);
        let c = Operation::unknown(3, "k", (), 5);
        let list = EntryList::new(&[&a, &b, &c]);
        let main = walk(&list, EntryList::MAIN, list.main_tail());
        // b's call at 10 comes before a's return at 10: the two are concurrent.
        assert_eq!(main, vec![(0, true), (1, true), (0, false), (1, false)]);
        let unknown = walk(&list, list.unknown_head(), list.unknown_tail());
        assert_eq!(unknown, vec![(2, true)]);
    }

    #[test]
    fn unlift_restores_what_lift_took_out() {
        let a = Operation::completed(1, "k", (), 0, (), 10);
        let b = Operation::completed(2, "k", (), 5, (), 20);
        let mut list = EntryList::new(&[&a, &b]);
        let before = walk(&list, EntryList::MAIN, list.main_tail());
        let (call_a, call_b) = (
            list.next[EntryList::MAIN],
            list.next[list.next[EntryList::MAIN]],
        );
        list.lift(call_a);
        assert_eq!(
            walk(&list, EntryList::MAIN, list.main_tail()),
            vec![(1, true), (1, false)]
        );
        list.lift(call_b);
        assert!(walk(&list, EntryList::MAIN, list.main_tail()).is_empty());
        list.unlift(call_b);
        list.unlift(call_a);
        assert_eq!(walk(&list, EntryList::MAIN, list.main_tail()), before);
    }
}
