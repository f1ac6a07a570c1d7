//! `GET /events`: swarm events (services, nodes, networks, secrets, configs) as dockerd reports
//! them (`daemon/events.go`), and shoal's GitOps sources (type `gitsource`), streamed as
//! newline-delimited JSON from a store watch.
//!
//! Unlike dockerd's 256-event ring, `since` replays from the store's commit history (as far
//! back as it is retained), so a client that asks for the last minutes gets every change in
//! them, in commit order. `until` ends the stream; without it the stream runs until the client
//! goes away. A node that is not a manager has no swarm events: its stream stays empty.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query as QueryExtract, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shoal_store::model::{Kind, Node, Object, Service, Timestamp};
use shoal_store::{Action, Event, Store, WatchFilter, WatchMessage, WatchRequest, WatchStart};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::Query;
use crate::node::SwarmState;

/// Filter keys dockerd accepts on `/events`.
const FILTER_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// Keys whose values match an event's actor id or `name` attribute by prefix.
const FUZZY_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
];

/// Who an event is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Actor {
    /// Object id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `name` plus what changed (`image.old`/`image.new`, ...), sorted like Go maps.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event on the wire (moby's `events.Message` for cluster events).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    /// `service`, `node`, `network`, `secret`, `config`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `create`, `update`, `remove`.
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `swarm`.
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

fn attr(m: &mut BTreeMap<String, String>, what: &str, old: String, new: String) {
    if old != new {
        m.insert(format!("{what}.old"), old);
        m.insert(format!("{what}.new"), new);
    }
}

fn service_attributes(s: &Service, old: Option<&Service>, m: &mut BTreeMap<String, String>) {
    let Some(old) = old else { return };
    if let (Some(c), Some(o)) = (s.spec.container(), old.spec.container()) {
        attr(m, "image", o.image.clone(), c.image.clone());
    }
    if let (Some(new), Some(prev)) = (&s.spec.mode.replicated, &old.spec.mode.replicated) {
        attr(
            m,
            "replicas",
            prev.replicas.unwrap_or(1).to_string(),
            new.replicas.unwrap_or(1).to_string(),
        );
    }
    let state = |s: &Service| {
        s.update_status
            .as_ref()
            .and_then(|u| u.state)
            .map(|st| st.as_str().to_string())
    };
    match (state(old), state(s)) {
        (None, Some(new)) => {
            m.insert("updatestate.new".into(), new);
        }
        (Some(prev), Some(new)) => attr(m, "updatestate", prev, new),
        _ => {}
    }
}

fn node_attributes(n: &Node, old: Option<&Node>, m: &mut BTreeMap<String, String>) {
    let Some(old) = old else { return };
    attr(
        m,
        "availability",
        old.spec.availability_or_default().as_str().to_string(),
        n.spec.availability_or_default().as_str().to_string(),
    );
    attr(m, "role", old.role.to_string(), n.role.to_string());
    attr(
        m,
        "state",
        old.status.state.to_string(),
        n.status.state.to_string(),
    );
    // Not a dockerd attribute: the store membership the leader recorded (learner, voter, none).
    attr(
        m,
        "raft",
        old.raft_membership.as_str().to_string(),
        n.raft_membership.as_str().to_string(),
    );
    if let (Some(new), Some(prev)) = (&n.manager_status, &old.manager_status) {
        attr(m, "leader", prev.leader.to_string(), new.leader.to_string());
        attr(
            m,
            "reachability",
            prev.reachability.to_string(),
            new.reachability.to_string(),
        );
    }
}

