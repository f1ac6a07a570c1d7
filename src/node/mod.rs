//! The node runtime: one per `shoal daemon`. A node starts outside any swarm; `swarm init` makes
//! it the first manager, `swarm join` a manager or worker of an existing swarm, `swarm leave`
//! takes it out again. Its state survives restarts in `<data>/swarm/`.

mod autolock;
pub mod description;
pub mod join;
pub mod manager;
pub mod membership;
pub mod metrics;
mod recovery;
mod renewal;
pub mod restore;
mod role;
mod store_watch;
pub mod swarm_service;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use serde::Deserialize;
use shoal_proto::swarm::swarm_client::SwarmClient;
use shoal_proto::swarm::JoinRaftRequest;
use shoal_store::model::{
    Cluster, IPAMSpec, JoinTokens, ManagerStatus, Meta, Network, NetworkSpec, Node, NodeRole,
    NodeSpec, NodeState, NodeStatus, RaftMembership, RootCa as StoredRootCa, SwarmSpec,
};
use shoal_store::Txn;
use tokio::sync::{Mutex, RwLock};
use tonic::transport::Endpoint;

use crate::agent::storage::FileTaskStore;
use crate::agent::{executor, Agent, AgentConfig, ExecutorChoice};
use crate::ca::{self, JoinToken, NodeCertSpec, NodeCredentials, RootCa, StoreKeys, UnlockKey};
use crate::exec::Executor;
use join::JoinFailure;
use manager::Manager;
use membership::{SwarmDir, SwarmMembership};
use swarm_service::host_of;

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the node keeps its state.
    pub data_dir: PathBuf,
    /// Overrides the host name the node reports (several nodes on one machine need distinct names).
    pub hostname: Option<String>,
    /// Which executor runs this node's tasks.
    pub executor: ExecutorChoice,
    /// Make this manager the only manager of its swarm as it starts (`--force-new-cluster`:
    /// the swarm lost its quorum for good).
    pub force_new_cluster: bool,
}

/// Why a swarm lifecycle operation failed; carries the HTTP status Docker uses for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SwarmError {
    /// HTTP status the API answers with.
    pub status: u16,
    /// Docker's message text.
    pub message: String,
}

impl SwarmError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        SwarmError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(m: impl Into<String>) -> Self {
        Self::new(400, m)
    }
    fn unavailable(m: impl Into<String>) -> Self {
        Self::new(503, m)
    }
    fn internal(m: impl std::fmt::Display) -> Self {
        Self::new(500, m.to_string())
    }
    fn conflict(m: impl Into<String>) -> Self {
        Self::new(409, m)
    }
    fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(401, m)
    }
}

/// Docker's texts for the swarm-state gates.
pub mod texts {
    /// Init/join while in a swarm.
    pub const ALREADY_IN_SWARM: &str =
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
    /// Leave while not in a swarm.
    pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
    /// Manager-only route on a node outside any swarm.
    pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
    /// Manager-only route on a worker.
    pub const WORKER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
    /// Manager-only route while the manager is starting.
    pub const MANAGER_STARTING: &str =
        "This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.";
    /// Any swarm route on a manager that is locked (autolock, restarted).
    pub const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";
    /// Leave without `--force` while locked.
    pub const LEAVE_LOCKED: &str = "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.";
}

/// The body of `POST /swarm/init`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InitRequest {
    /// `host:port` to listen on for other nodes.
    #[serde(rename = "ListenAddr")]
    pub listen_addr: String,
    /// `host[:port]` other nodes reach this one at.
    #[serde(rename = "AdvertiseAddr")]
    pub advertise_addr: String,
    /// Data path port (VXLAN).
    #[serde(rename = "DataPathPort")]
    pub data_path_port: u32,
    /// Start a new cluster from this node's state (not supported on a fresh node).
    #[serde(rename = "ForceNewCluster")]
    pub force_new_cluster: bool,
    /// Initial swarm spec (zero values mean defaults).
    #[serde(rename = "Spec")]
    pub spec: Option<SwarmSpec>,
    /// Turn on autolock.
    #[serde(rename = "AutoLockManagers")]
    pub auto_lock_managers: bool,
    /// This node's availability.
    #[serde(rename = "Availability")]
    pub availability: String,
    /// Address pools for overlay networks.
    #[serde(rename = "DefaultAddrPool")]
    pub default_addr_pool: Option<Vec<String>>,
    /// Subnet size carved from the pools.
    #[serde(rename = "SubnetSize")]
    pub subnet_size: u32,
}

