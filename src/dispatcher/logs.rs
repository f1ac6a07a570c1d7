//! The log broker behind `docker service logs`: subscriptions travel to the agents that run the
//! tasks over their session streams; the agents publish the lines back with `PublishLogs`.
//!
//! Sessions end at the leader, so the leader's broker does the work. A follower's broker forwards
//! the subscription to the leader (`SubscribeLogs`, manager certificates only) and relays the
//! lines. Nothing is stored: a subscription lives as long as its stream.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::session_message::Kind as SessionKind;
use shoal_proto::dispatcher::{
    LogEntry, LogSelector, LogSubscription, SessionMessage, SubscribeLogsRequest,
};
use shoal_store::model::{Task, Timestamp};
use shoal_store::{Leadership, Store};
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint;

use crate::ca::ClientTls;

use super::term::Term;
use crate::exec::{LogLine, LogOptions, LogStream};

/// Lines buffered per subscription before publishers wait (gRPC flow control reaches agents).
const SUBSCRIPTION_BUFFER: usize = 1024;

/// One line of one task's output.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskLogLine {
    /// The task that wrote it.
    pub task_id: String,
    /// The line.
    pub line: LogLine,
}

/// Why a log subscription failed, or a part of it could not be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// No leader, or the leader cannot be reached: retry.
    #[error("{0}")]
    Unavailable(String),
    /// One node could not read some task's logs (the stream goes on with the others).
    #[error("{0}")]
    Node(String),
}

/// The stream [`LogBroker::subscribe`] returns. Items in order per task; `Err(LogError::Node)`
/// items are warnings and the stream continues; `Err(LogError::Unavailable)` ends it.
pub type LogSubscriptionStream = BoxStream<'static, Result<TaskLogLine, LogError>>;

type LineSender = mpsc::Sender<Result<TaskLogLine, LogError>>;

struct Subscription {
    tx: LineSender,
    /// Nodes that have not finished publishing (non-follow subscriptions end when it empties).
    pending: HashSet<String>,
    /// task ids per node, to tell them to stop.
    follow: bool,
}

#[derive(Default)]
struct Subscriptions {
    by_id: HashMap<String, Subscription>,
}

/// The log broker of one manager. Cheap to clone.
#[derive(Clone)]
pub struct LogBroker {
    store: Store,
    term: watch::Receiver<Option<Arc<Term>>>,
    subs: Arc<Mutex<Subscriptions>>,
    leader_tls: Option<ClientTls>,
}

/// Converts [`LogOptions`] to the wire selector.
pub fn selector(o: &LogOptions) -> LogSelector {
    LogSelector {
        stdout: o.stdout,
        stderr: o.stderr,
        follow: o.follow,
        tail: o.tail.map_or(-1, |t| t.min(i64::MAX as u64) as i64),
        since_unix_nanos: o.since.map_or(0, |t| t.unix_nanos()),
    }
}

/// Converts the wire selector to [`LogOptions`].
pub fn options(s: &LogSelector) -> LogOptions {
    LogOptions {
        stdout: s.stdout,
        stderr: s.stderr,
        follow: s.follow,
        tail: (s.tail >= 0).then_some(s.tail as u64),
        since: (s.since_unix_nanos != 0).then(|| Timestamp::from_unix_nanos(s.since_unix_nanos)),
    }
}

/// A log line on the wire.
pub fn entry(task_id: &str, line: &LogLine) -> LogEntry {
    LogEntry {
        task_id: task_id.to_string(),
        stream: line.stream.as_str().to_string(),
        timestamp_unix_nanos: line.timestamp.unix_nanos(),
        line: line.line.to_vec(),
    }
}

/// A line from the wire.
pub fn from_entry(e: LogEntry) -> TaskLogLine {
    TaskLogLine {
        task_id: e.task_id,
        line: LogLine {
            stream: if e.stream == "stderr" {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            },
            timestamp: Timestamp::from_unix_nanos(e.timestamp_unix_nanos),
            line: Bytes::from(e.line),
        },
    }
}

