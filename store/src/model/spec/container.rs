//! The container a task runs: `ContainerSpec` and everything nested in it (docker-api.md §3.4).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wire::{is_zero, null_default, open_enum, opt_enum};
use super::{nanos_to_duration, Driver, Labels, Nanos, NANOS_PER_SECOND};

/// The container a task runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Image reference (`name:tag`, possibly `@sha256:...`).
    #[serde(rename = "Image", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub image: String,
    /// Container labels.
    #[serde(rename = "Labels", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Entrypoint override.
    #[serde(rename = "Command", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(rename = "Args", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub args: Vec<String>,
    /// Host name inside the container.
    #[serde(rename = "Hostname", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub hostname: String,
    /// Environment, `KEY=value`.
    #[serde(rename = "Env", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(rename = "Dir", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub dir: String,
    /// User (`name`, `uid`, `uid:gid`).
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    /// Additional groups.
    #[serde(rename = "Groups", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub groups: Vec<String>,
    /// Security options.
    #[serde(
        rename = "Privileges",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub privileges: Option<Privileges>,
    /// Run an init process (Go pointer: `"Init":false` is kept).
    #[serde(rename = "Init", default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Signal that stops the container (`SIGINT`).
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub stop_signal: String,
    /// Allocate a TTY.
    #[serde(rename = "TTY", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub tty: bool,
    /// Keep stdin open.
    #[serde(rename = "OpenStdin", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub open_stdin: bool,
    /// Read-only root filesystem.
    #[serde(rename = "ReadOnly", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub read_only: bool,
    /// Mounts.
    #[serde(rename = "Mounts", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub mounts: Vec<Mount>,
    /// Time between the stop signal and a kill (Go pointer: `0` is kept).
    #[serde(
        rename = "StopGracePeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_grace_period: Option<Nanos>,
    /// Health check (`{}` or `{"Test":["NONE"]}` turn the image's off).
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    /// Extra `/etc/hosts` lines (`IP host [aliases...]`).
    #[serde(rename = "Hosts", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub hosts: Vec<String>,
    /// `resolv.conf` settings.
    #[serde(rename = "DNSConfig", default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DNSConfig>,
    /// Secrets exposed as files.
    #[serde(rename = "Secrets", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub secrets: Vec<SecretReference>,
    /// Configs exposed as files.
    #[serde(rename = "Configs", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub configs: Vec<ConfigReference>,
    /// Isolation technology (`default`, `process`, `hyperv`). A `String`: only meaningful on
    /// Windows and passed to the engine as is; dockerd reports `default` on output.
    #[serde(
        rename = "Isolation",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub isolation: String,
    /// Namespaced kernel parameters.
    #[serde(rename = "Sysctls", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub sysctls: Labels,
    /// Capabilities to add.
    #[serde(
        rename = "CapabilityAdd",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub capability_add: Vec<String>,
    /// Capabilities to drop.
    #[serde(
        rename = "CapabilityDrop",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub capability_drop: Vec<String>,
    /// Resource limits (`ulimit`).
    #[serde(rename = "Ulimits", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub ulimits: Vec<Ulimit>,
    /// OOM killer score adjustment.
    #[serde(rename = "OomScoreAdj", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub oom_score_adj: i64,
    /// Internal: the registry credentials the client sent with the service
    /// (`--with-registry-auth`), which nodes pull the image with (swarmkit's
    /// `PullOptions.RegistryAuth`). Set only by the API layer from the `X-Registry-Auth` header,
    /// and never shown by it (see [`ContainerSpec::REGISTRY_AUTH_FIELD`]).
    #[serde(rename = "RegistryAuth", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub registry_auth: RegistryAuth,
}

impl ContainerSpec {
    /// Default stop grace period (10 s), as `insertDefaults=true` shows it.
    pub const DEFAULT_STOP_GRACE_PERIOD: Nanos = 10 * NANOS_PER_SECOND;
    /// The JSON name of [`ContainerSpec::registry_auth`], which the API layer strips.
    pub const REGISTRY_AUTH_FIELD: &'static str = "RegistryAuth";

    /// A spec running `image` with its default command.
    pub fn with_image(image: impl Into<String>) -> Self {
        ContainerSpec {
            image: image.into(),
            ..Default::default()
        }
    }

    /// Time between the stop signal and a kill (unset: 10 s).
    pub fn stop_grace_period_or_default(&self) -> Duration {
        nanos_to_duration(
            self.stop_grace_period
                .unwrap_or(Self::DEFAULT_STOP_GRACE_PERIOD),
        )
    }
}

/// Registry credentials as the Docker CLI encodes them for the `X-Registry-Auth` header (base64url
/// JSON of an `AuthConfig`), kept verbatim. Its `Debug` never prints them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegistryAuth(pub String);

