//! `shoal bench dashboard`: the dashboard over a store holding a large swarm (objects written
//! straight into a one-member store, as the agents and controllers would have left them).
//!
//! Measures, over real HTTP on loopback: the first render of the Overview, Services and Nodes
//! pages (cold: the first request each), then the median of a few more; and the event stream's
//! lag behind a rollout that replaces every task (old tasks shut down, new ones created running,
//! in transactions of [`ROLLOUT_BATCH`]), from each commit to the first SSE message whose id
//! covers it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::{json, Value};
use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{
    ContainerSpec, Health, ManagerStatus, Meta, Node, NodeAvailability, NodeDescription, NodeRole,
    NodeSpec, NodeState, NodeStatus, Object, Reachability, ResourceRequirements, Resources,
    Service, ServiceHealth, ServiceMode, ServiceSpec, Task, TaskSpec, TaskState, TaskStatus,
    Timestamp, Version,
};
use shoal_store::{Store, StoreConfig, Txn};

use super::stats::{ms, round3, Latencies};
use crate::dashboard::auth::Access;
use crate::dashboard::Dashboard;

/// Tasks replaced per rollout transaction.
pub const ROLLOUT_BATCH: usize = 250;
/// Services the tasks are spread over.
const SERVICES: usize = 10;

/// The benchmark's parameters.
pub struct DashboardBench {
    /// Nodes in the swarm.
    pub nodes: usize,
    /// Running tasks.
    pub tasks: usize,
}

