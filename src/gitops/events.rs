//! A GitOps source's status changes as events, the way `docker events` reports what happens to
//! services and nodes: the store keeps only the source's current status, and these are the
//! steps between two of them (a new commit fetched, a commit applied, a stack that failed or
//! drifted, a condition that started or stopped holding).
//!
//! The Docker API's `/events` streams them with type `gitsource` (so
//! `docker events --filter type=gitsource --filter event=degraded` works), and the dashboard's
//! feed shows them; both call [`status_events`] on the store's update events, so they always
//! say the same thing.

use std::collections::BTreeMap;

use shoal_store::model::{Condition, GitSource, GitSourceStatus, GitStackStatus};

/// One step of a source's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    /// What happened: `fetch`, `fetch-failed`, `apply`, `sync-failed`, `stack-failed`,
    /// `drift`, `ready`, `not-ready`, `progressing`, `degraded`, `stalled`.
    pub action: &'static str,
    /// Details (`commit`, `stack`, `reason`, `message`, ...), sorted.
    pub attributes: BTreeMap<String, String>,
    /// Whether it is good news, bad news or news of work under way (for people: the
    /// dashboard colours lines by it).
    pub tone: Tone,
}

/// How a [`StatusEvent`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Something succeeded.
    Good,
    /// Something failed or needs a person.
    Bad,
    /// Work under way.
    Busy,
}

/// Conditions whose start is an event of its own, named after the condition.
const STARTING: [(&str, &str); 3] = [
    ("Progressing", "progressing"),
    ("Degraded", "degraded"),
    ("Stalled", "stalled"),
];

fn event(action: &'static str, tone: Tone, attrs: &[(&str, &str)]) -> StatusEvent {
    StatusEvent {
        action,
        attributes: attrs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tone,
    }
}

fn condition<'a>(cs: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    cs.iter().find(|c| c.kind == kind)
}