impl RegistryAuth {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            f.write_str("RegistryAuth(none)")
        } else {
            f.write_str("RegistryAuth(<redacted>)")
        }
    }
}

/// Security options of a container. `CredentialSpec` and `SELinuxContext` have no `omitempty`
/// in Go: emitted as `null` when unset (the CLI sends them so).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Privileges {
    /// Windows managed service account.
    #[serde(rename = "CredentialSpec", default)]
    pub credential_spec: Option<CredentialSpec>,
    /// SELinux labels.
    #[serde(rename = "SELinuxContext", default)]
    pub se_linux_context: Option<SELinuxContext>,
    /// Seccomp profile.
    #[serde(rename = "Seccomp", default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompOpts>,
    /// AppArmor profile.
    #[serde(rename = "AppArmor", default, skip_serializing_if = "Option::is_none")]
    pub app_armor: Option<AppArmorOpts>,
    /// Forbid gaining privileges (always emitted).
    #[serde(rename = "NoNewPrivileges", default, deserialize_with = "null_default")]
    pub no_new_privileges: bool,
}

/// A Windows credential spec; exactly one field should be set. All always emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CredentialSpec {
    /// A swarm config holding the spec.
    #[serde(rename = "Config", default, deserialize_with = "null_default")]
    pub config: String,
    /// A file holding the spec.
    #[serde(rename = "File", default, deserialize_with = "null_default")]
    pub file: String,
    /// A registry value holding the spec.
    #[serde(rename = "Registry", default, deserialize_with = "null_default")]
    pub registry: String,
}

/// SELinux labels. All always emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SELinuxContext {
    /// Turn labelling off.
    #[serde(rename = "Disable", default, deserialize_with = "null_default")]
    pub disable: bool,
    /// User label.
    #[serde(rename = "User", default, deserialize_with = "null_default")]
    pub user: String,
    /// Role label.
    #[serde(rename = "Role", default, deserialize_with = "null_default")]
    pub role: String,
    /// Type label.
    #[serde(rename = "Type", default, deserialize_with = "null_default")]
    pub kind: String,
    /// Level label.
    #[serde(rename = "Level", default, deserialize_with = "null_default")]
    pub level: String,
}

/// Seccomp settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeccompOpts {
    /// `default`, `unconfined` or `custom`. A `String`, passed to the engine as is.
    #[serde(rename = "Mode", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub mode: String,
    /// Custom profile, JSON bytes (base64 on the wire, Go `[]byte`).
    #[serde(rename = "Profile", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(with = "super::wire::base64")]
    pub profile: Vec<u8>,
}

/// AppArmor settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppArmorOpts {
    /// `default` or `disabled`. A `String`, passed to the engine as is.
    #[serde(rename = "Mode", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub mode: String,
}

/// A mount into the container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Mount type. Open enum matched case-insensitively (as the daemon does); unknown values are
    /// kept for the API layer to answer `invalid MountType: "x"`.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "opt_enum")]
    pub kind: Option<MountType>,
    /// Host path, volume name, ...
    #[serde(rename = "Source", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub source: String,
    /// Path in the container.
    #[serde(rename = "Target", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub target: String,
    /// Mount read-only.
    #[serde(rename = "ReadOnly", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub read_only: bool,
    /// `default`, `consistent`, `cached` or `delegated` (Docker Desktop only). A `String`,
    /// passed to the engine as is.
    #[serde(
        rename = "Consistency",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub consistency: String,
    /// Bind mount options.
    #[serde(
        rename = "BindOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bind_options: Option<BindOptions>,
    /// Volume options.
    #[serde(
        rename = "VolumeOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_options: Option<VolumeOptions>,
    /// Image mount options.
    #[serde(
        rename = "ImageOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_options: Option<ImageOptions>,
    /// tmpfs options.
    #[serde(
        rename = "TmpfsOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tmpfs_options: Option<TmpfsOptions>,
    /// Cluster volume options.
    #[serde(
        rename = "ClusterOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_options: Option<ClusterOptions>,
}

open_enum! {
    /// What a mount mounts.
    pub enum MountType (ignore_case: true) {
        /// A host path.
        Bind => "bind",
        /// A named volume.
        Volume => "volume",
        /// A tmpfs.
        Tmpfs => "tmpfs",
        /// A Windows named pipe.
        Npipe => "npipe",
        /// A cluster (CSI) volume.
        Cluster => "cluster",
        /// An image's filesystem.
        Image => "image",
    }
}

