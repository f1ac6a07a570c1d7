//! Per-key retry delays: exponential with jitter, reset by a success.

use std::time::Duration;

use rand::Rng;

/// How retries after errors are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The nominal delay after `failures` consecutive failures (1 = first failure).
    pub fn nominal(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay to wait: the nominal one scaled by a random factor in [0.5, 1.0], so keys that
    /// failed together (say, on a lost quorum) do not all retry in the same instant.
    pub fn delay(&self, failures: u32) -> Duration {
        let nominal = self.nominal(failures);
        let factor: f64 = rand::rng().random_range(0.5..=1.0);
        nominal.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_below_nominal() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.nominal(1), Duration::from_millis(100));
        assert_eq!(b.nominal(2), Duration::from_millis(200));
        assert_eq!(b.nominal(4), Duration::from_millis(800));
        assert_eq!(b.nominal(5), Duration::from_secs(1));
        assert_eq!(b.nominal(500), Duration::from_secs(1));
        for n in 1..10 {
            let d = b.delay(n);
            assert!(d <= b.nominal(n) && d >= b.nominal(n) / 2, "{d:?} for {n}");
        }
    }
}
