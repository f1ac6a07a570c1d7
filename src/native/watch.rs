//! `GET /shoal/v1/watch`: the store's watch as newline-delimited JSON, one [`WireMessage`] per
//! line, and what the HTTP and gRPC forms share: the parameters, opening the store's watch, and
//! the task that moves its messages to the client.
//!
//! Query parameters (repeatable ones also take comma-separated values): `kind`, `action`,
//! `label` (`key` or `key=value`), `stack`, `name_prefix`, `node` (tasks on that node: id,
//! name, hostname or unique id prefix); where to start: nothing (a snapshot, then changes),
//! `start=now`, or `after=R` (changes after revision `R`); `min_revision`,
//! `progress_interval` (`5s`), `buffer` (revisions the client may fall behind).
//!
//! A watch that cannot start answers with an error status and a [`WireError`] body (410 for
//! `compacted`); once streaming, it ends with an `{"type":"error",...}` line.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use shoal_store::model::Kind;
use shoal_store::{Action, Store, View, Watch, WatchError, WatchFilter, WatchRequest, WatchStart};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::wire::{self, code, WireError, WireMessage};
use super::{NativeError, NativeState};

/// Longest a client that stopped reading is given to take the message that ends its watch.
const FINAL_MESSAGE_GRACE: Duration = Duration::from_secs(30);
/// Messages queued between the store's watch and the connection.
const QUEUE: usize = 16;
/// Bounds of `progress_interval`.
const PROGRESS_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));
/// Most revisions a client may ask to fall behind.
const MAX_BUFFER: usize = 65_536;

/// Where a watch starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// The matching objects, then changes after them.
    #[default]
    Snapshot,
    /// Changes after the current revision (first message: a progress at it).
    Now,
    /// Changes after this revision.
    After(u64),
}

/// What a client asks of a watch, as the HTTP query and the gRPC request carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchParams {
    /// Object kinds (`service`, ...).
    pub kinds: Vec<String>,
    /// Actions (`create`, `update`, `remove`).
    pub actions: Vec<String>,
    /// Labels every object must carry (`key` or `key=value`).
    pub labels: Vec<String>,
    /// The stack.
    pub stack: Option<String>,
    /// A name prefix.
    pub name_prefix: Option<String>,
    /// Tasks on this node (id, name, hostname or id prefix).
    pub node: Option<String>,
    /// Where to start.
    pub start: Start,
    /// Wait until the manager has applied this revision before starting.
    pub min_revision: Option<u64>,
    /// Progress after this long idle (default 5 s).
    pub progress_interval: Option<Duration>,
    /// Revisions the client may fall behind (default 1024).
    pub buffer: Option<usize>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, NativeError> {
    v.parse()
        .map_err(|_| NativeError::invalid(format!("{key}={v:?} is not a number")))
}

impl WatchParams {
    /// Parses the query string of `GET /shoal/v1/watch`.
    pub fn from_query(query: &str) -> Result<Self, NativeError> {
        let mut p = WatchParams::default();
        let mut start = None;
        let mut after = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            let many = || {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            match key.as_ref() {
                "kind" => p.kinds.extend(many()),
                "action" => p.actions.extend(many()),
                "label" => p.labels.extend(many()),
                "stack" => p.stack = non_empty(value),
                "name_prefix" => p.name_prefix = non_empty(value),
                "node" => p.node = non_empty(value),
                "start" => start = Some(value),
                "after" => after = Some(number::<u64>("after", &value)?),
                "min_revision" => p.min_revision = Some(number("min_revision", &value)?),
                "progress_interval" => {
                    p.progress_interval =
                        Some(super::parse_duration(&value).map_err(NativeError::invalid)?)
                }
                "buffer" => p.buffer = Some(number("buffer", &value)?),
                other => {
                    return Err(NativeError::invalid(format!(
                        "unknown watch parameter {other:?}: use kind, action, label, stack, name_prefix, node, \
                         start, after, min_revision, progress_interval or buffer"
                    )))
                }
            }
        }
        p.start = match (start.as_deref(), after) {
            (None | Some("" | "snapshot"), None) => Start::Snapshot,
            (Some("now"), None) => Start::Now,
            (None | Some("after"), Some(r)) => Start::After(r),
            (Some(s), None) => {
                return Err(NativeError::invalid(format!(
                    "start={s:?}: use start=snapshot (the default), start=now, or after=REVISION"
                )))
            }
            (Some(s), Some(_)) => {
                return Err(NativeError::invalid(format!(
                    "start={s} and after= ask for two different starts: pass one of them"
                )))
            }
        };
        Ok(p)
    }

