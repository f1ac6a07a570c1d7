//! One sync of a source: fetch, check out, render, and for each stack plan then apply through
//! the declarative apply ([`crate::stack::apply`]), the same code `shoal apply` runs.
//!
//! Per stack:
//! - the commit's files cannot be loaded or planned, or a service would not find a node:
//!   `Failed` with the reason; nothing is written, what runs keeps running;
//! - the plan has no changes: `Unchanged`, no write;
//! - the commit says something new for the stack (its source digest differs from the stack's
//!   current revision's): applied, one stack revision recording the commit;
//! - otherwise the changes were made outside git: drift, reported per field, and reverted
//!   (applied again, cause `gitops NAME self-heal`) only with self-heal on.
//!
//! A stack the source applied earlier whose directory is gone is removed with prune on, and
//! reported `Orphaned` (left running) without it.
//!
//! A removed source's fetched repository and last result are dropped ([`GitSync::forget`]).
//!
//! An idle sync costs one `git fetch`: when the commit, the source's spec and every object its
//! stacks own are as they were after the last sync that left nothing to retry, that sync's
//! result stands without a checkout, a render or a plan (and the controller writes nothing).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shoal_controllers::gitops::{GitSync, SyncOutcome};
use shoal_store::model::{
    DriftedField, GitSource, GitSourceSpec, GitStackStatus, Secret, Service, ServiceSpec, Stack,
    StackRevision,
};
use shoal_store::{Store, View};

use super::age::{parse_identities, Identities};
use super::git::{Auth, Checkout};
use super::render::{render, RenderedStack};
use super::spec::ignore_path;
use crate::stack::apply::{self, ApplyOptions};
use crate::stack::plan::{Action, Desired, Plan};

/// The binary's side of the GitOps controller.
pub struct Syncer {
    store: Store,
    /// One cache repository per source, named by the source's id.
    cache_root: PathBuf,
    /// Per source id, the last sync that left nothing to retry: what it looked at and what it
    /// found. A sync that finds the same thing stops after its fetch.
    settled: Mutex<HashMap<String, (String, SyncOutcome)>>,
}

impl Syncer {
    /// Syncs sources of `store`, keeping fetched repositories under `cache_root`.
    pub fn new(store: Store, cache_root: PathBuf) -> Self {
        Syncer {
            store,
            cache_root,
            settled: Mutex::new(HashMap::new()),
        }
    }
}

/// What a sync's result depends on besides the store's nodes: the commit, the source's spec
/// (without its sync requests), and for each stack of the outcome its revision and the version
/// of every object it owns (a `docker service update` moves a service's version).
fn fingerprint(view: &View, source: &GitSource, commit: &str, outcome: &SyncOutcome) -> String {
    let mut spec = source.spec.clone();
    spec.sync_request = 0;
    let mut h = Sha256::new();
    h.update(commit.as_bytes());
    h.update(serde_json::to_vec(&spec).unwrap_or_default());
    for name in outcome.stacks.keys() {
        h.update([0]);
        h.update(name.as_bytes());
        let Some(stack) = view
            .get_by_name::<Stack>(name)
            .filter(|s| s.spec.name == *name)
        else {
            continue;
        };
        h.update(stack.revision.to_le_bytes());
        for item in &stack.inventory {
            let version = view
                .get_object(item.kind, &item.id)
                .map(|o| o.version())
                .unwrap_or(0);
            h.update(item.id.as_bytes());
            h.update(version.to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Whether nothing of `outcome` is worth trying again.
fn settled(outcome: &SyncOutcome) -> bool {
    outcome.error.is_none() && outcome.stacks.values().all(|s| s.result != "Failed")
}

impl GitSync for Syncer {
    fn sync<'a>(&'a self, source: &'a GitSource) -> BoxFuture<'a, SyncOutcome> {
        Box::pin(async move {
            let outcome = self.run(source).await;
            if let Ok(commit) = &outcome.fetched {
                let mut known = self.settled.lock().unwrap();
                if settled(&outcome) {
                    let view = self.store.view();
                    let print = fingerprint(&view, source, commit, &outcome);
                    known.insert(source.meta.id.clone(), (print, outcome.clone()));
                } else {
                    known.remove(&source.meta.id);
                }
            }
            outcome
        })
    }

    fn forget(&self, id: &str) {
        self.settled.lock().unwrap().remove(id);
        // Source ids are store ids (no path separators), so this stays under the cache root.
        let repo = self.cache_root.join(id);
        if !id.is_empty() && !id.contains(['/', '\\', '.']) {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = std::fs::remove_dir_all(&repo) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %repo.display(), "gitops: could not remove a removed source's repository: {e}");
                    }
                }
            });
        }
    }
}

