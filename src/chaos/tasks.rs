//! The task oracle: a replicated service runs on the managers (sim executor) through every
//! scenario, and once the cluster has healed it must converge within a budget to exactly one
//! running task per slot, none of them on a node that is down (SwarmKit's invariants; the
//! fault matrix's oracle T).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use super::cluster::call;

/// The service's name.
pub const SERVICE: &str = "chaos-svc";
/// Its replicas.
pub const REPLICAS: u64 = 3;

const CALL: Duration = Duration::from_secs(5);

/// Creates the service on the manager at `socket`.
pub async fn create(socket: &Path) -> anyhow::Result<()> {
    let spec = json!({
        "Name": SERVICE,
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1", "Command": ["sleep", "1d"]}},
        "Mode": {"Replicated": {"Replicas": REPLICAS}},
    });
    let (status, body) = call(socket, "POST", "/services/create", &[], Some(spec), CALL).await?;
    if status != 201 {
        bail!("creating service {SERVICE}: {status} {body}");
    }
    Ok(())
}

/// What is wrong with the service's tasks now (empty: nothing).
async fn problems(socket: &Path) -> anyhow::Result<Vec<String>> {
    let lin = [("X-Shoal-Consistency", "linearizable")];
    let filters = format!(
        "/tasks?filters={}",
        form_urlencoded::byte_serialize(json!({"service": [SERVICE]}).to_string().as_bytes())
            .collect::<String>()
    );
    let (s1, tasks) = call(socket, "GET", &filters, &lin, None, CALL).await?;
    let (s2, nodes) = call(socket, "GET", "/nodes", &lin, None, CALL).await?;
    if s1 != 200 || s2 != 200 {
        bail!("listing tasks and nodes: {s1} {s2}");
    }
    let down: Vec<&str> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["Status"]["State"] != "ready")
        .filter_map(|n| n["ID"].as_str())
        .collect();
    let mut per_slot: BTreeMap<u64, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for t in tasks.as_array().into_iter().flatten() {
        let running = t["Status"]["State"] == "running";
        if !running {
            continue;
        }
        let node = t["NodeID"].as_str().unwrap_or("");
        if down.contains(&node) {
            out.push(format!(
                "task {} runs on node {node}, which is not ready",
                t["ID"]
            ));
        }
        if t["DesiredState"] == "running" {
            *per_slot.entry(t["Slot"].as_u64().unwrap_or(0)).or_default() += 1;
        } else {
            out.push(format!(
                "task {} still runs though it should be {}",
                t["ID"], t["DesiredState"]
            ));
        }
    }
    for slot in 1..=REPLICAS {
        match per_slot.get(&slot).copied().unwrap_or(0) {
            1 => {}
            n => out.push(format!("slot {slot} has {n} running tasks")),
        }
    }
    if per_slot.len() as u64 > REPLICAS {
        out.push(format!("{} slots run, {REPLICAS} wanted", per_slot.len()));
    }
    Ok(out)
}

/// Waits up to `budget` for the tasks to converge; how long it took, or what was still wrong.
pub async fn converged(socket: &Path, budget: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < budget {
        match problems(socket).await {
            Ok(p) if p.is_empty() => return Ok(started.elapsed()),
            Ok(p) => last = p,
            Err(e) => last = vec![format!("{e:#}")],
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "the service's tasks did not converge within {budget:?}: {}",
        last.join("; ")
    ))
}

/// The oracle's figure for the report.
pub fn figure(r: &Result<Duration, String>) -> Value {
    match r {
        Ok(d) => (d.as_millis() as u64).into(),
        Err(_) => Value::Null,
    }
}
