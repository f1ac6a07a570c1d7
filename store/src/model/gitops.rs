//! GitOps sources: a git repository, a ref and a directory whose compose files the GitOps
//! controller keeps applied as stacks. The spec is the user's; the status is written only by
//! the controller on the leader, and only when something in it changed (an idle source that
//! is polled and finds the same commit writes nothing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{Meta, Timestamp};
use super::status::Condition;

/// How often a source is fetched when its spec does not say.
pub const DEFAULT_GITOPS_INTERVAL_SECS: u64 = 60;

/// A git repository kept applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GitSource {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned settings.
    #[serde(rename = "Spec", default)]
    pub spec: GitSourceSpec,
    /// What the GitOps controller last did and observed.
    #[serde(rename = "Status", default)]
    pub status: GitSourceStatus,
}

/// A source's user-owned settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GitSourceSpec {
    /// The source's name (unique).
    #[serde(rename = "Name")]
    pub name: String,
    /// The repository: an absolute path on the leader, a `file://` URL or an `https://` URL.
    #[serde(rename = "Repo")]
    pub repo: String,
    /// A branch, a tag or a commit id.
    #[serde(rename = "Ref")]
    pub git_ref: String,
    /// The directory in the repository holding the compose file (or, with `stack_per_dir`,
    /// one subdirectory per stack); empty for the repository's root.
    #[serde(rename = "Path", default)]
    pub path: String,
    /// Seconds between fetches (0 means [`DEFAULT_GITOPS_INTERVAL_SECS`]).
    #[serde(rename = "IntervalSeconds", default)]
    pub interval_secs: u64,
    /// Remove what the repository no longer has: objects of a stack, and whole stacks whose
    /// directory is gone.
    #[serde(rename = "Prune", default)]
    pub prune: bool,
    /// Put back objects changed by hand (drift) to what the commit says.
    #[serde(rename = "SelfHeal", default)]
    pub self_heal: bool,
    /// Each subdirectory of `path` with a compose file is a stack named after it; otherwise
    /// `path` is one stack named after the source.
    #[serde(rename = "StackPerDir", default)]
    pub stack_per_dir: bool,
    /// No fetch, no apply while set.
    #[serde(rename = "Suspended", default)]
    pub suspended: bool,
    /// Service spec fields another writer owns (`replicas`, or a dotted path of the Docker
    /// API's ServiceSpec such as `TaskTemplate.ContainerSpec.Env`): never applied, never drift.
    #[serde(
        rename = "IgnoreFields",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignore_fields: Vec<String>,
    /// The swarm secret holding the token sent with every request to an `https://` repository
    /// (empty: none).
    #[serde(
        rename = "TokenSecret",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub token_secret: String,
    /// The swarm secret holding the ssh private key (a deploy key) for an ssh repository.
    #[serde(
        rename = "DeployKeySecret",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub deploy_key_secret: String,
    /// The ssh server's host keys (`known_hosts` lines): the only ones accepted.
    #[serde(
        rename = "KnownHosts",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub known_hosts: String,
    /// The swarm secret whose data is the webhook secret (HMAC key of GitHub and Gitea
    /// signatures, GitLab's token); empty: webhooks are refused.
    #[serde(
        rename = "WebhookSecret",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub webhook_secret: String,
    /// The swarm secret holding the age identities that decrypt the repository's `.age` files
    /// (empty: such files fail their commit).
    #[serde(
        rename = "AgeIdentitySecret",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub age_identity_secret: String,
    /// Bumped by `shoal gitops sync` and by webhooks: a sync is due when it differs from the
    /// status's `ObservedSyncRequest` (kept in the store, so a leader change does not lose it).
    #[serde(rename = "SyncRequest", default)]
    pub sync_request: u64,
}

impl GitSourceSpec {
    /// Seconds between fetches.
    pub fn interval_secs(&self) -> u64 {
        if self.interval_secs == 0 {
            DEFAULT_GITOPS_INTERVAL_SECS
        } else {
            self.interval_secs
        }
    }
}

/// What the controller last did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GitSourceStatus {
    /// The last sync request handled (see [`GitSourceSpec::sync_request`]).
    #[serde(rename = "ObservedSyncRequest", default)]
    pub observed_sync_request: u64,
    /// The commit the ref resolved to at the last successful fetch.
    #[serde(rename = "LastFetchedCommit", default)]
    pub last_fetched_commit: String,
    /// Why the last fetch failed (empty: it did not); the stacks stay as last applied.
    #[serde(
        rename = "LastFetchError",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub last_fetch_error: String,
    /// Why the last fetched commit as a whole could not be synced (its directory is missing,
    /// say); empty when it could.
    #[serde(
        rename = "LastSyncError",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub last_sync_error: String,
    /// The last commit whose stacks were all applied (or found unchanged).
    #[serde(rename = "LastAppliedCommit", default)]
    pub last_applied_commit: String,
    /// When `LastAppliedCommit` was applied.
    #[serde(
        rename = "LastAppliedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_applied_at: Option<Timestamp>,
    /// The stacks of the last commit synced, by stack name.
    #[serde(rename = "Stacks", default)]
    pub stacks: BTreeMap<String, GitStackStatus>,
    /// Ready / Progressing / Degraded / Stalled.
    #[serde(rename = "Conditions", default)]
    pub conditions: Vec<Condition>,
}

/// One stack of a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GitStackStatus {
    /// The stack's directory in the repository.
    #[serde(rename = "Path", default)]
    pub path: String,
    /// `Applied`, `Unchanged`, `Failed` (the commit could not be applied), `Pruned`.
    #[serde(rename = "Result", default)]
    pub result: String,
    /// Why, for a failure.
    #[serde(rename = "Message", default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The commit the result is about.
    #[serde(rename = "Commit", default)]
    pub commit: String,
    /// The stack revision the commit was applied as (0: none recorded by this source).
    #[serde(rename = "Revision", default)]
    pub revision: u64,
    /// The stack's health: its own Ready / Progressing / Degraded as the stack controller
    /// computed them.
    #[serde(rename = "Health", default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<Condition>,
    /// Fields changed outside git (empty when none).
    #[serde(rename = "Drift", default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftedField>,
}

/// One field of one object that differs from what the commit says.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftedField {
    /// `service web_app` (kind and name).
    #[serde(rename = "Object")]
    pub object: String,
    /// The field's path (`Mode.Replicated.Replicas`).
    #[serde(rename = "Path")]
    pub path: String,
    /// Its value in the swarm (JSON), absent when the field is not set there.
    #[serde(rename = "Live", default, skip_serializing_if = "Option::is_none")]
    pub live: Option<serde_json::Value>,
    /// Its value in git (JSON), absent when the commit does not set it.
    #[serde(rename = "Git", default, skip_serializing_if = "Option::is_none")]
    pub git: Option<serde_json::Value>,
}
