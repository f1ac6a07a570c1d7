//! Recovery of a swarm that lost its quorum: two of three managers destroyed, the third
//! becomes the only manager with `--force-new-cluster` (on the running daemon through the
//! Docker API, or as the daemon starts) and keeps every service, secret and config, while the
//! workers' tasks keep running.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{wait_for, Daemon};

/// Three managers and a worker, a service on the worker, a secret and a config.
struct Swarm {
    a: Daemon,
    b: Daemon,
    c: Daemon,
    w: Daemon,
}

fn swarm(prefix: &str) -> Swarm {
    let a = common::swarm(&format!("{prefix}-a"));
    let b = Daemon::start(&format!("{prefix}-b"));
    let c = Daemon::start(&format!("{prefix}-c"));
    let w = Daemon::start(&format!("{prefix}-w"));
    let manager_token = a.ok(&["swarm", "join-token", "-q", "manager"]);
    let worker_token = a.ok(&["swarm", "join-token", "-q", "worker"]);
    for m in [&b, &c] {
        let out = m.join(&a, manager_token.trim());
        assert!(out.ok, "{}", out.stderr);
    }
    let out = w.join(&a, worker_token.trim());
    assert!(out.ok, "{}", out.stderr);
    wait_for(Duration::from_secs(30), "four ready nodes", || {
        let s = a.lines(&["node", "ls", "--format", "{{.Status}}"]);
        (s.len() == 4 && s.iter().all(|l| l == "Ready")).then_some(())
    });
    let w_id = w.node_id();
    a.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "app",
        "--replicas",
        "3",
        "--constraint",
        &format!("node.id=={w_id}"),
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    a.docker_stdin(&["secret", "create", "token", "-"], Some(b"s3cret"));
    a.docker_stdin(&["config", "create", "conf", "-"], Some(b"x=1"));
    wait_for(Duration::from_secs(30), "three running tasks", || {
        (running(&a).len() == 3).then_some(())
    });
    Swarm { a, b, c, w }
}

fn running(d: &Daemon) -> BTreeSet<String> {
    d.lines(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}} {{.CurrentState}}",
        "app",
    ])
    .into_iter()
    .filter(|l| l.contains("Running"))
    .map(|l| l.split(' ').next().unwrap().to_string())
    .collect()
}

/// Kills two managers for good and checks the survivor has no quorum.
fn lose_quorum(s: &mut Swarm) {
    s.b.kill9();
    s.c.kill9();
    let _ = std::fs::remove_dir_all(s.b.dir().join("data"));
    let _ = std::fs::remove_dir_all(s.c.dir().join("data"));
    wait_for(Duration::from_secs(30), "the quorum lost", || {
        let out = s.a.docker(&[
            "service",
            "create",
            "-d",
            "--name",
            "probe",
            "shoal-test/busybox:1",
        ]);
        (!out.ok).then_some(())
    });
}

/// What a recovered swarm must have: its objects, the workers' tasks untouched, new work
/// accepted, the lost managers recorded as workers.
fn check_recovered(s: &Swarm, before: &BTreeSet<String>) {
    wait_for(Duration::from_secs(30), "writes accepted again", || {
        s.a.docker(&[
            "service",
            "create",
            "-d",
            "--name",
            "after",
            "shoal-test/busybox:1",
            "sleep",
            "100000",
        ])
        .ok
        .then_some(())
    });
    assert_eq!(
        s.a.lines(&["secret", "ls", "--format", "{{.Name}}"]),
        ["token"]
    );
    assert_eq!(
        s.a.lines(&["config", "ls", "--format", "{{.Name}}"]),
        ["conf"]
    );
    // The probe that found the quorum lost was never acknowledged; the survivor had it in its
    // log, and a recovery commits what the survivor has (as etcd's does).
    let mut services = s.a.lines(&["service", "ls", "--format", "{{.Name}}"]);
    services.retain(|n| n != "probe");
    services.sort();
    assert_eq!(services, ["after", "app"]);
    assert_eq!(&running(&s.a), before, "the worker's tasks were replaced");
    let w_id = s.w.node_id();
    wait_for(
        Duration::from_secs(30),
        "the worker back with the survivor",
        || {
            let st =
                s.a.ok(&["node", "inspect", &w_id, "--format", "{{.Status.State}}"]);
            (st.trim() == "ready").then_some(())
        },
    );
    let managers = s.a.lines(&["node", "ls", "--filter", "role=manager", "-q"]);
    assert_eq!(managers.len(), 1, "{managers:?}");
    assert_eq!(&running(&s.a), before, "the worker's tasks were replaced");
}

#[test]
fn swarm_init_force_new_cluster_recovers_the_swarm_from_one_manager() {
    let mut s = swarm("fnc-api");
    let before = running(&s.a);
    lose_quorum(&mut s);
    let out = s.a.ok(&["swarm", "init", "--force-new-cluster"]);
    assert!(out.contains("Swarm initialized"), "{out}");
    check_recovered(&s, &before);
}

#[test]
fn the_daemon_flag_recovers_the_swarm_as_it_starts() {
    let mut s = swarm("fnc-flag");
    let before = running(&s.a);
    lose_quorum(&mut s);
    s.a.restart_with_extra_args(&["--force-new-cluster"]);
    check_recovered(&s, &before);
    // Once recovered, a plain restart keeps the single-manager swarm.
    s.a.restart_with_extra_args(&[]);
    wait_for(Duration::from_secs(30), "the manager back", || {
        s.a.docker(&["service", "ls"]).ok.then_some(())
    });
    assert_eq!(&running(&s.a), &before);
}
