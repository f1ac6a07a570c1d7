//! etcd side by side with `bench store --compare-etcd`: three etcd members on loopback, on the
//! same disk, take the same workload: each client puts its own key with a value of the same
//! size in a loop, for the same time, through etcd's gRPC `KV.Put` (the call `etcdctl put` and
//! etcd's own `benchmark put` make). Clients share one HTTP/2 connection per 16 of them, and the
//! connections are spread over the members as `--client-at` says.
//!
//! shoal's clients call the store in the process that holds it, while etcd's go over gRPC on
//! loopback from this process: etcd pays a client hop that shoal does not, which the report
//! says.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::codegen::http::uri::PathAndQuery;

use super::etcd_join::{etcdctl, start_three};
use super::stats::Latencies;
use super::store::{payload, ClientAt};

/// etcd's `etcdserverpb.PutRequest`, the fields we send.
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// etcd's `etcdserverpb.PutResponse`; its fields are not read.
#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {}

/// Clients per connection.
const CLIENTS_PER_CONNECTION: usize = 16;

/// What the etcd run measured.
pub struct EtcdStore {
    /// Committed puts per second.
    pub ops_per_s: f64,
    /// Their latencies.
    pub lat: Latencies,
    /// Puts that failed.
    pub errors: u64,
}

/// Runs `clients` clients putting `value_bytes` values against three etcd members in `dir` for
/// `duration`.
pub async fn run(
    clients: usize,
    value_bytes: usize,
    duration: Duration,
    client_at: ClientAt,
    dir: &Path,
) -> anyhow::Result<EtcdStore> {
    let dir = dir.join("etcd");
    std::fs::create_dir_all(&dir)?;
    let members = tokio::task::spawn_blocking(move || start_three(&dir))
        .await??
        .0;
    // Which member leads: `--client-at leader|follower` picks by it.
    let leader = {
        let endpoints: Vec<String> = members.iter().map(|m| m.client.clone()).collect();
        tokio::task::spawn_blocking(move || leader_of(&endpoints)).await??
    };
    let n = members.len();
    let order: Vec<usize> = (0..n).map(|k| (leader + k) % n).collect();
    let connections = clients.div_ceil(CLIENTS_PER_CONNECTION);
    let mut channels = Vec::new();
    for k in 0..connections {
        let member = &members[order[client_at.manager_of(k, n)]];
        let channel = tonic::transport::Endpoint::from_shared(member.client.clone())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to etcd at {}", member.client))?;
        channels.push(channel);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let channel = channels[c / CLIENTS_PER_CONNECTION].clone();
        let (stop, errors) = (stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            let mut lat = Latencies::default();
            let key = format!("bench-{c}").into_bytes();
            let mut counter = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let put = PutRequest {
                    key: key.clone(),
                    value: payload(value_bytes, counter),
                };
                let t = Instant::now();
                let done = async {
                    grpc.ready().await.map_err(|e| e.to_string())?;
                    let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
                    let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
                    grpc.unary(tonic::Request::new(put), path, codec)
                        .await
                        .map_err(|e| e.to_string())
                };
                match done.await {
                    Ok(_) => {
                        lat.record(t.elapsed());
                        counter += 1;
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            lat
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().min(duration).as_secs_f64();
    let mut lat = Latencies::default();
    for t in tasks {
        lat.merge(t.await?);
    }
    drop(members);
    Ok(EtcdStore {
        ops_per_s: lat.len() as f64 / elapsed,
        lat,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// The index in `endpoints` of the member that leads.
fn leader_of(endpoints: &[String]) -> anyhow::Result<usize> {
    let all = endpoints.join(",");
    let out = etcdctl(&all, &["endpoint", "status", "-w", "json"], None)?;
    let statuses: serde_json::Value = serde_json::from_str(&out)?;
    for s in statuses.as_array().into_iter().flatten() {
        let (me, leader) = (&s["Status"]["header"]["member_id"], &s["Status"]["leader"]);
        if me == leader {
            let endpoint = s["Endpoint"].as_str().unwrap_or_default();
            if let Some(i) = endpoints.iter().position(|e| e == endpoint) {
                return Ok(i);
            }
        }
    }
    anyhow::bail!("etcd: no member says it leads ({out})")
}
