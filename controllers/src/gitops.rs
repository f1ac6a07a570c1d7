//! The GitOps controller (key: GitSource id): decides when each source syncs, and turns what a
//! sync did into the source's status and conditions.
//!
//! The sync itself (fetching with `git`, rendering compose files, planning and applying
//! stacks) touches the outside world, so it sits behind [`GitSync`], which the binary
//! implements; this controller only schedules it and keeps the status:
//!
//! - a source syncs when the leader starts (full pass), every `interval` after its last sync,
//!   and at once when its spec's `SyncRequest` differs from the status's
//!   `ObservedSyncRequest` (`shoal gitops sync`, webhooks; kept in the store so a leader
//!   change neither loses a request nor needs to repeat a finished one);
//! - a source also syncs at once when the spec of a service one of its stacks owns changes,
//!   so a hand-made change is reported as drift (and reverted with self-heal) when it is
//!   made, not at the next interval;
//! - a suspended source is not synced;
//! - the status is written only when it changes: an idle source that finds the same commit
//!   costs one fetch and no store write;
//! - each stack's health is copied from the stack (the stack controller computes it), so the
//!   source's conditions follow rollouts without another sync.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use shoal_store::model::{
    Condition, GitSource, GitSourceStatus, GitStackStatus, Object, Stack, StackRevision, Timestamp,
    STACK_NAMESPACE_LABEL,
};
use shoal_store::Op;
use tracing::Instrument;

use crate::health::{carry_transitions, condition, holds};
use crate::orchestrator::write;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

/// What a sync did.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncOutcome {
    /// The commit the ref resolved to, or why the repository could not be fetched (then
    /// nothing was applied and `stacks` is empty).
    pub fetched: Result<String, String>,
    /// Each stack of the commit (and each pruned or orphaned one) with its result; health is
    /// filled in by the controller.
    pub stacks: BTreeMap<String, GitStackStatus>,
    /// Why the commit as a whole could not be synced (then `stacks` is what it was before).
    pub error: Option<String>,
}

/// The part of a GitOps sync that touches the outside world: fetch the source's repository,
/// resolve its ref, render the stacks of the commit and apply them (plan first; nothing
/// written when nothing changed), prune, report drift. Implemented by the binary.
pub trait GitSync: Send + Sync + 'static {
    /// Syncs `source` (its status says what the last sync found).
    fn sync<'a>(&'a self, source: &'a GitSource) -> BoxFuture<'a, SyncOutcome>;

    /// Drops what is kept for source `id` (its fetched repository, its last result): the
    /// source was removed.
    fn forget(&self, id: &str);
}

/// A [`GitSync`] in the controllers' configuration.
#[derive(Clone)]
pub struct GitOpsBackend(pub Arc<dyn GitSync>);

impl std::fmt::Debug for GitOpsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitOpsBackend")
    }
}

/// The GitOps controller.
pub struct GitOpsController {
    backend: Arc<dyn GitSync>,
    /// When each source last synced on this leader (a new leader syncs every source once).
    last_sync: Mutex<HashMap<String, Instant>>,
    /// Sources one of whose services was changed (its spec) since their last sync: they sync
    /// at once, so drift is reported (and with self-heal reverted) when it happens rather
    /// than at the next interval.
    drift_checks: Mutex<HashSet<String>>,
}

impl GitOpsController {
    /// A controller that syncs through `backend`.
    pub fn new(backend: Arc<dyn GitSync>) -> Self {
        GitOpsController {
            backend,
            last_sync: Mutex::new(HashMap::new()),
            drift_checks: Mutex::new(HashSet::new()),
        }
    }
}

impl Reconciler for GitOpsController {
    type Key = String;

