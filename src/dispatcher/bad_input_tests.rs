//! Bad input at the gRPC listeners (issue 20, deliverable 6): random but decodable requests to
//! every service a manager's swarm listener serves (the dispatcher, the `Swarm` service for joins
//! and certificates, the store's peer RPCs), over real mutual TLS, from callers with every kind
//! of identity (a worker, a manager, a node the store does not know, a certificate of another
//! cluster, no certificate). Decoding random bytes as each message is `proto/tests/`'s job; here
//! the messages are well formed and their contents are not: random session and task ids, task
//! statuses and node descriptions that are random JSON or nearly valid, join tokens and CSRs
//! that are nearly right, unknown store RPC names and random store RPC bodies.
//!
//! Oracles: no panic (a panic hook records panics on this test's runtime threads, where the
//! servers' tasks run too); every call answers within seconds; a refused call changes nothing
//! in the store. The last is strict: no controllers run here and the heartbeat period is an hour,
//! so nothing else writes. Bounded and seeded like the HTTP tests (`SHOAL_FUZZ_CASES`,
//! `SHOAL_FUZZ_SEED`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::session_message::Kind as SessionKind;
use shoal_proto::dispatcher::{
    AssignmentsRequest, HeartbeatRequest, LogEntry, LogSelector, NetworkStateRequest,
    PublishLogsMessage, SessionRequest, SubscribeLogsRequest, TaskStatusUpdate,
    UpdateTaskStatusRequest,
};
use shoal_proto::raft::store_peer_client::StorePeerClient;
use shoal_proto::raft::{PeerMessage, PeerRequest, SnapshotChunk};
use shoal_proto::swarm::swarm_client::SwarmClient;
use shoal_proto::swarm::{JoinRaftRequest, JoinRequest, RenewRequest};
use shoal_store::model::{
    new_id, Cluster, JoinTokens, Meta, Node, NodeDescription, NodeRole, NodeState, NodeStatus,
    TaskState, TaskStatus, Timestamp,
};
use shoal_store::Txn;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

mod attempts;

use attempts::{attempt, Attempt, Csr, JsonBytes, SessionPick, TaskPick, Token, Who};

use super::testkit::TestSwarm;
use super::DispatcherConfig;
use crate::ca::{
    manager_client_tls_config, pinned_ca_client_tls_config, server_tls_config, JoinToken,
    NodeCertSpec, NodeCredentials, NodeIdentity,
};
use crate::net::store_peer::StorePeerService;
use crate::node::swarm_service::SwarmService;

/// Threads of this test's runtime (servers and clients alike).
const THREADS: &str = "bad-input-grpc";

/// Panics on threads whose name starts with [`THREADS`], with the thread's name.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Records panics on [`THREADS`] (other tests in this process may panic on purpose).
fn record_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if let Some(name) = thread.name().filter(|n| n.starts_with(THREADS)) {
                PANICS
                    .lock()
                    .unwrap()
                    .push((name.to_string(), info.to_string()));
            }
            previous(info);
        }));
    });
}

/// Takes the recorded panics of the threads named `name`.
fn take_panics(name: &str) -> Vec<String> {
    let mut all = PANICS.lock().unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = all.drain(..).partition(|(t, _)| t == name);
    *all = others;
    mine.into_iter().map(|(_, p)| p).collect()
}

/// Clients for one identity.
struct Clients {
    dispatcher: DispatcherClient<Channel>,
    swarm: SwarmClient<Channel>,
    peer: StorePeerClient<Channel>,
}

/// The swarm, its second listener (Swarm and StorePeer services), and a client per identity.
struct Fixture {
    s: TestSwarm,
    stop_swarm: Option<oneshot::Sender<()>>,
    clients: Vec<(Who, Clients)>,
    /// Each identity's current session id.
    sessions: Mutex<Vec<(Who, String)>>,
    /// Calls by kind and outcome, to show what a run reached.
    tally: Mutex<std::collections::BTreeMap<(String, String), usize>>,
    worker_tasks: Vec<String>,
    foreign_task: String,
    tokens: JoinTokens,
    wrong_secret: String,
}

