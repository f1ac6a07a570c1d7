//! Node spec, description and status (docker-api.md §3.3).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::wire::{is_zero, null_default, open_enum, opt_enum};
use super::{Labels, Platform, Resources, TLSInfo};
use crate::model::enums::NodeRole;

/// What the user wants of a node (body of `POST /nodes/{id}/update`, which replaces it whole).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Optional node name and the node labels (`node.labels.*` in constraints).
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Labels; always emitted (`{}` when empty), as the daemon does.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// Desired role; the role manager moves the node's actual role towards it. Accepted in any
    /// case like the daemon (`"MANAGER"`); `""`/absent is `None` (the API layer answers
    /// `invalid Role: ""`); any other value fails with Docker's text `invalid Role: "boss"`.
    #[serde(rename = "Role", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "desired_role")]
    pub role: Option<NodeRole>,
    /// Desired availability. Open enum matched case-insensitively: an unknown value is kept so the
    /// API layer can answer `invalid Availability: "x"`; `None` (absent or `""`) is invalid too.
    #[serde(
        rename = "Availability",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[serde(deserialize_with = "opt_enum")]
    pub availability: Option<NodeAvailability>,
}

/// Parses a desired role the way the daemon does (case-insensitively), with its error text.
pub fn parse_node_role(s: &str) -> Result<NodeRole, String> {
    [NodeRole::Worker, NodeRole::Manager]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("invalid Role: {s:?}"))
}

fn desired_role<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NodeRole>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => parse_node_role(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

open_enum! {
    /// Whether the scheduler may use a node.
    pub enum NodeAvailability (ignore_case: true) {
        /// Schedulable.
        Active => "active",
        /// No new tasks; existing ones keep running.
        Pause => "pause",
        /// No tasks; existing ones are moved elsewhere.
        Drain => "drain",
    }
}

impl NodeSpec {
    /// A spec with the given role and availability and no labels.
    pub fn new(role: NodeRole, availability: NodeAvailability) -> Self {
        NodeSpec {
            name: String::new(),
            labels: Labels::new(),
            role: Some(role),
            availability: Some(availability),
        }
    }

    /// The node labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Desired role (unset: worker).
    pub fn role_or_default(&self) -> NodeRole {
        self.role.unwrap_or_default()
    }

    /// Desired availability (unset: active).
    pub fn availability_or_default(&self) -> NodeAvailability {
        self.availability
            .clone()
            .unwrap_or(NodeAvailability::Active)
    }
}

/// What a node's agent reports about itself. Sub-structs are Go values: always emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeDescription {
    /// Host name (what `docker node ls` shows; also a lookup key for `/nodes/{id}`).
    #[serde(rename = "Hostname", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub hostname: String,
    /// OS and architecture.
    #[serde(rename = "Platform", default, deserialize_with = "null_default")]
    pub platform: Platform,
    /// Total CPU, memory and generic resources.
    #[serde(rename = "Resources", default, deserialize_with = "null_default")]
    pub resources: Resources,
    /// The container engine.
    #[serde(rename = "Engine", default, deserialize_with = "null_default")]
    pub engine: EngineDescription,
    /// The node's view of the swarm's trust root.
    #[serde(rename = "TLSInfo", default, deserialize_with = "null_default")]
    pub tls_info: TLSInfo,
    /// CSI plugins on the node.
    #[serde(rename = "CSIInfo", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub csi_info: Vec<NodeCSIInfo>,
}

/// The container engine on a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineDescription {
    /// Engine version (`20.10.24+dfsg1`).
    #[serde(
        rename = "EngineVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub engine_version: String,
    /// Engine labels (the `label` filter of `GET /nodes`, `engine.labels.*` in constraints).
    #[serde(rename = "Labels", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Installed plugins.
    #[serde(rename = "Plugins", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub plugins: Vec<PluginDescription>,
}

