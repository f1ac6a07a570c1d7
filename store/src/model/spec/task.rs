//! Task spec (a service's `TaskTemplate`) and task status (docker-api.md §3.4, §3.6).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wire::{is_zero, null_default, open_enum, opt_enum};
use super::{
    nanos_to_duration, ContainerSpec, Driver, Nanos, NetworkAttachmentConfig, Platform, PortConfig,
    NANOS_PER_SECOND,
};
use crate::model::enums::TaskState;
use crate::model::meta::Timestamp;

/// What a task runs and under which constraints (`TaskTemplate` of a service; each task keeps a
/// copy in its `Spec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The container to run (runtime `container`, the only one shoal executes).
    #[serde(
        rename = "ContainerSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub container_spec: Option<ContainerSpec>,
    /// A plugin to install (runtime `plugin`).
    #[serde(
        rename = "PluginSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub plugin_spec: Option<PluginSpec>,
    /// A network attachment placeholder (runtime `attachment`, created by the engine only).
    #[serde(rename = "NetworkAttachmentSpec", default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_attachment_spec: Option<NetworkAttachmentSpec>,
    /// Resource limits and reservations.
    #[serde(rename = "Resources", default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// When to restart tasks.
    #[serde(
        rename = "RestartPolicy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_policy: Option<RestartPolicy>,
    /// Where tasks may run.
    #[serde(rename = "Placement", default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Networks to attach (targets are stored as network ids).
    #[serde(rename = "Networks", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// Log driver (else the swarm's `TaskDefaults.LogDriver`, else the engine's).
    #[serde(rename = "LogDriver", default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
    /// Counter bumped by `--force` to replace tasks without another change (always emitted).
    #[serde(rename = "ForceUpdate", default, deserialize_with = "null_default")]
    pub force_update: u64,
    /// Runtime. Open enum (exact case): the API layer rejects unknown ones
    /// (`mismatched Runtime and *Spec fields` / unsupported runtime).
    #[serde(rename = "Runtime", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "opt_enum")]
    pub runtime: Option<RuntimeType>,
}

open_enum! {
    /// The kind of work a task does.
    pub enum RuntimeType (ignore_case: false) {
        /// A container (`ContainerSpec`).
        Container => "container",
        /// A managed plugin (`PluginSpec`).
        Plugin => "plugin",
        /// A network attachment (`NetworkAttachmentSpec`).
        Attachment => "attachment",
    }
}

impl TaskSpec {
    /// The container spec, if any.
    pub fn container(&self) -> Option<&ContainerSpec> {
        self.container_spec.as_ref()
    }

    /// The container spec, mutably, if any.
    pub fn container_mut(&mut self) -> Option<&mut ContainerSpec> {
        self.container_spec.as_mut()
    }

    /// The runtime (unset: `container`).
    pub fn runtime_or_default(&self) -> RuntimeType {
        self.runtime.clone().unwrap_or(RuntimeType::Container)
    }

    /// Placement constraints (`node.role==manager`, ...); empty when there is no placement.
    pub fn constraints(&self) -> &[String] {
        self.placement.as_ref().map_or(&[], |p| p.constraints())
    }

    /// The restart policy, or Docker's default one.
    pub fn restart_policy_or_default(&self) -> RestartPolicy {
        self.restart_policy
            .clone()
            .unwrap_or_else(RestartPolicy::swarm_default)
    }

    /// Reserved resources, if any.
    pub fn reservations(&self) -> Option<&Resources> {
        self.resources
            .as_ref()
            .and_then(|r| r.reservations.as_ref())
    }

    /// Resource limits, if any.
    pub fn limits(&self) -> Option<&Limit> {
        self.resources.as_ref().and_then(|r| r.limits.as_ref())
    }
}

/// A plugin to install (runtime `plugin`). The engine's JSON names are lowercase here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginSpec {
    /// Local name.
    #[serde(rename = "name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Remote reference.
    #[serde(rename = "remote", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub remote: String,
    /// Privileges granted.
    #[serde(rename = "privileges", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub privileges: Vec<PluginPrivilege>,
    /// Installed but disabled.
    #[serde(rename = "disabled", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub disabled: bool,
    /// Plugin environment.
    #[serde(rename = "env", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub env: Vec<String>,
}

