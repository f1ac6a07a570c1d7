//! `shoal bench apply`: one node (sim executor), a stack of `--services` services, measured
//! side by side in one run:
//!
//! - a full `shoal apply` of the stack until every task runs, against `docker stack deploy` of
//!   the same file (the real CLI, against the same daemon, another stack name) until every
//!   task runs;
//! - `plan` and a no-op `apply` of the unchanged file, `--rounds` times each (p50/p99);
//! - `--watchers` HTTP watchers of the public watch API on the node, following a change of
//!   every service: time from the apply's commit to each watcher seeing that revision
//!   (p50/p99), and the daemon's resident memory per watcher.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::one_node::{Client, OneNode};
use super::stats::{round3, Latencies};
use crate::agent::executor::{ExecutorChoice, ExecutorKind};

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct ApplyBench {
    /// Services in the stack.
    pub services: usize,
    /// Replicas per service.
    pub replicas: usize,
    /// Plans and no-op applies timed.
    pub rounds: usize,
    /// Watchers following the apply.
    pub watchers: usize,
}

/// A compose file with `n` services of `replicas` replicas, one network; `label` changes every
/// service's labels (a change that rolls no task).
pub fn compose_file(n: usize, replicas: usize, label: &str) -> String {
    let mut s = String::from("version: \"3.8\"\nservices:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  svc{i}:\n    image: shoal-test/busybox:1\n    command: [\"sleep\", \"100000\"]\n    networks: [net]\n    deploy:\n      replicas: {replicas}\n      labels:\n        round: \"{label}\"\n"
        ));
    }
    s.push_str("networks:\n  net: {}\n");
    s
}

fn body(file: &str) -> Value {
    json!({"files": [{"name": "bench-compose.yml", "content": file}], "applied_by": "bench"})
}

/// Waits until `want` tasks of services whose names start with `prefix` run.
async fn all_running(c: &mut Client, prefix: &str, want: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = c.expect("GET", "/v1.44/tasks", None, 200).await?;
        let services = c.expect("GET", "/v1.44/services", None, 200).await?;
        let ours: std::collections::HashSet<&str> = services
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                s["Spec"]["Name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .filter_map(|s| s["ID"].as_str())
            .collect();
        let running = tasks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["ServiceID"].as_str().is_some_and(|s| ours.contains(s)))
            .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
            .count();
        if running >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{running} of {want} tasks of {prefix}* running after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: ApplyBench) -> anyhow::Result<Value> {
    let mut one = OneNode::start(
        "bench-apply",
        ExecutorChoice {
            kind: Some(ExecutorKind::Sim),
            ..Default::default()
        },
    )
    .await?;
    let socket = one.socket.clone();
    let c = &mut one.client;
    let tasks = b.services * b.replicas;
    let file = compose_file(b.services, b.replicas, "0");

    // docker stack deploy of the same file, as the CLI does it (many API calls).
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench-compose.yml");
    std::fs::write(&path, &file)?;
    let t = Instant::now();
    let out = tokio::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(&path)
        .arg("viadocker")
        .output()
        .await
        .context("running docker stack deploy")?;
    if !out.status.success() {
        bail!(
            "docker stack deploy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    all_running(c, "viadocker_", tasks).await?;
    let docker_full = t.elapsed();

    let t = Instant::now();
    c.expect(
        "POST",
        "/shoal/v1/stacks/viashoal/apply",
        Some(body(&file)),
        200,
    )
    .await?;
    all_running(c, "viashoal_", tasks).await?;
    let shoal_full = t.elapsed();

    let mut plan = Latencies::default();
    let mut noop = Latencies::default();
    for _ in 0..b.rounds {
        let t = Instant::now();
        let p = c
            .expect(
                "POST",
                "/shoal/v1/stacks/viashoal/plan",
                Some(body(&file)),
                200,
            )
            .await?;
        plan.record(t.elapsed());
        if p.get("next_revision").is_some() {
            bail!("the plan of the unchanged file has changes: {p}");
        }
        let t = Instant::now();
        let a = c
            .expect(
                "POST",
                "/shoal/v1/stacks/viashoal/apply",
                Some(body(&file)),
                200,
            )
            .await?;
        noop.record(t.elapsed());
        if a.get("revision").is_some() {
            bail!("the apply of the unchanged file wrote a revision: {a}");
        }
    }

    let watch = super::apply_watchers::follow(
        &socket,
        c,
        b.watchers,
        &compose_file(b.services, b.replicas, "1"),
    )
    .await?;
    one.stop().await;
    Ok(json!({
        "bench": "apply",
        "services": b.services,
        "tasks": tasks,
        "rounds": b.rounds,
        "full_apply_to_running_ms": round3(shoal_full.as_secs_f64() * 1e3),
        "docker_stack_deploy_to_running_ms": round3(docker_full.as_secs_f64() * 1e3),
        "full_apply_vs_docker_ratio": round3(shoal_full.as_secs_f64() / docker_full.as_secs_f64()),
        "plan_p50_ms": round3(plan.quantile_ms(0.5)),
        "plan_p99_ms": round3(plan.quantile_ms(0.99)),
        "noop_apply_p50_ms": round3(noop.quantile_ms(0.5)),
        "noop_apply_p99_ms": round3(noop.quantile_ms(0.99)),
        "watchers": watch,
    }))
}
