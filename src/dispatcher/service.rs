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
    PublishLogsMessage, PublishLogsResponse, SessionMessage, SessionRequest, SubscribeLogsMessage,
    SubscribeLogsRequest, UpdateTaskStatusRequest, UpdateTaskStatusResponse,
};
use shoal_store::model::{NodeDescription, NodeRole, Task, TaskStatus};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::logs::{entry, leader_addr, options};
use super::term::Term;
use super::Shared;
use crate::ca::require_role;

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

fn peer_host(addr: Option<SocketAddr>) -> Option<String> {
    addr.map(|a| a.ip().to_canonical().to_string())
}

#[tonic::async_trait]
impl DispatcherRpc for DispatcherService {
    type SessionStream = RpcStream<SessionMessage>;
    type AssignmentsStream = RpcStream<AssignmentsMessage>;
    type SubscribeLogsStream = RpcStream<SubscribeLogsMessage>;

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
        let registered = term.register(&who.node_id, addr, description).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(registered.rx))))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
        let period = term.heartbeat(&who.node_id, &request.get_ref().session_id)?;
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
        let rx = term.assignments(&who.node_id, &request.get_ref().session_id)?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
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
                Some(t) if t.node_id == who.node_id => updates.push((u.task_id, status)),
                Some(_) => tracing::warn!(
                    node = %who.node_id, task = %u.task_id,
                    "status report for a task of another node ignored"
                ),
                None => {}
            }
        }
        drop(view);
        term.update_statuses(&who.node_id, updates).await?;
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn publish_logs(
        &self,
        request: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let who = require_role(&request, &[NodeRole::Worker, NodeRole::Manager])?;
        let term = self.term().await?;
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
        require_role(&request, &[NodeRole::Manager])?;
        let term = self.term().await?;
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
