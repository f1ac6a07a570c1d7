//! Times the check of the performance test's history (10,000 operations, 50 keys, 8 clients, 2%
//! unknown outcomes): `cargo run --release -p shoal-lincheck --example check_10k [seed] [keys]`.
//! A smaller `keys` concentrates the same operations on fewer keys: more concurrency per key, so
//! a harder search (`1`: every operation on one register). A third argument `mutate` changes one
//! output first, which usually makes the history illegal: the search must then exhaust it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use shoal_lincheck::check;
use shoal_lincheck::models::Register;

fn main() {
    let seed = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seed: an integer"))
        .unwrap_or(10_000);
    let mut shape = common::Shape::chaos_run();
    if let Some(keys) = std::env::args().nth(2) {
        shape.keys = keys.parse().expect("keys: an integer");
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut history = common::register_history(&mut rng, &shape);
    if std::env::args().nth(3).as_deref() == Some("mutate") {
        history = common::mutate_register(&mut rng, &history, shape.values);
    }
    let unknown = history
        .operations()
        .iter()
        .filter(|op| op.is_unknown())
        .count();
    let started = Instant::now();
    let result = check(&Register::<u8>::new(), &history, Duration::from_secs(600));
    let verdict = match &result {
        shoal_lincheck::CheckResult::Illegal { key, prefix, .. } => {
            format!("Illegal on {key} after a prefix of {}", prefix.len())
        }
        other => format!("{other:?}"),
    };
    println!(
        "{} operations on {} keys ({unknown} unknown outcome), seed {seed}: {verdict} in {:.1} ms",
        history.len(),
        shape.keys,
        started.elapsed().as_secs_f64() * 1e3
    );
}
