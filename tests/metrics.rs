//! `shoal daemon --metrics-addr`: the node's metrics in the Prometheus text format. A scrape
//! during a rolling update sees the reconcile, placement and task-state series move, and
//! `promtool check metrics` (Debian's `prometheus` package, installed by the set-up) accepts
//! every scrape.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_for, Daemon};

/// One scrape of `GET /metrics` on `port`, checked by promtool.
fn scrape(port: u16) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            &format!("http://127.0.0.1:{port}/metrics"),
        ])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    body.to_string()
}

/// Every sample of `text` (name with labels -> value).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample whose name (with labels) starts with `prefix`.
fn total(s: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn a_scrape_during_a_rolling_update_sees_reconciles_placements_and_task_states_move() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with_args("metrics", &["--executor", "sim", "--metrics-addr", &addr]);
    // Before the swarm: only the node's own series.
    let before = samples(&scrape(port));
    assert_eq!(before.get("shoal_node_is_manager"), Some(&0.0));
    d.init_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "4",
        "--update-parallelism",
        "1",
        "--update-delay",
        "300ms",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    let first = wait_for(Duration::from_secs(30), "four running tasks", || {
        let s = samples(&scrape(port));
        (s.get("shoal_tasks{state=\"running\"}") == Some(&4.0)).then_some(s)
    });
    assert_eq!(first.get("shoal_node_is_manager"), Some(&1.0));
    assert_eq!(first.get("shoal_raft_is_leader"), Some(&1.0));
    assert_eq!(first.get("shoal_dispatcher_sessions"), Some(&1.0));
    assert!(first["shoal_scheduler_placements_total"] >= 4.0);
    assert!(first["shoal_task_scheduling_delay_seconds_count"] >= 4.0);
    assert!(first["shoal_store_objects{kind=\"task\"}"] >= 4.0);
    assert!(total(&first, "shoal_controller_reconcile_duration_seconds_count") > 0.0);

    d.ok(&["service", "update", "-d", "--env-add", "ROLL=1", "web"]);
    // Scrapes while the update rolls, one task at a time.
    let mut during = Vec::new();
    let last = wait_for(Duration::from_secs(60), "the update rolled out", || {
        let s = samples(&scrape(port));
        during.push(s.clone());
        (s["shoal_scheduler_placements_total"] >= first["shoal_scheduler_placements_total"] + 4.0
            && s.get("shoal_tasks{state=\"running\"}") == Some(&4.0)
            && s["shoal_tasks{state=\"shutdown\"}"] >= 4.0)
            .then_some(s)
    });
    assert!(
        during.len() >= 2,
        "the rollout was over before a second scrape"
    );
    assert!(
        total(&last, "shoal_controller_reconcile_duration_seconds_count")
            > total(&first, "shoal_controller_reconcile_duration_seconds_count"),
        "no reconcile counted during the rollout"
    );
    assert!(last["shoal_task_scheduling_delay_seconds_count"] >= 8.0);
    assert!(
        last["shoal_store_txn_duration_seconds_count"]
            > first["shoal_store_txn_duration_seconds_count"]
    );
    assert!(last["shoal_raft_applied_index"] > first["shoal_raft_applied_index"]);
    // Some scrape saw the rollout half-way: a new task not yet running, or an old one stopping.
    let moved = during.iter().any(|s| {
        s.get("shoal_tasks{state=\"running\"}")
            .copied()
            .unwrap_or(0.0)
            < 4.0
            || s["shoal_tasks{state=\"shutdown\"}"] > 0.0
                && s["shoal_tasks{state=\"shutdown\"}"] < 4.0
    });
    assert!(moved, "no scrape saw the rollout in progress");
}

#[test]
fn a_metrics_address_that_cannot_be_bound_stops_the_daemon_before_it_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["daemon", "--executor", "sim", "--metrics-addr", &addr])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--api-socket")
        .arg(dir.path().join("api.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-addr"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "the data dir was touched"
    );
}
