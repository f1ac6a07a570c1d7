//! Go's key matching on every request body type the API decodes.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use shoal_store::model::{
    ConfigSpec, NetworkSpec, NodeAvailability, NodeRole, NodeSpec, SecretSpec, ServiceModeKind,
    ServiceSpec, SwarmSpec,
};

use super::{fold_eq, from_slice, from_value};
use crate::node::{InitRequest, JoinSwarmRequest};

/// Keys whose values are maps in Docker's types: their keys are data and keep their case.
const MAP_VALUED: &[&str] = &[
    "Labels",
    "Options",
    "DriverOpts",
    "Sysctls",
    "AuxiliaryAddresses",
];

/// `v` with every struct field name re-cased by `case` (map keys under [`MAP_VALUED`] fields
/// are left alone, their values too).
fn recase(v: &Value, case: fn(&str) -> String) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if MAP_VALUED.contains(&k.as_str()) {
                        v.clone()
                    } else {
                        recase(v, case)
                    };
                    (case(k), v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| recase(v, case)).collect()),
        scalar => scalar.clone(),
    }
}

fn lower(k: &str) -> String {
    k.to_lowercase()
}

fn upper(k: &str) -> String {
    k.to_uppercase()
}

/// docker-py's spelling: the first letter lower-cased (`replicated`, `taskTemplate`).
fn lower_first(k: &str) -> String {
    let mut c = k.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Fails unless every object key of `sample` (at every depth) is present in `decoded`, i.e. the
/// sample only uses fields the type really has, so folding them is a real test.
fn assert_fields_exist(sample: &Value, decoded: &Value, path: &str) {
    match (sample, decoded) {
        (Value::Object(s), Value::Object(d)) => {
            for (k, v) in s {
                let Some(dv) = d.get(k) else {
                    panic!(
                        "{path}.{k} of the sample is not a field of the decoded type: {decoded}"
                    );
                };
                assert_fields_exist(v, dv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(s), Value::Array(d)) => {
            assert_eq!(s.len(), d.len(), "{path}: array length");
            for (i, (sv, dv)) in s.iter().zip(d).enumerate() {
                assert_fields_exist(sv, dv, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

/// Decodes `sample` as sent and in three other spellings of its field names; all four must give
/// the same value, and that value must use every field of the sample.
fn decodes_in_any_case<T>(sample: Value) -> T
where
    T: DeserializeOwned + Serialize,
{
    let exact: T = from_value(sample.clone()).expect("the sample decodes");
    let exact_json = serde_json::to_value(&exact).unwrap();
    assert_fields_exist(&sample, &exact_json, "");
    for case in [lower as fn(&str) -> String, upper, lower_first] {
        let variant = recase(&sample, case);
        assert_ne!(variant, sample, "re-casing changed nothing");
        let bytes = serde_json::to_vec(&variant).unwrap();
        let decoded: T = from_slice(&bytes).expect("the re-cased sample decodes");
        assert_eq!(
            serde_json::to_value(&decoded).unwrap(),
            exact_json,
            "decoding {variant}"
        );
    }
    exact
}

/// The same for types that are only ever decoded (compared by their `Debug` form).
fn decodes_in_any_case_debug<T: DeserializeOwned + std::fmt::Debug>(sample: Value) -> T {
    let exact: T = from_value(sample.clone()).expect("the sample decodes");
    for case in [lower as fn(&str) -> String, upper, lower_first] {
        let decoded: T = from_value(recase(&sample, case)).unwrap();
        assert_eq!(format!("{decoded:?}"), format!("{exact:?}"));
    }
    exact
}

#[test]
fn service_spec_fields_match_in_any_case() {
    let spec: ServiceSpec = decodes_in_any_case(json!({
        "Name": "web",
        "Labels": {"Com.Example.Team": "Blue"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "busybox:latest",
                "Labels": {"Tier": "Front"},
                "Command": ["sleep"],
                "Args": ["60"],
                "Env": ["A=1"],
                "Dir": "/tmp",
                "User": "nobody",
                "Mounts": [{
                    "Type": "volume", "Source": "data", "Target": "/data",
                    "VolumeOptions": {
                        "NoCopy": true,
                        "Labels": {"Keep": "Case"},
                        "DriverConfig": {"Name": "local", "Options": {"Type": "tmpfs"}}
                    }
                }],
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000, "Retries": 3},
                "DNSConfig": {"Nameservers": ["10.0.0.2"], "Options": ["ndots:2"]},
                "Secrets": [{
                    "File": {"Name": "token", "UID": "0", "GID": "0", "Mode": 292},
                    "SecretID": "s1", "SecretName": "token"
                }],
                "Sysctls": {"net.core.somaxconn": "1024"}
            },
            "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 1_048_576}},
            "RestartPolicy": {"Condition": "on-failure", "Delay": 5_000_000_000_i64, "MaxAttempts": 3},
            "Placement": {
                "Constraints": ["node.role==manager"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
            },
            "LogDriver": {"Name": "json-file", "Options": {"Max-Size": "1m"}},
            "ForceUpdate": 2
        },
        "Mode": {"Replicated": {"Replicas": 5}},
        "UpdateConfig": {"Parallelism": 2, "Delay": 1000, "FailureAction": "pause", "Order": "start-first"},
        "RollbackConfig": {"Parallelism": 1, "Order": "stop-first"},
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]
        }
    }));
    assert_eq!(spec.replicas(), Some(5));
    // Map keys are data: they keep their case.
    assert_eq!(spec.labels["Com.Example.Team"], "Blue");
    let c = spec.task_template.container_spec.as_ref().unwrap();
    assert_eq!(c.labels["Tier"], "Front");
    assert_eq!(c.sysctls["net.core.somaxconn"], "1024");
}

#[test]
fn docker_py_lower_case_modes_are_understood() {
    // What docker-py 7.1.0 sends for `ServiceMode('replicated', 5)` and `ServiceMode('global')`.
    let replicated: ServiceSpec = from_slice(
        br#"{"Name":"r","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"replicated":{"Replicas":5}}}"#,
    )
    .unwrap();
    assert_eq!(replicated.replicas(), Some(5));
    let global: ServiceSpec = from_slice(
        br#"{"Name":"g","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"global":{}}}"#,
    )
    .unwrap();
    assert_eq!(global.mode_kind(), ServiceModeKind::Global);
}

#[test]
fn swarm_spec_fields_match_in_any_case() {
    let spec: SwarmSpec = decodes_in_any_case(json!({
        "Name": "default",
        "Labels": {"Owner": "Ops"},
        "Orchestration": {"TaskHistoryRetentionLimit": 7},
        "Raft": {"SnapshotInterval": 5000, "LogEntriesForSlowFollowers": 600, "ElectionTick": 10, "HeartbeatTick": 1},
        "Dispatcher": {"HeartbeatPeriod": 5_000_000_000_i64},
        "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000_i64},
        "TaskDefaults": {"LogDriver": {"Name": "json-file", "Options": {"Max-File": "3"}}},
        "EncryptionConfig": {"AutoLockManagers": false}
    }));
    assert_eq!(spec.orchestration.task_history_retention_limit, Some(7));
    assert_eq!(spec.labels["Owner"], "Ops");
}

#[test]
fn node_spec_fields_match_in_any_case() {
    let spec: NodeSpec = decodes_in_any_case(json!({
        "Name": "n1", "Labels": {"Zone": "A"}, "Role": "manager", "Availability": "drain"
    }));
    assert_eq!(spec.role, Some(NodeRole::Manager));
    assert_eq!(spec.availability, Some(NodeAvailability::Drain));
    assert_eq!(spec.labels["Zone"], "A");
}

#[test]
fn secret_and_config_specs_match_in_any_case() {
    let secret: SecretSpec = decodes_in_any_case(json!({
        "Name": "token", "Labels": {"K": "V"}, "Data": "czNjcjN0",
        "Templating": {"Name": "golang"}
    }));
    assert_eq!(secret.data, b"s3cr3t");
    let config: ConfigSpec = decodes_in_any_case(json!({
        "Name": "cfg", "Labels": {"K": "V"}, "Data": "YQ=="
    }));
    assert_eq!(config.data, b"a");
}

#[test]
fn network_create_fields_match_in_any_case() {
    let spec: NetworkSpec = decodes_in_any_case(json!({
        "Name": "backend", "Driver": "overlay", "Attachable": true, "Internal": false,
        "IPAM": {
            "Driver": "default",
            "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1", "AuxiliaryAddresses": {"Host1": "10.9.0.5"}}],
            "Options": {"Opt": "V"}
        },
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "Labels": {"Team": "X"}
    }));
    assert!(spec.attachable);
    assert_eq!(spec.options["com.docker.network.driver.mtu"], "1400");
}

#[test]
fn swarm_init_and_join_requests_match_in_any_case() {
    let init: InitRequest = decodes_in_any_case_debug(json!({
        "ListenAddr": "127.0.0.1:2377", "AdvertiseAddr": "127.0.0.1", "DataPathPort": 4789,
        "ForceNewCluster": false, "Availability": "active", "SubnetSize": 24,
        "DefaultAddrPool": ["10.20.0.0/16"],
        "Spec": {"Orchestration": {"TaskHistoryRetentionLimit": 3}}
    }));
    assert_eq!(init.listen_addr, "127.0.0.1:2377");
    assert_eq!(
        init.spec
            .unwrap()
            .orchestration
            .task_history_retention_limit,
        Some(3)
    );
    let join: JoinSwarmRequest = decodes_in_any_case_debug(json!({
        "ListenAddr": "127.0.0.1:2378", "AdvertiseAddr": "127.0.0.1:2378",
        "RemoteAddrs": ["127.0.0.1:2377"], "JoinToken": "SWMTKN-1-x", "Availability": "active"
    }));
    assert_eq!(join.remote_addrs.unwrap(), ["127.0.0.1:2377"]);
}

#[derive(Debug, Deserialize, PartialEq)]
struct TwoSpellings {
    #[serde(rename = "ID", default)]
    upper: u32,
    #[serde(rename = "Id", default)]
    mixed: u32,
}

#[test]
fn exact_names_win_and_otherwise_the_first_folding_field() {
    let exact: TwoSpellings = from_slice(br#"{"Id": 2}"#).unwrap();
    assert_eq!(exact, TwoSpellings { upper: 0, mixed: 2 });
    let folded: TwoSpellings = from_slice(br#"{"id": 3}"#).unwrap();
    assert_eq!(folded, TwoSpellings { upper: 3, mixed: 0 });
}

#[test]
fn the_last_of_several_spellings_wins_and_objects_merge() {
    let spec: ServiceSpec = from_slice(
        br#"{"Name":"a","name":"b","Mode":{"Replicated":{"Replicas":1}},"mode":{"replicated":{"replicas":4}}}"#,
    )
    .unwrap();
    assert_eq!(spec.name, "b");
    assert_eq!(spec.replicas(), Some(4));
    let labels: ServiceSpec = from_slice(br#"{"Labels":{"a":"1"},"labels":{"b":"2"}}"#).unwrap();
    assert_eq!(labels.labels.len(), 2, "Go decodes both into the one map");
}

#[test]
fn map_keys_are_never_folded() {
    let spec: ServiceSpec = from_slice(br#"{"Labels":{"name":"x","NAME":"y"}}"#).unwrap();
    assert!(spec.name.is_empty());
    assert_eq!(spec.labels["name"], "x");
    assert_eq!(spec.labels["NAME"], "y");
}

#[test]
fn folding_follows_unicode_case_folding() {
    assert!(fold_eq("Kind", "kind"));
    assert!(fold_eq("Kind", "\u{212A}ind"), "the Kelvin sign folds to k");
    assert!(fold_eq("Spec", "\u{17F}pec"), "the long s folds to s");
    assert!(!fold_eq("Spec", "Spe"));
}

#[test]
fn syntax_and_type_errors_are_still_errors() {
    assert!(from_slice::<ServiceSpec>(b"{").is_err());
    assert!(from_slice::<ServiceSpec>(br#"{"mode":{"replicated":{"replicas":"five"}}}"#).is_err());
}
