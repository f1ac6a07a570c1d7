//! One term of leadership of the dispatcher: the sessions, the liveness sweeper, the assignment
//! index fed by the store watch, the status batcher and the node writer. Everything here starts
//! when this manager becomes leader (after catching up with what earlier leaders committed) and
//! is dropped when it stops leading, ending every session so agents reconnect to the new leader.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::dispatcher::session_message::Kind as SessionKind;
use shoal_proto::dispatcher::{AssignmentsMessage, SessionMessage, SessionState, WeightedManager};
use shoal_store::model::{
    new_id, Cluster, Kind, Node, NodeDescription, NodeRole, NodeState, Object, TaskStatus,
};
use shoal_store::{Action, Commit, Store, WatchFilter, WatchMessage, WatchRequest, WatchStart};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;

use super::assignments::{AssignmentIndex, SUBSCRIBER_BUFFER};
use super::node_writer::{NodeUpdate, NodeWriter};
use super::registry::{Liveness, NotRegistered, Registry};
use super::status::StatusBatcher;
use super::DispatcherConfig;

/// Messages a session stream may have queued before the agent is considered stuck.
const SESSION_BUFFER: usize = 64;
/// Commits the dispatcher's watch may fall behind before it is rebuilt from a snapshot.
const WATCH_BUFFER: usize = 1 << 16;
/// Weight of the leader in the managers list: sessions end there, so agents should dial it.
const LEADER_WEIGHT: u32 = 10;
/// The message of a node marked DOWN for missing heartbeats (SwarmKit's).
pub const HEARTBEAT_FAILURE: &str = "heartbeat failure";

/// The sending half of a `Session` stream.
pub type SessionSender = mpsc::Sender<Result<SessionMessage, Status>>;

/// What the registry keeps per session.
pub struct SessionHandle {
    tx: SessionSender,
}

impl SessionHandle {
    /// Ends the session's stream with `why` (best effort: a stuck stream just closes).
    fn end(self, why: Status) {
        let _ = self.tx.try_send(Err(why));
    }

    /// Queues a message; false when the stream is gone or stuck.
    pub fn send(&self, msg: SessionMessage) -> bool {
        self.tx.try_send(Ok(msg)).is_ok()
    }
}

/// A registered session, as returned to the `Session` RPC.
pub struct Registered {
    /// The session id.
    pub session_id: String,
    /// The stream's messages.
    pub rx: mpsc::Receiver<Result<SessionMessage, Status>>,
}

/// Maps a registry refusal to the status agents react to (re-register).
pub fn not_registered(e: NotRegistered) -> Status {
    match e {
        NotRegistered::NoSession => Status::not_found("node not registered; open a new session"),
        NotRegistered::WrongSession => Status::invalid_argument(
            "session invalid: the node has a newer session; open a new session",
        ),
    }
}

