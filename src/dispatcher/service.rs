//! The `Dispatcher` gRPC service: authorization, the redirect to the leader, and the mapping of
//! each RPC onto the current [`Term`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use shoal_proto::dispatcher::dispatcher_server::{Dispatcher as DispatcherRpc, DispatcherServer};
use shoal_proto::dispatcher::{
    AssignmentsMessage, AssignmentsRequest, HeartbeatRequest, HeartbeatResponse,
    NetworkStateMessage, NetworkStateRequest, PublishLogsMessage, PublishLogsResponse,
    SessionMessage, SessionRequest, SubscribeLogsMessage, SubscribeLogsRequest,
    UpdateTaskStatusRequest, UpdateTaskStatusResponse,
};
use shoal_store::model::{NodeDescription, NodeRole, Task, TaskState, TaskStatus};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::logs::{entry, leader_addr, options};
use super::term::Term;
use super::Shared;
use crate::ca::require_role;
use crate::net::authz::{check_store, Needs};

/// Response metadata key naming the leader's address when a follower refuses a session.
pub const LEADER_METADATA: &str = "shoal-leader";
/// How long a call waits for a term that is starting on this (new) leader.
const TERM_START_WAIT: Duration = Duration::from_secs(5);
/// Log lines per message relayed to a follower.
const RELAY_CHUNK: usize = 256;

type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves the dispatcher protocol from this manager.
pub struct DispatcherService {
    shared: Arc<Shared>,
}

