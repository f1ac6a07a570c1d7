//! Free TCP ports for test daemons and published ports.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Ports each test process picks from: a block of its own, chosen by its pid.
const BLOCK: u32 = 24;

/// A free TCP port on loopback. Each test process picks from its own block below the kernel's
/// ephemeral range (32768 and up): a port the kernel hands out as "any free port" can be taken
/// again by an outgoing connection before the daemon binds it, and ports picked at random by
/// concurrent test processes can collide the same way.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20000 + (std::process::id() % 500) * BLOCK;
    for _ in 0..2 * BLOCK {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    // The whole block is in use: any port the kernel has free.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