/// The Docker event for one store event, if dockerd reports that kind (tasks and the cluster
/// object have no events). `committed_at` is when the change was committed: the time of a
/// removal (objects carry their creation and last update times, but no deletion time).
pub fn docker_event(e: &Event, committed_at: Timestamp) -> Option<Message> {
    let o = e.object.as_ref();
    let prev = e.prev.as_deref();
    let mut attributes = BTreeMap::new();
    let name = match o {
        Object::Service(s) => s.spec.name().to_string(),
        Object::Node(n) if !n.spec.name.is_empty() => n.spec.name.clone(),
        Object::Node(n) => n.description.hostname.clone(),
        Object::Network(n) => n.spec.name.clone(),
        Object::Secret(s) => s.spec.name().to_string(),
        Object::Config(c) => c.spec.name().to_string(),
        Object::Task(_)
        | Object::Cluster(_)
        | Object::Stack(_)
        | Object::StackRevision(_)
        | Object::Health(_)
        | Object::GitSource(_) => return None,
    };
    attributes.insert("name".to_string(), name);
    if e.action == Action::Update {
        match (o, prev) {
            (Object::Service(s), Some(Object::Service(p))) => {
                service_attributes(s, Some(p), &mut attributes)
            }
            (Object::Node(n), Some(Object::Node(p))) => {
                node_attributes(n, Some(p), &mut attributes)
            }
            _ => {}
        }
    }
    let time = match e.action {
        Action::Create => o.meta().created_at,
        Action::Update => o.meta().updated_at,
        Action::Delete => committed_at,
    };
    let nanos = time.unix_nanos();
    Some(Message {
        kind: o.kind().as_str().to_string(),
        action: e.action.to_string(),
        actor: Actor {
            id: o.id().to_string(),
            attributes,
        },
        scope: "swarm".into(),
        time: nanos.div_euclid(1_000_000_000),
        time_nano: nanos,
    })
}

/// The Docker events for one store event: [`docker_event`]'s, and for a GitOps source (type
/// `gitsource`, not a dockerd type) its creation, removal, spec changes (`update`: suspended,
/// resumed, a sync asked for) and each step of its status ([`crate::gitops::events`]).
pub fn docker_events(e: &Event, committed_at: Timestamp) -> Vec<Message> {
    let Object::GitSource(source) = e.object.as_ref() else {
        return docker_event(e, committed_at).into_iter().collect();
    };
    let time = match e.action {
        Action::Create => source.meta.created_at,
        Action::Update => source.meta.updated_at,
        Action::Delete => committed_at,
    };
    let nanos = time.unix_nanos();
    let message = |action: &str, mut attributes: BTreeMap<String, String>| {
        attributes.insert("name".into(), source.spec.name.clone());
        Message {
            kind: Kind::GitSource.as_str().to_string(),
            action: action.to_string(),
            actor: Actor {
                id: source.meta.id.clone(),
                attributes,
            },
            scope: "swarm".into(),
            time: nanos.div_euclid(1_000_000_000),
            time_nano: nanos,
        }
    };
    let prev = match e.prev.as_deref() {
        Some(Object::GitSource(p)) => Some(p),
        _ => None,
    };
    match (e.action, prev) {
        (Action::Create | Action::Delete, _) => {
            let attrs = BTreeMap::from([("repo".to_string(), source.spec.repo.clone())]);
            vec![message(&e.action.to_string(), attrs)]
        }
        (Action::Update, prev) => {
            let mut out = Vec::new();
            if let Some(p) = prev.filter(|p| p.spec != source.spec) {
                let mut attrs = BTreeMap::new();
                attr(
                    &mut attrs,
                    "suspended",
                    p.spec.suspended.to_string(),
                    source.spec.suspended.to_string(),
                );
                attr(
                    &mut attrs,
                    "ref",
                    p.spec.git_ref.clone(),
                    source.spec.git_ref.clone(),
                );
                out.push(message("update", attrs));
            }
            let steps = crate::gitops::events::update_steps(prev, source);
            out.extend(steps.into_iter().map(|s| message(s.action, s.attributes)));
            out
        }
    }
}

/// Whether `m` passes dockerd's event filters.
pub fn matches(f: &Filters, m: &Message) -> bool {
    let name = m
        .actor
        .attributes
        .get("name")
        .map(String::as_str)
        .unwrap_or("");
    let fuzzy = |key: &str| {
        f.any(key, |v| {
            m.actor.id == v || m.actor.id.starts_with(v) || name == v || name.starts_with(v)
        })
    };
    f.any("event", |v| v == m.action)
        && f.any("type", |v| v == m.kind)
        && f.any("scope", |v| v == m.scope)
        && FUZZY_KEYS.iter().all(|k| fuzzy(k))
        && (!f.contains("label") || f.labels_match("label", &m.actor.attributes))
}

