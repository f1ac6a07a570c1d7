//! Differential test: our checker and stateright's `LinearizabilityTester` (an exhaustive search
//! with none of our machinery: no entry list, no cache, no partitions) must agree on thousands of
//! small random histories, linearizable ones from a simulated correct store and mutated ones.
//!
//! The oracle's specifications below are written independently of our models, so a shared
//! misreading of the semantics would have to be made twice.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_lincheck::models::{
    Register, RegisterInput as RI, RegisterOutput as RO, VersionedInput as VI,
    VersionedOutput as VO, VersionedRegister,
};
use shoal_lincheck::{check, CheckResult, History, Model};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// A map of compare-and-set registers, keyed like our histories, for stateright.
#[derive(Clone, Debug, Default)]
struct CasMap(BTreeMap<String, Option<u8>>);

impl SequentialSpec for CasMap {
    type Op = (String, RI<u8>);
    type Ret = RO<u8>;

    fn invoke(&mut self, (key, op): &Self::Op) -> RO<u8> {
        let slot = self.0.entry(key.clone()).or_default();
        match op {
            RI::Read => RO::Read(*slot),
            RI::Write(v) => {
                *slot = Some(*v);
                RO::Written
            }
            RI::Cas { expected, new } if *slot == *expected => {
                *slot = Some(*new);
                RO::CasOk
            }
            RI::Cas { .. } => RO::CasFailed,
        }
    }
}

/// A map of versioned registers for stateright: `(value, revision)` per key. A write may
/// legitimately answer any revision above the current one, so `is_valid_step` is spelled out;
/// `invoke` only serves in-flight operations, which the versioned histories keep to reads.
#[derive(Clone, Debug, Default)]
struct VersionedMap(BTreeMap<String, (Option<u8>, u64)>);

impl SequentialSpec for VersionedMap {
    type Op = (String, VI<u8>);
    type Ret = VO<u8>;

    fn invoke(&mut self, (key, op): &Self::Op) -> VO<u8> {
        let slot = self.0.entry(key.clone()).or_default();
        match op {
            VI::Read => VO::Read {
                value: slot.0,
                revision: slot.1,
            },
            _ => panic!("the versioned histories have no in-flight writes"),
        }
    }

    fn is_valid_step(&mut self, (key, op): &Self::Op, ret: &VO<u8>) -> bool {
        let slot = self.0.entry(key.clone()).or_default();
        match (op, ret) {
            (VI::Read, VO::Read { value, revision }) => (*value, *revision) == *slot,
            (VI::Write(v), VO::Written { revision }) if *revision > slot.1 => {
                *slot = (Some(*v), *revision);
                true
            }
            (VI::Update { value, expected }, VO::Written { revision })
                if *expected == slot.1 && *revision > slot.1 =>
            {
                *slot = (Some(*value), *revision);
                true
            }
            (VI::Update { expected, .. }, VO::Conflict) => *expected != slot.1,
            _ => false,
        }
    }
}

/// Stateright's verdict. Events are fed in time order with calls before returns at equal times,
/// the same tie rule as ours; client ids are its thread ids (the generator keeps each client's
/// operations strictly sequential and never reuses the id of a client with one in flight).
fn oracle<S>(spec: S, history: &History<S::Op, S::Ret>) -> bool
where
    S: SequentialSpec + Clone,
    S::Op: Clone + std::fmt::Debug,
    S::Ret: Clone + std::fmt::Debug + PartialEq,
{
    let ops = history.operations();
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, 0, i));
        if let Some(ret) = op.return_time {
            events.push((ret, 1, i));
        }
    }
    events.sort_unstable();
    let mut tester = LinearizabilityTester::<u64, S>::new(spec);
    for (_, kind, i) in events {
        let op = &ops[i];
        let fed = if kind == 0 {
            tester.on_invoke(op.client_id, op.input.clone()).map(|_| ())
        } else {
            let output = op.output.clone().expect("completed");
            tester.on_return(op.client_id, output).map(|_| ())
        };
        fed.expect("generated histories are well-formed for stateright");
    }
    tester.is_consistent()
}

