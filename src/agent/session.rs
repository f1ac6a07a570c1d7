//! The agent's sessions with the managers: dial one, register, then run the heartbeat loop, the
//! assignments stream, the status pump and the session stream together until any of them fails;
//! then back off and dial again (another manager, or the leader a follower named).

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::session_message::Kind as SessionKind;
use shoal_proto::dispatcher::{
    AssignmentsRequest, HeartbeatRequest, NetworkStateRequest, SessionRequest, TaskStatusUpdate,
    UpdateTaskStatusRequest,
};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::Code;

use super::connect::{Backoff, Connections, Managers};
use super::logs::LogPublishers;
use super::reporter::Reporter;
use super::worker::Worker;
use crate::dispatcher::LEADER_METADATA;

/// Deadline of a heartbeat call (SwarmKit's dispatcher RPC timeout).
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of a status call (it waits for the store commit).
const STATUS_TIMEOUT: Duration = Duration::from_secs(15);
/// Reports per status call.
const STATUS_BATCH: usize = 1000;
/// How long the pump lets reports gather before a call: a task that goes through several states
/// at once (a fast executor) then costs one call, not one per state.
const STATUS_GATHER: Duration = Duration::from_millis(5);

/// Where the agent stands, for callers and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// The manager of the current session, if one is established.
    pub manager: Option<String>,
    /// Sessions established so far.
    pub sessions: u64,
    /// The role the swarm gives this node (its Node object's observed role, as last sent by
    /// the dispatcher): the node runtime follows it to promote or demote itself.
    pub role: Option<shoal_store::model::NodeRole>,
    /// The roots the swarm trusts (PEM), as last sent by the dispatcher: the node renews its
    /// certificate when they change (a root rotation).
    pub trust_bundle: Option<String>,
}

/// Publishes the role and the trust bundle carried by a session state message, if they changed.
fn note_role(ctx: &SessionContext, node_json: &[u8], trust_bundle: &str) {
    if !trust_bundle.is_empty() {
        ctx.connection.send_if_modified(|c| {
            let changed = c.trust_bundle.as_deref() != Some(trust_bundle);
            c.trust_bundle = Some(trust_bundle.to_string());
            changed
        });
    }
    let Ok(node) = serde_json::from_slice::<shoal_store::model::Node>(node_json) else {
        return;
    };
    ctx.connection.send_if_modified(|c| {
        let changed = c.role != Some(node.role);
        c.role = Some(node.role);
        changed
    });
}

/// Everything a session needs from its agent.
pub struct SessionContext {
    /// The node's description as JSON (sent at registration).
    pub description_json: Vec<u8>,
    /// Managers to dial.
    pub managers: Managers,
    /// Connections.
    pub connections: Connections,
    /// The worker.
    pub worker: Worker,
    /// The reporter.
    pub reporter: Reporter,
    /// Log subscriptions being served.
    pub logs: LogPublishers,
    /// Published connection state.
    pub connection: watch::Sender<Connection>,
    /// The data plane's input, as the leader streams it.
    pub network_state: watch::Sender<Option<Arc<crate::dataplane::NetState>>>,
}

enum End {
    /// A follower named the leader: dial it now.
    Redirect(String),
    /// Anything else: back off and dial again.
    Failed(String),
}

