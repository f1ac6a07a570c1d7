//! A GitOps commit whose rollout fails (an image that cannot be pulled, on a real Docker
//! Engine) is rolled back by the update supervisor and reported on the source as Degraded with
//! the commit and the reason; the next good commit recovers.

mod agents_common;
mod gitops_common;

use std::path::Path;
use std::time::Duration;

use agents_common::{require_engine, wait_for, Swarm};
use gitops_common::{condition, git, shoal};
use serde_json::Value;

fn commit(dir: &Path, compose: &str, message: &str) -> String {
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    gitops_common::commit(dir, message)
}

fn source(socket: &Path) -> Value {
    let (ok, out) = shoal(socket, &["gitops", "inspect", "ro", "-o", "json"]);
    assert!(ok, "{out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn compose(image: &str, mode: &str) -> String {
    format!(
        r#"
services:
  app:
    image: {image}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    environment:
      MODE: "{mode}"
    deploy:
      replicas: 1
      update_config:
        failure_action: rollback
        monitor: 2s
      rollback_config:
        monitor: 1s
"#
    )
}

#[test]
fn a_commit_whose_rollout_fails_degrades_the_source_with_the_commit_and_the_next_recovers() {
    require_engine();
    let swarm = Swarm::start("gitroll", 1, 0);
    let socket = swarm.manager().socket();
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    let c1 = commit(repo.path(), &compose("shoal-test/busybox:1", "one"), "good");
    let repo_arg = repo.path().to_str().unwrap();
    let (ok, out) = shoal(
        &socket,
        &[
            "gitops",
            "add",
            "ro",
            "--repo",
            repo_arg,
            "--ref",
            "main",
            "--interval",
            "1s",
        ],
    );
    assert!(ok, "{out}");
    let mut last = Value::Null;
    let mut wait = |what: &str, ok: &dyn Fn(&Value) -> bool| {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(Duration::from_secs(120), what, || {
                last = source(&socket);
                ok(&last).then_some(())
            })
        }));
        assert!(found.is_ok(), "{what}: {last:#}");
        last.clone()
    };
    wait("the first commit Ready", &|s| {
        s["Status"]["LastAppliedCommit"] == c1.as_str() && condition(s, "Ready")["Status"] == true
    });

    let c2 = commit(
        repo.path(),
        &compose("shoal-test/never-built:1", "two"),
        "an image that does not exist",
    );
    let s = wait("Degraded by the failed rollout", &|s| {
        s["Status"]["LastAppliedCommit"] == c2.as_str()
            && condition(s, "Degraded")["Status"] == true
    });
    let degraded = condition(&s, "Degraded");
    let message = degraded["Message"].as_str().unwrap();
    assert!(message.contains(&c2[..12]), "{message}");
    assert!(message.contains("RolledBack"), "{message}");
    assert_eq!(degraded["Reason"], "StackDegraded", "{s:#}");
    // The service runs the image of the last good spec again.
    let (ok, out) = shoal(&socket, &["history", "ro", "-o", "json"]);
    assert!(ok, "{out}");
    assert!(out.contains("RolledBack"), "{out}");

    let c3 = commit(
        repo.path(),
        &compose("shoal-test/busybox:1", "three"),
        "good again",
    );
    wait("the next good commit recovers", &|s| {
        s["Status"]["LastAppliedCommit"] == c3.as_str()
            && condition(s, "Ready")["Status"] == true
            && condition(s, "Degraded")["Status"] == false
    });
}
