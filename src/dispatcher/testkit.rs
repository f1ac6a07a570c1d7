//! Test harness shared by the dispatcher and agent tests: a one-manager store, a dispatcher
//! served over real mutual TLS on loopback, node certificates, and helpers to create nodes and
//! assign tasks the way the scheduler would.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{
    new_id, Cluster, ContainerSpec, Meta, Node, NodeRole, NodeState, NodeStatus,
    RootCa as StoredCa, Service, SwarmSpec, Task, TaskSpec, TaskState, TaskStatus, Timestamp,
};
use shoal_store::{PeerNode, Store, StoreConfig, Txn};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use super::{Dispatcher, DispatcherConfig};
use crate::ca::{
    install_crypto_provider, manager_client_tls_config, server_tls_config, NodeCertSpec,
    NodeCredentials, NodeIdentity, RootCa,
};

/// A swarm of one manager whose dispatcher listens on loopback.
pub struct TestSwarm {
    /// Keeps the store's directory.
    _dir: tempfile::TempDir,
    /// The manager's store.
    pub store: Store,
    /// The in-process network its store members talk over.
    net: LocalNetwork,
    /// The swarm CA.
    pub ca: RootCa,
    /// The cluster id.
    pub cluster_id: String,
    /// The dispatcher.
    pub dispatcher: Dispatcher,
    /// Its address.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
}

/// A second manager of a [`TestSwarm`] (see [`TestSwarm::add_follower`]).
pub struct TestFollower {
    /// Keeps the store's directory.
    _dir: tempfile::TempDir,
    /// The follower's store.
    pub store: Store,
    /// Its dispatcher.
    pub dispatcher: Dispatcher,
    /// Its address.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
}

impl TestFollower {
    /// Stops serving and the store.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.dispatcher.stop().await;
        self.store.shutdown().await;
    }
}

/// Opens store member `raft_id`, reachable on `net` under `addr`, with quick timings.
async fn open_store(net: &LocalNetwork, raft_id: u64, addr: &str, dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(raft_id, addr, dir.join("raft"));
    cfg.heartbeat_interval = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(200), Duration::from_millis(400));
    let store = Store::open(cfg, net.transport(addr)).await.unwrap();
    net.register(addr, store.clone());
    store
}

