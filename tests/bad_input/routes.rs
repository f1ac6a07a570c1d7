//! What a valid request to each route looks like: the route tables (the Docker API's, the
//! native API's from `shoal::native::http_routes`) and each route's valid body, which the
//! generators mutate.

use serde_json::{json, Value};

use crate::gen::{self, BodyGen};

/// What a route's valid body is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Base {
    None,
    Init,
    Join,
    Unlock,
    Swarm,
    Service,
    Node,
    Network,
    Secret,
    Config,
    Apply,
    Rollback,
}

/// The Docker API's routes (`shoal::api::routes`), plus paths it does not serve.
pub const DOCKER_ROUTES: &[(&str, &str, Base)] = &[
    ("GET", "/_ping", Base::None),
    ("HEAD", "/_ping", Base::None),
    ("GET", "/version", Base::None),
    ("GET", "/info", Base::None),
    ("GET", "/swarm", Base::None),
    ("POST", "/swarm/init", Base::Init),
    ("POST", "/swarm/join", Base::Join),
    ("POST", "/swarm/leave", Base::None),
    ("POST", "/swarm/update", Base::Swarm),
    ("GET", "/swarm/unlockkey", Base::None),
    ("POST", "/swarm/unlock", Base::Unlock),
    ("GET", "/services", Base::None),
    ("POST", "/services/create", Base::Service),
    ("GET", "/services/{service}", Base::None),
    ("DELETE", "/services/{service}", Base::None),
    ("POST", "/services/{service}/update", Base::Service),
    ("GET", "/services/{service}/logs", Base::None),
    ("GET", "/nodes", Base::None),
    ("GET", "/nodes/{node}", Base::None),
    ("DELETE", "/nodes/{node}", Base::None),
    ("POST", "/nodes/{node}/update", Base::Node),
    ("GET", "/tasks", Base::None),
    ("GET", "/tasks/{task}", Base::None),
    ("GET", "/tasks/{task}/logs", Base::None),
    ("GET", "/networks", Base::None),
    ("POST", "/networks/create", Base::Network),
    ("GET", "/networks/{network}", Base::None),
    ("DELETE", "/networks/{network}", Base::None),
    ("GET", "/secrets", Base::None),
    ("POST", "/secrets/create", Base::Secret),
    ("GET", "/secrets/{secret}", Base::None),
    ("DELETE", "/secrets/{secret}", Base::None),
    ("POST", "/secrets/{secret}/update", Base::Secret),
    ("GET", "/configs", Base::None),
    ("POST", "/configs/create", Base::Config),
    ("GET", "/configs/{config}", Base::None),
    ("DELETE", "/configs/{config}", Base::None),
    ("POST", "/configs/{config}/update", Base::Config),
    ("GET", "/events", Base::None),
    ("GET", "/distribution/{junk}/json", Base::None),
    ("GET", "/containers/json", Base::None),
    ("POST", "/{junk}", Base::None),
];

/// Native routes left out: they take no input, and a backup writes a snapshot of the whole
/// store per call (seconds each in a debug build).
const NATIVE_SKIP: &[&str] = &["/shoal/v1/backup"];

/// Paths under the native prefix that it does not serve (its routes come from
/// `shoal::native::http_routes`).
pub const NATIVE_EXTRA: &[(&str, &str, Base)] = &[
    ("GET", "/shoal/v1/{junk}", Base::None),
    ("POST", "/shoal/{junk}", Base::None),
];

/// The apply body around a compose file made from `file` (a mutated document, sent as JSON,
/// which is YAML too), or one of the YAML texts below.
pub fn apply_body(file: &BodyGen, base: &Value, suffix: u16) -> Vec<u8> {
    let compose = compose_base(suffix);
    let content = match file.value(&compose) {
        Some(doc) if !suffix.is_multiple_of(3) => {
            let mut doc = doc;
            gen::clamp_counts(&mut doc);
            doc.to_string()
        }
        _ => YAML_TEXTS[suffix as usize % YAML_TEXTS.len()].to_string(),
    };
    let mut body = base.clone();
    body["files"] = json!([{"name": "compose.yaml", "content": content}]);
    serde_json::to_vec(&body).unwrap()
}

