//! Applying a plan: one transaction for the whole stack, a dry run, a plan token, rollbacks to
//! a stored revision, and the history a stack keeps.

use serde::Serialize;
use shoal_store::model::{Stack, StackRevision};
use shoal_store::{Store, View};

use super::diff::{diff, FieldDiff};
use super::plan::{prepare, to_json, Desired, Plan};
use super::StackError;

/// How to apply.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Only plan.
    pub dry_run: bool,
    /// Go ahead only if the plan is still the one with this token.
    pub plan_token: Option<String>,
}

/// What an apply did.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    /// The plan it carried out (or would have, for a dry run).
    pub plan: Plan,
    /// The stack revision recorded (absent: nothing changed, or a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The store revision of the commit (to watch the rollout from); the store's current
    /// revision when nothing was written.
    pub store_revision: u64,
}

/// Plans `d` against the latest committed state (a linearizable read, so a plan made on a
/// follower never misses a write acknowledged elsewhere).
pub async fn plan(store: &Store, d: &Desired) -> Result<Plan, StackError> {
    let view = store.linearizable_view().await?;
    Ok(prepare(&view, d)?.plan)
}

/// Applies `d` in one transaction.
pub async fn apply(store: &Store, d: &Desired, opts: &ApplyOptions) -> Result<Applied, StackError> {
    // Subnets of new networks are chosen from the view; one allocation at a time on this
    // manager (the same lock `docker network create` takes).
    let _allocating = crate::api::networks::ALLOCATING.lock().await;
    let mut attempt = 1;
    loop {
        let view = store.linearizable_view().await?;
        let prepared = prepare(&view, d)?;
        if let Some(token) = &opts.plan_token {
            if *token != prepared.plan.token {
                return Err(StackError::Conflict(format!(
                    "stack {}: the plan changed since plan token {token} was made (the file or the store changed); run `shoal plan` again and apply its token",
                    d.stack
                )));
            }
        }
        if opts.dry_run || !prepared.plan.has_changes() {
            return Ok(Applied {
                plan: prepared.plan,
                revision: None,
                store_revision: view.revision(),
            });
        }
        match store.submit(prepared.txn).await {
            Ok(committed) => {
                return Ok(Applied {
                    revision: prepared.plan.next_revision,
                    plan: prepared.plan,
                    store_revision: committed.revision,
                })
            }
            // Something the plan read changed between the view and the commit (the stack
            // controller writing the stack's status during a rollout, the update supervisor a
            // service's) or was deleted (the task reaper deleting a task a removal marks): plan
            // again against the new state, which honours a plan token only if the plan is
            // still the same.
            Err(e) if e.is_stale_read() && attempt < APPLY_ATTEMPTS => attempt += 1,
            Err(e) if e.is_stale_read() => {
                return Err(StackError::Conflict(format!(
                    "stack {}: objects kept changing while the stack was being applied ({e}, {APPLY_ATTEMPTS} attempts); nothing was written, apply again",
                    d.stack
                )))
            }
            Err(e) => return Err(StackError::Store(e)),
        }
    }
}

/// How many times an apply plans again when what it read changed before its commit.
const APPLY_ATTEMPTS: u32 = 5;

/// The stack named `name`.
pub fn stack(view: &View, name: &str) -> Result<Stack, StackError> {
    view.get_by_name::<Stack>(name)
        .filter(|s| s.spec.name == name)
        .map(|s| s.to_owned_value())
        .ok_or_else(|| {
            StackError::NotFound(format!(
                "stack {name} not found; `shoal apply -f FILE --stack {name}` creates it"
            ))
        })
}

/// The retained revisions of a stack, oldest first.
pub fn history(view: &View, name: &str) -> Result<Vec<StackRevision>, StackError> {
    let stack = stack(view, name)?;
    let mut revisions: Vec<StackRevision> = view
        .list::<StackRevision>()
        .filter(|r| r.stack_id == stack.meta.id)
        .map(|r| r.to_owned_value())
        .collect();
    revisions.sort_by_key(|r| r.number);
    Ok(revisions)
}