/// A privilege a plugin asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginPrivilege {
    /// Privilege name.
    #[serde(rename = "name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// What it allows.
    #[serde(
        rename = "description",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub description: String,
    /// Values.
    #[serde(rename = "value", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub value: Vec<String>,
}

/// The container a network-attachment task stands for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachmentSpec {
    /// The container's id (always emitted).
    #[serde(rename = "ContainerID", default, deserialize_with = "null_default")]
    pub container_id: String,
}

/// Limits and reservations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceRequirements {
    /// Hard limits.
    #[serde(rename = "Limits", default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    /// What the scheduler sets aside on the node.
    #[serde(
        rename = "Reservations",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reservations: Option<Resources>,
}

/// Resource limits of a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// CPU in units of 1e-9 CPUs.
    #[serde(rename = "NanoCPUs", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub nano_cpus: i64,
    /// Memory in bytes.
    #[serde(rename = "MemoryBytes", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub memory_bytes: i64,
    /// Maximum number of processes (0: unlimited).
    #[serde(rename = "Pids", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub pids: i64,
}

/// An amount of resources: a task's reservation or a node's capacity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in units of 1e-9 CPUs.
    #[serde(rename = "NanoCPUs", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub nano_cpus: i64,
    /// Memory in bytes.
    #[serde(rename = "MemoryBytes", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub memory_bytes: i64,
    /// User-defined resources (GPUs, ...).
    #[serde(
        rename = "GenericResources",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub generic_resources: Vec<GenericResource>,
}

/// A user-defined resource: either named units (`GPU=UUID-1`) or a count (`SSD=5`); exactly one
/// of the two is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenericResource {
    /// A named unit.
    #[serde(
        rename = "NamedResourceSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub named_resource_spec: Option<NamedGenericResource>,
    /// A count.
    #[serde(
        rename = "DiscreteResourceSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub discrete_resource_spec: Option<DiscreteGenericResource>,
}

/// A named unit of a user-defined resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedGenericResource {
    /// Resource kind (`GPU`).
    #[serde(rename = "Kind", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub kind: String,
    /// Unit name (`UUID-1`).
    #[serde(rename = "Value", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub value: String,
}

/// A count of a user-defined resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscreteGenericResource {
    /// Resource kind (`SSD`).
    #[serde(rename = "Kind", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub kind: String,
    /// How many.
    #[serde(rename = "Value", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub value: i64,
}

impl GenericResource {
    /// A named unit.
    pub fn named(kind: impl Into<String>, value: impl Into<String>) -> Self {
        GenericResource {
            named_resource_spec: Some(NamedGenericResource {
                kind: kind.into(),
                value: value.into(),
            }),
            discrete_resource_spec: None,
        }
    }

    /// A count.
    pub fn discrete(kind: impl Into<String>, value: i64) -> Self {
        GenericResource {
            named_resource_spec: None,
            discrete_resource_spec: Some(DiscreteGenericResource {
                kind: kind.into(),
                value,
            }),
        }
    }

    /// The resource kind, whichever form it has.
    pub fn kind(&self) -> &str {
        match (&self.named_resource_spec, &self.discrete_resource_spec) {
            (Some(n), _) => &n.kind,
            (None, Some(d)) => &d.kind,
            (None, None) => "",
        }
    }
}

/// When and how tasks are restarted. All fields but `Condition` are Go pointers: `0` is kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// When to restart. Open enum (exact case, as the daemon compares): an unknown value is kept
    /// for the API layer to answer `invalid RestartCondition: "x"`.
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "opt_enum")]
    pub condition: Option<RestartCondition>,
    /// Delay between restarts.
    #[serde(rename = "Delay", default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Nanos>,
    /// Restarts before giving up (0: unlimited).
    #[serde(
        rename = "MaxAttempts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_attempts: Option<u64>,
    /// Window over which attempts are counted (0: unbounded).
    #[serde(rename = "Window", default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Nanos>,
}

open_enum! {
    /// When a task is restarted.
    pub enum RestartCondition (ignore_case: false) {
        /// Never.
        None => "none",
        /// When it exits non-zero.
        OnFailure => "on-failure",
        /// Whenever it stops.
        Any => "any",
    }
}

impl RestartPolicy {
    /// Default restart delay (5 s).
    pub const DEFAULT_DELAY: Nanos = 5 * NANOS_PER_SECOND;