/// YAML that only YAML can say: anchors and alias bombs, merge keys, tags, duplicate keys,
/// tabs, interpolation edge cases, documents and directives.
pub const YAML_TEXTS: &[&str] = &[
    "",
    "---\n...\n",
    "services:\n  a: &a\n    image: busybox\n  b: *a\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nservices: {}\n",
    "services:\n  a:\n    <<: {image: busybox}\n    <<: {image: alpine}\n",
    "services:\n  a:\n    image: busybox\n  a:\n    image: alpine\n",
    "services:\n  a: !!binary aGVsbG8=\n",
    "services:\n  a: !custom {image: busybox}\n",
    "services:\n\ta:\n\t\timage: busybox\n",
    "services:\n  a:\n    image: ${IMAGE:?image must be set}\n",
    "services:\n  a:\n    image: ${IMAGE:-${NESTED:-${DEEP}}}\n",
    "services:\n  a:\n    image: busybox\n    command: $${x} ${ ${}\n",
    "%YAML 1.1\n---\nservices: {a: {image: busybox, deploy: {replicas: 0o7}}}\n",
    "services: {a: {image: busybox, deploy: {replicas: -1}}}\n",
    "services: {a: {image: busybox, deploy: {replicas: 1.5}}}\n",
    "services: {a: {image: busybox, deploy: {replicas: 99999999999999999999999}}}\n",
    "services: {a: {image: busybox, ports: [\"99999:80\", \"a:b\", \"1-2:3-9\"]}}\n",
    "services: {a: {image: busybox, deploy: {resources: {limits: {cpus: \"-1\", memory: 1Q}}}}}\n",
    "services: {a: {image: busybox, healthcheck: {interval: 1y, timeout: -5s}}}\n",
    "services: {a: {image: busybox, secrets: [nope], configs: [{source: nope, mode: 0o7777}]}}\n",
    "services: {a: {image: busybox, env_file: [/etc/passwd, ../../x]}}\n",
    "services: {a: {image: busybox, volumes: [\"/:/host\", \"::\", \"a:b:c:d\"]}}\n",
    "services: {a: {image: busybox, extends: {service: a}}}\n",
    "include: [other.yaml]\nservices: {}\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a:",
    "? [a, b]\n: c\nservices: {}\n",
    "services: 12\n",
    "services: [a, b]\n",
    "version: '1'\nservices: {a: {image: busybox}}\n",
    "\u{feff}services: {}\n",
];

