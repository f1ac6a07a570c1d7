//! Bad input at the HTTP listeners (issue 20, deliverable 6): property tests that send random
//! and nearly valid requests to the Docker API and to shoal's native API (HTTP and its gRPC
//! watch, all served on the API sockets) of a real one-manager swarm, in process.
//!
//! Every request must be answered without a panic, errors must be JSON with a message, and a
//! rejected request must leave the store as it was (see `bad_input/harness.rs` for the oracles).
//! Requests are built from the real route table with random methods, version prefixes, object
//! references (existing ids, names, prefixes, junk and broken escapes), query strings, headers
//! and bodies (random bytes, random JSON, deep nesting, broken JSON, and each route's valid body
//! with a few random mutations: wrong types, removed fields, case-folded keys, huge numbers).
//!
//! The cases are bounded and seeded (`SHOAL_FUZZ_CASES`, `SHOAL_FUZZ_SEED` change them), so a
//! run is the same every time and takes seconds; a longer search is
//! `SHOAL_FUZZ_CASES=5000 SHOAL_FUZZ_SEED=$RANDOM cargo nextest run --test bad_input`.

#[path = "bad_input/gen.rs"]
mod gen;
#[path = "bad_input/harness.rs"]
mod harness;

use gen::{BodyGen, ObjRef, QueryValue};
use harness::{objects_of, Call, Harness};
use proptest::prelude::*;
use serde_json::{json, Value};
use shoal_proto::watch as pb;
use shoal_store::model::Kind;
use shoal_store::View;

/// What a route's valid body is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Base {
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
const DOCKER_ROUTES: &[(&str, &str, Base)] = &[
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

/// Paths under the native prefix that it does not serve (its routes come from
/// `shoal::native::http_routes`).
const NATIVE_EXTRA: &[(&str, &str, Base)] = &[
    ("GET", "/shoal/v1/{junk}", Base::None),
    ("POST", "/shoal/{junk}", Base::None),
];

/// One HTTP request before this run's object ids are filled in.
#[derive(Clone, Debug)]
struct HttpCase {
    route: usize,
    method: String,
    version: String,
    refs: Vec<ObjRef>,
    tail: Option<String>,
    query: Vec<(String, QueryValue)>,
    content_type: Option<String>,
    registry_auth: Option<String>,
    body: BodyGen,
    suffix: u16,
    /// Updates: send the object's current version first, so most get past the version check.
    with_version: bool,
}

/// A request for one of `routes`.
fn http_case(
    routes: Vec<(&'static str, String, Base)>,
    versioned: bool,
) -> BoxedStrategy<HttpCase> {
    let n = routes.len();
    (0..n)
        .prop_flat_map(move |route| {
            let (method, _, base) = routes[route].clone();
            (
                Just(route),
                gen::method(method),
                if versioned {
                    gen::version_prefix().boxed()
                } else {
                    prop_oneof![9 => Just(String::new()), 1 => gen::version_prefix()].boxed()
                },
                proptest::collection::vec(gen::obj_ref(), 2),
                gen::tail(),
                gen::query(),
                gen::content_type(),
                gen::registry_auth(),
                gen::body(base != Base::None),
                any::<u16>(),
                prop_oneof![4 => Just(true), 1 => Just(false)],
            )
        })
        .prop_map(
            |(
                route,
                method,
                version,
                refs,
                tail,
                query,
                content_type,
                registry_auth,
                body,
                suffix,
                with_version,
            )| {
                HttpCase {
                    route,
                    method,
                    version,
                    refs,
                    tail,
                    query,
                    content_type,
                    registry_auth,
                    body,
                    suffix,
                    with_version,
                }
            },
        )
        .boxed()
}

/// The object a path placeholder names.
fn placeholder_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "service" => Kind::Service,
        "node" => Kind::Node,
        "task" => Kind::Task,
        "network" => Kind::Network,
        "secret" => Kind::Secret,
        "config" => Kind::Config,
        "name" => Kind::Stack,
        _ => return None,
    })
}