/// A one-member store in `dir`, leading.
pub async fn open_store(dir: &Path) -> anyhow::Result<Store> {
    let net = LocalNetwork::new();
    let addr = "dashboard-1";
    let store = Store::open(
        StoreConfig::new(1, addr, dir.join("store")),
        net.transport(addr),
    )
    .await
    .context("opening the store")?;
    net.register(addr, store.clone());
    store.initialize().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.is_leader() {
        if Instant::now() > deadline {
            bail!("the store did not elect itself");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(store)
}

fn node(i: usize, managers: usize) -> Node {
    let manager = i < managers;
    let role = if manager {
        NodeRole::Manager
    } else {
        NodeRole::Worker
    };
    Node {
        meta: Meta::with_id(shoal_store::model::new_id()),
        spec: NodeSpec::new(role, NodeAvailability::Active),
        description: NodeDescription {
            hostname: format!("node-{i:04}"),
            resources: Resources {
                nano_cpus: 8_000_000_000,
                memory_bytes: 32 << 30,
                generic_resources: Vec::new(),
            },
            ..Default::default()
        },
        status: NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: format!("10.0.{}.{}", i / 250, i % 250 + 1),
        },
        manager_status: manager.then(|| ManagerStatus {
            leader: i == 0,
            reachability: Reachability::Reachable,
            addr: format!("10.0.0.{}:2377", i + 1),
        }),
        role,
        ..Default::default()
    }
}

fn service(k: usize, replicas: usize) -> Service {
    Service {
        meta: Meta::with_id(shoal_store::model::new_id()),
        spec: ServiceSpec {
            name: format!("svc-{k:02}"),
            task_template: TaskSpec {
                container_spec: Some(ContainerSpec::with_image("nginx:1.27")),
                resources: Some(ResourceRequirements {
                    limits: None,
                    reservations: Some(Resources {
                        nano_cpus: 100_000_000,
                        memory_bytes: 64 << 20,
                        generic_resources: Vec::new(),
                    }),
                }),
                ..Default::default()
            },
            mode: ServiceMode::replicated(replicas as u64),
            ..Default::default()
        },
        spec_version: Version::at(1),
        ..Default::default()
    }
}

fn task(s: &Service, slot: u64, node: &str, state: TaskState) -> Task {
    Task {
        meta: Meta::with_id(shoal_store::model::new_id()),
        spec: s.spec.task_template.clone(),
        service_id: s.meta.id.clone(),
        service_name: s.spec.name.clone(),
        slot,
        node_id: node.to_string(),
        status: TaskStatus::new(state, Timestamp::now(), state.as_str()),
        desired_state: TaskState::Running,
        spec_version: s.spec_version,
        ..Default::default()
    }
}

/// What [`populate`] wrote.
pub struct Populated {
    /// The services.
    pub services: Vec<Service>,
    /// The node ids.
    pub nodes: Vec<String>,
}

async fn create_all(store: &Store, objects: Vec<Object>) -> anyhow::Result<()> {
    for chunk in objects.chunks(500) {
        let txn = chunk.iter().cloned().fold(Txn::new(), |t, o| t.create(o));
        store.submit(txn).await?;
    }
    Ok(())
}

/// Writes a swarm of `nodes` nodes (the first three managers) and `tasks` running tasks over
/// ten services, with each service's health, straight into `store`.
pub async fn populate(store: &Store, nodes: usize, tasks: usize) -> anyhow::Result<Populated> {
    let node_objs: Vec<Node> = (0..nodes).map(|i| node(i, 3.min(nodes))).collect();
    let node_ids: Vec<String> = node_objs.iter().map(|n| n.meta.id.clone()).collect();
    create_all(store, node_objs.into_iter().map(Object::Node).collect()).await?;
    let services: Vec<Service> = (0..SERVICES)
        .map(|k| service(k, tasks / SERVICES + usize::from(k < tasks % SERVICES)))
        .collect();
    create_all(
        store,
        services.iter().cloned().map(Object::Service).collect(),
    )
    .await?;
    let mut all = Vec::with_capacity(tasks);
    let mut i = 0;
    for s in &services {
        for slot in 1..=s.spec.mode.replicas().unwrap_or(0) {
            all.push(Object::Task(task(
                s,
                slot,
                &node_ids[i % nodes.max(1)],
                TaskState::Running,
            )));
            i += 1;
        }
    }
    create_all(store, all).await?;
    let health: Vec<Object> = services
        .iter()
        .map(|s| {
            let n = s.spec.mode.replicas().unwrap_or(0);
            Object::Health(Health {
                meta: Meta::with_id(s.meta.id.clone()),
                service_name: s.spec.name.clone(),
                stack: String::new(),
                health: ServiceHealth {
                    observed_generation: 1,
                    desired: n,
                    running: n,
                    conditions: vec![shoal_store::model::Condition {
                        kind: "Ready".into(),
                        status: true,
                        reason: "TasksRunning".into(),
                        message: format!("{n} of {n} tasks run the current spec"),
                        last_transition: Timestamp::now(),
                    }],
                },
            })
        })
        .collect();
    create_all(store, health).await?;
    Ok(Populated {
        services,
        nodes: node_ids,
    })
}

/// A GET over a fresh HTTP/1.1 connection: the status, the body and how long it took.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes, Duration)> {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("Host", "localhost")
        .body(Empty::<Bytes>::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body, started.elapsed()))
}

/// Runs the benchmark.
pub async fn run(b: DashboardBench) -> anyhow::Result<Value> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("shoal-bench-")
            .tempdir_in(shm)?
    } else {
        tempfile::Builder::new().prefix("shoal-bench-").tempdir()?
    };
    let store = open_store(dir.path()).await?;
    let populated = populate(&store, b.nodes, b.tasks).await?;
    let access = Access::decide("127.0.0.1:0".parse()?, None, None).map_err(anyhow::Error::msg)?;
    let dashboard = Dashboard::new(store.clone(), access);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::dashboard::serve(dashboard, tcp, async {
        let _ = stop_rx.await;
    }));

    let mut report = json!({
        "bench": "dashboard",
        "nodes": b.nodes,
        "tasks": b.tasks,
        "services": SERVICES,
    });
    for (name, path) in [
        ("overview", "/"),
        ("services", "/services"),
        ("nodes", "/nodes"),
    ] {
        let (status, body, first) = get(addr, path).await?;
        if status != 200 {
            bail!("GET {path}: {status}");
        }
        let mut again = Latencies::default();
        for _ in 0..5 {
            again.record(get(addr, path).await?.2);
        }
        report[format!("{name}_first_render_ms")] = json!(round3(ms(first)));
        report[format!("{name}_render_p50_ms")] = json!(round3(again.quantile_ms(0.5)));
        report[format!("{name}_kib")] = json!(body.len() / 1024);
    }
    let (status, _, took) = get(
        addr,
        &format!("/services/{}", populated.services[0].meta.id),
    )
    .await?;
    if status != 200 {
        bail!("the service page answered {status}");
    }
    report["service_detail_render_ms"] = json!(round3(ms(took)));

    let lag = rollout_lag(&store, addr, &populated).await?;
    for (k, v) in lag.as_object().into_iter().flatten() {
        report[k] = v.clone();
    }
    let _ = stop_tx.send(());
    server.abort();
    store.shutdown().await;
    Ok(report)
}