/// An engine plugin (`{"Type":"Log","Name":"awslogs"}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginDescription {
    /// Plugin kind (`Volume`, `Network`, `Log`, ...).
    #[serde(rename = "Type", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub kind: String,
    /// Plugin name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
}

/// A CSI plugin on a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeCSIInfo {
    /// Plugin name.
    #[serde(
        rename = "PluginName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub plugin_name: String,
    /// The node's id in the plugin.
    #[serde(rename = "NodeID", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub node_id: String,
    /// Volume limit (0: none).
    #[serde(rename = "MaxVolumesPerNode", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub max_volumes_per_node: i64,
    /// Where volumes are accessible from.
    #[serde(
        rename = "AccessibleTopology",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accessible_topology: Option<Topology>,
}

/// CSI topology segments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Segment key/values.
    #[serde(rename = "Segments", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub segments: Labels,
}

/// A node's liveness, written by the dispatcher.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Liveness. System-written, so a closed enum; always emitted (the daemon never leaves it
    /// empty).
    #[serde(rename = "State", default, deserialize_with = "null_default")]
    pub state: NodeState,
    /// Why the node is in this state.
    #[serde(rename = "Message", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub message: String,
    /// The node's address as the managers see it (no port).
    #[serde(rename = "Addr", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub addr: String,
}

/// A node's liveness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Not heard from yet.
    #[default]
    Unknown,
    /// Missed its heartbeats.
    Down,
    /// Connected and healthy.
    Ready,
    /// Closed its session.
    Disconnected,
}

impl NodeState {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Down => "down",
            NodeState::Ready => "ready",
            NodeState::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manager's Raft membership, present on managers only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagerStatus {
    /// Whether it is the Raft leader (`omitempty`: absent on followers).
    #[serde(rename = "Leader", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub leader: bool,
    /// Whether the other managers can reach it; always emitted.
    #[serde(rename = "Reachability", default, deserialize_with = "null_default")]
    pub reachability: Reachability,
    /// Its Raft address, `host:port` (`docker swarm init` prints it in the join command).
    #[serde(rename = "Addr", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub addr: String,
}

/// Whether a manager is reachable by the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Not known yet.
    #[default]
    Unknown,
    /// Not reachable.
    Unreachable,
    /// Reachable.
    Reachable,
}

