//! The search: Wing & Gong's backtracking over a call/return entry list, with Lowe's cache of
//! visited configurations (extended with subsumption for unknown-outcome operations), run once per
//! partition (Horn & Kroening's P-compositionality). The crate documentation gives the rules.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::bitset::BitSet;
use crate::entries::EntryList;
use crate::explored::Explored;
use crate::history::{History, Operation};
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
        match Searcher::new(model, &ops).run(deadline) {
            Verdict::Linearizable => {}
            Verdict::TimedOut => return CheckResult::Unknown { key },
            Verdict::Illegal { longest } => {
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
enum Verdict {
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

/// Where the search looks for the next operation to linearize.
#[derive(Clone, Copy)]
enum Cursor {
    /// At a node of the main chain.
    Main(usize),
    /// At a node of the unknown chain; only calls before `bound`, the first pending return, may
    /// go next.
    Unknown { node: usize, bound: usize },
}

/// One linearized operation on the search stack.
struct Frame<S> {
    /// Its call node.
    node: usize,
    /// The state before it, restored when the search backtracks over it.
    before: S,
    /// Where the search resumes after backtracking over it: the next candidate on its chain.
    resume: Cursor,
}

/// Which operations are linearized: completed and unknown-outcome operations in two sets, each
/// numbered from 0, because the cache compares them differently (see [`Explored`]).
struct Linearized {
    /// Each operation's number within its set.
    number: Vec<usize>,
    unknown: Vec<bool>,
    done: BitSet,
    applied: BitSet,
}

impl Linearized {
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
        let unknown: Vec<bool> = ops.iter().map(|op| op.is_unknown()).collect();
        let mut counts = [0, 0];
        let number = unknown
            .iter()
            .map(|&u| {
                counts[usize::from(u)] += 1;
                counts[usize::from(u)] - 1
            })
            .collect();
        Linearized {
            number,
            unknown,
            done: BitSet::new(counts[0]),
            applied: BitSet::new(counts[1]),
        }
    }

    fn set(&mut self, op: usize) -> &mut BitSet {
        if self.unknown[op] {
            &mut self.applied
        } else {
            &mut self.done
        }
    }

    fn insert(&mut self, op: usize) {
        let n = self.number[op];
        self.set(op).insert(n);
    }

    fn remove(&mut self, op: usize) {
        let n = self.number[op];
        self.set(op).remove(n);
    }

    fn contains(&self, op: usize) -> bool {
        let set = if self.unknown[op] {
            &self.applied
        } else {
            &self.done
        };
        set.contains(self.number[op])
    }
}

/// Searches one partition for a linearization.
///
/// The cursor walks the main chain from the front. At a call it tries to linearize that operation
/// next: the model must accept its output in the current state, and the resulting configuration
/// must not have been explored before. On success the operation is lifted out and the walk
/// restarts from the front; otherwise the cursor moves on to later calls, all concurrent with
/// everything before them. At a return, the operation it closes is not linearized yet, so nothing
/// called after this point may be either. Before giving up on this configuration the search tries
/// the unknown-outcome operations called before that return; when none helps it backtracks,
/// putting the last linearized operation back and resuming with the candidate after it.
///
/// Trying unknown-outcome operations last changes only the order in which candidates are tried,
/// not which are tried. It matters because an unknown operation stays a candidate for ever after
/// its call: tried first, each would be applied at every point of the history before the search
/// looked at the next real answer. Tried last, one is applied where the answers so far cannot be
/// explained without it.
///
/// The partition is linearizable once every completed operation is linearized; unknown-outcome
/// operations left over never took effect.
struct Searcher<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a Operation<M::Input, M::Output>],
    list: EntryList,
    /// For each unknown-outcome operation, the one called most recently before it with an equal
    /// input (see [`Searcher::worth_applying`]).
    twin_before: Vec<Option<usize>>,
    linearized: Linearized,
    pending_completed: usize,
    state: M::State,
    explored: Explored<M::State>,
    stack: Vec<Frame<M::State>>,
    /// The longest partial linearization seen, as operation indices: the failure report.
    longest: Vec<usize>,
}

/// What the search does after looking at one entry.
enum Next {
    /// Try the candidate at this call node; `resume` is where to go if it does not work out.
    Try { node: usize, resume: Cursor },
    /// The candidates at this configuration are used up.
    Backtrack,
}