/// Fills `case` in against the store as it is now.
fn build(
    case: &HttpCase,
    routes: &[(&'static str, String, Base)],
    view: &View,
    native: bool,
) -> Call {
    let (_, template, base) = &routes[case.route];
    let mut path = case.version.clone();
    // The object the path names (for its name in update bodies and its version in the query).
    let mut target: Option<(String, u64)> = None;
    let mut refs = case.refs.iter();
    for segment in template.split('/').skip(1) {
        path.push('/');
        let Some(placeholder) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            path.push_str(segment);
            continue;
        };
        let r = refs.next().expect("two references per case");
        let objects = placeholder_kind(placeholder)
            .map(|k| objects_of(view, k))
            .unwrap_or_default();
        let existing = match r {
            ObjRef::Id(i) | ObjRef::Name(i) | ObjRef::Prefix(i, _) if !objects.is_empty() => {
                Some(&objects[i % objects.len()])
            }
            _ => None,
        };
        let rendered = match (r, existing) {
            // Stack revisions are named by their number: a few that exist, and others.
            (ObjRef::Id(i) | ObjRef::Name(i) | ObjRef::Prefix(i, _), _)
                if placeholder == "number" =>
            {
                (i % 4).to_string()
            }
            (ObjRef::Id(_), Some((id, name, version))) => {
                target = Some((name.clone(), *version));
                gen::encode(id)
            }
            (ObjRef::Name(_), Some((_, name, version))) => {
                target = Some((name.clone(), *version));
                gen::encode(name)
            }
            (ObjRef::Prefix(_, n), Some((id, name, version))) => {
                target = Some((name.clone(), *version));
                gen::encode(&id.chars().take(*n).collect::<String>())
            }
            (ObjRef::Raw(raw), _) => raw.to_string(),
            (ObjRef::Junk(s), _) => gen::encode(s),
            _ => "nothing-here".to_string(),
        };
        path.push_str(&rendered);
    }
    if let Some(tail) = &case.tail {
        path.push_str(tail);
    }
    let swarm_version = objects_of(view, Kind::Cluster)
        .first()
        .map(|c| c.2)
        .unwrap_or_default();
    let version = match template.as_str() {
        "/swarm/update" => swarm_version,
        _ => target.as_ref().map(|t| t.1).unwrap_or(swarm_version),
    };
    let current = (template.ends_with("/update") && case.with_version)
        .then(|| ("version".to_string(), QueryValue::CurrentVersion));
    let query: Vec<String> = current
        .iter()
        .chain(&case.query)
        .map(|(k, v)| {
            let v = match v {
                QueryValue::CurrentVersion => version.to_string(),
                QueryValue::Bool(b) => gen::encode(b),
                QueryValue::Filters(f) => gen::encode(&f.to_string()),
                QueryValue::Text(t) => gen::encode(t),
                QueryValue::Raw(r) => return format!("{}={r}", gen::encode(k)),
            };
            format!("{}={}", gen::encode(k), v)
        })
        .collect();
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let mut headers = Vec::new();
    if let Some(ct) = &case.content_type {
        headers.push(("content-type".to_string(), ct.clone()));
    }
    if let Some(auth) = &case.registry_auth {
        headers.push(("x-registry-auth".to_string(), auth.clone()));
    }
    let target_name = target.map(|t| t.0);
    let base_body = base_body(*base, case.suffix, target_name.as_deref());
    let body = match (*base, &case.body) {
        // Compose files travel inside the apply body: half of the mutations are the file's.
        (Base::Apply, b @ BodyGen::Plausible(_)) if case.suffix.is_multiple_of(2) => {
            apply_body(b, &base_body, case.suffix)
        }
        (_, b) => b.render(&base_body),
    };
    let may_wait = ["/events", "/logs", "/watch", "/wait"]
        .iter()
        .any(|w| template.ends_with(w));
    Call {
        method: case.method.clone(),
        uri,
        headers,
        body,
        may_wait,
        // A version prefix is the Docker API's: its version layer answers in Docker's form.
        native: native && case.version.is_empty(),
        grpc: false,
        label: format!("{} {template}", routes[case.route].0),
    }
}

/// The apply body around a compose file made from `file` (a mutated document, sent as JSON,
/// which is YAML too), or one of the YAML texts below.
fn apply_body(file: &BodyGen, base: &Value, suffix: u16) -> Vec<u8> {
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
const YAML_TEXTS: &[&str] = &[
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
fn base_body(base: Base, suffix: u16, target_name: Option<&str>) -> Value {
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
fn compose_base(suffix: u16) -> Value {
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

/// Creates what the requests name when it is missing (an earlier request may have removed it):
/// a service, a network, a secret, a config and a stack.
fn seed(h: &Harness) {
    h.rt.block_on(async {
        let store = h.manager_store().await;
        let view = store.view();
        let has = |kind: Kind, name: &str| objects_of(&view, kind).iter().any(|o| o.1 == name);
        let mut created = false;
        if !has(Kind::Network, "fz-seed-net") {
            let body = json!({"Name": "fz-seed-net", "Driver": "overlay", "Attachable": true});
            expect_created(h.call_ok("POST", "/networks/create", body).await);
            created = true;
        }
        if !has(Kind::Service, "fz-seed") {
            let body = json!({
                "Name": "fz-seed",
                "TaskTemplate": {"ContainerSpec": {"Image": "shoal-test/busybox:1",
                                                   "Command": ["sleep", "3600"]}},
                "Mode": {"Replicated": {"Replicas": 1}}
            });
            expect_created(h.call_ok("POST", "/services/create", body).await);
            created = true;
        }
        for (kind, route) in [
            (Kind::Secret, "/secrets/create"),
            (Kind::Config, "/configs/create"),
        ] {
            let name = format!("fz-seed-{}", route.split('/').nth(1).unwrap());
            if !has(kind, &name) {
                let body = json!({"Name": name, "Data": "c2VlZA=="});
                expect_created(h.call_ok("POST", route, body).await);
                created = true;
            }
        }
        if !has(Kind::Stack, "fz-seed-stack") {
            let compose = json!({"services": {"app": {"image": "shoal-test/busybox:1",
                                                      "command": ["sleep", "3600"]}}});
            let body = json!({"files": [{"name": "compose.yaml", "content": compose.to_string()}],
                              "applied_by": "fuzz@test"});
            expect_created(
                h.call_ok("POST", "/shoal/v1/stacks/fz-seed-stack/apply", body)
                    .await,
            );
            created = true;
        }
        if created {
            h.settle(&store).await;
        }
    });
}

fn expect_created(a: harness::Answer) {
    assert!(a.status.is_success(), "seeding: {a:?}");
}

fn docker_routes() -> Vec<(&'static str, String, Base)> {
    DOCKER_ROUTES
        .iter()
        .map(|(m, p, b)| (*m, p.to_string(), *b))
        .collect()
}

fn native_routes() -> Vec<(&'static str, String, Base)> {
    let mut routes: Vec<(&'static str, String, Base)> =
        shoal::native::http_routes::<shoal_store::Store>()
            .into_iter()
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

/// The Docker API answers every request, errors as JSON, and a refused request writes nothing.
#[test]
fn the_docker_api_survives_bad_input_and_refusals_write_nothing() {
    let h = Harness::start();
    let routes = docker_routes();
    let mut runner = harness::runner(harness::cases(384));
    let result = runner.run(&http_case(routes.clone(), true), |case| {
        seed(&h);
        let view = h.rt.block_on(h.manager_store()).view();
        h.check(&build(&case, &routes, &view, false))
    });
    h.report("docker API");
    h.stop();
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A gRPC call to the native watch service on the API socket: its method, content type and
/// length-prefixed frames (valid messages with random fields, or random bytes, with honest or
/// lying lengths and compression flags).
#[derive(Clone, Debug)]
struct GrpcCase {
    method: String,
    content_type: String,
    frames: Vec<(u8, Option<u32>, Payload)>,
}

#[derive(Clone, Debug)]
enum Payload {
    Bytes(Vec<u8>),
    Watch(pb::WatchRequest),
    WaitFor(pb::WaitForRequest),
}

fn watch_request() -> impl Strategy<Value = pb::WatchRequest> {
    let strings = || proptest::collection::vec(gen::nasty_string(), 0..3);
    let filter = (
        strings(),
        strings(),
        strings(),
        gen::nasty_string(),
        gen::nasty_string(),
        gen::nasty_string(),
    )
        .prop_map(
            |(kinds, actions, labels, stack, name_prefix, node)| pb::Filter {
                kinds,
                actions,
                stack,
                labels,
                name_prefix,
                node,
            },
        );
    let start = prop_oneof![
        Just(None),
        Just(Some(pb::watch_request::Start::Now(pb::StartNow {}))),
        any::<u64>().prop_map(|r| Some(pb::watch_request::Start::AfterRevision(r))),
        (0u64..40).prop_map(|r| Some(pb::watch_request::Start::AfterRevision(r))),
    ];
    (
        proptest::option::of(filter),
        start,
        prop_oneof![Just(0u64), any::<u64>(), 0u64..40],
        prop_oneof![Just(0u32), any::<u32>(), 1u32..10],
        prop_oneof![Just(0u32), any::<u32>(), 1u32..4],
    )
        .prop_map(
            |(filter, start, min_revision, progress_interval_ms, buffer)| pb::WatchRequest {
                filter,
                start,
                min_revision,
                progress_interval_ms,
                buffer,
            },
        )
}

fn grpc_case() -> impl Strategy<Value = GrpcCase> {
    let payload = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Payload::Bytes),
        watch_request().prop_map(Payload::Watch),
        (any::<u64>(), prop_oneof![any::<u32>(), 0u32..50]).prop_map(|(revision, timeout_ms)| {
            Payload::WaitFor(pb::WaitForRequest {
                revision,
                timeout_ms,
            })
        }),
    ];
    let frame = (
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => any::<u8>()],
        prop_oneof![8 => Just(None), 1 => any::<u32>().prop_map(Some), 1 => (0u32..8).prop_map(Some)],
        payload,
    );
    (
        prop_oneof![
            3 => Just("Watch".to_string()),
            2 => Just("CurrentRevision".to_string()),
            3 => Just("WaitFor".to_string()),
            1 => "[A-Za-z]{0,8}",
        ],
        prop_oneof![
            8 => Just("application/grpc".to_string()),
            1 => Just("application/grpc+json".to_string()),
            1 => Just("application/json".to_string()),
        ],
        proptest::collection::vec(frame, 0..3),
    )
        .prop_map(|(method, content_type, frames)| GrpcCase {
            method,
            content_type,
            frames,
        })
}

impl GrpcCase {
    fn call(&self) -> Call {
        use prost::Message;
        let mut body = Vec::new();
        for (flag, len, payload) in &self.frames {
            let bytes = match payload {
                Payload::Bytes(b) => b.clone(),
                Payload::Watch(w) => w.encode_to_vec(),
                Payload::WaitFor(w) => w.encode_to_vec(),
            };
            body.push(*flag);
            body.extend_from_slice(&len.unwrap_or(bytes.len() as u32).to_be_bytes());
            body.extend_from_slice(&bytes);
        }
        Call {
            method: "POST".into(),
            uri: format!("/shoal.watch.v1.Watch/{}", self.method),
            headers: vec![
                ("content-type".into(), self.content_type.clone()),
                ("te".into(), "trailers".into()),
            ],
            body,
            // A watch streams; WaitFor waits.
            may_wait: true,
            native: false,
            grpc: true,
            label: format!("gRPC {}", self.method),
        }
    }
}

#[derive(Clone, Debug)]
enum NativeCase {
    Http(HttpCase),
    Grpc(GrpcCase),
}

/// The native API (HTTP routes and the gRPC watch on the API socket) answers every request,
/// errors as `{"code", "message"}`, and a refused request writes nothing.
#[test]
fn the_native_api_survives_bad_input_and_refusals_write_nothing() {
    let h = Harness::start();
    let routes = native_routes();
    let mut runner = harness::runner(harness::cases(512));
    let strategy = prop_oneof![
        4 => http_case(routes.clone(), false).prop_map(NativeCase::Http),
        1 => grpc_case().prop_map(NativeCase::Grpc),
    ];
    let result = runner.run(&strategy, |case| {
        seed(&h);
        let call = match &case {
            NativeCase::Http(c) => {
                let view = h.rt.block_on(h.manager_store()).view();
                build(c, &routes, &view, true)
            }
            NativeCase::Grpc(g) => g.call(),
        };
        h.check(&call)
    });
    h.report("native API");
    h.stop();
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The valid bodies the mutations start from are valid: each is accepted as it is (else the
/// mutations would only ever reach the first check that refuses it).
#[test]
fn the_bodies_the_mutations_start_from_are_accepted() {
    let h = Harness::start();
    seed(&h);
    h.rt.block_on(async {
        let view = h.manager_store().await.view();
        let find = |kind: Kind, name: &str| {
            objects_of(&view, kind)
                .into_iter()
                .find(|o| o.1 == name)
                .unwrap_or_else(|| panic!("no {kind:?} {name}"))
        };
        let swarm_version = objects_of(&view, Kind::Cluster)[0].2;
        let node = objects_of(&view, Kind::Node)[0].clone();
        let service = find(Kind::Service, "fz-seed");
        let secret = find(Kind::Secret, "fz-seed-secrets");
        let config = find(Kind::Config, "fz-seed-configs");
        let calls = [
            (
                "/networks/create".to_string(),
                base_body(Base::Network, 7, None),
            ),
            (
                "/services/create".to_string(),
                base_body(Base::Service, 7, None),
            ),
            (
                "/secrets/create".to_string(),
                base_body(Base::Secret, 7, None),
            ),
            (
                "/configs/create".to_string(),
                base_body(Base::Config, 7, None),
            ),
            (
                format!("/services/{}/update?version={}", service.0, service.2),
                base_body(Base::Service, 8, Some("fz-seed")),
            ),
            (
                format!("/secrets/{}/update?version={}", secret.0, secret.2),
                base_body(Base::Secret, 8, Some(&secret.1)),
            ),
            (
                format!("/configs/{}/update?version={}", config.0, config.2),
                base_body(Base::Config, 8, Some(&config.1)),
            ),
            (
                format!("/nodes/{}/update?version={}", node.0, node.2),
                base_body(Base::Node, 8, None),
            ),
            (
                format!("/swarm/update?version={swarm_version}"),
                base_body(Base::Swarm, 8, None),
            ),
            (
                "/shoal/v1/stacks/fz-valid/plan".to_string(),
                base_body(Base::Apply, 9, None),
            ),
            (
                "/shoal/v1/stacks/fz-valid/apply".to_string(),
                base_body(Base::Apply, 9, None),
            ),
        ];
        for (uri, body) in calls {
            let a = h.call_ok("POST", &uri, body.clone()).await;
            assert!(
                a.status.is_success(),
                "POST {uri} {body}: {} {:?}",
                a.status,
                a.body
            );
        }
    });
    h.stop();
}

/// Regressions: requests that axum's extractors refused with plain-text bodies (the Go client
/// and the native API's clients only read JSON errors), and a wrong method on a native path that
/// got the Docker API's error without a `code`.
#[test]
fn malformed_paths_bodies_queries_and_methods_get_json_errors() {
    let h = Harness::start();
    seed(&h);
    // Method, path, content type, body, the status expected, whether the native API answers.
    type Expected = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static [u8],
        u16,
        bool,
    );
    let cases: &[Expected] = &[
        ("GET", "/tasks/%ff", None, b"", 400, false),
        (
            "GET",
            "/v1.44/services/%C0%AF/logs?stdout=1",
            None,
            b"",
            400,
            false,
        ),
        ("DELETE", "/secrets/%ED%A0%80", None, b"", 400, false),
        (
            "POST",
            "/shoal/v1/stacks/fz-seed-stack/rollback",
            Some("application/json"),
            b"[[1",
            400,
            true,
        ),
        (
            "POST",
            "/shoal/v1/stacks/fz-seed-stack/plan",
            None,
            b"{}",
            415,
            true,
        ),
        (
            "GET",
            "/shoal/v1/stacks/fz-seed-stack/revisions/abc",
            None,
            b"",
            400,
            true,
        ),
        ("GET", "/shoal/v1/stacks/%ff", None, b"", 400, true),
        (
            "GET",
            "/shoal/v1/wait?revision=1&revision=2",
            None,
            b"",
            400,
            true,
        ),
        ("POST", "/shoal/v1/openapi.json", None, b"", 404, true),
    ];
    for (method, uri, content_type, body, status, native) in cases {
        let call = Call {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: content_type
                .map(|c| vec![("content-type".to_string(), c.to_string())])
                .unwrap_or_default(),
            body: body.to_vec(),
            may_wait: false,
            native: *native,
            grpc: false,
            label: uri.to_string(),
        };
        if let Err(e) = h.check(&call) {
            panic!("{e}");
        }
        let answer = h.rt.block_on(h.send(&call)).unwrap().unwrap();
        assert_eq!(
            answer.status.as_u16(),
            *status,
            "{method} {uri}: {answer:?}"
        );
    }
    h.stop();
}

/// The panic oracle sees a panic in a task the server spawned (tokio would swallow it).
#[test]
fn a_panic_in_a_spawned_task_is_seen() {
    harness::record_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("panic-selftest")
        .enable_all()
        .build()
        .unwrap();
    let task = rt.spawn(async { panic!("a handler's task panics") });
    assert!(rt.block_on(task).is_err());
    let seen = harness::take_panics(|t| t == "panic-selftest");
    assert!(
        seen.iter().any(|p| p.contains("a handler's task panics")),
        "{seen:?}"
    );
}
