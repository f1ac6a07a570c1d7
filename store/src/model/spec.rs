//! Docker-shaped spec and status types (minimal first cut; completed per docker-api.md §3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Key/value labels.
pub type Labels = BTreeMap<String, String>;

/// Name and labels, inlined into specs on the wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotations {
    /// Name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Labels (always emitted).
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
}

/// Swarm settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmSpec {
    /// Name (`default`) and labels.
    #[serde(flatten)]
    pub annotations: Annotations,
}

/// Node spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Name and labels.
    #[serde(flatten)]
    pub annotations: Annotations,
}

/// Node description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeDescription {}

/// Node status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {}

/// Manager status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagerStatus {}

/// Service spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Name and labels.
    #[serde(flatten)]
    pub annotations: Annotations,
}

/// Service endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {}

/// Update status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStatus {}

/// Job status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {}

/// Task spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {}

/// Task status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {}

/// Network attachment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {}

/// Generic resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenericResource {}

/// Network spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Name.
    #[serde(rename = "Name", default)]
    pub name: String,
}

/// Secret spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Name and labels.
    #[serde(flatten)]
    pub annotations: Annotations,
}

/// Config spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSpec {
    /// Name and labels.
    #[serde(flatten)]
    pub annotations: Annotations,
}
