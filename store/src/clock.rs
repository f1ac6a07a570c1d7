//! The wall clock shoal reads for what it records and checks in calendar time (object
//! timestamps, certificate validity and renewal). Raft, leases, heartbeats and every timeout use
//! the monotonic clock (`Instant`) instead, so a wall clock that jumps or is skewed changes
//! timestamps, never safety.
//!
//! The chaos suite moves one manager's wall clock against the others', also while it runs:
//! [`OFFSET_FILE_ENV`] names a file holding the offset in seconds (signed: `-90`, `600`),
//! which only debug builds read, again at most every [`REREAD`]; writing another number there
//! makes the clock jump. A release build reads the system clock as it is.

use std::time::{Duration, SystemTime};

/// The environment variable naming the file of this process's clock offset (debug builds
/// only).
pub const OFFSET_FILE_ENV: &str = "SHOAL_CHAOS_CLOCK_FILE";

/// How often the offset file is read again: a jump takes effect within this.
pub const REREAD: Duration = Duration::from_millis(50);

/// The offset of this process's wall clock in seconds (debug builds only; 0 otherwise, and
/// when the file is missing or holds no number).
pub fn offset_seconds() -> i64 {
    #[cfg(debug_assertions)]
    {
        debug_offset::get()
    }
    #[cfg(not(debug_assertions))]
    {
        0
    }
}

#[cfg(debug_assertions)]
mod debug_offset {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Instant;

    static FILE: OnceLock<Option<(PathBuf, Instant)>> = OnceLock::new();
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    /// When the file was last read, in µs since the first read (`u64::MAX`: never).
    static READ_AT: AtomicU64 = AtomicU64::new(u64::MAX);

    pub(super) fn get() -> i64 {
        let Some((path, epoch)) = FILE.get_or_init(|| {
            std::env::var_os(super::OFFSET_FILE_ENV).map(|p| (PathBuf::from(p), Instant::now()))
        }) else {
            return 0;
        };
        let now = epoch.elapsed().as_micros() as u64;
        let last = READ_AT.load(Ordering::Relaxed);
        if last == u64::MAX || now.saturating_sub(last) >= super::REREAD.as_micros() as u64 {
            READ_AT.store(now, Ordering::Relaxed);
            let offset = std::fs::read_to_string(path)
                .ok()
                .and_then(|v| v.trim().trim_start_matches('+').parse().ok())
                .unwrap_or(0);
            OFFSET.store(offset, Ordering::Relaxed);
        }
        OFFSET.load(Ordering::Relaxed)
    }
}

/// Now, on this process's wall clock.
pub fn now() -> SystemTime {
    let real = SystemTime::now();
    match offset_seconds() {
        0 => real,
        s if s > 0 => real + Duration::from_secs(s as u64),
        s => real - Duration::from_secs(s.unsigned_abs()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_an_offset_it_is_the_system_clock() {
        // The test process names no offset file.
        let a = std::time::SystemTime::now();
        let b = super::now();
        let c = std::time::SystemTime::now();
        assert!(a <= b && b <= c);
    }
}
