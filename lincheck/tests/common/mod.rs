//! Random histories for the differential and performance tests, made by simulating a correct
//! store: every operation takes effect at one random instant inside its interval (or, for an
//! unknown outcome, at some instant after its call or never), and its output is what a single
//! copy of the data gives at that instant. Such a history is linearizable by construction;
//! mutating one output afterwards usually (not always) makes it illegal.
//!
//! Shared by tests/*.rs and examples/*.rs through `mod common;` / `#[path]`, so not every item
//! is used by every includer.
#![allow(dead_code)]

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::Rng;
use shoal_lincheck::models::{
    RegisterInput as RI, RegisterOutput as RO, VersionedInput as VI, VersionedOutput as VO,
};
use shoal_lincheck::{History, Operation};

/// The shape of a generated history.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Clients issuing operations at the same time; each issues one at a time.
    pub clients: usize,
    /// Operations in the history.
    pub ops: usize,
    /// Keys they touch.
    pub keys: usize,
    /// Values are drawn from `0..values`: small, so reads and compare-and-sets collide.
    pub values: u8,
    /// A client's next call comes 1..=max_gap after its previous return (never at the same
    /// instant: a client's operations are sequential, and equal times would make them concurrent).
    pub max_gap: u64,
    /// An operation lasts 0..=max_duration.
    pub max_duration: u64,
    /// Chance that an operation's outcome is unknown. The client then continues under a new id,
    /// as a Jepsen process that crashed: the old id keeps its operation in flight for ever.
    pub unknown: f64,
    /// Whether an unknown outcome may be a write (else only reads go unknown). The versioned
    /// differential test needs reads only: stateright's tester gives an in-flight operation the
    /// one answer its `invoke` picks, but an unknown write may have committed at any revision.
    pub unknown_writes: bool,
}

impl Shape {
    /// Small histories for comparing with an exhaustive checker: few clients, a tight clock so
    /// that equal timestamps are common.
    pub fn small(rng: &mut StdRng) -> Shape {
        Shape {
            clients: rng.random_range(1..=4),
            ops: rng.random_range(1..=9),
            keys: rng.random_range(1..=2),
            values: 3,
            max_gap: 3,
            max_duration: 4,
            unknown: 0.15,
            unknown_writes: true,
        }
    }

    /// What a chaos run might record: 8 clients, 10,000 operations over 50 keys, operations of
    /// 0.1 to 5 ms with up to 1 ms between them (in nanoseconds), 2% unknown outcomes.
    pub fn chaos_run() -> Shape {
        Shape {
            clients: 8,
            ops: 10_000,
            keys: 50,
            values: 5,
            max_gap: 1_000_000,
            max_duration: 5_000_000,
            unknown: 0.02,
            unknown_writes: true,
        }
    }
}

/// When an operation happens: its interval, and when (if ever) it takes effect.
struct Slot {
    client: u64,
    key: String,
    call: u64,
    /// `None`: outcome unknown.
    ret: Option<u64>,
    /// `None`: an unknown-outcome operation that never took effect.
    effect: Option<u64>,
    /// Whether an unknown outcome here may be a write.
    may_write: bool,
}

/// Lays out `shape.ops` operations in time, without inputs or outputs yet.
fn slots(rng: &mut StdRng, shape: &Shape) -> Vec<Slot> {
    let mut free_at = vec![0u64; shape.clients];
    let mut id_of: Vec<u64> = (0..shape.clients as u64).collect();
    let mut next_id = shape.clients as u64;
    let mut out = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        let c = rng.random_range(0..shape.clients);
        let call = free_at[c] + rng.random_range(1..=shape.max_gap);
        let ret = call + rng.random_range(0..=shape.max_duration);
        let key = format!("k{}", rng.random_range(0..shape.keys));
        if rng.random_bool(shape.unknown) {
            // Took effect somewhere after the call (possibly long after everything else), or not.
            let effect = rng
                .random_bool(0.5)
                .then(|| call + rng.random_range(0..=shape.max_duration * 4));
            out.push(Slot {
                client: id_of[c],
                key,
                call,
                ret: None,
                effect,
                may_write: shape.unknown_writes,
            });
            id_of[c] = next_id;
            next_id += 1;
        } else {
            out.push(Slot {
                client: id_of[c],
                key,
                call,
                ret: Some(ret),
                effect: Some(rng.random_range(call..=ret)),
                may_write: true,
            });
        }
        free_at[c] = ret;
    }
    out
}

