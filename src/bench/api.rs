//! `shoal bench api`: one node, a swarm with 10 services, then the latency of the calls the CLI
//! makes most, over the API's unix socket: `GET /services/{id}`, `GET /services`,
//! `GET /tasks?filters=...` and `POST /services/{id}/update` (a replicated commit).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use serde_json::{json, Value};

use super::stats::{round3, Latencies};
use crate::agent::executor::{ExecutorChoice, ExecutorKind};
use crate::api::ApiState;
use crate::node::{NodeConfig, NodeRuntime};

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct ApiBench {
    /// Calls per read operation.
    pub reads: usize,
    /// Service updates.
    pub updates: usize,
}

/// A keep-alive HTTP/1.1 connection to the API socket.
struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(socket: &Path) -> anyhow::Result<Client> {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { sender })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost");
        let bytes = match body {
            Some(b) => {
                req = req.header("Content-Type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        self.sender.ready().await?;
        let resp = self
            .sender
            .send_request(req.body(Full::new(bytes))?)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()))
        };
        Ok((status, v))
    }

    async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body).await?;
        if status != want {
            bail!("{method} {path}: expected {want}, got {status}: {v}");
        }
        Ok(v)
    }
}

/// Times `n` sequential GETs of `path`.
async fn time_get(c: &mut Client, path: &str, n: usize) -> anyhow::Result<Latencies> {
    let mut lat = Latencies::default();
    for _ in 0..n {
        let t = Instant::now();
        c.expect("GET", path, None, 200).await?;
        lat.record(t.elapsed());
    }
    Ok(lat)
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: ApiBench) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = NodeRuntime::start(NodeConfig {
        data_dir: dir.path().join("data"),
        hostname: Some("bench-api".into()),
        executor: ExecutorChoice {
            kind: Some(ExecutorKind::Sim),
            ..Default::default()
        },
    })
    .await?;
    let socket = dir.path().join("api.sock");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let state = ApiState {
        node: node.clone(),
        engine: None,
    };
    let serve_socket = socket.clone();
    let server = tokio::spawn(async move {
        crate::api::serve_unix(state, &serve_socket, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await
    });
    let mut client = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.is_none() {
        match Client::connect(&socket).await {
            Ok(c) => client = Some(c),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => return Err(e).context("connecting to the API socket"),
        }
    }
    let mut c = client.expect("connected");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    c.expect(
        "POST",
        "/v1.44/swarm/init",
        Some(json!({"ListenAddr": addr, "AdvertiseAddr": addr})),
        200,
    )
    .await?;
    let mut ids = Vec::new();
    for i in 0..10 {
        let spec = json!({
            "Name": format!("bench-{i}"),
            "Labels": {"bench": "api"},
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal-test/busybox:1", "Args": ["sleep", "100000"]}},
            "Mode": {"Replicated": {"Replicas": 2}},
        });
        let v = c
            .expect("POST", "/v1.44/services/create", Some(spec), 201)
            .await?;
        ids.push(v["ID"].as_str().context("service id")?.to_string());
    }
    // Let the orchestrator create the tasks first, so the task list has something to filter.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.expect("GET", "/v1.44/tasks", None, 200).await?;
        if v.as_array().map(|a| a.len()).unwrap_or(0) >= 20 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the 10 services did not get their 20 tasks within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let id = ids[3].clone();
    let get_path = format!("/v1.44/services/{id}");
    let mut get = time_get(&mut c, &get_path, b.reads).await?;
    let mut list = time_get(&mut c, "/v1.44/services", b.reads).await?;
    let filter = format!(
        "/v1.44/tasks?filters={}",
        urlencode(&json!({"service": {&id: true}, "desired-state": {"running": true}}).to_string())
    );
    let mut tasks = time_get(&mut c, &filter, b.reads).await?;
    let mut update = Latencies::default();
    for i in 0..b.updates {
        let svc = c.expect("GET", &get_path, None, 200).await?;
        let version = svc["Version"]["Index"]
            .as_u64()
            .context("service version")?;
        let mut spec = svc["Spec"].clone();
        spec["Labels"]["bench-round"] = json!(i.to_string());
        let path = format!("/v1.44/services/{id}/update?version={version}");
        let t = Instant::now();
        c.expect("POST", &path, Some(spec), 200).await?;
        update.record(t.elapsed());
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    node.shutdown().await;
    Ok(json!({
        "bench": "api",
        "services": 10,
        "reads": b.reads,
        "updates": b.updates,
        "get_service_p50_ms": round3(get.quantile_ms(0.5)),
        "get_service_p99_ms": round3(get.quantile_ms(0.99)),
        "list_services_p50_ms": round3(list.quantile_ms(0.5)),
        "list_services_p99_ms": round3(list.quantile_ms(0.99)),
        "list_tasks_filtered_p50_ms": round3(tasks.quantile_ms(0.5)),
        "list_tasks_filtered_p99_ms": round3(tasks.quantile_ms(0.99)),
        "update_service_p50_ms": round3(update.quantile_ms(0.5)),
        "update_service_p99_ms": round3(update.quantile_ms(0.99)),
    }))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
