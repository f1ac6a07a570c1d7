//! Several `shoal daemon`s on loopback forming one swarm with `docker swarm join`, each with
//! its own data dir, API socket and swarm port. These start 3 to 5 daemons, so they are kept
//! few.

mod common;

use std::time::Duration;

use common::{wait_for, Daemon};

/// `docker node ls` on `d`: `(hostname, manager status)` per node, sorted by hostname.
fn node_table(d: &Daemon) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = d
        .lines(&["node", "ls", "--format", "{{.Hostname}}|{{.ManagerStatus}}"])
        .iter()
        .map(|l| {
            let (h, s) = l.split_once('|').unwrap_or((l, ""));
            (h.to_string(), s.to_string())
        })
        .collect();
    rows.sort();
    rows
}

fn token(d: &Daemon, role: &str) -> String {
    d.ok(&["swarm", "join-token", "-q", role])
        .trim()
        .to_string()
}

#[test]
fn three_managers_and_two_workers_join_and_agree_on_one_leader() {
    let m1 = Daemon::start("m1");
    m1.init_swarm();
    let manager_token = token(&m1, "manager");
    let worker_token = token(&m1, "worker");

    let m2 = Daemon::start("m2");
    let m3 = Daemon::start("m3");
    let w1 = Daemon::start("w1");
    let w2 = Daemon::start("w2");

    // A token with the swarm's CA digest but a wrong secret is refused.
    let (head, _) = worker_token.rsplit_once('-').unwrap();
    let wrong = format!("{head}-{}", "0".repeat(25));
    let out = w2.join(&m1, &wrong);
    assert!(!out.ok, "a wrong token joined: {}", out.stdout);
    assert!(
        out.stderr.contains(
            "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster"
        ),
        "{}",
        out.stderr
    );
    assert!(w2.ok(&["info"]).contains("Swarm: inactive"));

    for m in [&m2, &m3] {
        let out = m.join(&m1, &manager_token);
        assert!(out.ok, "{} join failed: {}", m.hostname, out.stderr);
        assert!(
            out.stdout
                .contains("This node joined a swarm as a manager."),
            "{}",
            out.stdout
        );
    }
    for w in [&w1, &w2] {
        let out = w.join(&m1, &worker_token);
        assert!(out.ok, "{} join failed: {}", w.hostname, out.stderr);
        assert!(
            out.stdout.contains("This node joined a swarm as a worker."),
            "{}",
            out.stdout
        );
    }

    for m in [&m1, &m2, &m3] {
        let table = wait_for(
            Duration::from_secs(30),
            &format!("all five nodes with their roles on {}", m.hostname),
            || {
                let t = node_table(m);
                let managers = t
                    .iter()
                    .filter(|(_, s)| s == "Leader" || s == "Reachable")
                    .count();
                (t.len() == 5 && managers == 3).then_some(t)
            },
        );
        let leaders: Vec<_> = table.iter().filter(|(_, s)| s == "Leader").collect();
        assert_eq!(leaders.len(), 1, "{}: {table:?}", m.hostname);
        assert_eq!(leaders[0].0, "m1", "{table:?}");
        for w in ["w1", "w2"] {
            assert!(
                table.iter().any(|(h, s)| h == w && s.is_empty()),
                "{w} should be a worker: {table:?}"
            );
        }
        let self_marked = m.ok(&["node", "ls"]);
        assert!(
            self_marked
                .lines()
                .any(|l| l.contains(" * ") && l.contains(&m.hostname)),
            "{self_marked}"
        );
    }
    // Workers cannot drive the cluster.
    let err = w1.fails(&["node", "ls"]);
    assert!(
        err.contains("Worker nodes can't be used to view or modify cluster state"),
        "{err}"
    );
    // Any manager serves the same services.
    m2.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "everywhere",
        "shoal-test/busybox:1",
    ]);
    let seen = wait_for(Duration::from_secs(10), "the service on m3", || {
        let names = m3.lines(&["service", "ls", "--format", "{{.Name}}"]);
        names.contains(&"everywhere".to_string()).then_some(names)
    });
    assert_eq!(seen, vec!["everywhere"]);

    // A worker that is up is only removed with --force.
    let w2_id = w2.node_id();
    let err = m1.fails(&["node", "rm", "w2"]);
    assert!(
        err.contains(&format!(
            "rpc error: code = FailedPrecondition desc = node {w2_id} is not down and can't be removed"
        )),
        "{err}"
    );
    assert_eq!(m1.ok(&["node", "rm", "--force", "w2"]).trim(), "w2");
    wait_for(Duration::from_secs(10), "four nodes on m3", || {
        (node_table(&m3).len() == 4).then_some(())
    });
}

