//! Task reaper, constraint enforcer, role manager.

mod common;

use std::sync::{Arc, Mutex};

use common::agent::{always, FakeAgent, Fate};
use common::*;
use shoal_store::model::{
    new_id, Cluster, Meta, NodeRole, OrchestrationConfig, Placement, ServiceMode, SwarmSpec,
    TaskState,
};
use shoal_store::Txn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_keeps_the_swarms_task_history_limit() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let cluster = Cluster {
        meta: Meta::with_id(new_id()),
        spec: SwarmSpec {
            orchestration: OrchestrationConfig {
                task_history_retention_limit: Some(2),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    submit(&s, Txn::new().create(cluster)).await;
    let n = add_node(&s, node("n0")).await;
    // The first four tasks fail, then one runs.
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let f = failed.clone();
    let agent = FakeAgent::start(
        s.clone(),
        [n],
        Arc::new(move |t| {
            let mut failed = f.lock().unwrap();
            if failed.contains(&t.meta.id) || failed.len() < 4 {
                if !failed.contains(&t.meta.id) {
                    failed.push(t.meta.id.clone());
                }
                Fate::FailAfterRunning
            } else {
                Fate::Run
            }
        }),
    );
    let id = create_service(&s, spec("flaky", "f:1", ServiceMode::replicated(1))).await;
    let kept = eventually("the fifth task runs, history trimmed to 2 tasks", || {
        let all = tasks(&s, &id);
        let failed = failed.lock().unwrap();
        let fifth_runs = all
            .iter()
            .any(|t| t.status.state == TaskState::Running && !failed.contains(&t.meta.id));
        (all.len() == 2 && fifth_runs).then_some(all)
    })
    .await;
    let failed = failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 4);
    let old = kept
        .iter()
        .find(|t| t.status.state == TaskState::Failed)
        .unwrap();
    assert_eq!(
        old.meta.id, failed[3],
        "the newest failed task is the one kept"
    );
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_service_tasks_are_stopped_then_deleted() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let n = add_node(&s, node("n0")).await;
    let agent = FakeAgent::start(s.clone(), [n], always(Fate::Run));
    let id = create_service(&s, spec("web", "web:1", ServiceMode::replicated(3))).await;
    eventually("3 running", || (running(&s, &id).len() == 3).then_some(())).await;
    remove_service(&s, &id).await;
    eventually("all tasks gone", || tasks(&s, &id).is_empty().then_some(())).await;
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraint_enforcer_rejects_tasks_of_a_node_that_no_longer_fits() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut first = node("first");
    first.spec.labels.insert("disk".into(), "ssd".into());
    let first = add_node(&s, first).await;
    let agent = FakeAgent::start(s.clone(), [first.clone()], always(Fate::Run));
    let mut sp = spec("db", "db:1", ServiceMode::replicated(2));
    sp.task_template.placement = Some(Placement {
        constraints: vec!["node.labels.disk==ssd".into()],
        ..Default::default()
    });
    let id = create_service(&s, sp).await;
    let before = eventually("2 running on first", || {
        let r = running(&s, &id);
        (r.len() == 2).then_some(r)
    })
    .await;
    change_node(&s, &first, |n| {
        n.spec.labels.remove("disk");
    })
    .await;
    eventually("both tasks rejected by the enforcer", || {
        let all = tasks(&s, &id);
        before
            .iter()
            .all(|b| {
                all.iter().any(|t| {
                    t.meta.id == b.meta.id
                        && t.status.state == TaskState::Rejected
                        && t.status.err == "assigned node no longer meets constraints"
                        && t.desired_state == TaskState::Shutdown
                })
            })
            .then_some(())
    })
    .await;
    // Replacements wait for a node that fits, then run there.
    eventually("replacements pending", || {
        let pending = tasks(&s, &id)
            .into_iter()
            .filter(|t| t.status.state == TaskState::Pending && !t.status.err.is_empty())
            .count();
        (pending == 2).then_some(())
    })
    .await;
    let mut second = node("second");
    second.spec.labels.insert("disk".into(), "ssd".into());
    let second = add_node(&s, second).await;
    agent.add_node(&second);
    eventually("2 running on second", || {
        let r = running(&s, &id);
        (r.len() == 2 && r.iter().all(|t| t.node_id == second)).then_some(())
    })
    .await;
    agent.stop().await;
    h.stop().await;
}

fn manager_node(name: &str, raft_id: u64) -> shoal_store::model::Node {
    let mut n = node(name);
    n.role = NodeRole::Manager;
    n.spec.role = Some(NodeRole::Manager);
    n.raft_id = raft_id;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_manager_promotes_and_demotes_without_losing_quorum() {
    let h = Harness::start(3, test_config()).await;
    let leader = h.wait_leading().await;
    let s = h.store(leader).clone();
    let mut ids = Vec::new();
    for raft_id in 1..=3 {
        ids.push(add_node(&s, manager_node(&format!("m{raft_id}"), raft_id)).await);
    }
    let worker = add_node(&s, node("w")).await;

    // Promotion: the held role follows the desired one at once.
    change_node(&s, &worker, |n| n.spec.role = Some(NodeRole::Manager)).await;
    eventually("worker promoted", || {
        let n = s.view().get::<shoal_store::model::Node>(&worker)?;
        (n.role == NodeRole::Manager).then_some(())
    })
    .await;

    // Demotion of a store member: removed from the store first, then made a worker.
    let victim = (1..=3u64).find(|r| *r != leader).unwrap();
    let victim_node = ids[(victim - 1) as usize].clone();
    change_node(&s, &victim_node, |n| n.spec.role = Some(NodeRole::Worker)).await;
    eventually("member demoted", || {
        let n = s.view().get::<shoal_store::model::Node>(&victim_node)?;
        (n.role == NodeRole::Worker && n.raft_id == 0).then_some(())
    })
    .await;
    assert!(
        !s.members().iter().any(|m| m.raft_id == victim),
        "the demoted member left the store"
    );
    assert_eq!(s.members().len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_manager_is_not_demoted() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let only = add_node(&s, manager_node("m1", 1)).await;
    let other = add_node(&s, manager_node("m2", 0)).await;
    // Both asked to become workers: the one without a store member goes; the last manager,
    // whose member is the store's only voter, stays.
    change_node(&s, &other, |n| n.spec.role = Some(NodeRole::Worker)).await;
    change_node(&s, &only, |n| n.spec.role = Some(NodeRole::Worker)).await;
    eventually("m2 demoted", || {
        let n = s.view().get::<shoal_store::model::Node>(&other)?;
        (n.role == NodeRole::Worker).then_some(())
    })
    .await;
    // Let the role manager retry the refused demotion a few times (retry is 200 ms): the
    // store must still have its member and the node its role.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        let n = s.view().get::<shoal_store::model::Node>(&only).unwrap();
        assert_eq!(n.role, NodeRole::Manager);
        assert_eq!(s.members().len(), 1);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    h.stop().await;
}