fn failed(base: GitStackStatus, message: impl Into<String>) -> GitStackStatus {
    GitStackStatus {
        result: "Failed".into(),
        message: message.into(),
        ..base
    }
}

impl Syncer {
    async fn run(&self, source: &GitSource) -> SyncOutcome {
        let spec = &source.spec;
        let unchanged_stacks = || source.status.stacks.clone();
        let checkout = match Checkout::open(self.cache_root.join(&source.meta.id)).await {
            Ok(c) => c,
            Err(e) => {
                return SyncOutcome {
                    fetched: Err(e),
                    stacks: unchanged_stacks(),
                    error: None,
                }
            }
        };
        let auth = match self.auth(spec) {
            Ok(a) => a,
            Err(e) => {
                return SyncOutcome {
                    fetched: Err(e),
                    stacks: unchanged_stacks(),
                    error: None,
                }
            }
        };
        let commit = match checkout.fetch(&spec.repo, &spec.git_ref, &auth).await {
            Ok(c) => c,
            Err(e) => {
                return SyncOutcome {
                    fetched: Err(e),
                    stacks: unchanged_stacks(),
                    error: None,
                }
            }
        };
        // Same commit, same spec, nothing of its stacks changed since a sync that settled:
        // the same result, without a checkout or a plan.
        let known = self.settled.lock().unwrap().get(&source.meta.id).cloned();
        if let Some((print, outcome)) = known {
            if outcome.fetched.as_ref() == Ok(&commit)
                && fingerprint(&self.store.view(), source, &commit, &outcome) == print
            {
                return outcome;
            }
        }
        let rendered = match (checkout.check_out(&commit).await, self.identities(spec)) {
            (Ok(()), Ok(ids)) => render(checkout.work_tree(), spec, &commit, ids.as_ref()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => {
                return SyncOutcome {
                    fetched: Ok(commit),
                    stacks: unchanged_stacks(),
                    error: Some(e),
                }
            }
        };
        let mut stacks = BTreeMap::new();
        for r in rendered {
            let name = r.name.clone();
            let status = self.sync_stack(source, &commit, r).await;
            stacks.insert(name, status);
        }
        for (name, prev) in &source.status.stacks {
            if stacks.contains_key(name) {
                continue;
            }
            if let Some(s) = self.gone(source, &commit, name, prev).await {
                stacks.insert(name.clone(), s);
            }
        }
        SyncOutcome {
            fetched: Ok(commit),
            stacks,
            error: None,
        }
    }

    /// How the source's fetch authenticates, from its swarm secrets read at every sync (a
    /// rotated token or key takes effect at once). A token's surrounding whitespace (a trailing
    /// newline) is not part of it.
    fn auth(&self, spec: &GitSourceSpec) -> Result<Auth, String> {
        let view = self.store.view();
        let secret = |name: &str, what: &str| {
            view.get_by_name::<Secret>(name)
                .filter(|s| s.spec.name == name)
                .map(|s| s.spec.data.clone())
                .ok_or_else(|| format!("the {what} secret {name} is not in the swarm"))
        };
        if !spec.deploy_key_secret.is_empty() {
            return Ok(Auth::Ssh {
                key: secret(&spec.deploy_key_secret, "deploy key")?,
                known_hosts: spec.known_hosts.clone(),
            });
        }
        if spec.token_secret.is_empty() {
            return Ok(Auth::None);
        }
        let name = &spec.token_secret;
        let token = String::from_utf8(secret(name, "token")?)
            .map_err(|_| format!("the token secret {name} is not text"))?;
        Ok(Auth::Token(token.trim().to_string()))
    }

    /// The source's age identities, read from its swarm secret at every sync (so a rotated
    /// key takes effect at once).
    fn identities(&self, spec: &GitSourceSpec) -> Result<Option<Identities>, String> {
        if spec.age_identity_secret.is_empty() {
            return Ok(None);
        }
        let name = &spec.age_identity_secret;
        let view = self.store.view();
        let data = view
            .get_by_name::<Secret>(name)
            .filter(|s| s.spec.name == *name)
            .map(|s| s.spec.data.clone())
            .ok_or_else(|| format!("the age identity secret {name} is not in the swarm"))?;
        parse_identities(name, &data).map(Some)
    }

    async fn sync_stack(
        &self,
        source: &GitSource,
        commit: &str,
        r: RenderedStack,
    ) -> GitStackStatus {
        let spec = &source.spec;
        let base = GitStackStatus {
            path: r.path.clone(),
            commit: commit.to_string(),
            ..Default::default()
        };
        let mut desired = match r.desired {
            Ok(d) => d,
            Err(e) => return failed(base, e),
        };
        let view = match self.store.linearizable_view().await {
            Ok(v) => v,
            Err(e) => return failed(base, format!("cannot read the store: {e}")),
        };
        let current = view
            .get_by_name::<Stack>(&r.name)
            .filter(|s| s.spec.name == r.name)
            .map(|s| s.to_owned_value());
        let current_revision = current.as_ref().and_then(|s| revision_of(&view, s));
        if let Some(owner) = current_revision
            .as_ref()
            .map(|rev| rev.git_source.clone())
            .filter(|o| !o.is_empty() && *o != spec.name)
        {
            return failed(
                base,
                format!(
                    "stack {} is kept by gitops source {owner}; one stack has one source",
                    r.name
                ),
            );
        }
        ignore_fields(&view, &mut desired, &spec.ignore_fields);
        let plan = match apply::plan(&self.store, &desired).await {
            Ok(p) => p,
            Err(e) => return failed(base, e.to_string()),
        };
        let revision_now = current.as_ref().map(|s| s.revision).unwrap_or(0);
        if !plan.has_changes() {
            return GitStackStatus {
                result: "Unchanged".into(),
                revision: revision_now,
                ..base
            };
        }
        let from_git = current_revision
            .as_ref()
            .is_none_or(|rev| rev.source_digest != desired.source_digest);
        let drift = if from_git {
            Vec::new()
        } else {
            drift_of(&plan)
        };
        if !from_git && !spec.self_heal {
            return GitStackStatus {
                result: "Drifted".into(),
                revision: revision_now,
                drift,
                ..base
            };
        }
        if let Some(why) = unschedulable(&plan) {
            return failed(base, why);
        }
        if !from_git {
            desired.cause = format!("gitops {} self-heal", spec.name);
        }
        match apply::apply(&self.store, &desired, &ApplyOptions::default()).await {
            Ok(applied) => GitStackStatus {
                result: "Applied".into(),
                revision: applied.revision.unwrap_or(revision_now),
                drift,
                ..base
            },
            Err(e) => failed(base, e.to_string()),
        }
    }

    /// A stack the source had that the commit no longer has.
    async fn gone(
        &self,
        source: &GitSource,
        commit: &str,
        name: &str,
        prev: &GitStackStatus,
    ) -> Option<GitStackStatus> {
        let view = self.store.view();
        let ours = view
            .get_by_name::<Stack>(name)
            .filter(|s| s.spec.name == name)
            .and_then(|s| revision_of(&view, &s))
            .is_some_and(|r| r.git_source == source.spec.name);
        if !ours {
            // Never applied by this source (its first commit failed), or already removed.
            return None;
        }
        let base = GitStackStatus {
            path: prev.path.clone(),
            commit: commit.to_string(),
            revision: prev.revision,
            ..Default::default()
        };
        if !source.spec.prune {
            return Some(GitStackStatus {
                result: "Orphaned".into(),
                message: format!(
                    "{} is gone from the repository; the stack keeps running (prune removes it)",
                    prev.path
                ),
                ..base
            });
        }
        let by = format!("gitops/{}", source.spec.name);
        let cause = format!("gitops {} prune", source.spec.name);
        match apply::remove(&self.store, name, &by, &cause).await {
            Ok(()) => None,
            Err(e) => Some(failed(base, format!("cannot remove the stack: {e}"))),
        }
    }
}

/// The stack's current revision.
fn revision_of(view: &View, stack: &Stack) -> Option<StackRevision> {
    view.get_by_name::<StackRevision>(&StackRevision::name_of(&stack.spec.name, stack.revision))
        .filter(|r| r.stack_id == stack.meta.id)
        .map(|r| r.to_owned_value())
}

/// Gives the desired services the swarm's values of the fields another writer owns, so a plan
/// neither changes nor reports them.
fn ignore_fields(view: &View, desired: &mut Desired, fields: &[String]) {
    if fields.is_empty() {
        return;
    }
    for svc in desired.objects.services.iter_mut() {
        let Some(live) = view
            .get_by_name::<Service>(&svc.name)
            .filter(|s| s.spec.name == svc.name)
        else {
            continue;
        };
        let live = serde_json::to_value(&live.spec).unwrap_or(Value::Null);
        let mut wanted = serde_json::to_value(&*svc).unwrap_or(Value::Null);
        for f in fields {
            let parts: Vec<&str> = ignore_path(f).split('.').collect();
            set_path(&mut wanted, &parts, lookup(&live, &parts));
        }
        if let Ok(spec) = serde_json::from_value::<ServiceSpec>(wanted) {
            *svc = spec;
        }
    }
}

fn lookup<'a>(v: &'a Value, parts: &[&str]) -> Option<&'a Value> {
    parts.iter().try_fold(v, |v, p| v.get(*p))
}