    /// Docker's default policy, as `insertDefaults=true` shows it:
    /// `{"Condition":"any","Delay":5000000000,"MaxAttempts":0}` (no window).
    pub fn swarm_default() -> Self {
        RestartPolicy {
            condition: Some(RestartCondition::Any),
            delay: Some(Self::DEFAULT_DELAY),
            max_attempts: Some(0),
            window: None,
        }
    }

    /// Restart condition (unset: any).
    pub fn condition_or_default(&self) -> RestartCondition {
        self.condition.clone().unwrap_or(RestartCondition::Any)
    }

    /// Delay between restarts (unset: 5 s).
    pub fn delay_or_default(&self) -> Duration {
        nanos_to_duration(self.delay.unwrap_or(Self::DEFAULT_DELAY))
    }

    /// Attempts before giving up (unset or 0: unlimited, returned as 0).
    pub fn max_attempts_or_default(&self) -> u64 {
        self.max_attempts.unwrap_or(0)
    }

    /// Window over which attempts count (unset or 0: unbounded, returned as zero).
    pub fn window_or_default(&self) -> Duration {
        nanos_to_duration(self.window.unwrap_or(0))
    }
}

/// Where tasks may run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Constraints (`node.role==manager`, `node.labels.zone!=a`), all of which must hold. Kept
    /// as strings: the API layer validates the syntax with Docker's messages.
    #[serde(rename = "Constraints", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub constraints: Vec<String>,
    /// Spread preferences, applied in order.
    #[serde(rename = "Preferences", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub preferences: Vec<PlacementPreference>,
    /// Most replicas of the service per node (0: no limit).
    #[serde(rename = "MaxReplicas", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub max_replicas: u64,
    /// Platforms the image runs on (empty: any).
    #[serde(rename = "Platforms", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub platforms: Vec<Platform>,
}

impl Placement {
    /// The constraints.
    pub fn constraints(&self) -> &[String] {
        &self.constraints
    }

    /// The spread descriptors of the preferences, in order (`node.labels.zone`).
    pub fn spread_descriptors(&self) -> impl Iterator<Item = &str> {
        self.preferences
            .iter()
            .filter_map(|p| p.spread.as_ref().map(|s| s.spread_descriptor.as_str()))
    }
}

/// A scheduling preference. `Spread` has no `omitempty`: `null` when unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlacementPreference {
    /// Spread tasks evenly over the values of a node attribute.
    #[serde(rename = "Spread", default)]
    pub spread: Option<SpreadOver>,
}

impl PlacementPreference {
    /// A spread preference over `descriptor` (`node.labels.zone`).
    pub fn spread(descriptor: impl Into<String>) -> Self {
        PlacementPreference {
            spread: Some(SpreadOver {
                spread_descriptor: descriptor.into(),
            }),
        }
    }
}

/// What to spread over.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpreadOver {
    /// A node attribute (`node.labels.zone`, `engine.labels.az`); always emitted.
    #[serde(
        rename = "SpreadDescriptor",
        default,
        deserialize_with = "null_default"
    )]
    pub spread_descriptor: String,
}

/// A task's observed state, written by agents (and a few manager components).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// When the state was reached. Go's `time.Time` is a struct, so `omitempty` never drops it:
    /// always emitted (`0001-01-01T00:00:00Z` when unset).
    #[serde(rename = "Timestamp", default, deserialize_with = "null_default")]
    pub timestamp: Timestamp,
    /// Observed state (always emitted: no state is the empty string).
    #[serde(rename = "State", default, deserialize_with = "null_default")]
    pub state: TaskState,
    /// Short description (`started`, `pending task scheduling`).
    #[serde(rename = "Message", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub message: String,
    /// Error, shown by `docker service ps` (`no suitable node (...)`).
    #[serde(rename = "Err", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub err: String,
    /// The container, once one exists.
    #[serde(
        rename = "ContainerStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub container_status: Option<ContainerStatus>,
    /// Host-mode published ports (always emitted, `{}` when none).
    #[serde(rename = "PortStatus", default, deserialize_with = "null_default")]
    pub port_status: PortStatus,
}

impl TaskStatus {
    /// A status in `state` at `timestamp` with a message.
    pub fn new(state: TaskState, timestamp: Timestamp, message: impl Into<String>) -> Self {
        TaskStatus {
            timestamp,
            state,
            message: message.into(),
            ..Default::default()
        }
    }
}