impl Reachability {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Unreachable => "unreachable",
            Reachability::Reachable => "reachable",
        }
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::round_trip_exact;
    use super::*;

    #[test]
    fn docker_py_node_spec_round_trips_exactly() {
        let spec: NodeSpec =
            round_trip_exact(r#"{"Labels":{},"Role":"manager","Availability":"active"}"#);
        assert_eq!(
            spec,
            NodeSpec::new(NodeRole::Manager, NodeAvailability::Active)
        );
        let spec: NodeSpec = round_trip_exact(
            r#"{"Labels":{"new.label":"new value"},"Role":"worker","Availability":"drain"}"#,
        );
        assert_eq!(spec.labels()["new.label"], "new value");
        assert_eq!(spec.availability_or_default(), NodeAvailability::Drain);
    }

    #[test]
    fn role_and_availability_are_case_insensitive_and_canonicalised() {
        let spec: NodeSpec =
            serde_json::from_str(r#"{"Role":"MANAGER","Availability":"Pause"}"#).unwrap();
        assert_eq!(spec.role, Some(NodeRole::Manager));
        assert_eq!(spec.availability, Some(NodeAvailability::Pause));
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"Labels":{},"Role":"manager","Availability":"pause"}"#
        );
    }

    #[test]
    fn bad_role_fails_with_dockers_text_and_bad_availability_is_kept() {
        let err =
            serde_json::from_value::<NodeSpec>(serde_json::json!({"Role":"boss"})).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid Role: "boss""#);
        let spec: NodeSpec =
            serde_json::from_str(r#"{"Labels":{"a":"b"},"Role":"","Availability":"x"}"#).unwrap();
        assert_eq!(spec.role, None);
        assert_eq!(spec.availability, Some(NodeAvailability::Other("x".into())));
        assert!(!spec.availability.unwrap().is_known());
        let spec: NodeSpec = serde_json::from_str(r#"{"Role":null,"Availability":null}"#).unwrap();
        assert_eq!(spec, NodeSpec::default());
        assert_eq!(spec.role_or_default(), NodeRole::Worker);
    }

    #[test]
    fn observed_node_parts_round_trip_exactly() {
        let status: NodeStatus = round_trip_exact(r#"{"State":"ready","Addr":"127.0.0.1"}"#);
        assert_eq!(status.state, NodeState::Ready);
        let ms: ManagerStatus = round_trip_exact(
            r#"{"Leader":true,"Reachability":"reachable","Addr":"127.0.0.1:2477"}"#,
        );
        assert!(ms.leader);
        assert_eq!(ms.reachability, Reachability::Reachable);
        let follower: ManagerStatus =
            round_trip_exact(r#"{"Reachability":"unreachable","Addr":"10.0.0.2:2377"}"#);
        assert!(!follower.leader);
        let desc: NodeDescription = round_trip_exact(
            r#"{"Hostname":"vm","Platform":{"Architecture":"x86_64","OS":"linux"},"Resources":{"NanoCPUs":2000000000,"MemoryBytes":25276510208},"Engine":{"EngineVersion":"20.10.24+dfsg1","Plugins":[{"Type":"Log","Name":"awslogs"},{"Type":"Volume","Name":"local"}]},"TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","CertIssuerSubject":"MBMxETAPBgNVBAMTCHN3YXJtLWNh","CertIssuerPublicKey":"AQID"}}"#,
        );
        assert_eq!(desc.hostname, "vm");
        assert_eq!(desc.resources.memory_bytes, 25_276_510_208);
        assert_eq!(desc.engine.plugins[1].kind, "Volume");
    }

    #[test]
    fn empty_description_and_status_emit_struct_values() {
        assert_eq!(
            serde_json::to_string(&NodeDescription::default()).unwrap(),
            r#"{"Platform":{},"Resources":{},"Engine":{},"TLSInfo":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&NodeStatus::default()).unwrap(),
            r#"{"State":"unknown"}"#
        );
        let s: NodeStatus = serde_json::from_str(r#"{"State":null,"Message":null}"#).unwrap();
        assert_eq!(s, NodeStatus::default());
    }

    #[test]
    fn whole_docker_node_round_trips_through_the_store_object() {
        let json = r#"{"ID":"o3pdj9vpftl5x9jdzdtmcukqf","Version":{"Index":9},"CreatedAt":"2026-11-25T05:33:50.1Z","UpdatedAt":"2026-11-25T05:33:51.2Z","Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"vm","Platform":{"Architecture":"x86_64","OS":"linux"},"Resources":{"NanoCPUs":2000000000,"MemoryBytes":25276510208},"Engine":{"EngineVersion":"20.10.24+dfsg1","Plugins":[{"Type":"Log","Name":"awslogs"}]},"TLSInfo":{"TrustRoot":"PEM","CertIssuerSubject":"MBMxETAPBgNVBAMTCHN3YXJtLWNh","CertIssuerPublicKey":"AQID"}},"Status":{"State":"ready","Addr":"127.0.0.1"},"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"127.0.0.1:2477"}}"#;
        let node: crate::model::Node = serde_json::from_str(json).unwrap();
        assert_eq!(node.spec.role, Some(NodeRole::Manager));
        assert!(node.manager_status.as_ref().unwrap().leader);
        let mut out = serde_json::to_value(&node).unwrap();
        // Internal: the role currently held, stripped by the API layer.
        assert!(out.as_object_mut().unwrap().remove("Role").is_some());
        assert_eq!(
            out,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}
