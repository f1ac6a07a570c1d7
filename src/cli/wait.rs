//! `--wait`: follows a stack's rollout through the watch API until the stack controller
//! records the revision's result (Succeeded, Failed, RolledBack) or the deadline passes
//! (TimedOut), showing each service's progress as it happens: progress bars on a terminal,
//! plain lines otherwise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::watcher::{watcher, Event, WatcherConfig};
use crate::client::Client;
use crate::native::watch::{Start, WatchParams};

/// How a rollout ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every service runs its new spec.
    Succeeded,
    /// An update paused on failures.
    Failed(String),
    /// The update supervisor rolled a service back.
    RolledBack(String),
    /// The deadline passed first.
    TimedOut(String),
}

impl Outcome {
    /// `Succeeded`, `Failed`, ...
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed(_) => "Failed",
            Outcome::RolledBack(_) => "RolledBack",
            Outcome::TimedOut(_) => "TimedOut",
        }
    }

    /// The details.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Succeeded => "",
            Outcome::Failed(m) | Outcome::RolledBack(m) | Outcome::TimedOut(m) => m,
        }
    }

    /// The exit status `shoal apply` ends with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed(_) => 3,
            Outcome::RolledBack(_) => 4,
            Outcome::TimedOut(_) => 5,
        }
    }
}

/// Shows per-service progress.
enum Progress {
    Bars(MultiProgress, BTreeMap<String, ProgressBar>),
    Lines(BTreeMap<String, String>),
}

impl Progress {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            Progress::Bars(MultiProgress::new(), BTreeMap::new())
        } else {
            Progress::Lines(BTreeMap::new())
        }
    }

    fn show(&mut self, services: &serde_json::Map<String, Value>) {
        for (name, h) in services {
            let running = h["Running"].as_u64().unwrap_or(0);
            let desired = h["Desired"].as_u64().unwrap_or(0);
            let state = h["Conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["Status"] == true && c["Type"] != "Ready")
                .map(|c| {
                    format!(
                        "{} {}",
                        c["Type"].as_str().unwrap_or(""),
                        c["Message"].as_str().unwrap_or("")
                    )
                })
                .next()
                .unwrap_or_else(|| "ready".into());
            match self {
                Progress::Bars(multi, bars) => {
                    let bar = bars.entry(name.clone()).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new(desired));
                        b.set_style(
                            ProgressStyle::with_template(
                                "{prefix:<24} [{bar:30}] {pos}/{len} {msg}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        b.set_prefix(name.clone());
                        b
                    });
                    bar.set_length(desired);
                    bar.set_position(running.min(desired));
                    bar.set_message(state.trim().to_string());
                }
                Progress::Lines(last) => {
                    let line = format!(
                        "{name}: {running}/{desired} tasks running the new spec; {}",
                        state.trim()
                    );
                    if last.get(name) != Some(&line) {
                        eprintln!("{line}");
                        last.insert(name.clone(), line);
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bars(_, bars) = self {
            for b in bars.values() {
                b.abandon();
            }
        }
    }
}

/// Follows stack `stack` until revision `revision` has a result or `deadline` passes.
/// `store_revision` is the apply's commit (the watch starts no earlier).
pub async fn rollout(
    client: &Client,
    stack: &str,
    revision: u64,
    store_revision: u64,
    deadline: Duration,
) -> anyhow::Result<Outcome> {
    let params = WatchParams {
        kinds: vec!["stack".into(), "stackrevision".into()],
        name_prefix: Some(stack.to_string()),
        start: Start::Snapshot,
        min_revision: Some(store_revision),
        progress_interval: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let revision_name = format!("{stack}@{revision}");
    let mut events = Box::pin(watcher(client.clone(), WatcherConfig::new(params)));
    let mut progress = Progress::new();
    let until = tokio::time::Instant::now() + deadline;
    let mut last_status = String::new();
    let outcome = loop {
        let next = match tokio::time::timeout_at(until, events.next()).await {
            Err(_) => {
                break Outcome::TimedOut(format!(
                    "revision {revision} of stack {stack} did not finish its rollout within {deadline:?}{}",
                    if last_status.is_empty() { String::new() } else { format!(" ({last_status})") }
                ))
            }
            Ok(None) => anyhow::bail!("the watch of stack {stack} ended"),
            Ok(Some(e)) => e?,
        };
        let objects: Vec<(String, String, Value)> = match next {
            Event::InitApply(o) => vec![(o.kind, o.name, o.object)],
            Event::Commit { events, .. } => events
                .into_iter()
                .filter(|e| e.action != "remove")
                .map(|e| (e.kind, e.name, e.object))
                .collect(),
            _ => continue,
        };
        let mut ended = None;
        for (kind, name, object) in objects {
            if kind == "stack" && name == stack {
                if let Some(services) = object["Status"]["Services"].as_object() {
                    progress.show(services);
                }
                last_status = object["Status"]["Conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["Status"] == true)
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c["Type"].as_str().unwrap_or(""),
                            c["Message"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            if kind == "stackrevision" && name == revision_name {
                let message = object["Result"]["Message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                ended = match object["Result"]["State"].as_str() {
                    Some("Succeeded") => Some(Outcome::Succeeded),
                    Some("Failed") => Some(Outcome::Failed(message)),
                    Some("RolledBack") => Some(Outcome::RolledBack(message)),
                    _ => None,
                };
            }
        }
        if let Some(o) = ended {
            break o;
        }
    };
    progress.finish();
    Ok(outcome)
}
