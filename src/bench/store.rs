//! `shoal bench store`: managers on loopback (gRPC over mutual TLS, synced RocksDB in a real
//! directory), N clients each updating its own object in a loop; reports throughput and latency,
//! the disk's fdatasync p50 measured in the same run, and optionally write unavailability after
//! killing the leader. The store seals everything at rest, as a manager's does; with
//! `--compare-encryption` the same workload runs a second time on stores that write in clear,
//! and the report says what sealing costs.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use shoal_store::codec::Encoding;
use shoal_store::model::{new_id, Config, ConfigSpec, Meta, NodeRole, Object};
use shoal_store::{PeerNode, Store, StoreConfig, StoreError, Txn};
use tokio::sync::oneshot;

use super::stats::{fsync_p50_ms, round3, Latencies};
use crate::ca::{manager_client_tls_config, server_tls_config, NodeCertSpec, NodeIdentity, RootCa};
use crate::net::store_peer::{serve, GrpcTransport};

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct StoreBench {
    /// Number of managers.
    pub managers: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// How long to drive writes.
    pub duration: Duration,
    /// Size of each object's payload.
    pub value_bytes: usize,
    /// Where the managers keep their data (a real disk; default: the system temp dir).
    pub dir: Option<PathBuf>,
    /// Kill the leader this many times during the run (evenly spaced) and measure unavailability.
    pub leader_kills: usize,
    /// Run the workload a second time with sealing at rest off, and report the difference.
    pub compare_encryption: bool,
    /// Run the workload a second time with log entries and peer messages in JSON instead of
    /// the binary encoding, and report the difference.
    pub compare_encoding: bool,
    /// Run the same workload on three etcd members (on the PATH) after shoal's, and report the
    /// ratio.
    pub compare_etcd: bool,
    /// Which managers the clients send their writes to.
    pub client_at: ClientAt,
    /// Each manager a process of its own in a network namespace of its own
    /// ([`super::store_processes`]), instead of all in this one.
    pub processes: bool,
}

/// Which managers the clients of `bench store` talk to (a follower forwards each write to
/// the leader, which costs a hop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAt {
    /// Client `c` talks to manager `c mod managers`: the leader and every follower.
    Spread,
    /// Every client talks to the leader.
    Leader,
    /// Every client talks to a follower (client `c` to follower `c mod followers`).
    Follower,
}

impl ClientAt {
    /// The manager (0-based; the first is the leader at the start) client `c` of `managers`
    /// talks to first.
    pub fn manager_of(self, c: usize, managers: usize) -> usize {
        match self {
            ClientAt::Spread => c % managers,
            ClientAt::Leader => 0,
            ClientAt::Follower => 1 + c % (managers - 1),
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ClientAt::Spread => "spread",
            ClientAt::Leader => "leader",
            ClientAt::Follower => "follower",
        }
    }
}

