//! The dispatcher: the manager end of the agent protocol (`proto/dispatcher.proto`), served on
//! every manager's swarm listener.
//!
//! # Where sessions terminate
//!
//! Every session ends at the **leader**, as in SwarmKit: liveness is decided by whoever sees the
//! heartbeats, and one place must decide it. Followers do not proxy: a follower answers
//! `Session` (and every other call) with `UNAVAILABLE` and the leader's address in the
//! `shoal-leader` response metadata, and the agent dials the leader directly. That costs one
//! extra round trip after a failover instead of a second hop on every heartbeat, and keeps a
//! follower out of the data path. The session's managers list gives the leader a higher weight,
//! so agents usually dial it first. When this manager stops leading, the term ends: every
//! session and assignment stream is closed with `UNAVAILABLE` and the agents reconnect.
//!
//! # Liveness
//!
//! Heartbeats live in memory on the leader ([`registry`]); only **transitions** are written:
//! - a session registration marks the node READY (with the address the TLS peer connected from
//!   and the description the agent sent) when the stored node says otherwise, and waits for that
//!   write before answering;
//! - a registered node that sends no heartbeat for `period x 3` is marked DOWN with the message
//!   `heartbeat failure`, and its session is ended; the controllers then replace its tasks;
//! - when a term starts, every node that is not DOWN gets a grace period of `period x 6` to open a
//!   session with the new leader before it can be marked DOWN (nodes are not set UNKNOWN in the
//!   store, so a failover writes nothing for healthy nodes and moves no workload); a node that
//!   joins gets the same grace to open its first session.
//!
//! The period is the swarm's `Dispatcher.HeartbeatPeriod` (default 5 s); each heartbeat answer
//! is jittered by +-10 % so agents that registered together spread out. Node writes are fenced
//! to the term, so a deposed leader cannot mark anything DOWN.
//!
//! # Assignments and status
//!
//! One store watch feeds an index of tasks by node ([`assignments`]); each session's
//! `Assignments` stream gets a COMPLETE set, then one INCREMENTAL message per commit that
//! touches the node, chained by sequence numbers. Status reports are batched ([`status`]): the
//! newest per task, stale and repeated ones dropped, many tasks per transaction.
//!
//! # Logs
//!
//! [`LogBroker`] serves `docker service logs`: see [`logs`].

pub mod assignments;
pub mod logs;
pub mod metrics;
pub mod node_writer;
pub mod registry;
pub mod service;
pub mod status;
pub mod term;

#[cfg(test)]
mod bad_input_tests;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::ca::ClientTls;
use shoal_store::{Leadership, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use logs::{LogBroker, LogError, LogSubscriptionStream, TaskLogLine};
pub use metrics::DispatcherMetrics;
pub use service::{DispatcherService, LEADER_METADATA};
pub use term::HEARTBEAT_FAILURE;

use shoal_proto::dispatcher::dispatcher_server::DispatcherServer;
use term::Term;

/// Tunables (SwarmKit's defaults).
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// A registered node is DOWN after `period x heartbeat_multiplier` without a heartbeat.
    pub heartbeat_multiplier: u32,
    /// Nodes get `period x grace_multiplier` to (re)register after a leader change or a join.
    pub grace_multiplier: u32,
    /// Status reports are written at most this long after the first one of a batch arrived.
    /// Zero writes them as soon as the previous pass has committed: reports that arrive during
    /// a pass share the next one, so batches grow with the load and an idle swarm adds no wait.
    pub status_flush_interval: Duration,
    /// ... or as soon as this many tasks have a report queued.
    pub status_flush_items: usize,
    /// How often expired heartbeats are looked for.
    pub sweep_interval: Duration,
    /// TLS to reach the leader's dispatcher (a follower forwards log subscriptions).
    pub leader_client_tls: Option<ClientTls>,
    /// Where the dispatcher records what it does (the node's `/metrics`).
    pub metrics: DispatcherMetrics,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            metrics: DispatcherMetrics::default(),
            heartbeat_multiplier: 3,
            grace_multiplier: 6,
            status_flush_interval: Duration::ZERO,
            status_flush_items: 1000,
            sweep_interval: Duration::from_millis(250),
            leader_client_tls: None,
        }
    }
}

