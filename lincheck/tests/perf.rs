//! A chaos-run-sized history must be checked to the end, not time out. No timing is asserted (the
//! machine is shared and debug builds are slow); `examples/check_10k.rs` measures the same
//! history in release.

mod common;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use shoal_lincheck::models::Register;
use shoal_lincheck::{check, CheckResult};

#[test]
fn ten_thousand_operations_over_fifty_keys_check_ok() {
    let mut rng = StdRng::seed_from_u64(10_000);
    let history = common::register_history(&mut rng, &common::Shape::chaos_run());
    assert_eq!(history.len(), 10_000);
    // The deadline only keeps a regression from hanging the suite; Unknown fails the test too.
    let result = check(&Register::<u8>::new(), &history, Duration::from_secs(120));
    assert_eq!(result, CheckResult::Ok);
}
