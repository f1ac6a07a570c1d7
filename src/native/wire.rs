//! The native watch on the wire, as JSON: what `GET /shoal/v1/watch` streams (one message per
//! line), what the gRPC form carries (objects as the same JSON), and what [`crate::client`]
//! reads back.
//!
//! Objects are shown as the Docker API shows them (internal bookkeeping, the CA key and secret
//! data left out), so a watcher sees the same JSON as `GET /services/{id}` and friends.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shoal_store::model::Object;
use shoal_store::{Commit, Event, WatchError, WatchFilter, WatchMessage};

use crate::api::version::ApiVersion;

/// One message of a watch stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireMessage {
    /// A snapshot starts at `revision`.
    InitBegin {
        /// The snapshot's revision.
        revision: u64,
    },
    /// One object of the snapshot.
    InitObject(WireObject),
    /// The snapshot is complete: it is the store at `revision`.
    InitDone {
        /// The snapshot's revision.
        revision: u64,
    },
    /// The matching changes of one revision, in commit order.
    Commit {
        /// The revision.
        revision: u64,
        /// When the leader proposed it (RFC 3339).
        at: String,
        /// The changes.
        events: Vec<WireEvent>,
    },
    /// Every matching change up to `revision` has been delivered.
    Progress {
        /// The revision the watcher is up to date with.
        revision: u64,
    },
    /// The watch ended; the stream ends after this message.
    Error(WireError),
}

/// An object of a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireObject {
    /// `service`, `task`, ...
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its name ([`Object::display_name`]).
    pub name: String,
    /// The revision of its last change.
    pub version: u64,
    /// The object.
    pub object: Value,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The commit's revision.
    pub revision: u64,
    /// `create`, `update` or `remove`.
    pub action: String,
    /// `service`, `task`, ...
    pub kind: String,
    /// The object's id.
    pub id: String,
    /// Its name ([`Object::display_name`]).
    pub name: String,
    /// The object after the change (for a removal, as last stored).
    pub object: Value,
    /// The object no longer matches the watch's filter: this change took it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_filter: bool,
}

/// Why a watch or a request failed: the body of every native API error, and of the last line
/// of a watch that ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// `compacted`, `overflow`, `unavailable`, `invalid_argument`, `not_a_manager`, `timeout`,
    /// `not_found`.
    pub code: String,
    /// What happened and what to do next.
    pub message: String,
    /// `compacted`: the revision asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<u64>,
    /// `compacted`: the oldest revision one can resume after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
    /// `compacted`: the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// `overflow`, `unavailable`: the last revision delivered; resume after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<u64>,
}

/// Error codes.
pub mod code {
    /// History no longer reaches back to the requested revision.
    pub const COMPACTED: &str = "compacted";
    /// The watcher fell too far behind.
    pub const OVERFLOW: &str = "overflow";
    /// The manager could not serve (not caught up, shutting down, no quorum).
    pub const UNAVAILABLE: &str = "unavailable";
    /// The request is malformed.
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// This node is not a manager.
    pub const NOT_A_MANAGER: &str = "not_a_manager";
    /// A wait ran out of time.
    pub const TIMEOUT: &str = "timeout";
    /// No such route.
    pub const NOT_FOUND: &str = "not_found";
    /// Another owner, a concurrent change or a stale plan token (409).
    pub const CONFLICT: &str = "conflict";
    /// The manager failed to do what was asked (a storage error).
    pub const INTERNAL: &str = "internal";
    /// A request that must be signed is not (webhooks).
    pub const UNAUTHENTICATED: &str = "unauthenticated";
}

impl WireError {
    /// An error with a code and message only.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        WireError {
            code: code.to_string(),
            message: message.into(),
            ..Default::default()
        }
    }

    /// The wire form of a store watch error.
    pub fn from_watch(e: &WatchError) -> Self {
        let message = e.to_string();
        match *e {
            WatchError::Compacted {
                requested,
                oldest,
                current,
            } => WireError {
                code: code::COMPACTED.into(),
                message,
                requested: Some(requested),
                oldest: Some(oldest),
                current: Some(current),
                last_delivered: None,
            },
            WatchError::Overflow { last_delivered } => WireError {
                code: code::OVERFLOW.into(),
                message,
                last_delivered: Some(last_delivered),
                ..Default::default()
            },
            WatchError::Unavailable(_) => WireError::new(code::UNAVAILABLE, message),
        }
    }
}