/// Needs the role manager (controllers crate): demoting the leader hands leadership to another
/// manager and the old leader becomes a worker. Four managers, so that the three left still
/// survive a failure (from three to two the demotion is refused, see `manager_quorum.rs`).
#[test]
fn demoting_the_leader_moves_leadership() {
    let m1 = Daemon::start("l1");
    m1.init_swarm();
    let manager_token = token(&m1, "manager");
    let m2 = Daemon::start("l2");
    let m3 = Daemon::start("l3");
    let m4 = Daemon::start("l4");
    for m in [&m2, &m3, &m4] {
        let out = m.join(&m1, &manager_token);
        assert!(out.ok, "{} join failed: {}", m.hostname, out.stderr);
    }
    wait_for(Duration::from_secs(30), "four managers", || {
        let t = node_table(&m1);
        (t.iter()
            .filter(|(_, s)| s == "Leader" || s == "Reachable")
            .count()
            == 4)
            .then_some(())
    });

    let out = m1.ok(&["node", "demote", "l1"]);
    assert!(out.contains("Manager l1 demoted in the swarm."), "{out}");
    let table = wait_for(
        Duration::from_secs(60),
        "a new leader and l1 without manager status (needs the role manager)",
        || {
            let t = node_table(&m2);
            let leader = t.iter().find(|(_, s)| s == "Leader")?;
            let l1 = t.iter().find(|(h, _)| h == "l1")?;
            (leader.0 != "l1" && l1.1.is_empty()).then_some(t)
        },
    );
    assert_eq!(
        table.iter().filter(|(_, s)| s == "Leader").count(),
        1,
        "{table:?}"
    );
    let role = m2.ok(&["node", "inspect", "l1", "--format", "{{.Spec.Role}}"]);
    assert_eq!(role.trim(), "worker");
}

/// Needs the node side of promotion (a worker that sees its desired role become manager renews
/// its certificate as a manager, starts its store member and joins the Raft group) and the role
/// manager: a promoted worker becomes a reachable manager.
#[test]
fn promoting_a_worker_makes_it_a_manager() {
    let m = Daemon::start("p1");
    m.init_swarm();
    let w = Daemon::start("p2");
    let out = w.join(&m, &token(&m, "worker"));
    assert!(out.ok, "join failed: {}", out.stderr);
    let out = m.ok(&["node", "promote", "p2"]);
    assert!(
        out.contains("Node p2 promoted to a manager in the swarm."),
        "{out}"
    );
    let role = m.ok(&["node", "inspect", "p2", "--format", "{{.Spec.Role}}"]);
    assert_eq!(role.trim(), "manager");
    wait_for(
        Duration::from_secs(60),
        "p2 reachable as a manager (needs the node side of promotion)",
        || {
            node_table(&m)
                .iter()
                .any(|(h, s)| h == "p2" && s == "Reachable")
                .then_some(())
        },
    );
    // The node itself switches to its manager role once its join has been answered, a moment
    // after the leader counts it (as with dockerd, its API may refuse manager calls until then).
    let ls = wait_for(Duration::from_secs(20), "p2 answers as a manager", || {
        let out = w.docker(&["node", "ls"]);
        out.ok.then_some(out.stdout)
    });
    assert!(ls.contains("p1") && ls.contains("p2"), "{ls}");
}
