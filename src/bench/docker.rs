//! `shoal bench docker`: one node running the docker executor on this machine's Docker Engine,
//! a single-node swarm, then for each replica count: `POST /services/create` of the test image
//! -> every replica RUNNING (polled through the API as `docker service ls` does, every 20 ms),
//! and `DELETE /services/{id}` -> every container of the service gone from the engine.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::query_parameters::ListContainersOptions;
use serde_json::{json, Value};

use super::one_node::{urlencode, Client, OneNode};
use super::stats::round3;
use crate::agent::executor::{ExecutorChoice, ExecutorKind};
use crate::exec::LABEL_SERVICE_ID;

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct DockerBench {
    /// The replica counts to measure, one service each, in order.
    pub replicas: Vec<u64>,
    /// The image every replica runs (it must be in the engine: there is no registry).
    pub image: String,
    /// The engine's address.
    pub docker_host: String,
}

/// How often the API is polled for progress.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait for one service to converge or go away.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: DockerBench) -> anyhow::Result<Value> {
    if b.replicas.is_empty() {
        bail!("--replicas needs at least one count");
    }
    let engine = crate::exec::docker::engine_client(&b.docker_host)
        .await
        .context("connecting to the Docker Engine")?;
    engine.inspect_image(&b.image).await.with_context(|| {
        format!(
            "the image {} is not in the engine (scripts/setup.sh builds it)",
            b.image
        )
    })?;
    let mut one = OneNode::start(
        "bench-docker",
        ExecutorChoice {
            kind: Some(ExecutorKind::Docker),
            docker_host: b.docker_host.clone(),
            run_dir: None,
        },
    )
    .await?;
    let mut report = json!({"bench": "docker", "image": b.image});
    let mut runs = Vec::new();
    for (i, replicas) in b.replicas.iter().copied().enumerate() {
        let result = measure(&mut one.client, &engine, &b.image, i, replicas).await;
        match result {
            Ok((running, removed)) => {
                report[format!("replicas_{replicas}_running_s")] = json!(round3(running));
                report[format!("replicas_{replicas}_removed_s")] = json!(round3(removed));
                runs.push(json!({"replicas": replicas, "running_s": round3(running), "removed_s": round3(removed)}));
            }
            Err(e) => {
                one.stop().await;
                return Err(e);
            }
        }
    }
    report["runs"] = json!(runs);
    one.stop().await;
    Ok(report)
}

/// One service of `replicas`: seconds to all running, then seconds to all containers removed.
async fn measure(
    c: &mut Client,
    engine: &bollard::Docker,
    image: &str,
    n: usize,
    replicas: u64,
) -> anyhow::Result<(f64, f64)> {
    let spec = json!({
        "Name": format!("bench-docker-{n}"),
        "TaskTemplate": {"ContainerSpec": {"Image": image, "Args": ["sleep", "100000"]}},
        "Mode": {"Replicated": {"Replicas": replicas}},
    });
    let started = Instant::now();
    let created = c
        .expect("POST", "/v1.44/services/create", Some(spec), 201)
        .await?;
    let id = created["ID"].as_str().context("service id")?.to_string();
    // Only the service list carries `ServiceStatus` (as `docker service ls` reads it).
    let filter = urlencode(&json!({"id": {&id: true}}).to_string());
    let path = format!("/v1.44/services?status=true&filters={filter}");
    loop {
        let list = c.expect("GET", &path, None, 200).await?;
        let running = list[0]["ServiceStatus"]["RunningTasks"]
            .as_u64()
            .unwrap_or(0);
        if running >= replicas {
            break;
        }
        if started.elapsed() > TIMEOUT {
            bail!("service {id}: {running} of {replicas} replicas running after {TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    let running_s = started.elapsed().as_secs_f64();

    let removing = Instant::now();
    c.expect("DELETE", &format!("/v1.44/services/{id}"), None, 200)
        .await?;
    let options = ListContainersOptions {
        all: true,
        filters: Some(std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_SERVICE_ID}={id}")],
        )])),
        ..Default::default()
    };
    loop {
        let left = engine.list_containers(Some(options.clone())).await?.len();
        if left == 0 {
            break;
        }
        if removing.elapsed() > TIMEOUT {
            bail!("service {id}: {left} containers still in the engine after {TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok((running_s, removing.elapsed().as_secs_f64()))
}
