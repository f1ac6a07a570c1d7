//! The typed swarm subset of a compose file, after short syntaxes are expanded (docker/cli's
//! `cli/compose/types`, limited to what `docker stack deploy` uses). Field types keep the
//! distinctions docker/cli's merge and conversion depend on: `Option` where Go has a pointer
//! (unset differs from zero), plain values where Go has a value (zero means unset). Durations
//! are nanoseconds, sizes bytes.

use std::collections::BTreeMap;

/// One file, or several merged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// The schema version (`3.13` when the file has none).
    pub version: String,
    /// Services by short name.
    pub services: BTreeMap<String, Service>,
    /// Top-level networks.
    pub networks: BTreeMap<String, Network>,
    /// Top-level volumes.
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level secrets.
    pub secrets: BTreeMap<String, FileObject>,
    /// Top-level configs.
    pub configs: BTreeMap<String, FileObject>,
}

/// A service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `command` (the container's Args).
    pub command: Vec<String>,
    pub configs: Vec<FileReference>,
    pub credential_spec: CredentialSpec,
    pub deploy: Deploy,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    /// `entrypoint` (the container's Command).
    pub entrypoint: Vec<String>,
    /// Environment after `env_file` and the caller's environment are folded in; `None` is a
    /// name without a value (passed as `NAME`).
    pub environment: BTreeMap<String, Option<String>>,
    /// `extra_hosts` as `host:ip`.
    pub extra_hosts: Vec<String>,
    pub hostname: String,
    pub healthcheck: Option<Healthcheck>,
    pub image: String,
    pub init: Option<bool>,
    pub isolation: String,
    pub labels: BTreeMap<String, String>,
    pub logging: Option<Logging>,
    /// Networks by name; `None` when listed without options.
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    pub ports: Vec<Port>,
    pub read_only: bool,
    /// `restart` (only used when `deploy.restart_policy` is absent).
    pub restart: String,
    pub secrets: Vec<FileReference>,
    pub stdin_open: bool,
    pub stop_grace_period: Option<i64>,
    pub stop_signal: String,
    pub sysctls: BTreeMap<String, String>,
    pub tty: bool,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub user: String,
    pub volumes: Vec<ServiceVolume>,
    pub working_dir: String,
}

/// `credential_spec`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialSpec {
    pub config: String,
    pub file: String,
    pub registry: String,
}

/// `deploy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deploy {
    pub mode: String,
    pub replicas: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    pub resources: Resources,
    pub restart_policy: Option<RestartPolicy>,
    pub placement: Placement,
    pub endpoint_mode: String,
}

/// `deploy.update_config` / `deploy.rollback_config`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: i64,
    pub failure_action: String,
    pub monitor: i64,
    /// A float32 in docker/cli.
    pub max_failure_ratio: f32,
    pub order: String,
}

/// `deploy.resources`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub limits: Option<Limits>,
    pub reservations: Option<Reservations>,
}

/// `deploy.resources.limits`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// As written (`"0.5"`); converted to nano CPUs at the end.
    pub cpus: String,
    pub memory: i64,
    pub pids: i64,
}

/// `deploy.resources.reservations`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reservations {
    pub cpus: String,
    pub memory: i64,
    /// `generic_resources[].discrete_resource_spec`: (kind, value); `None` for an entry without it.
    pub generic_resources: Vec<Option<(String, i64)>>,
}

/// `deploy.restart_policy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestartPolicy {
    pub condition: String,
    pub delay: Option<i64>,
    pub max_attempts: Option<u64>,
    pub window: Option<i64>,
}

/// `deploy.placement`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    pub constraints: Vec<String>,
    /// The `spread` of each preference.
    pub preferences: Vec<String>,
    pub max_replicas: u64,
}

/// `healthcheck`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub timeout: Option<i64>,
    pub interval: Option<i64>,
    pub retries: Option<u64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub disable: bool,
}

/// `logging`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logging {
    pub driver: String,
    /// `None` when absent (docker/cli's merge drops an override's options then).
    pub options: Option<BTreeMap<String, String>>,
}

/// A service's options on one network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub ipv4_address: String,
    pub ipv6_address: String,
}

/// One published or exposed port (long form; short forms are expanded into these).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Port {
    pub mode: String,
    pub target: u32,
    pub published: u32,
    pub protocol: String,
}

/// A service's reference to a secret or config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileReference {
    pub source: String,
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: Option<u32>,
}

/// One `ulimits` entry: a single number (soft = hard) or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ulimit {
    pub single: i64,
    pub soft: i64,
    pub hard: i64,
}

/// One `volumes` entry of a service (long form; the short form is expanded into this).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceVolume {
    /// `volume`, `bind`, `tmpfs`, `npipe`, `cluster` or `image`.
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub consistency: String,
    /// `bind.propagation`, when a `bind` section (or a propagation option) is given.
    pub bind: Option<String>,
    pub volume: Option<VolumeOptions>,
    /// `tmpfs.size`, when a `tmpfs` section is given.
    pub tmpfs: Option<i64>,
}

/// The `volume` section of a service volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeOptions {
    pub nocopy: bool,
    pub subpath: String,
}

/// `external` of a network, volume, secret or config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct External {
    pub external: bool,
    /// The deprecated `external.name`.
    pub name: String,
}

/// A top-level network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Network {
    pub name: String,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub ipam_driver: String,
    pub ipam_subnets: Vec<String>,
    pub external: External,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    /// `None` when absent (docker/cli sets a driver config only if driver or options are set).
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub external: External,
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileObject {
    pub name: String,
    /// The path as written in the file (after interpolation).
    pub file: String,
    pub external: External,
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub template_driver: String,
}
