//! `shoal bench e2e`: the whole path from `POST /services/create` to every task RUNNING, with
//! three managers in this process on loopback (real store, gRPC over mutual TLS, controllers,
//! dispatchers) and N simulated nodes (sim executor) joined with the worker token.
//!
//! Figures: the time until all M replicas of one service run (`total_s`,
//! `tasks_running_per_s`), the create -> RUNNING latency of a series of one-replica services
//! (`p50_ms`, `p99_ms`), and CPU. Everything shares this process; the simulated nodes (which
//! stand for other machines) run on threads of their own, so CPU comes two ways:
//! `process_cpu_s` and `idle_cpu_cores` are the whole process's, `managers_cpu_s` and
//! `managers_idle_cpu_cores` leave the simulated nodes out (the three managers together: an
//! upper bound for the leader's). The `*_cpu_s` figures cover the M-replica run, the
//! `*_idle_cpu_cores` ones the window in which the N agents only heart-beat.
//!
//! Over that idle window, `nodes_down_while_idle` counts the nodes that were marked anything
//! but READY (a false DOWN, since every simulated node keeps heart-beating).
//! `raft_terms_during_join` and `raft_terms_after_join` count the Raft terms that began while
//! the nodes joined and after (0: the leader never changed).
//!
//! `metrics_scrape_p50_ms`/`metrics_scrape_p99_ms` time the leader's whole `/metrics` text
//! (collected and encoded, without the HTTP hop) with every node and task in place, 20 times.
//!
//! With `SHOAL_BENCH_PROGRESS` set, the task counts per state are printed to stderr every second
//! during the M-replica run (to see which stage limits the rate).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use shoal_store::model::{Cluster, Kind, Node, NodeState, Object, TaskState};
use shoal_store::{Leadership, Store, WatchFilter, WatchMessage, WatchRequest, WatchStart};

use super::stats::{process_cpu_seconds, round3, threads_cpu_seconds, Latencies};
use crate::agent::simnodes::{SimNodes, SimNodesConfig};
use crate::agent::{ExecutorChoice, ExecutorKind};
use crate::api::ApiState;
use crate::node::{InitRequest, JoinSwarmRequest, NodeConfig, NodeRuntime, SwarmState};

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct E2eBench {
    /// Simulated nodes.
    pub nodes: usize,
    /// Replicas of the big service.
    pub tasks: usize,
    /// One-replica services created one after the other for the latency figures.
    pub singles: usize,
    /// Seconds of idle heart-beating to measure CPU over (0: skip).
    pub idle_secs: f64,
    /// Where the managers keep their data (default: the system temp dir).
    pub dir: Option<PathBuf>,
}

struct Manager {
    node: NodeRuntime,
    addr: String,
    socket: PathBuf,
    stop_api: tokio::sync::watch::Sender<bool>,
}

impl Manager {
    async fn store(&self) -> anyhow::Result<Store> {
        match self.node.state().await {
            SwarmState::Manager { manager, .. } => Ok(manager.store.clone()),
            _ => bail!("{} is not a manager", self.addr),
        }
    }
}

fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

async fn start_manager(base: &Path, i: usize) -> anyhow::Result<Manager> {
    let node = NodeRuntime::start(NodeConfig {
        data_dir: base.join(format!("manager-{i}")),
        hostname: Some(format!("manager-{i}")),
        executor: ExecutorChoice {
            kind: Some(ExecutorKind::Sim),
            ..ExecutorChoice::default()
        },
        force_new_cluster: false,
    })
    .await?;
    let socket = base.join(format!("manager-{i}.sock"));
    let (stop_api, rx) = tokio::sync::watch::channel(false);
    let state = ApiState {
        node: node.clone(),
        engine: None,
    };
    let path = socket.clone();
    tokio::spawn(async move {
        let mut rx = rx;
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::api::serve_unix(state, &path, stop).await {
            tracing::warn!("bench API socket: {e}");
        }
    });
    Ok(Manager {
        node,
        addr: free_addr()?,
        socket,
        stop_api,
    })
}

