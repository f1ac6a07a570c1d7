//! The agent: runs on every node (managers too) and makes the node do what its assignments say.
//!
//! - **Sessions** ([`session`]): the agent dials a manager from its list (the node's membership,
//!   then the weighted list each session sends), registers, heart-beats at the period the
//!   dispatcher answers, and follows the `shoal-leader` redirect of a follower. Any failure ends
//!   the session; the next one starts after SwarmKit's backoff (100 ms, then
//!   `min(100 ms + 2 x previous, 8 s)`, each wait drawn uniformly below the bound) on another
//!   manager when there is one.
//! - **Tasks** ([`worker`], [`task_runner`]): one runner per assigned task drives its executor
//!   controller with [`crate::exec::drive`] (prepare -> start -> wait -> shutdown -> remove) from
//!   the agent's own observed state towards the latest desired state. Desired READY holds a task;
//!   SHUTDOWN stops it with its stop signal and grace period; a task that leaves the assignments
//!   (REMOVE, or missing from a COMPLETE set) is shut down and its workload removed.
//! - **Statuses** ([`reporter`]): every state change is reported; the newest per task, never
//!   backwards, retried until a manager accepts it, and every task's status is re-sent on each
//!   new session.
//! - **Persistence** ([`storage`]): each task and its last observed status are recorded locally,
//!   so a restarted agent resumes them at once and its controllers adopt the running workloads
//!   (by task id) instead of starting duplicates. Workloads of this node that no task accounts
//!   for after the first COMPLETE set are removed.
//!
//! The agent never stops workloads because it lost its managers: like SwarmKit, a partitioned
//! node keeps running until a manager tells it otherwise.

pub mod connect;
pub mod executor;
pub mod logs;
pub mod reporter;
pub mod session;
pub mod simnodes;
pub mod storage;
pub mod task_runner;
pub mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use shoal_store::model::NodeDescription;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ca::ClientTls;
use crate::exec::Executor;
pub use executor::{ExecutorChoice, ExecutorKind};
pub use session::Connection;
use storage::TaskStore;

/// How an agent is set up.
pub struct AgentConfig {
    /// This node's id (its certificate's CN).
    pub node_id: String,
    /// Managers to dial first (`host:port`).
    pub managers: Vec<String>,
    /// How the agent authenticates to managers: the node's certificate (live: renewed
    /// certificates apply to the next connection).
    pub tls: ClientTls,
    /// Runs the tasks.
    pub executor: Arc<dyn Executor>,
    /// Records the tasks.
    pub store: Arc<dyn TaskStore>,
    /// Overrides the host name in the executor's description (several nodes on one host).
    pub hostname: Option<String>,
}

/// A running agent.
pub struct Agent {
    worker: worker::Worker,
    stop: watch::Sender<bool>,
    connection: watch::Receiver<Connection>,
    network_state: watch::Receiver<Option<Arc<crate::dataplane::NetState>>>,
    sessions: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// What the sessions share (tests look at the connections held).
    #[cfg(test)]
    ctx: Arc<session::SessionContext>,
}

impl Agent {
    /// Starts the agent: resumes the recorded tasks and starts dialing managers.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Agent> {
        let mut description: NodeDescription = match config.executor.describe().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("the executor cannot describe this node yet: {e}");
                NodeDescription::default()
            }
        };
        if let Some(h) = &config.hostname {
            description.hostname = h.clone();
        }
        // The trust root and issuer of the certificate this node presents, until the CA
        // records them as it signs the next one.
        if let crate::ca::ClientTls::Live(live) = &config.tls {
            if let Ok(info) = live.get().and_then(|c| crate::ca::tls_info(&c.ca_pem)) {
                description.tls_info = info;
            }
        }
        let reporter = reporter::Reporter::new();
        let worker = worker::Worker::start(
            &config.node_id,
            config.executor.clone(),
            config.store.clone(),
            reporter.clone(),
        )?;
        let (connection_tx, connection) = watch::channel(Connection::default());
        let (network_state_tx, network_state) = watch::channel(None);
        let ctx = Arc::new(session::SessionContext {
            description_json: serde_json::to_vec(&description)?,
            managers: connect::Managers::new(&config.managers),
            connections: connect::Connections::new(config.tls.clone()),
            worker: worker.clone(),
            reporter,
            logs: logs::LogPublishers::default(),
            connection: connection_tx,
            network_state: network_state_tx,
        });
        let (stop, stop_rx) = watch::channel(false);
        let sessions = tokio::spawn(session::run(ctx.clone(), stop_rx));
        Ok(Agent {
            worker,
            stop,
            connection,
            network_state,
            sessions: std::sync::Mutex::new(Some(sessions)),
            #[cfg(test)]
            ctx,
        })
    }

    /// Changes of the agent's connection.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.connection.clone()
    }

    /// The data plane's input, as the leader's dispatcher streams it (`None` until the first
    /// state arrives).
    pub fn network_state(&self) -> watch::Receiver<Option<Arc<crate::dataplane::NetState>>> {
        self.network_state.clone()
    }

    /// Turns true when the agent stops (it left the swarm or the node shuts down).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Ids of the tasks the agent drives now.
    pub fn task_ids(&self) -> Vec<String> {
        self.worker.task_ids()
    }

    /// The managers the agent holds a connection to.
    #[cfg(test)]
    pub(crate) fn connected_managers(&self) -> Vec<String> {
        self.ctx.connections.addrs()
    }

    async fn stop_sessions(&self) {
        let _ = self.stop.send(true);
        let handle = self.sessions.lock().unwrap().take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Stops the agent, leaving every workload running (a restarted agent adopts them).
    pub async fn stop(&self) {
        self.stop_sessions().await;
        self.worker.stop().await;
    }

    /// Stops the agent and removes every task's workload and record (the node leaves).
    pub async fn leave(&self) {
        self.stop_sessions().await;
        self.worker.remove_all().await;
    }
}