/// The dispatcher's state during one term of leadership.
pub struct Term {
    /// The leader term; every write is fenced to it.
    pub term: u64,
    store: Store,
    registry: Mutex<Registry<SessionHandle>>,
    index: Mutex<AssignmentIndex>,
    statuses: StatusBatcher,
    nodes: NodeWriter,
    /// Root CA certificate and managers list, re-sent to every session when they change.
    shared_state: Mutex<(String, Vec<WeightedManager>)>,
    ready: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Term {
    /// Agent sessions open with this term's dispatcher.
    pub fn session_count(&self) -> usize {
        self.registry
            .lock()
            .expect("registry lock")
            .sessions()
            .count()
    }

    /// Starts a term: the status batcher, the node writer, the watch consumer and the sweeper.
    /// The caller has made sure this replica has applied everything committed before the term.
    pub fn start(store: Store, term: u64, config: &DispatcherConfig) -> Arc<Term> {
        let period = store
            .view()
            .list::<Cluster>()
            .next()
            .map(|c| c.spec.heartbeat_period_or_default())
            .unwrap_or(Duration::from_secs(5));
        let rules = Liveness {
            period,
            heartbeat_multiplier: config.heartbeat_multiplier,
            grace_multiplier: config.grace_multiplier,
        };
        let (statuses, flusher) = StatusBatcher::start(
            store.clone(),
            term,
            config.status_flush_interval,
            config.status_flush_items,
        );
        let (nodes, writer) = NodeWriter::start(store.clone(), term);
        let t = Arc::new(Term {
            term,
            store,
            registry: Mutex::new(Registry::new(rules)),
            index: Mutex::new(AssignmentIndex::new()),
            statuses,
            nodes,
            shared_state: Mutex::new((String::new(), Vec::new())),
            ready: watch::channel(false).0,
            tasks: Mutex::new(vec![flusher, writer]),
        });
        let consumer = tokio::spawn(t.clone().consume());
        let sweeper = tokio::spawn(t.clone().sweep(config.sweep_interval));
        t.tasks.lock().unwrap().extend([consumer, sweeper]);
        t
    }

    /// Waits until the term has loaded the store (its first snapshot), up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Status> {
        let mut rx = self.ready.subscribe();
        let ready = tokio::time::timeout(timeout, rx.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok());
        if ready {
            Ok(())
        } else {
            Err(Status::unavailable(
                "the dispatcher is starting on the new leader; retry",
            ))
        }
    }

    /// Stops the term: ends every session and assignment stream so their agents reconnect.
    pub fn shutdown(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        let sessions: Vec<_> = {
            let mut reg = self.registry.lock().unwrap();
            let ids: Vec<String> = reg.sessions().map(|(n, _)| n.to_string()).collect();
            ids.into_iter().filter_map(|n| reg.forget(&n)).collect()
        };
        for (_, s) in sessions {
            s.end(Status::unavailable(
                "this manager is no longer the leader; reconnect",
            ));
        }
        self.index
            .lock()
            .unwrap()
            .close_all(Status::unavailable("this manager is no longer the leader"));
    }

    /// The liveness rules in force.
    pub fn liveness(&self) -> Liveness {
        self.registry.lock().unwrap().rules()
    }

    // ------------------------------------------------------------------ sessions

    /// Registers a session for `node_id`: marks the node READY (with the address it connected
    /// from and its description) and waits for that write, then replaces any earlier session.
    pub async fn register(
        &self,
        node_id: &str,
        addr: Option<String>,
        description: Option<NodeDescription>,
    ) -> Result<Registered, Status> {
        let node = self.store.view().get::<Node>(node_id).ok_or_else(|| {
            Status::not_found(format!(
                "node {node_id} is not part of this swarm (it was removed); leave and join again"
            ))
        })?;
        let update = NodeUpdate {
            state: NodeState::Ready,
            message: String::new(),
            addr,
            description,
        };
        if update.applied_to(&node).is_some() {
            self.nodes
                .write(node_id, update)
                .await
                .map_err(Status::unavailable)?;
        }
        let (tx, rx) = mpsc::channel(SESSION_BUFFER);
        let session_id = new_id();
        let handle = SessionHandle { tx };
        if let Some(state) = self.session_state(node_id, &session_id) {
            handle.send(state);
        }
        let replaced = self.registry.lock().unwrap().register(
            node_id,
            session_id.clone(),
            handle,
            Instant::now(),
        );
        if let Some((old_id, old)) = replaced {
            self.index.lock().unwrap().unsubscribe(node_id, &old_id);
            old.end(Status::aborted("session replaced by a newer one"));
        }
        tracing::debug!(node = %node_id, session = %session_id, "session registered");
        Ok(Registered { session_id, rx })
    }

    /// A heartbeat; returns the period to wait.
    pub fn heartbeat(&self, node_id: &str, session_id: &str) -> Result<Duration, Status> {
        self.heartbeat_at(node_id, session_id, Instant::now())
    }

    /// [`Term::heartbeat`] at an injected time.
    pub fn heartbeat_at(
        &self,
        node_id: &str,
        session_id: &str,
        now: Instant,
    ) -> Result<Duration, Status> {
        self.registry
            .lock()
            .unwrap()
            .heartbeat(node_id, session_id, now)
            .map_err(not_registered)
    }