/// The body of `POST /swarm/join`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct JoinSwarmRequest {
    /// `host:port` to listen on (managers).
    #[serde(rename = "ListenAddr")]
    pub listen_addr: String,
    /// `host[:port]` other nodes reach this one at.
    #[serde(rename = "AdvertiseAddr")]
    pub advertise_addr: String,
    /// Managers to contact.
    #[serde(rename = "RemoteAddrs")]
    pub remote_addrs: Option<Vec<String>>,
    /// The join token.
    #[serde(rename = "JoinToken")]
    pub join_token: String,
    /// This node's availability.
    #[serde(rename = "Availability")]
    pub availability: String,
}

/// Where the node stands.
#[derive(Clone)]
pub enum SwarmState {
    /// Not in a swarm.
    Inactive,
    /// In a swarm as a manager.
    Manager {
        /// Membership.
        membership: SwarmMembership,
        /// The running manager.
        manager: Arc<Manager>,
    },
    /// In a swarm as a worker.
    Worker {
        /// Membership.
        membership: SwarmMembership,
    },
    /// A manager of an autolocked swarm, restarted and waiting for its unlock key: nothing runs.
    Locked {
        /// Membership.
        membership: SwarmMembership,
    },
    /// Joining as a manager: its store member runs and catches up as a learner; the join
    /// answered "continues in the background" and becomes `Manager` once the leader has made it
    /// a voter (or `Inactive` again if that fails). Docker shows it as `pending`.
    Joining {
        /// Membership.
        membership: SwarmMembership,
        /// The manager being admitted.
        manager: Arc<Manager>,
    },
}

impl SwarmState {
    /// The membership, when in a swarm.
    pub fn membership(&self) -> Option<&SwarmMembership> {
        match self {
            SwarmState::Inactive => None,
            SwarmState::Manager { membership, .. }
            | SwarmState::Worker { membership }
            | SwarmState::Locked { membership }
            | SwarmState::Joining { membership, .. } => Some(membership),
        }
    }
}

struct Inner {
    config: NodeConfig,
    dir: SwarmDir,
    /// Runs this node's tasks (built once: the engine is probed when the daemon starts).
    executor: Arc<dyn Executor>,
    /// The agent, while the node is in a swarm.
    agent: Mutex<Option<Agent>>,
    state: RwLock<SwarmState>,
    /// Serialises init/join/leave.
    lifecycle: Mutex<()>,
    /// What the key file is sealed with, and the store's data key.
    keys: std::sync::Mutex<autolock::HeldKeys>,
    /// What the node's components measure (`/metrics`).
    metrics: metrics::NodeMetrics,
    /// The node's certificate as it is now (what `save_credentials` last saved): read by every
    /// new connection of the agent and the manager, so a renewal needs no restart.
    live: crate::ca::LiveCredentials,
}

/// A node. Cheap to clone.
#[derive(Clone)]
pub struct NodeRuntime {
    inner: Arc<Inner>,
}

const DEFAULT_PORT: u16 = 2377;

/// How long init and join wait for the agent's first session (dockerd waits 20 s for its node
/// to be ready).
const AGENT_SESSION_WAIT: Duration = Duration::from_secs(20);

/// Normalises a listen address: `host`, `host:port` or `:port`.
fn parse_listen_addr(addr: &str) -> Result<SocketAddr, SwarmError> {
    if addr.is_empty() {
        return Err(SwarmError::bad_request(
            "invalid ListenAddr \"\": invalid empty address",
        ));
    }
    let with_port = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else if addr.parse::<IpAddr>().is_ok() {
        format!("{addr}:{DEFAULT_PORT}")
    } else {
        addr.to_string()
    };
    with_port
        .parse()
        .map_err(|e| SwarmError::bad_request(format!("invalid ListenAddr {addr:?}: {e}")))
}

/// The address other nodes should use: the advertise address if given (port defaulting to the
/// listen port), else the listen address, with an unspecified host replaced by the local address
/// that routes to `towards` (or loopback).
fn advertise_addr(
    advertise: &str,
    listen: SocketAddr,
    towards: Option<&str>,
) -> Result<String, SwarmError> {
    if !advertise.is_empty() {
        if let Ok(ip) = advertise.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, listen.port()).to_string());
        }
        if advertise.parse::<SocketAddr>().is_ok() {
            return Ok(advertise.to_string());
        }
        return Err(SwarmError::bad_request(format!(
            "advertise address must be a non-zero IP address or network interface (with optional port number): {advertise}"
        )));
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen.to_string());
    }
    let ip = towards
        .and_then(|remote| {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            sock.connect(remote).ok()?;
            sock.local_addr().ok().map(|a| a.ip())
        })
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    Ok(SocketAddr::new(ip, listen.port()).to_string())
}

