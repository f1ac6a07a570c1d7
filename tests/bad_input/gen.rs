//! Generators of bad (and nearly good) input for the HTTP listeners: nasty strings and numbers,
//! random JSON, raw bytes, deep nesting, and valid request bodies with a few random mutations
//! (wrong types, removed fields, case-folded keys, huge numbers), so that parsing is attacked
//! both at the surface and behind the first layer of validation.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

/// Strings that tend to break parsers and validators.
const NASTY_STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "a\u{0}b",
    ".",
    "..",
    "../../etc/passwd",
    "/",
    "%",
    "%00",
    "%ff",
    "\u{202e}evil",
    "☃",
    "𝕊𝕨𝕒𝕣𝕞",
    "K",
    "-1",
    "0",
    "1e999",
    "NaN",
    "null",
    "true",
    "{}",
    "[]",
    "\"",
    "\\",
    "SWMTKN-1-",
    "SWMTKN-1-0000000000000000000000000000000000000000000000000-0000000000000000000000000",
    "SWMKEY-1-",
    "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "127.0.0.1:0",
    "127.0.0.1:1",
    "[::1]:65536",
    "0.0.0.0",
    ":",
    "a=b",
    "=",
    ",",
    "0x10",
    "18446744073709551616",
    "-9223372036854775809",
    "1.5",
    "1h",
    "-1s",
    "999999999h",
    "busybox@sha256:",
    "overlay",
    "host",
    "ingress",
    "none",
    "bridge",
    "manager",
    "worker",
    "drain",
    "pause",
    "global",
    "replicated",
    "node.role==manager",
    "node.labels.x!=",
    "${X:?boom}",
    "${",
    "$$",
    "{{.Service.Name}}",
    "\t\n\r",
];

/// A string that tends to break things.
pub fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(NASTY_STRINGS).prop_map(str::to_string),
        4 => "\\PC{0,16}",
        2 => any::<String>().prop_map(|s| s.chars().take(32).collect()),
        1 => (64usize..6000).prop_map(|n| "a".repeat(n)),
    ]
}

/// A JSON number, often at or past the limits of the types it will be read as.
pub fn nasty_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(2),
            json!(i32::MAX),
            json!(i32::MIN),
            json!(u32::MAX),
            json!(1u64 << 32),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e308),
            json!(-1e308),
            json!(0.5),
            json!(-0.0),
            json!(5e-324),
            json!(9007199254740993u64),
        ]),
    ]
}

/// Docker and compose field names (minus the ones that set a task count: see [`clamp_counts`]),
/// so random objects often hit real fields with the wrong values.
const FIELD_NAMES: &[&str] = &[
    "Name",
    "Labels",
    "TaskTemplate",
    "ContainerSpec",
    "Image",
    "Command",
    "Args",
    "Env",
    "Mounts",
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "Resources",
    "Limits",
    "Reservations",
    "NanoCPUs",
    "MemoryBytes",
    "Pids",
    "GenericResources",
    "RestartPolicy",
    "Condition",
    "Delay",
    "MaxAttempts",
    "Window",
    "Placement",
    "Constraints",
    "Preferences",
    "Spread",
    "SpreadDescriptor",
    "Platforms",
    "Networks",
    "Aliases",
    "DriverOpts",
    "EndpointSpec",
    "Ports",
    "TargetPort",
    "PublishedPort",
    "Protocol",
    "PublishMode",
    "Mode",
    "Global",
    "UpdateConfig",
    "Parallelism",
    "FailureAction",
    "Monitor",
    "MaxFailureRatio",
    "Order",
    "RollbackConfig",
    "Driver",
    "Options",
    "IPAM",
    "Config",
    "Subnet",
    "Gateway",
    "IPRange",
    "AuxiliaryAddresses",
    "Attachable",
    "Ingress",
    "Internal",
    "Scope",
    "ConfigFrom",
    "Network",
    "Data",
    "Templating",
    "Role",
    "Availability",
    "Orchestration",
    "TaskHistoryRetentionLimit",
    "Raft",
    "SnapshotInterval",
    "KeepOldSnapshots",
    "LogEntriesForSlowFollowers",
    "ElectionTick",
    "HeartbeatTick",
    "Dispatcher",
    "HeartbeatPeriod",
    "CAConfig",
    "NodeCertExpiry",
    "ExternalCAs",
    "SigningCACert",
    "SigningCAKey",
    "ForceRotate",
    "EncryptionConfig",
    "AutoLockManagers",
    "TaskDefaults",
    "LogDriver",
    "ListenAddr",
    "AdvertiseAddr",
    "DataPathAddr",
    "DataPathPort",
    "DefaultAddrPool",
    "SubnetSize",
    "ForceNewCluster",
    "RemoteAddrs",
    "JoinToken",
    "UnlockKey",
    "Secrets",
    "Configs",
    "SecretID",
    "SecretName",
    "ConfigID",
    "ConfigName",
    "File",
    "UID",
    "GID",
    "Healthcheck",
    "Test",
    "Interval",
    "Timeout",
    "Retries",
    "StartPeriod",
    "Hostname",
    "User",
    "Dir",
    "TTY",
    "Init",
    "Privileges",
    "CapabilityAdd",
    "Sysctls",
    "Ulimits",
    "DNSConfig",
    "Hosts",
    "StopSignal",
    "StopGracePeriod",
    "ForceUpdate",
    "Runtime",
    "PluginSpec",
    "NetworkAttachmentSpec",
    "version",
    "services",
    "networks",
    "secrets",
    "configs",
    "volumes",
    "image",
    "deploy",
    "ports",
    "environment",
    "command",
    "entrypoint",
    "labels",
    "external",
    "driver",
    "file",
    "mode",
    "x-fuzz",
    "files",
    "content",
    "env",
    "attachments",
    "prune",
    "dry_run",
    "plan_token",
    "applied_by",
    "to",
];

