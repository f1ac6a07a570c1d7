//! `shoal bench gitops`: one node (sim executor) and a git repository of `--stacks` stacks (one
//! directory each, kept by one source with one stack per directory), measuring:
//!
//! - commit -> applied through a signed webhook (the source polls once an hour, so only the
//!   webhook can trigger the sync): a commit that changes one stack, then the webhook, until
//!   the source's status shows the commit applied; `--rounds` times (p50/p99);
//! - commit -> applied by polling every `--interval` (the wait includes up to one interval);
//! - an idle source over `--idle-seconds`: syncs that find the same commit, the CPU they cost
//!   (this process and the `git` programs it ran) and the store writes they made (goal: one
//!   fetch and no write per sync).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use super::one_node::{Client, OneNode};
use super::stats::{children_cpu_seconds, process_cpu_seconds, round3, Latencies};
use crate::agent::executor::{ExecutorChoice, ExecutorKind};
use crate::gitops::webhook::hmac_sha256;

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct GitopsBench {
    /// Stacks in the repository.
    pub stacks: usize,
    /// Commits timed per trigger (webhook, polling).
    pub rounds: usize,
    /// The polling interval of the polling rounds and of the idle window (whole seconds).
    pub interval: Duration,
    /// How long the idle source is watched.
    pub idle: Duration,
}

const WEBHOOK_KEY: &[u8] = b"bench-webhook-key";

fn compose(stack: usize, round: usize) -> String {
    format!(
        "services:\n  app:\n    image: shoal-test/busybox:1\n    command: [\"sleep\", \"100000\"]\n    deploy:\n      labels:\n        stack: \"{stack}\"\n        round: \"{round}\"\n"
    )
}

async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .await
        .context("running git (the benchmark needs the git program)")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn commit(dir: &Path, message: &str) -> anyhow::Result<String> {
    git(dir, &["add", "-A"]).await?;
    git(dir, &["commit", "--quiet", "-m", message]).await?;
    git(dir, &["rev-parse", "HEAD"]).await
}

