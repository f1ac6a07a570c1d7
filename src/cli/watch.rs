//! `shoal watch`: prints the swarm's changes as they happen, through the native watch of a
//! manager ([`crate::client::watcher`]: it resumes after a disconnect without missing or
//! repeating anything, and says so when history was compacted).

use std::io::Write;

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;

use super::{short_id, Connection, Output};
use crate::client::{watcher, ClientError, Event, WatcherConfig};
use crate::native::watch::{Start, WatchParams};
use crate::native::wire::{WireEvent, WireObject};

/// `shoal watch [filters] [--from REV] [-o json|yaml|table]`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  shoal watch                          every change from now on
  shoal watch --kind service --kind task --stack web
  shoal watch --snapshot -o json       the current objects, then every change, as JSON lines
  shoal watch --from 1234              the changes after revision 1234, then live ones")]
pub struct WatchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only objects of this kind (repeatable): service, task, node, network, secret, config,
    /// cluster, stack, stackrevision, health, gitsource.
    #[arg(long = "kind", short = 'k', value_name = "KIND")]
    kinds: Vec<String>,
    /// Only these actions (repeatable): create, update, remove.
    #[arg(long = "action", value_name = "ACTION")]
    actions: Vec<String>,
    /// Only objects of this stack (their com.docker.stack.namespace label).
    #[arg(long)]
    stack: Option<String>,
    /// Only objects with this label (repeatable; all must match): key or key=value.
    #[arg(long = "label", short = 'l', value_name = "LABEL")]
    labels: Vec<String>,
    /// Only objects whose name starts with this (tasks are named service.slot.id).
    #[arg(long, value_name = "PREFIX")]
    name_prefix: Option<String>,
    /// Only tasks on this node (id, name or hostname).
    #[arg(long)]
    node: Option<String>,
    /// Start with the changes after revision REV (the last one you saw), then go on live.
    #[arg(long = "from", value_name = "REV", conflicts_with = "snapshot")]
    from: Option<u64>,
    /// Print the current objects first (as `current`), then the changes.
    #[arg(long)]
    snapshot: bool,
    /// Output format: table (one line per change), json (one object per line) or yaml.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
}

impl WatchArgs {
    fn params(&self) -> WatchParams {
        WatchParams {
            kinds: self.kinds.clone(),
            actions: self.actions.clone(),
            labels: self.labels.clone(),
            stack: self.stack.clone(),
            name_prefix: self.name_prefix.clone(),
            node: self.node.clone(),
            start: match (self.from, self.snapshot) {
                (Some(r), _) => Start::After(r),
                (None, true) => Start::Snapshot,
                (None, false) => Start::Now,
            },
            ..Default::default()
        }
    }
}

/// A short description of an object's state for the table (image and replicas of a service,
/// the state of a task, ...).
fn detail(kind: &str, o: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match kind {
        "service" => {
            let image = s(&o["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]);
            let image = image.split('@').next().unwrap_or_default().to_string();
            let mode = &o["Spec"]["Mode"];
            let mode = if let Some(r) = mode["Replicated"]["Replicas"].as_u64() {
                format!("replicas={r}")
            } else if mode.get("Global").is_some() {
                "global".into()
            } else if mode.get("Replicated").is_some() {
                "replicas=1".into()
            } else {
                "job".into()
            };
            format!("image={image} {mode}")
        }
        "task" => {
            let mut d = format!(
                "state={} desired={}",
                s(&o["Status"]["State"]),
                s(&o["DesiredState"])
            );
            let node = s(&o["NodeID"]);
            if !node.is_empty() {
                d.push_str(&format!(" node={}", short_id(&node)));
            }
            let err = s(&o["Status"]["Err"]);
            if !err.is_empty() {
                d.push_str(&format!(" err={err:?}"));
            }
            d
        }
        "node" => format!(
            "state={} availability={} role={}",
            s(&o["Status"]["State"]),
            s(&o["Spec"]["Availability"]),
            s(&o["Spec"]["Role"])
        ),
        "network" => format!("driver={}", s(&o["Driver"])),
        "health" => format!(
            "tasks={}/{} {}",
            o["Running"],
            o["Desired"],
            super::stacks::conditions(&o["Conditions"])
        ),
        _ => String::new(),
    }
}

fn row(revision: u64, action: &str, kind: &str, name: &str, id: &str, detail: &str) -> String {
    // A task as `docker service ps` names it: service.slot, without its id (in its own column).
    let name = match kind {
        "task" => name
            .strip_suffix(id)
            .and_then(|n| n.strip_suffix('.'))
            .unwrap_or(name),
        _ => name,
    };
    let line = format!(
        "{revision:>9}  {action:<7}  {kind:<7}  {name:<30}  {:<12}  {detail}",
        short_id(id)
    );
    format!("{}\n", line.trim_end())
}

/// What one watcher event prints as (empty for events that print nothing).
fn render(output: Output, snapshot_revision: u64, event: &Event) -> String {
    let object_row = |o: &WireObject| match output {
        Output::Table => row(
            snapshot_revision,
            "current",
            &o.kind,
            &o.name,
            &o.id,
            &detail(&o.kind, &o.object),
        ),
        _ => output.render(&WireEvent {
            revision: snapshot_revision,
            action: "current".into(),
            kind: o.kind.clone(),
            id: o.id.clone(),
            name: o.name.clone(),
            object: o.object.clone(),
            left_filter: false,
        }),
    };
    let event_row = |e: &WireEvent| match output {
        Output::Table => {
            let mut d = detail(&e.kind, &e.object);
            if e.left_filter {
                d.push_str(" (left the filter)");
            }
            row(e.revision, &e.action, &e.kind, &e.name, &e.id, d.trim())
        }
        _ => output.render(e),
    };
    match event {
        Event::InitApply(o) => object_row(o),
        Event::Commit { events, .. } => events.iter().map(event_row).collect(),
        Event::Init { .. } | Event::InitDone { .. } | Event::Progress { .. } => String::new(),
        Event::Compacted { .. } => String::new(),
    }
}

/// Runs `shoal watch` until interrupted (or the daemon refuses the watch).
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let host = client.host().to_string();
    let mut stream = Box::pin(watcher(client, WatcherConfig::new(args.params())));
    let mut out = std::io::stdout();
    let mut connected = false;
    let mut snapshot_revision = 0;
    let mut last_revision = args.from;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(e) => e,
            // Nothing got through yet: the daemon is not there or refuses; say so and stop.
            Err(e) if !connected || !e.is_retryable() => {
                return Err(anyhow::Error::new(e)).with_context(|| format!("watching {host}"));
            }
            Err(e) => {
                report_interruption(&e, last_revision);
                continue;
            }
        };
        if !connected && args.output == Output::Table {
            let header = format!(
                "{:>9}  {:<7}  {:<7}  {:<30}  {:<12}  DETAIL\n",
                "REVISION", "ACTION", "KIND", "NAME", "ID"
            );
            if write_out(&mut out, &header).is_err() {
                return Ok(());
            }
        }
        connected = true;
        match &event {
            Event::Init { revision } => snapshot_revision = *revision,
            Event::InitDone { revision }
            | Event::Commit { revision, .. }
            | Event::Progress { revision } => last_revision = Some(*revision),
            Event::Compacted {
                requested,
                oldest,
                current,
            } => eprintln!(
                "shoal watch: history is compacted up to revision {oldest} (now at {current}): the changes \
                 after {requested} up to {oldest} are gone; printing the current objects, then the changes"
            ),
            Event::InitApply(_) => {}
        }
        let text = render(args.output, snapshot_revision, &event);
        if !text.is_empty() && write_out(&mut out, &text).is_err() {
            // The reader went away (`| head`): nothing left to do.
            return Ok(());
        }
    }
    Ok(())
}