/// A running store peer server.
pub(super) struct Server {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops the server like a crash would: a short grace period for open connections to be
    /// told to go away, then the listener and everything still open is dropped.
    pub(super) async fn kill(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_millis(500), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// How the managers of one run keep and send what they write.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// Whether their stores seal at rest (false only to measure what sealing costs).
    pub seal_at_rest: bool,
    /// How they encode log entries and peer messages (JSON only to measure the binary
    /// encoding's gain).
    pub encoding: Encoding,
}

impl Variant {
    /// What every manager does: sealed at rest, binary.
    pub const MANAGER: Variant = Variant {
        seal_at_rest: true,
        encoding: Encoding::Binary,
    };
}

/// One manager of the benchmark: killed and restarted in place (same id, address and directory)
/// when the run kills leaders.
pub(super) struct Member {
    raft_id: u64,
    pub(super) addr: String,
    /// None while killed: a killed member's store must be dropped, or its database stays
    /// locked and it cannot be reopened.
    store: std::sync::RwLock<Option<Store>>,
    server: std::sync::Mutex<Option<Server>>,
    variant: Variant,
}

/// Opens a manager's store from `dir` and serves it on `listener`.
pub(super) async fn open_member(
    ca: &RootCa,
    cluster: &str,
    raft_id: u64,
    dir: &std::path::Path,
    listener: tokio::net::TcpListener,
    variant: Variant,
) -> anyhow::Result<(Store, Server)> {
    let addr = listener.local_addr()?.to_string();
    let identity = NodeIdentity::new(
        format!("bench-manager-{raft_id}"),
        NodeRole::Manager,
        cluster.to_string(),
    );
    let creds = ca.issue_credentials(
        &NodeCertSpec::new(identity).with_ips(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
    )?;
    let transport = Arc::new(GrpcTransport::new(manager_client_tls_config(&creds)?));
    let mut cfg = StoreConfig::new(raft_id, addr, dir.join(format!("manager-{raft_id}")));
    cfg.node_id = format!("bench-manager-{raft_id}");
    // Clients give up an attempt well before an election would end, then retry elsewhere.
    cfg.attempt_timeout = Duration::from_millis(300);
    cfg.write_deadline = Duration::from_secs(10);
    cfg.seal_at_rest = variant.seal_at_rest;
    cfg.encoding = variant.encoding;
    let store = Store::open(cfg, transport).await?;
    let (tx, rx) = oneshot::channel::<()>();
    let tls = server_tls_config(&creds)?;
    let s = store.clone();
    let server = tokio::spawn(async move {
        if let Err(e) = serve(listener, tls, s, async {
            let _ = rx.await;
        })
        .await
        {
            tracing::warn!("store peer server ended: {e}");
        }
    });
    Ok((
        store,
        Server {
            stop: tx,
            task: server,
        },
    ))
}

/// Starts a manager whose store seals at rest, as every manager's does.
pub(super) async fn start_member(
    ca: &RootCa,
    cluster: &str,
    raft_id: u64,
    dir: &std::path::Path,
) -> anyhow::Result<Arc<Member>> {
    start_member_with(ca, cluster, raft_id, dir, Variant::MANAGER).await
}

/// Starts a manager of `variant`.
async fn start_member_with(
    ca: &RootCa,
    cluster: &str,
    raft_id: u64,
    dir: &std::path::Path,
    variant: Variant,
) -> anyhow::Result<Arc<Member>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (store, server) = open_member(ca, cluster, raft_id, dir, listener, variant).await?;
    Ok(Arc::new(Member {
        raft_id,
        addr,
        store: std::sync::RwLock::new(Some(store)),
        server: std::sync::Mutex::new(Some(server)),
        variant,
    }))
}

impl Member {
    /// The member's store; panics when it is killed (only for members known to run).
    pub(super) fn store(&self) -> Store {
        self.running().expect("the member is running")
    }

    fn running(&self) -> Option<Store> {
        self.store.read().unwrap().clone()
    }

    pub(super) async fn kill(&self) {
        // The store first: from this moment the member neither commits nor answers, as after a
        // crash (stopping the server first would let it go on leading through the grace period).
        let store = self.store.write().unwrap().take();
        if let Some(store) = store {
            store.shutdown().await;
        }
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.kill().await;
        }
    }