/// Each route's valid body (`Value::Null` for routes that take none).
pub fn base_body(base: Base, suffix: u16, target_name: Option<&str>) -> Value {
    let name = |kind: &str| {
        target_name
            .map(str::to_string)
            .unwrap_or_else(|| format!("fz-{kind}-{suffix}"))
    };
    match base {
        Base::None => Value::Null,
        Base::Init => json!({
            "ListenAddr": "127.0.0.1:0", "AdvertiseAddr": "127.0.0.1:2377",
            "ForceNewCluster": false, "AutoLockManagers": false,
            "Spec": {"Name": "default"}
        }),
        Base::Join => json!({
            "ListenAddr": "127.0.0.1:0", "AdvertiseAddr": "127.0.0.1",
            "RemoteAddrs": ["127.0.0.1:1"],
            "JoinToken": "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
        }),
        Base::Unlock => {
            json!({"UnlockKey": "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8"})
        }
        Base::Swarm => json!({
            "Name": "default", "Labels": {"fz": "1"},
            "Orchestration": {"TaskHistoryRetentionLimit": 5},
            "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0,
                     "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1},
            "Dispatcher": {"HeartbeatPeriod": 5_000_000_000u64},
            "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000u64},
            "EncryptionConfig": {"AutoLockManagers": false},
            "TaskDefaults": {}
        }),
        Base::Service => json!({
            "Name": name("svc"), "Labels": {"fz": "1"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "shoal-test/busybox:1", "Command": ["sleep", "3600"],
                    "Env": ["A=1"], "Mounts": [{"Type": "tmpfs", "Target": "/tmp"}],
                    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000u64}
                },
                "Resources": {"Limits": {"NanoCPUs": 100_000_000u64, "MemoryBytes": 10_485_760u64}},
                "RestartPolicy": {"Condition": "on-failure", "Delay": 1_000_000_000u64, "MaxAttempts": 3},
                "Placement": {"Constraints": ["node.role==manager"],
                              "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]},
                "Networks": [{"Target": "fz-seed-net"}]
            },
            "Mode": {"Replicated": {"Replicas": 1}},
            "UpdateConfig": {"Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Order": "stop-first"},
            "RollbackConfig": {"Parallelism": 1},
            "EndpointSpec": {"Mode": "vip",
                             "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 30000 + suffix % 2000, "PublishMode": "ingress"}]}
        }),
        Base::Node => json!({"Labels": {"zone": "a"}, "Role": "manager", "Availability": "active"}),
        Base::Network => json!({
            "Name": name("net"), "Driver": "overlay", "Attachable": true, "Labels": {}, "Options": {},
            "IPAM": {"Driver": "default",
                     "Config": [{"Subnet": format!("10.123.{}.0/24", suffix % 256),
                                 "Gateway": format!("10.123.{}.1", suffix % 256)}]}
        }),
        // An update may only change the labels.
        Base::Secret | Base::Config if target_name.is_some() => {
            json!({"Name": name(""), "Labels": {"a": "b"}})
        }
        Base::Secret => json!({"Name": name("secret"), "Labels": {"a": "b"}, "Data": "c2VjcmV0"}),
        Base::Config => json!({"Name": name("config"), "Labels": {"a": "b"}, "Data": "Y29uZmln"}),
        Base::Apply => json!({
            "files": [{"name": "compose.yaml", "content": compose_base(suffix).to_string()}],
            "env": {"TAG": "1"}, "attachments": {"./s.txt": "aGk="},
            "working_dir": "/tmp", "prune": false, "dry_run": false,
            "applied_by": "fuzz@test"
        }),
        Base::Rollback => json!({"to": 1, "dry_run": false, "applied_by": "fuzz@test"}),
    }
}

/// A valid compose file with most of what a stack can hold.
pub fn compose_base(suffix: u16) -> Value {
    json!({
        "services": {
            "web": {
                "image": "shoal-test/busybox:${TAG:-1}",
                "command": ["sleep", "3600"],
                "deploy": {"replicas": 1, "resources": {"limits": {"cpus": "0.5", "memory": "50M"}},
                           "restart_policy": {"condition": "on-failure"},
                           "update_config": {"parallelism": 1}},
                "ports": [format!("{}:80", 32000 + suffix % 2000)],
                "environment": {"A": "1"},
                "networks": ["front"],
                "secrets": ["s"],
                "configs": ["c"],
                "healthcheck": {"test": ["CMD", "true"], "interval": "10s"}
            }
        },
        "networks": {"front": {"driver": "overlay"}},
        "secrets": {"s": {"file": "./s.txt"}},
        "configs": {"c": {"file": "./s.txt"}}
    })
}

pub fn docker_routes() -> Vec<(&'static str, String, Base)> {
    DOCKER_ROUTES
        .iter()
        .map(|(m, p, b)| (*m, p.to_string(), *b))
        .collect()
}

pub fn native_routes() -> Vec<(&'static str, String, Base)> {
    let mut routes: Vec<(&'static str, String, Base)> =
        shoal::native::http_routes::<shoal_store::Store>()
            .into_iter()
            .filter(|r| !NATIVE_SKIP.contains(&r.path))
            .map(|r| {
                let base = if r.path.ends_with("/plan") || r.path.ends_with("/apply") {
                    Base::Apply
                } else if r.path.ends_with("/rollback") {
                    Base::Rollback
                } else {
                    Base::None
                };
                let method: &'static str = if r.method == axum::http::Method::POST {
                    "POST"
                } else {
                    "GET"
                };
                (method, r.path.to_string(), base)
            })
            .collect();
    routes.extend(NATIVE_EXTRA.iter().map(|(m, p, b)| (*m, p.to_string(), *b)));
    routes
}