fn report_interruption(e: &ClientError, last: Option<u64>) {
    match last {
        Some(r) => eprintln!("shoal watch: {e}; resuming after revision {r}"),
        None => eprintln!("shoal watch: {e}; reconnecting"),
    }
}

fn write_out(out: &mut std::io::Stdout, text: &str) -> std::io::Result<()> {
    let mut lock = out.lock();
    lock.write_all(text.as_bytes())?;
    lock.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_event() -> WireEvent {
        WireEvent {
            revision: 42,
            action: "create".into(),
            kind: "service".into(),
            id: "abcdefghijklmnopqrstuvwxy".into(),
            name: "web".into(),
            object: serde_json::json!({"Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 3}},
                "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1@sha256:abc"}}}}),
            left_filter: false,
        }
    }

    #[test]
    fn a_table_row_per_change_and_a_json_object_per_line() {
        let commit = Event::Commit {
            revision: 42,
            at: "2026-01-01T00:00:00Z".into(),
            events: vec![service_event(), {
                let mut e = service_event();
                e.action = "update".into();
                e.left_filter = true;
                e
            }],
        };
        let table = render(Output::Table, 0, &commit);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(
            lines[0]
                .trim_start()
                .starts_with("42  create   service  web"),
            "{table}"
        );
        assert!(
            lines[0].contains("abcdefghijkl  image=busybox:1 replicas=3"),
            "{table}"
        );
        assert!(!lines[0].contains("mnop"), "ids are shortened: {table}");
        assert!(lines[1].ends_with("(left the filter)"), "{table}");

        let json = render(Output::Json, 0, &commit);
        let objects: Vec<Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["revision"], 42);
        assert_eq!(objects[0]["object"]["Spec"]["Name"], "web");
        assert_eq!(objects[1]["left_filter"], true);

        let yaml = render(Output::Yaml, 0, &commit);
        assert_eq!(yaml.matches("---\n").count(), 2, "{yaml}");
        assert!(yaml.contains("action: create"), "{yaml}");

        assert!(render(Output::Table, 0, &Event::Progress { revision: 43 }).is_empty());
    }

    #[test]
    fn snapshot_objects_print_as_current_at_the_snapshot_revision() {
        let o = WireObject {
            kind: "network".into(),
            id: "n1".into(),
            name: "front".into(),
            version: 3,
            object: serde_json::json!({"Driver": "overlay"}),
        };
        let line = render(Output::Table, 40, &Event::InitApply(o.clone()));
        assert!(
            line.trim_start().starts_with("40  current  network  front"),
            "{line}"
        );
        assert!(line.trim_end().ends_with("driver=overlay"), "{line}");
        let json: Value =
            serde_json::from_str(&render(Output::Json, 40, &Event::InitApply(o))).unwrap();
        assert_eq!(json["action"], "current");
        assert_eq!(json["revision"], 40);
    }
}
