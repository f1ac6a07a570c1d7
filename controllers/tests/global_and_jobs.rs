//! Global services and jobs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::agent::{always, FakeAgent, Fate};
use common::*;
use shoal_store::model::{
    Kind, NodeAvailability, Object, Placement, ServiceMode, TaskState, UpdateState,
};
use shoal_store::Txn;

fn nodes_running(s: &shoal_store::Store, id: &str) -> BTreeSet<String> {
    running(s, id).into_iter().map(|t| t.node_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_service_follows_nodes_joining_draining_and_leaving() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let a = add_node(&s, node("a")).await;
    let b = add_node(&s, node("b")).await;
    let agent = FakeAgent::start(s.clone(), [a.clone(), b.clone()], always(Fate::Run));
    let id = create_service(&s, spec("agent", "mon:1", ServiceMode::global())).await;
    eventually("one task on a and b", || {
        (nodes_running(&s, &id) == BTreeSet::from([a.clone(), b.clone()])).then_some(())
    })
    .await;
    assert!(tasks(&s, &id).iter().all(|t| t.slot == 0));

    // A node joins.
    let c = add_node(&s, node("c")).await;
    agent.add_node(&c);
    eventually("c gets a task", || {
        (nodes_running(&s, &id) == BTreeSet::from([a.clone(), b.clone(), c.clone()])).then_some(())
    })
    .await;

    // A node is drained: its task stops and is not replaced anywhere.
    change_node(&s, &b, |n| {
        n.spec.availability = Some(NodeAvailability::Drain)
    })
    .await;
    eventually("b's task shut down", || {
        let on_b: Vec<_> = tasks(&s, &id)
            .into_iter()
            .filter(|t| t.node_id == b)
            .collect();
        (on_b.iter().all(|t| t.status.state == TaskState::Shutdown)
            && nodes_running(&s, &id) == BTreeSet::from([a.clone(), c.clone()]))
        .then_some(())
    })
    .await;

    // A node leaves.
    submit(&s, Txn::new().delete(Kind::Node, c.clone(), None)).await;
    eventually("c's task shut down", || {
        let on_c_live = live(&s, &id).iter().any(|t| t.node_id == c);
        (!on_c_live && nodes_running(&s, &id) == BTreeSet::from([a.clone()])).then_some(())
    })
    .await;

    // The drained node comes back.
    change_node(&s, &b, |n| {
        n.spec.availability = Some(NodeAvailability::Active)
    })
    .await;
    eventually("b runs a task again", || {
        (nodes_running(&s, &id) == BTreeSet::from([a.clone(), b.clone()])).then_some(())
    })
    .await;
    let per_node: BTreeMap<String, usize> =
        live(&s, &id).iter().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(t.node_id.clone()).or_default() += 1;
            m
        });
    assert!(per_node.values().all(|n| *n == 1), "{per_node:?}");
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_service_respects_constraints_and_updates_node_by_node() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut n = node(&format!("n{i}"));
        if i < 2 {
            n.spec.labels.insert("tier".into(), "edge".into());
        }
        ids.push(add_node(&s, n).await);
    }
    let agent = FakeAgent::start(s.clone(), ids.clone(), always(Fate::Run));
    let mut sp = spec("edge", "edge:1", ServiceMode::global());
    sp.task_template.placement = Some(Placement {
        constraints: vec!["node.labels.tier==edge".into()],
        ..Default::default()
    });
    sp.update_config = Some(update_config(1));
    let id = create_service(&s, sp).await;
    eventually("tasks on the two edge nodes", || {
        (nodes_running(&s, &id) == BTreeSet::from([ids[0].clone(), ids[1].clone()])).then_some(())
    })
    .await;

    // The label goes away from n1: its task is shut down.
    change_node(&s, &ids[1], |n| {
        n.spec.labels.remove("tier");
    })
    .await;
    eventually("only n0 runs it", || {
        (nodes_running(&s, &id) == BTreeSet::from([ids[0].clone()])).then_some(())
    })
    .await;
    change_node(&s, &ids[2], |n| {
        n.spec.labels.insert("tier".into(), "edge".into());
    })
    .await;
    eventually("n0 and n2 run it", || {
        (nodes_running(&s, &id) == BTreeSet::from([ids[0].clone(), ids[2].clone()])).then_some(())
    })
    .await;

    let rec = Recorder::start(&s, &id).await;
    update_service(&s, &id, |sp| {
        sp.task_template.container_spec.as_mut().unwrap().image = "edge:2".into()
    })
    .await;
    eventually("updated on both nodes", || {
        let r = running(&s, &id);
        (r.len() == 2
            && r.iter().all(|t| image(t) == "edge:2")
            && service(&s, &id).update_status.and_then(|u| u.state) == Some(UpdateState::Completed))
        .then_some(())
    })
    .await;
    // Node by node: the second new task was created after the first one ran.
    let commits = rec.take();
    let mut created = Vec::new();
    let mut first_ran = None;
    for (i, c) in commits.iter().enumerate() {
        for e in &c.events {
            if let Object::Task(t) = e.object.as_ref() {
                if image(t) == "edge:2" && e.action == shoal_store::Action::Create {
                    created.push(i);
                }
                if image(t) == "edge:2"
                    && t.status.state == TaskState::Running
                    && first_ran.is_none()
                {
                    first_ran = Some(i);
                }
            }
        }
    }
    assert_eq!(created.len(), 2);
    assert!(created[1] > first_ran.unwrap(), "parallelism 1 over nodes");
    rec.stop();
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_job_runs_to_total_completions_with_max_concurrency() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(add_node(&s, node(&format!("n{i}"))).await);
    }
    // The very first task fails once; everything else completes.
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let f = first.clone();
    let agent = FakeAgent::start(
        s.clone(),
        ids,
        Arc::new(move |t| {
            let mut first = f.lock().unwrap();
            if first.get_or_insert_with(|| t.meta.id.clone()) == &t.meta.id {
                Fate::FailAfterRunning
            } else {
                Fate::Complete
            }
        }),
    );
    let mut sp = spec("job", "job:1", ServiceMode::replicated_job(2, 5));
    sp.task_template.restart_policy.as_mut().unwrap().condition =
        Some(shoal_store::model::RestartCondition::OnFailure);
    let id = create_service(&s, sp).await;
    let rec = Recorder::start(&s, &id).await;
    let done = eventually("5 completions", || {
        let all = tasks(&s, &id);
        let complete: Vec<_> = all
            .iter()
            .filter(|t| t.status.state == TaskState::Complete)
            .cloned()
            .collect();
        (complete.len() == 5).then_some(complete)
    })
    .await;
    let slots: BTreeSet<u64> = done.iter().map(|t| t.slot).collect();
    assert_eq!(slots, (1..=5).collect(), "one completion per slot");
    let all = tasks(&s, &id);
    assert_eq!(all.len(), 6, "five completions and one failed attempt");
    assert!(all.iter().all(|t| t.desired_state <= TaskState::Shutdown));
    // Replay: never more than two tasks in progress at once.
    let mut state: BTreeMap<String, (TaskState, TaskState)> = BTreeMap::new();
    for c in rec.take() {
        for e in &c.events {
            if let Object::Task(t) = e.object.as_ref() {
                state.insert(t.meta.id.clone(), (t.desired_state, t.status.state));
            }
        }
        let active = state
            .values()
            .filter(|(d, st)| *d <= TaskState::Complete && *st < TaskState::Complete)
            .count();
        assert!(active <= 2, "{active} job tasks at once");
    }
    rec.stop();
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_again_when_updated_and_global_jobs_cover_new_nodes() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let a = add_node(&s, node("a")).await;
    let b = add_node(&s, node("b")).await;
    let agent = FakeAgent::start(s.clone(), [a.clone(), b.clone()], always(Fate::Complete));
    let global = create_service(&s, spec("gjob", "g:1", ServiceMode::global_job())).await;
    let job = create_service(&s, spec("job", "j:1", ServiceMode::replicated_job(3, 3))).await;
    let complete = |id: &str| {
        tasks(&s, id)
            .into_iter()
            .filter(|t| t.status.state == TaskState::Complete)
            .count()
    };
    eventually("global job done on a and b, job done", || {
        (complete(&global) == 2 && complete(&job) == 3).then_some(())
    })
    .await;
    let c = add_node(&s, node("c")).await;
    agent.add_node(&c);
    eventually("global job ran on c too", || {
        (complete(&global) == 3).then_some(())
    })
    .await;
    assert_eq!(
        tasks(&s, &global).len(),
        3,
        "nodes that completed are not re-run"
    );

    update_service(&s, &job, |sp| {
        sp.task_template.container_spec.as_mut().unwrap().image = "j:2".into()
    })
    .await;
    eventually("the job ran again", || {
        let again = tasks(&s, &job)
            .into_iter()
            .filter(|t| image(t) == "j:2" && t.status.state == TaskState::Complete)
            .count();
        (again == 3).then_some(())
    })
    .await;
    assert_eq!(tasks(&s, &job).len(), 6);
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_nodes_keep_their_global_task_but_get_no_new_one() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let a = add_node(&s, node("a")).await;
    let b = add_node(&s, node("b")).await;
    let agent = FakeAgent::start(s.clone(), [a.clone(), b.clone()], always(Fate::Run));
    let mut sp = spec("agent", "mon:1", ServiceMode::global());
    sp.update_config = Some(update_config(1));
    let id = create_service(&s, sp).await;
    eventually("a and b run it", || {
        (nodes_running(&s, &id) == BTreeSet::from([a.clone(), b.clone()])).then_some(())
    })
    .await;
    change_node(&s, &b, |n| {
        n.spec.availability = Some(NodeAvailability::Pause)
    })
    .await;
    update_service(&s, &id, |sp| {
        sp.task_template.container_spec.as_mut().unwrap().image = "mon:2".into()
    })
    .await;
    eventually("a updated, b keeps its old task while paused", || {
        let r = running(&s, &id);
        let on = |n: &str| {
            r.iter()
                .find(|t| t.node_id == n)
                .map(|t| image(t).to_string())
        };
        (on(&a).as_deref() == Some("mon:2") && on(&b).as_deref() == Some("mon:1")).then_some(())
    })
    .await;
    change_node(&s, &b, |n| {
        n.spec.availability = Some(NodeAvailability::Active)
    })
    .await;
    eventually("b updated once active again", || {
        let r = running(&s, &id);
        (r.len() == 2 && r.iter().all(|t| image(t) == "mon:2")).then_some(())
    })
    .await;
    agent.stop().await;
    h.stop().await;
}