/// An object key: a real field name (as written or case-folded) or anything.
pub fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIELD_NAMES).prop_map(str::to_string),
        1 => select(FIELD_NAMES).prop_map(|s| s.to_lowercase()),
        1 => select(FIELD_NAMES).prop_map(|s| s.to_uppercase()),
        1 => nasty_string(),
    ]
}

/// Any JSON value, a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        nasty_number(),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((json_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Bodies a `Value` cannot hold: broken JSON, lone surrogates, invalid UTF-8, numbers out of
/// range, duplicate and case-folded keys, trailing garbage.
const RAW_BODIES: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"{\"Name\":",
    b"{\"Name\": 1e999}",
    b"{\"Name\": -1e999}",
    b"{\"Name\":\"\\ud800\"}",
    b"{\"Name\":\"\\udc00\\ud800\"}",
    b"{\"Name\":\"a\\u0000b\"}",
    b"{\"Name\":\"\xff\xfe\"}",
    b"{\"\xff\":1}",
    b"\xef\xbb\xbf{}",
    b"{} {}",
    b"{}garbage",
    b"null",
    b"0",
    b"-0",
    b"\"\"",
    b"[]",
    b"true",
    b"{\"Labels\":{\"a\":1}}",
    b"{\"Labels\":null}",
    b"{\"Name\":\"x\",\"Name\":{}}",
    b"{\"name\":\"x\",\"NAME\":[]}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"busybox\"}},\"Mode\":{\"Replicated\":{\"Replicas\":-1}}}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"busybox\"}},\"Mode\":{\"Replicated\":{\"Replicas\":18446744073709551616}}}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"busybox\"}},\"Mode\":{\"Replicated\":{\"Replicas\":1.5}}}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"busybox\"}},\"Mode\":{\"Replicated\":{},\"Global\":{}}}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"busybox\"}},\"Mode\":{\"ReplicatedJob\":{\"MaxConcurrent\":0,\"TotalCompletions\":0}}}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"\"}}}",
    b"{\"Name\":\"fz-raw\",\"TaskTemplate\":{}}",
    b"\x00\x00\x00",
    b"{\"Name\":\"fz-raw\",\"Data\":\"!!!not base64\"}",
    b"{\"Name\":\"fz-raw\",\"Data\":\"\"}",
    b"  \n\t ",
    b"{\"Dispatcher\":{\"HeartbeatPeriod\":-1}}",
    b"{\"CAConfig\":{\"NodeCertExpiry\":1}}",
    b"{\"Raft\":{\"ElectionTick\":0,\"HeartbeatTick\":0}}",
    b"{\"Role\":\"worker\"}",
    b"{\"Role\":\"\",\"Availability\":\"\"}",
    b"{\"files\":[{\"name\":\"a\",\"content\":\"services: {}\"}]}",
    b"{\"files\":null}",
    b"{\"files\":[{\"name\":\"a\",\"content\":\"a: &a [*a]\"}]}",
];

