//! The live event feed: the store's commits summarised for people, and which parts of the
//! pages each commit makes stale.
//!
//! A rollout of 10,000 tasks is tens of thousands of task changes; listing each would drown
//! the feed and cost the browser more than the change is worth. So the task changes of one
//! commit are grouped by service and state transition ("web: 250 tasks preparing → running"),
//! and everything else is one line per object.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_store::model::{Kind, Object, Timestamp};
use shoal_store::{Action, Commit, Store, WatchMessage, WatchRequest, WatchStart};

use crate::native::NativeState;

/// Lines the feed keeps.
pub const KEPT: usize = 300;
/// Revisions of history read back when the feed starts (when the store still has them).
const BACKFILL: u64 = 2_000;

/// One line of the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    /// The revision of the commit.
    pub revision: u64,
    /// When it was proposed.
    pub at: Timestamp,
    /// The object kind.
    pub kind: Kind,
    /// `create`, `update`, `remove`.
    pub action: String,
    /// The object's name (for grouped tasks, their service's).
    pub name: String,
    /// What changed.
    pub detail: String,
    /// For CSS: `good`, `bad`, `busy` or empty.
    pub tone: &'static str,
    /// The service the line is about, to link to it.
    pub service_id: Option<String>,
}

fn task_tone(state: shoal_store::model::TaskState) -> &'static str {
    use shoal_store::model::TaskState as S;
    match state {
        S::Running | S::Complete => "good",
        S::Failed | S::Rejected | S::Orphaned => "bad",
        S::Shutdown | S::Remove => "",
        _ => "busy",
    }
}

