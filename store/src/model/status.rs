//! Service health on the server: `observed_generation` and Kubernetes-style conditions
//! (Ready / Progressing / Degraded) for every service, written by the health controller.
//!
//! The health lives in its own object, [`Health`], not in the service: writing it to the
//! service would change the service's version with every task change, and the
//! `docker service update` of a user who read the version a moment before would fail with
//! "update out of sequence".

use serde::{Deserialize, Serialize};

use super::meta::{Meta, Timestamp};

/// The health of one service. Its id is the service's id; it is removed with the service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Store bookkeeping (the id is the service's id).
    #[serde(flatten)]
    pub meta: Meta,
    /// The service's name.
    #[serde(rename = "ServiceName")]
    pub service_name: String,
    /// The stack the service belongs to (its `com.docker.stack.namespace` label), if any.
    #[serde(rename = "Stack", default, skip_serializing_if = "String::is_empty")]
    pub stack: String,
    /// The health itself.
    #[serde(flatten)]
    pub health: ServiceHealth,
}

/// A service's health: how many of its tasks run the current spec, and its conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceHealth {
    /// The service version (store revision of its last change) the conditions describe.
    #[serde(rename = "ObservedGeneration", default)]
    pub observed_generation: u64,
    /// Tasks wanted (replicas; for global services, the nodes with a task to run).
    #[serde(rename = "Desired", default)]
    pub desired: u64,
    /// Tasks running the current spec.
    #[serde(rename = "Running", default)]
    pub running: u64,
    /// Ready / Progressing / Degraded.
    #[serde(rename = "Conditions", default)]
    pub conditions: Vec<Condition>,
}

/// A condition in the Kubernetes sense: a named boolean with a reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Whether it holds.
    #[serde(rename = "Status")]
    pub status: bool,
    /// A CamelCase word saying why (`TasksRunning`, `UpdateInProgress`, `TaskFailed`, ...).
    #[serde(rename = "Reason", default)]
    pub reason: String,
    /// A sentence for people.
    #[serde(rename = "Message", default)]
    pub message: String,
    /// When `status` last changed.
    #[serde(rename = "LastTransitionTime")]
    pub last_transition: Timestamp,
}