/// The order in which operations take effect: by effect instant, ties in random order (any order
/// of operations at one instant is a valid linearization, since all their intervals contain it).
fn effect_order(rng: &mut StdRng, slots: &[Slot]) -> Vec<usize> {
    let mut order: Vec<(u64, u64, usize)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.effect.map(|t| (t, rng.random::<u64>(), i)))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, _, i)| i).collect()
}

/// An operation's input and (if its outcome is known) output, once decided; `None` for one that
/// never took effect.
type Decided<I, O> = Option<(I, Option<O>)>;

fn finish<I, O>(
    slots: Vec<Slot>,
    io: Vec<Decided<I, O>>,
    rng: &mut StdRng,
    pick: impl Fn(&mut StdRng, bool) -> I,
) -> History<I, O> {
    let mut ops = Vec::with_capacity(slots.len());
    for (slot, io) in slots.into_iter().zip(io) {
        // Operations that never took effect still need an input.
        let (input, output) = io.unwrap_or_else(|| (pick(rng, slot.may_write), None));
        ops.push(match (slot.ret, output) {
            (Some(ret), Some(output)) => {
                Operation::completed(slot.client, slot.key, input, slot.call, output, ret)
            }
            _ => Operation::unknown(slot.client, slot.key, input, slot.call),
        });
    }
    History::from_operations(ops).expect("generated operations are well-formed")
}

/// A linearizable register history (read / write / compare-and-set).
pub fn register_history(rng: &mut StdRng, shape: &Shape) -> History<RI<u8>, RO<u8>> {
    let slots = slots(rng, shape);
    let values = shape.values;
    let pick = move |rng: &mut StdRng, may_write: bool| -> RI<u8> {
        let v = rng.random_range(0..values);
        match rng.random_range(0..3) {
            _ if !may_write => RI::Read,
            0 => RI::Read,
            1 => RI::Write(v),
            _ => RI::Cas {
                expected: rng.random_bool(0.8).then(|| rng.random_range(0..values)),
                new: v,
            },
        }
    };
    let mut data: BTreeMap<String, Option<u8>> = BTreeMap::new();
    let mut io: Vec<Decided<RI<u8>, RO<u8>>> = (0..slots.len()).map(|_| None).collect();
    for i in effect_order(rng, &slots) {
        let current = data.entry(slots[i].key.clone()).or_default();
        let mut input = pick(rng, slots[i].may_write);
        // Compare-and-sets that mostly find what they expect, or they would nearly always fail.
        if let RI::Cas { expected, .. } = &mut input {
            if rng.random_bool(0.5) {
                *expected = *current;
            }
        }
        let output = match &input {
            RI::Read => RO::Read(*current),
            RI::Write(v) => {
                *current = Some(*v);
                RO::Written
            }
            RI::Cas { expected, new } => {
                if expected == current {
                    *current = Some(*new);
                    RO::CasOk
                } else {
                    RO::CasFailed
                }
            }
        };
        let known = slots[i].ret.is_some();
        io[i] = Some((input, known.then_some(output)));
    }
    finish(slots, io, rng, pick)
}

