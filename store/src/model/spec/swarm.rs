//! The swarm's settings: `SwarmSpec` and its sub-structs (docker-api.md §3.2).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wire::{is_zero, null_default};
use super::{nanos_to_duration, Driver, Labels, Nanos, NANOS_PER_SECOND};

/// The swarm's settings (`Spec` of `GET /swarm`, body of `POST /swarm/update`).
///
/// The sub-structs are Go struct values, so they are always emitted (`{}` when empty). Zero
/// values mean "default": use the `*_or_default` accessors rather than the raw fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmSpec {
    /// Swarm name (always `default`) and labels.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Labels; always emitted (`{}` when empty), as the daemon does.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// Task history.
    #[serde(rename = "Orchestration", default, deserialize_with = "null_default")]
    pub orchestration: OrchestrationConfig,
    /// Raft tuning.
    #[serde(rename = "Raft", default, deserialize_with = "null_default")]
    pub raft: RaftConfig,
    /// Agent heartbeats.
    #[serde(rename = "Dispatcher", default, deserialize_with = "null_default")]
    pub dispatcher: DispatcherConfig,
    /// Certificate authority.
    #[serde(rename = "CAConfig", default, deserialize_with = "null_default")]
    pub ca_config: CAConfig,
    /// Defaults for every task.
    #[serde(rename = "TaskDefaults", default, deserialize_with = "null_default")]
    pub task_defaults: TaskDefaults,
    /// Autolock.
    #[serde(
        rename = "EncryptionConfig",
        default,
        deserialize_with = "null_default"
    )]
    pub encryption_config: EncryptionConfig,
}

/// Orchestration settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrchestrationConfig {
    /// How many old tasks to keep per slot (Go pointer: `0` is a real value).
    #[serde(rename = "TaskHistoryRetentionLimit", default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_history_retention_limit: Option<i64>,
}

/// Raft settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftConfig {
    /// Log entries between snapshots.
    #[serde(rename = "SnapshotInterval", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub snapshot_interval: u64,
    /// Old snapshots to keep (Go pointer: `0` is a real value).
    #[serde(
        rename = "KeepOldSnapshots",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_old_snapshots: Option<u64>,
    /// Entries kept after a snapshot for slow followers.
    #[serde(
        rename = "LogEntriesForSlowFollowers",
        default,
        skip_serializing_if = "is_zero"
    )]
    #[serde(deserialize_with = "null_default")]
    pub log_entries_for_slow_followers: u64,
    /// Ticks without a leader before an election (always emitted).
    #[serde(rename = "ElectionTick", default, deserialize_with = "null_default")]
    pub election_tick: i64,
    /// Ticks between leader heartbeats (always emitted).
    #[serde(rename = "HeartbeatTick", default, deserialize_with = "null_default")]
    pub heartbeat_tick: i64,
}

/// Dispatcher settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatcherConfig {
    /// Agent heartbeat period.
    #[serde(rename = "HeartbeatPeriod", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub heartbeat_period: Nanos,
}

/// Certificate authority settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CAConfig {
    /// Validity of node certificates.
    #[serde(rename = "NodeCertExpiry", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub node_cert_expiry: Nanos,
    /// External CAs that sign node certificates.
    #[serde(rename = "ExternalCAs", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub external_cas: Vec<ExternalCA>,
    /// A new root CA certificate to rotate to, PEM.
    #[serde(
        rename = "SigningCACert",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub signing_ca_cert: String,
    /// The key of `signing_ca_cert`, PEM (the API layer must not return it).
    #[serde(
        rename = "SigningCAKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub signing_ca_key: String,
    /// Bump to force a root rotation.
    #[serde(rename = "ForceRotate", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub force_rotate: u64,
}

/// An external certificate authority.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExternalCA {
    /// Protocol; only `cfssl` exists. A `String` because the daemon validates it
    /// case-insensitively with its own message (`invalid protocol: "x"`).
    #[serde(rename = "Protocol", default, deserialize_with = "null_default")]
    pub protocol: String,
    /// Signing endpoint.
    #[serde(rename = "URL", default, deserialize_with = "null_default")]
    pub url: String,
    /// Protocol options.
    #[serde(rename = "Options", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub options: Labels,
    /// The CA certificate the endpoint signs with, PEM.
    #[serde(rename = "CACert", default, deserialize_with = "null_default")]
    pub ca_cert: String,
}

/// Defaults applied to every task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskDefaults {
    /// Log driver for tasks that do not name one.
    #[serde(rename = "LogDriver", default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
}

