//! Service spec, mode, update config and the service-level statuses (docker-api.md §3.4, §3.5).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wire::{go_f32, is_zero, null_default, open_enum, opt_enum, opt_enum_or_empty};
use super::{
    nanos_to_duration, ContainerSpec, EndpointSpec, Labels, Nanos, NetworkAttachmentConfig,
    TaskSpec, NANOS_PER_SECOND,
};
use crate::model::meta::{Timestamp, Version};

/// What the user wants of a service (body of `POST /services/create` and `/update`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Service name and labels.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Labels; always emitted (`{}` when empty), as the daemon does.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// What each task runs (always emitted).
    #[serde(rename = "TaskTemplate", default, deserialize_with = "null_default")]
    pub task_template: TaskSpec,
    /// Replicated, global or a job (always emitted).
    #[serde(rename = "Mode", default, deserialize_with = "null_default")]
    pub mode: ServiceMode,
    /// Rolling update settings.
    #[serde(
        rename = "UpdateConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub update_config: Option<UpdateConfig>,
    /// Rollback settings.
    #[serde(
        rename = "RollbackConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rollback_config: Option<UpdateConfig>,
    /// Deprecated top-level networks (`TaskTemplate.Networks` replaces them).
    #[serde(rename = "Networks", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// How the service is reached (VIP or DNS round robin, published ports).
    #[serde(
        rename = "EndpointSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint_spec: Option<EndpointSpec>,
}

impl ServiceSpec {
    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Which mode the service is in (see [`ServiceMode::kind`]).
    pub fn mode_kind(&self) -> ServiceModeKind {
        self.mode.kind()
    }

    /// Desired replicas of a replicated service (1 when unset, as Docker defaults it); `None`
    /// for global services and jobs.
    pub fn replicas(&self) -> Option<u64> {
        self.mode.replicas()
    }

    /// One task per eligible node: `global` or `global-job`.
    pub fn is_global(&self) -> bool {
        matches!(
            self.mode.kind(),
            ServiceModeKind::Global | ServiceModeKind::GlobalJob
        )
    }

    /// Numbered slots: `replicated` or `replicated-job`.
    pub fn is_replicated(&self) -> bool {
        !self.is_global()
    }

    /// Runs to completion: `replicated-job` or `global-job`.
    pub fn is_job(&self) -> bool {
        matches!(
            self.mode.kind(),
            ServiceModeKind::ReplicatedJob | ServiceModeKind::GlobalJob
        )
    }

    /// The task template's container spec, if any.
    pub fn container(&self) -> Option<&ContainerSpec> {
        self.task_template.container()
    }

    /// The update config, or Docker's default one.
    pub fn update_config_or_default(&self) -> UpdateConfig {
        self.update_config
            .clone()
            .unwrap_or_else(UpdateConfig::swarm_default)
    }

    /// The rollback config, or Docker's default one (same values as for updates).
    pub fn rollback_config_or_default(&self) -> UpdateConfig {
        self.rollback_config
            .clone()
            .unwrap_or_else(UpdateConfig::swarm_default)
    }
}

/// The service mode: exactly one field should be set (the API layer answers
/// `must specify only one service mode` otherwise); none set means replicated with 1 replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMode {
    /// A fixed number of tasks.
    #[serde(
        rename = "Replicated",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub replicated: Option<ReplicatedService>,
    /// One task per eligible node.
    #[serde(rename = "Global", default, skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalService>,
    /// A fixed number of completions.
    #[serde(
        rename = "ReplicatedJob",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub replicated_job: Option<ReplicatedJob>,
    /// One completion per eligible node.
    #[serde(rename = "GlobalJob", default, skip_serializing_if = "Option::is_none")]
    pub global_job: Option<GlobalJob>,
}

/// Replicated mode settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedService {
    /// Desired tasks (Go pointer: `"Replicas":0` is kept; absent means 1).
    #[serde(rename = "Replicas", default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

/// Global mode (no settings; `{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalService {}

/// Replicated job settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedJob {
    /// Tasks running at once (absent: 1).
    #[serde(
        rename = "MaxConcurrent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_concurrent: Option<u64>,
    /// Successful completions wanted (absent: `MaxConcurrent`).
    #[serde(
        rename = "TotalCompletions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub total_completions: Option<u64>,
}