/// A request body.
#[derive(Clone, Debug)]
pub enum BodyGen {
    /// None at all.
    Empty,
    /// Random bytes.
    Bytes(Vec<u8>),
    /// One of [`RAW_BODIES`].
    Raw(usize),
    /// Random JSON.
    Json(Value),
    /// `[[[...` or `{"a":{"a":...`, closed or not.
    Deep {
        depth: usize,
        object: bool,
        closed: bool,
    },
    /// The route's valid body with these changes.
    Plausible(Vec<Mutation>),
}

/// One change to a valid body: at the `at`-th node (modulo their number), do `op`.
#[derive(Clone, Debug)]
pub struct Mutation {
    at: usize,
    op: MutOp,
}

#[derive(Clone, Debug)]
enum MutOp {
    /// Replace the node with another value (often of the wrong type).
    Replace(Value),
    /// Remove it from its parent.
    Remove,
    /// Wrap it in an array.
    Wrap,
    /// Rename its key to another case, or add the same key in another case with another value.
    FoldKey { upper: bool, keep: Option<Value> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let op = prop_oneof![
        5 => json_value().prop_map(MutOp::Replace),
        2 => Just(MutOp::Remove),
        1 => Just(MutOp::Wrap),
        1 => (any::<bool>(), proptest::option::of(json_value()))
            .prop_map(|(upper, keep)| MutOp::FoldKey { upper, keep }),
    ];
    (any::<usize>(), op).prop_map(|(at, op)| Mutation { at, op })
}

/// A body for a route whose valid body is of some kind (or none).
pub fn body(plausible: bool) -> impl Strategy<Value = BodyGen> {
    let plausible_weight = if plausible { 12 } else { 0 };
    prop_oneof![
        1 => Just(BodyGen::Empty),
        2 => vec(any::<u8>(), 0..256).prop_map(BodyGen::Bytes),
        2 => (0..RAW_BODIES.len()).prop_map(BodyGen::Raw),
        3 => json_value().prop_map(BodyGen::Json),
        1 => (1usize..4000, any::<bool>(), any::<bool>())
            .prop_map(|(depth, object, closed)| BodyGen::Deep { depth, object, closed }),
        plausible_weight => vec(mutation(), 0..3).prop_map(BodyGen::Plausible),
    ]
}

impl BodyGen {
    /// The bytes, given the route's valid body (`Value::Null` when it has none).
    pub fn render(&self, base: &Value) -> Vec<u8> {
        match self {
            BodyGen::Empty => Vec::new(),
            BodyGen::Bytes(b) => b.clone(),
            BodyGen::Raw(i) => RAW_BODIES[*i].to_vec(),
            BodyGen::Json(v) => to_json(v),
            BodyGen::Deep {
                depth,
                object,
                closed,
            } => {
                let (open, close) = if *object {
                    ("{\"a\":", "}")
                } else {
                    ("[", "]")
                };
                let mut s = open.repeat(*depth);
                s.push('1');
                if *closed {
                    s.push_str(&close.repeat(*depth));
                }
                s.into_bytes()
            }
            BodyGen::Plausible(muts) => to_json(&mutated(base, muts)),
        }
    }

