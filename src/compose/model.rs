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
    /// The compose key `cap_add`.
    pub cap_add: Vec<String>,
    /// The compose key `cap_drop`.
    pub cap_drop: Vec<String>,
    /// `command` (the container's Args).
    pub command: Vec<String>,
    /// The compose key `configs`.
    pub configs: Vec<FileReference>,
    /// The compose key `credential_spec`.
    pub credential_spec: CredentialSpec,
    /// The compose key `deploy`.
    pub deploy: Deploy,
    /// The compose key `dns`.
    pub dns: Option<Vec<String>>,
    /// The compose key `dns_search`.
    pub dns_search: Option<Vec<String>>,
    /// `entrypoint` (the container's Command).
    pub entrypoint: Vec<String>,
    /// Environment after `env_file` and the caller's environment are folded in; `None` is a
    /// name without a value (passed as `NAME`).
    pub environment: BTreeMap<String, Option<String>>,
    /// `extra_hosts` as `host:ip`.
    pub extra_hosts: Vec<String>,
    /// The compose key `hostname`.
    pub hostname: String,
    /// The compose key `healthcheck`.
    pub healthcheck: Option<Healthcheck>,
    /// The compose key `image`.
    pub image: String,
    /// The compose key `init`.
    pub init: Option<bool>,
    /// The compose key `isolation`.
    pub isolation: String,
    /// The compose key `labels`.
    pub labels: BTreeMap<String, String>,
    /// The compose key `logging`.
    pub logging: Option<Logging>,
    /// Networks by name; `None` when listed without options.
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    /// The compose key `ports`.
    pub ports: Vec<Port>,
    /// The compose key `read_only`.
    pub read_only: bool,
    /// `restart` (only used when `deploy.restart_policy` is absent).
    pub restart: String,
    /// The compose key `secrets`.
    pub secrets: Vec<FileReference>,
    /// The compose key `stdin_open`.
    pub stdin_open: bool,
    /// The compose key `stop_grace_period`.
    pub stop_grace_period: Option<i64>,
    /// The compose key `stop_signal`.
    pub stop_signal: String,
    /// The compose key `sysctls`.
    pub sysctls: BTreeMap<String, String>,
    /// The compose key `tty`.
    pub tty: bool,
    /// The compose key `ulimits`.
    pub ulimits: BTreeMap<String, Ulimit>,
    /// The compose key `user`.
    pub user: String,
    /// The compose key `volumes`.
    pub volumes: Vec<ServiceVolume>,
    /// The compose key `working_dir`.
    pub working_dir: String,
}

/// `credential_spec`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialSpec {
    /// The compose key `config`.
    pub config: String,
    /// The compose key `file`.
    pub file: String,
    /// The compose key `registry`.
    pub registry: String,
}

/// `deploy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deploy {
    /// The compose key `mode`.
    pub mode: String,
    /// The compose key `replicas`.
    pub replicas: Option<u64>,
    /// The compose key `labels`.
    pub labels: BTreeMap<String, String>,
    /// The compose key `update_config`.
    pub update_config: Option<UpdateConfig>,
    /// The compose key `rollback_config`.
    pub rollback_config: Option<UpdateConfig>,
    /// The compose key `resources`.
    pub resources: Resources,
    /// The compose key `restart_policy`.
    pub restart_policy: Option<RestartPolicy>,
    /// The compose key `placement`.
    pub placement: Placement,
    /// The compose key `endpoint_mode`.
    pub endpoint_mode: String,
}

/// `deploy.update_config` / `deploy.rollback_config`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateConfig {
    /// The compose key `parallelism`.
    pub parallelism: Option<u64>,
    /// The compose key `delay`.
    pub delay: i64,
    /// The compose key `failure_action`.
    pub failure_action: String,
    /// The compose key `monitor`.
    pub monitor: i64,
    /// A float32 in docker/cli.
    pub max_failure_ratio: f32,
    /// The compose key `order`.
    pub order: String,
}

/// `deploy.resources`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// The compose key `limits`.
    pub limits: Option<Limits>,
    /// The compose key `reservations`.
    pub reservations: Option<Reservations>,
}

/// `deploy.resources.limits`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// As written (`"0.5"`); converted to nano CPUs at the end.
    pub cpus: String,
    /// The compose key `memory`.
    pub memory: i64,
    /// The compose key `pids`.
    pub pids: i64,
}

/// `deploy.resources.reservations`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reservations {
    /// The compose key `cpus`.
    pub cpus: String,
    /// The compose key `memory`.
    pub memory: i64,
    /// `generic_resources[].discrete_resource_spec`: (kind, value); `None` for an entry without it.
    pub generic_resources: Vec<Option<(String, i64)>>,
}

/// `deploy.restart_policy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestartPolicy {
    /// The compose key `condition`.
    pub condition: String,
    /// The compose key `delay`.
    pub delay: Option<i64>,
    /// The compose key `max_attempts`.
    pub max_attempts: Option<u64>,
    /// The compose key `window`.
    pub window: Option<i64>,
}

