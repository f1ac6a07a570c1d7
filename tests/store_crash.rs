//! Crash safety of the replicated store, with real processes: a manager is killed with SIGKILL
//! while a client streams writes; after it restarts, every write that was acknowledged is there,
//! on every manager.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn create_config(socket: &std::path::Path, name: &str) -> bool {
    let body = serde_json::json!({"Name": name, "Labels": {}, "Data": "aGVsbG8="}).to_string();
    let (status, _) = curl_raw(
        socket,
        "POST",
        "/configs/create",
        Some(body.as_bytes()),
        Some("application/json"),
    );
    status == 201
}

fn config_names(d: &Daemon) -> BTreeSet<String> {
    let (status, body) = d.curl("GET", "/configs", None);
    if status != 200 {
        return BTreeSet::new();
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Spec"]["Name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn acknowledged_writes_survive_a_killed_leader_and_its_restart() {
    let mut a = swarm("crash-a");
    let token = a
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let b = Daemon::start("crash-b");
    let c = Daemon::start("crash-c");
    for d in [&b, &c] {
        let out = d.join(&a, &token);
        assert!(out.ok, "join failed: {}", out.stderr);
    }
    wait_for(Duration::from_secs(20), "three managers", || {
        (a.lines(&["node", "ls", "-q"]).len() == 3).then_some(())
    });

    // A client streams writes through manager C while the leader (A, which initialised the swarm
    // and still leads) is killed.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let acked = acked.clone();
        let stop = stop.clone();
        let socket = c.socket.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{i:04}");
                if create_config(&socket, &name) {
                    acked.lock().unwrap().push(name);
                }
                i += 1;
            }
        })
    };
    wait_for(Duration::from_secs(30), "40 acknowledged writes", || {
        (acked.lock().unwrap().len() >= 40).then_some(())
    });
    let leader = c.ok(&[
        "node",
        "ls",
        "--filter",
        "role=manager",
        "--format",
        "{{.Hostname}} {{.ManagerStatus}}",
    ]);
    assert!(
        leader.lines().any(|l| l == "crash-a Leader"),
        "the killed manager is the leader:\n{leader}"
    );
    a.kill9();
    let at_kill = acked.lock().unwrap().len();
    wait_for(
        Duration::from_secs(30),
        "writes to resume after the leader was killed",
        || (acked.lock().unwrap().len() >= at_kill + 40).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() >= 80);

    a.restart();
    for d in [&a, &b, &c] {
        let have = wait_for(
            Duration::from_secs(30),
            &format!("{} to have every acknowledged write", d.hostname),
            || {
                let names = config_names(d);
                acked.is_subset(&names).then_some(names)
            },
        );
        let missing: Vec<_> = acked.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "{} lost acknowledged writes: {missing:?}",
            d.hostname
        );
    }
}