impl NodeRuntime {
    /// Starts a node: rejoins its swarm if its state says it is in one.
    pub async fn start(config: NodeConfig) -> anyhow::Result<NodeRuntime> {
        ca::install_crypto_provider();
        std::fs::create_dir_all(&config.data_dir)?;
        let dir = SwarmDir::new(&config.data_dir);
        let hostname = config
            .hostname
            .clone()
            .unwrap_or_else(description::hostname);
        let built = executor::build(&config.executor, &config.data_dir.join("exec"), &hostname)
            .await
            .context("starting the executor")?;
        tracing::info!("tasks run with the {:?} executor", built.kind);
        let node = NodeRuntime {
            inner: Arc::new(Inner {
                config,
                dir: dir.clone(),
                executor: built.executor,
                agent: Mutex::new(None),
                state: RwLock::new(SwarmState::Inactive),
                lifecycle: Mutex::new(()),
                keys: Default::default(),
                metrics: Default::default(),
                live: Default::default(),
            }),
        };
        if let Some(membership) = dir.load()? {
            if NodeCredentials::is_locked(dir.root()) {
                if node.inner.config.force_new_cluster {
                    anyhow::bail!("--force-new-cluster: this manager is locked; start it without the flag, unlock it (docker swarm unlock), then run docker swarm init --force-new-cluster");
                }
                tracing::warn!("this manager's swarm is locked: run `docker swarm unlock` with the swarm's unlock key");
                *node.inner.state.write().await = SwarmState::Locked { membership };
                return Ok(node);
            }
            let (creds, data_keys) = NodeCredentials::load_with(dir.root(), None)?;
            node.inner.keys.lock().unwrap().data = data_keys;
            let membership = if node.inner.config.force_new_cluster {
                if membership.role != NodeRole::Manager {
                    anyhow::bail!("--force-new-cluster recovers a manager of a swarm that lost its quorum; this node is a worker");
                }
                node.recover_store(membership).await?
            } else {
                membership
            };
            let state = node.resume(membership, creds).await?;
            if let SwarmState::Manager {
                membership,
                manager,
            } = &state
            {
                if node.take_recovery_marker() {
                    tokio::spawn(recovery::retire_other_managers(
                        manager.store.clone(),
                        membership.node_id.clone(),
                        membership.raft_id,
                    ));
                }
            }
            *node.inner.state.write().await = state;
            node.start_agent().await;
        } else if node.inner.config.force_new_cluster {
            anyhow::bail!(
                "--force-new-cluster: this node is not in a swarm (nothing to recover in {})",
                node.inner.config.data_dir.display()
            );
        }
        Ok(node)
    }

    /// Starts the node's side of its swarm from its membership and credentials (the keys in
    /// memory already opened): the manager, for a manager.
    async fn resume(
        &self,
        membership: SwarmMembership,
        creds: NodeCredentials,
    ) -> anyhow::Result<SwarmState> {
        self.inner.live.replace(&creds)?;
        Ok(match membership.role {
            NodeRole::Manager => {
                let manager = self.start_manager_side(&membership, &creds).await?;
                SwarmState::Manager {
                    membership,
                    manager,
                }
            }
            NodeRole::Worker => SwarmState::Worker { membership },
        })
    }

    /// Starts the manager side (store, controllers, listeners) on this node's data with its
    /// data key, and what watches it.
    async fn start_manager_side(
        &self,
        membership: &SwarmMembership,
        creds: &NodeCredentials,
    ) -> anyhow::Result<Arc<Manager>> {
        let data_key = self.manager_data_key(creds)?;
        let retiring = self.inner.keys.lock().unwrap().data.retiring.clone();
        let manager = Manager::start(
            &self.inner.dir,
            &self.inner.live,
            &self.inner.metrics,
            membership.clone(),
            data_key,
            retiring,
        )
        .await?;
        self.spawn_manager_watches(&manager.store);
        Ok(manager)
    }