    /// Checks that `session_id` is `node_id`'s current session.
    pub fn check_session(&self, node_id: &str, session_id: &str) -> Result<(), Status> {
        self.registry
            .lock()
            .unwrap()
            .session(node_id, session_id)
            .map(|_| ())
            .map_err(not_registered)
    }

    /// Sends `msg` on `node_id`'s session stream; false when it has none.
    pub fn send_to_session(&self, node_id: &str, msg: SessionMessage) -> bool {
        let reg = self.registry.lock().unwrap();
        reg.current(node_id).is_some_and(|(_, s)| s.send(msg))
    }

    /// Opens the assignment stream of a session: the COMPLETE set is its first message.
    pub fn assignments(
        &self,
        node_id: &str,
        session_id: &str,
    ) -> Result<mpsc::Receiver<Result<AssignmentsMessage, Status>>, Status> {
        // Hold the registry lock so the session cannot end between the check and the subscribe.
        let reg = self.registry.lock().unwrap();
        reg.session(node_id, session_id).map_err(not_registered)?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.index
            .lock()
            .unwrap()
            .subscribe(node_id, session_id.to_string(), tx);
        Ok(rx)
    }

    /// Queues task statuses reported by `node_id` and waits until they are written.
    pub async fn update_statuses(
        &self,
        node_id: &str,
        updates: Vec<(String, TaskStatus)>,
    ) -> Result<(), Status> {
        self.statuses
            .submit(node_id, updates)
            .await
            .map_err(Status::unavailable)
    }

