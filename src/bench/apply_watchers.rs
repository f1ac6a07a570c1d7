//! The watcher part of `shoal bench apply`: many HTTP watchers of the public watch API on one
//! manager, following an apply that changes every service of a stack.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};

use super::one_node::Client as BenchClient;
use super::stats::{round3, Latencies};
use crate::client::{Client, Host};
use crate::native::watch::{Start, WatchParams};
use crate::native::wire::WireMessage;

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens `n` watchers of services, applies `file` (a change of every service) as stack
/// `viashoal`, and measures when each watcher gets the commit (from the commit's own time).
pub async fn follow(
    socket: &Path,
    c: &mut BenchClient,
    n: usize,
    file: &str,
) -> anyhow::Result<Value> {
    let client = Client::new(Host::Unix(socket.to_path_buf()));
    let params = WatchParams {
        kinds: vec!["service".into()],
        start: Start::Now,
        ..Default::default()
    };
    let before = rss_kib();
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = client
            .watch_once(&params)
            .await
            .context("opening a watch")?;
        // A watch from now starts with a progress line: the watcher is established.
        match tokio::time::timeout(Duration::from_secs(30), s.next()).await {
            Ok(Some(Ok(_))) => {}
            other => bail!("a watcher did not start: {other:?}"),
        }
        streams.push(s);
    }
    let established = rss_kib();
    let (tx, mut rx) = tokio::sync::mpsc::channel(n);
    for mut s in streams {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = s.next().await {
                if let WireMessage::Commit { at, events, .. } = m {
                    if !events.is_empty() {
                        let _ = tx.send((chrono::Utc::now(), at)).await;
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let body =
        json!({"files": [{"name": "bench-compose.yml", "content": file}], "applied_by": "bench"});
    c.expect("POST", "/shoal/v1/stacks/viashoal/apply", Some(body), 200)
        .await?;
    let mut delivery = Latencies::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while delivery.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((seen, at))) => {
                let committed = chrono::DateTime::parse_from_rfc3339(&at)
                    .with_context(|| format!("commit time {at:?}"))?;
                let late = (seen - committed.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default();
                delivery.record(late);
            }
            _ => bail!("{} of {n} watchers saw the apply", delivery.len()),
        }
    }
    Ok(json!({
        "watchers": n,
        "delivery_p50_ms": round3(delivery.quantile_ms(0.5)),
        "delivery_p99_ms": round3(delivery.quantile_ms(0.99)),
        "delivery_max_ms": round3(delivery.quantile_ms(1.0)),
        // Both ends of each watch live in this process (the node runs in-process).
        "rss_per_watcher_kib": round3((established.saturating_sub(before)) as f64 / n.max(1) as f64),
    }))
}