    /// The body as a JSON value, if it is one (for bodies nested in others, like a compose file).
    pub fn value(&self, base: &Value) -> Option<Value> {
        match self {
            BodyGen::Json(v) => Some(v.clone()),
            BodyGen::Plausible(muts) => Some(mutated(base, muts)),
            _ => None,
        }
    }
}

fn to_json(v: &Value) -> Vec<u8> {
    let mut v = v.clone();
    clamp_counts(&mut v);
    serde_json::to_vec(&v).expect("a Value serialises")
}

/// `base` with `muts` applied in order.
pub fn mutated(base: &Value, muts: &[Mutation]) -> Value {
    let mut v = base.clone();
    for m in muts {
        let mut paths = Vec::new();
        collect_paths(&v, &mut Vec::new(), &mut paths);
        let path = &paths[m.at % paths.len()];
        apply(&mut v, path, &m.op);
    }
    clamp_counts(&mut v);
    v
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn collect_paths(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Step::Key(k.clone()));
                collect_paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Step::Index(i));
                collect_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            Step::Key(k) => cur.get_mut(k.as_str())?,
            Step::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

fn apply(root: &mut Value, path: &[Step], op: &MutOp) {
    let Some((last, parent_path)) = path.split_last() else {
        // The root itself.
        match op {
            MutOp::Replace(v) => *root = v.clone(),
            MutOp::Remove => *root = Value::Null,
            MutOp::Wrap => *root = Value::Array(vec![root.take()]),
            MutOp::FoldKey { .. } => {}
        }
        return;
    };
    let Some(parent) = node_mut(root, parent_path) else {
        return;
    };
    match (parent, last) {
        (Value::Object(m), Step::Key(k)) => match op {
            MutOp::Replace(v) => {
                m.insert(k.clone(), v.clone());
            }
            MutOp::Remove => {
                m.remove(k);
            }
            MutOp::Wrap => {
                if let Some(old) = m.get_mut(k) {
                    *old = Value::Array(vec![old.take()]);
                }
            }
            MutOp::FoldKey { upper, keep } => {
                let folded = if *upper {
                    k.to_uppercase()
                } else {
                    k.to_lowercase()
                };
                match keep {
                    // Both spellings: Go's decoder merges them in document order.
                    Some(v) => {
                        m.insert(folded, v.clone());
                    }
                    None => {
                        if let Some(old) = m.remove(k) {
                            m.insert(folded, old);
                        }
                    }
                }
            }
        },
        (Value::Array(a), Step::Index(i)) if *i < a.len() => match op {
            MutOp::Replace(v) => a[*i] = v.clone(),
            MutOp::Remove => {
                a.remove(*i);
            }
            MutOp::Wrap => a[*i] = Value::Array(vec![a[*i].take()]),
            MutOp::FoldKey { .. } => {}
        },
        _ => {}
    }
}

/// Caps every task count (`Replicas`, job completions) at a few: a valid spec for a billion
/// replicas is not bad input, and creating its tasks would only measure the store's speed.
/// Numbers that no count can hold (negative, fractional, past u64) are kept: those are bad input.
pub fn clamp_counts(v: &mut Value) {
    const COUNT_KEYS: &[&str] = &[
        "replicas",
        "totalcompletions",
        "maxconcurrent",
        "max_concurrent",
        "maxreplicas",
        "max_replicas_per_node",
    ];
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let folded = k.to_lowercase();
                if COUNT_KEYS.contains(&folded.as_str()) {
                    let too_many = match &*child {
                        Value::Number(n) => n.as_u64().is_some_and(|n| n > 3),
                        // Compose reads counts from strings too.
                        Value::String(s) => s.trim().parse::<u64>().is_ok_and(|n| n > 3),
                        _ => false,
                    };
                    if too_many {
                        *child = json!(3);
                    }
                }
                clamp_counts(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(clamp_counts),
        _ => {}
    }
}

/// A query string parameter value.
#[derive(Clone, Debug)]
pub enum QueryValue {
    /// The current version of the object the path names (or of the swarm), so an update gets
    /// past the version check to the body.
    CurrentVersion,
    /// Something `strconv.ParseBool` or `httputils.BoolValue` reads as true or false (or not).
    Bool(&'static str),
    /// A Docker filter document: random JSON.
    Filters(Value),
    /// Anything.
    Text(String),
    /// Written into the query as it is (only unreserved characters and `%` escapes, which may
    /// be invalid or decode to invalid UTF-8).
    Raw(String),
}

const BOOLS: &[&str] = &[
    "1", "0", "true", "false", "True", "FALSE", "t", "f", "yes", "no", "none", "", "2", "on",
];

/// Query keys every route family uses (unknown ones are added at random).
pub const QUERY_KEYS: &[&str] = &[
    "filters",
    "version",
    "force",
    "status",
    "insertDefaults",
    "rotateWorkerToken",
    "rotateManagerToken",
    "rotateManagerUnlockKey",
    "registryAuthFrom",
    "rollback",
    "since",
    "until",
    "follow",
    "tail",
    "timestamps",
    "stdout",
    "stderr",
    "details",
    "all",
    "verbose",
    "scope",
    "kind",
    "action",
    "label",
    "stack",
    "name_prefix",
    "node",
    "start",
    "after",
    "min_revision",
    "progress_interval",
    "buffer",
    "revision",
    "timeout",
    "diff",
];

fn raw_query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("%".to_string()),
        Just("%zz".to_string()),
        Just("%ff%fe".to_string()),
        Just("%00".to_string()),
        Just("%C0%AF".to_string()),
        Just("%ED%A0%80".to_string()),
        Just("a%2".to_string()),
        "[a-zA-Z0-9._~-]{0,12}",
    ]
}