    /// The query string for these parameters ([`WatchParams::from_query`] reads it back).
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for k in &self.kinds {
            q.append_pair("kind", k);
        }
        for a in &self.actions {
            q.append_pair("action", a);
        }
        for l in &self.labels {
            q.append_pair("label", l);
        }
        if let Some(s) = &self.stack {
            q.append_pair("stack", s);
        }
        if let Some(p) = &self.name_prefix {
            q.append_pair("name_prefix", p);
        }
        if let Some(n) = &self.node {
            q.append_pair("node", n);
        }
        match self.start {
            Start::Snapshot => {}
            Start::Now => {
                q.append_pair("start", "now");
            }
            Start::After(r) => {
                q.append_pair("after", &r.to_string());
            }
        }
        if let Some(r) = self.min_revision {
            q.append_pair("min_revision", &r.to_string());
        }
        if let Some(d) = self.progress_interval {
            q.append_pair("progress_interval", &format!("{}ms", d.as_millis()));
        }
        if let Some(b) = self.buffer {
            q.append_pair("buffer", &b.to_string());
        }
        q.finish()
    }

    /// The store's watch request, with the node resolved in `view`.
    pub fn request(&self, view: &View) -> Result<WatchRequest, NativeError> {
        let kinds = self
            .kinds
            .iter()
            .map(|k| parse_kind(k))
            .collect::<Result<Vec<_>, _>>()?;
        let actions = self
            .actions
            .iter()
            .map(|a| parse_action(a))
            .collect::<Result<Vec<_>, _>>()?;
        for l in &self.labels {
            if l.is_empty() || l.starts_with('=') {
                return Err(NativeError::invalid(format!(
                    "label {l:?} has no key: use key or key=value"
                )));
            }
        }
        let node_id = match &self.node {
            None => None,
            Some(key) => Some(
                crate::api::resolve::node(view, key)
                    .map_err(|e| {
                        NativeError::invalid(format!(
                            "{}; `docker node ls` lists the nodes",
                            e.message
                        ))
                    })?
                    .meta
                    .id
                    .clone(),
            ),
        };
        let filter = WatchFilter {
            kinds,
            actions,
            node_id,
            labels: self.labels.clone(),
            stack: self.stack.clone(),
            name_prefix: self.name_prefix.clone(),
            ..Default::default()
        };
        let start = match self.start {
            Start::Snapshot => WatchStart::Snapshot,
            Start::Now => WatchStart::Now,
            Start::After(r) => WatchStart::After(r),
        };
        let mut req = WatchRequest::new(start).filter(filter);
        if let Some(r) = self.min_revision.filter(|r| *r > 0) {
            req = req.min_revision(r);
        }
        if let Some(d) = self.progress_interval {
            let (lo, hi) = PROGRESS_BOUNDS;
            if d < lo || d > hi {
                return Err(NativeError::invalid(format!(
                    "progress_interval {d:?} is out of range: use {lo:?} to {hi:?}"
                )));
            }
            req = req.progress_interval(d);
        }
        if let Some(b) = self.buffer {
            if b == 0 || b > MAX_BUFFER {
                return Err(NativeError::invalid(format!(
                    "buffer {b} is out of range: use 1 to {MAX_BUFFER} revisions"
                )));
            }
            req = req.buffer(b);
        }
        Ok(req)
    }
}

fn parse_kind(k: &str) -> Result<Kind, NativeError> {
    let singular = k.strip_suffix('s').filter(|s| s.parse::<Kind>().is_ok());
    singular.unwrap_or(k).parse().map_err(|_| {
        let all: Vec<&str> = Kind::ALL.iter().map(Kind::as_str).collect();
        NativeError::invalid(format!("unknown kind {k:?}: use one of {}", all.join(", ")))
    })
}

fn parse_action(a: &str) -> Result<Action, NativeError> {
    match a {
        "create" => Ok(Action::Create),
        "update" => Ok(Action::Update),
        "remove" | "delete" => Ok(Action::Delete),
        _ => Err(NativeError::invalid(format!(
            "unknown action {a:?}: use create, update or remove"
        ))),
    }
}