impl ReplicatedJob {
    /// Tasks running at once (unset: 1).
    pub fn max_concurrent_or_default(&self) -> u64 {
        self.max_concurrent.unwrap_or(1)
    }

    /// Completions wanted (unset: the concurrency).
    pub fn total_completions_or_default(&self) -> u64 {
        self.total_completions
            .unwrap_or_else(|| self.max_concurrent_or_default())
    }
}

/// Global job (no settings; `{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalJob {}

/// The four service modes, named as the `mode` filter of `GET /services` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceModeKind {
    /// `replicated`.
    Replicated,
    /// `global`.
    Global,
    /// `replicated-job`.
    ReplicatedJob,
    /// `global-job`.
    GlobalJob,
}

impl ServiceModeKind {
    /// The filter spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceModeKind::Replicated => "replicated",
            ServiceModeKind::Global => "global",
            ServiceModeKind::ReplicatedJob => "replicated-job",
            ServiceModeKind::GlobalJob => "global-job",
        }
    }
}

impl fmt::Display for ServiceModeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceModeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            ServiceModeKind::Replicated,
            ServiceModeKind::Global,
            ServiceModeKind::ReplicatedJob,
            ServiceModeKind::GlobalJob,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown service mode {s:?}"))
    }
}

impl ServiceMode {
    /// Replicated with `replicas` tasks.
    pub fn replicated(replicas: u64) -> Self {
        ServiceMode {
            replicated: Some(ReplicatedService {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }
    }

    /// Global.
    pub fn global() -> Self {
        ServiceMode {
            global: Some(GlobalService {}),
            ..Default::default()
        }
    }

    /// Replicated job.
    pub fn replicated_job(max_concurrent: u64, total_completions: u64) -> Self {
        ServiceMode {
            replicated_job: Some(ReplicatedJob {
                max_concurrent: Some(max_concurrent),
                total_completions: Some(total_completions),
            }),
            ..Default::default()
        }
    }

    /// Global job.
    pub fn global_job() -> Self {
        ServiceMode {
            global_job: Some(GlobalJob {}),
            ..Default::default()
        }
    }

    /// How many of the four modes are set (valid specs have at most one).
    pub fn set_count(&self) -> usize {
        usize::from(self.replicated.is_some())
            + usize::from(self.global.is_some())
            + usize::from(self.replicated_job.is_some())
            + usize::from(self.global_job.is_some())
    }

    /// The mode; none set is replicated (Docker's default). With several set (an invalid spec)
    /// the first in declaration order wins.
    pub fn kind(&self) -> ServiceModeKind {
        if self.replicated.is_some() {
            ServiceModeKind::Replicated
        } else if self.global.is_some() {
            ServiceModeKind::Global
        } else if self.replicated_job.is_some() {
            ServiceModeKind::ReplicatedJob
        } else if self.global_job.is_some() {
            ServiceModeKind::GlobalJob
        } else {
            ServiceModeKind::Replicated
        }
    }

    /// Desired replicas in replicated mode (1 when unset); `None` in other modes.
    pub fn replicas(&self) -> Option<u64> {
        match self.kind() {
            ServiceModeKind::Replicated => Some(
                self.replicated
                    .as_ref()
                    .and_then(|r| r.replicas)
                    .unwrap_or(1),
            ),
            _ => None,
        }
    }
}

/// How a rolling update (or rollback) proceeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks updated at once (0: all at once); always emitted.
    #[serde(rename = "Parallelism", default, deserialize_with = "null_default")]
    pub parallelism: u64,
    /// Pause between batches.
    #[serde(rename = "Delay", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub delay: Nanos,
    /// What to do when too many tasks fail. Open enum (exact case): the API layer answers
    /// `unrecognized update failure action x` for unknown values.
    #[serde(
        rename = "FailureAction",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[serde(deserialize_with = "opt_enum")]
    pub failure_action: Option<UpdateFailureAction>,
    /// How long to watch each updated task for failure (0: 5 s).
    #[serde(rename = "Monitor", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub monitor: Nanos,
    /// Fraction of failed tasks tolerated (Go `float32`, printed the same way); always emitted.
    #[serde(rename = "MaxFailureRatio", default, serialize_with = "go_f32")]
    #[serde(deserialize_with = "null_default")]
    pub max_failure_ratio: f32,
    /// Stop the old task first or start the new one first. Always emitted (`""` when unset).
    /// Open enum (exact case): the API layer answers `unrecognized update order x`.
    #[serde(rename = "Order", default, serialize_with = "opt_enum_or_empty")]
    #[serde(deserialize_with = "opt_enum")]
    pub order: Option<UpdateOrder>,
}

open_enum! {
    /// What the updater does when the failure ratio is exceeded.
    pub enum UpdateFailureAction (ignore_case: false) {
        /// Pause the update.
        Pause => "pause",
        /// Carry on.
        Continue => "continue",
        /// Roll back to the previous spec.
        Rollback => "rollback",
    }
}

open_enum! {
    /// Order of operations when replacing a task.
    pub enum UpdateOrder (ignore_case: false) {
        /// Stop the old task, then start the new one.
        StopFirst => "stop-first",
        /// Start the new task, then stop the old one.
        StartFirst => "start-first",
    }
}

impl UpdateConfig {
    /// Default monitor period (5 s).
    pub const DEFAULT_MONITOR: Nanos = 5 * NANOS_PER_SECOND;

