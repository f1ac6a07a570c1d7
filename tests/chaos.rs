//! The chaos suite's CI subset: `shoal chaos run` starts real manager processes, kills,
//! pauses and restarts them while clients read and compare-and-set through the Docker API,
//! and checks the history for linearizability, lost writes, diverging replicas and
//! inconsistent watches. Every scenario of the subset must pass, and the report must have the
//! documented shape. Each oracle must also fail when the system is broken on purpose
//! (`--mutation`, debug builds only).

mod common;

use std::process::Command;

use serde_json::Value;

/// `curl` on the daemon's socket with one extra header: status and body.
fn get_with(d: &common::Daemon, method: &str, path: &str, header: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "30",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ])
        .arg("--unix-socket")
        .arg(&d.socket)
        .args(["-H", header])
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn linearizable_reads_are_asked_for_with_a_header_and_bad_values_are_refused() {
    let d = common::swarm("chaos-header");
    let (status, body) = get_with(&d, "GET", "/secrets", "X-Shoal-Consistency: linearizable");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_with(&d, "GET", "/nodes", "X-Shoal-Consistency: serializable");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_with(&d, "GET", "/secrets", "X-Shoal-Consistency: strong");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("not a consistency") && body.contains("linearizable"),
        "{body}"
    );
    let (status, body) = get_with(
        &d,
        "POST",
        "/secrets/create",
        "X-Shoal-Consistency: linearizable",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("GET requests only"), "{body}");
}

#[test]
fn the_ci_subset_passes_every_oracle() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["chaos", "run", "--seed", "7", "--duration", "8s", "--json"])
        .output()
        .expect("shoal chaos run starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line is one JSON object ({e}): {stdout}\n{stderr}"));
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert!(scenarios.len() >= 18, "{report:#}");
    let names: Vec<&str> = scenarios
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for must in [
        "leader-kill",
        "quorum-loss",
        "pause-leader",
        "failpoints",
        "leader-isolated",
        "membership-changes",
        "disk-full",
        "agent-partition",
        "corrupt-wal",
        "clock-skew",
        "power-loss",
    ] {
        assert!(names.contains(&must), "{must} is in the subset: {names:?}");
    }
    for s in scenarios {
        for field in [
            "name",
            "ok",
            "operations",
            "failures",
            "linearizable",
            "unavailable_ms",
            "recovery_ms",
        ] {
            assert!(s.get(field).is_some(), "{field} missing: {s:#}");
        }
        assert_eq!(s["ok"], true, "scenario failed: {s:#}");
        assert_eq!(s["linearizable"], "true", "{s:#}");
        assert_eq!(s["watch_consistent"], true, "{s:#}");
        assert!(
            s["operations"].as_u64().unwrap() > 50,
            "the workload ran: {s:#}"
        );
    }
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn an_unknown_scenario_is_refused_with_the_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["chaos", "run", "--scenario", "nope"])
        .output()
        .expect("shoal runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no scenario nope") && err.contains("leader-kill"),
        "{err}"
    );
}

/// Runs one scenario against managers broken on purpose; its report.
fn broken_run(scenario: &str, mutation: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["chaos", "run", "--scenario", scenario, "--seed", "2"])
        .args(["--duration", "10s", "--mutation", mutation, "--json"])
        .output()
        .expect("shoal chaos run starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "the last line is one JSON object ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(!out.status.success(), "a broken system must fail the run");
    let s = report["scenarios"][0].clone();
    assert_eq!(s["ok"], false, "{s:#}");
    assert_eq!(s["mutation"], mutation, "{s:#}");
    s
}

#[test]
fn each_oracle_catches_the_system_broken_on_purpose() {
    // A manager that answers a linearizable read from its own replica while paused behind
    // the others: stale reads, which only the linearizability checker sees.
    let s = broken_run("pause-follower", "stale-reads");
    assert_eq!(s["linearizable"], "false", "{s:#}");
    assert!(s["linearizability_report"].as_str().is_some(), "{s:#}");

    // Writes acknowledged and never committed: the durability oracle finds them missing from
    // every manager's history.
    let s = broken_run("leader-kill", "ack-without-commit");
    let lost = s["lost_acknowledged_writes"].as_array().unwrap();
    assert!(
        lost.iter()
            .any(|l| l.as_str().unwrap().contains("no manager's history has it")),
        "{s:#}"
    );

    // One replica applying updates differently: the replicas' digests differ.
    let s = broken_run("minority-kills", "diverge");
    assert_eq!(s["replicas_identical"], false, "{s:#}");

    // One manager's watch leaving changes out: the watch oracle sees it differ and resume
    // wrongly.
    let s = broken_run("leader-kill", "skip-watch-event");
    assert_eq!(s["watch_consistent"], false, "{s:#}");
    assert_eq!(s["linearizable"], "true", "only the watch is broken: {s:#}");

    // The orchestrator running one task too many: the task oracle never sees the service
    // converge.
    let s = broken_run("burst", "extra-replica");
    assert!(s["tasks_converged_ms"].is_null(), "{s:#}");
    assert!(
        s["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap().contains("did not converge")),
        "{s:#}"
    );
}

/// Apart from the others (its broken cluster takes a minute to be judged): log entries
/// acknowledged before they are synced are taken by a power cut under every manager at once.
/// Either the durability oracle finds them gone, or the managers never come back together
/// (or never start): their Raft logs lost entries they had acknowledged to each other, which
/// Raft cannot recover from.
#[test]
fn a_power_cut_catches_writes_acknowledged_before_they_were_synced() {
    let s = broken_run("power-loss", "skip-fsync");
    let lost = s["lost_acknowledged_writes"]
        .as_array()
        .is_some_and(|l| !l.is_empty());
    // The run stops with that as its error, or goes on and lists it among its violations.
    let says_stuck = |v: &Value| {
        v.as_str()
            .is_some_and(|e| e.contains("did not converge") || e.contains("did not answer"))
    };
    let stuck = says_stuck(&s["error"])
        || s["violations"]
            .as_array()
            .is_some_and(|v| v.iter().any(says_stuck));
    assert_eq!(s["ok"], false, "{s:#}");
    assert!(lost || stuck, "{s:#}");
}

#[test]
fn an_unknown_mutation_is_refused_with_the_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["chaos", "run", "--scenario", "burst", "--mutation", "nope"])
        .output()
        .expect("shoal runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such mutation") && err.contains("stale-reads"),
        "{err}"
    );
}
