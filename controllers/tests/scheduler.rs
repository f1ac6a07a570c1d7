//! Placement: explanations, retries, spread, resources, ports, failing nodes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::agent::{always, FakeAgent, Fate};
use common::*;
use shoal_store::model::{
    EndpointSpec, GenericResource, Placement, PlacementPreference, PortConfig, PublishMode,
    ResourceRequirements, Resources, ServiceMode, TaskState,
};

fn reserve(sp: &mut shoal_store::model::ServiceSpec, cpus: i64, generic: Vec<GenericResource>) {
    sp.task_template.resources = Some(ResourceRequirements {
        limits: None,
        reservations: Some(Resources {
            nano_cpus: cpus * 1_000_000_000,
            memory_bytes: 0,
            generic_resources: generic,
        }),
    });
}

fn constrain(sp: &mut shoal_store::model::ServiceSpec, constraints: &[&str]) {
    sp.task_template
        .placement
        .get_or_insert_with(Placement::default)
        .constraints = constraints.iter().map(|c| c.to_string()).collect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_tasks_are_explained_and_placed_when_a_node_fits() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut big = node("big");
    big.description.resources.nano_cpus = 8_000_000_000;
    let mut nodes = vec![add_node(&s, big).await];
    for i in 0..2 {
        let mut small = node(&format!("small{i}"));
        small.description.resources.nano_cpus = 1_000_000_000;
        small.spec.labels.insert("zone".into(), "east".into());
        nodes.push(add_node(&s, small).await);
    }
    let agent = FakeAgent::start(s.clone(), nodes, always(Fate::Run));
    let mut sp = spec("db", "db:1", ServiceMode::replicated(1));
    reserve(&mut sp, 2, vec![]);
    constrain(&mut sp, &["node.labels.zone==east"]);
    let id = create_service(&s, sp).await;
    let pending = eventually("task pending with an explanation", || {
        tasks(&s, &id)
            .into_iter()
            .find(|t| t.status.state == TaskState::Pending && !t.status.err.is_empty())
    })
    .await;
    assert_eq!(pending.status.message, "pending task scheduling");
    assert_eq!(
        pending.status.err,
        "no suitable node (insufficient resources on 2 nodes; scheduling constraints not satisfied on 1 node)"
    );
    assert!(pending.node_id.is_empty());

    // A node that fits appears: the same task is placed there.
    let mut fits = node("fits");
    fits.spec.labels.insert("zone".into(), "east".into());
    let fits_id = add_node(&s, fits).await;
    agent.add_node(&fits_id);
    let placed = eventually("task placed on the new node", || {
        tasks(&s, &id)
            .into_iter()
            .find(|t| t.meta.id == pending.meta.id && t.status.state == TaskState::Running)
    })
    .await;
    assert_eq!(placed.node_id, fits_id);
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_over_zone_labels_balances_three_zones() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut zone_of = BTreeMap::new();
    // Zone a has one node, b two, c three.
    for (i, zone) in ["a", "b", "b", "c", "c", "c"].iter().enumerate() {
        let mut n = node(&format!("n{i}"));
        n.spec.labels.insert("zone".into(), zone.to_string());
        zone_of.insert(add_node(&s, n).await, zone.to_string());
    }
    let agent = FakeAgent::start(s.clone(), zone_of.keys().cloned(), always(Fate::Run));
    let mut sp = spec("web", "web:1", ServiceMode::replicated(9));
    sp.task_template.placement = Some(Placement {
        preferences: vec![PlacementPreference::spread("node.labels.zone")],
        ..Default::default()
    });
    let id = create_service(&s, sp).await;
    let r = eventually("9 running", || {
        let r = running(&s, &id);
        (r.len() == 9).then_some(r)
    })
    .await;
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for t in &r {
        *per_zone.entry(zone_of[&t.node_id].clone()).or_default() += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3],
        "{per_zone:?}"
    );
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_max_replicas_and_generic_resources_limit_placement() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let mut ids = Vec::new();
    for i in 0..2 {
        let mut n = node(&format!("n{i}"));
        if i == 0 {
            n.description.resources.generic_resources = vec![
                GenericResource::named("GPU", "gpu-a"),
                GenericResource::named("GPU", "gpu-b"),
            ];
        }
        ids.push(add_node(&s, n).await);
    }
    let agent = FakeAgent::start(s.clone(), ids.clone(), always(Fate::Run));

    let mut ports = spec("ports", "p:1", ServiceMode::replicated(3));
    ports.endpoint_spec = Some(EndpointSpec {
        mode: None,
        ports: vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            publish_mode: Some(PublishMode::Host),
            ..Default::default()
        }],
    });
    let ports = create_service(&s, ports).await;

    let mut capped = spec("capped", "c:1", ServiceMode::replicated(3));
    capped.task_template.placement = Some(Placement {
        max_replicas: 1,
        ..Default::default()
    });
    let capped = create_service(&s, capped).await;

    let mut gpu = spec("gpu", "g:1", ServiceMode::replicated(3));
    reserve(&mut gpu, 0, vec![GenericResource::discrete("GPU", 1)]);
    let gpu = create_service(&s, gpu).await;

    let explained = |id: &str, err: &str| {
        let r = running(&s, id);
        let stuck: Vec<_> = tasks(&s, id)
            .into_iter()
            .filter(|t| t.status.state == TaskState::Pending)
            .collect();
        (r.len() == 2 && stuck.len() == 1 && stuck[0].status.err == err).then_some(r)
    };
    let p = eventually("2 port holders, one explained", || {
        explained(
            &ports,
            "no suitable node (host-mode port already in use on 2 nodes)",
        )
    })
    .await;
    assert_ne!(p[0].node_id, p[1].node_id);
    let c = eventually("2 capped, one explained", || {
        explained(
            &capped,
            "no suitable node (max replicas per node limit exceed)",
        )
    })
    .await;
    assert_ne!(c[0].node_id, c[1].node_id);
    let g = eventually("2 GPU tasks, one explained", || {
        explained(&gpu, "no suitable node (insufficient resources on 2 nodes)")
    })
    .await;
    let units: BTreeSet<String> = g
        .iter()
        .flat_map(|t| t.generic_resources.iter())
        .filter_map(|r| r.named_resource_spec.as_ref().map(|n| n.value.clone()))
        .collect();
    assert_eq!(
        units,
        BTreeSet::from(["gpu-a".to_string(), "gpu-b".to_string()])
    );
    assert!(g.iter().all(|t| t.node_id == ids[0]));
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_where_the_service_keeps_failing_are_avoided() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    // `bad` is created first, so it wins every tie.
    let bad = add_node(&s, node("bad")).await;
    let good = add_node(&s, node("good")).await;
    let b = bad.clone();
    let agent = FakeAgent::start(
        s.clone(),
        [bad.clone(), good.clone()],
        Arc::new(move |t| {
            if t.node_id == b {
                Fate::FailOnStart
            } else {
                Fate::Run
            }
        }),
    );
    let id = create_service(&s, spec("svc", "svc:1", ServiceMode::replicated(1))).await;
    let r = eventually("the task runs on the good node", || {
        let r = running(&s, &id);
        (r.len() == 1).then_some(r)
    })
    .await;
    assert_eq!(r[0].node_id, good);
    let failed_on_bad = tasks(&s, &id)
        .iter()
        .filter(|t| t.node_id == bad && t.status.state == TaskState::Failed)
        .count();
    assert!(failed_on_bad >= 1);
    agent.stop().await;
    h.stop().await;
}

