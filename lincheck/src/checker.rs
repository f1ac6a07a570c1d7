//! The search: Wing & Gong's backtracking over a call/return entry list, with Lowe's cache of
//! visited `(linearized set, state)` pairs, run once per partition (Horn & Kroening's
//! P-compositionality). See the crate documentation for the rules it implements.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::bitset::BitSet;
use crate::history::{History, Operation, Time};
use crate::model::Model;
use crate::render;

/// The verdict on a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every partition has a linearization.
    Ok,
    /// Some partition has none. Only the first such partition (in key order) is reported: one
    /// counterexample is what a failing chaos run needs, and the search stops there.
    Illegal {
        /// The partition (by default: the key) with no linearization.
        key: String,
        /// Indices into [`History::operations`] of the longest linearizable prefix the search
        /// found in that partition, in linearization order.
        prefix: Vec<usize>,
        /// That prefix rendered as text with the model state after each operation, followed by
        /// the operations none of which could come next. Meant for a human reading a test log.
        report: String,
    },
    /// The deadline passed before every partition was decided and none was found illegal. Never
    /// read this as a pass: the history may or may not be linearizable.
    Unknown {
        /// The partition being searched when the deadline passed; later ones were not searched.
        key: String,
    },
}

impl CheckResult {
    /// True only for [`CheckResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// Partitions are searched one after another in key order, all under one deadline `timeout` from
/// now; when it passes the result is [`CheckResult::Unknown`], never `Ok`. Pass `Duration::MAX`
/// for no deadline.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    timeout: Duration,
) -> CheckResult {
    let deadline = Instant::now().checked_add(timeout);
    let mut partitions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.operations().iter().enumerate() {
        partitions.entry(model.partition(op)).or_default().push(i);
    }
    for (key, indices) in partitions {
        let ops: Vec<&Operation<M::Input, M::Output>> =
            indices.iter().map(|&i| &history.operations()[i]).collect();
        match search(model, &ops, deadline) {
            Search::Linearizable => {}
            Search::TimedOut => return CheckResult::Unknown { key },
            Search::Illegal { longest } => {
                let report = render::failure(model, &key, &ops, &longest);
                let prefix = longest.iter().map(|&local| indices[local]).collect();
                return CheckResult::Illegal {
                    key,
                    prefix,
                    report,
                };
            }
        }
    }
    CheckResult::Ok
}

/// The outcome of searching one partition.
enum Search {
    Linearizable,
    /// `longest`: the longest partial linearization seen, as indices into the partition's ops.
    Illegal {
        longest: Vec<usize>,
    },
    TimedOut,
}

/// How many search steps run between two looks at the clock: reading it every step would cost
/// more than the step itself, and a few thousand steps take well under a millisecond.
const DEADLINE_EVERY: u64 = 1024;

/// One event of the entry list.
struct Entry {
    /// Index of the operation in the partition.
    op: usize,
    /// For a call entry, the node of its return entry (`None`: outcome unknown, no return).
    /// `None` as well for return entries, told apart by `is_call`.
    ret_node: Option<usize>,
    is_call: bool,
}

/// The entry list as a doubly linked list over indices, so an operation's call and return can be
/// taken out when it is linearized and put back, in O(1), when the search backtracks over it.
/// Node 0 is the head sentinel and node `len + 1` the tail sentinel; entry `k` is node `k + 1`.
struct EntryList {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    const HEAD: usize = 0;

    /// Builds the list in time order. Equal times: calls before returns, so that an operation
    /// returning at `t` and one called at `t` count as concurrent (neither is known to precede
    /// the other); among equals, by operation index, only to make runs reproducible.
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
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
        let entries = events
            .iter()
            .map(|&(_, kind, op)| Entry {
                op,
                ret_node: if kind == 0 { ret_node_of_op[op] } else { None },
                is_call: kind == 0,
            })
            .collect::<Vec<_>>();
        let nodes = entries.len() + 2;
        EntryList {
            entries,
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
        }
    }

    fn tail(&self) -> usize {
        self.entries.len() + 1
    }

    fn entry(&self, node: usize) -> &Entry {
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
    fn lift(&mut self, call_node: usize) {
        self.unlink(call_node);
        if let Some(ret) = self.entry(call_node).ret_node {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, call_node: usize) {
        if let Some(ret) = self.entry(call_node).ret_node {
            self.relink(ret);
        }
        self.relink(call_node);
    }
}

/// Searches one partition for a linearization.
///
/// The cursor walks the entry list from the front. At a call it tries to linearize that operation
/// next (the model accepts its output in the current state, and the resulting `(linearized set,
/// state)` was not explored before); on success the operation is lifted out and the walk restarts
/// from the front, otherwise the cursor moves on to later calls, which are all concurrent with
/// everything before them. At a return the operation it closes is not linearized yet, so nothing
/// at or after this point may be either: backtrack by putting the last linearized operation back
/// and trying the calls after it. The partition is linearizable once every operation with a known
/// outcome is linearized; operations with unknown outcomes left over simply never took effect.
fn search<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    deadline: Option<Instant>,
) -> Search {
    let mut list = EntryList::new(ops);
    let mut pending_completed = ops.iter().filter(|op| !op.is_unknown()).count();
    let mut linearized = BitSet::new(ops.len());
    let mut state = model.init();
    let mut seen: HashSet<(BitSet, M::State)> = HashSet::new();
    // (call node, state before that operation), one per linearized operation.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut cursor = list.next[EntryList::HEAD];
    let mut steps: u64 = 0;

    while pending_completed > 0 {
        if steps % DEADLINE_EVERY == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            return Search::TimedOut;
        }
        steps += 1;

        // The tail cannot be reached while a completed operation is pending: its return entry is
        // still in the list and stops the cursor first. Treated like a return all the same.
        let at_call = cursor != list.tail() && list.entry(cursor).is_call;
        if at_call {
            let op_index = list.entry(cursor).op;
            let op = ops[op_index];
            if let Some(next) = model.step(&state, &op.input, op.output.as_ref()) {
                // An unknown-outcome operation that changes nothing here gains nothing from being
                // linearized here: leaving it out is just as good, and it constrains nobody.
                let useless = op.is_unknown() && next == state;
                if !useless {
                    linearized.insert(op_index);
                    if seen.insert((linearized.clone(), next.clone())) {
                        stack.push((cursor, std::mem::replace(&mut state, next)));
                        list.lift(cursor);
                        if !op.is_unknown() {
                            pending_completed -= 1;
                        }
                        cursor = list.next[EntryList::HEAD];
                        continue;
                    }
                    linearized.remove(op_index);
                }
            }
            cursor = list.next[cursor];
        } else {
            if stack.len() > longest.len() {
                longest = stack.iter().map(|(node, _)| list.entry(*node).op).collect();
            }
            let Some((call_node, previous)) = stack.pop() else {
                return Search::Illegal { longest };
            };
            let op_index = list.entry(call_node).op;
            linearized.remove(op_index);
            state = previous;
            list.unlift(call_node);
            if !ops[op_index].is_unknown() {
                pending_completed += 1;
            }
            cursor = list.next[call_node];
        }
    }
    Search::Linearizable
}