/// A linearizable versioned-register history: one global revision counter, as a store's log
/// index, advancing by 1 or 2 per change so that a key's revisions are not consecutive.
pub fn versioned_history(rng: &mut StdRng, shape: &Shape) -> History<VI<u8>, VO<u8>> {
    let slots = slots(rng, shape);
    let values = shape.values;
    let pick = move |rng: &mut StdRng, may_write: bool| -> VI<u8> {
        let v = rng.random_range(0..values);
        match rng.random_range(0..3) {
            _ if !may_write => VI::Read,
            0 => VI::Read,
            1 => VI::Write(v),
            _ => VI::Update {
                value: v,
                expected: rng.random_range(0..6),
            },
        }
    };
    let mut revision = 0u64;
    let mut data: BTreeMap<String, (Option<u8>, u64)> = BTreeMap::new();
    let mut io: Vec<Decided<VI<u8>, VO<u8>>> = (0..slots.len()).map(|_| None).collect();
    for i in effect_order(rng, &slots) {
        let current = data.entry(slots[i].key.clone()).or_default();
        let mut input = pick(rng, slots[i].may_write);
        if let VI::Update { expected, .. } = &mut input {
            if rng.random_bool(0.6) {
                *expected = current.1;
            }
        }
        let mut commit = |current: &mut (Option<u8>, u64), v: u8| {
            revision += rng.random_range(1..=2);
            *current = (Some(v), revision);
            VO::Written { revision }
        };
        let output = match &input {
            VI::Read => VO::Read {
                value: current.0,
                revision: current.1,
            },
            VI::Write(v) => commit(current, *v),
            VI::Update { value, expected } if *expected == current.1 => commit(current, *value),
            VI::Update { .. } => VO::Conflict,
        };
        let known = slots[i].ret.is_some();
        io[i] = Some((input, known.then_some(output)));
    }
    finish(slots, io, rng, pick)
}

/// Indices of the operations with a known outcome.
fn completed<I, O>(h: &History<I, O>) -> Vec<usize> {
    (0..h.len())
        .filter(|&i| !h.operations()[i].is_unknown())
        .collect()
}

/// Changes one completed operation's output to another answer of the same kind, if any
/// operation has one. The result may still be linearizable (the new answer may fit another
/// order); the differential test does not care, both checkers must agree either way.
pub fn mutate_register(
    rng: &mut StdRng,
    h: &History<RI<u8>, RO<u8>>,
    values: u8,
) -> History<RI<u8>, RO<u8>> {
    let mut ops = h.operations().to_vec();
    let candidates: Vec<usize> = completed(h)
        .into_iter()
        .filter(|&i| !matches!(ops[i].output, Some(RO::Written)))
        .collect();
    if let Some(&i) = candidates.get(rng.random_range(0..candidates.len().max(1))) {
        let output = ops[i].output.as_mut().expect("completed");
        *output = match output {
            RO::Read(v) => {
                let mut other = *v;
                while other == *v {
                    other = rng.random_bool(0.8).then(|| rng.random_range(0..values));
                }
                RO::Read(other)
            }
            RO::CasOk => RO::CasFailed,
            RO::CasFailed => RO::CasOk,
            RO::Written => RO::Written,
        };
    }
    History::from_operations(ops).expect("mutation keeps operations well-formed")
}

/// [`mutate_register`] for versioned histories: a read's value or revision, a write's revision,
/// or an update's success.
pub fn mutate_versioned(
    rng: &mut StdRng,
    h: &History<VI<u8>, VO<u8>>,
    values: u8,
) -> History<VI<u8>, VO<u8>> {
    let mut ops = h.operations().to_vec();
    let candidates = completed(h);
    if let Some(&i) = candidates.get(rng.random_range(0..candidates.len().max(1))) {
        let shift = |rng: &mut StdRng, r: u64| {
            let d = rng.random_range(1..=2);
            if rng.random_bool(0.5) || r < d {
                r + d
            } else {
                r - d
            }
        };
        let is_update = matches!(ops[i].input, VI::Update { .. });
        let output = ops[i].output.as_mut().expect("completed");
        *output = match output.clone() {
            VO::Read { value, revision } if rng.random_bool(0.5) => VO::Read {
                value: if value.is_some() && rng.random_bool(0.3) {
                    None
                } else {
                    Some((value.map_or(0, |v| v + 1)) % values)
                },
                revision,
            },
            VO::Read { value, revision } => VO::Read {
                value,
                revision: shift(rng, revision),
            },
            VO::Written { .. } if is_update && rng.random_bool(0.5) => VO::Conflict,
            VO::Written { revision } => VO::Written {
                revision: shift(rng, revision),
            },
            VO::Conflict => VO::Written {
                revision: rng.random_range(1..12),
            },
        };
    }
    History::from_operations(ops).expect("mutation keeps operations well-formed")
}