/// Waits until source `name` shows `commit` applied.
async fn applied(c: &mut Client, name: &str, commit: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c
            .expect("GET", &format!("/shoal/v1/gitops/{name}"), None, 200)
            .await?;
        if s["Status"]["LastAppliedCommit"] == commit {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("commit {commit} not applied by source {name} after 120 s: {s}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn add(c: &mut Client, repo: &Path, interval: &str) -> anyhow::Result<()> {
    c.expect(
        "POST",
        "/shoal/v1/gitops",
        Some(json!({
            "name": "bench",
            "repo": repo.display().to_string(),
            "ref": "main",
            "path": "stacks",
            "stack_per_dir": true,
            "interval": interval,
            "webhook_secret": "bench-hook",
        })),
        200,
    )
    .await?;
    Ok(())
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: GitopsBench) -> anyhow::Result<Value> {
    if b.stacks == 0 || b.rounds == 0 {
        bail!("--stacks and --rounds must be at least 1");
    }
    let mut one = OneNode::start(
        "bench-gitops",
        ExecutorChoice {
            kind: Some(ExecutorKind::Sim),
            ..Default::default()
        },
    )
    .await?;
    let c = &mut one.client;
    let repo = tempfile::tempdir()?;
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]).await?;
    for i in 0..b.stacks {
        let dir = repo.path().join(format!("stacks/s{i:02}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("compose.yaml"), compose(i, 0))?;
    }
    let first = commit(repo.path(), "stacks").await?;
    let key = base64::engine::general_purpose::STANDARD.encode(WEBHOOK_KEY);
    c.expect(
        "POST",
        "/v1.44/secrets/create",
        Some(json!({"Name": "bench-hook", "Data": key})),
        201,
    )
    .await?;

    // Webhook rounds: the source would poll only after an hour.
    let t = Instant::now();
    add(c, repo.path(), "1h").await?;
    applied(c, "bench", &first).await?;
    let initial_sync = t.elapsed();
    let mut webhook = Latencies::default();
    for round in 1..=b.rounds {
        let stack = round % b.stacks;
        std::fs::write(
            repo.path().join(format!("stacks/s{stack:02}/compose.yaml")),
            compose(stack, round),
        )?;
        let t = Instant::now();
        let sha = commit(repo.path(), &format!("round {round}")).await?;
        let payload = Bytes::from(json!({"ref": "refs/heads/main", "after": sha}).to_string());
        let signature = format!("sha256={}", hex::encode(hmac_sha256(WEBHOOK_KEY, &payload)));
        let (status, answer) = c
            .call_with_headers(
                "POST",
                "/shoal/v1/gitops/bench/webhook",
                &[("X-Hub-Signature-256", &signature)],
                Some(payload),
            )
            .await?;
        if status != 200 || answer["triggered"] != true {
            bail!("the webhook was not taken: {status} {answer}");
        }
        applied(c, "bench", &sha).await?;
        webhook.record(t.elapsed());
    }

    // Polling rounds: the same source again, polling every interval (its stacks stay).
    c.expect("DELETE", "/shoal/v1/gitops/bench", None, 200)
        .await?;
    let interval = format!("{}s", b.interval.as_secs().max(1));
    add(c, repo.path(), &interval).await?;
    let mut polling = Latencies::default();
    let base = b.rounds;
    for round in base + 1..=base + b.rounds {
        let stack = round % b.stacks;
        std::fs::write(
            repo.path().join(format!("stacks/s{stack:02}/compose.yaml")),
            compose(stack, round),
        )?;
        let t = Instant::now();
        let sha = commit(repo.path(), &format!("round {round}")).await?;
        applied(c, "bench", &sha).await?;
        polling.record(t.elapsed());
    }

    // Idle: nothing changes in git; count syncs by the fetches' CPU and the writes they make.
    let version = |s: &Value| s["Version"]["Index"].as_u64().unwrap_or(0);
    let revisions = |s: &Value| -> Vec<u64> {
        s["Status"]["Stacks"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| v["Revision"].as_u64().unwrap_or(0))
            .collect()
    };
    // Let the last round's status writes (health following the rollout) settle first.
    tokio::time::sleep(b.interval * 3).await;
    let before = c.expect("GET", "/shoal/v1/gitops/bench", None, 200).await?;
    let (cpu0, child0) = (process_cpu_seconds(), children_cpu_seconds());
    tokio::time::sleep(b.idle).await;
    let (cpu1, child1) = (process_cpu_seconds(), children_cpu_seconds());
    let after = c.expect("GET", "/shoal/v1/gitops/bench", None, 200).await?;
    // The same window with the source suspended: what the node costs without its syncs.
    c.expect("POST", "/shoal/v1/gitops/bench/suspend", None, 200)
        .await?;
    let (base0, basechild0) = (process_cpu_seconds(), children_cpu_seconds());
    tokio::time::sleep(b.idle).await;
    let (base1, basechild1) = (process_cpu_seconds(), children_cpu_seconds());
    let idle_cpu = cpu1 - cpu0 + child1 - child0;
    let suspended_cpu = base1 - base0 + basechild1 - basechild0;
    let syncs = (b.idle.as_secs_f64() / b.interval.as_secs_f64())
        .floor()
        .max(1.0);
    one.stop().await;
    Ok(json!({
        "bench": "gitops",
        "stacks": b.stacks,
        "rounds": b.rounds,
        "initial_sync_ms": round3(initial_sync.as_secs_f64() * 1e3),
        "webhook_commit_to_applied_p50_ms": round3(webhook.quantile_ms(0.5)),
        "webhook_commit_to_applied_p99_ms": round3(webhook.quantile_ms(0.99)),
        "polling_interval_ms": b.interval.as_millis() as u64,
        "polling_commit_to_applied_p50_ms": round3(polling.quantile_ms(0.5)),
        "polling_commit_to_applied_p99_ms": round3(polling.quantile_ms(0.99)),
        "idle_seconds": b.idle.as_secs_f64(),
        "idle_syncs_expected": syncs,
        // The whole node's CPU (heartbeats and every controller too) plus the git programs',
        // polling, then with the source suspended; their difference is what the syncs cost.
        "idle_node_and_git_cpu_ms_total": round3(idle_cpu * 1e3),
        "suspended_node_cpu_ms_total": round3(suspended_cpu * 1e3),
        "idle_git_cpu_ms_total": round3((child1 - child0) * 1e3),
        "idle_sync_cpu_ms_per_sync": round3((idle_cpu - suspended_cpu) * 1e3 / syncs),
        "idle_source_writes": version(&after).saturating_sub(version(&before)) > 0,
        "idle_new_stack_revisions": revisions(&after) != revisions(&before),
    }))
}