    /// Restarts a killed member from its directory on its old address.
    async fn restart(
        &self,
        ca: &RootCa,
        cluster: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        // The old server lets go of the port once its connections have closed, and the old
        // instance's RocksDB stays locked until its last handle (a client mid-write, a Raft task
        // winding down) is dropped: retry both for a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (store, server) = loop {
            let attempt = async {
                let listener = tokio::net::TcpListener::bind(&self.addr)
                    .await
                    .with_context(|| format!("rebinding {}", self.addr))?;
                open_member(ca, cluster, self.raft_id, dir, listener, self.variant).await
            };
            match attempt.await {
                Ok(opened) => break opened,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("restarting manager {}: {e:#}", self.raft_id);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        *self.store.write().unwrap() = Some(store);
        *self.server.lock().unwrap() = Some(server);
        Ok(())
    }
}

pub(super) fn payload(value_bytes: usize, counter: u64) -> Vec<u8> {
    let mut v = vec![b'x'; value_bytes.max(8)];
    v[..8].copy_from_slice(&counter.to_be_bytes());
    v
}

/// What one run of the workload measured.
pub(super) struct Outcome {
    pub(super) elapsed: Duration,
    pub(super) lat: Latencies,
    pub(super) errors: u64,
    /// Time from each leader kill to the first write started after it that committed.
    pub(super) unavailable: Latencies,
    pub(super) each_kill_ms: Vec<f64>,
    pub(super) elected_ms: Vec<f64>,
}

impl Outcome {
    fn ops_per_s(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: StoreBench) -> anyhow::Result<serde_json::Value> {
    if b.managers == 0 || b.clients == 0 {
        bail!("--managers and --clients must be at least 1");
    }
    if b.leader_kills > 0 && b.managers < 3 {
        bail!("--leader-kills needs at least 3 managers (a quorum must survive)");
    }
    if b.client_at == ClientAt::Follower && b.managers < 2 {
        bail!("--client-at follower needs at least 2 managers (one of them leads)");
    }
    if b.compare_etcd && b.managers != 3 {
        bail!("--compare-etcd runs three etcd members: use --managers 3");
    }
    if b.processes && b.leader_kills > 0 {
        bail!("--leader-kills runs with the managers in this process only; with managers as processes, `shoal chaos run --scenario leader-kill` kills real leaders and reports the unavailability");
    }
    let base = super::data_dir(b.dir.as_deref())?;
    let fsync_p50 = fsync_p50_ms(base.path(), 300).context("measuring fdatasync")?;
    crate::ca::install_crypto_provider();
    let ca = RootCa::generate()?;
    let drive_once = |dir: PathBuf, variant: Variant| {
        let (b, ca) = (&b, &ca);
        async move {
            if b.processes {
                super::store_processes::drive(b, ca, &dir, variant).await
            } else {
                drive(b, ca, &dir, variant).await
            }
        }
    };
    let mut sealed = drive_once(base.path().to_path_buf(), Variant::MANAGER).await?;
    let ops = sealed.lat.len();
    let mut report = json!({
        "bench": "store",
        "managers": b.managers,
        "processes": b.processes,
        "client_at": b.client_at.name(),
        "clients": b.clients,
        "encoding": Variant::MANAGER.encoding.name(),
        "value_bytes": b.value_bytes,
        "duration_s": round3(sealed.elapsed.as_secs_f64()),
        "ops": ops,
        "ops_per_s": round3(sealed.ops_per_s()),
        "p50_ms": round3(sealed.lat.quantile_ms(0.5)),
        "p99_ms": round3(sealed.lat.quantile_ms(0.99)),
        "max_ms": round3(sealed.lat.max_ms()),
        "fsync_p50_ms": round3(fsync_p50),
        "errors": sealed.errors,
    });
    if b.leader_kills > 0 {
        report["leader_kills"] = json!(sealed.unavailable.len());
        report["unavailable_p50_ms"] = json!(round3(sealed.unavailable.quantile_ms(0.5)));
        report["unavailable_max_ms"] = json!(round3(sealed.unavailable.max_ms()));
        report["unavailable_ms"] = json!(sealed.each_kill_ms);
        report["new_leader_ms"] = json!(sealed.elected_ms);
    }
    if b.compare_encryption {
        // The same workload on fresh stores that write in clear, right after the sealed run.
        let unsealed = Variant {
            seal_at_rest: false,
            ..Variant::MANAGER
        };
        let mut clear = drive_once(base.path().join("unsealed"), unsealed).await?;
        let (with, without) = (sealed.ops_per_s(), clear.ops_per_s());
        report["sealed_ops_per_s"] = json!(round3(with));
        report["unsealed_ops_per_s"] = json!(round3(without));
        report["unsealed_p50_ms"] = json!(round3(clear.lat.quantile_ms(0.5)));
        report["unsealed_p99_ms"] = json!(round3(clear.lat.quantile_ms(0.99)));
        report["unsealed_errors"] = json!(clear.errors);
        // Throughput lost to sealing, in percent of the throughput in clear (negative when the
        // sealed run happened to be faster: the difference is then within run-to-run noise).
        report["encryption_cost_pct"] = json!(percent_of(without - with, without));
    }
    if b.compare_encoding {
        // The same workload on fresh stores that write and send JSON, right after.
        let in_json = Variant {
            encoding: Encoding::Json,
            ..Variant::MANAGER
        };
        let mut json_run = drive_once(base.path().join("json"), in_json).await?;
        let (binary, json) = (sealed.ops_per_s(), json_run.ops_per_s());
        report["binary_ops_per_s"] = json!(round3(binary));
        report["json_ops_per_s"] = json!(round3(json));
        report["json_p50_ms"] = json!(round3(json_run.lat.quantile_ms(0.5)));
        report["json_p99_ms"] = json!(round3(json_run.lat.quantile_ms(0.99)));
        report["json_errors"] = json!(json_run.errors);
        // Throughput gained by the binary encoding, in percent of JSON's (negative when the
        // JSON run happened to be faster).
        report["encoding_gain_pct"] = json!(percent_of(binary - json, json));
    }
    if b.compare_etcd {
        // etcd on the same disk, the same clients and values, right after.
        let mut etcd = super::etcd_store::run(
            b.clients,
            b.value_bytes,
            b.duration,
            b.client_at,
            base.path(),
        )
        .await
        .context("etcd side by side")?;
        report["etcd_ops_per_s"] = json!(round3(etcd.ops_per_s));
        report["etcd_p50_ms"] = json!(round3(etcd.lat.quantile_ms(0.5)));
        report["etcd_p99_ms"] = json!(round3(etcd.lat.quantile_ms(0.99)));
        report["etcd_errors"] = json!(etcd.errors);
        report["ratio_vs_etcd"] = json!(if etcd.ops_per_s > 0.0 {
            round3(sealed.ops_per_s() / etcd.ops_per_s)
        } else {
            0.0
        });
    }
    Ok(report)
}

/// `part` in percent of `base`, to one decimal (0 when `base` is 0).
fn percent_of(part: f64, base: f64) -> f64 {
    if base > 0.0 {
        (part / base * 1000.0).round() / 10.0
    } else {
        0.0
    }
}

/// Starts `b.managers` managers in `dir` (sealing at rest or not), drives the workload on them
/// and stops them.
async fn drive(
    b: &StoreBench,
    ca: &RootCa,
    dir: &std::path::Path,
    variant: Variant,
) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cluster = new_id();
    let mut members = Vec::new();
    for id in 1..=b.managers {
        members.push(start_member_with(ca, &cluster, id, dir, variant).await?);
    }
    members[0].store().initialize().await?;
    wait_for(|| members[0].store().is_leader(), Duration::from_secs(10)).await?;
    for (i, m) in members.iter().enumerate().skip(1) {
        let node = PeerNode {
            addr: m.addr.clone(),
            node_id: m.store().config().node_id.clone(),
        };
        members[0].store().add_member(i as u64 + 1, node).await?;
    }