/// Bind mount options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BindOptions {
    /// Propagation (`rprivate`, `shared`, ...). A `String`: the API layer validates it
    /// (`invalid MountPropagation: "x"`).
    #[serde(
        rename = "Propagation",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub propagation: String,
    /// Do not bind submounts.
    #[serde(rename = "NonRecursive", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub non_recursive: bool,
    /// Create the host path if missing.
    #[serde(rename = "CreateMountpoint", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub create_mountpoint: bool,
    /// Make only the top mount read-only.
    #[serde(
        rename = "ReadOnlyNonRecursive",
        default,
        skip_serializing_if = "is_zero"
    )]
    #[serde(deserialize_with = "null_default")]
    pub read_only_non_recursive: bool,
    /// Fail if submounts cannot be made read-only.
    #[serde(
        rename = "ReadOnlyForceRecursive",
        default,
        skip_serializing_if = "is_zero"
    )]
    #[serde(deserialize_with = "null_default")]
    pub read_only_force_recursive: bool,
}

/// Volume mount options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeOptions {
    /// Do not copy the image's content into a new volume.
    #[serde(rename = "NoCopy", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub no_copy: bool,
    /// Labels for a volume created on demand.
    #[serde(rename = "Labels", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Mount a subdirectory of the volume.
    #[serde(rename = "Subpath", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub subpath: String,
    /// Volume driver for a volume created on demand.
    #[serde(
        rename = "DriverConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub driver_config: Option<Driver>,
}

/// Image mount options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageOptions {
    /// Mount a subdirectory of the image.
    #[serde(rename = "Subpath", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub subpath: String,
}

/// tmpfs mount options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TmpfsOptions {
    /// Size limit in bytes (0: unlimited).
    #[serde(rename = "SizeBytes", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub size_bytes: i64,
    /// File mode of the root (Go `os.FileMode`, a number).
    #[serde(rename = "Mode", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub mode: u32,
    /// Extra mount options, each `[name]` or `[name, value]`.
    #[serde(rename = "Options", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub options: Vec<Vec<String>>,
}

/// Cluster volume options (none yet; `{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterOptions {}

/// A container health check. Zero values mean "inherit from the image".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` off, `["CMD", args...]`, `["CMD-SHELL", command]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub interval: Nanos,
    /// Time before a check counts as hung.
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub timeout: Nanos,
    /// Start-up time during which failures do not count.
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub start_period: Nanos,
    /// Time between checks during the start period.
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub start_interval: Nanos,
    /// Consecutive failures before unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub retries: i64,
}

/// `resolv.conf` settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DNSConfig {
    /// Name server addresses.
    #[serde(rename = "Nameservers", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(rename = "Search", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub search: Vec<String>,
    /// Resolver options (`ndots:2`).
    #[serde(rename = "Options", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub options: Vec<String>,
}

/// A secret exposed to the container as a file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretReference {
    /// Where and how the file appears (no `omitempty`: `null` when unset).
    #[serde(rename = "File", default)]
    pub file: Option<ReferenceFileTarget>,
    /// Secret id (the API layer resolves names).
    #[serde(rename = "SecretID", default, deserialize_with = "null_default")]
    pub secret_id: String,
    /// Secret name.
    #[serde(rename = "SecretName", default, deserialize_with = "null_default")]
    pub secret_name: String,
}

/// A config exposed to the container as a file (or, for credential specs, at runtime).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigReference {
    /// Where and how the file appears.
    #[serde(rename = "File", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ReferenceFileTarget>,
    /// Used by the runtime only (no file; `{}`).
    #[serde(rename = "Runtime", default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ConfigReferenceRuntimeTarget>,
    /// Config id (the API layer resolves names).
    #[serde(rename = "ConfigID", default, deserialize_with = "null_default")]
    pub config_id: String,
    /// Config name.
    #[serde(rename = "ConfigName", default, deserialize_with = "null_default")]
    pub config_name: String,
}

/// The file a secret or config appears as. All always emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceFileTarget {
    /// File name (under `/run/secrets/` for secrets unless absolute).
    #[serde(rename = "Name", default, deserialize_with = "null_default")]
    pub name: String,
    /// Owner uid, as a string.
    #[serde(rename = "UID", default, deserialize_with = "null_default")]
    pub uid: String,
    /// Owner gid, as a string.
    #[serde(rename = "GID", default, deserialize_with = "null_default")]
    pub gid: String,
    /// File mode (Go `os.FileMode`, a number: `292` = `0444`).
    #[serde(rename = "Mode", default, deserialize_with = "null_default")]
    pub mode: u32,
}

/// A config used by the runtime rather than as a file (no fields; `{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigReferenceRuntimeTarget {}

/// A resource limit (`nofile` soft/hard). All always emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Limit name (`nofile`).
    #[serde(rename = "Name", default, deserialize_with = "null_default")]
    pub name: String,
    /// Hard limit.
    #[serde(rename = "Hard", default, deserialize_with = "null_default")]
    pub hard: i64,
    /// Soft limit.
    #[serde(rename = "Soft", default, deserialize_with = "null_default")]
    pub soft: i64,
}

