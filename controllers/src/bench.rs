//! `shoal bench scheduler`: how fast the scheduler places tasks, in process, against a real
//! single-member store (on tmpfs when `/dev/shm` exists, so the disk is not what is measured).
//!
//! The benchmark creates `nodes` ready nodes and ten services whose tasks add up to `tasks`
//! (with `constraints`, each service is constrained to a tenth of the nodes by label and to
//! the Linux platform), creates all tasks unassigned, then starts the scheduler and measures
//! the time until every task is ASSIGNED in the store: loading the snapshot, deciding, and
//! committing the placements.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{
    new_id, ContainerSpec, Kind, Meta, Node, NodeAvailability, NodeDescription, NodeRole, NodeSpec,
    NodeState, NodeStatus, Object, Placement, Platform, ResourceRequirements, Resources, Service,
    ServiceMode, ServiceSpec, Task, TaskSpec, TaskState, TaskStatus, Timestamp, Version,
};
use shoal_store::{Store, StoreConfig, Txn, WatchFilter, WatchMessage, WatchRequest, WatchStart};

use crate::config::{ControllersConfig, Enabled};
use crate::leader::Controllers;

/// Result of a scheduler benchmark run.
#[derive(Clone, Debug, Serialize)]
pub struct SchedulerBenchReport {
    /// Nodes in the swarm.
    pub nodes: usize,
    /// Tasks placed.
    pub tasks: usize,
    /// Services the tasks belong to.
    pub services: usize,
    /// Whether services had placement constraints.
    pub constraints: bool,
    /// Seconds from starting the scheduler until every task was assigned.
    pub total_s: f64,
    /// Seconds from starting the scheduler until the first placement was committed (taking
    /// leadership, loading the snapshot, the first scheduling pass).
    pub first_placement_s: f64,
    /// Placements per second.
    pub placements_per_s: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting up the store failed.
    #[error("benchmark store: {0}")]
    Store(String),
    /// Tasks were still unassigned at the deadline.
    #[error("only {assigned} of {tasks} tasks were assigned within {timeout:?}")]
    Timeout {
        /// Tasks assigned.
        assigned: usize,
        /// Tasks created.
        tasks: usize,
        /// The deadline.
        timeout: Duration,
    },
}

const SERVICES: usize = 10;
const BATCH: usize = 500;

fn node(i: usize) -> Node {
    let mut spec = NodeSpec::new(NodeRole::Worker, NodeAvailability::Active);
    spec.labels
        .insert("group".into(), format!("g{}", i % SERVICES));
    spec.labels.insert("zone".into(), format!("z{}", i % 3));
    Node {
        meta: Meta::with_id(new_id()),
        spec,
        description: NodeDescription {
            hostname: format!("node-{i}"),
            platform: Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            },
            resources: Resources {
                nano_cpus: 64_000_000_000,
                memory_bytes: 256 << 30,
                generic_resources: Vec::new(),
            },
            ..Default::default()
        },
        status: NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: format!("10.0.{}.{}", i / 250, i % 250 + 1),
        },
        role: NodeRole::Worker,
        ..Default::default()
    }
}

fn service(k: usize, replicas: usize, constraints: bool) -> Service {
    let placement = constraints.then(|| Placement {
        constraints: vec![
            format!("node.labels.group==g{k}"),
            "node.platform.os==linux".into(),
        ],
        ..Default::default()
    });
    Service {
        meta: Meta::with_id(new_id()),
        spec: ServiceSpec {
            name: format!("bench-{k}"),
            task_template: TaskSpec {
                container_spec: Some(ContainerSpec {
                    image: "busybox:latest".into(),
                    args: vec!["sleep".into(), "1000".into()],
                    ..Default::default()
                }),
                resources: Some(ResourceRequirements {
                    limits: None,
                    reservations: Some(Resources {
                        nano_cpus: 10_000_000,
                        memory_bytes: 1 << 20,
                        generic_resources: Vec::new(),
                    }),
                }),
                placement,
                ..Default::default()
            },
            mode: ServiceMode::replicated(replicas as u64),
            ..Default::default()
        },
        spec_version: Version::at(1),
        ..Default::default()
    }
}