    /// Docker's default update (and rollback) config, as `insertDefaults=true` shows it:
    /// `{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"}`.
    pub fn swarm_default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: 0,
            failure_action: Some(UpdateFailureAction::Pause),
            monitor: Self::DEFAULT_MONITOR,
            max_failure_ratio: 0.0,
            order: Some(UpdateOrder::StopFirst),
        }
    }

    /// Failure action (unset: pause).
    pub fn failure_action_or_default(&self) -> UpdateFailureAction {
        self.failure_action
            .clone()
            .unwrap_or(UpdateFailureAction::Pause)
    }

    /// Order (unset: stop-first).
    pub fn order_or_default(&self) -> UpdateOrder {
        self.order.clone().unwrap_or(UpdateOrder::StopFirst)
    }

    /// Monitor period (0: 5 s, as the daemon sends no monitor to the updater then).
    pub fn monitor_or_default(&self) -> Duration {
        let monitor = if self.monitor == 0 {
            Self::DEFAULT_MONITOR
        } else {
            self.monitor
        };
        nanos_to_duration(monitor)
    }

    /// Pause between batches.
    pub fn delay_duration(&self) -> Duration {
        nanos_to_duration(self.delay)
    }
}

/// Progress of the current rolling update or rollback.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Where the update is.
    #[serde(rename = "State", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<UpdateState>,
    /// When it started.
    #[serde(rename = "StartedAt", default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(
        rename = "CompletedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completed_at: Option<Timestamp>,
    /// Human-readable progress (`update in progress`, `manually requested rollback`, ...).
    #[serde(rename = "Message", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub message: String,
}

/// Where an update or rollback is. System-written, so a closed enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Update running.
    Updating,
    /// Update paused after failures.
    Paused,
    /// Update done.
    Completed,
    /// Rollback running.
    RollbackStarted,
    /// Rollback paused after failures.
    RollbackPaused,
    /// Rollback done.
    RollbackCompleted,
}

impl UpdateState {
    /// The wire name (`rollback_started`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }
}

impl fmt::Display for UpdateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Task counts of a service (`GET /services?status=true` only); all always emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Tasks running on nodes that are not down.
    #[serde(rename = "RunningTasks", default, deserialize_with = "null_default")]
    pub running_tasks: u64,
    /// Replicas, or eligible nodes with a non-shutdown task for global services.
    #[serde(rename = "DesiredTasks", default, deserialize_with = "null_default")]
    pub desired_tasks: u64,
    /// Completed tasks (jobs).
    #[serde(rename = "CompletedTasks", default, deserialize_with = "null_default")]
    pub completed_tasks: u64,
}