/// Revision `number` of a stack.
pub fn revision(view: &View, name: &str, number: u64) -> Result<StackRevision, StackError> {
    let stack = stack(view, name)?;
    view.get_by_name::<StackRevision>(&StackRevision::name_of(name, number))
        .filter(|r| r.stack_id == stack.meta.id)
        .map(|r| r.to_owned_value())
        .ok_or_else(|| {
            StackError::NotFound(format!(
                "stack {name} has no revision {number}; `shoal history {name}` lists the ones it keeps"
            ))
        })
}

/// The field differences between two revisions' objects, per object.
pub fn revision_diff(a: &StackRevision, b: &StackRevision) -> Vec<(String, Vec<FieldDiff>)> {
    let objects = |r: &StackRevision| -> std::collections::BTreeMap<String, serde_json::Value> {
        let o = &r.objects;
        let mut m = std::collections::BTreeMap::new();
        for s in &o.services {
            m.insert(format!("service {}", s.name), to_json(s));
        }
        for n in &o.networks {
            m.insert(format!("network {}", n.name), to_json(n));
        }
        for s in &o.secrets {
            let mut v = to_json(s);
            redact_data(&mut v);
            m.insert(format!("secret {}", s.name), v);
        }
        for c in &o.configs {
            let mut v = to_json(c);
            redact_data(&mut v);
            m.insert(format!("config {}", c.name), v);
        }
        m
    };
    let (a, b) = (objects(a), objects(b));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let null = serde_json::Value::Null;
            (
                k.clone(),
                diff(a.get(k).unwrap_or(&null), b.get(k).unwrap_or(&null)),
            )
        })
        .filter(|(_, d)| !d.is_empty())
        .collect()
}

/// Data shown as a digest, never as bytes.
fn redact_data(v: &mut serde_json::Value) {
    if let Some(data) = v.get("Data").and_then(|d| d.as_str()).map(str::to_string) {
        v["Data"] = serde_json::Value::String(super::versions::digest(data.as_bytes()));
    }
}

/// What rolling a stack back to revision `to` (default: the one before the current) applies:
/// that revision's objects, pruning what it did not have, recorded as a new revision.
pub fn rollback_desired(
    view: &View,
    name: &str,
    to: Option<u64>,
    applied_by: &str,
) -> Result<Desired, StackError> {
    let stack = stack(view, name)?;
    let to = match to {
        Some(n) => n,
        None if stack.revision > 1 => stack.revision - 1,
        None => {
            return Err(StackError::NotFound(format!(
            "stack {name} has no revision before {}; `shoal history {name}` lists its revisions",
            stack.revision
        )))
        }
    };
    let rev = revision(view, name, to)?;
    Ok(Desired {
        stack: name.to_string(),
        objects: rev.objects,
        source_digest: rev.source_digest,
        applied_by: applied_by.to_string(),
        cause: format!("rollback to {to}"),
        prune: true,
        warnings: Vec::new(),
        history_limit: None,
        git_source: String::new(),
        git_commit: String::new(),
    })
}

/// Removes stack `name` for good: every object it owns (pruned through an apply of nothing,
/// so tasks, networks and secrets go as a prune takes them), then the stack itself, its
/// revisions and its retired secret and config revisions.
pub async fn remove(
    store: &Store,
    name: &str,
    applied_by: &str,
    cause: &str,
) -> Result<(), StackError> {
    let empty = Desired {
        stack: name.to_string(),
        applied_by: applied_by.to_string(),
        cause: cause.to_string(),
        prune: true,
        ..Default::default()
    };
    apply(store, &empty, &ApplyOptions::default()).await?;
    let mut attempt = 1;
    loop {
        let view = store.linearizable_view().await?;
        let s = stack(&view, name)?;
        let mut txn = shoal_store::Txn::new().delete(
            shoal_store::model::Kind::Stack,
            s.meta.id.clone(),
            Some(s.meta.version.index),
        );
        for r in view
            .list::<StackRevision>()
            .filter(|r| r.stack_id == s.meta.id)
        {
            txn = txn.delete(
                shoal_store::model::Kind::StackRevision,
                r.meta.id.clone(),
                None,
            );
        }
        for item in &s.retired {
            txn = txn.delete(item.kind, item.id.clone(), None);
        }
        match store.submit(txn).await {
            Ok(_) => break,
            // The stack controller writes the emptied stack's status meanwhile.
            Err(e) if e.is_stale_read() && attempt < APPLY_ATTEMPTS => attempt += 1,
            Err(e) => return Err(StackError::Store(e)),
        }
    }
    Ok(())
}