/// Encryption settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EncryptionConfig {
    /// Whether managers need the unlock key after a restart (always emitted).
    #[serde(
        rename = "AutoLockManagers",
        default,
        deserialize_with = "null_default"
    )]
    pub auto_lock_managers: bool,
}

impl SwarmSpec {
    /// The swarm's only name.
    pub const DEFAULT_NAME: &'static str = "default";
    /// Default `Orchestration.TaskHistoryRetentionLimit`.
    pub const DEFAULT_TASK_HISTORY_RETENTION_LIMIT: i64 = 5;
    /// Default `Raft.SnapshotInterval`.
    pub const DEFAULT_SNAPSHOT_INTERVAL: u64 = 10_000;
    /// Default `Raft.KeepOldSnapshots`.
    pub const DEFAULT_KEEP_OLD_SNAPSHOTS: u64 = 0;
    /// Default `Raft.LogEntriesForSlowFollowers`.
    pub const DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS: u64 = 500;
    /// Default `Raft.ElectionTick`.
    pub const DEFAULT_ELECTION_TICK: i64 = 10;
    /// Default `Raft.HeartbeatTick`.
    pub const DEFAULT_HEARTBEAT_TICK: i64 = 1;
    /// Default `Dispatcher.HeartbeatPeriod` (5 s).
    pub const DEFAULT_HEARTBEAT_PERIOD: Nanos = 5 * NANOS_PER_SECOND;
    /// Default `CAConfig.NodeCertExpiry` (90 days).
    pub const DEFAULT_NODE_CERT_EXPIRY: Nanos = 90 * 24 * 3600 * NANOS_PER_SECOND;

    /// The spec a fresh swarm has after `docker swarm init`, as `GET /swarm` shows it.
    pub fn swarm_default() -> Self {
        SwarmSpec {
            name: Self::DEFAULT_NAME.into(),
            labels: Labels::new(),
            orchestration: OrchestrationConfig {
                task_history_retention_limit: Some(Self::DEFAULT_TASK_HISTORY_RETENTION_LIMIT),
            },
            raft: RaftConfig {
                snapshot_interval: Self::DEFAULT_SNAPSHOT_INTERVAL,
                keep_old_snapshots: Some(Self::DEFAULT_KEEP_OLD_SNAPSHOTS),
                log_entries_for_slow_followers: Self::DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
                election_tick: Self::DEFAULT_ELECTION_TICK,
                heartbeat_tick: Self::DEFAULT_HEARTBEAT_TICK,
            },
            dispatcher: DispatcherConfig {
                heartbeat_period: Self::DEFAULT_HEARTBEAT_PERIOD,
            },
            ca_config: CAConfig {
                node_cert_expiry: Self::DEFAULT_NODE_CERT_EXPIRY,
                ..Default::default()
            },
            task_defaults: TaskDefaults::default(),
            encryption_config: EncryptionConfig::default(),
        }
    }

    /// `swarm init` semantics: `self` (the request's spec) laid over `base` (normally
    /// [`SwarmSpec::swarm_default`]). Every non-zero / non-null field of `self` wins, a zero or
    /// null one keeps `base`'s value; `ForceRotate` and `AutoLockManagers` are taken as given,
    /// external CAs are appended.
    pub fn merged_onto(&self, base: &SwarmSpec) -> SwarmSpec {
        fn pick<T: Clone + Default + PartialEq>(over: &T, under: &T) -> T {
            if *over == T::default() {
                under.clone()
            } else {
                over.clone()
            }
        }
        let (o, b) = (self, base);
        let mut ca_config = b.ca_config.clone();
        ca_config.node_cert_expiry =
            pick(&o.ca_config.node_cert_expiry, &b.ca_config.node_cert_expiry);
        ca_config.signing_ca_cert =
            pick(&o.ca_config.signing_ca_cert, &b.ca_config.signing_ca_cert);
        ca_config.signing_ca_key = pick(&o.ca_config.signing_ca_key, &b.ca_config.signing_ca_key);
        ca_config.force_rotate = o.ca_config.force_rotate;
        ca_config
            .external_cas
            .extend(o.ca_config.external_cas.iter().cloned());
        SwarmSpec {
            name: pick(&o.name, &b.name),
            labels: pick(&o.labels, &b.labels),
            orchestration: OrchestrationConfig {
                task_history_retention_limit: o
                    .orchestration
                    .task_history_retention_limit
                    .or(b.orchestration.task_history_retention_limit),
            },
            raft: RaftConfig {
                snapshot_interval: pick(&o.raft.snapshot_interval, &b.raft.snapshot_interval),
                keep_old_snapshots: o.raft.keep_old_snapshots.or(b.raft.keep_old_snapshots),
                log_entries_for_slow_followers: pick(
                    &o.raft.log_entries_for_slow_followers,
                    &b.raft.log_entries_for_slow_followers,
                ),
                election_tick: pick(&o.raft.election_tick, &b.raft.election_tick),
                heartbeat_tick: pick(&o.raft.heartbeat_tick, &b.raft.heartbeat_tick),
            },
            dispatcher: DispatcherConfig {
                heartbeat_period: pick(
                    &o.dispatcher.heartbeat_period,
                    &b.dispatcher.heartbeat_period,
                ),
            },
            ca_config,
            task_defaults: TaskDefaults {
                log_driver: o
                    .task_defaults
                    .log_driver
                    .clone()
                    .or_else(|| b.task_defaults.log_driver.clone()),
            },
            encryption_config: o.encryption_config.clone(),
        }
    }