/// Starts a dispatcher on `store` and serves it on `listener` over mutual TLS, with a manager
/// certificate for `manager_id`; returns it and the sender that stops the server.
fn serve(
    ca: &RootCa,
    cluster_id: &str,
    manager_id: &str,
    store: &Store,
    mut config: DispatcherConfig,
    listener: tokio::net::TcpListener,
) -> (Dispatcher, oneshot::Sender<()>) {
    let manager = ca
        .issue_credentials(
            &NodeCertSpec::new(NodeIdentity::new(
                manager_id,
                NodeRole::Manager,
                cluster_id.to_string(),
            ))
            .with_ips(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        )
        .unwrap();
    config.leader_client_tls = Some(manager_client_tls_config(&manager).unwrap().into());
    let dispatcher = Dispatcher::start(store.clone(), config);
    let (stop, rx) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .tls_config(server_tls_config(&manager).unwrap())
        .unwrap()
        .add_service(dispatcher.server());
    tokio::spawn(async move {
        let incoming = crate::net::nodelay_incoming(listener);
        let _ = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    (dispatcher, stop)
}

/// Polls `cond` every 10 ms until it holds, panicking with `what` after 20 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestSwarm {
    /// Starts a manager with the given heartbeat period and dispatcher config.
    pub async fn start(period: Duration, config: DispatcherConfig) -> TestSwarm {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let net = LocalNetwork::new();
        // The store advertises the dispatcher's address, as a real manager advertises its swarm
        // listener: a follower's redirect then names an address agents can dial.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = open_store(&net, 1, &addr, dir.path()).await;
        store.initialize().await.unwrap();
        wait_until("the store elects itself", || store.is_leader()).await;

        let ca = RootCa::generate().unwrap();
        let cluster_id = new_id();
        let mut spec = SwarmSpec::swarm_default();
        spec.dispatcher.heartbeat_period = period.as_nanos() as i64;
        let cluster = Cluster {
            meta: Meta::with_id(cluster_id.clone()),
            spec,
            root_ca: StoredCa {
                cert_pem: ca.cert_pem().to_string(),
                key_pem: ca.key_pem().to_string(),
                cert_digest: ca.digest(),
                rotation: None,
            },
            ..Default::default()
        };
        store.submit(Txn::new().create(cluster)).await.unwrap();

        let (dispatcher, stop) = serve(&ca, &cluster_id, "manager-1", &store, config, listener);
        TestSwarm {
            _dir: dir,
            net,
            store,
            ca,
            cluster_id,
            dispatcher,
            addr,
            stop: Some(stop),
        }
    }

    /// Adds a second manager: its store joins the swarm's as a voter and its dispatcher serves
    /// on a listener of its own (as a follower, it redirects agents to the leader).
    pub async fn add_follower(&self, config: DispatcherConfig) -> TestFollower {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = open_store(&self.net, 2, &addr, dir.path()).await;
        self.store
            .add_member(
                2,
                PeerNode {
                    addr: addr.clone(),
                    node_id: "manager-2".into(),
                },
            )
            .await
            .unwrap();
        let revision = self.store.current_revision();
        wait_until("the follower catches up", || {
            store.current_revision() >= revision
        })
        .await;
        let (dispatcher, stop) = serve(
            &self.ca,
            &self.cluster_id,
            "manager-2",
            &store,
            config,
            listener,
        );
        TestFollower {
            _dir: dir,
            store,
            dispatcher,
            addr,
            stop: Some(stop),
        }
    }

    /// Credentials of a node.
    pub fn creds(&self, node_id: &str, role: NodeRole) -> NodeCredentials {
        self.ca
            .issue_credentials(&NodeCertSpec::for_node(node_id, role, &self.cluster_id))
            .unwrap()
    }

    /// Creates a worker node object (READY, as a join leaves it) and returns its id and
    /// credentials.
    pub async fn add_node(&self, hostname: &str) -> (String, NodeCredentials) {
        let id = new_id();
        let mut node = Node {
            meta: Meta::with_id(id.clone()),
            status: NodeStatus {
                state: NodeState::Ready,
                addr: "127.0.0.1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        node.description.hostname = hostname.into();
        self.store.submit(Txn::new().create(node)).await.unwrap();
        let creds = self.creds(&id, NodeRole::Worker);
        (id, creds)
    }

    /// A client of the dispatcher with `creds`.
    pub async fn client(&self, creds: &NodeCredentials) -> DispatcherClient<Channel> {
        let channel = Endpoint::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(manager_client_tls_config(creds).unwrap())
            .unwrap()
            .connect()
            .await
            .unwrap();
        DispatcherClient::new(channel)
    }

    /// Creates a task already ASSIGNED to `node_id` (as the scheduler leaves it).
    pub async fn assign(&self, node_id: &str, desired: TaskState) -> String {
        let id = new_id();
        let task = Task {
            meta: Meta::with_id(id.clone()),
            service_id: "svc".into(),
            slot: 1,
            node_id: node_id.into(),
            spec: TaskSpec {
                container_spec: Some(ContainerSpec {
                    image: "shoal-test/busybox:1".into(),
                    command: vec!["sleep".into(), "1000".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            status: TaskStatus::new(
                TaskState::Assigned,
                Timestamp::now(),
                "scheduler assigned task to node",
            ),
            desired_state: desired,
            ..Default::default()
        };
        let mut txn = Txn::new();
        // Tasks are only created for a service that exists (no orchestrator runs here).
        if self.store.view().get::<Service>("svc").is_none() {
            let mut service = Service {
                meta: Meta::with_id("svc"),
                ..Default::default()
            };
            service.spec.name = "svc".into();
            txn = txn.create(service);
        }
        self.store.submit(txn.create(task)).await.unwrap();
        id
    }

    /// Raises a task's desired state.
    pub async fn set_desired(&self, task_id: &str, desired: TaskState) {
        let mut t = self
            .store
            .view()
            .get::<Task>(task_id)
            .unwrap()
            .to_owned_value();
        t.desired_state = desired;
        self.store.submit(Txn::new().update(t)).await.unwrap();
    }

    /// A task's observed state.
    pub fn task_state(&self, task_id: &str) -> Option<TaskState> {
        self.store
            .view()
            .get::<Task>(task_id)
            .map(|t| t.status.state)
    }

    /// A node's liveness.
    pub fn node_state(&self, node_id: &str) -> Option<NodeState> {
        self.store
            .view()
            .get::<Node>(node_id)
            .map(|n| n.status.state)
    }

    /// Stops serving and the store.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.dispatcher.stop().await;
        self.store.shutdown().await;
    }
}
