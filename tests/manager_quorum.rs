//! Changes of managers that would leave the swarm one failure from losing its quorum are
//! refused unless asked for, a second manager is warned about as dockerd does, and every
//! change of the store's membership is an event of its node.

mod common;

use std::time::Duration;

use common::*;

fn manager_token(d: &Daemon) -> String {
    d.ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string()
}

/// `docker info`'s warnings (dockerd prints them on stderr).
fn info_warnings(d: &Daemon) -> String {
    let out = d.docker(&["info"]);
    assert!(out.ok, "docker info: {}", out.stderr);
    out.stderr
}

/// The reachability `m` shows for `hostname`'s manager status.
fn manager_status(m: &Daemon, hostname: &str) -> String {
    m.lines(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
        .into_iter()
        .find_map(|l| {
            l.strip_prefix(&format!("{hostname} "))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

fn join_manager(d: &Daemon, m1: &Daemon, token: &str) {
    let out = d.join(m1, token);
    assert!(out.ok, "{} could not join: {}", d.hostname, out.stderr);
    wait_for(
        Duration::from_secs(60),
        &format!("{} is a manager", d.hostname),
        || {
            (d.ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"])
                .trim()
                == "true")
                .then_some(())
        },
    );
}

#[test]
fn manager_changes_keep_a_quorum_margin_and_are_events() {
    let m1 = Daemon::start("q1");
    m1.init_swarm();
    let token = manager_token(&m1);
    assert!(!info_warnings(&m1).contains("two-manager"));

    // A second manager is allowed, as dockerd allows it, and `docker info` warns.
    let m2 = Daemon::start("q2");
    join_manager(&m2, &m1, &token);
    wait_for(Duration::from_secs(10), "the two-manager warning", || {
        info_warnings(&m1)
            .contains("WARNING: Running Swarm in a two-manager configuration")
            .then_some(())
    });

    let mut m3 = Daemon::start("q3");
    join_manager(&m3, &m1, &token);
    wait_for(Duration::from_secs(10), "no two-manager warning", || {
        (!info_warnings(&m1).contains("two-manager")).then_some(())
    });

    // Three to two managers leaves no margin: refused, and nothing changes.
    let err = m1.fails(&["node", "demote", "q3"]);
    assert!(
        err.contains("demoting node q3 refused")
            && err.contains("lose its quorum at the next manager failure")
            && err.contains("promote another node first"),
        "{err}"
    );
    // A manager that does not lead asks the leader, which knows who is reachable.
    let err = m2.fails(&["node", "demote", "q3"]);
    assert!(err.contains("demoting node q3 refused"), "{err}");
    assert_eq!(
        m1.ok(&["node", "inspect", "q3", "--format", "{{.Spec.Role}}"])
            .trim(),
        "manager"
    );

    // With one of three managers down, a fourth would need every live one: refused.
    m3.kill9();
    wait_for(Duration::from_secs(20), "q3 unreachable", || {
        (manager_status(&m1, "q3") == "Unreachable").then_some(())
    });
    let m4 = Daemon::start("q4");
    let out = m4.join(&m1, &token);
    assert!(!out.ok, "a fourth manager joined with one of three down");
    assert!(
        out.stderr.contains("a manager cannot join now")
            && out.stderr.contains("1 of the 3 managers are unreachable"),
        "{}",
        out.stderr
    );
    // Demoting a live manager now would lose the quorum: refused, force or not.
    let q2 = m1.ok(&[
        "node",
        "inspect",
        "q2",
        "--format",
        "{{.ID}} {{.Version.Index}}",
    ]);
    let (q2_id, q2_version) = q2.trim().split_once(' ').unwrap();
    let (status, body) = m1.curl(
        "POST",
        &format!("/v1.41/nodes/{q2_id}/update?version={q2_version}&force=1"),
        Some(br#"{"Role":"worker","Availability":"active"}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("this would result in a loss of quorum"),
        "{body}"
    );

    // Demoting the one that is down keeps what margin there is: allowed. The CLI reads the
    // node and writes it back with its version; the swarm marks the dead node down meanwhile,
    // so wait for that first, and read again if it still raced (as a user would retry).
    wait_for(Duration::from_secs(30), "q3 down", || {
        let st = m1.ok(&["node", "inspect", "q3", "--format", "{{.Status.State}}"]);
        (st.trim() == "down").then_some(())
    });
    wait_for(Duration::from_secs(10), "q3's demotion accepted", || {
        let out = m1.docker(&["node", "demote", "q3"]);
        assert!(
            out.ok || out.stderr.contains("update out of sequence"),
            "{}",
            out.stderr
        );
        out.ok.then_some(())
    });
    wait_for(Duration::from_secs(30), "q3 demoted", || {
        (manager_status(&m1, "q3").is_empty()).then_some(())
    });
    wait_for(
        Duration::from_secs(10),
        "the two-manager warning again",
        || info_warnings(&m1).contains("two-manager").then_some(()),
    );

    // Every membership change of q2 and q3 was an event of their nodes.
    let events = m1.lines(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 1
        ),
        "--filter",
        "type=node",
        "--format",
        "{{.Actor.Attributes.name}} {{index .Actor.Attributes \"raft.old\"}}>{{index .Actor.Attributes \"raft.new\"}}",
    ]);
    for want in [
        "q2 none>learner",
        "q2 learner>voter",
        "q3 none>learner",
        "q3 learner>voter",
        "q3 voter>none",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.ends_with(want) && e.starts_with(&want[..2])),
            "no event {want:?} in {events:#?}"
        );
    }
}