/// Task changes of one commit grouped by (service name, service id, from, to).
type TaskKey = (String, String, String, String);
/// How many, the line's tone, and the name of the first (shown when it is the only one).
type TaskGroup = (usize, &'static str, Option<String>);

/// The lines of one commit.
pub fn summarise(commit: &Commit) -> Vec<EventRow> {
    let mut rows = Vec::new();
    // (service name, service id, from, to) -> count, in first-seen order by key.
    let mut tasks: BTreeMap<TaskKey, TaskGroup> = BTreeMap::new();
    for e in &commit.events {
        let action = e.action.to_string();
        match e.object.as_ref() {
            // Health follows the tasks (already summarised); the cluster object changes with
            // certificate bookkeeping people do not act on.
            Object::Health(_) | Object::Cluster(_) => {}
            Object::Task(t) => {
                let prev = match e.prev.as_deref() {
                    Some(Object::Task(p)) => Some(p),
                    _ => None,
                };
                let (from, to) = match (e.action, prev) {
                    (Action::Create, _) => ("created".to_string(), t.status.state.to_string()),
                    (Action::Delete, _) => (t.status.state.to_string(), "removed".to_string()),
                    (Action::Update, Some(p)) if p.status.state != t.status.state => {
                        (p.status.state.to_string(), t.status.state.to_string())
                    }
                    (Action::Update, Some(p)) if p.desired_state != t.desired_state => (
                        format!("desired {}", p.desired_state),
                        format!("desired {}", t.desired_state),
                    ),
                    // Replayed history has no previous object: the state it reached.
                    (Action::Update, None) => ("→".to_string(), t.status.state.to_string()),
                    _ => continue,
                };
                let tone = if e.action == Action::Delete {
                    ""
                } else {
                    task_tone(t.status.state)
                };
                let entry = tasks
                    .entry((t.service_name.clone(), t.service_id.clone(), from, to))
                    .or_insert((0, tone, None));
                entry.0 += 1;
                if entry.0 == 1 {
                    let slot = if t.slot != 0 {
                        t.slot.to_string()
                    } else {
                        t.node_id.chars().take(10).collect()
                    };
                    entry.2 = Some(format!("{}.{slot}", t.service_name));
                }
            }
            Object::GitSource(g) if e.action == Action::Update => {
                let prev = match e.prev.as_deref() {
                    Some(Object::GitSource(p)) => Some(p),
                    _ => None,
                };
                // The steps of its status (a fetched commit, an applied one, a failure, drift,
                // a condition), as `docker events` reports them; a spec change without any is
                // one line.
                let steps = crate::gitops::events::update_steps(prev, g);
                if steps.is_empty() && prev.is_some_and(|p| p.spec != g.spec) {
                    let detail = if prev.is_some_and(|p| p.spec.suspended != g.spec.suspended) {
                        if g.spec.suspended {
                            "suspended"
                        } else {
                            "resumed"
                        }
                    } else {
                        "spec updated"
                    };
                    rows.push(git_row(commit, g, "update", detail.into(), "busy"));
                }
                for step in steps {
                    let tone = match step.tone {
                        crate::gitops::events::Tone::Good => "good",
                        crate::gitops::events::Tone::Bad => "bad",
                        crate::gitops::events::Tone::Busy => "busy",
                    };
                    rows.push(git_row(commit, g, step.action, step_detail(&step), tone));
                }
            }
            o => {
                let (detail, tone) = detail(o, e.prev.as_deref(), e.action);
                rows.push(EventRow {
                    revision: commit.revision,
                    at: commit.at,
                    kind: o.kind(),
                    action,
                    name: o.display_name().into_owned(),
                    detail,
                    tone,
                    service_id: matches!(o, Object::Service(_)).then(|| o.id().to_string()),
                });
            }
        }
    }
    for ((service, service_id, from, to), (count, tone, single)) in tasks {
        let transition = if from == "→" {
            format!("→ {to}")
        } else if from == "created" {
            format!("created ({to})")
        } else {
            format!("{from} → {to}")
        };
        let (name, detail) = if count == 1 {
            (single.unwrap_or(service), transition)
        } else {
            (service, format!("{count} tasks {transition}"))
        };
        rows.push(EventRow {
            revision: commit.revision,
            at: commit.at,
            kind: Kind::Task,
            action: "update".into(),
            name,
            detail,
            tone,
            service_id: Some(service_id),
        });
    }
    rows
}

fn git_row(
    commit: &Commit,
    g: &shoal_store::model::GitSource,
    action: &str,
    detail: String,
    tone: &'static str,
) -> EventRow {
    EventRow {
        revision: commit.revision,
        at: commit.at,
        kind: Kind::GitSource,
        action: action.into(),
        name: g.spec.name.clone(),
        detail,
        tone,
        service_id: None,
    }
}

/// One line for a GitOps status step: the action with its details (commits shortened).
fn step_detail(step: &crate::gitops::events::StatusEvent) -> String {
    let a = &step.attributes;
    let get = |k: &str| a.get(k).map(String::as_str).unwrap_or("");
    let short = super::pages::short;
    match step.action {
        "fetch" => format!("fetched {}", short(get("commit"))),
        "apply" if get("stacks").is_empty() => format!("applied {}", short(get("commit"))),
        "apply" => format!("applied {} ({})", short(get("commit")), get("stacks")),
        "stack-failed" => format!(
            "stack {} failed at {}: {}",
            get("stack"),
            short(get("commit")),
            get("error")
        ),
        "drift" => format!("stack {} drifted: {}", get("stack"), get("fields")),
        "fetch-failed" | "sync-failed" => format!("{}: {}", step.action, get("error")),
        action if get("message").is_empty() => format!("{action} ({})", get("reason")),
        action => format!("{action}: {}", get("message")),
    }
}

fn detail(o: &Object, prev: Option<&Object>, action: Action) -> (String, &'static str) {
    match (o, prev, action) {
        (_, _, Action::Create) => ("created".into(), "good"),
        (_, _, Action::Delete) => ("removed".into(), ""),
        (Object::Node(n), Some(Object::Node(p)), _) => {
            let state = format!("{:?}", n.status.state).to_ascii_lowercase();
            if n.status.state != p.status.state {
                let tone = if state == "ready" { "good" } else { "bad" };
                (format!("now {state}"), tone)
            } else if n.spec.availability != p.spec.availability {
                (
                    format!("availability {}", n.spec.availability_or_default()),
                    "busy",
                )
            } else if n.role != p.role {
                (format!("role {}", n.role.as_str()), "busy")
            } else {
                ("updated".into(), "")
            }
        }
        (Object::Service(s), Some(Object::Service(p)), _) => {
            if s.spec != p.spec {
                let (a, b) = (s.spec.mode.replicas(), p.spec.mode.replicas());
                if a != b && s.spec.task_template == p.spec.task_template {
                    (
                        format!(
                            "scaled {} → {}",
                            b.map(|v| v.to_string()).unwrap_or_default(),
                            a.map(|v| v.to_string()).unwrap_or_default()
                        ),
                        "busy",
                    )
                } else {
                    ("spec updated".into(), "busy")
                }
            } else if s.update_status != p.update_status {
                let st = s
                    .update_status
                    .as_ref()
                    .and_then(|u| u.state.as_ref())
                    .map(|st| st.to_string())
                    .unwrap_or_default();
                let tone = match st.as_str() {
                    "completed" | "rollback_completed" => "good",
                    "paused" | "rollback_paused" => "bad",
                    _ => "busy",
                };
                (format!("update {st}"), tone)
            } else {
                ("updated".into(), "")
            }
        }
        (Object::Stack(s), _, _) => (format!("at revision {}", s.revision), "busy"),
        _ => ("updated".into(), ""),
    }
}

/// What parts of the pages a commit makes stale (see `dashboard.js`): `overview`, `nodes`,
/// `services`, `service:ID`, `stacks`, `gitops`, `events`.
pub fn topics(commit: &Commit, out: &mut BTreeSet<String>) {
    let mut any = false;
    for e in &commit.events {
        any = true;
        match e.object.as_ref() {
            Object::Node(_) => {
                out.insert("nodes".into());
                out.insert("overview".into());
            }
            Object::Service(s) => {
                out.insert("services".into());
                out.insert(format!("service:{}", s.meta.id));
                out.insert("overview".into());
            }
            Object::Task(t) => {
                out.insert("services".into());
                out.insert(format!("service:{}", t.service_id));
                out.insert("nodes".into());
                out.insert("overview".into());
            }
            Object::Health(h) => {
                out.insert("services".into());
                out.insert(format!("service:{}", h.meta.id));
                out.insert("overview".into());
                out.insert("stacks".into());
            }
            Object::Stack(_) | Object::StackRevision(_) => {
                out.insert("stacks".into());
                out.insert("overview".into());
            }
            Object::Cluster(_) => {
                out.insert("overview".into());
            }
            Object::GitSource(_) => {
                out.insert("gitops".into());
                out.insert("overview".into());
            }
            Object::Network(_) | Object::Secret(_) | Object::Config(_) => {}
        }
    }
    if any {
        out.insert("events".into());
    }
}

/// The last [`KEPT`] lines of the feed, filled by [`Recent::follow`].
#[derive(Clone, Default)]
pub struct Recent {
    rows: Arc<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    rows: VecDeque<EventRow>,
    /// The last revision added: a watch started again after an interruption replays some of
    /// the same history, which must not show twice.
    revision: u64,
}

impl Recent {
    /// Adds the lines of a commit.
    pub fn push(&self, commit: &Commit) {
        let mut kept = self.rows.lock().expect("feed lock");
        if commit.revision <= kept.revision {
            return;
        }
        kept.revision = commit.revision;
        for r in summarise(commit) {
            if kept.rows.len() == KEPT {
                kept.rows.pop_front();
            }
            kept.rows.push_back(r);
        }
    }

    /// The newest `n` lines, newest first.
    pub fn latest(&self, n: usize) -> Vec<EventRow> {
        let kept = self.rows.lock().expect("feed lock");
        kept.rows.iter().rev().take(n).cloned().collect()
    }

    /// Follows the store of `state` for as long as the process runs: whenever this node is a
    /// manager, its commits feed the lines (from a little history first, when the store still
    /// has it). Returns only if `state` never yields a store again, which a daemon's does not.
    pub async fn follow<S: NativeState>(self, state: S) {
        loop {
            if let Ok(store) = state.store().await {
                self.follow_store(&store).await;
            }
            // Not a manager (yet), or the watch ended (a leader change, an overflow, the store
            // closing): look again shortly.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn follow_store(&self, store: &Store) {
        let current = store.current_revision();
        let from = current.saturating_sub(BACKFILL).max(store.history_floor());
        let req = WatchRequest::new(WatchStart::After(from)).buffer(1 << 14);
        let mut watch = match store.watch(req).await {
            Ok(w) => w,
            Err(_) => match store.watch(WatchRequest::new(WatchStart::Now)).await {
                Ok(w) => w,
                Err(_) => return,
            },
        };
        while let Some(Ok(msg)) = watch.next().await {
            if let WatchMessage::Commit(c) = msg {
                self.push(&c);
            }
        }
    }
}