    fn name(&self) -> &'static str {
        "gitops"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        let stack = match event.object.as_ref() {
            Object::GitSource(s) => {
                keys.push(s.meta.id.clone());
                return;
            }
            Object::Stack(s) => &s.spec.name,
            Object::StackRevision(r) => &r.stack,
            Object::Service(s) => {
                // A hand-made change to a service a source applied (`docker service update`,
                // `scale`, `rm`): check that source for drift now. Status-only writes (tasks'
                // progress, update state) leave the spec alone and are not drift.
                let spec_changed = match event.prev.as_deref() {
                    Some(Object::Service(p)) => p.spec != s.spec,
                    _ => true,
                };
                let Some(stack) = s.spec.labels.get(STACK_NAMESPACE_LABEL) else {
                    return;
                };
                if !spec_changed {
                    return;
                }
                let owners: Vec<String> = cache
                    .list::<GitSource>()
                    .filter(|g| g.status.stacks.contains_key(stack))
                    .map(|g| g.meta.id.clone())
                    .collect();
                self.drift_checks
                    .lock()
                    .unwrap()
                    .extend(owners.iter().cloned());
                keys.extend(owners);
                return;
            }
            _ => return,
        };
        keys.extend(
            cache
                .list::<GitSource>()
                .filter(|s| s.status.stacks.contains_key(stack))
                .map(|s| s.meta.id.clone()),
        );
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache
            .list::<GitSource>()
            .map(|s| s.meta.id.clone())
            .collect()
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(source) = ctx.cache().get::<GitSource>(key) else {
            self.last_sync.lock().unwrap().remove(key);
            self.drift_checks.lock().unwrap().remove(key);
            self.backend.forget(key);
            return Ok(Action::AwaitChange);
        };
        let now = Timestamp::now();
        let interval = Duration::from_secs(source.spec.interval_secs());
        if source.spec.suspended {
            let status = with_conditions(ctx.cache(), &source, source.status.clone(), now);
            write_status(ctx, &source, status).await?;
            return Ok(Action::AwaitChange);
        }
        let last = self.last_sync.lock().unwrap().get(key).copied();
        let requested = source.spec.sync_request != source.status.observed_sync_request;
        let drift_check = self.drift_checks.lock().unwrap().remove(key);
        let due = requested || drift_check || last.is_none_or(|at| at.elapsed() >= interval);
        if !due {
            let status = with_conditions(ctx.cache(), &source, source.status.clone(), now);
            write_status(ctx, &source, status).await?;
            let next = last.map(|at| interval.saturating_sub(at.elapsed()));
            return Ok(Action::Requeue(next.unwrap_or(interval)));
        }
        let span = tracing::debug_span!("gitops sync", source = %source.spec.name);
        let outcome = self.backend.sync(&source).instrument(span).await;
        self.last_sync
            .lock()
            .unwrap()
            .insert(key.clone(), Instant::now());
        let mut status = source.status.clone();
        status.observed_sync_request = source.spec.sync_request;
        match &outcome.fetched {
            Ok(commit) => {
                status.last_fetch_error.clear();
                status.last_fetched_commit = commit.clone();
                status.stacks = outcome.stacks.clone();
                status.last_sync_error = outcome.error.clone().unwrap_or_default();
                let all_applied = outcome.error.is_none()
                    && status.stacks.values().all(|s| {
                        matches!(
                            s.result.as_str(),
                            "Applied" | "Unchanged" | "Drifted" | "Orphaned"
                        )
                    });
                if all_applied && status.last_applied_commit != *commit {
                    status.last_applied_commit = commit.clone();
                    status.last_applied_at = Some(now);
                }
            }
            // The stacks keep running as last applied; their status stays as it was.
            Err(e) => status.last_fetch_error = e.clone(),
        }
        // The source may have changed during the sync (a new sync request): the write is
        // guarded by the version the sync started from, so it then fails and the next reconcile
        // syncs again; nothing newer is overwritten.
        let status = with_conditions(ctx.cache(), &source, status, now);
        write_status(ctx, &source, status).await?;
        Ok(Action::Requeue(interval))
    }
}

/// Writes `status` if it differs from what the store has.
async fn write_status(
    ctx: &Ctx,
    source: &GitSource,
    status: GitSourceStatus,
) -> Result<(), ReconcileError> {
    if status == source.status {
        return Ok(());
    }
    let mut updated = source.clone();
    updated.status = status;
    let op = Op::Update {
        object: Object::GitSource(updated),
        expected_version: source.meta.version.index,
    };
    write::commit(ctx, vec![vec![op]]).await?;
    Ok(())
}

