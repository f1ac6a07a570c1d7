//! Following the role the swarm gives this node. `docker node promote/demote` only changes the
//! Node object's desired role; the role manager (a controller) then reconciles the store's Raft
//! membership and the node's observed role. This module is the node's half, as in SwarmKit: when
//! the observed role (sent by the dispatcher on every session update) differs from the role this
//! node's certificate grants, the node renews its certificate for the new role and starts or
//! stops its manager side.
//!
//! - Promotion: renew (the manager assigns a Raft id), start the manager side with an empty store,
//!   ask a manager to add it to the Raft group (it catches up by log or snapshot).
//! - Demotion: the role manager has already removed this member from the Raft group (quorum
//!   checked), so the node stops its manager side, discards its replica and renews as a worker.

use std::time::Duration;

use anyhow::{bail, Context};
use shoal_proto::swarm::swarm_client::SwarmClient;
use shoal_proto::swarm::RenewRequest;
use shoal_store::model::NodeRole;
use tokio::sync::watch;
use tonic::transport::Endpoint;

use super::manager::Manager;
use super::membership::SwarmMembership;
use super::{join_raft, NodeRuntime, SwarmState};
use crate::agent::Connection;
use crate::ca::{self, NodeCredentials, NodeKeyRequest, StoreKeys};

/// Retry delay after a failed role change.
const RETRY: Duration = Duration::from_secs(2);

impl NodeRuntime {
    /// Follows the role published by the agent's sessions until the agent stops.
    pub(super) async fn follow_role(self, mut connection: watch::Receiver<Connection>) {
        loop {
            let wanted = connection.borrow_and_update().role;
            if let Some(wanted) = wanted {
                if let Err(e) = self.converge_role(wanted).await {
                    tracing::warn!(
                        "changing this node's role to {wanted} failed, will retry: {e:#}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => continue,
                        r = connection.changed() => if r.is_err() { return },
                    }
                }
            }
            if connection.changed().await.is_err() {
                return;
            }
        }
    }

    async fn converge_role(&self, wanted: NodeRole) -> anyhow::Result<()> {
        let _guard = self.inner.lifecycle.lock().await;
        let state = self.inner.state.read().await.clone();
        match (state, wanted) {
            (SwarmState::Worker { membership }, NodeRole::Manager) => {
                self.promote(membership).await
            }
            (
                SwarmState::Manager {
                    membership,
                    manager,
                },
                NodeRole::Worker,
            ) => self.demote(membership, manager).await,
            _ => Ok(()),
        }
    }

    async fn promote(&self, mut membership: SwarmMembership) -> anyhow::Result<()> {
        let dir = &self.inner.dir;
        let creds = self.load_credentials()?;
        let (new_creds, role, raft_id, via) =
            renew(&creds, &membership.managers, &membership.advertise_addr).await?;
        if role != NodeRole::Manager || raft_id == 0 {
            bail!("the swarm did not grant a manager certificate yet (role {role})");
        }
        // The new store's data key; sealed with the swarm's unlock key once the store has the
        // Cluster object (see `autolock`).
        let data_key = shoal_store::DataKey::generate();
        self.inner.keys.lock().unwrap().data = StoreKeys::current(data_key.clone());
        self.save_credentials(&new_creds)?;
        membership.role = NodeRole::Manager;
        membership.raft_id = raft_id;
        let manager = Manager::start(
            dir,
            &self.inner.live,
            &self.inner.metrics,
            membership.clone(),
            data_key,
            None,
        )
        .await?;
        if let Err(e) = join_raft(&via, &new_creds, raft_id, &membership.advertise_addr).await {
            manager.stop().await;
            let _ = std::fs::remove_dir_all(dir.raft());
            // Keep the worker certificate semantics on disk consistent with the state we stay in.
            *self.inner.keys.lock().unwrap() = Default::default();
            self.save_credentials(&creds)?;
            bail!("{e}");
        }
        self.spawn_manager_watches(&manager.store);
        dir.save(&membership)?;
        tracing::info!(raft_id, "this node is now a manager");
        *self.inner.state.write().await = SwarmState::Manager {
            membership,
            manager,
        };
        Ok(())
    }

    async fn demote(
        &self,
        mut membership: SwarmMembership,
        manager: std::sync::Arc<Manager>,
    ) -> anyhow::Result<()> {
        let dir = &self.inner.dir;
        let creds = self.load_credentials()?;
        // The managers this node knows: the ones it joined through, and every member of the
        // store as its replica last saw them (the node that made the swarm joined through
        // nobody, so its own list holds only itself).
        let mut others: Vec<String> = membership.managers.clone();
        for m in manager.store.members() {
            if !others.contains(&m.node.addr) {
                others.push(m.node.addr);
            }
        }
        others.retain(|m| *m != membership.advertise_addr);
        // Ask another manager first: this one is leaving the Raft group.
        let (new_creds, role, _, _) = renew(&creds, &others, &membership.advertise_addr).await?;
        if role != NodeRole::Worker {
            bail!("the swarm still grants this node role {role}");
        }
        manager.stop().await;
        std::fs::remove_dir_all(dir.raft()).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        // Workers are never locked, and keep no data key.
        *self.inner.keys.lock().unwrap() = Default::default();
        self.save_credentials(&new_creds)?;
        membership.role = NodeRole::Worker;
        membership.raft_id = 0;
        membership.managers = others;
        dir.save(&membership)?;
        tracing::info!("this node is now a worker");
        *self.inner.state.write().await = SwarmState::Worker { membership };
        Ok(())
    }
}

/// Renews this node's certificate with one of `managers`: returns the credentials, the role and
/// Raft id granted, and the manager that answered.
pub(super) async fn renew(
    creds: &NodeCredentials,
    managers: &[String],
    own_addr: &str,
) -> anyhow::Result<(NodeCredentials, NodeRole, u64, String)> {
    let tls = ca::manager_client_tls_config(creds)?;
    let mut last = anyhow::anyhow!("no manager address known");
    for addr in managers
        .iter()
        .filter(|m| m.as_str() != own_addr)
        .chain(managers.iter().filter(|m| m.as_str() == own_addr))
    {
        let attempt = async {
            let channel = Endpoint::from_shared(format!("https://{addr}"))?
                .tls_config(tls.clone())?
                .connect_timeout(Duration::from_secs(3))
                .connect()
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            let key = NodeKeyRequest::generate()?;
            let mut req = tonic::Request::new(RenewRequest {
                csr_pem: key.csr_pem.clone(),
            });
            req.set_timeout(Duration::from_secs(10));
            let resp = SwarmClient::new(channel)
                .renew_certificate(req)
                .await
                .map_err(|s| anyhow::anyhow!("{addr}: {}", s.message()))?
                .into_inner();
            let role: NodeRole = resp.role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            // The roots to trust from now on (a rotation adds one, and later drops the old).
            let ca_pem = if resp.ca_pem.is_empty() {
                creds.ca_pem.clone()
            } else {
                resp.ca_pem
            };
            let new_creds = key.into_credentials(resp.cert_pem, ca_pem)?;
            anyhow::Ok((new_creds, role, resp.raft_id, addr.clone()))
        };
        match attempt.await {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    Err(last)
}
