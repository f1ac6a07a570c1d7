//! Replicated services: scaling, restarts, drained and failed nodes.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use common::agent::{always, FakeAgent, Fate};
use common::*;
use shoal_store::model::{
    NodeAvailability, NodeState, RestartCondition, RestartPolicy, ServiceMode, TaskState,
    NANOS_PER_SECOND,
};

fn slots_of(ts: &[shoal_store::model::Task]) -> BTreeSet<u64> {
    ts.iter().map(|t| t.slot).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_keeps_slots_and_history() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(add_node(&s, node(&format!("n{i}"))).await);
    }
    let agent = FakeAgent::start(s.clone(), nodes.clone(), always(Fate::Run));
    let id = create_service(&s, spec("web", "web:1", ServiceMode::replicated(3))).await;

    let first = eventually("3 tasks run in slots 1-3", || {
        let r = running(&s, &id);
        (r.len() == 3 && slots_of(&r) == BTreeSet::from([1, 2, 3])).then_some(r)
    })
    .await;
    assert!(
        first.iter().all(|t| t.service_name == "web"),
        "tasks carry their service's name (their containers are named after it)"
    );
    // Spread: one per node.
    assert_eq!(
        first
            .iter()
            .map(|t| t.node_id.clone())
            .collect::<HashSet<_>>()
            .len(),
        3
    );

    update_service(&s, &id, |sp| sp.mode = ServiceMode::replicated(5)).await;
    let five = eventually("5 tasks run in slots 1-5", || {
        let r = running(&s, &id);
        (r.len() == 5 && slots_of(&r) == (1..=5).collect()).then_some(r)
    })
    .await;
    for t in &first {
        assert!(
            five.iter().any(|x| x.meta.id == t.meta.id),
            "scaling up leaves existing tasks alone"
        );
    }

    update_service(&s, &id, |sp| sp.mode = ServiceMode::replicated(2)).await;
    let two = eventually("2 tasks left, removed slots deleted", || {
        let all = tasks(&s, &id);
        (all.len() == 2 && all.iter().all(|t| t.status.state == TaskState::Running)).then_some(all)
    })
    .await;
    for t in &two {
        assert!(
            five.iter().any(|x| x.meta.id == t.meta.id),
            "kept tasks are the old ones"
        );
    }
    let kept = slots_of(&two);

    update_service(&s, &id, |sp| sp.mode = ServiceMode::replicated(4)).await;
    let four = eventually("4 tasks run", || {
        let r = running(&s, &id);
        (r.len() == 4).then_some(r)
    })
    .await;
    let free: Vec<u64> = (1..=5).filter(|n| !kept.contains(n)).take(2).collect();
    let expected: BTreeSet<u64> = kept.iter().copied().chain(free).collect();
    assert_eq!(
        slots_of(&four),
        expected,
        "new tasks take the lowest free slots"
    );

    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_is_restarted_per_policy_until_max_attempts() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let n = add_node(&s, node("n0")).await;
    let agent = FakeAgent::start(s.clone(), [n], always(Fate::FailAfterRunning));
    let mut sp = spec("crash", "crash:1", ServiceMode::replicated(1));
    sp.task_template.restart_policy = Some(RestartPolicy {
        condition: Some(RestartCondition::OnFailure),
        delay: Some(NANOS_PER_SECOND / 20),
        max_attempts: Some(2),
        window: None,
    });
    let id = create_service(&s, sp).await;

    // The original task and two restarts, all failed; the last one is not replaced. The
    // decision not to restart is written with its desired state SHUTDOWN, atomically with
    // any replacement, so no fourth task can appear after this.
    let all = eventually("three failed tasks, the last shut down", || {
        let all = tasks(&s, &id);
        let done = all.len() == 3
            && all.iter().all(|t| {
                t.status.state == TaskState::Failed && t.desired_state == TaskState::Shutdown
            });
        done.then_some(all)
    })
    .await;
    assert!(all.iter().all(|t| t.slot == 1), "restarts reuse the slot");
    // History stays: every attempt is still there for `docker service ps`.
    assert_eq!(tasks(&s, &id).len(), 3);
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_delay_holds_the_replacement_at_ready() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let n = add_node(&s, node("n0")).await;
    // Only the first task fails.
    let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let f = failed.clone();
    let agent = FakeAgent::start(
        s.clone(),
        [n],
        Arc::new(move |t| {
            let mut first = f.lock().unwrap();
            let first = first.get_or_insert_with(|| t.meta.id.clone());
            if *first == t.meta.id {
                Fate::FailAfterRunning
            } else {
                Fate::Run
            }
        }),
    );
    let mut sp = spec("flaky", "flaky:1", ServiceMode::replicated(1));
    sp.task_template.restart_policy = Some(RestartPolicy {
        condition: Some(RestartCondition::Any),
        delay: Some(2 * NANOS_PER_SECOND),
        max_attempts: None,
        window: None,
    });
    let id = create_service(&s, sp).await;
    // The replacement exists right away, prepared but held at desired READY ...
    let held = eventually("replacement prepared and held", || {
        tasks(&s, &id)
            .into_iter()
            .find(|t| t.desired_state == TaskState::Ready && t.status.state == TaskState::Ready)
    })
    .await;
    assert_eq!(held.slot, 1);
    // ... and started once the delay passed.
    eventually("replacement runs", || {
        tasks(&s, &id)
            .into_iter()
            .find(|t| t.meta.id == held.meta.id && t.status.state == TaskState::Running)
    })
    .await;
    assert_eq!(live(&s, &id).len(), 1);
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_node_tasks_move_to_other_nodes() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let a = add_node(&s, node("a")).await;
    let b = add_node(&s, node("b")).await;
    let agent = FakeAgent::start(s.clone(), [a.clone(), b.clone()], always(Fate::Run));
    let id = create_service(&s, spec("web", "web:1", ServiceMode::replicated(4))).await;
    let before = eventually("4 running, 2 per node", || {
        let r = running(&s, &id);
        let on_a = r.iter().filter(|t| t.node_id == a).count();
        (r.len() == 4 && on_a == 2).then_some(r)
    })
    .await;

    change_node(&s, &a, |n| {
        n.spec.availability = Some(NodeAvailability::Drain)
    })
    .await;
    let after = eventually("all 4 run on b", || {
        let r = running(&s, &id);
        (r.len() == 4 && r.iter().all(|t| t.node_id == b)).then_some(r)
    })
    .await;
    assert_eq!(
        slots_of(&after),
        slots_of(&before),
        "replacements keep their slots"
    );
    eventually("tasks on a are shut down", || {
        tasks(&s, &id)
            .iter()
            .filter(|t| t.node_id == a)
            .all(|t| {
                t.desired_state == TaskState::Shutdown && t.status.state == TaskState::Shutdown
            })
            .then_some(())
    })
    .await;
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_down_node_are_replaced() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let a = add_node(&s, node("a")).await;
    let agent = FakeAgent::start(s.clone(), [a.clone()], always(Fate::Run));
    let id = create_service(&s, spec("web", "web:1", ServiceMode::replicated(2))).await;
    eventually("2 running on a", || {
        (running(&s, &id).len() == 2).then_some(())
    })
    .await;
    let b = add_node(&s, node("b")).await;
    agent.add_node(&b);
    change_node(&s, &a, |n| n.status.state = NodeState::Down).await;
    let r = eventually("2 running on b", || {
        let r = running(&s, &id);
        (r.len() == 2 && r.iter().all(|t| t.node_id == b)).then_some(r)
    })
    .await;
    let per_slot: BTreeMap<u64, usize> = live(&s, &id).iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(t.slot).or_default() += 1;
        m
    });
    assert!(
        per_slot.values().all(|n| *n == 1),
        "one live task per slot: {per_slot:?}"
    );
    assert_eq!(slots_of(&r), BTreeSet::from([1, 2]));
    agent.stop().await;
    h.stop().await;
}