/// Removes its subscription (and tells the agents to stop) when the subscriber drops it.
struct Guarded {
    rx: mpsc::Receiver<Result<TaskLogLine, LogError>>,
    cancel: Option<Box<dyn FnOnce() + Send>>,
}

impl Stream for Guarded {
    type Item = Result<TaskLogLine, LogError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

impl LogBroker {
    pub(crate) fn new(
        store: Store,
        term: watch::Receiver<Option<Arc<Term>>>,
        leader_tls: Option<ClientTls>,
    ) -> Self {
        LogBroker {
            store,
            term,
            subs: Arc::default(),
            leader_tls,
        }
    }

    /// Streams the logs of `task_ids` (tasks of any nodes; unknown ids are ignored) as
    /// `options` select them. Without `follow` the stream ends once every node running one of the
    /// tasks has sent what it has; with `follow` it lasts until dropped. Works on any manager.
    pub async fn subscribe(
        &self,
        task_ids: Vec<String>,
        options: LogOptions,
    ) -> Result<LogSubscriptionStream, LogError> {
        if let Some(term) = self.term.borrow().clone() {
            return Ok(self.subscribe_local(&term, task_ids, &options));
        }
        self.subscribe_via_leader(task_ids, &options).await
    }

    /// Subscribes on the leader itself (the `SubscribeLogs` RPC lands here too).
    pub(crate) fn subscribe_local(
        &self,
        term: &Arc<Term>,
        task_ids: Vec<String>,
        options: &LogOptions,
    ) -> LogSubscriptionStream {
        let view = self.store.view();
        let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
        for id in task_ids {
            if let Some(t) = view.get::<Task>(&id) {
                if !t.node_id.is_empty() {
                    by_node.entry(t.node_id.clone()).or_default().push(id);
                }
            }
        }
        let id = shoal_store::model::new_id();
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let sel = selector(options);
        let mut pending = HashSet::new();
        // Register before asking the agents, so an early answer finds the subscription.
        self.subs.lock().unwrap().by_id.insert(
            id.clone(),
            Subscription {
                tx: tx.clone(),
                pending: by_node.keys().cloned().collect(),
                follow: options.follow,
            },
        );
        for (node, tasks) in &by_node {
            let msg = SessionMessage {
                kind: Some(SessionKind::SubscribeLogs(LogSubscription {
                    id: id.clone(),
                    task_ids: tasks.clone(),
                    selector: Some(sel),
                    close: false,
                })),
            };
            if term.send_to_session(node, msg) {
                pending.insert(node.clone());
            } else {
                let _ = tx.try_send(Err(LogError::Node(format!(
                    "node {node} is not connected; its tasks' logs are unavailable"
                ))));
            }
        }
        {
            let mut subs = self.subs.lock().unwrap();
            if pending.is_empty() && !options.follow {
                subs.by_id.remove(&id);
            } else if let Some(s) = subs.by_id.get_mut(&id) {
                s.pending.retain(|n| pending.contains(n));
            }
        }
        drop(tx);
        let broker = self.clone();
        let term = term.clone();
        let cancel = move || {
            broker.subs.lock().unwrap().by_id.remove(&id);
            for (node, tasks) in by_node {
                let msg = SessionMessage {
                    kind: Some(SessionKind::SubscribeLogs(LogSubscription {
                        id: id.clone(),
                        task_ids: tasks,
                        selector: None,
                        close: true,
                    })),
                };
                term.send_to_session(&node, msg);
            }
        };
        Box::pin(Guarded {
            rx,
            cancel: Some(Box::new(cancel)),
        })
    }