    /// The store this term writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn session_state(&self, node_id: &str, session_id: &str) -> Option<SessionMessage> {
        let node = self.store.view().get::<Node>(node_id)?;
        let (root_ca_pem, managers) = self.shared_state.lock().unwrap().clone();
        Some(SessionMessage {
            kind: Some(SessionKind::State(SessionState {
                session_id: session_id.to_string(),
                node_json: serde_json::to_vec(&*node).ok()?,
                managers,
                root_ca_pem,
            })),
        })
    }

    /// Re-sends the session state to `node_id`'s session (or every session when `None`).
    fn refresh_sessions(&self, node_id: Option<&str>) {
        let reg = self.registry.lock().unwrap();
        let targets: Vec<(&str, &(String, SessionHandle))> = match node_id {
            Some(n) => reg.current(n).map(|s| (n, s)).into_iter().collect(),
            None => reg.sessions().collect(),
        };
        for (node, (sid, handle)) in targets {
            if let Some(msg) = self.session_state(node, sid) {
                handle.send(msg);
            }
        }
    }

    // ------------------------------------------------------------------ store watch

    fn managers_list(&self, view: &shoal_store::View) -> Vec<WeightedManager> {
        let own = &self.store.config().advertise_addr;
        let mut list: Vec<WeightedManager> = view
            .nodes_with_role(NodeRole::Manager)
            .filter_map(|n| n.manager_status.as_ref().map(|m| m.addr.clone()))
            .filter(|a| !a.is_empty())
            .map(|addr| WeightedManager {
                weight: if &addr == own { LEADER_WEIGHT } else { 1 },
                addr,
            })
            .collect();
        list.sort_by(|a, b| a.addr.cmp(&b.addr));
        list
    }

    /// Recomputes the root CA and managers list; true when they changed.
    fn reload_shared_state(&self) -> bool {
        let view = self.store.view();
        let ca = view
            .list::<Cluster>()
            .next()
            .map(|c| c.root_ca.trust_bundle())
            .unwrap_or_default();
        let next = (ca, self.managers_list(&view));
        let mut current = self.shared_state.lock().unwrap();
        let changed = *current != next;
        *current = next;
        changed
    }

    async fn consume(self: Arc<Self>) {
        loop {
            let req = WatchRequest::new(WatchStart::Snapshot)
                .filter(WatchFilter::kinds([
                    Kind::Task,
                    Kind::Secret,
                    Kind::Config,
                    Kind::Node,
                    Kind::Cluster,
                ]))
                .buffer(WATCH_BUFFER)
                .progress_interval(Duration::from_secs(60));
            let mut watch = match self.store.watch(req).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!("dispatcher: cannot watch the store: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut fresh = AssignmentIndex::new();
            let mut live_nodes = Vec::new();
            while let Some(msg) = watch.next().await {
                match msg {
                    Ok(WatchMessage::InitBegin { .. }) => {}
                    Ok(WatchMessage::InitObjects(objects)) => {
                        for o in &objects {
                            fresh.load(o);
                            if let Object::Node(n) = o.as_ref() {
                                if n.status.state != NodeState::Down {
                                    live_nodes.push(n.meta.id.clone());
                                }
                            }
                        }
                    }
                    Ok(WatchMessage::InitDone { .. }) => {
                        self.index
                            .lock()
                            .unwrap()
                            .replace_with(std::mem::take(&mut fresh));
                        let now = Instant::now();
                        {
                            let mut reg = self.registry.lock().unwrap();
                            for n in live_nodes.drain(..) {
                                reg.expect(&n, now);
                            }
                        }
                        self.apply_cluster();
                        if self.reload_shared_state() {
                            self.refresh_sessions(None);
                        }
                        self.ready.send_replace(true);
                    }
                    Ok(WatchMessage::Commit(commit)) => {
                        self.index.lock().unwrap().apply(&commit);
                        self.on_commit(&commit);
                    }
                    Ok(WatchMessage::Progress { .. }) => {}
                    Err(e) => {
                        tracing::warn!("dispatcher: store watch ended ({e}); rebuilding");
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn apply_cluster(&self) {
        if let Some(c) = self.store.view().list::<Cluster>().next() {
            self.registry
                .lock()
                .unwrap()
                .set_period(c.spec.heartbeat_period_or_default());
        }
    }

    /// Node and cluster changes: liveness bookkeeping and session states.
    fn on_commit(&self, commit: &Commit) {
        let mut shared_changed = false;
        for e in &commit.events {
            match e.object.as_ref() {
                Object::Node(n) => {
                    let id = n.meta.id.as_str();
                    match e.action {
                        Action::Create => {
                            if n.status.state != NodeState::Down {
                                self.registry.lock().unwrap().expect(id, Instant::now());
                            }
                        }
                        Action::Delete => {
                            let gone = self.registry.lock().unwrap().forget(id);
                            if let Some((sid, s)) = gone {
                                self.index.lock().unwrap().unsubscribe(id, &sid);
                                s.end(Status::not_found("this node was removed from the swarm"));
                            }
                        }
                        Action::Update => self.refresh_sessions(Some(id)),
                    }
                    let was_manager = e.prev.as_deref().is_some_and(
                        |p| matches!(p, Object::Node(p) if p.role == NodeRole::Manager),
                    );
                    shared_changed |= was_manager || n.role == NodeRole::Manager;
                }
                Object::Cluster(_) => {
                    self.apply_cluster();
                    shared_changed = true;
                }
                _ => {}
            }
        }
        if shared_changed && self.reload_shared_state() {
            self.refresh_sessions(None);
        }
    }

    // ------------------------------------------------------------------ liveness

    async fn sweep(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire_now(Instant::now());
        }
    }

    /// Marks every node whose deadline passed by `now` DOWN and ends its session.
    pub fn expire_now(&self, now: Instant) {
        let expired = self.registry.lock().unwrap().expire(now);
        for (node_id, session) in expired {
            tracing::info!(node = %node_id, "node missed its heartbeats: marking it down");
            if let Some((sid, s)) = session {
                self.index.lock().unwrap().unsubscribe(&node_id, &sid);
                s.end(Status::unavailable(
                    "heartbeat expired: the node was marked down; open a new session",
                ));
            }
            self.nodes.queue(
                &node_id,
                NodeUpdate {
                    state: NodeState::Down,
                    message: HEARTBEAT_FAILURE.to_string(),
                    addr: None,
                    description: None,
                },
            );
        }
    }
}