    /// The swarm's name (`default`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Old tasks kept per slot (unset: 5).
    pub fn task_history_retention_limit_or_default(&self) -> i64 {
        self.orchestration
            .task_history_retention_limit
            .unwrap_or(Self::DEFAULT_TASK_HISTORY_RETENTION_LIMIT)
    }

    /// Log entries between Raft snapshots (0: 10000).
    pub fn snapshot_interval_or_default(&self) -> u64 {
        nonzero_or(self.raft.snapshot_interval, Self::DEFAULT_SNAPSHOT_INTERVAL)
    }

    /// Old snapshots kept (unset: 0).
    pub fn keep_old_snapshots_or_default(&self) -> u64 {
        self.raft
            .keep_old_snapshots
            .unwrap_or(Self::DEFAULT_KEEP_OLD_SNAPSHOTS)
    }

    /// Entries kept after a snapshot for slow followers (0: 500).
    pub fn log_entries_for_slow_followers_or_default(&self) -> u64 {
        nonzero_or(
            self.raft.log_entries_for_slow_followers,
            Self::DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
        )
    }

    /// Raft election tick (0: 10).
    pub fn election_tick_or_default(&self) -> i64 {
        nonzero_or(self.raft.election_tick, Self::DEFAULT_ELECTION_TICK)
    }

    /// Raft heartbeat tick (0: 1).
    pub fn heartbeat_tick_or_default(&self) -> i64 {
        nonzero_or(self.raft.heartbeat_tick, Self::DEFAULT_HEARTBEAT_TICK)
    }

    /// Agent heartbeat period (0: 5 s).
    pub fn heartbeat_period_or_default(&self) -> Duration {
        nanos_to_duration(nonzero_or(
            self.dispatcher.heartbeat_period,
            Self::DEFAULT_HEARTBEAT_PERIOD,
        ))
    }

    /// Validity of node certificates (0: 90 days).
    pub fn node_cert_expiry_or_default(&self) -> Duration {
        nanos_to_duration(nonzero_or(
            self.ca_config.node_cert_expiry,
            Self::DEFAULT_NODE_CERT_EXPIRY,
        ))
    }

    /// Whether autolock is on.
    pub fn auto_lock_managers(&self) -> bool {
        self.encryption_config.auto_lock_managers
    }
}