    async fn subscribe_via_leader(
        &self,
        task_ids: Vec<String>,
        options: &LogOptions,
    ) -> Result<LogSubscriptionStream, LogError> {
        let leader = leader_addr(&self.store).await.ok_or_else(|| {
            LogError::Unavailable("no leader is elected; retry when the swarm has one".into())
        })?;
        let tls = self.leader_tls.clone().ok_or_else(|| {
            LogError::Unavailable("this manager cannot reach the leader's log broker".into())
        })?;
        let unavailable = |e: String| LogError::Unavailable(format!("leader {leader}: {e}"));
        let (_, tls) = tls.current().map_err(|e| unavailable(e.to_string()))?;
        let channel = Endpoint::from_shared(format!("https://{leader}"))
            .map_err(|e| unavailable(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| unavailable(e.to_string()))?
            .connect()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let stream = DispatcherClient::new(channel)
            .subscribe_logs(SubscribeLogsRequest {
                task_ids,
                selector: Some(selector(options)),
            })
            .await
            .map_err(|s| unavailable(s.message().to_string()))?
            .into_inner();
        Ok(stream
            .flat_map(|msg| {
                let items: Vec<Result<TaskLogLine, LogError>> = match msg {
                    Ok(m) => m.entries.into_iter().map(|e| Ok(from_entry(e))).collect(),
                    Err(s) => vec![Err(LogError::Unavailable(s.message().to_string()))],
                };
                futures::stream::iter(items)
            })
            .boxed())
    }

    /// Lines an agent published for subscription `id`. Returns false when nobody listens any
    /// more (the agent stops publishing).
    pub(crate) async fn publish(&self, node_id: &str, id: &str, entries: Vec<LogEntry>) -> bool {
        let Some(tx) = self.sender(node_id, id) else {
            return false;
        };
        for e in entries {
            if tx.send(Ok(from_entry(e))).await.is_err() {
                return false;
            }
        }
        true
    }

    /// `node_id` finished publishing subscription `id` (with an error for some task, maybe).
    pub(crate) async fn node_done(&self, node_id: &str, id: &str, error: Option<String>) {
        let tx = {
            let mut subs = self.subs.lock().unwrap();
            let Some(s) = subs.by_id.get_mut(id) else {
                return;
            };
            s.pending.remove(node_id);
            let tx = s.tx.clone();
            if s.pending.is_empty() && !s.follow {
                subs.by_id.remove(id);
            }
            tx
        };
        if let Some(e) = error {
            let _ = tx.send(Err(LogError::Node(e))).await;
        }
    }

    fn sender(&self, node_id: &str, id: &str) -> Option<LineSender> {
        let subs = self.subs.lock().unwrap();
        subs.by_id
            .get(id)
            .filter(|s| s.pending.contains(node_id))
            .map(|s| s.tx.clone())
    }

    /// Ends every subscription (the term is over).
    pub(crate) fn fail_all(&self, why: &str) {
        let subs = std::mem::take(&mut self.subs.lock().unwrap().by_id);
        for (_, s) in subs {
            let _ = s.tx.try_send(Err(LogError::Unavailable(why.to_string())));
        }
    }
}

/// The address of the current leader's swarm listener, if one is known.
pub async fn leader_addr(store: &Store) -> Option<String> {
    let leader = match *store.leadership().borrow() {
        Leadership::Leader { .. } => return Some(store.config().advertise_addr.clone()),
        Leadership::Follower { leader } => leader,
    };
    let leader = match leader {
        Some(l) => l,
        None => store.leader().await?,
    };
    store
        .members()
        .into_iter()
        .find(|m| m.raft_id == leader)
        .map(|m| m.node.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_the_wire() {
        let o = LogOptions {
            stdout: true,
            stderr: false,
            follow: true,
            tail: Some(10),
            since: Some(Timestamp::from_unix_nanos(1_700_000_000_000_000_000)),
        };
        assert_eq!(options(&selector(&o)), o);
        let all = LogOptions::default();
        assert_eq!(options(&selector(&all)), all);
        let line = LogLine {
            stream: LogStream::Stderr,
            timestamp: Timestamp::from_unix_nanos(5),
            line: Bytes::from_static(b"hi\n"),
        };
        let back = from_entry(entry("t1", &line));
        assert_eq!(back.task_id, "t1");
        assert_eq!(back.line, line);
    }
}
