//! Failures with agents attached, on a swarm of three managers and two workers driving this
//! machine's Docker Engine (heartbeat period 2 s, so DOWN after 6 s and a 12 s grace after a
//! leader change), in sequence on one swarm:
//! 1. an agent restarts (kill -9, start again): it adopts its containers, no duplicate appears;
//! 2. the leader is killed (kill -9) and comes back: no node is marked DOWN, no task restarts;
//! 3. a worker is killed: its tasks run elsewhere within 20 s; when it returns, the containers
//!    of its superseded tasks are stopped.

mod agents_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use agents_common::{containers, require_engine, running_task_containers, wait_for, Swarm, IMAGE};

fn sessions_in_log(swarm: &Swarm, i: usize) -> usize {
    swarm.nodes[i]
        .log_tail(usize::MAX)
        .matches("agent: session established")
        .count()
}

fn running_ids(swarm: &Swarm, service: &str) -> BTreeSet<String> {
    swarm
        .running_tasks(service)
        .into_iter()
        .map(|t| t.id)
        .collect()
}

fn all_task_ids(swarm: &Swarm, service: &str) -> BTreeSet<String> {
    swarm.tasks(service).into_iter().map(|t| t.id).collect()
}

/// Samples the swarm every 250 ms for `window`, panicking if any node shows DOWN.
fn never_down(swarm: &Swarm, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        for (host, state) in swarm.node_states() {
            assert_ne!(state, "Down", "node {host} was marked down");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn agents_survive_restarts_failovers_and_node_failures() {
    require_engine();
    let mut swarm = Swarm::start("fail", 3, 2);
    swarm.manager().ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "app",
        "--replicas",
        "4",
        "--constraint",
        "node.role==worker",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let id = swarm.service_id("app");
    wait_for(Duration::from_secs(60), "four running tasks", || {
        (swarm.running_tasks("app").len() == 4 && running_task_containers(&id).len() == 4)
            .then_some(())
    });
    let w1 = swarm
        .nodes
        .iter()
        .position(|n| n.hostname == "fail-w1")
        .unwrap();
    let w2 = swarm
        .nodes
        .iter()
        .position(|n| n.hostname == "fail-w2")
        .unwrap();

    // 1. An agent restart adopts: same containers, same tasks, nothing new.
    let containers_before: BTreeSet<(String, String)> =
        running_task_containers(&id).into_iter().collect();
    let tasks_before = all_task_ids(&swarm, "app");
    let sessions = sessions_in_log(&swarm, w1);
    swarm.nodes[w1].restart();
    wait_for(
        Duration::from_secs(30),
        "the restarted agent's session",
        || (sessions_in_log(&swarm, w1) > sessions).then_some(()),
    );
    never_down(&swarm, Duration::from_secs(6));
    let containers_after: BTreeSet<(String, String)> =
        running_task_containers(&id).into_iter().collect();
    assert_eq!(containers_after, containers_before, "containers changed");
    assert_eq!(containers(&id, true).len(), 4, "a container was added");
    assert_eq!(all_task_ids(&swarm, "app"), tasks_before, "tasks changed");
    assert_eq!(running_ids(&swarm, "app"), tasks_before);

    // 2. Leader failover: kill -9 the leader, let another manager take over, bring it back.
    let leader = swarm
        .manager()
        .ok(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
        .lines()
        .find(|l| l.ends_with(" Leader"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .expect("a leader");
    let li = swarm
        .nodes
        .iter()
        .position(|n| n.hostname == leader)
        .unwrap();
    swarm.nodes[li].kill9();
    wait_for(Duration::from_secs(30), "a new leader", || {
        let out =
            swarm
                .manager()
                .docker(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"]);
        out.stdout
            .lines()
            .any(|l| l.ends_with(" Leader") && !l.starts_with(&leader))
            .then_some(())
    });
    swarm.nodes[li].restart();
    // Longer than the grace a new leader gives (6 periods): nobody may be marked down.
    never_down(&swarm, Duration::from_secs(16));
    assert_eq!(
        all_task_ids(&swarm, "app"),
        tasks_before,
        "a task was restarted"
    );
    assert_eq!(running_ids(&swarm, "app"), tasks_before);
    let containers_now: BTreeSet<(String, String)> =
        running_task_containers(&id).into_iter().collect();
    assert_eq!(containers_now, containers_before, "containers changed");

    // 3. A worker dies: its tasks run elsewhere within 20 s.
    let dead_host = swarm.nodes[w2].hostname.clone();
    let on_dead: BTreeSet<String> = swarm
        .running_tasks("app")
        .into_iter()
        .filter(|t| t.node == dead_host)
        .map(|t| t.id)
        .collect();
    assert!(!on_dead.is_empty(), "the spread put tasks on {dead_host}");
    swarm.nodes[w2].kill9();
    let replaced = wait_for(
        Duration::from_secs(20),
        "four running tasks, none on the dead worker",
        || {
            let r = swarm.running_tasks("app");
            (r.len() == 4 && r.iter().all(|t| t.node != dead_host)).then_some(r)
        },
    );
    let states = swarm.node_states();
    assert!(
        states.contains(&(dead_host.clone(), "Down".to_string())),
        "{states:?}"
    );
    // Its containers still run in the (shared) engine until it comes back.
    assert_eq!(running_task_containers(&id).len(), 4 + on_dead.len());

    // It returns: the superseded tasks' containers are stopped; the replacements stay.
    swarm.nodes[w2].restart();
    let expected: BTreeSet<String> = replaced.into_iter().map(|t| t.id).collect();
    wait_for(
        Duration::from_secs(30),
        "only the replacements' containers running",
        || {
            let live: BTreeSet<String> = running_task_containers(&id)
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            (live == expected).then_some(())
        },
    );
    wait_for(
        Duration::from_secs(30),
        "the returned worker is Ready",
        || {
            swarm
                .node_states()
                .contains(&(dead_host.clone(), "Ready".to_string()))
                .then_some(())
        },
    );
    swarm.manager().ok(&["service", "rm", "app"]);
}
