//! The multi-host harness (`shoal::bench::hosts`) for the tests: hosts that run this build's
//! `shoal`.

pub use shoal::bench::hosts::{wait_for, Host, Hosts, IMAGE};

/// `n` hosts named `<prefix>1..n`, each with a running engine.
pub fn start(prefix: &str, n: usize) -> Hosts {
    Hosts::start(prefix, n, std::path::Path::new(env!("CARGO_BIN_EXE_shoal")))
}