/// The answer to a watch that failed to start.
pub fn start_error(e: &WatchError) -> NativeError {
    let status = match e {
        WatchError::Compacted { .. } => StatusCode::GONE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    NativeError {
        status,
        error: WireError::from_watch(e),
    }
}

/// Opens the store's watch for `params` and starts moving its messages to the returned queue,
/// which ends after an [`WireMessage::Error`] or when the receiver is dropped.
pub async fn open(
    store: &Store,
    params: &WatchParams,
) -> Result<mpsc::Receiver<WireMessage>, NativeError> {
    let req = params.request(&store.view())?;
    let filter = req.filter.clone();
    let now = req.start == WatchStart::Now;
    let watch = store.watch(req).await.map_err(|e| start_error(&e))?;
    // A watch from now tells its revision at once, so a client knows where to resume from
    // even if it is cut off before anything happens.
    let first = now.then(|| WireMessage::Progress {
        revision: watch.revision(),
    });
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(pump(watch, filter, first, tx));
    Ok(rx)
}

/// Moves messages from the store's watch to the client. While the client is slow, `send`
/// waits and the store's bounded buffer fills: it ends the watch with `Overflow` rather than
/// grow, and that error is the last message.
async fn pump(
    mut watch: Watch,
    filter: WatchFilter,
    first: Option<WireMessage>,
    tx: mpsc::Sender<WireMessage>,
) {
    if let Some(m) = first {
        if tx.send(m).await.is_err() {
            return;
        }
    }
    let error = loop {
        match watch.next().await {
            Some(Ok(m)) => {
                for w in wire::from_store(&m, &filter) {
                    if tx.send(w).await.is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => break WireError::from_watch(&e),
            None => {
                let last = watch.revision();
                let mut e = WireError::new(
                    code::UNAVAILABLE,
                    format!(
                        "this manager's store ended its watches (it is shutting down or installed a snapshot); \
                         resume after revision {last}"
                    ),
                );
                e.last_delivered = Some(last);
                break e;
            }
        }
    };
    let _ = tokio::time::timeout(FINAL_MESSAGE_GRACE, tx.send(WireMessage::Error(error))).await;
}

fn line(m: &WireMessage) -> Bytes {
    let mut out = serde_json::to_vec(m).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// `GET /shoal/v1/watch`.
pub async fn watch<S: NativeState>(
    State(state): State<S>,
    RawQuery(query): RawQuery,
) -> Result<Response, NativeError> {
    let params = WatchParams::from_query(query.as_deref().unwrap_or(""))?;
    let store = state.store().await?;
    let rx = open(&store, &params).await?;
    let body = Body::from_stream(ReceiverStream::new(rx).map(|m| Ok::<_, Infallible>(line(&m))));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_through_the_query() {
        let p = WatchParams {
            kinds: vec!["service".into(), "task".into()],
            actions: vec!["create".into()],
            labels: vec!["tier=front end".into(), "a&b".into()],
            stack: Some("st".into()),
            name_prefix: Some("st_".into()),
            node: Some("node-1".into()),
            start: Start::After(42),
            min_revision: Some(42),
            progress_interval: Some(Duration::from_millis(250)),
            buffer: Some(8),
        };
        assert_eq!(WatchParams::from_query(&p.to_query()).unwrap(), p);
        let now = WatchParams::from_query("kind=service,task&start=now").unwrap();
        assert_eq!(now.kinds, ["service", "task"]);
        assert_eq!(now.start, Start::Now);
        assert_eq!(WatchParams::from_query("").unwrap().start, Start::Snapshot);
    }

    #[test]
    fn bad_parameters_say_what_to_use() {
        let e = WatchParams::from_query("start=now&after=3").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.error.message.contains("pass one of them"),
            "{}",
            e.error.message
        );
        let e = WatchParams::from_query("kinds=service").unwrap_err();
        assert!(
            e.error.message.contains("unknown watch parameter"),
            "{}",
            e.error.message
        );
        assert!(WatchParams::from_query("after=x").is_err());
        assert!(WatchParams::from_query("start=later").is_err());
        assert!(parse_kind("services").is_ok());
        let e = parse_kind("pods").unwrap_err();
        assert!(
            e.error.message.contains("service, task"),
            "{}",
            e.error.message
        );
        assert!(parse_action("remove").is_ok());
        assert!(parse_action("explode").is_err());
    }
}