/// `since`/`until`: Unix seconds with an optional fraction.
fn parse_time(q: &Query, key: &str) -> ApiResult<Option<i64>> {
    let Some(raw) = q.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "invalid value for {key}: {raw:?} is not a Unix timestamp"
        ))
    };
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().map_err(|_| bad())?;
    }
    Ok(Some(
        secs.saturating_mul(1_000_000_000).saturating_add(nanos),
    ))
}

/// `GET /events?since=&until=&filters=`.
pub async fn events(
    State(state): State<ApiState>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Response> {
    let filters = Filters::from_query(&q, FILTER_KEYS)?;
    let since = parse_time(&q, "since")?;
    let until = parse_time(&q, "until")?;
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            return Err(ApiError::bad_request(
                "`since` time cannot be after `until` time",
            ));
        }
    }
    let store = match state.node.state().await {
        SwarmState::Manager { manager, .. } => Some(manager.store.clone()),
        _ => None,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(pump(store, filters, since, until, tx));
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// How often an idle stream checks that its client is still there.
const IDLE_CHECK: Duration = Duration::from_secs(1);

async fn open_watch(store: &Store, replay: bool) -> Option<shoal_store::Watch> {
    let filter = WatchFilter::kinds([
        Kind::Service,
        Kind::Node,
        Kind::Network,
        Kind::Secret,
        Kind::Config,
        Kind::GitSource,
    ]);
    let request = |start| {
        WatchRequest::new(start)
            .filter(filter.clone())
            .progress_interval(IDLE_CHECK)
    };
    if replay {
        let floor = store.history_floor();
        if let Ok(w) = store.watch(request(WatchStart::After(floor))).await {
            return Some(w);
        }
    }
    store.watch(request(WatchStart::Now)).await.ok()
}

async fn pump(
    store: Option<Store>,
    filters: Filters,
    since: Option<i64>,
    until: Option<i64>,
    tx: mpsc::Sender<Bytes>,
) {
    let deadline = until.map(|u| {
        let left = u.saturating_sub(Timestamp::now().unix_nanos()).max(0);
        tokio::time::Instant::now() + Duration::from_nanos(left as u64)
    });
    let mut watch = match &store {
        Some(s) => open_watch(s, since.is_some()).await,
        None => None,
    };
    // The store's history keeps commits without the objects before each change (only live
    // watchers get those): remember the objects seen so that replayed updates still say what
    // changed (from the second change of an object within the replayed history on).
    let mut last_seen: HashMap<(Kind, String), Arc<Object>> = HashMap::new();
    loop {
        let next = async {
            match watch.as_mut() {
                Some(w) => w.next().await,
                None => {
                    tokio::time::sleep(IDLE_CHECK).await;
                    Some(Ok(WatchMessage::Progress { revision: 0 }))
                }
            }
        };
        let message = match deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(m) => m,
                Err(_) => return,
            },
            None => next.await,
        };
        match message {
            None | Some(Err(_)) => return,
            Some(Ok(WatchMessage::Commit(commit))) => {
                for e in &commit.events {
                    let key = (e.kind(), e.object.id().to_string());
                    let remembered = if e.action == Action::Delete {
                        last_seen.remove(&key)
                    } else {
                        last_seen.insert(key, e.object.clone())
                    };
                    let filled;
                    let e = if e.prev.is_none() && remembered.is_some() {
                        filled = Event {
                            action: e.action,
                            object: e.object.clone(),
                            prev: remembered,
                        };
                        &filled
                    } else {
                        e
                    };
                    for m in docker_events(e, commit.at) {
                        if since.is_some_and(|s| m.time_nano < s) {
                            continue;
                        }
                        // Object times are not strictly ordered with revisions: skip, and let the
                        // deadline end the stream.
                        if until.is_some_and(|u| m.time_nano > u) {
                            continue;
                        }
                        if !matches(&filters, &m) {
                            continue;
                        }
                        let mut line = serde_json::to_vec(&m).unwrap_or_default();
                        line.push(b'\n');
                        if tx.send(Bytes::from(line)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Some(Ok(_)) => {
                if tx.is_closed() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{ServiceMode, UpdateState, UpdateStatus};

    fn service(image: &str, replicas: u64) -> Service {
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "ID": "svc1", "Spec": {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": image}}},
            "UpdatedAt": "2026-01-01T00:00:01.5Z",
        }))
        .unwrap();
        s.spec.mode = ServiceMode::replicated(replicas);
        s
    }

    #[test]
    fn service_updates_name_what_changed() {
        let old = service("a:1", 1);
        let mut new = service("a:2", 3);
        new.update_status = Some(UpdateStatus {
            state: Some(UpdateState::Updating),
            ..Default::default()
        });
        let e = Event {
            action: Action::Update,
            object: Arc::new(Object::Service(new)),
            prev: Some(Arc::new(Object::Service(old))),
        };
        let m = docker_event(&e, Timestamp::now()).unwrap();
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Type": "service", "Action": "update",
                "Actor": {"ID": "svc1", "Attributes": {
                    "image.new": "a:2", "image.old": "a:1", "name": "web",
                    "replicas.new": "3", "replicas.old": "1", "updatestate.new": "updating"}},
                "scope": "swarm", "time": 1767225601i64, "timeNano": 1767225601500000000i64,
            })
        );
    }

    #[test]
    fn filters_match_like_dockerd() {
        let mut q = Query::new();
        q.insert(
            "filters".into(),
            r#"{"type":{"service":true},"service":{"we":true}}"#.into(),
        );
        let f = Filters::from_query(&q, FILTER_KEYS).unwrap();
        let e = Event {
            action: Action::Create,
            object: Arc::new(Object::Service(service("a:1", 1))),
            prev: None,
        };
        let m = docker_event(&e, Timestamp::now()).unwrap();
        assert!(matches(&f, &m));
        q.insert("filters".into(), r#"{"event":{"remove":true}}"#.into());
        assert!(!matches(&Filters::from_query(&q, FILTER_KEYS).unwrap(), &m));
        q.insert("filters".into(), r#"{"container":{"x":true}}"#.into());
        assert!(!matches(&Filters::from_query(&q, FILTER_KEYS).unwrap(), &m));
    }

    #[test]
    fn gitsource_status_changes_are_events_with_their_commit() {
        use shoal_store::model::{GitSource, GitSourceStatus};
        let mut old = GitSource::default();
        old.meta.id = "src1".into();
        old.spec.name = "prod".into();
        let mut new = old.clone();
        new.status = GitSourceStatus {
            last_fetched_commit: "b".repeat(40),
            last_applied_commit: "b".repeat(40),
            ..Default::default()
        };
        let e = Event {
            action: Action::Update,
            object: Arc::new(Object::GitSource(new)),
            prev: Some(Arc::new(Object::GitSource(old))),
        };
        let ms = docker_events(&e, Timestamp::now());
        let actions: Vec<&str> = ms.iter().map(|m| m.action.as_str()).collect();
        assert_eq!(actions, ["fetch", "apply"]);
        assert!(ms
            .iter()
            .all(|m| m.kind == "gitsource" && m.actor.id == "src1"));
        assert_eq!(ms[1].actor.attributes["name"], "prod");
        assert_eq!(ms[1].actor.attributes["commit"], "b".repeat(40));
        let mut q = Query::new();
        q.insert(
            "filters".into(),
            r#"{"type":{"gitsource":true},"event":{"apply":true}}"#.into(),
        );
        let f = Filters::from_query(&q, FILTER_KEYS).unwrap();
        assert!(!matches(&f, &ms[0]));
        assert!(matches(&f, &ms[1]));
    }

    #[test]
    fn timestamps_parse_with_fractions() {
        let mut q = Query::new();
        q.insert("since".into(), "12.5".into());
        assert_eq!(parse_time(&q, "since").unwrap(), Some(12_500_000_000));
        q.insert("since".into(), "x".into());
        assert!(parse_time(&q, "since").is_err());
    }
}
