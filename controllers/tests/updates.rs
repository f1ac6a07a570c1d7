//! Rolling updates and rollbacks.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent::{always, FakeAgent, Fate};
use common::*;
use shoal_controllers::ControllersConfig;
use shoal_store::model::{
    Object, RestartCondition, RestartPolicy, ServiceMode, TaskState, UpdateFailureAction,
    UpdateOrder, UpdateState, NANOS_PER_SECOND,
};

fn set_image(sp: &mut shoal_store::model::ServiceSpec, image: &str) {
    sp.task_template.container_spec.as_mut().unwrap().image = image.into();
}

async fn setup(
    nodes: usize,
    fate: common::agent::FateFn,
    config: ControllersConfig,
) -> (Harness, FakeAgent) {
    let h = Harness::single(config).await;
    let s = h.store(1).clone();
    let mut ids = Vec::new();
    for i in 0..nodes {
        ids.push(add_node(&s, node(&format!("n{i}"))).await);
    }
    let agent = FakeAgent::start(s, ids, fate);
    (h, agent)
}

fn update_state(s: &shoal_store::Store, id: &str) -> Option<UpdateState> {
    service(s, id).update_status.and_then(|u| u.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_replaces_two_at_a_time_in_slot_order() {
    let (h, agent) = setup(3, always(Fate::Run), test_config()).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(6));
    sp.update_config = Some(update_config(2));
    let id = create_service(&s, sp).await;
    eventually("6 running", || (running(&s, &id).len() == 6).then_some(())).await;

    let rec = Recorder::start(&s, &id).await;
    update_service(&s, &id, |sp| set_image(sp, "web:2")).await;
    eventually("update completed with 6 tasks of web:2", || {
        let r = running(&s, &id);
        (update_state(&s, &id) == Some(UpdateState::Completed)
            && r.len() == 6
            && r.iter().all(|t| image(t) == "web:2"))
        .then_some(())
    })
    .await;
    let st = service(&s, &id).update_status.unwrap();
    assert_eq!(st.message, "update completed");
    assert!(st.started_at.is_some() && st.completed_at.is_some());

    // Replay the changes: a slot is in flight from its new task's creation until that task
    // runs. Never more than two at once, and slots start in order.
    let mut new_state: BTreeMap<u64, TaskState> = BTreeMap::new();
    let mut started_order = Vec::new();
    let mut most_in_flight = 0;
    for c in rec.take() {
        for e in &c.events {
            let Object::Task(t) = e.object.as_ref() else {
                continue;
            };
            if image(t) != "web:2" {
                continue;
            }
            if e.action == shoal_store::Action::Create {
                assert!(
                    !new_state.contains_key(&t.slot),
                    "slot {} got a second new task",
                    t.slot
                );
                started_order.push(t.slot);
                // Stop-first: the old task of the slot is shut down in the same commit.
                let old_stopped = c.events.iter().any(|o| match o.object.as_ref() {
                    Object::Task(x) => {
                        x.slot == t.slot
                            && image(x) == "web:1"
                            && x.desired_state == TaskState::Shutdown
                    }
                    _ => false,
                });
                assert!(
                    old_stopped,
                    "slot {}: old task stopped with the new one's creation",
                    t.slot
                );
            }
            new_state.insert(t.slot, t.status.state);
        }
        let in_flight = new_state
            .values()
            .filter(|s| **s < TaskState::Running)
            .count();
        assert!(in_flight <= 2, "{in_flight} slots updating at once");
        most_in_flight = most_in_flight.max(in_flight);
    }
    assert_eq!(started_order, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(most_in_flight, 2, "parallelism 2 is used");
    rec.stop();
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_update_pauses() {
    let fate: common::agent::FateFn = Arc::new(|t| {
        if image(t) == "web:bad" {
            Fate::FailOnStart
        } else {
            Fate::Run
        }
    });
    let (h, agent) = setup(2, fate, test_config()).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(4));
    sp.update_config = Some(update_config(1));
    sp.task_template.restart_policy = Some(RestartPolicy {
        condition: Some(RestartCondition::Any),
        delay: Some(NANOS_PER_SECOND / 10),
        max_attempts: None,
        window: None,
    });
    let id = create_service(&s, sp).await;
    let before = eventually("4 running", || {
        let r = running(&s, &id);
        (r.len() == 4).then_some(r)
    })
    .await;
    update_service(&s, &id, |sp| set_image(sp, "web:bad")).await;
    let st = eventually("update paused", || {
        service(&s, &id)
            .update_status
            .filter(|u| u.state == Some(UpdateState::Paused))
    })
    .await;
    let bad: Vec<_> = tasks(&s, &id)
        .into_iter()
        .filter(|t| image(t) == "web:bad")
        .collect();
    let culprit = st
        .message
        .strip_prefix("update paused due to failure or early termination of task ")
        .unwrap_or_else(|| panic!("unexpected message {:?}", st.message));
    assert!(bad.iter().any(|t| t.meta.id == culprit));
    // Only slot 1 was touched; let restarts of the bad task happen and check again.
    eventually("slot 1 restarted the bad task", || {
        (tasks(&s, &id)
            .iter()
            .filter(|t| image(t) == "web:bad")
            .count()
            >= 2)
            .then_some(())
    })
    .await;
    let bad_slots: BTreeSet<u64> = tasks(&s, &id)
        .iter()
        .filter(|t| image(t) == "web:bad")
        .map(|t| t.slot)
        .collect();
    assert_eq!(bad_slots, BTreeSet::from([1]));
    for t in before.iter().filter(|t| t.slot != 1) {
        let now = s
            .view()
            .get::<shoal_store::model::Task>(&t.meta.id)
            .unwrap();
        assert_eq!(
            now.desired_state,
            TaskState::Running,
            "slot {} untouched",
            t.slot
        );
    }
    assert_eq!(update_state(&s, &id), Some(UpdateState::Paused));
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_update_rolls_back_with_the_rollback_config() {
    // The third task of web:2 fails after starting; all others run.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen2 = seen.clone();
    let fate: common::agent::FateFn = Arc::new(move |t| {
        if image(t) != "web:2" {
            return Fate::Run;
        }
        let mut seen = seen2.lock().unwrap();
        let n = seen.len();
        let nth = *seen.entry(t.meta.id.clone()).or_insert(n);
        if nth == 2 {
            Fate::FailAfterRunning
        } else {
            Fate::Run
        }
    });
    let (h, agent) = setup(2, fate, test_config()).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(4));
    let mut update = update_config(1);
    update.failure_action = Some(UpdateFailureAction::Rollback);
    update.monitor = 5 * NANOS_PER_SECOND;
    sp.update_config = Some(update);
    let mut rollback = update_config(2);
    rollback.order = Some(UpdateOrder::StartFirst);
    sp.rollback_config = Some(rollback);
    let id = create_service(&s, sp).await;
    eventually("4 running", || (running(&s, &id).len() == 4).then_some(())).await;

    let rec = Recorder::start(&s, &id).await;
    update_service(&s, &id, |sp| set_image(sp, "web:2")).await;
    eventually("rollback completed, 4 running web:1", || {
        let r = running(&s, &id);
        (update_state(&s, &id) == Some(UpdateState::RollbackCompleted)
            && r.len() == 4
            && r.iter().all(|t| image(t) == "web:1"))
        .then_some(())
    })
    .await;
    let svc = service(&s, &id);
    assert_eq!(
        svc.update_status.clone().unwrap().message,
        "rollback completed"
    );
    assert_eq!(
        svc.spec.task_template.container().unwrap().image,
        "web:1",
        "the spec is the previous one again"
    );
    let commits = rec.take();
    // The rollback was announced with the failed task's id.
    let rolled_back = commits
        .iter()
        .flat_map(|c| c.events.iter())
        .filter_map(|e| match e.object.as_ref() {
            Object::Service(sv) => sv.update_status.clone(),
            _ => None,
        })
        .find(|u| u.state == Some(UpdateState::RollbackStarted))
        .expect("the rollback started");
    assert!(
        rolled_back
            .message
            .starts_with("update rolled back due to failure or early termination of task "),
        "{}",
        rolled_back.message
    );
    // Start-first (the rollback config's order): in slots 1 and 2, which ran web:2, the web:1
    // replacement was created while web:2 still ran and reached RUNNING before web:2 was
    // told to shut down.
    let position = |pred: &dyn Fn(&shoal_store::model::Task) -> bool| {
        commits.iter().position(|c| {
            c.events.iter().any(|e| match e.object.as_ref() {
                Object::Task(t) => pred(t),
                _ => false,
            })
        })
    };
    for slot in [1u64, 2] {
        let (created, new_id) = commits
            .iter()
            .enumerate()
            .find_map(|(i, c)| {
                c.events.iter().find_map(|e| match e.object.as_ref() {
                    Object::Task(t)
                        if e.action == shoal_store::Action::Create
                            && t.slot == slot
                            && image(t) == "web:1" =>
                    {
                        Some((i, t.meta.id.clone()))
                    }
                    _ => None,
                })
            })
            .unwrap_or_else(|| panic!("slot {slot} got a web:1 task back"));
        let ran =
            position(&|t| t.meta.id == new_id && t.status.state == TaskState::Running).unwrap();
        let stopped = position(&|t| {
            t.slot == slot && image(t) == "web:2" && t.desired_state == TaskState::Shutdown
        })
        .unwrap();
        assert!(
            created < ran && ran <= stopped,
            "slot {slot}: {created} {ran} {stopped}"
        );
    }
    rec.stop();
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_first_keeps_the_old_task_until_the_new_one_runs() {
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let fate: common::agent::FateFn = Arc::new(move |t| {
        if image(t) == "web:2" && !r.load(Ordering::SeqCst) {
            Fate::Hold
        } else {
            Fate::Run
        }
    });
    let (h, agent) = setup(1, fate, test_config()).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(1));
    let mut update = update_config(1);
    update.order = Some(UpdateOrder::StartFirst);
    sp.update_config = Some(update);
    let id = create_service(&s, sp).await;
    let old = eventually("web:1 runs", || running(&s, &id).pop()).await;
    update_service(&s, &id, |sp| set_image(sp, "web:2")).await;
    let new = eventually("web:2 prepared", || {
        tasks(&s, &id)
            .into_iter()
            .find(|t| image(t) == "web:2" && t.status.state == TaskState::Ready)
    })
    .await;
    assert_eq!(
        new.desired_state,
        TaskState::Running,
        "start-first starts at once"
    );
    let old_now = s
        .view()
        .get::<shoal_store::model::Task>(&old.meta.id)
        .unwrap();
    assert_eq!(old_now.desired_state, TaskState::Running);
    assert_eq!(old_now.status.state, TaskState::Running);

    release.store(true, Ordering::SeqCst);
    agent.poke();
    eventually("web:2 runs and web:1 is shut down", || {
        let old = s.view().get::<shoal_store::model::Task>(&old.meta.id)?;
        let new = s.view().get::<shoal_store::model::Task>(&new.meta.id)?;
        (new.status.state == TaskState::Running && old.desired_state == TaskState::Shutdown)
            .then_some(())
    })
    .await;
    eventually("update completed", || {
        (update_state(&s, &id) == Some(UpdateState::Completed)).then_some(())
    })
    .await;
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_never_progresses_pauses_at_the_deadline() {
    let fate: common::agent::FateFn = Arc::new(|t| {
        if image(t) == "web:2" {
            Fate::Hold
        } else {
            Fate::Run
        }
    });
    let config = ControllersConfig {
        update_progress_deadline: Duration::from_secs(1),
        ..test_config()
    };
    let (h, agent) = setup(1, fate, config).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(2));
    sp.update_config = Some(update_config(1));
    let id = create_service(&s, sp).await;
    eventually("2 running", || (running(&s, &id).len() == 2).then_some(())).await;
    update_service(&s, &id, |sp| set_image(sp, "web:2")).await;
    let st = eventually("update paused", || {
        service(&s, &id)
            .update_status
            .filter(|u| u.state == Some(UpdateState::Paused))
    })
    .await;
    assert!(
        st.message.starts_with("update paused: task ")
            && st
                .message
                .ends_with("did not reach running within 1s (update progress deadline)"),
        "{}",
        st.message
    );
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_update_replaces_every_task() {
    let (h, agent) = setup(2, always(Fate::Run), test_config()).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(3));
    sp.update_config = Some(update_config(0));
    let id = create_service(&s, sp).await;
    let before = eventually("3 running", || {
        let r = running(&s, &id);
        (r.len() == 3).then_some(r)
    })
    .await;
    update_service(&s, &id, |sp| sp.task_template.force_update += 1).await;
    eventually("3 new tasks running, update completed", || {
        let r = running(&s, &id);
        let fresh = r
            .iter()
            .all(|t| before.iter().all(|b| b.meta.id != t.meta.id));
        (r.len() == 3 && fresh && update_state(&s, &id) == Some(UpdateState::Completed))
            .then_some(())
    })
    .await;
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_rollback_restores_the_previous_spec() {
    let (h, agent) = setup(2, always(Fate::Run), test_config()).await;
    let s = h.store(1).clone();
    let mut sp = spec("web", "web:1", ServiceMode::replicated(3));
    sp.update_config = Some(update_config(1));
    sp.rollback_config = Some(update_config(0));
    let id = create_service(&s, sp).await;
    eventually("3 running", || (running(&s, &id).len() == 3).then_some(())).await;
    update_service(&s, &id, |sp| set_image(sp, "web:2")).await;
    eventually("update completed", || {
        (update_state(&s, &id) == Some(UpdateState::Completed)).then_some(())
    })
    .await;
    rollback_service(&s, &id).await;
    eventually("rollback completed with web:1 everywhere", || {
        let r = running(&s, &id);
        (update_state(&s, &id) == Some(UpdateState::RollbackCompleted)
            && r.len() == 3
            && r.iter().all(|t| image(t) == "web:1"))
        .then_some(())
    })
    .await;
    let st = service(&s, &id).update_status.unwrap();
    assert_eq!(st.message, "rollback completed");
    assert!(st.completed_at.is_some());
    agent.stop().await;
    h.stop().await;
}