fn nonzero_or<T: Default + PartialEq>(v: T, default: T) -> T {
    if is_zero(&v) {
        default
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{round_trip, round_trip_exact};
    use super::*;

    /// `GET /swarm` `.Spec` right after `docker swarm init` (docker-api.md §3.2, observed).
    const DEFAULT_AFTER_INIT: &str = r#"{"Name":"default","Labels":{},"Orchestration":{"TaskHistoryRetentionLimit":5},"Raft":{"SnapshotInterval":10000,"KeepOldSnapshots":0,"LogEntriesForSlowFollowers":500,"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{"HeartbeatPeriod":5000000000},"CAConfig":{"NodeCertExpiry":7776000000000000},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}}"#;

    #[test]
    fn default_spec_after_init_round_trips_byte_for_byte() {
        let spec: SwarmSpec = round_trip_exact(DEFAULT_AFTER_INIT);
        assert_eq!(spec, SwarmSpec::swarm_default());
        assert_eq!(spec.raft.keep_old_snapshots, Some(0));
        assert_eq!(spec.task_history_retention_limit_or_default(), 5);
        assert_eq!(
            spec.node_cert_expiry_or_default(),
            Duration::from_secs(90 * 86400)
        );
        assert_eq!(spec.heartbeat_period_or_default(), Duration::from_secs(5));
        assert_eq!(
            serde_json::to_string(&SwarmSpec::swarm_default()).unwrap(),
            DEFAULT_AFTER_INIT
        );
    }

    #[test]
    fn empty_spec_emits_struct_values_and_always_present_fields() {
        let out = serde_json::to_string(&SwarmSpec::default()).unwrap();
        assert_eq!(
            out,
            r#"{"Labels":{},"Orchestration":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0},"Dispatcher":{},"CAConfig":{},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}}"#
        );
    }

    #[test]
    fn docker_py_init_spec_with_nulls_merges_onto_defaults() {
        // docker-py's init body `Spec` (docker-api.md §5).
        let req: SwarmSpec = serde_json::from_str(
            r#"{"Raft":{"SnapshotInterval":5000,"KeepOldSnapshots":null,"LogEntriesForSlowFollowers":1200,"HeartbeatTick":null,"ElectionTick":null}}"#,
        )
        .unwrap();
        assert_eq!(req.raft.keep_old_snapshots, None);
        let merged = req.merged_onto(&SwarmSpec::swarm_default());
        assert_eq!(merged.name(), "default");
        assert_eq!(merged.raft.snapshot_interval, 5000);
        assert_eq!(merged.raft.log_entries_for_slow_followers, 1200);
        assert_eq!(merged.raft.election_tick, 10);
        assert_eq!(merged.raft.heartbeat_tick, 1);
        assert_eq!(merged.raft.keep_old_snapshots, Some(0));
        assert_eq!(merged.orchestration.task_history_retention_limit, Some(5));
    }

    #[test]
    fn cli_zero_ticks_mean_defaults_and_pointers_keep_zero() {
        let req: SwarmSpec = round_trip(
            r#"{"Labels":{},"Orchestration":{"TaskHistoryRetentionLimit":0},"Raft":{"ElectionTick":0,"HeartbeatTick":0},"Dispatcher":{},"CAConfig":{"NodeCertExpiry":7776000000000000,"ForceRotate":1},"TaskDefaults":{"LogDriver":{"Name":"json-file"}},"EncryptionConfig":{"AutoLockManagers":true}}"#,
        );
        assert_eq!(req.orchestration.task_history_retention_limit, Some(0));
        assert_eq!(req.election_tick_or_default(), 10);
        let merged = req.merged_onto(&SwarmSpec::swarm_default());
        assert_eq!(merged.orchestration.task_history_retention_limit, Some(0));
        assert_eq!(merged.raft.election_tick, 10);
        assert!(merged.auto_lock_managers());
        assert_eq!(merged.ca_config.force_rotate, 1);
        assert_eq!(merged.task_defaults.log_driver.unwrap().name, "json-file");
    }

    #[test]
    fn external_cas_round_trip() {
        let spec: SwarmSpec = round_trip_exact(
            r#"{"Name":"default","Labels":{"a":"b"},"Orchestration":{},"Raft":{"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{},"CAConfig":{"ExternalCAs":[{"Protocol":"cfssl","URL":"https://ca:8888","Options":{"k":"v"},"CACert":""}],"SigningCACert":"PEM"},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}}"#,
        );
        assert_eq!(spec.ca_config.external_cas[0].url, "https://ca:8888");
        assert_eq!(spec.labels["a"], "b");
    }

    #[test]
    fn get_swarm_shape_round_trips_through_the_cluster_object() {
        let json = format!(
            r#"{{"ID":"kq2wbv8hbyy1ezr8s3tmz1j5h","Version":{{"Index":10}},"CreatedAt":"2026-11-25T05:33:50Z","UpdatedAt":"2026-11-25T05:33:51Z","Spec":{DEFAULT_AFTER_INIT},"TLSInfo":{{"TrustRoot":"PEM","CertIssuerSubject":"MBMxETAPBgNVBAMTCHN3YXJtLWNh","CertIssuerPublicKey":"AQID"}},"RootRotationInProgress":false,"DefaultAddrPool":["10.0.0.0/8"],"SubnetSize":24,"DataPathPort":4789,"JoinTokens":{{"Worker":"SWMTKN-1-w","Manager":"SWMTKN-1-m"}}}}"#
        );
        let cluster: crate::model::Cluster = serde_json::from_str(&json).unwrap();
        assert_eq!(cluster.spec, SwarmSpec::swarm_default());
        assert_eq!(cluster.tls_info.trust_root, "PEM");
        let mut out = serde_json::to_value(&cluster).unwrap();
        // Internal: the CA key material, never shown by the API layer.
        assert!(out.as_object_mut().unwrap().remove("RootCA").is_some());
        assert_eq!(
            out,
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
    }
}
