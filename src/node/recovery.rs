//! `--force-new-cluster`: a manager whose swarm lost its quorum (most managers gone for good)
//! becomes the only manager of its swarm, with every service, secret, config and node it knew.
//! `docker swarm init --force-new-cluster` does it on a running manager, `shoal daemon
//! --force-new-cluster` as the daemon starts.
//!
//! The store's replica becomes a group of one (`shoal_store::recovery`); once it leads, the
//! other managers are recorded as workers, so the role manager does not wait for them and the
//! inter-node RPCs refuse them if they come back with their old state (see `net::authz`): a
//! returning node learns its new role from its session and discards its old replica. Workers
//! reconnect to the surviving manager on their own, and their tasks keep running.

use std::time::Duration;

use shoal_store::model::{Node, NodeRole, RaftMembership};
use shoal_store::{Store, Txn};

use super::manager;
use super::membership::SwarmMembership;
use super::{NodeRuntime, SwarmError, SwarmState};

/// How long the recovered manager may take to elect itself before the clean-up gives up.
const ELECTION_WAIT: Duration = Duration::from_secs(30);

impl NodeRuntime {
    /// Turns this manager's replica into a one-member group, on disk; the manager must be
    /// stopped. Returns the membership to start it with.
    pub(super) async fn recover_store(
        &self,
        mut membership: SwarmMembership,
    ) -> Result<SwarmMembership, SwarmError> {
        let data_key = self.inner.keys.lock().unwrap().data.current.clone();
        let data_key = match data_key {
            Some(k) => k,
            None => super::autolock::adopt_data_key(&self.inner.dir.raft())
                .map_err(SwarmError::internal)?,
        };
        let config = manager::store_config(&self.inner.dir, &membership, data_key);
        let recovered = shoal_store::recovery::force_new_cluster(&config)
            .await
            .map_err(|e| SwarmError::internal(format!("--force-new-cluster: {e}")))?;
        tracing::warn!(
            index = recovered.index,
            term = recovered.term,
            "forced a new cluster: this manager is now the swarm's only manager"
        );
        membership.managers = vec![membership.advertise_addr.clone()];
        self.inner
            .dir
            .save(&membership)
            .map_err(SwarmError::internal)?;
        std::fs::write(recovery_marker(&self.inner.dir), b"").map_err(SwarmError::internal)?;
        Ok(membership)
    }

    /// Whether the store was recovered and the other managers are still to be recorded as
    /// workers (the marker is consumed).
    pub(super) fn take_recovery_marker(&self) -> bool {
        std::fs::remove_file(recovery_marker(&self.inner.dir)).is_ok()
    }

    /// `docker swarm init --force-new-cluster` on a running manager (the lifecycle lock held).
    pub(super) async fn force_new_cluster(&self) -> Result<String, SwarmError> {
        let (membership, old) = match self.inner.state.read().await.clone() {
            SwarmState::Manager {
                membership,
                manager,
            } => (membership, manager),
            SwarmState::Locked { .. } => {
                return Err(SwarmError::unavailable(super::texts::LOCKED))
            }
            _ => {
                return Err(SwarmError::unavailable(
                    "--force-new-cluster recovers a manager of a swarm that lost its quorum; this node is not a manager",
                ))
            }
        };
        old.stop().await;
        let membership = self.recover_store(membership).await?;
        // The manager side starts again as at any start, with the data key this manager held.
        let creds = self.load_credentials().map_err(SwarmError::internal)?;
        let manager = self
            .start_manager_side(&membership, &creds)
            .await
            .map_err(|e| SwarmError::internal(format!("{e:#}")))?;
        if self.take_recovery_marker() {
            tokio::spawn(retire_other_managers(
                manager.store.clone(),
                membership.node_id.clone(),
                membership.raft_id,
            ));
        }
        let node_id = membership.node_id.clone();
        *self.inner.state.write().await = SwarmState::Manager {
            membership,
            manager,
        };
        Ok(node_id)
    }
}

/// The file saying a recovery's clean-up is still to do (a restored or recovered manager
/// records the lost managers as workers on its first start).
pub(super) fn recovery_marker(dir: &super::membership::SwarmDir) -> std::path::PathBuf {
    dir.root().join("recovered")
}

/// Once `store` leads its group of one, records every other manager as a worker outside the
/// Raft group, and this node's own Raft id (a restored manager has a new one).
pub(super) async fn retire_other_managers(store: Store, own_id: String, own_raft_id: u64) {
    let deadline = tokio::time::Instant::now() + ELECTION_WAIT;
    while !store.is_leader() {
        if tokio::time::Instant::now() > deadline || store.is_stopped() {
            tracing::error!("the recovered manager did not elect itself; the other managers stay recorded as managers");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..10 {
        let view = store.view();
        let mut txn = Txn::new();
        let mut any = false;
        for n in view.list::<Node>() {
            if n.meta.id == own_id {
                if n.raft_id != own_raft_id {
                    let mut own = n.to_owned_value();
                    own.raft_id = own_raft_id;
                    txn = txn.update(own);
                    any = true;
                }
                continue;
            }
            if n.role != NodeRole::Manager && n.spec.role != Some(NodeRole::Manager) {
                continue;
            }
            let mut retired = n.to_owned_value();
            retired.spec.role = Some(NodeRole::Worker);
            retired.role = NodeRole::Worker;
            retired.manager_status = None;
            retired.raft_membership = RaftMembership::None;
            txn = txn.update(retired);
            any = true;
        }
        if !any {
            return;
        }
        match store.submit(txn).await {
            Ok(_) => {
                tracing::info!("the managers lost with the quorum are now recorded as workers");
                return;
            }
            Err(e) if e.is_out_of_sequence() => continue,
            Err(e) => {
                tracing::error!("recording the lost managers as workers failed: {e}");
                return;
            }
        }
    }
}
