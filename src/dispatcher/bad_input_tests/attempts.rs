//! The calls the swarm listener test makes: who calls, with which ids, tokens, CSRs and
//! JSON-in-bytes fields, as proptest strategies.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;
use shoal_store::Rpc;

use crate::ca::NodeKeyRequest;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Who {
    /// A worker the store knows, with a session.
    Worker,
    /// A manager node promoted from worker: its Raft id is not assigned yet.
    Promoted,
    /// The manager serving (no node object: as the testkit's manager).
    Manager,
    /// A worker certificate for a node the store does not know.
    Stranger,
    /// A worker certificate of another cluster, signed by this CA.
    OtherCluster,
    /// No client certificate at all.
    NoCert,
}

pub(super) fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        5 => Just(Who::Worker),
        2 => Just(Who::Promoted),
        2 => Just(Who::Manager),
        1 => Just(Who::Stranger),
        1 => Just(Who::OtherCluster),
        1 => Just(Who::NoCert),
    ]
}

pub(super) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "", " ", "\0", "..", "../../x", "-1", "0", "SWMTKN-1-", "127.0.0.1:0", "[::1]:99999",
            "running", "RUNNING", "shutdown", "new", "pending", "orphaned", "active", "drain",
            "pause", "manager", "worker", "☃", "\u{202e}",
        ])
        .prop_map(str::to_string),
        3 => "\\PC{0,16}",
        1 => (64usize..4000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Random JSON: what a peer's JSON-in-bytes fields (statuses, descriptions, store RPC bodies)
/// may hold.
pub(super) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::String),
    ];
    let key = prop_oneof![
        select(vec![
            "Timestamp",
            "State",
            "Message",
            "Err",
            "ContainerStatus",
            "PortStatus",
            "ContainerID",
            "PID",
            "ExitCode",
            "Ports",
            "Hostname",
            "Platform",
            "Architecture",
            "OS",
            "Resources",
            "NanoCPUs",
            "MemoryBytes",
            "Engine",
            "EngineVersion",
            "Plugins",
            "TLSInfo",
            "TrustRoot",
            "CSIInfo",
            "entries",
            "txns",
            "ops",
            "vote",
            "leader_id",
            "term",
            "committed",
            "last_log_id",
            "index",
            "Ok",
            "Err",
        ])
        .prop_map(str::to_string),
        text(),
    ];
    leaf.prop_recursive(4, 32, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// The bytes of a JSON-carrying field: empty, random bytes, random JSON, or a valid document
/// with one field replaced.
#[derive(Clone, Debug)]
pub(super) enum JsonBytes {
    Empty,
    Bytes(Vec<u8>),
    Json(Value),
    Nearly(usize, Value),
}

pub(super) fn json_bytes() -> impl Strategy<Value = JsonBytes> {
    prop_oneof![
        1 => Just(JsonBytes::Empty),
        2 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(JsonBytes::Bytes),
        2 => json_value().prop_map(JsonBytes::Json),
        4 => (any::<usize>(), json_value()).prop_map(|(at, v)| JsonBytes::Nearly(at, v)),
    ]
}

impl JsonBytes {
    /// The bytes, `valid` being the document to change for [`JsonBytes::Nearly`].
    pub(super) fn render(&self, valid: &Value) -> Vec<u8> {
        match self {
            JsonBytes::Empty => Vec::new(),
            JsonBytes::Bytes(b) => b.clone(),
            JsonBytes::Json(v) => v.to_string().into_bytes(),
            JsonBytes::Nearly(at, v) => {
                let mut doc = valid.clone();
                if let Some(o) = doc.as_object_mut() {
                    let keys: Vec<String> = o.keys().cloned().collect();
                    if !keys.is_empty() {
                        o.insert(keys[at % keys.len()].clone(), v.clone());
                    }
                }
                doc.to_string().into_bytes()
            }
        }
    }
}

/// A session id: the caller's current one, or not.
#[derive(Clone, Debug)]
pub(super) enum SessionPick {
    Current,
    Other(String),
}

pub(super) fn session_pick() -> impl Strategy<Value = SessionPick> {
    prop_oneof![
        3 => Just(SessionPick::Current),
        1 => text().prop_map(SessionPick::Other),
    ]
}

/// A task id: one assigned to the worker, one of another node's, or not a task.
#[derive(Clone, Debug)]
pub(super) enum TaskPick {
    Own(usize),
    Foreign,
    Other(String),
}

pub(super) fn task_pick() -> impl Strategy<Value = TaskPick> {
    prop_oneof![
        3 => any::<usize>().prop_map(TaskPick::Own),
        1 => Just(TaskPick::Foreign),
        1 => text().prop_map(TaskPick::Other),
    ]
}

/// A CSR: a fresh valid one, a valid one cut short or with a byte flipped, or junk.
#[derive(Clone, Debug)]
pub(super) enum Csr {
    Valid,
    Cut(usize),
    Flipped(usize),
    Junk(String),
    PemJunk(Vec<u8>),
}

pub(super) fn csr() -> impl Strategy<Value = Csr> {
    prop_oneof![
        2 => Just(Csr::Valid),
        1 => any::<usize>().prop_map(Csr::Cut),
        1 => any::<usize>().prop_map(Csr::Flipped),
        1 => text().prop_map(Csr::Junk),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Csr::PemJunk),
    ]
}

