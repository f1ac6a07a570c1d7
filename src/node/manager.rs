//! The manager side of a node: its store member, the swarm gRPC listener (store peers, joins,
//! and later the dispatcher), and the controllers that run while it leads.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shoal_store::{DataKey, Store, StoreConfig};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;

use super::membership::{SwarmDir, SwarmMembership};
use super::swarm_service::SwarmService;
use crate::ca::LiveCredentials;
use crate::dispatcher::{Dispatcher, DispatcherConfig};
use crate::net::store_peer::{GrpcTransport, StorePeerService};

/// A running manager.
pub struct Manager {
    /// This manager's store member.
    pub store: Store,
    /// The membership it runs under.
    pub membership: SwarmMembership,
    /// The dispatcher agents talk to (sessions, assignments, status, logs).
    pub dispatcher: Dispatcher,
    /// The reconcilers (they run only while this manager leads).
    controllers: std::sync::Mutex<Option<shoal_controllers::ControllersHandle>>,
    stop_server: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The store configuration of a manager with `membership`, sealed with `data_key`.
pub fn store_config(
    dir: &SwarmDir,
    membership: &SwarmMembership,
    data_key: DataKey,
) -> StoreConfig {
    let mut cfg = StoreConfig::new(
        membership.raft_id,
        membership.advertise_addr.clone(),
        dir.raft(),
    );
    cfg.node_id = membership.node_id.clone();
    cfg.data_key = Some(data_key);
    if let Some(every) = shoal_store::mutation::snapshot_every() {
        cfg.snapshot_every = every;
        cfg.logs_kept_after_snapshot = every / 10;
    }
    cfg
}

/// Binds the swarm listener, waiting a little while the address is still held by a listener
/// of this process that is shutting down (a manager restarted in place).
async fn bind_listener(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

impl Manager {
    /// Opens the store (sealed with `data_key`; values still sealed with `retiring` are opened
    /// too, a data key rotation under way) and starts serving the swarm listener.
    pub async fn start(
        dir: &SwarmDir,
        live: &LiveCredentials,
        metrics: &super::metrics::NodeMetrics,
        membership: SwarmMembership,
        data_key: DataKey,
        retiring: Option<DataKey>,
    ) -> anyhow::Result<Arc<Manager>> {
        let listener = bind_listener(&membership.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "failed to listen on remote API address {}",
                    membership.listen_addr
                )
            })?;
        // Certificates are read per connection: a renewal applies to the next one.
        live.server_config()?;
        let transport = Arc::new(GrpcTransport::new(live.clone()));
        let mut cfg = store_config(dir, &membership, data_key);
        cfg.retiring_data_key = retiring;
        let store = Store::open(cfg, transport)
            .await
            .context("opening the store")?;
        let dispatcher = Dispatcher::start(
            store.clone(),
            DispatcherConfig {
                leader_client_tls: Some(live.clone().into()),
                metrics: metrics.dispatcher.clone(),
                ..DispatcherConfig::default()
            },
        );
        // GitOps sources are fetched into the manager's data directory (any manager may lead).
        let gitops = crate::gitops::sync::Syncer::new(store.clone(), dir.root().join("gitops"));
        let controllers = shoal_controllers::Controllers::start(
            store.clone(),
            shoal_controllers::ControllersConfig {
                metrics: metrics.controllers.clone(),
                gitops: Some(shoal_controllers::gitops::GitOpsBackend(Arc::new(gitops))),
                ..Default::default()
            },
        );
        let (tx, rx) = oneshot::channel::<()>();
        let server_live = live.clone();
        let handshaken = crate::net::tls_accept::spawn_acceptor(
            listener,
            move || server_live.server_config().ok(),
            "swarm listener",
        );
        let incoming = tokio_stream::wrappers::ReceiverStream::new(handshaken)
            .map(|(session, _)| Ok::<_, std::io::Error>(session));
        let router = crate::net::peer_server()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(StorePeerService::server(store.clone()))
            .add_service(SwarmService::server(store.clone()))
            .add_service(dispatcher.server());
        let server = tokio::spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await
            {
                tracing::error!("swarm listener stopped: {e}");
            }
        });
        Ok(Arc::new(Manager {
            store,
            membership,
            dispatcher,
            controllers: std::sync::Mutex::new(Some(controllers)),
            stop_server: std::sync::Mutex::new(Some(tx)),
            server: std::sync::Mutex::new(Some(server)),
        }))
    }

    /// Stops serving and closes the store (data stays on disk).
    pub async fn stop(&self) {
        let controllers = self.controllers.lock().unwrap().take();
        if let Some(c) = controllers {
            c.shutdown().await;
        }
        // End the agents' streams first, so the listener's graceful shutdown need not wait.
        self.dispatcher.stop().await;
        if let Some(tx) = self.stop_server.lock().unwrap().take() {
            let _ = tx.send(());
        }
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        self.store.shutdown().await;
    }
}