/// An object as the Docker API shows it.
pub fn object_json(o: &Object) -> Value {
    use crate::api::{networks, render, secrets, swarm};
    match o {
        Object::Cluster(c) => swarm::render_cluster(c),
        // The manager status as recorded in the object, not the live membership: the watch
        // shows the object as of its revision.
        Object::Node(n) => render::node(n, &[]),
        Object::Service(s) => render::service(s),
        Object::Task(t) => render::task(t, ApiVersion::max()),
        Object::Network(n) => networks::render(n, ApiVersion::max()),
        Object::Secret(s) => secrets::render(s),
        Object::Config(c) => serde_json::to_value(c).unwrap_or(Value::Null),
        Object::Stack(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        // Never the data of the secrets a revision holds.
        Object::StackRevision(r) => {
            serde_json::to_value(r.without_secret_data()).unwrap_or(Value::Null)
        }
        Object::Health(h) => serde_json::to_value(h).unwrap_or(Value::Null),
        Object::GitSource(g) => serde_json::to_value(g).unwrap_or(Value::Null),
    }
}

fn wire_object(o: &Object) -> WireObject {
    WireObject {
        kind: o.kind().as_str().to_string(),
        id: o.id().to_string(),
        name: o.display_name().into_owned(),
        version: o.version(),
        object: object_json(o),
    }
}

fn wire_event(revision: u64, e: &Event, filter: &WatchFilter) -> WireEvent {
    let o = e.object.as_ref();
    WireEvent {
        revision,
        action: e.action.to_string(),
        kind: o.kind().as_str().to_string(),
        id: o.id().to_string(),
        name: o.display_name().into_owned(),
        object: object_json(o),
        left_filter: !filter.matches_object(o),
    }
}

fn wire_commit(c: &Arc<Commit>, filter: &WatchFilter) -> WireMessage {
    let mut events: Vec<WireEvent> = c
        .events
        .iter()
        .map(|e| wire_event(c.revision, e, filter))
        .collect();
    if shoal_store::mutation::active("skip-watch-event") && c.revision.is_multiple_of(7) {
        // Broken on purpose (debug builds only; see `shoal_store::mutation`): the chaos suite's
        // watch oracle must notice the missing change.
        events.clear();
    }
    WireMessage::Commit {
        revision: c.revision,
        at: c.at.to_string(),
        events,
    }
}

/// The wire messages for one store message (a chunk of snapshot objects becomes one message
/// per object, so no line or gRPC message holds more than one object outside a commit).
pub fn from_store(m: &WatchMessage, filter: &WatchFilter) -> Vec<WireMessage> {
    match m {
        WatchMessage::InitBegin { revision } => vec![WireMessage::InitBegin {
            revision: *revision,
        }],
        WatchMessage::InitObjects(objects) => objects
            .iter()
            .map(|o| WireMessage::InitObject(wire_object(o)))
            .collect(),
        WatchMessage::InitDone { revision } => vec![WireMessage::InitDone {
            revision: *revision,
        }],
        WatchMessage::Commit(c) => vec![wire_commit(c, filter)],
        WatchMessage::Progress { revision } => vec![WireMessage::Progress {
            revision: *revision,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::Secret;
    use shoal_store::Action;

    #[test]
    fn messages_are_tagged_lines_and_secrets_keep_their_data_to_themselves() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "ID": "s1", "Version": {"Index": 7},
            "Spec": {"Name": "pw", "Labels": {"a": "b"}, "Data": "c2VjcmV0"},
        }))
        .unwrap();
        let object = Arc::new(Object::Secret(secret));
        let commit = Arc::new(Commit {
            revision: 7,
            at: shoal_store::model::Timestamp::now(),
            events: vec![Event {
                action: Action::Create,
                object,
                prev: None,
            }],
        });
        let filter = WatchFilter {
            labels: vec!["a=b".into()],
            ..Default::default()
        };
        let wire = from_store(&WatchMessage::Commit(commit), &filter);
        let line = serde_json::to_value(&wire[0]).unwrap();
        assert_eq!(line["type"], "commit");
        assert_eq!(line["revision"], 7);
        let event = &line["events"][0];
        assert_eq!(event["action"], "create");
        assert_eq!(event["kind"], "secret");
        assert_eq!(event["name"], "pw");
        assert_eq!(event["object"]["Spec"]["Labels"]["a"], "b");
        assert!(event["object"]["Spec"].get("Data").is_none(), "{event}");
        assert!(event.get("left_filter").is_none(), "only said when true");
        let back: WireMessage = serde_json::from_value(line).unwrap();
        assert_eq!(back, wire[0]);

        let err = WireMessage::Error(WireError::from_watch(&WatchError::Overflow {
            last_delivered: 9,
        }));
        let line = serde_json::to_value(&err).unwrap();
        assert_eq!(line["type"], "error");
        assert_eq!(line["code"], "overflow");
        assert_eq!(line["last_delivered"], 9);
        assert_eq!(serde_json::from_value::<WireMessage>(line).unwrap(), err);
    }
}