    // One object per client: clients never conflict, so every op is one committed update.
    let objects = create_objects(
        &members[0].store(),
        (0..b.clients).map(|c| format!("bench-{c}")),
        b.value_bytes,
    )
    .await?;

    let members = Arc::new(members);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let kills: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let mut elected_ms = Vec::new();
    let errors = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for (c, obj) in objects.into_iter().enumerate() {
        let members = members.clone();
        let stop = stop.clone();
        let errors = errors.clone();
        let value_bytes = b.value_bytes;
        let first = b.client_at.manager_of(c, members.len());
        clients.push(tokio::spawn(async move {
            let n = members.len();
            client(
                |i| members[i].running(),
                n,
                first,
                obj,
                value_bytes,
                stop,
                errors,
            )
            .await
        }));
    }

    if b.leader_kills > 0 {
        // Kill the leader, let the others elect a new one, restart the killed member from its
        // directory, and repeat: every kill starts from a full cluster.
        let slice = b.duration / (b.leader_kills as u32 + 1);
        for _ in 0..b.leader_kills {
            tokio::time::sleep(slice).await;
            let leader = members
                .iter()
                .find(|m| m.running().is_some_and(|s| s.is_leader()));
            if let Some(leader) = leader {
                let killed_at = Instant::now();
                kills.lock().unwrap().push(killed_at);
                leader.kill().await;
                // When another member took over (polled every millisecond).
                let deadline = killed_at + slice / 2;
                while Instant::now() < deadline {
                    if members
                        .iter()
                        .any(|m| m.running().is_some_and(|s| s.is_leader()))
                    {
                        elected_ms.push(round3(super::stats::ms(killed_at.elapsed())));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
                if let Err(e) = leader.restart(ca, &cluster, dir).await {
                    // In one process the killed member's RocksDB can stay locked by handles its
                    // connections still hold; measure what was killed so far and stop killing.
                    tracing::warn!("restarting a killed manager: {e:#}; no further kills");
                    break;
                }
            }
        }
        let spent = started.elapsed();
        if spent < b.duration {
            tokio::time::sleep(b.duration - spent).await;
        }
    } else {
        tokio::time::sleep(b.duration).await;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut lat = Latencies::default();
    let mut completions = Vec::new();
    for c in clients {
        let (l, comp) = c.await?;
        lat.merge(l);
        completions.extend(comp);
    }
    // Unavailability after each kill: time until the first write that started after the kill
    // has committed.
    let mut unavailable = Latencies::default();
    let mut each_kill_ms = Vec::new();
    for k in kills.lock().unwrap().iter() {
        if let Some(first) = completions
            .iter()
            .filter(|(start, _)| start >= k)
            .map(|(_, end)| *end)
            .min()
        {
            unavailable.record(first - *k);
            each_kill_ms.push(round3(super::stats::ms(first - *k)));
        }
    }
    for m in members.iter() {
        if m.running().is_some() {
            m.kill().await;
        }
    }
    Ok(Outcome {
        elapsed,
        lat,
        errors: errors.load(Ordering::Relaxed),
        unavailable,
        each_kill_ms,
        elected_ms,
    })
}

/// One client: updates its own object `obj` in a loop until `stop`, through manager `first`
/// of the `n` that `store(i)` gives (`None`: killed), moving on to the next after an error.
/// Its latencies, and when each committed write started and ended.
pub(super) async fn client(
    store: impl Fn(usize) -> Option<Store>,
    n: usize,
    first: usize,
    mut obj: Config,
    value_bytes: usize,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> (Latencies, Vec<(Instant, Instant)>) {
    let mut lat = Latencies::default();
    let mut completions: Vec<(Instant, Instant)> = Vec::new();
    let mut at = first;
    let mut counter = 1u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(store) = store(at) else {
            at = (at + 1) % n;
            tokio::task::yield_now().await;
            continue;
        };
        let mut next = obj.clone();
        next.spec.data = payload(value_bytes, counter);
        let t = Instant::now();
        match store.submit(Txn::new().update(next)).await {
            Ok(done) => {
                let now = Instant::now();
                lat.record(now - t);
                completions.push((t, now));
                counter += 1;
                if let Some(Object::Config(c)) = done.objects.first().map(|o| o.as_ref()) {
                    obj = c.clone();
                }
            }
            Err(StoreError::Rejected(_)) => {
                // Our previous attempt committed under a retry we did not see: reload.
                if let Some(cur) = store.view().get::<Config>(&obj.meta.id) {
                    obj = cur.to_owned_value();
                }
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                at = (at + 1) % n;
                // Errors can come back at once (a member shutting down): do not spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    (lat, completions)
}

/// Creates one object per client name through `store`, 256 to a transaction.
pub(super) async fn create_objects(
    store: &Store,
    names: impl Iterator<Item = String>,
    value_bytes: usize,
) -> anyhow::Result<Vec<Config>> {
    let names: Vec<String> = names.collect();
    let mut objects = Vec::new();
    for chunk in names.chunks(256) {
        let mut txn = Txn::new();
        for name in chunk {
            txn = txn.create(Config {
                meta: Meta::with_id(new_id()),
                spec: ConfigSpec {
                    name: name.clone(),
                    data: payload(value_bytes, 0),
                    ..Default::default()
                },
            });
        }
        let committed = store.submit(txn).await?;
        for o in committed.objects {
            if let Object::Config(c) = o.as_ref() {
                objects.push(c.clone());
            }
        }
    }
    Ok(objects)
}

pub(super) async fn wait_for(
    mut cond: impl FnMut() -> bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("condition not reached within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
