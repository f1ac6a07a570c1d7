//! The wall clock shoal reads for what it records and checks in calendar time (object
//! timestamps, certificate validity and renewal). Raft, leases, heartbeats and every timeout use
//! the monotonic clock (`Instant`) instead, so a wall clock that jumps or is skewed changes
//! timestamps, never safety.
//!
//! The chaos suite skews one manager's wall clock against the others' with [`SKEW_ENV`]
//! (seconds, signed: `-90`, `+600`), which only debug builds read; a release build reads the
//! system clock as it is.

use std::time::{Duration, SystemTime};

/// The environment variable that skews this process's wall clock (debug builds only).
pub const SKEW_ENV: &str = "SHOAL_CHAOS_CLOCK_SKEW";

/// The skew in seconds this process was started with (debug builds only; 0 otherwise).
pub fn skew_seconds() -> i64 {
    #[cfg(debug_assertions)]
    {
        static SKEW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        *SKEW.get_or_init(|| {
            std::env::var(SKEW_ENV)
                .ok()
                .and_then(|v| v.trim().trim_start_matches('+').parse().ok())
                .unwrap_or(0)
        })
    }
    #[cfg(not(debug_assertions))]
    {
        0
    }
}

/// Now, on this process's wall clock.
pub fn now() -> SystemTime {
    let real = SystemTime::now();
    match skew_seconds() {
        0 => real,
        s if s > 0 => real + Duration::from_secs(s as u64),
        s => real - Duration::from_secs(s.unsigned_abs()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_skew_it_is_the_system_clock() {
        // The test process sets no skew.
        let a = std::time::SystemTime::now();
        let b = super::now();
        let c = std::time::SystemTime::now();
        assert!(a <= b && b <= c);
    }
}
