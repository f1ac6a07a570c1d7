//! `shoal bench store --json`: its last line is one JSON object with the figures the README
//! quotes, and `--compare-encryption` adds the same workload's figures with sealing at rest off.
//! The figures are not judged (speed is for the bench itself), only their presence and sense.

use std::process::Command;

use serde_json::Value;

/// Runs `shoal bench store --json` with short runs and `extra` arguments; returns its last line.
fn bench_store(extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "bench",
            "store",
            "--json",
            "--managers",
            "3",
            "--clients",
            "8",
        ])
        .args(["--duration", "1"])
        .arg("--dir")
        .arg(dir.path())
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shoal bench store failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing or not a number in {report}"))
}

fn assert_sealed_run_figures(report: &Value) {
    assert_eq!(report["bench"], "store");
    assert_eq!(report["managers"], 3);
    assert_eq!(report["clients"], 8);
    assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
    assert!(number(report, "ops_per_s") > 0.0, "{report}");
    assert!(
        number(report, "p99_ms") >= number(report, "p50_ms"),
        "{report}"
    );
    for field in [
        "duration_s",
        "max_ms",
        "fsync_p50_ms",
        "errors",
        "value_bytes",
    ] {
        number(report, field);
    }
}

#[test]
fn the_report_compares_the_same_workload_with_and_without_sealing_at_rest() {
    let report = bench_store(&["--compare-encryption"]);
    assert_sealed_run_figures(&report);
    let sealed = number(&report, "sealed_ops_per_s");
    let clear = number(&report, "unsealed_ops_per_s");
    assert_eq!(sealed, number(&report, "ops_per_s"), "{report}");
    assert!(clear > 0.0, "{report}");
    assert!(
        number(&report, "unsealed_p99_ms") >= number(&report, "unsealed_p50_ms"),
        "{report}"
    );
    number(&report, "unsealed_errors");
    let cost = number(&report, "encryption_cost_pct");
    let expected = (clear - sealed) / clear * 100.0;
    assert!(
        (cost - expected).abs() < 0.1,
        "encryption_cost_pct {cost} is not (unsealed - sealed) / unsealed: {report}"
    );
}

#[test]
fn without_the_comparison_the_report_keeps_its_fields_and_adds_none() {
    let report = bench_store(&[]);
    assert_sealed_run_figures(&report);
    for field in [
        "sealed_ops_per_s",
        "unsealed_ops_per_s",
        "encryption_cost_pct",
    ] {
        assert!(report.get(field).is_none(), "{field} in {report}");
    }
}

#[test]
fn managers_as_processes_in_namespaces_of_their_own_report_the_same_figures() {
    let report = bench_store(&["--processes"]);
    assert_sealed_run_figures(&report);
    assert_eq!(report["processes"], true, "{report}");
    assert_eq!(report["client_at"], "spread", "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

#[test]
fn clients_can_write_through_the_followers_in_either_mode() {
    for extra in [
        &["--client-at", "follower"][..],
        &["--client-at", "follower", "--processes"],
    ] {
        let report = bench_store(extra);
        assert_sealed_run_figures(&report);
        assert_eq!(report["client_at"], "follower", "{report}");
    }
}

#[test]
fn options_that_cannot_work_together_are_refused_with_the_reason() {
    for (args, says) in [
        (
            &["--processes", "--leader-kills", "1", "--managers", "3"][..],
            "chaos run --scenario leader-kill",
        ),
        (
            &["--client-at", "follower", "--managers", "1"][..],
            "at least 2 managers",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["bench", "store", "--json", "--duration", "1"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn the_report_compares_the_binary_encoding_with_json_on_the_same_workload() {
    for extra in [
        &["--compare-encoding"][..],
        &["--compare-encoding", "--processes"],
    ] {
        let report = bench_store(extra);
        assert_sealed_run_figures(&report);
        assert_eq!(report["encoding"], "binary", "{report}");
        let binary = number(&report, "binary_ops_per_s");
        let json = number(&report, "json_ops_per_s");
        assert_eq!(binary, number(&report, "ops_per_s"), "{report}");
        assert!(json > 0.0, "{report}");
        assert!(
            number(&report, "json_p99_ms") >= number(&report, "json_p50_ms"),
            "{report}"
        );
        let gain = number(&report, "encoding_gain_pct");
        let expected = (binary - json) / json * 100.0;
        assert!((gain - expected).abs() < 0.1, "{report}");
    }
}

#[test]
fn etcd_takes_the_same_workload_side_by_side_and_the_ratio_is_reported() {
    let report = bench_store(&["--compare-etcd"]);
    assert_sealed_run_figures(&report);
    let etcd = number(&report, "etcd_ops_per_s");
    assert!(etcd > 0.0, "{report}");
    assert_eq!(report["etcd_errors"], 0, "{report}");
    assert!(
        number(&report, "etcd_p99_ms") >= number(&report, "etcd_p50_ms"),
        "{report}"
    );
    let ratio = number(&report, "ratio_vs_etcd");
    let expected = number(&report, "ops_per_s") / etcd;
    assert!((ratio - expected).abs() < 0.01, "{report}");
}