async fn channel(addr: &str, tls: tonic::transport::ClientTlsConfig) -> Channel {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A node object as a join leaves it.
async fn add_node(s: &TestSwarm, role: NodeRole, raft_id: u64) -> String {
    let id = new_id();
    let mut node = Node {
        meta: Meta::with_id(id.clone()),
        status: NodeStatus {
            state: NodeState::Ready,
            addr: "127.0.0.1".into(),
            ..Default::default()
        },
        role,
        raft_id,
        ..Default::default()
    };
    node.spec.role = Some(role);
    node.description.hostname = format!("{role:?}-{id}");
    s.store.submit(Txn::new().create(node)).await.unwrap();
    id
}

impl Fixture {
    async fn start() -> Fixture {
        // An hour: no node is marked DOWN while the test runs, so nothing but the calls writes.
        let s = TestSwarm::start(Duration::from_secs(3600), DispatcherConfig::default()).await;
        let ca_tokens = crate::ca::JoinTokens::generate(&s.ca).unwrap();
        let tokens = JoinTokens {
            worker: ca_tokens.for_role(NodeRole::Worker).to_string(),
            manager: ca_tokens.for_role(NodeRole::Manager).to_string(),
        };
        let wrong_secret = JoinToken::for_ca(&s.ca).unwrap().to_string();
        let mut cluster = s
            .store
            .view()
            .list::<Cluster>()
            .next()
            .unwrap()
            .to_owned_value();
        cluster.join_tokens = tokens.clone();
        s.store.submit(Txn::new().update(cluster)).await.unwrap();

        let manager =
            s.ca.issue_credentials(
                &NodeCertSpec::new(NodeIdentity::new(
                    "manager-1",
                    NodeRole::Manager,
                    s.cluster_id.clone(),
                ))
                .with_ips(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let swarm_addr = listener.local_addr().unwrap().to_string();
        let (stop_swarm, stopped) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .tls_config(server_tls_config(&manager).unwrap())
            .unwrap()
            .add_service(SwarmService::server(s.store.clone()))
            .add_service(StorePeerService::server(s.store.clone()));
        tokio::spawn(async move {
            let incoming = crate::net::nodelay_incoming(listener);
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });

        let worker = add_node(&s, NodeRole::Worker, 0).await;
        let promoted = add_node(&s, NodeRole::Manager, 0).await;
        let other = add_node(&s, NodeRole::Worker, 0).await;
        let mut worker_tasks = Vec::new();
        for desired in [TaskState::Running, TaskState::Running, TaskState::Shutdown] {
            worker_tasks.push(s.assign(&worker, desired).await);
        }
        let foreign_task = s.assign(&other, TaskState::Running).await;

        let creds: Vec<(Who, Option<NodeCredentials>)> = vec![
            (Who::Worker, Some(s.creds(&worker, NodeRole::Worker))),
            (Who::Promoted, Some(s.creds(&promoted, NodeRole::Manager))),
            (Who::Manager, Some(s.creds("manager-1", NodeRole::Manager))),
            (Who::Stranger, Some(s.creds(&new_id(), NodeRole::Worker))),
            (
                Who::OtherCluster,
                Some(
                    s.ca.issue_credentials(&NodeCertSpec::for_node(
                        &worker,
                        NodeRole::Worker,
                        "another-cluster",
                    ))
                    .unwrap(),
                ),
            ),
            (Who::NoCert, None),
        ];
        let mut clients = Vec::new();
        for (who, creds) in creds {
            let tls = || match &creds {
                Some(c) => manager_client_tls_config(c).unwrap(),
                None => pinned_ca_client_tls_config(s.ca.cert_pem()).unwrap(),
            };
            clients.push((
                who,
                Clients {
                    dispatcher: DispatcherClient::new(channel(&s.addr, tls()).await),
                    swarm: SwarmClient::new(channel(&swarm_addr, tls()).await),
                    peer: StorePeerClient::new(channel(&swarm_addr, tls()).await),
                },
            ));
        }
        Fixture {
            s,
            stop_swarm: Some(stop_swarm),
            clients,
            sessions: Mutex::new(Vec::new()),
            tally: Mutex::new(Default::default()),
            worker_tasks,
            foreign_task,
            tokens,
            wrong_secret,
        }
    }

    fn clients(&self, who: Who) -> Clients {
        let c = &self.clients.iter().find(|(w, _)| *w == who).unwrap().1;
        Clients {
            dispatcher: c.dispatcher.clone(),
            swarm: c.swarm.clone(),
            peer: c.peer.clone(),
        }
    }

    fn session(&self, who: Who, pick: &SessionPick) -> String {
        match pick {
            SessionPick::Other(s) => s.clone(),
            SessionPick::Current => self
                .sessions
                .lock()
                .unwrap()
                .iter()
                .find(|(w, _)| *w == who)
                .map(|(_, s)| s.clone())
                .unwrap_or_default(),
        }
    }

    fn task(&self, pick: &TaskPick) -> String {
        match pick {
            TaskPick::Own(i) => self.worker_tasks[i % self.worker_tasks.len()].clone(),
            TaskPick::Foreign => self.foreign_task.clone(),
            TaskPick::Other(s) => s.clone(),
        }
    }

    /// Makes `call`: `Ok(Ok(()))` if it was accepted, `Ok(Err(why))` if refused.
    async fn make(&self, call: &Attempt) -> Result<Verdict, String> {
        let valid_status = serde_json::to_value(TaskStatus::new(
            TaskState::Running,
            Timestamp::now(),
            "started",
        ))
        .unwrap();
        let valid_description = serde_json::to_value(NodeDescription {
            hostname: "fuzzed".into(),
            ..Default::default()
        })
        .unwrap();
        // Streams: the first message, if one comes soon, then hang up.
        async fn first<T>(stream: &mut tonic::Streaming<T>) -> Option<T> {
            tokio::time::timeout(Duration::from_millis(300), stream.message())
                .await
                .ok()
                .and_then(|m| m.ok().flatten())
        }
        match call {
            Attempt::Session(who, description) => {
                let req = SessionRequest {
                    description_json: description.render(&valid_description),
                };
                let resp = match self.clients(*who).dispatcher.session(req).await {
                    Ok(resp) => resp,
                    Err(e) => return Ok(refused(e)),
                };
                let mut stream = resp.into_inner();
                if let Some(SessionKind::State(state)) =
                    first(&mut stream).await.and_then(|m| m.kind)
                {
                    let mut sessions = self.sessions.lock().unwrap();
                    sessions.retain(|(w, _)| w != who);
                    sessions.push((*who, state.session_id));
                }
                Ok(Ok(()))
            }
            Attempt::Heartbeat(who, s) => {
                let req = HeartbeatRequest {
                    session_id: self.session(*who, s),
                };
                Ok(self
                    .clients(*who)
                    .dispatcher
                    .heartbeat(req)
                    .await
                    .map(drop)
                    .map_err(code))
            }
            Attempt::Assignments(who, s) => {
                let req = AssignmentsRequest {
                    session_id: self.session(*who, s),
                };
                match self.clients(*who).dispatcher.assignments(req).await {
                    Ok(resp) => {
                        first(&mut resp.into_inner()).await;
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(refused(e)),
                }
            }
            Attempt::NetworkState(who, s) => {
                let req = NetworkStateRequest {
                    session_id: self.session(*who, s),
                };
                match self.clients(*who).dispatcher.network_state(req).await {
                    Ok(resp) => {
                        first(&mut resp.into_inner()).await;
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(refused(e)),
                }
            }
            Attempt::UpdateTaskStatus(who, s, updates) => {
                let req = UpdateTaskStatusRequest {
                    session_id: self.session(*who, s),
                    updates: updates
                        .iter()
                        .map(|(t, status)| TaskStatusUpdate {
                            task_id: self.task(t),
                            status_json: status.render(&valid_status),
                        })
                        .collect(),
                };
                Ok(self
                    .clients(*who)
                    .dispatcher
                    .update_task_status(req)
                    .await
                    .map(drop)
                    .map_err(code))
            }
            Attempt::PublishLogs(who, messages) => {
                let msgs: Vec<PublishLogsMessage> = messages
                    .iter()
                    .map(|(s, sub, entries, close, error)| PublishLogsMessage {
                        session_id: self.session(*who, s),
                        subscription_id: sub.clone(),
                        entries: entries
                            .iter()
                            .map(|(t, line, at)| LogEntry {
                                task_id: self.task(t),
                                stream: line.chars().take(6).collect(),
                                timestamp_unix_nanos: *at,
                                line: line.clone().into_bytes(),
                            })
                            .collect(),
                        close: *close,
                        error: error.clone(),
                    })
                    .collect();
                Ok(self
                    .clients(*who)
                    .dispatcher
                    .publish_logs(futures::stream::iter(msgs))
                    .await
                    .map(drop)
                    .map_err(code))
            }
            Attempt::SubscribeLogs(who, tasks, selector) => {
                let req = SubscribeLogsRequest {
                    task_ids: tasks.iter().map(|t| self.task(t)).collect(),
                    selector: selector.map(|(stdout, stderr, follow, tail, since)| LogSelector {
                        stdout,
                        stderr,
                        follow,
                        tail,
                        since_unix_nanos: since,
                    }),
                };
                match self.clients(*who).dispatcher.subscribe_logs(req).await {
                    Ok(resp) => {
                        first(&mut resp.into_inner()).await;
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(refused(e)),
                }
            }
            Attempt::Join {
                token,
                csr,
                advertise_addr,
                description,
                availability,
            } => {
                let req = JoinRequest {
                    token: match token {
                        Token::Worker => self.tokens.worker.clone(),
                        Token::Manager => self.tokens.manager.clone(),
                        Token::WrongSecret => self.wrong_secret.clone(),
                        Token::Junk(s) => s.clone(),
                    },
                    csr_pem: csr.render(),
                    advertise_addr: advertise_addr.clone(),
                    description_json: description.render(&valid_description),
                    availability: availability.clone(),
                };
                Ok(self
                    .clients(Who::NoCert)
                    .swarm
                    .join(req)
                    .await
                    .map(drop)
                    .map_err(code))
            }
            Attempt::JoinRaft(who, raft_id, addr) => {
                let req = JoinRaftRequest {
                    raft_id: *raft_id,
                    addr: addr.clone(),
                };
                Ok(self
                    .clients(*who)
                    .swarm
                    .join_raft(req)
                    .await
                    .map(drop)
                    .map_err(code))
            }
            Attempt::Renew(who, csr) => {
                let req = RenewRequest {
                    csr_pem: csr.render(),
                };
                Ok(self
                    .clients(*who)
                    .swarm
                    .renew_certificate(req)
                    .await
                    .map(drop)
                    .map_err(code))
            }
            Attempt::PeerCall(who, rpc, body) => {
                let req = PeerRequest {
                    rpc: rpc.clone(),
                    body: body.render(&json!([])),
                };
                match self.clients(*who).peer.call(req).await {
                    // The store's answer is a JSON `Result`: refused unless it is `Ok`.
                    Ok(reply) => Ok(store_reply(&reply.into_inner().body)),
                    Err(e) => Ok(refused(e)),
                }
            }
            Attempt::PeerStream(who, rpc, bodies) => {
                let msgs: Vec<PeerMessage> = bodies
                    .iter()
                    .map(|b| PeerMessage {
                        body: b.render(&json!([])),
                    })
                    .collect();
                let mut req = tonic::Request::new(futures::stream::iter(msgs));
                if let Ok(v) = rpc.parse() {
                    req.metadata_mut().insert("shoal-rpc", v);
                }
                match self.clients(*who).peer.stream(req).await {
                    Ok(resp) => {
                        let replies: Vec<_> = resp.into_inner().collect().await;
                        Ok(replies
                            .into_iter()
                            .try_for_each(|r| r.map_err(code).and_then(|m| store_reply(&m.body))))
                    }
                    Err(e) => Ok(refused(e)),
                }
            }
            Attempt::InstallSnapshot(who, chunks) => {
                let msgs: Vec<SnapshotChunk> = chunks
                    .iter()
                    .map(|(header, data)| SnapshotChunk {
                        header: header.clone(),
                        data: data.clone(),
                    })
                    .collect();
                match self
                    .clients(*who)
                    .peer
                    .install_snapshot(futures::stream::iter(msgs))
                    .await
                {
                    Ok(reply) => Ok(store_reply(&reply.into_inner().body)),
                    Err(e) => Ok(refused(e)),
                }
            }
        }
    }

    /// Makes `call` and checks the oracles.
    async fn check(&self, call: &Attempt) -> Result<(), String> {
        let before = self.s.store.current_revision();
        take_panics(THREADS);
        let outcome = tokio::time::timeout(Duration::from_secs(20), self.make(call)).await;
        let panics = take_panics(THREADS);
        if !panics.is_empty() {
            return Err(format!("panicked: {panics:#?}"));
        }
        let verdict = outcome.map_err(|_| "no answer within 20 s".to_string())??;
        let name = format!("{call:?}");
        let name = name
            .split(['(', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        let outcome = verdict.clone().err().unwrap_or_else(|| "accepted".into());
        *self
            .tally
            .lock()
            .unwrap()
            .entry((name, outcome))
            .or_default() += 1;
        if verdict.is_err() {
            let after = self.s.store.current_revision();
            if after != before {
                return Err(format!(
                    "a refused call changed the store (revision {before} -> {after})"
                ));
            }
        }
        Ok(())
    }

    async fn stop(mut self) {
        eprintln!(
            "calls by kind and outcome: {:#?}",
            self.tally.lock().unwrap()
        );
        if let Some(s) = self.stop_swarm.take() {
            let _ = s.send(());
        }
        self.s.stop().await;
    }
}

/// Accepted, or refused with a reason (for the tally).
type Verdict = Result<(), String>;

fn code(s: tonic::Status) -> String {
    format!("{:?}", s.code())
}

fn refused(s: tonic::Status) -> Verdict {
    Err(code(s))
}

/// A store peer answer is a JSON `Result`: accepted if it is `Ok`.
fn store_reply(body: &[u8]) -> Verdict {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("Ok").is_some() => Ok(()),
        _ => Err("store refused".into()),
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    record_panics();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_swarm_listener_survives_bad_input_and_refusals_write_nothing() {
    let rt = runtime(THREADS);
    let f = rt.block_on(Fixture::start());
    let cases = std::env::var("SHOAL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let seed = std::env::var("SHOAL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 300,
        max_shrink_time: 60_000,
        ..Config::default()
    });
    let result = runner.run(&attempt(), |c| {
        rt.block_on(f.check(&c))
            .map_err(|e| TestCaseError::fail(format!("{e}\n  call: {c:?}")))
    });
    rt.block_on(f.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Makes `call` on a fresh fixture and asserts it is refused without a write.
fn assert_refused_without_writes(call: Attempt) {
    let rt = runtime(THREADS);
    rt.block_on(async {
        let f = Fixture::start().await;
        let before = f.s.store.current_revision();
        let verdict = tokio::time::timeout(Duration::from_secs(20), f.make(&call))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(verdict.is_err(), "{call:?} was accepted");
        assert_eq!(
            f.s.store.current_revision(),
            before,
            "{call:?} was refused but wrote to the store"
        );
        f.stop().await;
    });
}

/// Regression: the node used to be recorded before its CSR was signed, so a join with a valid
/// token and a bad CSR was refused and left a node behind.
#[test]
fn a_join_whose_csr_cannot_be_signed_records_no_node() {
    for csr in [Csr::Cut(0), Csr::Junk("worker".into()), Csr::Flipped(7)] {
        assert_refused_without_writes(Attempt::Join {
            token: Token::Worker,
            csr,
            advertise_addr: "127.0.0.1:4242".into(),
            description: JsonBytes::Empty,
            availability: String::new(),
        });
    }
}

/// Regression: a promoted manager's Raft id used to be written before its CSR was signed.
#[test]
fn a_renewal_whose_csr_cannot_be_signed_assigns_no_raft_id() {
    assert_refused_without_writes(Attempt::Renew(Who::Promoted, Csr::Junk("worker".into())));
}

/// Regression: Raft id 0 ("not a manager") used to be added as a learner, and the call then
/// waited for that member to catch up until its deadline.
#[test]
fn joining_the_raft_group_as_member_0_is_refused() {
    assert_refused_without_writes(Attempt::JoinRaft(Who::Promoted, 0, "127.0.0.1:1".into()));
}

/// The panic oracle sees a panic in a task on this test's runtime (tokio would swallow it).
#[test]
fn a_panic_in_a_server_task_is_seen() {
    let name = format!("{THREADS}-selftest");
    let rt = runtime(&name);
    let task = rt.spawn(async { panic!("a server task panics") });
    assert!(rt.block_on(task).is_err());
    let seen = take_panics(&name);
    assert!(
        seen.iter().any(|p| p.contains("a server task panics")),
        "{seen:?}"
    );
}