/// A placement's own commit must take the task out of the scheduler's pending set: otherwise
/// the next event of its service (an update status, a label) plans the task again from its
/// old version, the write is refused as out of sequence, and the scheduler retries at once,
/// forever (found by `shoal bench gitops`: thousands of refused writes a second at idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_task_is_not_placed_again_when_its_service_changes() {
    let config = test_config();
    let metrics = config.metrics.clone();
    let h = Harness::single(config).await;
    let s = h.store(1).clone();
    let nodes = vec![add_node(&s, node("n1")).await];
    let _agent = FakeAgent::start(s.clone(), nodes, always(Fate::Run));
    let id = create_service(&s, spec("web", "web:1", ServiceMode::replicated(2))).await;
    eventually("2 running tasks", || {
        (running(&s, &id).len() == 2).then_some(())
    })
    .await;
    // A change of the service that needs no new task.
    update_service(&s, &id, |sp| {
        sp.labels.insert("touched".into(), "yes".into());
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = s.current_revision();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let committed = s.current_revision() - before;
    assert!(
        committed < 10,
        "the store kept committing while nothing changed: {committed} revisions in 1 s"
    );
    // Refused decisions are counted, so such a loop shows on /metrics.
    assert!(
        metrics.conflicts.get() < 10,
        "{} refused decisions",
        metrics.conflicts.get()
    );
    assert_eq!(running(&s, &id).len(), 2);
}