/// Sets (or, with `None`, removes) the value at `parts`, creating objects on the way.
fn set_path(v: &mut Value, parts: &[&str], value: Option<&Value>) {
    let Some((last, path)) = parts.split_last() else {
        return;
    };
    let mut at = v;
    for p in path {
        if !at.get(*p).is_some_and(Value::is_object) {
            if value.is_none() {
                return;
            }
            at[*p] = Value::Object(Default::default());
        }
        at = &mut at[*p];
    }
    match value {
        Some(x) => at[*last] = x.clone(),
        None => {
            if let Some(o) = at.as_object_mut() {
                o.remove(*last);
            }
        }
    }
}

/// The fields the swarm has that git does not say, per object.
fn drift_of(plan: &Plan) -> Vec<DriftedField> {
    let mut out = Vec::new();
    for c in &plan.changes {
        let object = format!("{} {}", c.kind, c.name);
        match c.action {
            Action::Update | Action::Replace => out.extend(c.fields.iter().map(|f| DriftedField {
                object: object.clone(),
                path: f.path.clone(),
                live: f.old.clone(),
                git: f.new.clone(),
            })),
            Action::Create => out.push(DriftedField {
                object,
                path: String::new(),
                live: None,
                git: Some(Value::String("removed from the swarm by hand".into())),
            }),
            Action::Delete | Action::Unchanged | Action::Orphaned => {}
        }
    }
    out
}

/// Why a service the plan changes would not find a node (then nothing is applied: the tasks
/// that run now keep running).
fn unschedulable(plan: &Plan) -> Option<String> {
    let reasons: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| {
            c.unschedulable
                .as_ref()
                .map(|u| format!("service {} would not be scheduled: {u}", c.name))
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_path_copies_and_removes_fields() {
        let mut v = json!({"Mode": {"Replicated": {"Replicas": 1}}, "Name": "a"});
        set_path(&mut v, &["Mode", "Replicated", "Replicas"], Some(&json!(5)));
        assert_eq!(v["Mode"]["Replicated"]["Replicas"], 5);
        set_path(&mut v, &["Mode", "Replicated", "Replicas"], None);
        assert_eq!(v["Mode"]["Replicated"], json!({}));
        set_path(&mut v, &["Labels", "x"], Some(&json!("y")));
        assert_eq!(v["Labels"]["x"], "y");
        assert_eq!(lookup(&v, &["Labels", "x"]), Some(&json!("y")));
        assert_eq!(lookup(&v, &["Nope", "x"]), None);
    }
}