/// A query value.
pub fn query_value() -> impl Strategy<Value = QueryValue> {
    prop_oneof![
        2 => Just(QueryValue::CurrentVersion),
        2 => select(BOOLS).prop_map(QueryValue::Bool),
        2 => json_value().prop_map(QueryValue::Filters),
        1 => Just(QueryValue::Filters(json!({"name": {"fz": true}}))),
        1 => Just(QueryValue::Filters(json!({"label": ["a=b"], "mode": ["global"]}))),
        3 => nasty_string().prop_map(QueryValue::Text),
        1 => nasty_number().prop_map(|n| QueryValue::Text(n.to_string())),
        2 => raw_query_text().prop_map(QueryValue::Raw),
    ]
}

/// A query key.
pub fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => select(QUERY_KEYS).prop_map(str::to_string),
        1 => nasty_string(),
    ]
}

/// Query parameters.
pub fn query() -> impl Strategy<Value = Vec<(String, QueryValue)>> {
    vec((query_key(), query_value()), 0..4)
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    encode_bytes(s.as_bytes())
}

/// Percent-encodes everything but unreserved characters.
pub fn encode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `Content-Type` header.
pub fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(Some("application/json".to_string())),
        1 => Just(None),
        1 => Just(Some("application/json; charset=utf-8".to_string())),
        1 => Just(Some("text/plain".to_string())),
        1 => Just(Some("application/x-www-form-urlencoded".to_string())),
        1 => "[ -~]{0,24}".prop_map(Some),
    ]
}

/// An HTTP method: mostly the route's own, else any.
pub fn method(own: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        10 => Just(own.to_string()),
        1 => select(vec!["GET", "POST", "DELETE", "PUT", "HEAD", "PATCH", "OPTIONS", "FUZZ"])
            .prop_map(str::to_string),
    ]
}

/// The `/v{version}` prefix of a Docker API path.
pub fn version_prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        5 => select(vec!["/v1.44", "/v1.51", "/v1.24", "/v1.41"]).prop_map(str::to_string),
        1 => select(vec!["/v1.23", "/v1.52", "/v9.99", "/v1.", "/v.1", "/v1", "/v1.44.1", "/v99999999999999999999.1", "/v0.0"])
            .prop_map(str::to_string),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("/v{a}.{b}")),
    ]
}

/// A path segment that names an object: one that exists (by id, name or id prefix) or not.
#[derive(Clone, Debug)]
pub enum ObjRef {
    /// The id of the `n`-th existing object (modulo their number).
    Id(usize),
    /// Its name.
    Name(usize),
    /// A prefix of its id.
    Prefix(usize, usize),
    /// Anything (percent-encoded).
    Junk(String),
    /// Written into the path as it is: invalid or overlong escapes, dot segments.
    Raw(&'static str),
}

/// An object reference.
pub fn obj_ref() -> impl Strategy<Value = ObjRef> {
    prop_oneof![
        4 => any::<usize>().prop_map(ObjRef::Id),
        2 => any::<usize>().prop_map(ObjRef::Name),
        1 => (any::<usize>(), 1usize..12).prop_map(|(i, n)| ObjRef::Prefix(i, n)),
        2 => nasty_string().prop_map(ObjRef::Junk),
        1 => select(vec!["%ff", "%FF%FE", "%00", "%", "%zz", "..", ".", "%2e%2e", "%2F", "a%2Fb", "%C0%AF", "%ED%A0%80"])
            .prop_map(ObjRef::Raw),
    ]
}

/// Extra junk after a known route's path.
pub fn tail() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        18 => Just(None),
        1 => select(vec!["/", "//", "/x", "/..", "/%ff", "/json", "/update/update", "?", "#frag"])
            .prop_map(|s| Some(s.to_string())),
        1 => nasty_string().prop_map(|s| Some(format!("/{}", encode(&s)))),
    ]
}

/// An `X-Registry-Auth` header (service create and update decode it).
pub fn registry_auth() -> impl Strategy<Value = Option<String>> {
    use base64::Engine;
    prop_oneof![
        12 => Just(None),
        1 => "[ -~]{0,40}".prop_map(Some),
        1 => json_value().prop_map(|v| Some(
            base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
        )),
        1 => vec(any::<u8>(), 0..64)
            .prop_map(|b| Some(base64::engine::general_purpose::STANDARD.encode(b))),
    ]
}
