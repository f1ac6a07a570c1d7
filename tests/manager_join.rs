//! Managers joining a swarm whose store holds 100 MiB (256 configs of 400 KiB, as the issue
//! that asked for this measured): each new manager catches up as a learner before it votes,
//! so the first manager keeps its leadership and answers every write meanwhile, and all three
//! end up holding the same objects.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::*;

const CONFIG_BYTES: usize = 400 * 1024;

/// How many configs: 256 (100 MiB), or as many as `SHOAL_JOIN_TEST_MB` asks for.
fn config_count() -> usize {
    std::env::var("SHOAL_JOIN_TEST_MB").map_or(256, |mb| {
        mb.parse::<usize>().expect("SHOAL_JOIN_TEST_MB is a number") * (1 << 20) / CONFIG_BYTES
    })
}

fn token(d: &Daemon, role: &str) -> String {
    d.ok(&["swarm", "join-token", "-q", role])
        .trim()
        .to_string()
}

/// Creates the configs through the API (incompressible data).
fn fill(d: &Daemon) {
    for i in 0..config_count() {
        let mut data = vec![0u8; CONFIG_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut data);
        let body = serde_json::json!({
            "Name": format!("big-{i}"),
            "Data": base64::engine::general_purpose::STANDARD.encode(&data),
        });
        let (status, out) = d.curl(
            "POST",
            "/v1.41/configs/create",
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(status, 201, "creating config {i}: {out}");
    }
}

/// The leader's host name as `m` sees it.
fn leader(m: &Daemon) -> Option<String> {
    m.lines(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
        .into_iter()
        .find(|l| l.ends_with(" Leader"))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
}

/// Every config's id and version on `d`, sorted: equal on two managers when they hold the same
/// state.
fn configs(d: &Daemon) -> Vec<String> {
    let list = d.get_json("/v1.41/configs");
    let mut v: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| format!("{}@{}", c["ID"], c["Version"]["Index"]))
        .collect();
    v.sort();
    v
}

#[test]
fn managers_join_a_100_mib_swarm_without_it_losing_its_leader() {
    let m1 = Daemon::start("j1");
    m1.init_swarm();
    fill(&m1);
    let manager_token = token(&m1, "manager");

    // Small writes to the first manager all along.
    let stop = Arc::new(AtomicBool::new(false));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let (stop, errors, socket) = (stop.clone(), errors.clone(), m1.socket.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = serde_json::json!({"Name": format!("small-{n}"), "Data": "eA=="});
                let (status, out) = curl_raw(
                    &socket,
                    "POST",
                    "/v1.41/configs/create",
                    Some(body.to_string().as_bytes()),
                    Some("application/json"),
                );
                if status != 201 {
                    errors.lock().unwrap().push(format!("{status} {out}"));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            n
        })
    };

    let m2 = Daemon::start("j2");
    let m3 = Daemon::start("j3");
    for m in [&m2, &m3] {
        let out = m.join(&m1, &manager_token);
        if !out.ok {
            // A join that outlasts the API's answer continues in the background and completes.
            assert!(
                out.stderr.contains("will continue in the background"),
                "{}: join failed: {}",
                m.hostname,
                out.stderr
            );
        }
        wait_for(
            Duration::from_secs(120),
            &format!("{} is a manager", m.hostname),
            || {
                let info = m.ok(&[
                    "info",
                    "--format",
                    "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
                ]);
                (info.trim() == "active true").then_some(())
            },
        );
        assert_eq!(
            leader(&m1).as_deref(),
            Some("j1"),
            "the first manager lost its leadership while {} joined",
            m.hostname
        );
    }
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    let errors = errors.lock().unwrap().clone();
    assert!(writes > 0);
    assert!(
        errors.is_empty(),
        "writes to the first manager failed while managers joined: {errors:?}"
    );
    let reachable = m1.lines(&["node", "ls", "--format", "{{.ManagerStatus}}"]);
    assert_eq!(
        reachable.iter().filter(|s| !s.is_empty()).count(),
        3,
        "{reachable:?}"
    );
    let want = configs(&m1);
    assert!(want.len() > config_count());
    for m in [&m2, &m3] {
        wait_for(
            Duration::from_secs(30),
            &format!("{} holds the same configs", m.hostname),
            || (configs(m) == want).then_some(()),
        );
    }
}