/// The container behind a task. No `omitempty`: all fields always emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Container id.
    #[serde(rename = "ContainerID", default, deserialize_with = "null_default")]
    pub container_id: String,
    /// Main process id.
    #[serde(rename = "PID", default, deserialize_with = "null_default")]
    pub pid: i64,
    /// Exit code, once exited.
    #[serde(rename = "ExitCode", default, deserialize_with = "null_default")]
    pub exit_code: i64,
}

/// Host-mode ports a task published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    /// The ports (what `docker service ps` shows in PORTS).
    #[serde(rename = "Ports", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<PortConfig>,
}

/// A cluster volume attached to a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// Volume id.
    #[serde(rename = "ID", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    /// Mount source.
    #[serde(rename = "Source", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub source: String,
    /// Mount target.
    #[serde(rename = "Target", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub target: String,
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{round_trip, round_trip_exact};
    use super::*;
    use crate::model::Task;

    #[test]
    fn running_task_status_round_trips_exactly() {
        // docker-api.md §3.6, observed running task (container id completed).
        let st: TaskStatus = round_trip_exact(
            r#"{"Timestamp":"2026-11-25T05:33:54.648088463Z","State":"running","Message":"started","ContainerStatus":{"ContainerID":"23bb5c4b1d0f","PID":18847,"ExitCode":0},"PortStatus":{}}"#,
        );
        assert_eq!(st.state, TaskState::Running);
        assert_eq!(st.container_status.as_ref().unwrap().pid, 18847);
        assert_eq!(st.timestamp.to_string(), "2026-11-25T05:33:54.648088463Z");
    }

    #[test]
    fn unschedulable_task_status_round_trips() {
        // docker-api.md §3.6 quotes it without its Timestamp (elided); Go always emits one.
        let st: TaskStatus = round_trip_exact(
            r#"{"Timestamp":"2026-11-25T05:33:55Z","State":"pending","Message":"pending task scheduling","Err":"no suitable node (scheduling constraints not satisfied on 1 node)","PortStatus":{}}"#,
        );
        assert_eq!(st.state, TaskState::Pending);
        assert!(st.container_status.is_none());
        let bare: TaskStatus = serde_json::from_str(
            r#"{"State":"pending","Message":"pending task scheduling","Err":"no suitable node (scheduling constraints not satisfied on 1 node)","PortStatus":{}}"#,
        )
        .unwrap();
        assert!(bare.timestamp.is_zero());
        assert!(serde_json::to_string(&bare)
            .unwrap()
            .starts_with(r#"{"Timestamp":"0001-01-01T00:00:00Z","State":"pending","#));
    }

    #[test]
    fn whole_docker_task_round_trips_through_the_store_object() {
        let json = r#"{"ID":"c5smfacqbvlyx1oq0rl0m2x5b","Version":{"Index":35},"CreatedAt":"2026-11-25T05:33:54.1Z","UpdatedAt":"2026-11-25T05:33:56.2Z","Labels":{},"Spec":{"ContainerSpec":{"Image":"local/busybox:1","Args":["sleep","100000"],"Init":false,"DNSConfig":{},"Isolation":"default"},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0,"Runtime":"container"},"ServiceID":"o3pdj9vpftl5x9jdzdtmcukqf","Slot":2,"NodeID":"wv3w0r2xr0bqmvrxqyexvbhhe","Status":{"Timestamp":"2026-11-25T05:33:56.1Z","State":"running","Message":"started","ContainerStatus":{"ContainerID":"23bb","PID":18847,"ExitCode":0},"PortStatus":{}},"DesiredState":"running","JobIteration":{"Index":7},"Volumes":null}"#;
        let task: Task = serde_json::from_str(json).unwrap();
        assert_eq!(task.slot, 2);
        assert_eq!(task.spec.container().unwrap().image, "local/busybox:1");
        assert_eq!(task.spec.runtime_or_default(), RuntimeType::Container);
        let mut out = serde_json::to_value(&task).unwrap();
        // Internal bookkeeping the API layer strips.
        assert!(out.as_object_mut().unwrap().remove("SpecVersion").is_some());
        let want: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn restart_policy_pointers_keep_zero_and_defaults_apply() {
        let p: RestartPolicy = round_trip_exact(
            r#"{"Condition":"on-failure","Delay":3000000000,"MaxAttempts":4,"Window":10000000000}"#,
        );
        assert_eq!(p.condition, Some(RestartCondition::OnFailure));
        assert_eq!(p.delay_or_default(), Duration::from_secs(3));
        let zero: RestartPolicy =
            round_trip_exact(r#"{"Condition":"any","Delay":0,"MaxAttempts":0,"Window":0}"#);
        assert_eq!(zero.window, Some(0));
        assert_eq!(zero.delay_or_default(), Duration::ZERO);
        assert_eq!(
            serde_json::to_string(&RestartPolicy::swarm_default()).unwrap(),
            r#"{"Condition":"any","Delay":5000000000,"MaxAttempts":0}"#
        );
        let empty = RestartPolicy::default();
        assert_eq!(empty.condition_or_default(), RestartCondition::Any);
        assert_eq!(empty.delay_or_default(), Duration::from_secs(5));
        assert_eq!(empty.max_attempts_or_default(), 0);
        let odd: RestartPolicy = serde_json::from_str(r#"{"Condition":"ANY"}"#).unwrap();
        assert_eq!(odd.condition, Some(RestartCondition::Other("ANY".into())));
        assert_eq!(
            serde_json::to_string(&odd).unwrap(),
            r#"{"Condition":"ANY"}"#
        );
    }

    #[test]
    fn rich_resources_and_placement_round_trip_exactly() {
        let r: ResourceRequirements = round_trip_exact(
            r#"{"Limits":{"NanoCPUs":500000000,"MemoryBytes":67108864,"Pids":100},"Reservations":{"NanoCPUs":100000000,"MemoryBytes":33554432}}"#,
        );
        assert_eq!(r.limits.unwrap().pids, 100);
        assert_eq!(r.reservations.unwrap().memory_bytes, 33_554_432);
        let p: Placement = round_trip_exact(
            r#"{"Constraints":["node.role==manager","node.labels.zone==a"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":1}"#,
        );
        assert_eq!(
            p.constraints(),
            ["node.role==manager", "node.labels.zone==a"]
        );
        assert_eq!(
            p.spread_descriptors().collect::<Vec<_>>(),
            ["node.labels.zone"]
        );
        assert_eq!(p.max_replicas, 1);
        let p: Placement =
            round_trip_exact(r#"{"Platforms":[{"Architecture":"amd64","OS":"linux"}]}"#);
        assert_eq!(p.platforms[0].architecture, "amd64");
        assert_eq!(
            serde_json::to_string(&PlacementPreference::default()).unwrap(),
            r#"{"Spread":null}"#
        );
    }

    #[test]
    fn generic_resources_round_trip() {
        let r: Resources = round_trip_exact(
            r#"{"GenericResources":[{"NamedResourceSpec":{"Kind":"GPU","Value":"UUID-1"}},{"DiscreteResourceSpec":{"Kind":"SSD","Value":5}}]}"#,
        );
        assert_eq!(
            r.generic_resources[0],
            GenericResource::named("GPU", "UUID-1")
        );
        assert_eq!(r.generic_resources[1], GenericResource::discrete("SSD", 5));
        assert_eq!(r.generic_resources[1].kind(), "SSD");
    }

    #[test]
    fn task_spec_accessors_and_nulls() {
        let spec: TaskSpec = round_trip(
            r#"{"ContainerSpec":{"Image":"alpine:3.10","Command":["echo","hello"]},"Placement":{"Constraints":["node.role==worker"]},"ForceUpdate":3}"#,
        );
        assert_eq!(spec.constraints(), ["node.role==worker"]);
        assert_eq!(spec.force_update, 3);
        assert_eq!(
            spec.restart_policy_or_default(),
            RestartPolicy::swarm_default()
        );
        let nulls: TaskSpec = serde_json::from_str(
            r#"{"ContainerSpec":null,"Resources":null,"RestartPolicy":null,"Placement":null,"Networks":null,"LogDriver":null,"ForceUpdate":null,"Runtime":null}"#,
        )
        .unwrap();
        assert_eq!(nulls, TaskSpec::default());
        assert_eq!(
            serde_json::to_string(&nulls).unwrap(),
            r#"{"ForceUpdate":0}"#
        );
        assert!(nulls.constraints().is_empty());
        let plugin: TaskSpec = round_trip_exact(
            r#"{"PluginSpec":{"name":"p","remote":"vieux/sshfs","privileges":[{"name":"network","value":["host"]}],"disabled":true},"ForceUpdate":0,"Runtime":"plugin"}"#,
        );
        assert_eq!(plugin.runtime, Some(RuntimeType::Plugin));
    }
}