impl DispatcherService {
    pub(crate) fn server(shared: Arc<Shared>) -> DispatcherServer<DispatcherService> {
        DispatcherServer::new(DispatcherService { shared })
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// The running term, waiting briefly while one starts; a follower answers UNAVAILABLE with
    /// the leader's address in the [`LEADER_METADATA`] metadata.
    async fn term(&self) -> Result<Arc<Term>, Status> {
        let mut rx = self.shared.term.subscribe();
        let store = &self.shared.store;
        if rx.borrow().is_none() && store.is_leader() {
            let _ = tokio::time::timeout(TERM_START_WAIT, rx.wait_for(|t| t.is_some())).await;
        }
        let current = rx.borrow().clone();
        if let Some(term) = current {
            term.wait_ready(TERM_START_WAIT).await?;
            return Ok(term);
        }
        let status = match leader_addr(store).await {
            Some(addr) if addr != store.config().advertise_addr => {
                let mut s = Status::unavailable(format!(
                    "this manager is not the leader; the leader is {addr}"
                ));
                if let Ok(v) = MetadataValue::try_from(addr.as_str()) {
                    s.metadata_mut().insert(LEADER_METADATA, v);
                }
                s
            }
            _ => Status::unavailable("no leader is elected; retry"),
        };
        Err(status)
    }
}

/// How often the network state feed looks for a new store revision.
const NETWORK_STATE_POLL: Duration = Duration::from_millis(20);

/// One state of the network state feed, encoded once for every stream.
pub(crate) type NetworkStateFeedItem = NetworkStateMessage;

impl Shared {
    /// The feed of the data plane's input: started on first use, then kept while the store runs.
    fn network_state_feed(&self) -> watch::Receiver<Option<Arc<NetworkStateFeedItem>>> {
        let mut slot = self.network_state.lock().unwrap();
        if let Some(rx) = slot.as_ref().filter(|_| !self.store.is_stopped()) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        tokio::spawn(feed_network_state(self.store.clone(), tx));
        *slot = Some(rx.clone());
        rx
    }
}

/// Publishes the data plane's input as of the store, then again whenever what it says changes
/// (not on every revision: most commits are task progress that changes nothing here), until
/// the store stops. Read once per change however many nodes listen.
async fn feed_network_state(
    store: shoal_store::Store,
    tx: watch::Sender<Option<Arc<NetworkStateFeedItem>>>,
) {
    let mut sent: Option<crate::dataplane::NetState> = None;
    let mut seen = 0;
    while !store.is_stopped() {
        let view = store.view();
        if view.revision() != seen {
            seen = view.revision();
            let state = crate::dataplane::NetState::from_view(&view);
            drop(view);
            if !sent.as_ref().is_some_and(|s| s.content_eq(&state)) {
                let msg = NetworkStateMessage {
                    revision: state.revision,
                    state_json: serde_json::to_vec(&state).unwrap_or_default(),
                };
                tx.send_replace(Some(Arc::new(msg)));
                sent = Some(state);
            }
        }
        tokio::time::sleep(NETWORK_STATE_POLL).await;
    }
}

/// Streams the feed to one node until it hangs up.
async fn stream_network_state(
    mut feed: watch::Receiver<Option<Arc<NetworkStateFeedItem>>>,
    tx: tokio::sync::mpsc::Sender<Result<NetworkStateMessage, Status>>,
) {
    loop {
        let current = feed.borrow_and_update().clone();
        if let Some(msg) = current {
            if tx.send(Ok((*msg).clone())).await.is_err() {
                return;
            }
        }
        tokio::select! {
            changed = feed.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

fn peer_host(addr: Option<SocketAddr>) -> Option<String> {
    addr.map(|a| a.ip().to_canonical().to_string())
}

#[tonic::async_trait]
impl DispatcherRpc for DispatcherService {
    type SessionStream = RpcStream<SessionMessage>;
    type AssignmentsStream = RpcStream<AssignmentsMessage>;
    type SubscribeLogsStream = RpcStream<SubscribeLogsMessage>;
    type NetworkStateStream = RpcStream<NetworkStateMessage>;

    async fn session(
        &self,
        request: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let addr = peer_host(request.remote_addr());
        let req = request.into_inner();
        let description = if req.description_json.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice::<NodeDescription>(&req.description_json).map_err(|e| {
                    Status::invalid_argument(format!("malformed node description: {e}"))
                })?,
            )
        };
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Node)?;
        let registered = term.register(&who.node_id, addr, description).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(registered.rx))))
    }

    async fn network_state(
        &self,
        request: Request<NetworkStateRequest>,
    ) -> Result<Response<Self::NetworkStateStream>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Node)?;
        term.check_session(&who.node_id, &request.get_ref().session_id)?;
        let feed = self.shared.network_state_feed();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(stream_network_state(feed, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Node)?;
        let period = term.heartbeat(&who.node_id, &request.get_ref().session_id)?;
        self.shared.metrics.heartbeats.inc();
        Ok(Response::new(HeartbeatResponse {
            period_ms: period.as_millis() as u64,
        }))
    }

    async fn assignments(
        &self,
        request: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Node)?;
        let rx = term.assignments(&who.node_id, &request.get_ref().session_id)?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Node)?;
        let req = request.into_inner();
        term.check_session(&who.node_id, &req.session_id)?;
        let view = term.store().view();
        let mut updates = Vec::with_capacity(req.updates.len());
        for u in req.updates {
            let status: TaskStatus = serde_json::from_slice(&u.status_json).map_err(|e| {
                Status::invalid_argument(format!("task {}: malformed status: {e}", u.task_id))
            })?;
            // Tasks that are gone, or (never, by construction) on another node, are ignored.
            match view.get::<Task>(&u.task_id) {
                Some(t) if t.node_id == who.node_id => {
                    if status.state == TaskState::Running && t.status.state < TaskState::Running {
                        let delay = status.timestamp.0 - t.meta.created_at.0;
                        if let Ok(delay) = delay.to_std() {
                            self.shared
                                .metrics
                                .scheduling_delay
                                .observe(delay.as_secs_f64());
                        }
                    }
                    updates.push((u.task_id, status))
                }
                Some(_) => tracing::warn!(
                    node = %who.node_id, task = %u.task_id,
                    "status report for a task of another node ignored"
                ),
                None => {}
            }
        }
        drop(view);
        self.shared
            .metrics
            .status_batch
            .observe(updates.len() as f64);
        term.update_statuses(&who.node_id, updates).await?;
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn publish_logs(
        &self,
        request: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Node)?;
        let broker = self.shared.broker.clone();
        let mut stream = request.into_inner();
        let mut checked = false;
        while let Some(msg) = stream.message().await? {
            if !checked {
                term.check_session(&who.node_id, &msg.session_id)?;
                checked = true;
            }
            let id = msg.subscription_id;
            if !msg.entries.is_empty() && !broker.publish(&who.node_id, &id, msg.entries).await {
                return Err(Status::cancelled("nobody listens to this subscription"));
            }
            if msg.close {
                let error = (!msg.error.is_empty()).then_some(msg.error);
                broker.node_done(&who.node_id, &id, error).await;
                break;
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }

    async fn subscribe_logs(
        &self,
        request: Request<SubscribeLogsRequest>,
    ) -> Result<Response<Self::SubscribeLogsStream>, Status> {
        let who = require_role(&request, &[NodeRole::Manager])?;
        let term = self.term().await?;
        check_store(&who, term.store(), Needs::Manager)?;
        let req = request.into_inner();
        let opts = options(&req.selector.unwrap_or_default());
        let lines = self
            .shared
            .broker
            .subscribe_local(&term, req.task_ids, &opts);
        let out = lines.ready_chunks(RELAY_CHUNK).map(|chunk| {
            let mut entries = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(l) => entries.push(entry(&l.task_id, &l.line)),
                    // Per-node problems are logged here; the follower's user sees the rest.
                    Err(e) => tracing::warn!("log subscription: {e}"),
                }
            }
            Ok(SubscribeLogsMessage { entries })
        });
        Ok(Response::new(Box::pin(out)))
    }
}
