//! Free TCP ports for test daemons and published ports.

/// A free TCP port on loopback, below the kernel's ephemeral range and from a block of this
/// test process's own ([`shoal::bench::stats::restartable_port`]): a port the kernel hands out
/// as "any free port" can be taken by an outgoing connection before the daemon binds it, and
/// ports picked at random by concurrent test processes can collide the same way.
pub fn free_port() -> u16 {
    shoal::bench::stats::restartable_port(20000).expect("a free TCP port")
}