/// `status` with each stack's health from the cache and the source's conditions.
fn with_conditions(
    cache: &Cache,
    source: &GitSource,
    mut status: GitSourceStatus,
    now: Timestamp,
) -> GitSourceStatus {
    for (name, s) in status.stacks.iter_mut() {
        s.health = cache
            .list::<Stack>()
            .find(|st| st.spec.name == *name)
            .map(|st| stack_health(cache, &st, s.revision))
            .unwrap_or_default();
    }
    let stalled = Some(status.last_fetch_error.clone()).filter(|e| !e.is_empty());
    let commit = short(&status.last_fetched_commit);
    let failed: Vec<String> = status
        .stacks
        .iter()
        .filter(|(_, s)| s.result == "Failed")
        .map(|(n, s)| format!("stack {n} at commit {}: {}", short(&s.commit), s.message))
        .collect();
    let unhealthy: Vec<String> = status
        .stacks
        .iter()
        .filter_map(|(n, s)| {
            holds(&s.health, "Degraded").map(|c| {
                // The commit the stack's revision came from (a later commit that left the
                // stack unchanged did not cause this).
                let commit = revision_commit(cache, n, s.revision).unwrap_or(s.commit.clone());
                format!("stack {n} at commit {}: {}", short(&commit), c.message)
            })
        })
        .collect();
    let drifted: Vec<String> = status
        .stacks
        .iter()
        .filter(|(_, s)| !s.drift.is_empty())
        .map(|(n, s)| {
            let paths: Vec<String> = s
                .drift
                .iter()
                .map(|d| format!("{} {}", d.object, d.path))
                .collect();
            format!("stack {n}: {}", paths.join(", "))
        })
        .collect();
    let progressing: Vec<&String> = status
        .stacks
        .iter()
        .filter(|(_, s)| {
            holds(&s.health, "Progressing").is_some()
                || (!s.health.is_empty() && holds(&s.health, "Ready").is_none())
        })
        .map(|(n, _)| n)
        .collect();
    let suspended = source.spec.suspended;
    let mut failed = failed;
    if !status.last_sync_error.is_empty() {
        failed.insert(0, format!("commit {commit}: {}", status.last_sync_error));
    }
    let degraded = !failed.is_empty() || !unhealthy.is_empty();
    let ready = !suspended
        && stalled.is_none()
        && !degraded
        && progressing.is_empty()
        && !status.last_fetched_commit.is_empty()
        && status.last_applied_commit == status.last_fetched_commit;
    let mut conditions = vec![
        condition(
            "Ready",
            ready,
            if suspended {
                "Suspended"
            } else if ready {
                "Synced"
            } else if stalled.is_some() {
                "Stalled"
            } else if degraded {
                "Degraded"
            } else if status.last_fetched_commit.is_empty() {
                "NotSynced"
            } else {
                "Progressing"
            },
            if suspended {
                "suspended: `shoal gitops resume` syncs it again".to_string()
            } else if ready {
                format!("commit {commit} applied and healthy")
            } else {
                String::new()
            },
            now,
        ),
        condition(
            "Progressing",
            !progressing.is_empty(),
            if progressing.is_empty() {
                "RolloutComplete"
            } else {
                "RolloutInProgress"
            },
            progressing
                .iter()
                .map(|s| format!("stack {s}"))
                .collect::<Vec<_>>()
                .join(", "),
            now,
        ),
        condition(
            "Degraded",
            degraded,
            if !failed.is_empty() {
                "CommitFailed"
            } else if !unhealthy.is_empty() {
                "StackDegraded"
            } else {
                ""
            },
            failed
                .iter()
                .chain(unhealthy.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
            now,
        ),
        condition(
            "Stalled",
            stalled.is_some(),
            if stalled.is_some() { "FetchFailed" } else { "" },
            match &stalled {
                Some(e) if status.last_applied_commit.is_empty() => e.clone(),
                Some(e) => format!(
                    "{e}; the swarm keeps commit {} as last applied",
                    short(&status.last_applied_commit)
                ),
                None => String::new(),
            },
            now,
        ),
        condition(
            "Drifted",
            !drifted.is_empty(),
            if drifted.is_empty() {
                ""
            } else if source.spec.self_heal {
                "DriftReverted"
            } else {
                "ChangedOutsideGit"
            },
            drifted.join("; "),
            now,
        ),
    ];
    carry_transitions(&mut conditions, &source.status.conditions);
    status.conditions = conditions;
    status
}

/// The stack's conditions, with the result of revision `revision` (when this source recorded
/// it) folded into Degraded: a rollout that failed or was rolled back degrades the source.
fn stack_health(cache: &Cache, stack: &Stack, revision: u64) -> Vec<Condition> {
    let mut conditions = stack.status.conditions.clone();
    if stack.status.observed_revision != stack.revision {
        // The stack controller has not looked at the current revision yet.
        conditions.retain(|c| c.kind != "Ready");
    }
    let result = cache
        .list::<StackRevision>()
        .find(|r| r.stack_id == stack.meta.id && r.number == revision && revision != 0)
        .map(|r| r.result.clone());
    if let Some(r) = result.filter(|r| matches!(r.state.as_str(), "Failed" | "RolledBack")) {
        if let Some(c) = conditions.iter_mut().find(|c| c.kind == "Degraded") {
            if !c.status {
                c.status = true;
                c.reason = format!("Rollout{}", r.state);
            }
            c.message = format!("revision {revision} {}: {}", r.state, r.message);
        }
    }
    conditions
}

/// The git commit revision `number` of stack `stack` was applied from.
fn revision_commit(cache: &Cache, stack: &str, number: u64) -> Option<String> {
    cache
        .list::<StackRevision>()
        .find(|r| r.stack == stack && r.number == number && !r.git_commit.is_empty())
        .map(|r| r.git_commit.clone())
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(status: GitSourceStatus) -> GitSource {
        GitSource {
            status,
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_stack_degrades_the_source_with_its_commit() {
        let mut status = GitSourceStatus {
            last_fetched_commit: "b".repeat(40),
            last_applied_commit: "a".repeat(40),
            ..Default::default()
        };
        status.stacks.insert(
            "web".into(),
            GitStackStatus {
                result: "Failed".into(),
                message: "service web_app: bad image".into(),
                commit: "b".repeat(40),
                ..Default::default()
            },
        );
        let s = with_conditions(
            &Cache::new(),
            &source(GitSourceStatus::default()),
            status,
            Timestamp::now(),
        );
        let degraded = holds(&s.conditions, "Degraded").expect("degraded");
        assert_eq!(degraded.reason, "CommitFailed");
        assert!(
            degraded.message.contains("bbbbbbbbbbbb"),
            "{}",
            degraded.message
        );
        assert!(degraded.message.contains("bad image"));
        assert!(holds(&s.conditions, "Ready").is_none());
    }

    #[test]
    fn a_failed_fetch_stalls_and_keeps_the_last_applied_commit() {
        let status = GitSourceStatus {
            last_fetched_commit: "a".repeat(40),
            last_applied_commit: "a".repeat(40),
            last_fetch_error: "git fetch: repository not found".into(),
            ..Default::default()
        };
        let s = with_conditions(
            &Cache::new(),
            &source(status.clone()),
            status,
            Timestamp::now(),
        );
        let stalled = holds(&s.conditions, "Stalled").expect("stalled");
        assert!(
            stalled.message.contains("aaaaaaaaaaaa"),
            "{}",
            stalled.message
        );
        assert_eq!(s.last_applied_commit, "a".repeat(40));
        assert!(holds(&s.conditions, "Ready").is_none());
    }

    #[test]
    fn an_applied_commit_with_no_stack_health_yet_is_ready() {
        let mut status = GitSourceStatus {
            last_fetched_commit: "a".repeat(40),
            last_applied_commit: "a".repeat(40),
            ..Default::default()
        };
        status.stacks.insert(
            "web".into(),
            GitStackStatus {
                result: "Unchanged".into(),
                ..Default::default()
            },
        );
        let s = with_conditions(
            &Cache::new(),
            &source(GitSourceStatus::default()),
            status,
            Timestamp::now(),
        );
        assert!(
            holds(&s.conditions, "Ready").is_some(),
            "{:?}",
            s.conditions
        );
    }
}
