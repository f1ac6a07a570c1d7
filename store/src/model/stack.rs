//! Stacks: a named set of services, networks, secrets and configs applied together from one
//! spec (a compose file), with an explicit inventory of what the stack owns and its last few
//! revisions. `docker stack deploy` only labels objects (`com.docker.stack.namespace`); a
//! [`Stack`] makes ownership explicit so prune can remove exactly what the stack created and a
//! second stack cannot take over the first one's objects.

use serde::{Deserialize, Serialize};

use super::meta::{Meta, Timestamp};
use super::spec::{ConfigSpec, Labels, NetworkSpec, SecretSpec, ServiceSpec};
use super::status::{Condition, ServiceHealth};
use super::Kind;

/// The label `docker stack deploy` (and `shoal apply`) puts on every object of a stack (and on
/// the container spec of its services, which their tasks copy).
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// How many revisions a stack keeps when its spec does not say.
pub const DEFAULT_HISTORY_LIMIT: u32 = 10;

/// A stack: what it owns and which revision it is at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned settings.
    #[serde(rename = "Spec", default)]
    pub spec: StackSpec,
    /// The objects the stack owns, in a fixed order (kind, then name).
    #[serde(rename = "Inventory", default)]
    pub inventory: Vec<InventoryItem>,
    /// Earlier revisions of the stack's secrets and configs that tasks or retained stack
    /// revisions may still use; the stack controller removes each once nothing does.
    #[serde(rename = "Retired", default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<InventoryItem>,
    /// The number of the revision last applied (0 before the first apply).
    #[serde(rename = "Revision", default)]
    pub revision: u64,
    /// What the stack controller last observed of the rollout.
    #[serde(rename = "Status", default)]
    pub status: StackStatus,
}

/// A stack's user-owned settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackSpec {
    /// The stack's name: the prefix of its objects' names and the value of their
    /// `com.docker.stack.namespace` label.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Labels.
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    /// Revisions kept (0 means [`DEFAULT_HISTORY_LIMIT`]).
    #[serde(rename = "HistoryLimit", default)]
    pub history_limit: u32,
}

impl StackSpec {
    /// The number of revisions to keep.
    pub fn history_limit(&self) -> u32 {
        if self.history_limit == 0 {
            DEFAULT_HISTORY_LIMIT
        } else {
            self.history_limit
        }
    }
}

/// One object a stack owns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InventoryItem {
    /// Its kind (service, network, secret or config).
    #[serde(rename = "Kind")]
    pub kind: Kind,
    /// Its name in the store (`<stack>_<name>`, or a later revision's name for secrets and
    /// configs).
    #[serde(rename = "Name")]
    pub name: String,
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The name the stack's spec gives it, when the store name differs: a secret's or config's
    /// later revision is stored as `<name>.v<n>` (names are unique and revisions immutable).
    #[serde(rename = "SpecName", default, skip_serializing_if = "String::is_empty")]
    pub spec_name: String,
}

impl InventoryItem {
    /// The name the stack's spec gives the object.
    pub fn spec_name(&self) -> &str {
        if self.spec_name.is_empty() {
            &self.name
        } else {
            &self.spec_name
        }
    }
}

/// What the stack controller observed: the revision it has seen and the stack's conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackStatus {
    /// The stack revision the conditions describe.
    #[serde(rename = "ObservedRevision", default)]
    pub observed_revision: u64,
    /// Ready / Progressing / Degraded.
    #[serde(rename = "Conditions", default)]
    pub conditions: Vec<Condition>,
    /// Each service's health, by service name.
    #[serde(rename = "Services", default)]
    pub services: std::collections::BTreeMap<String, ServiceHealth>,
}

/// One applied revision of a stack, immutable once written. Named `<stack>@<number>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackRevision {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// `<stack>@<number>` (unique, so a revision number is taken once).
    #[serde(rename = "Name")]
    pub name: String,
    /// The stack's id.
    #[serde(rename = "StackID")]
    pub stack_id: String,
    /// The stack's name.
    #[serde(rename = "Stack")]
    pub stack: String,
    /// 1, 2, ...
    #[serde(rename = "Number")]
    pub number: u64,
    /// SHA-256 of the sources applied (files, in order, and the variables they used), hex.
    #[serde(rename = "SourceDigest", default)]
    pub source_digest: String,
    /// Who applied it (the client's user and host, as the client says).
    #[serde(rename = "AppliedBy", default)]
    pub applied_by: String,
    /// When.
    #[serde(rename = "AppliedAt")]
    pub applied_at: Timestamp,
    /// How it came about (`apply`, `rollback to 3`, `gitops NAME`).
    #[serde(rename = "Cause", default)]
    pub cause: String,
    /// The GitOps source that applied it, if one did.
    #[serde(
        rename = "GitSource",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub git_source: String,
    /// The git commit it was applied from, if a GitOps source applied it.
    #[serde(
        rename = "GitCommit",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub git_commit: String,
    /// The objects as applied, before names were resolved to ids (so a rollback resolves
    /// them again against the store of its day).
    #[serde(rename = "Objects", default)]
    pub objects: StackObjects,
    /// How the rollout of this revision ended, once it has.
    #[serde(rename = "Result", default)]
    pub result: RevisionResult,
}

impl StackRevision {
    /// The revision as shown outside the store: its secrets without their data.
    pub fn without_secret_data(&self) -> StackRevision {
        let mut r = self.clone();
        for s in &mut r.objects.secrets {
            s.data.clear();
        }
        r
    }

    /// The store name of revision `number` of stack `stack`.
    pub fn name_of(stack: &str, number: u64) -> String {
        format!("{stack}@{number}")
    }
}

/// A stack's objects in canonical form: names, not ids, for what they refer to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackObjects {
    /// Services, by name.
    #[serde(rename = "Services", default)]
    pub services: Vec<ServiceSpec>,
    /// Networks the stack creates.
    #[serde(rename = "Networks", default)]
    pub networks: Vec<NetworkSpec>,
    /// Secrets the stack creates (their data included).
    #[serde(rename = "Secrets", default)]
    pub secrets: Vec<SecretSpec>,
    /// Configs the stack creates.
    #[serde(rename = "Configs", default)]
    pub configs: Vec<ConfigSpec>,
    /// Networks the services use that the stack does not own (they must exist).
    #[serde(
        rename = "ExternalNetworks",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_networks: Vec<String>,
    /// Secrets the services use that the stack does not own.
    #[serde(
        rename = "ExternalSecrets",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_secrets: Vec<String>,
    /// Configs the services use that the stack does not own.
    #[serde(
        rename = "ExternalConfigs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_configs: Vec<String>,
}

/// How a revision's rollout ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionResult {
    /// `Applied` (committed, rollout not judged yet), `Succeeded`, `Failed`, `RolledBack`.
    #[serde(rename = "State", default)]
    pub state: String,
    /// Details (which service failed and why).
    #[serde(rename = "Message", default)]
    pub message: String,
}