/// Replaces every task while a client follows `/live`; the lag from each commit to the first
/// SSE message that covers it.
async fn rollout_lag(
    store: &Store,
    addr: std::net::SocketAddr,
    populated: &Populated,
) -> anyhow::Result<Value> {
    // The client: SSE message ids (revisions) and when each arrived.
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("/live?after={}", store.current_revision()))
        .header("Host", "localhost")
        .header("Accept", "text/event-stream")
        .body(Empty::<Bytes>::new())?;
    let res = sender.send_request(req).await?;
    if res.status() != 200 {
        bail!("GET /live: {}", res.status());
    }
    let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        let mut body = res.into_body();
        tokio::spawn(async move {
            let mut text = String::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let at = Instant::now();
                text.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = text.find("\n\n") {
                    let message: String = text.drain(..end + 2).collect();
                    if let Some(id) = message
                        .lines()
                        .find_map(|l| l.strip_prefix("id:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        seen.lock().expect("lock").push((id, at));
                    }
                }
            }
        })
    };

    let view = store.view();
    let old: Vec<Task> = populated
        .services
        .iter()
        .flat_map(|s| {
            view.tasks_of_service(&s.meta.id)
                .map(|t| t.to_owned_value())
                .collect::<Vec<_>>()
        })
        .collect();
    let started = Instant::now();
    let mut commits: Vec<(u64, Instant)> = Vec::new();
    let services: std::collections::HashMap<&str, &Service> = populated
        .services
        .iter()
        .map(|s| (s.meta.id.as_str(), s))
        .collect();
    for chunk in old.chunks(ROLLOUT_BATCH) {
        let mut txn = Txn::new();
        for t in chunk {
            let mut stopped = t.clone();
            stopped.desired_state = TaskState::Shutdown;
            stopped.status = TaskStatus::new(TaskState::Shutdown, Timestamp::now(), "shutdown");
            txn = txn.update(Object::Task(stopped));
            let s = services[t.service_id.as_str()];
            txn = txn.create(Object::Task(task(
                s,
                t.slot,
                &t.node_id,
                TaskState::Running,
            )));
        }
        let committed = store.submit(txn).await?;
        commits.push((committed.revision, Instant::now()));
    }
    let rollout = started.elapsed();
    let last = commits.last().map(|c| c.0).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if seen
            .lock()
            .expect("lock")
            .last()
            .is_some_and(|(id, _)| *id >= last)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the event stream did not reach revision {last} within 30 s of the rollout's end"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reader.abort();
    let seen = seen.lock().expect("lock").clone();
    let mut lag = Latencies::default();
    for (revision, at) in &commits {
        if let Some((_, arrived)) = seen.iter().find(|(id, _)| id >= revision) {
            lag.record(arrived.saturating_duration_since(*at));
        }
    }
    Ok(json!({
        "rollout_tasks": old.len(),
        "rollout_commits": commits.len(),
        "rollout_s": round3(rollout.as_secs_f64()),
        "sse_messages": seen.len(),
        "sse_messages_per_s": round3(seen.len() as f64 / rollout.as_secs_f64().max(1e-3)),
        "sse_lag_p50_ms": round3(lag.quantile_ms(0.5)),
        "sse_lag_p99_ms": round3(lag.quantile_ms(0.99)),
        "sse_lag_max_ms": round3(lag.max_ms()),
    }))
}
