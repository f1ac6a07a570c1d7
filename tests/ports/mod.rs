//! Free TCP ports for test daemons and published ports.

use std::net::TcpListener;

/// A free TCP port on loopback, picked at random below the kernel's ephemeral range (32768 and
/// up): a port the kernel hands out as "any free port" can be taken again by any outgoing
/// connection between this check and its use, which made daemons fail to listen now and then.
pub fn free_port() -> u16 {
    loop {
        let port = 20000 + (rand_u16() % 12000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A pseudo-random number from the clock and a counter (no extra crate for tests).
fn rand_u16() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let x = nanos
        ^ (u64::from(std::process::id()) << 20)
        ^ COUNTER.fetch_add(0x9e37, Ordering::Relaxed);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16
}