/// `deploy.placement`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// The compose key `constraints`.
    pub constraints: Vec<String>,
    /// The `spread` of each preference.
    pub preferences: Vec<String>,
    /// The compose key `max_replicas_per_node`.
    pub max_replicas: u64,
}

/// `healthcheck`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Healthcheck {
    /// The compose key `test`.
    pub test: Vec<String>,
    /// The compose key `timeout`.
    pub timeout: Option<i64>,
    /// The compose key `interval`.
    pub interval: Option<i64>,
    /// The compose key `retries`.
    pub retries: Option<u64>,
    /// The compose key `start_period`.
    pub start_period: Option<i64>,
    /// The compose key `start_interval`.
    pub start_interval: Option<i64>,
    /// The compose key `disable`.
    pub disable: bool,
}

/// `logging`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logging {
    /// The compose key `driver`.
    pub driver: String,
    /// `None` when absent (docker/cli's merge drops an override's options then).
    pub options: Option<BTreeMap<String, String>>,
}

/// A service's options on one network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceNetwork {
    /// The compose key `aliases`.
    pub aliases: Vec<String>,
    /// The compose key `driver_opts`.
    pub driver_opts: BTreeMap<String, String>,
    /// The compose key `ipv4_address`.
    pub ipv4_address: String,
    /// The compose key `ipv6_address`.
    pub ipv6_address: String,
}

/// One published or exposed port (long form; short forms are expanded into these).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Port {
    /// The compose key `mode`.
    pub mode: String,
    /// The compose key `target`.
    pub target: u32,
    /// The compose key `published`.
    pub published: u32,
    /// The compose key `protocol`.
    pub protocol: String,
}

/// A service's reference to a secret or config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileReference {
    /// The compose key `source`.
    pub source: String,
    /// The compose key `target`.
    pub target: String,
    /// The compose key `uid`.
    pub uid: String,
    /// The compose key `gid`.
    pub gid: String,
    /// The compose key `mode`.
    pub mode: Option<u32>,
}

/// One `ulimits` entry: a single number (soft = hard) or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ulimit {
    /// The compose key a single number (soft = hard).
    pub single: i64,
    /// The compose key `soft`.
    pub soft: i64,
    /// The compose key `hard`.
    pub hard: i64,
}

/// One `volumes` entry of a service (long form; the short form is expanded into this).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceVolume {
    /// `volume`, `bind`, `tmpfs`, `npipe`, `cluster` or `image`.
    pub kind: String,
    /// The compose key `source`.
    pub source: String,
    /// The compose key `target`.
    pub target: String,
    /// The compose key `read_only`.
    pub read_only: bool,
    /// The compose key `consistency`.
    pub consistency: String,
    /// `bind.propagation`, when a `bind` section (or a propagation option) is given.
    pub bind: Option<String>,
    /// The compose key `volume`.
    pub volume: Option<VolumeOptions>,
    /// `tmpfs.size`, when a `tmpfs` section is given.
    pub tmpfs: Option<i64>,
}

/// The `volume` section of a service volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeOptions {
    /// The compose key `nocopy`.
    pub nocopy: bool,
    /// The compose key `subpath`.
    pub subpath: String,
}

/// `external` of a network, volume, secret or config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct External {
    /// Whether the object is external.
    pub external: bool,
    /// The deprecated `external.name`.
    pub name: String,
}

/// A top-level network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Network {
    /// The compose key `name`.
    pub name: String,
    /// The compose key `driver`.
    pub driver: String,
    /// The compose key `driver_opts`.
    pub driver_opts: BTreeMap<String, String>,
    /// The compose key `ipam.driver`.
    pub ipam_driver: String,
    /// The compose key `ipam.config[].subnet`.
    pub ipam_subnets: Vec<String>,
    /// The compose key `external: true` (or a mapping).
    pub external: External,
    /// The compose key `internal`.
    pub internal: bool,
    /// The compose key `attachable`.
    pub attachable: bool,
    /// The compose key `labels`.
    pub labels: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volume {
    /// The compose key `name`.
    pub name: String,
    /// The compose key `driver`.
    pub driver: String,
    /// `None` when absent (docker/cli sets a driver config only if driver or options are set).
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// The compose key `external: true` (or a mapping).
    pub external: External,
    /// The compose key `labels`.
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileObject {
    /// The compose key `name`.
    pub name: String,
    /// The path as written in the file (after interpolation).
    pub file: String,
    /// The compose key `external: true` (or a mapping).
    pub external: External,
    /// The compose key `labels`.
    pub labels: BTreeMap<String, String>,
    /// The compose key `driver`.
    pub driver: String,
    /// The compose key `driver_opts`.
    pub driver_opts: BTreeMap<String, String>,
    /// The compose key `template_driver`.
    pub template_driver: String,
}