/// Runs sessions until `stop` fires.
pub async fn run(ctx: Arc<SessionContext>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    let mut next: Option<String> = None;
    let mut strays_checked = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(addr) = next.take().or_else(|| ctx.managers.pick()) else {
            tracing::warn!("agent: no manager address known");
            tokio::time::sleep(Backoff::MAX).await;
            continue;
        };
        let established = std::sync::atomic::AtomicBool::new(false);
        let end = tokio::select! {
            end = session(&ctx, &addr, &established, &mut strays_checked) => end,
            _ = stop.wait_for(|s| *s) => return,
        };
        ctx.logs.stop_all();
        ctx.connection.send_modify(|c| c.manager = None);
        if established.load(std::sync::atomic::Ordering::Relaxed) {
            backoff.reset();
        }
        match end {
            End::Redirect(leader) => {
                tracing::debug!(from = %addr, to = %leader, "agent: redirected to the leader");
                // Sessions only live on the leader: an idle connection to this manager would
                // be held for nothing (by every agent, on every follower).
                if leader != addr {
                    ctx.connections.forget(&addr);
                }
                next = Some(leader);
                // A short pause: the leader may be about to change again.
                let delay = Backoff::INITIAL.mul_f64(rand::random::<f64>());
                tokio::time::sleep(delay).await;
            }
            End::Failed(why) => {
                tracing::info!(manager = %addr, "agent: session ended: {why}");
                ctx.managers.failed(&addr);
                ctx.connections.forget(&addr);
                let delay = backoff.next_delay();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

fn status_end(s: tonic::Status) -> End {
    if s.code() == Code::Unavailable {
        if let Some(leader) = s
            .metadata()
            .get(LEADER_METADATA)
            .and_then(|v| v.to_str().ok())
        {
            return End::Redirect(leader.to_string());
        }
    }
    End::Failed(format!("{:?}: {}", s.code(), s.message()))
}

async fn session(
    ctx: &SessionContext,
    addr: &str,
    established: &std::sync::atomic::AtomicBool,
    strays_checked: &mut bool,
) -> End {
    let mut client = match ctx.connections.client(addr).await {
        Ok(c) => c,
        Err(e) => return End::Failed(e),
    };
    let mut stream = match client
        .session(SessionRequest {
            description_json: ctx.description_json.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return status_end(s),
    };
    let session_id = match stream.message().await {
        Ok(Some(msg)) => match msg.kind {
            Some(SessionKind::State(state)) => {
                set_managers(ctx, &state.managers);
                note_role(ctx, &state.node_json, &state.root_ca_pem);
                state.session_id
            }
            _ => return End::Failed("the session did not start with its state".into()),
        },
        Ok(None) => return End::Failed("the session stream ended at once".into()),
        Err(s) => return status_end(s),
    };
    established.store(true, std::sync::atomic::Ordering::Relaxed);
    ctx.connection.send_modify(|c| {
        c.manager = Some(addr.to_string());
        c.sessions += 1;
    });
    tracing::info!(manager = %addr, "agent: session established");

    let messages = async {
        loop {
            match stream.message().await {
                Ok(Some(msg)) => match msg.kind {
                    Some(SessionKind::State(state)) => {
                        set_managers(ctx, &state.managers);
                        note_role(ctx, &state.node_json, &state.root_ca_pem);
                    }
                    Some(SessionKind::SubscribeLogs(sub)) => {
                        ctx.logs
                            .handle(sub, &ctx.worker, client.clone(), session_id.clone())
                    }
                    None => {}
                },
                Ok(None) => return End::Failed("the manager ended the session".into()),
                Err(s) => return status_end(s),
            }
        }
    };
    tokio::select! {
        end = messages => end,
        end = heartbeats(client.clone(), &session_id) => end,
        end = assignments(ctx, client.clone(), &session_id, strays_checked) => end,
        end = pump_statuses(ctx, client.clone(), &session_id) => end,
        end = network_state(ctx, client.clone(), &session_id) => end,
    }
}

/// Follows the leader's network state stream into `ctx.network_state`. A manager that does
/// not serve it (an older shoal) leaves the data plane as it is rather than ending the session.
async fn network_state(
    ctx: &SessionContext,
    mut client: DispatcherClient<Channel>,
    session_id: &str,
) -> End {
    let mut stream = match client
        .network_state(NetworkStateRequest {
            session_id: session_id.to_string(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::Unimplemented => return std::future::pending().await,
        Err(s) => return status_end(s),
    };
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return End::Failed("the network state stream ended".into()),
            Err(s) => return status_end(s),
        };
        match serde_json::from_slice::<crate::dataplane::NetState>(&msg.state_json) {
            Ok(state) => {
                ctx.network_state.send_replace(Some(Arc::new(state)));
            }
            Err(e) => tracing::warn!(revision = msg.revision, "malformed network state: {e}"),
        }
    }
}

fn set_managers(ctx: &SessionContext, list: &[shoal_proto::dispatcher::WeightedManager]) {
    ctx.managers
        .set(list.iter().map(|m| (m.addr.clone(), m.weight)).collect());
}

async fn heartbeats(mut client: DispatcherClient<Channel>, session_id: &str) -> End {
    loop {
        let mut req = tonic::Request::new(HeartbeatRequest {
            session_id: session_id.to_string(),
        });
        req.set_timeout(RPC_TIMEOUT);
        let period = match tokio::time::timeout(RPC_TIMEOUT, client.heartbeat(req)).await {
            Ok(Ok(r)) => Duration::from_millis(r.into_inner().period_ms.max(10)),
            Ok(Err(s)) => return status_end(s),
            Err(_) => return End::Failed("heartbeat timed out".into()),
        };
        tokio::time::sleep(period).await;
    }
}

async fn assignments(
    ctx: &SessionContext,
    mut client: DispatcherClient<Channel>,
    session_id: &str,
    strays_checked: &mut bool,
) -> End {
    let mut stream = match client
        .assignments(AssignmentsRequest {
            session_id: session_id.to_string(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return status_end(s),
    };
    ctx.worker.reset_sequence();
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return End::Failed("the assignments stream ended".into()),
            Err(s) => return status_end(s),
        };
        let complete =
            msg.r#type == shoal_proto::dispatcher::assignments_message::Type::Complete as i32;
        if let Err(e) = ctx.worker.apply(msg) {
            return End::Failed(e.to_string());
        }
        if complete && !*strays_checked {
            *strays_checked = true;
            let worker = ctx.worker.clone();
            tokio::spawn(async move { worker.remove_strays().await });
        }
    }
}

async fn pump_statuses(
    ctx: &SessionContext,
    mut client: DispatcherClient<Channel>,
    session_id: &str,
) -> End {
    // A new session: the manager may have missed reports (a new leader, a lost batch).
    for (id, status) in ctx.worker.statuses() {
        ctx.reporter.report(&id, status);
    }
    loop {
        ctx.reporter.ready().await;
        tokio::time::sleep(STATUS_GATHER).await;
        let batch = ctx.reporter.batch(STATUS_BATCH);
        let updates = batch
            .iter()
            .filter_map(|(id, status)| {
                Some(TaskStatusUpdate {
                    task_id: id.clone(),
                    status_json: serde_json::to_vec(status).ok()?,
                })
            })
            .collect();
        let mut req = tonic::Request::new(UpdateTaskStatusRequest {
            session_id: session_id.to_string(),
            updates,
        });
        req.set_timeout(STATUS_TIMEOUT);
        match client.update_task_status(req).await {
            Ok(_) => ctx.reporter.sent(&batch),
            Err(s) => return status_end(s),
        }
    }
}