/// POSTs JSON to the API on a unix socket; returns the status and the parsed body.
async fn post_json(socket: &Path, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

async fn create_service(socket: &Path, name: &str, replicas: usize) -> anyhow::Result<String> {
    let spec = json!({
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": "shoal-test/busybox:1", "Command": ["sleep", "3600"]}},
        "Mode": {"Replicated": {"Replicas": replicas}},
    });
    let (status, body) = post_json(socket, "/v1.41/services/create", &spec).await?;
    if status != 201 {
        bail!("POST /services/create answered {status}: {body}");
    }
    body["ID"]
        .as_str()
        .map(str::to_string)
        .context("no ID in the create answer")
}

/// The Raft term of whichever manager leads now (0 if none does).
async fn leader_term(managers: &[Manager]) -> anyhow::Result<u64> {
    for m in managers {
        if let Leadership::Leader { term } = *m.store().await?.leadership().borrow() {
            return Ok(term);
        }
    }
    Ok(0)
}

/// Name prefix of the simulated nodes' threads.
const SIM_THREADS: &str = "shoal-sim";

fn running_of(store: &Store, service_id: &str) -> usize {
    store
        .view()
        .tasks_of_service(service_id)
        .filter(|t| t.status.state == TaskState::Running)
        .count()
}

async fn wait_for(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(poll).await;
    }
    Ok(())
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: E2eBench) -> anyhow::Result<Value> {
    if b.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    let base = super::data_dir(b.dir.as_deref())?;
    crate::ca::install_crypto_provider();
    let mut managers = Vec::new();
    for i in 1..=3 {
        managers.push(start_manager(base.path(), i).await?);
    }
    managers[0]
        .node
        .init(InitRequest {
            listen_addr: managers[0].addr.clone(),
            advertise_addr: managers[0].addr.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("swarm init: {e}"))?;
    let first = managers[0].store().await?;
    let tokens = first
        .view()
        .list::<Cluster>()
        .next()
        .context("no cluster object")?
        .join_tokens
        .clone();
    for m in &managers[1..] {
        m.node
            .join(JoinSwarmRequest {
                listen_addr: m.addr.clone(),
                advertise_addr: m.addr.clone(),
                remote_addrs: Some(vec![managers[0].addr.clone()]),
                join_token: tokens.manager.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("manager join: {e}"))?;
    }
    let term_before_join = leader_term(&managers).await?;
    let started = Instant::now();
    // The simulated nodes stand for other machines: they get threads of their own, so the
    // thousands of agent tasks do not queue in front of the managers' tasks (the OS shares the
    // cores between the two runtimes instead), and their CPU can be told apart.
    let sim_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SIM_THREADS)
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
        .context("starting the simulated nodes' runtime")?;
    let sims = sim_runtime
        .spawn(SimNodes::start(SimNodesConfig {
            managers: managers.iter().map(|m| m.addr.clone()).collect(),
            count: b.nodes,
            join_token: tokens.worker.clone(),
            data_dir: None,
            hostname_prefix: "sim".into(),
            sim: Default::default(),
        }))
        .await
        .context("the simulated nodes' runtime stopped")??;
    let join_s = started.elapsed().as_secs_f64();
    wait_for(
        "every simulated node has a session",
        Duration::from_secs(60 + b.nodes as u64 / 20),
        Duration::from_millis(50),
        || sims.connected() == b.nodes,
    )
    .await?;
    let leader = {
        let mut found = None;
        for (i, m) in managers.iter().enumerate() {
            if m.store().await?.is_leader() {
                found = Some(i);
            }
        }
        found.context("no manager leads")?
    };
    let store = managers[leader].store().await?;
    let socket = managers[leader].socket.clone();
    let term_at_start = leader_term(&managers).await?;
    wait_for(
        "every node is READY",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            store
                .view()
                .list::<Node>()
                .filter(|n| n.status.state == NodeState::Ready)
                .count()
                == b.nodes + 3
        },
    )
    .await?;

    // The big service.
    let cpu0 = process_cpu_seconds();
    let sim_cpu0 = threads_cpu_seconds(SIM_THREADS);
    let t0 = Instant::now();
    let id = create_service(&socket, "bench-big", b.tasks).await?;
    let budget = Duration::from_secs(120 + b.tasks as u64 / 50);
    let progress = std::env::var_os("SHOAL_BENCH_PROGRESS").is_some().then(|| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                let mut counts = std::collections::BTreeMap::new();
                for t in store.view().tasks_of_service(&id) {
                    *counts.entry(t.status.state.as_str()).or_insert(0usize) += 1;
                }
                eprintln!("{:>6.1}s {counts:?}", t0.elapsed().as_secs_f64());
            }
        })
    });
    wait_for(
        &format!("{} replicas run (are the controllers running?)", b.tasks),
        budget,
        Duration::from_millis(5),
        || running_of(&store, &id) == b.tasks,
    )
    .await?;
    let total = t0.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    let cpu_big = process_cpu_seconds() - cpu0;
    let managers_cpu_big = cpu_big - (threads_cpu_seconds(SIM_THREADS) - sim_cpu0);

    // One-replica services, one at a time.
    let mut single = Latencies::default();
    for i in 0..b.singles {
        let t = Instant::now();
        let id = create_service(&socket, &format!("bench-single-{i}"), 1).await?;
        wait_for(
            "a one-replica service runs",
            Duration::from_secs(30),
            Duration::from_millis(1),
            || running_of(&store, &id) == 1,
        )
        .await?;
        single.record(t.elapsed());
    }

    // Heart-beating only; every node marked anything but READY meanwhile is counted.
    let mut went_down = std::collections::BTreeSet::new();
    let (idle_cpu_cores, managers_idle_cpu_cores) = if b.idle_secs > 0.0 {
        let mut watch = store
            .watch(
                WatchRequest::new(WatchStart::Now)
                    .filter(WatchFilter::kinds([Kind::Node]))
                    .buffer(1 << 16),
            )
            .await
            .context("watching the nodes")?;
        let c0 = process_cpu_seconds();
        let sim_c0 = threads_cpu_seconds(SIM_THREADS);
        let w0 = Instant::now();
        let idle = tokio::time::sleep(Duration::from_secs_f64(b.idle_secs));
        tokio::pin!(idle);
        loop {
            tokio::select! {
                _ = &mut idle => break,
                msg = watch.next() => match msg {
                    Some(Ok(WatchMessage::Commit(commit))) => {
                        for e in &commit.events {
                            if let Object::Node(n) = e.object.as_ref() {
                                if n.status.state != NodeState::Ready {
                                    went_down.insert(n.meta.id.clone());
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => bail!("the node watch ended: {e}"),
                    None => bail!("the node watch ended"),
                },
            }
        }
        let secs = w0.elapsed().as_secs_f64();
        let process = process_cpu_seconds() - c0;
        let sims = threads_cpu_seconds(SIM_THREADS) - sim_c0;
        (process / secs, (process - sims) / secs)
    } else {
        (0.0, 0.0)
    };
    let down = store
        .view()
        .list::<Node>()
        .filter(|n| n.status.state != NodeState::Ready)
        .count();

    let term_at_end = leader_term(&managers).await?;

    // What a Prometheus scrape of the leader costs with every node and task in place: the
    // node's whole `/metrics` text, collected and encoded (the HTTP hop left out).
    let mut scrapes = Latencies::default();
    let mut metrics_bytes = 0;
    for m in &managers {
        if m.store().await?.is_leader() {
            for _ in 0..20 {
                let t = Instant::now();
                metrics_bytes = m.node.metrics_text().await?.len();
                scrapes.record(t.elapsed());
            }
            break;
        }
    }

    sim_runtime
        .spawn(async move { sims.stop().await })
        .await
        .context("stopping the simulated nodes")?;
    sim_runtime.shutdown_background();
    for m in &managers {
        let _ = m.stop_api.send(true);
        m.node.shutdown().await;
    }
    let total_s = total.as_secs_f64();
    Ok(json!({
        "bench": "e2e",
        "nodes": b.nodes,
        "tasks": b.tasks,
        "join_s": round3(join_s),
        "total_s": round3(total_s),
        "tasks_running_per_s": round3(b.tasks as f64 / total_s),
        "singles": single.len(),
        "p50_ms": round3(single.quantile_ms(0.5)),
        "p99_ms": round3(single.quantile_ms(0.99)),
        "process_cpu_s": round3(cpu_big),
        "managers_cpu_s": round3(managers_cpu_big),
        "idle_secs": b.idle_secs,
        "idle_cpu_cores": round3(idle_cpu_cores),
        "managers_idle_cpu_cores": round3(managers_idle_cpu_cores),
        "metrics_scrape_p50_ms": round3(scrapes.quantile_ms(0.5)),
        "metrics_scrape_p99_ms": round3(scrapes.quantile_ms(0.99)),
        "metrics_bytes": metrics_bytes,
        "nodes_not_ready": down,
        "nodes_down_while_idle": went_down.len(),
        "raft_terms_during_join": term_at_start.saturating_sub(term_before_join),
        "raft_terms_after_join": term_at_end.saturating_sub(term_at_start),
        "cpu_note": "process_cpu_s and idle_cpu_cores: the whole process; managers_*: without the simulated nodes' threads (the three managers together, the benchmark's own polling included)",
    }))
}
