//! `shoal bench api`: one node, a swarm with 10 services, then the latency of the calls the CLI
//! makes most, over the API's unix socket: `GET /services/{id}`, `GET /services`,
//! `GET /tasks?filters=...` and `POST /services/{id}/update` (a replicated commit).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::one_node::{urlencode, Client, OneNode};
use super::stats::{round3, Latencies};
use crate::agent::executor::{ExecutorChoice, ExecutorKind};

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct ApiBench {
    /// Calls per read operation.
    pub reads: usize,
    /// Service updates.
    pub updates: usize,
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
    let mut one = OneNode::start(
        "bench-api",
        ExecutorChoice {
            kind: Some(ExecutorKind::Sim),
            ..Default::default()
        },
    )
    .await?;
    let c = &mut one.client;
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
    let mut get = time_get(c, &get_path, b.reads).await?;
    let mut list = time_get(c, "/v1.44/services", b.reads).await?;
    let filter = format!(
        "/v1.44/tasks?filters={}",
        urlencode(&json!({"service": {&id: true}, "desired-state": {"running": true}}).to_string())
    );
    let mut tasks = time_get(c, &filter, b.reads).await?;
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
    one.stop().await;
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