    /// The data key of this manager's store. A manager whose key file has none (made before
    /// keys were kept there) adopts the one its store kept beside its data, or a new one, and
    /// keeps it in the key file from then on: never in clear beside the data.
    fn manager_data_key(&self, creds: &NodeCredentials) -> anyhow::Result<shoal_store::DataKey> {
        if let Some(key) = self.inner.keys.lock().unwrap().data.current.clone() {
            return Ok(key);
        }
        let raft = self.inner.dir.raft();
        let key = autolock::adopt_data_key(&raft)?;
        self.inner.keys.lock().unwrap().data = StoreKeys::current(key.clone());
        self.save_credentials(creds)?;
        match std::fs::remove_file(raft.join("data.key")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(key)
    }

    /// The node's current swarm state.
    pub async fn state(&self) -> SwarmState {
        self.inner.state.read().await.clone()
    }

    /// The host name this node reports.
    pub fn hostname(&self) -> String {
        self.inner
            .config
            .hostname
            .clone()
            .unwrap_or_else(description::hostname)
    }

    /// `POST /swarm/init`.
    pub async fn init(&self, req: InitRequest) -> Result<String, SwarmError> {
        let _guard = self.inner.lifecycle.lock().await;
        if req.force_new_cluster {
            return self.force_new_cluster().await;
        }
        if !matches!(*self.inner.state.read().await, SwarmState::Inactive) {
            return Err(SwarmError::unavailable(texts::ALREADY_IN_SWARM));
        }
        let listen = parse_listen_addr(&req.listen_addr)?;
        let advertise = advertise_addr(&req.advertise_addr, listen, None)?;
        let mut spec = req
            .spec
            .clone()
            .unwrap_or_default()
            .merged_onto(&SwarmSpec::swarm_default());
        ca::check_ca_config(&spec.ca_config, None).map_err(SwarmError::bad_request)?;
        let data_path_port = match req.data_path_port {
            0 => 4789,
            p if (1024..=49151).contains(&p) => p,
            p => {
                return Err(SwarmError::bad_request(format!(
                    "Datapath port number is not in valid range (1024-49151) : {p}"
                )))
            }
        };
        let subnet_size = match req.subnet_size {
            0 => 24,
            s if (1..=29).contains(&s) => s,
            s => {
                return Err(SwarmError::bad_request(format!(
                    "subnet size is out of range: {s}"
                )))
            }
        };
        let availability = parse_availability(&req.availability)?;

        let node_id = shoal_store::model::new_id();
        let cluster_id = shoal_store::model::new_id();
        let raft_id = (rand::random::<u64>() >> 1) | 1;
        let ca = RootCa::generate().map_err(SwarmError::internal)?;
        let creds = ca
            .issue_credentials(
                &NodeCertSpec::for_node(&node_id, NodeRole::Manager, &cluster_id)
                    .with_validity(spec.node_cert_expiry_or_default()),
            )
            .map_err(SwarmError::internal)?;
        let tokens = ca::JoinTokens::generate(&ca).map_err(SwarmError::internal)?;
        let membership = SwarmMembership {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: NodeRole::Manager,
            raft_id,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.clone(),
            managers: vec![advertise.clone()],
        };
        let dir = &self.inner.dir;
        dir.wipe().map_err(SwarmError::internal)?;
        // The CLI sends both the flag and the spec field; docker-py only the spec field.
        let autolock = req.auto_lock_managers
            || req
                .spec
                .as_ref()
                .is_some_and(|s| s.encryption_config.auto_lock_managers);
        let unlock_key = match autolock {
            true => Some(UnlockKey::generate().map_err(SwarmError::internal)?),
            false => None,
        };
        let data_key = shoal_store::DataKey::generate();
        *self.inner.keys.lock().unwrap() = autolock::HeldKeys {
            unlock: unlock_key.clone(),
            data: StoreKeys::current(data_key.clone()),
        };
        self.save_credentials(&creds)
            .map_err(SwarmError::internal)?;

        let manager = Manager::start(
            dir,
            &self.inner.live,
            &self.inner.metrics,
            membership.clone(),
            data_key,
            None,
        )
        .await
        .map_err(|e| {
            let _ = dir.wipe();
            SwarmError::bad_request(format!("{e:#}"))
        })?;
        let result: Result<(), SwarmError> = async {
            manager
                .store
                .initialize()
                .await
                .map_err(SwarmError::internal)?;
            wait_until(Duration::from_secs(10), || manager.store.is_leader())
                .await
                .map_err(|_| {
                    SwarmError::unavailable("the new swarm's store did not elect this node in time")
                })?;
            if spec.name.is_empty() {
                spec.name = "default".into();
            }
            spec.encryption_config.auto_lock_managers = autolock;
            let cluster = Cluster {
                meta: Meta::with_id(cluster_id.clone()),
                spec,
                join_tokens: JoinTokens {
                    worker: tokens.worker.to_string(),
                    manager: tokens.manager.to_string(),
                },
                default_addr_pool: req
                    .default_addr_pool
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| vec!["10.0.0.0/8".into()]),
                subnet_size,
                data_path_port,
                root_ca: StoredRootCa {
                    cert_pem: ca.cert_pem().to_string(),
                    key_pem: ca.key_pem().to_string(),
                    cert_digest: ca.digest(),
                    rotation: None,
                },
                unlock_key: unlock_key
                    .as_ref()
                    .map(|k| k.to_string())
                    .unwrap_or_default(),
                ..Default::default()
            };
            let node = self.own_node_object(&membership, NodeRole::Manager, availability);
            let ingress = ingress_network(&cluster).map_err(SwarmError::bad_request)?;
            manager
                .store
                .submit(Txn::new().create(cluster).create(node).create(ingress))
                .await
                .map_err(SwarmError::internal)?;
            dir.save(&membership).map_err(SwarmError::internal)?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            manager.stop().await;
            let _ = dir.wipe();
            return Err(e);
        }
        self.spawn_manager_watches(&manager.store);
        *self.inner.state.write().await = SwarmState::Manager {
            membership,
            manager,
        };
        self.start_agent().await;
        self.wait_for_agent_session().await;
        Ok(node_id)
    }