fn task(s: &Service, slot: u64) -> Task {
    Task {
        meta: Meta::with_id(new_id()),
        spec: s.spec.task_template.clone(),
        service_id: s.meta.id.clone(),
        slot,
        status: TaskStatus::new(TaskState::New, Timestamp::now(), "created"),
        desired_state: TaskState::Running,
        spec_version: s.spec_version,
        ..Default::default()
    }
}

async fn create_all(store: &Store, objects: Vec<Object>) -> Result<(), BenchError> {
    let chunks: Vec<Vec<Object>> = objects.chunks(BATCH).map(|c| c.to_vec()).collect();
    let results: Vec<_> = futures::stream::iter(chunks)
        .map(|chunk| {
            let store = store.clone();
            async move {
                let txn = chunk.into_iter().fold(Txn::new(), |t, o| t.create(o));
                store.submit(txn).await
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for r in results {
        r.map_err(|e| BenchError::Store(e.to_string()))?;
    }
    Ok(())
}

/// Runs the scheduler benchmark (see the module docs).
pub async fn scheduler(
    nodes: usize,
    tasks: usize,
    constraints: bool,
) -> Result<SchedulerBenchReport, BenchError> {
    let store_err = |e: &dyn std::fmt::Display| BenchError::Store(e.to_string());
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("shoal-bench-")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("shoal-bench-").tempdir()
    }
    .map_err(|e| store_err(&e))?;
    let net = LocalNetwork::new();
    let addr = "bench-1";
    let config = StoreConfig::new(1, addr, dir.path().join("store"));
    let store = Store::open(config, net.transport(addr))
        .await
        .map_err(|e| store_err(&e))?;
    net.register(addr, store.clone());
    store.initialize().await.map_err(|e| store_err(&e))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.is_leader() {
        if Instant::now() > deadline {
            return Err(BenchError::Store("the store did not elect itself".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    create_all(&store, (0..nodes).map(|i| Object::Node(node(i))).collect()).await?;
    let services: Vec<Service> = (0..SERVICES)
        .map(|k| {
            let share = tasks / SERVICES + usize::from(k < tasks % SERVICES);
            service(k, share, constraints)
        })
        .collect();
    create_all(
        &store,
        services.iter().cloned().map(Object::Service).collect(),
    )
    .await?;
    let all_tasks: Vec<Object> = services
        .iter()
        .flat_map(|s| {
            let n = s.spec.replicas().unwrap_or(0);
            (1..=n).map(move |slot| Object::Task(task(s, slot)))
        })
        .collect();
    create_all(&store, all_tasks).await?;

    let mut watch = store
        .watch(
            WatchRequest::new(WatchStart::Now)
                .filter(WatchFilter::kinds([Kind::Task]))
                .buffer(1 << 16),
        )
        .await
        .map_err(|e| store_err(&e))?;
    let config = ControllersConfig {
        enabled: Enabled {
            scheduler: true,
            ..Enabled::NONE
        },
        ..ControllersConfig::default()
    };
    let started = Instant::now();
    let handle = Controllers::start(store.clone(), config);
    let timeout = Duration::from_secs(600);
    let mut assigned = 0usize;
    let mut first = None;
    while assigned < tasks {
        let left = timeout.saturating_sub(started.elapsed());
        let msg = match tokio::time::timeout(left, watch.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(store_err(&e)),
            Ok(None) | Err(_) => {
                return Err(BenchError::Timeout {
                    assigned,
                    tasks,
                    timeout,
                })
            }
        };
        if let WatchMessage::Commit(c) = msg {
            assigned += c
                .events
                .iter()
                .filter(|e| {
                    let now = match e.object.as_ref() {
                        Object::Task(t) => t.status.state,
                        _ => return false,
                    };
                    let before = match e.prev.as_deref() {
                        Some(Object::Task(p)) => p.status.state,
                        _ => TaskState::New,
                    };
                    now == TaskState::Assigned && before < TaskState::Assigned
                })
                .count();
            if assigned > 0 && first.is_none() {
                first = Some(started.elapsed().as_secs_f64());
            }
        }
    }
    let total = started.elapsed().as_secs_f64();
    handle.shutdown().await;
    store.shutdown().await;
    drop(Arc::new(dir));
    Ok(SchedulerBenchReport {
        nodes,
        tasks,
        services: SERVICES,
        constraints,
        total_s: total,
        first_placement_s: first.unwrap_or(total),
        placements_per_s: tasks as f64 / total.max(f64::EPSILON),
    })
}
