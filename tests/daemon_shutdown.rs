//! A clean SIGTERM ends `shoal daemon` with status 0, every time: a manager with the docker
//! executor and a running service, stopped at varying moments after the service was created.
//! (A RocksDB database still open when `main` returns made the process abort in RocksDB's exit
//! handlers in about a fifth of such stops.)

mod agents_common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use agents_common::{containers, engine, require_engine, Node, IMAGE};

/// Stops: enough to catch a 20 % crash rate with 99.9 % confidence (0.8^30 < 0.002).
const STOPS: usize = 30;

#[test]
fn sigterm_exits_with_status_zero_every_time() {
    require_engine();
    let mut failures = Vec::new();
    for i in 0..STOPS {
        let mut node = Node::start(&format!("stop-{i}"));
        node.ok(&[
            "swarm",
            "init",
            "--listen-addr",
            &node.addr(),
            "--advertise-addr",
            &node.addr(),
        ]);
        node.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            "web",
            "--stop-grace-period",
            "1s",
            IMAGE,
            "sleep",
            "3600",
        ]);
        let service = node.ok(&["service", "inspect", "--format", "{{.ID}}", "web"]);
        // Spread the stops over the service's start: before, during and after its container
        // starts (0 to 290 ms after the create returned).
        std::thread::sleep(Duration::from_millis((i as u64 * 10) % 300));
        let status = node.terminate();
        if !status.success() {
            failures.push(format!(
                "stop {i}: exit code {:?}, signal {:?}\n{}",
                status.code(),
                status.signal(),
                node.log_tail(20)
            ));
        }
        for (id, _, _) in containers(service.trim(), true) {
            engine(&["rm", "-f", &id]);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {STOPS} stops did not exit cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