#[cfg(test)]
mod tests {
    use super::super::test_util::round_trip_exact;
    use super::*;

    #[test]
    fn privileges_emit_null_pointers_and_round_trip_contents() {
        let p: Privileges = round_trip_exact(
            r#"{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false}"#,
        );
        assert_eq!(p, Privileges::default());
        // docker-py's privileges test asserts SELinuxContext.Disable comes back.
        let p: Privileges = round_trip_exact(
            r#"{"CredentialSpec":{"Config":"","File":"spec.json","Registry":""},"SELinuxContext":{"Disable":true,"User":"","Role":"","Type":"","Level":""},"Seccomp":{"Mode":"custom","Profile":"eyJkZWZhdWx0QWN0aW9uIjoiU0NNUF9BQ1RfQUxMT1cifQ=="},"AppArmor":{"Mode":"disabled"},"NoNewPrivileges":true}"#,
        );
        assert!(p.se_linux_context.unwrap().disable);
        assert_eq!(p.credential_spec.unwrap().file, "spec.json");
        let seccomp = p.seccomp.unwrap();
        assert_eq!(seccomp.profile, br#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        assert!(p.no_new_privileges);
    }

    #[test]
    fn container_options_round_trip_exactly() {
        let c: ContainerSpec = round_trip_exact(
            r#"{"Image":"busybox:latest","Labels":{"l":"1"},"Hostname":"h","User":"1000:1000","TTY":true,"OpenStdin":true,"Mounts":[{"Type":"bind","Source":"/srv","Target":"/srv","ReadOnly":true,"Consistency":"cached","BindOptions":{"Propagation":"rshared","NonRecursive":true,"CreateMountpoint":true}},{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"NoCopy":true,"Labels":{"a":"b"},"Subpath":"sub","DriverConfig":{"Name":"local","Options":{"type":"nfs"}}}},{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1024,"Mode":448,"Options":[["noexec"],["uid","1000"]]}},{"Type":"image","Source":"img","Target":"/i","ImageOptions":{"Subpath":"x"}},{"Type":"cluster","Source":"cv","Target":"/c","ClusterOptions":{}}],"StopGracePeriod":0,"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Timeout":2000000000,"StartPeriod":3000000000,"StartInterval":4000000000,"Retries":5},"Hosts":["10.0.0.1 db"],"DNSConfig":{"Nameservers":["8.8.8.8"],"Search":["example.com"],"Options":["ndots:2"]},"Configs":[{"Runtime":{},"ConfigID":"c1","ConfigName":"cred"}],"Isolation":"default","CapabilityDrop":["CAP_MKNOD"],"OomScoreAdj":-500}"#,
        );
        assert_eq!(c.stop_grace_period, Some(0));
        assert_eq!(c.stop_grace_period_or_default(), Duration::ZERO);
        assert_eq!(
            c.mounts[0].bind_options.as_ref().unwrap().propagation,
            "rshared"
        );
        assert_eq!(
            c.mounts[2].tmpfs_options.as_ref().unwrap().options[1],
            ["uid", "1000"]
        );
        assert_eq!(c.mounts[3].kind, Some(MountType::Image));
        assert_eq!(
            c.healthcheck.as_ref().unwrap().start_interval,
            4_000_000_000
        );
        assert_eq!(c.dns_config.as_ref().unwrap().options, ["ndots:2"]);
        assert!(c.configs[0].file.is_none() && c.configs[0].runtime.is_some());
        assert_eq!(c.oom_score_adj, -500);
        assert!(c.tty && c.open_stdin);
    }

    #[test]
    fn empty_healthcheck_and_mount_type_case() {
        // docker-py "remove healthcheck" sends `{}`, which must stay `{}`.
        let c: ContainerSpec = round_trip_exact(r#"{"Image":"a","Healthcheck":{}}"#);
        assert_eq!(c.healthcheck, Some(HealthConfig::default()));
        let m: Mount = serde_json::from_str(r#"{"Type":"BIND","Target":"/x"}"#).unwrap();
        assert_eq!(m.kind, Some(MountType::Bind));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"Type":"bind","Target":"/x"}"#
        );
        assert_eq!(
            ContainerSpec::with_image("a").stop_grace_period_or_default(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn registry_auth_is_stored_but_never_printed() {
        let c: ContainerSpec =
            round_trip_exact(r#"{"Image":"a","RegistryAuth":"eyJ1c2VyIjoiYSJ9"}"#);
        assert_eq!(c.registry_auth, RegistryAuth("eyJ1c2VyIjoiYSJ9".into()));
        assert!(!format!("{c:?}").contains("eyJ1"));
        let v = serde_json::to_value(ContainerSpec::with_image("a")).unwrap();
        assert!(v.get(ContainerSpec::REGISTRY_AUTH_FIELD).is_none());
    }
}
