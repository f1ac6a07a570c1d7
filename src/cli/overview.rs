//! `shoal status` without a stack: the swarm on one screen (managers and leader, nodes,
//! services with their health, recent events), once or, with `--watch`, redrawn until
//! interrupted.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::stacks::conditions;
use super::Output;
use crate::client::Client;

/// How far back "recent events" go, and how many are shown.
const EVENTS_WINDOW: Duration = Duration::from_secs(15 * 60);
const EVENTS_SHOWN: usize = 10;

/// How often `--watch` redraws.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Everything the screen shows, as the API gave it.
pub async fn snapshot(client: &Client) -> anyhow::Result<Value> {
    let swarm: Value = client.get_json("/v1.41/swarm").await?;
    let nodes: Value = client.get_json("/v1.41/nodes").await?;
    let health: Value = client.get_json("/shoal/v1/health").await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let since = now.saturating_sub(EVENTS_WINDOW.as_secs());
    let body = client
        .get(&format!("/v1.41/events?since={since}&until={now}"))
        .await?
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the swarm's events: {e}"))?
        .to_bytes();
    let mut events: Vec<Value> = serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("decoding the swarm's events: {e}"))?;
    let keep_from = events.len().saturating_sub(EVENTS_SHOWN);
    let events = events.split_off(keep_from);
    Ok(json!({"swarm": swarm, "nodes": nodes, "services": health, "events": events}))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The screen for `snap` (see [`snapshot`]).
pub fn render(snap: &Value) -> String {
    let mut out = String::new();
    let mut nodes = snap["nodes"].as_array().cloned().unwrap_or_default();
    // Managers first (the leader at the top), then by host name.
    nodes.sort_by_key(|n| {
        (
            n["ManagerStatus"]["Leader"] != true,
            !n["ManagerStatus"].is_object(),
            text(&n["Description"]["Hostname"]).to_string(),
        )
    });
    let managers: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["ManagerStatus"].is_object())
        .collect();
    let leader = managers
        .iter()
        .find(|n| n["ManagerStatus"]["Leader"] == true)
        .map_or("none", |n| text(&n["Description"]["Hostname"]));
    let ready = nodes
        .iter()
        .filter(|n| n["Status"]["State"] == "ready")
        .count();
    let id = text(&snap["swarm"]["ID"]);
    let _ = writeln!(
        out,
        "swarm {}: {} managers (leader {leader}), {} nodes ({ready} ready)",
        &id[..id.len().min(12)],
        managers.len(),
        nodes.len()
    );
    let _ = writeln!(out, "\nNODES");
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:<8} {:<12} MANAGER",
        "HOSTNAME", "ROLE", "STATUS", "AVAILABILITY"
    );
    for n in &nodes {
        let manager = match &n["ManagerStatus"] {
            m if m["Leader"] == true => "Leader".to_string(),
            m if m.is_object() => text(&m["Reachability"]).to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:<8} {:<12} {manager}",
            text(&n["Description"]["Hostname"]),
            text(&n["Spec"]["Role"]),
            text(&n["Status"]["State"]),
            text(&n["Spec"]["Availability"]),
        );
    }
    let _ = writeln!(out, "\nSERVICES");
    let _ = writeln!(out, "{:<30} {:<10} CONDITIONS", "SERVICE", "TASKS");
    for h in snap["services"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<30} {:<10} {}",
            text(&h["ServiceName"]),
            format!("{}/{}", h["Running"], h["Desired"]),
            conditions(&h["Conditions"])
        );
    }
    let _ = writeln!(out, "\nRECENT EVENTS");
    let events = snap["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        let _ = writeln!(
            out,
            "(none in the last {} minutes)",
            EVENTS_WINDOW.as_secs() / 60
        );
    }
    for e in &events {
        let when = e["time"]
            .as_i64()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let name = e["Actor"]["Attributes"]["name"]
            .as_str()
            .unwrap_or_else(|| text(&e["Actor"]["ID"]));
        // GitOps steps say which commit (or why); other events are about the object alone.
        let attrs = &e["Actor"]["Attributes"];
        let detail = match (attrs["commit"].as_str(), attrs["reason"].as_str()) {
            (Some(c), _) => format!("  {}", &c[..c.len().min(12)]),
            (None, Some(r)) if !r.is_empty() => format!("  ({r})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{when}  {:<9} {:<12} {name}{detail}",
            text(&e["Type"]),
            text(&e["Action"])
        );
    }
    out
}

/// Runs `shoal status` without a stack: once, or redrawn every [`REFRESH`] with `watch`.
pub async fn run(client: &Client, output: Output, watch: bool) -> anyhow::Result<i32> {
    if watch && output != Output::Table {
        anyhow::bail!(
            "--watch redraws the table; for a stream of JSON use `shoal watch` (the watch API)"
        );
    }
    loop {
        let snap = snapshot(client).await?;
        if output != Output::Table {
            print!("{}", output.render(&snap));
            return Ok(0);
        }
        let screen = render(&snap);
        if !watch {
            print!("{screen}");
            return Ok(0);
        }
        // Clear the terminal and draw from its top left.
        print!("\x1b[2J\x1b[H{screen}");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}