impl<'a, M: Model> Searcher<'a, M> {
    fn new(model: &'a M, ops: &'a [&'a Operation<M::Input, M::Output>]) -> Self {
        let list = EntryList::new(ops);
        let mut twin_before = vec![None; ops.len()];
        let mut last_with_input: HashMap<&M::Input, usize> = HashMap::new();
        let mut node = list.next[list.unknown_head()];
        while node != list.unknown_tail() {
            let op = list.entry(node).op;
            twin_before[op] = last_with_input.insert(&ops[op].input, op);
            node = list.next[node];
        }
        Searcher {
            model,
            ops,
            twin_before,
            linearized: Linearized::new(ops),
            pending_completed: ops.iter().filter(|op| !op.is_unknown()).count(),
            state: model.init(),
            explored: Explored::new(),
            stack: Vec::new(),
            longest: Vec::new(),
            list,
        }
    }

    fn run(mut self, deadline: Option<Instant>) -> Verdict {
        let mut cursor = Cursor::Main(self.list.next[EntryList::MAIN]);
        let mut steps: u64 = 0;
        while self.pending_completed > 0 {
            if steps.is_multiple_of(DEADLINE_EVERY) && deadline.is_some_and(|d| Instant::now() >= d)
            {
                return Verdict::TimedOut;
            }
            steps += 1;
            cursor = match self.next(cursor) {
                Err(moved) => moved,
                Ok(Next::Try { node, resume }) => {
                    if self.try_lift(node, resume) {
                        Cursor::Main(self.list.next[EntryList::MAIN])
                    } else {
                        resume
                    }
                }
                Ok(Next::Backtrack) => match self.backtrack() {
                    Some(resume) => resume,
                    None => {
                        return Verdict::Illegal {
                            longest: self.longest,
                        }
                    }
                },
            };
        }
        Verdict::Linearizable
    }

    /// Reads the entry under the cursor; `Err` is a cursor moved without trying anything.
    fn next(&self, cursor: Cursor) -> Result<Next, Cursor> {
        let list = &self.list;
        match cursor {
            // The main tail cannot be reached while a completed operation is pending: its return
            // is still on the chain and stops the walk first.
            Cursor::Main(node) if node != list.main_tail() && list.entry(node).is_call => {
                Ok(Next::Try {
                    node,
                    resume: Cursor::Main(list.next[node]),
                })
            }
            // A pending return: on to the unknown-outcome operations called before it.
            Cursor::Main(bound) => Err(Cursor::Unknown {
                node: list.next[list.unknown_head()],
                bound,
            }),
            Cursor::Unknown { node, bound } if node < bound => Ok(Next::Try {
                node,
                resume: Cursor::Unknown {
                    node: list.next[node],
                    bound,
                },
            }),
            // The unknown tail is numbered after every entry, so it lands here too.
            Cursor::Unknown { .. } => Ok(Next::Backtrack),
        }
    }

    /// Tries to linearize the operation called at `node` next; true when it was.
    fn try_lift(&mut self, node: usize, resume: Cursor) -> bool {
        let op_index = self.list.entry(node).op;
        let op = self.ops[op_index];
        let Some(next) = self.model.step(&self.state, &op.input, op.output.as_ref()) else {
            return false;
        };
        if op.is_unknown() && !self.worth_applying(op_index, &next) {
            return false;
        }
        self.linearized.insert(op_index);
        let linearized = &self.linearized;
        if !self
            .explored
            .visit(&linearized.done, &next, &linearized.applied)
        {
            self.linearized.remove(op_index);
            return false;
        }
        let before = std::mem::replace(&mut self.state, next);
        self.stack.push(Frame {
            node,
            before,
            resume,
        });
        self.list.lift(node);
        if !op.is_unknown() {
            self.pending_completed -= 1;
        }
        true
    }

    /// Whether applying unknown-outcome operation `op_index` here, reaching `next`, can lead
    /// anywhere its alternatives cannot. Each rule below prunes a configuration that another one
    /// the search also visits subsumes, so none of them changes the verdict (the differential
    /// test checks this against an exhaustive search).
    fn worth_applying(&self, op_index: usize, next: &M::State) -> bool {
        // Changing nothing: leaving the operation out is just as good, and it constrains nobody.
        if *next == self.state {
            return false;
        }
        // Twins (equal inputs, both called already) are interchangeable, since neither has a
        // return to respect: only the earliest twin not yet applied is tried.
        let mut twin = self.twin_before[op_index];
        while let Some(t) = twin {
            if !self.linearized.contains(t) {
                return false;
            }
            twin = self.twin_before[t];
        }
        // Right after another unknown operation, if it reaches the same state without that one:
        // the sibling without the earlier operation, tried from the parent, subsumes it. This
        // keeps a run of unknown writes from being tried in every combination, which the cache
        // alone cannot do since depth-first order visits the larger combinations first.
        if let Some(top) = self.stack.last() {
            let top_op = self.list.entry(top.node).op;
            if self.ops[top_op].is_unknown() {
                let without = self
                    .model
                    .step(&top.before, &self.ops[op_index].input, None);
                if without.as_ref() == Some(next) {
                    return false;
                }
            }
        }
        true
    }

    /// Puts the last linearized operation back; returns where to resume, or `None` when nothing
    /// is left to put back (the partition is not linearizable).
    fn backtrack(&mut self) -> Option<Cursor> {
        if self.stack.len() > self.longest.len() {
            let list = &self.list;
            self.longest = self.stack.iter().map(|f| list.entry(f.node).op).collect();
        }
        let frame = self.stack.pop()?;
        let op_index = self.list.entry(frame.node).op;
        self.linearized.remove(op_index);
        self.state = frame.before;
        self.list.unlift(frame.node);
        if !self.ops[op_index].is_unknown() {
            self.pending_completed += 1;
        }
        // The resume cursor was taken before the lift; unlifting restored the chains exactly, so
        // it points at the same next candidate.
        Some(frame.resume)
    }
}