fn applied_stacks(status: &GitSourceStatus) -> String {
    status
        .stacks
        .iter()
        .filter(|(_, s)| s.result == "Applied")
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn drift_fields(s: &GitStackStatus) -> String {
    s.drift
        .iter()
        .map(|d| format!("{} {}", d.object, d.path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The steps of an update of `source` whose previous version was `prev`. Replayed history
/// has no previous version: its status is then news from nothing.
pub fn update_steps(prev: Option<&GitSource>, source: &GitSource) -> Vec<StatusEvent> {
    status_events(
        prev.map(|p| &p.status)
            .unwrap_or(&GitSourceStatus::default()),
        &source.status,
    )
}

/// The steps from `old` to `new`, in the order they happen in a sync: fetch, apply, per-stack
/// results, then the conditions that follow from them. Equal statuses give none.
pub fn status_events(old: &GitSourceStatus, new: &GitSourceStatus) -> Vec<StatusEvent> {
    let mut out = Vec::new();
    if new.last_fetched_commit != old.last_fetched_commit && !new.last_fetched_commit.is_empty() {
        out.push(event(
            "fetch",
            Tone::Busy,
            &[
                ("commit", &new.last_fetched_commit),
                ("commit.old", &old.last_fetched_commit),
            ],
        ));
    }
    if new.last_fetch_error != old.last_fetch_error && !new.last_fetch_error.is_empty() {
        out.push(event(
            "fetch-failed",
            Tone::Bad,
            &[
                ("error", &new.last_fetch_error),
                ("applied", &new.last_applied_commit),
            ],
        ));
    }
    if new.last_applied_commit != old.last_applied_commit && !new.last_applied_commit.is_empty() {
        out.push(event(
            "apply",
            Tone::Good,
            &[
                ("commit", &new.last_applied_commit),
                ("commit.old", &old.last_applied_commit),
                ("stacks", &applied_stacks(new)),
            ],
        ));
    }
    if new.last_sync_error != old.last_sync_error && !new.last_sync_error.is_empty() {
        out.push(event(
            "sync-failed",
            Tone::Bad,
            &[
                ("commit", &new.last_fetched_commit),
                ("error", &new.last_sync_error),
            ],
        ));
    }
    for (name, s) in &new.stacks {
        let before = old.stacks.get(name);
        let failed_now = s.result == "Failed"
            && before.is_none_or(|b| b.result != "Failed" || b.commit != s.commit);
        if failed_now {
            out.push(event(
                "stack-failed",
                Tone::Bad,
                &[
                    ("stack", name),
                    ("commit", &s.commit),
                    ("error", &s.message),
                ],
            ));
        }
        let fields = drift_fields(s);
        if !fields.is_empty() && before.is_none_or(|b| drift_fields(b) != fields) {
            out.push(event(
                "drift",
                Tone::Bad,
                &[("stack", name), ("fields", &fields)],
            ));
        }
    }
    let was = |kind| condition(&old.conditions, kind).is_some_and(|c| c.status);
    if let Some(ready) = condition(&new.conditions, "Ready") {
        let before = condition(&old.conditions, "Ready");
        // A first status, or a flip, or a change of why it does not hold.
        if before.is_none_or(|b| b.status != ready.status || b.reason != ready.reason) {
            let (action, tone) = if ready.status {
                ("ready", Tone::Good)
            } else {
                ("not-ready", Tone::Busy)
            };
            out.push(event(
                action,
                tone,
                &[("reason", &ready.reason), ("message", &ready.message)],
            ));
        }
    }
    for (kind, action) in STARTING {
        if let Some(c) = condition(&new.conditions, kind).filter(|c| c.status) {
            let reason_changed =
                condition(&old.conditions, kind).is_some_and(|b| b.reason != c.reason);
            if !was(kind) || reason_changed {
                let tone = if kind == "Progressing" {
                    Tone::Busy
                } else {
                    Tone::Bad
                };
                out.push(event(
                    action,
                    tone,
                    &[("reason", &c.reason), ("message", &c.message)],
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{DriftedField, Timestamp};

    fn cond(kind: &str, status: bool, reason: &str) -> Condition {
        Condition {
            kind: kind.into(),
            status,
            reason: reason.into(),
            message: format!("{kind} {reason}"),
            last_transition: Timestamp::now(),
        }
    }

    fn actions(events: &[StatusEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.action).collect()
    }

    #[test]
    fn equal_statuses_say_nothing() {
        let s = GitSourceStatus {
            last_fetched_commit: "a".repeat(40),
            conditions: vec![cond("Ready", true, "Synced")],
            ..Default::default()
        };
        assert!(status_events(&s, &s).is_empty());
    }

    #[test]
    fn a_new_commit_is_fetched_applied_and_ready() {
        let old = GitSourceStatus {
            last_fetched_commit: "a".repeat(40),
            last_applied_commit: "a".repeat(40),
            conditions: vec![cond("Ready", false, "Progressing")],
            ..Default::default()
        };
        let mut new = GitSourceStatus {
            last_fetched_commit: "b".repeat(40),
            last_applied_commit: "b".repeat(40),
            conditions: vec![cond("Ready", true, "Synced")],
            ..Default::default()
        };
        new.stacks.insert(
            "web".into(),
            GitStackStatus {
                result: "Applied".into(),
                ..Default::default()
            },
        );
        let events = status_events(&old, &new);
        assert_eq!(actions(&events), ["fetch", "apply", "ready"]);
        assert_eq!(events[1].attributes["commit"], "b".repeat(40));
        assert_eq!(events[1].attributes["commit.old"], "a".repeat(40));
        assert_eq!(events[1].attributes["stacks"], "web");
        assert_eq!(events[1].tone, Tone::Good);
    }

    #[test]
    fn a_broken_commit_degrades_once_with_its_reason() {
        let old = GitSourceStatus {
            conditions: vec![cond("Ready", true, "Synced"), cond("Degraded", false, "")],
            ..Default::default()
        };
        let mut new = GitSourceStatus {
            last_fetched_commit: "c".repeat(40),
            conditions: vec![
                cond("Ready", false, "Degraded"),
                cond("Degraded", true, "CommitFailed"),
            ],
            ..Default::default()
        };
        new.stacks.insert(
            "web".into(),
            GitStackStatus {
                result: "Failed".into(),
                message: "services.web: image is required".into(),
                commit: "c".repeat(40),
                ..Default::default()
            },
        );
        let events = status_events(&old, &new);
        assert_eq!(
            actions(&events),
            ["fetch", "stack-failed", "not-ready", "degraded"]
        );
        assert_eq!(events[1].attributes["stack"], "web");
        assert!(events[1].attributes["error"].contains("image is required"));
        assert_eq!(events[3].attributes["reason"], "CommitFailed");
        // The same failure seen again is not news.
        assert!(status_events(&new, &new).is_empty());
    }

    #[test]
    fn drift_is_reported_when_it_appears_or_changes() {
        let mut old = GitSourceStatus::default();
        old.stacks.insert("web".into(), GitStackStatus::default());
        let mut new = old.clone();
        new.stacks.get_mut("web").unwrap().drift.push(DriftedField {
            object: "service web_app".into(),
            path: "Mode.Replicated.Replicas".into(),
            live: Some(5.into()),
            git: Some(2.into()),
        });
        let events = status_events(&old, &new);
        assert_eq!(actions(&events), ["drift"]);
        assert_eq!(
            events[0].attributes["fields"],
            "service web_app Mode.Replicated.Replicas"
        );
        assert!(status_events(&new, &new).is_empty());
    }

    #[test]
    fn an_unreachable_repository_stalls() {
        let old = GitSourceStatus {
            last_applied_commit: "a".repeat(40),
            ..Default::default()
        };
        let new = GitSourceStatus {
            last_applied_commit: "a".repeat(40),
            last_fetch_error: "git fetch: could not read from remote".into(),
            conditions: vec![cond("Stalled", true, "FetchFailed")],
            ..Default::default()
        };
        let events = status_events(&old, &new);
        assert_eq!(actions(&events), ["fetch-failed", "stalled"]);
        assert_eq!(events[0].attributes["applied"], "a".repeat(40));
    }
}