/// The current iteration of a job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Bumped on every (re)run; tasks of this run carry it as `JobIteration`.
    #[serde(rename = "JobIteration", default, deserialize_with = "null_default")]
    pub job_iteration: Version,
    /// When the current run started. Go's `time.Time` is a struct, so `omitempty` never drops
    /// it: always emitted (`0001-01-01T00:00:00Z` when unset).
    #[serde(rename = "LastExecution", default, deserialize_with = "null_default")]
    pub last_execution: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{round_trip, round_trip_exact};
    use super::super::{MountType, PortProtocol, PublishMode, ResolutionMode};
    use super::*;

    /// `docker service create --name web --replicas 3 IMAGE sleep 100000` (observed).
    const CLI_CREATE: &str = r#"{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"local/busybox:1","Args":["sleep","100000"],"Init":false,"DNSConfig":{}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":3}},"EndpointSpec":{"Mode":"vip"}}"#;

    #[test]
    fn observed_cli_create_body_round_trips_byte_for_byte() {
        let spec: ServiceSpec = round_trip_exact(CLI_CREATE);
        assert_eq!(spec.name(), "web");
        assert_eq!(spec.replicas(), Some(3));
        assert_eq!(spec.mode_kind(), ServiceModeKind::Replicated);
        let c = spec.container().unwrap();
        assert_eq!(c.image, "local/busybox:1");
        assert_eq!(c.args, ["sleep", "100000"]);
        assert_eq!(c.init, Some(false));
        assert_eq!(c.dns_config, Some(Default::default()));
        let r = spec.task_template.resources.as_ref().unwrap();
        assert_eq!((r.limits.is_some(), r.reservations.is_some()), (true, true));
        assert_eq!(spec.endpoint_spec.unwrap().mode, Some(ResolutionMode::Vip));
    }

    #[test]
    fn replicated_without_replicas_means_one_and_keeps_its_shape() {
        let spec: ServiceSpec = round_trip_exact(
            r#"{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"},"ForceUpdate":0},"Mode":{"Replicated":{}}}"#,
        );
        assert_eq!(
            spec.mode.replicated,
            Some(ReplicatedService { replicas: None })
        );
        assert_eq!(spec.replicas(), Some(1));
        let no_mode: ServiceSpec = serde_json::from_str(r#"{"Name":"x"}"#).unwrap();
        assert_eq!(no_mode.replicas(), Some(1));
        assert_eq!(no_mode.mode.set_count(), 0);
        assert_eq!(
            serde_json::to_string(&no_mode).unwrap(),
            r#"{"Name":"x","Labels":{},"TaskTemplate":{"ForceUpdate":0},"Mode":{}}"#
        );
    }

    #[test]
    fn zero_replicas_survive() {
        let spec: ServiceSpec = round_trip_exact(
            r#"{"Labels":{},"TaskTemplate":{"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":0}}}"#,
        );
        assert_eq!(spec.replicas(), Some(0));
        assert_eq!(spec.mode, ServiceMode::replicated(0));
        assert!(serde_json::to_string(&ServiceMode::replicated(0))
            .unwrap()
            .contains(r#""Replicas":0"#));
    }

    /// The rich example of docker-api.md §3.4, assembled in Go's field order.
    const RICH: &str = concat!(
        r#"{"Name":"rich","Labels":{"tier":"front"},"TaskTemplate":{"ContainerSpec":{"Image":"local/busybox:1","#,
        r#""Command":["/bin/sh"],"Args":["-c","sleep 1000"],"Hostname":"h1","Env":["A=1"],"Dir":"/tmp","User":"nobody","Groups":["100"],"Init":true,"StopSignal":"SIGINT","ReadOnly":true,"Mounts":[{"Type":"volume","Source":"data","Target":"/data"},{"Type":"tmpfs","Target":"/tmp","TmpfsOptions":{"SizeBytes":1000000}}],"StopGracePeriod":3000000000,"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":5000000000,"Retries":2},"Sysctls":{"net.core.somaxconn":"1024"},"CapabilityAdd":["CAP_NET_ADMIN"],"Ulimits":[{"Name":"nofile","Hard":2048,"Soft":1024}]},"#,
        r#""Resources":{"Limits":{"NanoCPUs":500000000,"MemoryBytes":67108864,"Pids":100},"Reservations":{"NanoCPUs":100000000,"MemoryBytes":33554432}},"#,
        r#""RestartPolicy":{"Condition":"on-failure","Delay":3000000000,"MaxAttempts":4,"Window":10000000000},"#,
        r#""Placement":{"Constraints":["node.role==manager","node.labels.zone==a"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":1},"#,
        r#""Networks":[{"Target":"4mzrxtsxvoq9d5kn1pt82yvh7"}],"LogDriver":{"Name":"json-file","Options":{"max-size":"1m"}},"ForceUpdate":0},"#,
        r#""Mode":{"Replicated":{"Replicas":2}},"#,
        r#""UpdateConfig":{"Parallelism":2,"Delay":1000000000,"FailureAction":"rollback","Monitor":2000000000,"MaxFailureRatio":0.2,"Order":"start-first"},"#,
        r#""RollbackConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"#,
        r#""EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"},{"Protocol":"udp","TargetPort":9090,"PublishedPort":9091,"PublishMode":"host"}]}}"#
    );

    #[test]
    fn rich_example_round_trips_byte_for_byte() {
        let spec: ServiceSpec = round_trip_exact(RICH);
        let t = &spec.task_template;
        assert_eq!(
            t.restart_policy.as_ref().unwrap().window,
            Some(10_000_000_000)
        );
        assert_eq!(t.networks[0].target, "4mzrxtsxvoq9d5kn1pt82yvh7");
        assert_eq!(t.log_driver.as_ref().unwrap().options["max-size"], "1m");
        let c = spec.container().unwrap();
        assert_eq!(c.mounts[0].kind, Some(MountType::Volume));
        assert_eq!(
            c.mounts[1].tmpfs_options.as_ref().unwrap().size_bytes,
            1_000_000
        );
        assert_eq!(c.healthcheck.as_ref().unwrap().retries, 2);
        assert_eq!(c.ulimits[0].soft, 1024);
        assert_eq!(c.stop_grace_period, Some(3_000_000_000));
        let u = spec.update_config.as_ref().unwrap();
        assert_eq!(u.max_failure_ratio, 0.2f32);
        assert_eq!(u.order_or_default(), UpdateOrder::StartFirst);
        assert_eq!(u.failure_action_or_default(), UpdateFailureAction::Rollback);
        assert_eq!(u.monitor_or_default(), Duration::from_secs(2));
        assert_eq!(spec.rollback_config, Some(UpdateConfig::swarm_default()));
        let ports = &spec.endpoint_spec.as_ref().unwrap().ports;
        assert_eq!(ports[1].protocol, Some(PortProtocol::Udp));
        assert_eq!(ports[1].publish_mode, Some(PublishMode::Host));
        assert_eq!(ports[0].published_port, 8080);
    }

    #[test]
    fn stack_deploy_body_round_trips_byte_for_byte() {
        // docker-api.md §4 `docker stack deploy`, observed (ids completed).
        let body = r#"{"Name":"st_web","Labels":{"com.docker.stack.image":"local/busybox:1","com.docker.stack.namespace":"st","tier":"front"},"TaskTemplate":{"ContainerSpec":{"Image":"local/busybox:1","Labels":{"com.docker.stack.namespace":"st"},"Args":["sleep","100000"],"Env":["FOO=bar"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},"Secrets":[{"File":{"Name":"mysecret","UID":"0","GID":"0","Mode":292},"SecretID":"sh40aaaa","SecretName":"st_mysecret"}],"Configs":[{"File":{"Name":"myconfig","UID":"0","GID":"0","Mode":292},"ConfigID":"wjy3bbbb","ConfigName":"st_myconfig"}]},"Resources":{},"Placement":{},"Networks":[{"Target":"st_front","Aliases":["web"]}],"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":2}},"EndpointSpec":{}}"#;
        let spec: ServiceSpec = round_trip_exact(body);
        let c = spec.container().unwrap();
        assert_eq!(c.secrets[0].file.as_ref().unwrap().mode, 0o444);
        assert_eq!(c.configs[0].config_name, "st_myconfig");
        let p = c.privileges.as_ref().unwrap();
        assert!(p.credential_spec.is_none() && p.se_linux_context.is_none());
        assert_eq!(spec.task_template.networks[0].aliases, ["web"]);
        assert_eq!(spec.endpoint_spec, Some(EndpointSpec::default()));
    }

    #[test]
    fn docker_py_nulls_are_accepted_everywhere() {
        // docker-py's create body (docker-api.md §5) plus nulls in every kind of field.
        let spec: ServiceSpec = serde_json::from_str(
            r#"{"Name":"dockerpytest_x","TaskTemplate":{"ContainerSpec":{"Image":"alpine:3.10","Command":["echo","hello"],"Args":null}}}"#,
        )
        .unwrap();
        assert!(spec.container().unwrap().args.is_empty());
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"Name":"dockerpytest_x","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"alpine:3.10","Command":["echo","hello"]},"ForceUpdate":0},"Mode":{}}"#
        );
        let all_null: ServiceSpec = serde_json::from_str(
            r#"{"Name":null,"Labels":null,"TaskTemplate":null,"Mode":null,"UpdateConfig":null,"RollbackConfig":null,"Networks":null,"EndpointSpec":null}"#,
        )
        .unwrap();
        assert_eq!(all_null, ServiceSpec::default());
        let nested: ServiceSpec = serde_json::from_str(
            r#"{"Mode":{"Replicated":{"Replicas":null},"Global":null},"UpdateConfig":{"Parallelism":null,"Delay":null,"FailureAction":null,"Monitor":null,"MaxFailureRatio":null,"Order":null},"TaskTemplate":{"ForceUpdate":null,"RestartPolicy":{"Condition":null,"Delay":null,"MaxAttempts":null,"Window":null},"ContainerSpec":{"Image":"a","Labels":null,"Env":null,"Mounts":null,"Init":null,"TTY":null,"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":null},"Healthcheck":{"Test":null,"Retries":null},"Secrets":[{"File":null,"SecretID":null,"SecretName":null}]}},"EndpointSpec":{"Mode":null,"Ports":[{"Protocol":null,"TargetPort":null}]}}"#,
        )
        .unwrap();
        assert_eq!(nested.replicas(), Some(1));
        assert_eq!(nested.update_config, Some(UpdateConfig::default()));
        let c = nested.container().unwrap();
        assert_eq!(c.init, None);
        assert!(c.secrets[0].file.is_none());
        assert_eq!(nested.endpoint_spec.unwrap().ports[0].target_port, 0);
    }

    #[test]
    fn update_config_always_emits_parallelism_ratio_and_order() {
        assert_eq!(
            serde_json::to_string(&UpdateConfig::default()).unwrap(),
            r#"{"Parallelism":0,"MaxFailureRatio":0,"Order":""}"#
        );
        assert_eq!(
            serde_json::to_string(&UpdateConfig::swarm_default()).unwrap(),
            r#"{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"}"#
        );
        let docker_py: UpdateConfig =
            serde_json::from_str(r#"{"Parallelism":10,"Delay":5,"FailureAction":"continue"}"#)
                .unwrap();
        assert_eq!(docker_py.order, None);
        assert_eq!(docker_py.order_or_default(), UpdateOrder::StopFirst);
        assert_eq!(docker_py.monitor_or_default(), Duration::from_secs(5));
        let bad: UpdateConfig = round_trip(
            r#"{"Parallelism":1,"FailureAction":"explode","MaxFailureRatio":0,"Order":"sideways"}"#,
        );
        assert_eq!(bad.order, Some(UpdateOrder::Other("sideways".into())));
        assert!(!bad.failure_action.unwrap().is_known());
    }

    #[test]
    fn modes_and_accessors() {
        let global: ServiceSpec = round_trip_exact(
            r#"{"Labels":{},"TaskTemplate":{"ForceUpdate":0},"Mode":{"Global":{}}}"#,
        );
        assert!(global.is_global() && !global.is_job() && !global.is_replicated());
        assert_eq!(global.replicas(), None);
        let job: ServiceMode =
            round_trip_exact(r#"{"ReplicatedJob":{"MaxConcurrent":1,"TotalCompletions":5}}"#);
        assert_eq!(job, ServiceMode::replicated_job(1, 5));
        assert_eq!(job.kind(), ServiceModeKind::ReplicatedJob);
        let bare_job = ReplicatedJob::default();
        assert_eq!(bare_job.max_concurrent_or_default(), 1);
        assert_eq!(bare_job.total_completions_or_default(), 1);
        let gj: ServiceMode = round_trip_exact(r#"{"GlobalJob":{}}"#);
        assert_eq!(gj.kind().as_str(), "global-job");
        assert_eq!(
            "replicated-job".parse::<ServiceModeKind>(),
            Ok(ServiceModeKind::ReplicatedJob)
        );
        let both: ServiceMode = serde_json::from_str(r#"{"Replicated":{},"Global":{}}"#).unwrap();
        assert_eq!(both.set_count(), 2);
        let spec = ServiceSpec {
            mode: ServiceMode::global_job(),
            ..Default::default()
        };
        assert!(spec.is_global() && spec.is_job());
        assert_eq!(
            spec.update_config_or_default(),
            UpdateConfig::swarm_default()
        );
    }

    #[test]
    fn update_status_and_job_status_round_trip() {
        let st: UpdateStatus = round_trip_exact(
            r#"{"State":"rollback_started","StartedAt":"2026-11-25T05:40:00.123Z","Message":"manually requested rollback"}"#,
        );
        assert_eq!(st.state, Some(UpdateState::RollbackStarted));
        assert!(st.completed_at.is_none());
        let done: UpdateStatus = round_trip_exact(
            r#"{"State":"completed","StartedAt":"2026-11-25T05:40:00Z","CompletedAt":"2026-11-25T05:41:00Z","Message":"update completed"}"#,
        );
        assert_eq!(done.state.unwrap().as_str(), "completed");
        let js: JobStatus = round_trip_exact(
            r#"{"JobIteration":{"Index":12},"LastExecution":"2026-11-25T05:40:00Z"}"#,
        );
        assert_eq!(js.job_iteration.index, 12);
        assert_eq!(
            serde_json::to_string(&JobStatus::default()).unwrap(),
            r#"{"JobIteration":{},"LastExecution":"0001-01-01T00:00:00Z"}"#
        );
        let ss: ServiceStatus =
            round_trip_exact(r#"{"RunningTasks":0,"DesiredTasks":3,"CompletedTasks":0}"#);
        assert_eq!(ss.desired_tasks, 3);
    }

    #[test]
    fn mount_types_are_open() {
        let m: super::super::Mount = round_trip_exact(r#"{"Type":"weird","Target":"/x"}"#);
        assert_eq!(m.kind, Some(MountType::Other("weird".into())));
    }

    #[test]
    fn whole_docker_service_round_trips_through_the_store_object() {
        let json = format!(
            r#"{{"ID":"o3pdj9vpftl5x9jdzdtmcukqf","Version":{{"Index":89}},"CreatedAt":"2026-11-25T05:33:54.648088463Z","UpdatedAt":"2026-11-25T05:40:00Z","Spec":{CLI_CREATE},"PreviousSpec":{CLI_CREATE},"Endpoint":{{"Spec":{{"Mode":"vip"}}}},"UpdateStatus":{{"State":"rollback_completed","StartedAt":"2026-11-25T05:39:00Z","CompletedAt":"2026-11-25T05:40:00Z","Message":"rollback completed"}},"ServiceStatus":{{"RunningTasks":3,"DesiredTasks":3,"CompletedTasks":0}}}}"#
        );
        let svc: crate::model::Service = serde_json::from_str(&json).unwrap();
        assert_eq!(svc.spec.replicas(), Some(3));
        assert_eq!(
            svc.update_status.as_ref().unwrap().state,
            Some(UpdateState::RollbackCompleted)
        );
        assert_eq!(svc.service_status.as_ref().unwrap().running_tasks, 3);
        let mut out = serde_json::to_value(&svc).unwrap();
        // Internal bookkeeping the API layer strips.
        assert!(out.as_object_mut().unwrap().remove("SpecVersion").is_some());
        assert_eq!(
            out,
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
    }
}