impl Csr {
    /// The PEM text.
    pub(super) fn render(&self) -> String {
        use base64::Engine;
        let valid = || NodeKeyRequest::generate().unwrap().csr_pem;
        match self {
            Csr::Valid => valid(),
            Csr::Cut(at) => {
                let v = valid();
                v[..at % v.len()].to_string()
            }
            Csr::Flipped(at) => {
                let mut v = valid().into_bytes();
                // Inside the base64 body, so the PEM still parses and the DER does not.
                let i = 40 + at % (v.len() - 80);
                v[i] = if v[i] == b'A' { b'B' } else { b'A' };
                String::from_utf8(v).unwrap()
            }
            Csr::Junk(s) => s.clone(),
            Csr::PemJunk(b) => format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                base64::engine::general_purpose::STANDARD.encode(b)
            ),
        }
    }
}

/// A join token: the swarm's (worker or manager), one with the right CA digest and a wrong
/// secret, or junk.
#[derive(Clone, Debug)]
pub(super) enum Token {
    Worker,
    Manager,
    WrongSecret,
    Junk(String),
}

pub(super) fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        3 => Just(Token::Worker),
        1 => Just(Token::Manager),
        1 => Just(Token::WrongSecret),
        1 => text().prop_map(Token::Junk),
    ]
}

/// One call to make.
#[allow(clippy::type_complexity)] // Plain tuples print as the minimal failing input.
#[derive(Clone, Debug)]
pub(super) enum Attempt {
    Session(Who, JsonBytes),
    Heartbeat(Who, SessionPick),
    Assignments(Who, SessionPick),
    NetworkState(Who, SessionPick),
    UpdateTaskStatus(Who, SessionPick, Vec<(TaskPick, JsonBytes)>),
    /// Messages: session, subscription id, entries (task, line, time), close, error.
    PublishLogs(
        Who,
        Vec<(
            SessionPick,
            String,
            Vec<(TaskPick, String, i64)>,
            bool,
            String,
        )>,
    ),
    SubscribeLogs(Who, Vec<TaskPick>, Option<(bool, bool, bool, i64, i64)>),
    Join {
        token: Token,
        csr: Csr,
        advertise_addr: String,
        description: JsonBytes,
        availability: String,
    },
    /// Only Raft ids that cannot add a member: a new id is a learner that waits for a peer that
    /// does not exist (kept on failure by design, so a retry resumes).
    JoinRaft(Who, u64, String),
    Renew(Who, Csr),
    PeerCall(Who, String, JsonBytes),
    PeerStream(Who, String, Vec<JsonBytes>),
    InstallSnapshot(Who, Vec<(Vec<u8>, Vec<u8>)>),
}

pub(super) fn rpc_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(Rpc::ALL.to_vec()).prop_map(|r| r.as_str().to_string()),
        1 => text(),
    ]
}

pub(super) fn attempt() -> impl Strategy<Value = Attempt> {
    let log_entries = proptest::collection::vec((task_pick(), text(), any::<i64>()), 0..3);
    prop_oneof![
        2 => (who(), json_bytes()).prop_map(|(w, d)| Attempt::Session(w, d)),
        2 => (who(), session_pick()).prop_map(|(w, s)| Attempt::Heartbeat(w, s)),
        1 => (who(), session_pick()).prop_map(|(w, s)| Attempt::Assignments(w, s)),
        1 => (who(), session_pick()).prop_map(|(w, s)| Attempt::NetworkState(w, s)),
        4 => (who(), session_pick(), proptest::collection::vec((task_pick(), json_bytes()), 0..4))
            .prop_map(|(w, s, u)| Attempt::UpdateTaskStatus(w, s, u)),
        2 => (who(), proptest::collection::vec(
                (session_pick(), text(), log_entries, any::<bool>(), text()), 0..3))
            .prop_map(|(w, m)| Attempt::PublishLogs(w, m)),
        1 => (who(), proptest::collection::vec(task_pick(), 0..3),
              proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>(), any::<i64>(), any::<i64>())))
            .prop_map(|(w, t, s)| Attempt::SubscribeLogs(w, t, s)),
        4 => (token(), csr(), text(), json_bytes(), text()).prop_map(
            |(token, csr, advertise_addr, description, availability)| Attempt::Join {
                token, csr, advertise_addr, description, availability,
            }),
        1 => (who(), prop_oneof![Just(0u64), Just(1u64)], text())
            .prop_map(|(w, id, addr)| Attempt::JoinRaft(w, id, addr)),
        3 => (who(), csr()).prop_map(|(w, c)| Attempt::Renew(w, c)),
        3 => (who(), rpc_name(), json_bytes()).prop_map(|(w, r, b)| Attempt::PeerCall(w, r, b)),
        1 => (who(), rpc_name(), proptest::collection::vec(json_bytes(), 0..3))
            .prop_map(|(w, r, b)| Attempt::PeerStream(w, r, b)),
        1 => (who(), proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 0..40)), 0..3))
            .prop_map(|(w, c)| Attempt::InstallSnapshot(w, c)),
    ]
}
