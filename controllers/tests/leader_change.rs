//! Controllers move with the store's leadership.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::agent::{FakeAgent, Fate};
use common::*;
use shoal_controllers::ControllersState;
use shoal_store::model::{ServiceMode, TaskState, UpdateState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_continues_a_rolling_update_without_duplicates() {
    let mut h = Harness::start(3, test_config()).await;
    let leader = h.wait_leading().await;
    // Controllers run on the leader only.
    let leading: Vec<_> = h
        .controllers
        .iter()
        .flatten()
        .filter(|c| matches!(c.state(), ControllersState::Leading { .. }))
        .collect();
    assert_eq!(leading.len(), 1);
    // The test and the agent talk to a member that survives.
    let s = h.other_than(leader).clone();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(add_node(&s, node(&format!("n{i}"))).await);
    }
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let agent = FakeAgent::start(
        s.clone(),
        nodes,
        Arc::new(move |t| {
            if image(t) == "web:2" && !r.load(Ordering::SeqCst) {
                Fate::Hold
            } else {
                Fate::Run
            }
        }),
    );
    let mut sp = spec("web", "web:1", ServiceMode::replicated(6));
    sp.update_config = Some(update_config(2));
    let id = create_service(&s, sp).await;
    eventually("6 running", || (running(&s, &id).len() == 6).then_some(())).await;

    update_service(&s, &id, |sp| {
        sp.task_template.container_spec.as_mut().unwrap().image = "web:2".into()
    })
    .await;
    // Mid-update: two slots have their new task, started but held by the agent.
    eventually("two new tasks started and held", || {
        let new: Vec<_> = tasks(&s, &id)
            .into_iter()
            .filter(|t| image(t) == "web:2")
            .collect();
        (new.len() == 2
            && new.iter().all(|t| {
                t.desired_state == TaskState::Running && t.status.state == TaskState::Ready
            }))
        .then_some(())
    })
    .await;

    h.kill(leader).await;
    let next = eventually("another member's controllers lead", || {
        h.controllers
            .iter()
            .enumerate()
            .find(|(_, c)| {
                c.as_ref()
                    .is_some_and(|c| matches!(c.state(), ControllersState::Leading { .. }))
            })
            .map(|(i, _)| i as u64 + 1)
    })
    .await;
    assert_ne!(next, leader);
    let s = h.store(next).clone();
    // The new leader's full pass queued the service before this probe service exists, so
    // once the probe runs, that pass has been made: it must have seen both slots in
    // progress and started nothing more.
    let probe = create_service(&s, spec("probe", "probe:1", ServiceMode::replicated(1))).await;
    eventually("probe runs", || {
        (running(&s, &probe).len() == 1).then_some(())
    })
    .await;
    let new_tasks = tasks(&s, &id)
        .into_iter()
        .filter(|t| image(t) == "web:2")
        .count();
    assert_eq!(
        new_tasks,
        2,
        "no duplicates after the leader change:\n{}",
        dump(&s, &id)
    );
    release.store(true, Ordering::SeqCst);
    agent.poke();
    eventually("update completed on the new leader", || {
        let r = running(&s, &id);
        let done =
            service(&s, &id).update_status.and_then(|u| u.state) == Some(UpdateState::Completed);
        (done && r.len() == 6 && r.iter().all(|t| image(t) == "web:2")).then_some(())
    })
    .await;
    let all = tasks(&s, &id);
    let mut new_per_slot: BTreeMap<u64, usize> = BTreeMap::new();
    for t in all.iter().filter(|t| image(t) == "web:2") {
        *new_per_slot.entry(t.slot).or_default() += 1;
    }
    assert_eq!(
        new_per_slot,
        (1..=6).map(|s| (s, 1)).collect::<BTreeMap<_, _>>(),
        "exactly one new task per slot:\n{}",
        dump(&s, &id)
    );
    let live_per_slot =
        live(&s, &id)
            .iter()
            .fold(BTreeMap::new(), |mut m: BTreeMap<u64, usize>, t| {
                *m.entry(t.slot).or_default() += 1;
                m
            });
    assert!(live_per_slot.values().all(|n| *n == 1));
    agent.stop().await;
    h.stop().await;
}