/// Our verdict, with no deadline: these histories are tiny, so `Unknown` would be a bug.
fn ours<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> bool {
    match check(model, history, Duration::MAX) {
        CheckResult::Ok => true,
        CheckResult::Illegal { .. } => false,
        CheckResult::Unknown { key } => panic!("no deadline, yet unknown on {key}"),
    }
}

/// Stateright's ops carry the key; ours keep it beside the input.
fn keyed<I: Clone, O: Clone>(h: &History<I, O>) -> History<(String, I), O> {
    History::from_operations(h.operations().iter().map(|op| shoal_lincheck::Operation {
        client_id: op.client_id,
        key: op.key.clone(),
        input: (op.key.clone(), op.input.clone()),
        call: op.call,
        output: op.output.clone(),
        return_time: op.return_time,
    }))
    .unwrap()
}

/// Runs `runs` generated histories and their mutants through both checkers; returns how many
/// mutants were illegal, so the caller can tell the test was not vacuous.
fn compare<I, O, M, S>(
    seed: u64,
    runs: usize,
    model: &M,
    spec: S,
    generate: impl Fn(&mut StdRng) -> History<I, O>,
    mutate: impl Fn(&mut StdRng, &History<I, O>) -> History<I, O>,
) -> usize
where
    I: Clone + std::fmt::Debug + serde::Serialize,
    O: Clone + std::fmt::Debug + PartialEq + serde::Serialize,
    M: Model<Input = I, Output = O>,
    S: SequentialSpec<Op = (String, I), Ret = O> + Clone,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let mut illegal = 0;
    for run in 0..runs {
        let valid = generate(&mut rng);
        let mutant = mutate(&mut rng, &valid);
        for (what, history) in [("simulated", &valid), ("mutated", &mutant)] {
            let (a, b) = (ours(model, history), oracle(spec.clone(), &keyed(history)));
            assert_eq!(
                a,
                b,
                "seed {seed} run {run} ({what}): shoal-lincheck says {a}, stateright says {b}\n{}",
                history.to_json()
            );
            if what == "simulated" {
                assert!(
                    a,
                    "seed {seed} run {run}: a simulated history must be linearizable"
                );
            } else if !a {
                illegal += 1;
            }
        }
    }
    eprintln!("seed {seed:#x}: {illegal} of {runs} mutants illegal");
    illegal
}

#[test]
fn register_histories_agree_with_stateright() {
    let runs = 3000;
    let illegal = compare(
        0x5ea1_0001,
        runs,
        &Register::<u8>::new(),
        CasMap::default(),
        |rng| {
            let shape = common::Shape::small(rng);
            common::register_history(rng, &shape)
        },
        |rng, h| common::mutate_register(rng, h, 3),
    );
    // A mutated output is often still explainable; most must not be, or the test checks little.
    assert!(
        illegal > runs / 3,
        "only {illegal} of {runs} mutants illegal"
    );
}

#[test]
fn versioned_histories_agree_with_stateright() {
    let runs = 2000;
    let illegal = compare(
        0x5ea1_0002,
        runs,
        &VersionedRegister::<u8>::new(),
        VersionedMap::default(),
        |rng| {
            let mut shape = common::Shape::small(rng);
            shape.unknown_writes = false;
            common::versioned_history(rng, &shape)
        },
        |rng, h| common::mutate_versioned(rng, h, 3),
    );
    assert!(
        illegal > runs / 3,
        "only {illegal} of {runs} mutants illegal"
    );
}

#[test]
fn larger_register_histories_agree_with_stateright() {
    // Fewer, longer histories on one key: deeper searches, more backtracking and cache hits.
    let mut seeds = StdRng::seed_from_u64(0x5ea1_0003);
    let illegal = compare(
        seeds.random(),
        300,
        &Register::<u8>::new(),
        CasMap::default(),
        |rng| {
            let shape = common::Shape {
                clients: 3,
                ops: 12,
                keys: 1,
                values: 2,
                max_gap: 2,
                max_duration: 6,
                unknown: 0.1,
                unknown_writes: true,
            };
            common::register_history(rng, &shape)
        },
        |rng, h| common::mutate_register(rng, h, 2),
    );
    assert!(illegal > 0);
}