pub(crate) struct Shared {
    store: Store,
    term: watch::Sender<Option<Arc<Term>>>,
    broker: LogBroker,
    metrics: DispatcherMetrics,
    /// The data plane input every node's `NetworkState` stream sends, computed once per change
    /// for all of them (started by the first stream).
    network_state:
        std::sync::Mutex<Option<watch::Receiver<Option<Arc<service::NetworkStateFeedItem>>>>>,
}

/// A manager's dispatcher. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    supervisor: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Dispatcher {
    /// Starts following `store`'s leadership: while this manager leads, the dispatcher serves
    /// sessions; otherwise it redirects agents to the leader.
    pub fn start(store: Store, config: DispatcherConfig) -> Dispatcher {
        let (term_tx, term_rx) = watch::channel(None);
        let broker = LogBroker::new(store.clone(), term_rx, config.leader_client_tls.clone());
        let shared = Arc::new(Shared {
            store,
            term: term_tx,
            broker,
            metrics: config.metrics.clone(),
            network_state: std::sync::Mutex::new(None),
        });
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(shared.clone(), config, stop_rx));
        Dispatcher {
            shared,
            stop,
            supervisor: Arc::new(std::sync::Mutex::new(Some(supervisor))),
        }
    }

    /// The gRPC service to add to the swarm listener.
    pub fn server(&self) -> DispatcherServer<DispatcherService> {
        DispatcherService::server(self.shared.clone())
    }

    /// The log broker (`docker service logs`).
    pub fn log_broker(&self) -> LogBroker {
        self.shared.broker.clone()
    }

    /// The dispatcher's metrics.
    pub fn metrics(&self) -> &DispatcherMetrics {
        &self.shared.metrics
    }

    /// Agent sessions open now (none unless this manager leads).
    pub fn session_count(&self) -> usize {
        self.shared
            .term
            .borrow()
            .as_ref()
            .map_or(0, |t| t.session_count())
    }

    /// Whether this dispatcher currently serves sessions (this manager leads).
    pub fn is_serving(&self) -> bool {
        self.shared.term.borrow().is_some()
    }

    /// Stops serving: ends every session.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.supervisor.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn leads(lead: &watch::Receiver<Leadership>, term: u64) -> bool {
    matches!(*lead.borrow(), Leadership::Leader { term: t } if t == term)
}

/// Waits for this replica to apply everything committed before it led (so the first COMPLETE
/// sets are not older than what agents already run). Retries until it works or the term ends.
async fn catch_up(store: &Store, lead: &watch::Receiver<Leadership>, term: u64) -> bool {
    while leads(lead, term) {
        match store.read_index().await {
            Ok(index) => {
                if store
                    .wait_for_revision(index, Duration::from_secs(10))
                    .await
                    .is_ok()
                {
                    return true;
                }
            }
            Err(e) => tracing::debug!("dispatcher catching up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn supervise(shared: Arc<Shared>, config: DispatcherConfig, mut stop: watch::Receiver<bool>) {
    let store = shared.store.clone();
    let mut lead = store.leadership();
    loop {
        let term = loop {
            if *stop.borrow() {
                return;
            }
            if let Leadership::Leader { term } = *lead.borrow_and_update() {
                break term;
            }
            tokio::select! {
                r = lead.changed() => if r.is_err() { return },
                _ = stop.changed() => {}
            }
        };
        let caught_up = tokio::select! {
            ok = catch_up(&store, &lead, term) => ok,
            _ = stop.wait_for(|s| *s) => return,
        };
        if !caught_up {
            continue;
        }
        tracing::info!(term, "dispatcher: serving sessions as the leader");
        let t = Term::start(store.clone(), term, &config);
        shared.term.send_replace(Some(t.clone()));
        loop {
            if !leads(&lead, term) || *stop.borrow() {
                break;
            }
            tokio::select! {
                r = lead.changed() => if r.is_err() { break },
                _ = stop.changed() => {}
            }
        }
        shared.term.send_replace(None);
        t.shutdown();
        shared
            .broker
            .fail_all("the manager serving these logs stopped leading; retry");
        tracing::info!(term, "dispatcher: stopped serving sessions");
        if *stop.borrow() {
            return;
        }
    }
}