    fn own_node_object(&self, m: &SwarmMembership, role: NodeRole, availability: &str) -> Node {
        let spec: NodeSpec = serde_json::from_value(serde_json::json!({
            "Labels": {}, "Role": role.as_str(), "Availability": availability,
        }))
        .expect("a valid node spec");
        Node {
            meta: Meta::with_id(m.node_id.clone()),
            spec,
            description: description::describe(self.inner.config.hostname.as_deref()),
            status: NodeStatus {
                state: NodeState::Ready,
                addr: host_of(&m.advertise_addr),
                ..Default::default()
            },
            manager_status: (role == NodeRole::Manager).then(|| ManagerStatus {
                addr: m.advertise_addr.clone(),
                ..Default::default()
            }),
            role,
            raft_id: m.raft_id,
            // The swarm's first manager is its store's first voter.
            raft_membership: if role == NodeRole::Manager {
                RaftMembership::Voter
            } else {
                RaftMembership::None
            },
        }
    }

    /// `POST /swarm/join`.
    pub async fn join(&self, req: JoinSwarmRequest) -> Result<(), SwarmError> {
        let _guard = self.inner.lifecycle.lock().await;
        let state = self.inner.state.read().await.clone();
        match &state {
            SwarmState::Inactive => {}
            // A worker that was offline past its certificate's expiry cannot reach the swarm
            // any more; a fresh join token lets it in again as a new node.
            SwarmState::Worker { membership } if self.certificate_expired() => {
                tracing::warn!(
                    node = membership.node_id,
                    "this node's certificate expired while it was away: leaving the old membership to join again"
                );
                self.forget_swarm(Some(membership.node_id.clone())).await?;
            }
            SwarmState::Manager { .. } if self.certificate_expired() => {
                return Err(SwarmError::unavailable(
                    "this manager's certificate expired while it was away and it cannot rejoin as itself: on another manager, `docker node demote` and `docker node rm` it; here, `docker swarm leave --force`, then join with a manager token",
                ));
            }
            _ => return Err(SwarmError::unavailable(texts::ALREADY_IN_SWARM)),
        }
        let remotes = req.remote_addrs.clone().unwrap_or_default();
        if remotes.is_empty() {
            return Err(SwarmError::bad_request(
                "at least 1 RemoteAddr is required to join",
            ));
        }
        let listen = parse_listen_addr(if req.listen_addr.is_empty() {
            "0.0.0.0:2377"
        } else {
            &req.listen_addr
        })?;
        let availability = parse_availability(&req.availability)?;
        let token = JoinToken::parse(&req.join_token)
            .map_err(|e| SwarmError::bad_request(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last_error = String::from("no manager answered");
        for remote in &remotes {
            if Instant::now() > deadline {
                break;
            }
            let advertise = advertise_addr(&req.advertise_addr, listen, Some(remote))?;
            let joined = match self
                .join_via(remote, &token, listen, &advertise, availability)
                .await
            {
                Ok(joined) => joined,
                Err(JoinFailure::Refused(e)) => return Err(e),
                Err(JoinFailure::Retry(m)) => {
                    last_error = format!("{remote}: {m}");
                    continue;
                }
            };
            let (membership, manager, mut admission) = match joined {
                Joined::Worker(membership) => {
                    self.inner
                        .dir
                        .save(&membership)
                        .map_err(SwarmError::internal)?;
                    *self.inner.state.write().await = SwarmState::Worker { membership };
                    self.start_agent().await;
                    self.wait_for_agent_session().await;
                    return Ok(());
                }
                Joined::Manager {
                    membership,
                    manager,
                    admission,
                } => (membership, manager, admission),
            };
            // The leader admits the new manager once its store has caught up, which takes as
            // long as the store is large: answer within the join's deadline either way.
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(5));
            match tokio::time::timeout(wait, &mut admission).await {
                Ok(result) => match flatten_admission(result) {
                    Ok(()) => {
                        self.become_manager(membership, manager).await?;
                        return Ok(());
                    }
                    Err(e) => {
                        manager.stop().await;
                        let _ = self.inner.dir.wipe();
                        last_error = format!("{remote}: {e}");
                    }
                },
                Err(_) => {
                    *self.inner.state.write().await = SwarmState::Joining {
                        membership: membership.clone(),
                        manager: manager.clone(),
                    };
                    let node = self.clone();
                    tokio::spawn(async move {
                        let result = flatten_admission(admission.await);
                        node.finish_background_join(membership, manager, result)
                            .await;
                    });
                    return Err(SwarmError::unavailable(format!(
                        "Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the \"docker info\" command to see the current swarm status of your node. (the store is catching up: {remote})"
                    )));
                }
            }
        }
        // Nothing goes on after this answer, so it does not say that the join continues (as
        // dockerd's does when its join keeps retrying).
        Err(SwarmError::unavailable(format!(
            "could not join the swarm: {last_error}. Check the address and the token, then run \"docker swarm join\" again."
        )))
    }

    async fn join_via(
        &self,
        remote: &str,
        token: &JoinToken,
        listen: SocketAddr,
        advertise: &str,
        availability: &str,
    ) -> Result<Joined, JoinFailure> {
        let description = description::describe(self.inner.config.hostname.as_deref());
        let joined =
            join::request_join(remote, token, advertise, &description, availability).await?;
        let (creds, role) = (joined.creds, joined.role);
        let membership = SwarmMembership {
            node_id: joined.node_id,
            cluster_id: joined.cluster_id,
            role,
            raft_id: joined.raft_id,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: joined.managers,
        };
        let dir = &self.inner.dir;
        dir.wipe().map_err(|e| JoinFailure::Retry(e.to_string()))?;
        // A new manager's store gets its own data key; it seals its keys with the swarm's
        // unlock key once its store has the Cluster object (see `autolock`).
        let data_key = (role == NodeRole::Manager).then(shoal_store::DataKey::generate);
        *self.inner.keys.lock().unwrap() = autolock::HeldKeys {
            unlock: None,
            data: StoreKeys {
                current: data_key.clone(),
                retiring: None,
            },
        };
        self.save_credentials(&creds)
            .map_err(|e| JoinFailure::Retry(e.to_string()))?;
        match (role, data_key) {
            (NodeRole::Manager, Some(data_key)) => {
                let manager = Manager::start(
                    dir,
                    &self.inner.live,
                    &self.inner.metrics,
                    membership.clone(),
                    data_key,
                    None,
                )
                .await
                .map_err(|e| JoinFailure::Refused(SwarmError::bad_request(format!("{e:#}"))))?;
                let (remote, creds, advertise) =
                    (remote.to_string(), creds.clone(), advertise.to_string());
                let raft_id = membership.raft_id;
                let admission =
                    tokio::spawn(
                        async move { join_raft(&remote, &creds, raft_id, &advertise).await },
                    );
                Ok(Joined::Manager {
                    membership,
                    manager,
                    admission,
                })
            }
            _ => Ok(Joined::Worker(membership)),
        }
    }

    /// A joined manager takes its role: its membership is saved (only now: a node restarted
    /// before the leader admitted it starts outside the swarm), its keys follow the swarm's,
    /// its agent starts.
    async fn become_manager(
        &self,
        membership: SwarmMembership,
        manager: Arc<Manager>,
    ) -> Result<(), SwarmError> {
        self.inner
            .dir
            .save(&membership)
            .map_err(SwarmError::internal)?;
        self.spawn_manager_watches(&manager.store);
        *self.inner.state.write().await = SwarmState::Manager {
            membership,
            manager,
        };
        self.start_agent().await;
        self.wait_for_agent_session().await;
        Ok(())
    }

    /// The end of a join that answered "continues in the background": the manager takes its
    /// role, or, if the leader did not admit it, stops and the node is outside the swarm again.
    /// Nothing happens if the node left meanwhile.
    async fn finish_background_join(
        &self,
        membership: SwarmMembership,
        manager: Arc<Manager>,
        result: Result<(), String>,
    ) {
        let _guard = self.inner.lifecycle.lock().await;
        let still_joining = matches!(
            &*self.inner.state.read().await,
            SwarmState::Joining { manager: m, .. } if Arc::ptr_eq(m, &manager)
        );
        if !still_joining {
            return;
        }
        match result {
            Ok(()) => {
                tracing::info!("joined the swarm as a manager (in the background)");
                if let Err(e) = self.become_manager(membership, manager.clone()).await {
                    tracing::error!("joined the swarm, but saving the membership failed: {e:?}");
                }
            }
            Err(e) => {
                tracing::error!("joining the swarm as a manager failed: {e}");
                manager.stop().await;
                let _ = self.inner.dir.wipe();
                *self.inner.keys.lock().unwrap() = Default::default();
                *self.inner.state.write().await = SwarmState::Inactive;
            }
        }
    }

    /// Starts the node's agent from the membership and credentials on disk. A failure is logged:
    /// the node is in the swarm either way, and a daemon restart retries.
    async fn start_agent(&self) {
        let dir = &self.inner.dir;
        let started = async {
            let membership = dir.load()?.context("not in a swarm")?;
            let creds = self.load_credentials()?;
            let mut managers = membership.managers.clone();
            if membership.role == NodeRole::Manager {
                // A manager's own listener first: it may well be the leader.
                managers.retain(|m| *m != membership.advertise_addr);
                managers.insert(0, membership.advertise_addr.clone());
            }
            // The certificate on disk is the one in use (see `save_credentials`).
            self.inner.live.replace(&creds)?;
            Agent::start(AgentConfig {
                node_id: membership.node_id.clone(),
                managers,
                tls: self.inner.live.clone().into(),
                executor: self.inner.executor.clone(),
                store: Arc::new(FileTaskStore::open(dir.worker().join("tasks"))?),
                hostname: self.inner.config.hostname.clone(),
            })
            .await
        }
        .await;
        match started {
            Ok(agent) => {
                tokio::spawn(self.clone().follow_role(agent.connection()));
                tokio::spawn(
                    self.clone()
                        .renew_certificates(agent.stopping(), agent.connection()),
                );
                // The data plane follows what the leader streams to the agent, on every node.
                if let (Some(dataplane), Ok(Some(m))) =
                    (self.inner.executor.dataplane(), dir.load())
                {
                    tokio::spawn(dataplane.run(m.node_id, agent.network_state(), agent.stopping()));
                }
                *self.inner.agent.lock().await = Some(agent);
            }
            Err(e) => tracing::error!("the agent did not start: {e:#}"),
        }
    }

    /// Waits (a bounded time) for the agent's first session with a dispatcher, as dockerd's
    /// init and join wait for the node to be ready: registering the session writes the node's
    /// status and description, so a client that reads the node right after init or join gets
    /// the version its next update must carry, not one that is about to move.
    async fn wait_for_agent_session(&self) {
        let connection = match self.inner.agent.lock().await.as_ref() {
            Some(agent) => agent.connection(),
            None => return,
        };
        let mut connection = connection;
        let registered =
            tokio::time::timeout(AGENT_SESSION_WAIT, connection.wait_for(|c| c.sessions > 0));
        if registered.await.is_err() {
            tracing::warn!(
                "the agent has no session with a manager after {AGENT_SESSION_WAIT:?}; it keeps trying in the background"
            );
        }
    }

    /// `POST /swarm/leave`.
    pub async fn leave(&self, force: bool) -> Result<(), SwarmError> {
        let _guard = self.inner.lifecycle.lock().await;
        let state = self.inner.state.read().await.clone();
        let node_id = state.membership().map(|m| m.node_id.clone());
        match state {
            SwarmState::Inactive => return Err(SwarmError::unavailable(texts::NOT_IN_SWARM)),
            SwarmState::Manager {
                membership,
                manager,
            } => {
                let members = manager.store.members();
                let voters: Vec<_> = members.iter().filter(|m| m.voter).collect();
                if !force {
                    const HEAD: &str = "You are attempting to leave the swarm on a node that is participating as a manager. ";
                    if voters.len() <= 1 {
                        return Err(SwarmError::unavailable(format!(
                            "{HEAD}Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. "
                        )));
                    }
                    let reachable = voters.iter().filter(|m| m.reachable != Some(false)).count();
                    let remaining = reachable.saturating_sub(1);
                    let quorum_lost = remaining < (voters.len() - 1) / 2 + 1;
                    let mut msg = HEAD.to_string();
                    if quorum_lost {
                        msg.push_str(&format!(
                            "Removing this node leaves {remaining} managers out of {}. Without a Raft quorum your swarm will be inaccessible. ",
                            voters.len()
                        ));
                    }
                    msg.push_str("The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.");
                    return Err(SwarmError::unavailable(msg));
                }
                if voters.len() > 1 {
                    if let Err(e) = manager.store.remove_member(membership.raft_id).await {
                        tracing::warn!(
                            "leaving: could not remove this manager from the Raft group: {e}"
                        );
                    }
                }
                manager.stop().await;
            }
            SwarmState::Worker { .. } => {}
            // Not admitted yet: nothing of the swarm depends on it (the leader removes the
            // learner once it falls silent).
            SwarmState::Joining { manager, .. } => manager.stop().await,
            SwarmState::Locked { .. } if !force => {
                return Err(SwarmError::unavailable(texts::LEAVE_LOCKED));
            }
            SwarmState::Locked { .. } => {}
        }
        self.forget_swarm(node_id).await
    }

    /// The local part of leaving: the agent removes the tasks, the data plane its networks,
    /// and the swarm's state on disk goes. The caller holds the lifecycle lock.
    async fn forget_swarm(&self, node_id: Option<String>) -> Result<(), SwarmError> {
        if let Some(agent) = self.inner.agent.lock().await.take() {
            agent.leave().await;
        }
        // The agent removed the tasks' containers: their networks, rules and names go too.
        if let (Some(dataplane), Some(node_id)) = (self.inner.executor.dataplane(), node_id) {
            dataplane.clear(&node_id).await;
        }
        self.inner.dir.wipe().map_err(SwarmError::internal)?;
        *self.inner.keys.lock().unwrap() = Default::default();
        *self.inner.state.write().await = SwarmState::Inactive;
        Ok(())
    }

    /// Whether this node's certificate has expired (it can no longer reach its swarm).
    fn certificate_expired(&self) -> bool {
        self.inner
            .live
            .get()
            .and_then(|c| c.info())
            .is_ok_and(|i| i.is_expired_at(shoal_store::clock::now()))
    }

    /// Stops everything (daemon shutdown); swarm state stays on disk.
    pub async fn shutdown(&self) {
        if let Some(agent) = self.inner.agent.lock().await.take() {
            agent.stop().await;
        }
        let state = self.inner.state.read().await.clone();
        if let SwarmState::Manager { manager, .. } | SwarmState::Joining { manager, .. } = state {
            manager.stop().await;
        }
    }
}

/// What joining through one manager gave.
enum Joined {
    /// A worker: nothing more to wait for.
    Worker(SwarmMembership),
    /// A manager whose store member runs; `admission` ends when the leader has made it a
    /// voter (or gave up).
    Manager {
        membership: SwarmMembership,
        manager: Arc<Manager>,
        admission: tokio::task::JoinHandle<Result<(), String>>,
    },
}

fn flatten_admission(r: Result<Result<(), String>, tokio::task::JoinError>) -> Result<(), String> {
    r.map_err(|e| format!("joining the store's Raft group: {e}"))?
}

async fn join_raft(
    remote: &str,
    creds: &NodeCredentials,
    raft_id: u64,
    advertise: &str,
) -> Result<(), String> {
    let tls = ca::manager_client_tls_config(creds).map_err(|e| e.to_string())?;
    let channel = Endpoint::from_shared(format!("https://{remote}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connecting to {remote}: {e}"))?;
    let mut req = tonic::Request::new(JoinRaftRequest {
        raft_id,
        addr: advertise.to_string(),
    });
    // The leader answers once this member has caught up (or it gave up), on a deadline that
    // grows with the store's size: its answer decides, not a timer here.
    req.set_timeout(Duration::from_secs(3600));
    SwarmClient::new(channel)
        .join_raft(req)
        .await
        .map_err(|s| format!("joining the store's Raft group: {}", s.message()))?;
    Ok(())
}

fn parse_availability(a: &str) -> Result<&'static str, SwarmError> {
    match a.to_ascii_lowercase().as_str() {
        "" | "active" => Ok("active"),
        "pause" => Ok("pause"),
        "drain" => Ok("drain"),
        other => Err(SwarmError::bad_request(format!(
            "invalid Availability: {other:?}"
        ))),
    }
}

async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The routing-mesh network a new swarm starts with, as dockerd creates it: `ingress`, on the
/// first subnet of the swarm's default address pool.
fn ingress_network(cluster: &Cluster) -> Result<Network, String> {
    use shoal_controllers::allocator::ipam;
    let spec = NetworkSpec {
        name: "ingress".into(),
        driver: "overlay".into(),
        scope: "swarm".into(),
        ingress: true,
        ipam: Some(IPAMSpec {
            driver: "default".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let taken = ipam::Taken { networks: vec![] };
    let size = u8::try_from(cluster.subnet_size).unwrap_or(ipam::DEFAULT_SUBNET_SIZE);
    let allocation = ipam::allocate_network(&spec, &taken, &cluster.default_addr_pool, size)
        .map_err(|e| format!("the ingress network: {e}"))?;
    Ok(Network {
        meta: Meta::with_id(shoal_store::model::new_id()),
        spec,
        allocation: Some(allocation),
    })
}
