//! `shoal restore FILE --data-dir DIR`: a manager made from a backup (etcd's `snapshot
//! restore`). The data dir gets the backup's store, this machine as its only member, the
//! identity of the manager that made the backup (its Node object is in the state) with a new
//! certificate from the swarm's root CA, and the marker that makes its first start record the
//! other managers as workers (see `recovery`). `shoal daemon --data-dir DIR` then starts a
//! manager with the backup's state and revision; workers whose manager list names its address
//! reconnect.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use shoal_store::model::{Cluster, NodeRole};
use shoal_store::DataKey;

use super::manager;
use super::membership::{SwarmDir, SwarmMembership};
use super::recovery::recovery_marker;
use crate::ca::{NodeCertSpec, RootCa, UnlockKey};

/// What a restore made.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The store revision of the restored state.
    pub revision: u64,
    /// The node id the manager has (the one that made the backup).
    pub node_id: String,
    /// The swarm's id.
    pub cluster_id: String,
    /// Whether the swarm uses autolock: the manager starts locked, `docker swarm unlock` with
    /// the swarm's unlock key opens it.
    pub locked: bool,
    /// The data dir.
    pub data_dir: PathBuf,
}

/// Restores the backup at `file` into `data_dir` (which must hold no swarm), for a manager
/// listening on `listen` (`host:port`) and advertising `advertise`.
pub async fn restore(
    file: &Path,
    data_dir: &Path,
    listen: &str,
    advertise: Option<&str>,
) -> anyhow::Result<Restored> {
    let dir = SwarmDir::new(data_dir);
    if dir.load()?.is_some() || dir.raft().exists() {
        bail!(
            "{} already holds a swarm: restore into an empty data dir",
            data_dir.display()
        );
    }
    let (header, _) = shoal_store::backup::verify(file)?;
    let listen = super::parse_listen_addr(listen).map_err(|e| anyhow::anyhow!(e.message))?;
    let advertise = super::advertise_addr(advertise.unwrap_or_default(), listen, None)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut membership = SwarmMembership {
        node_id: header.node_id.clone(),
        cluster_id: String::new(),
        role: NodeRole::Manager,
        raft_id: (rand::random::<u64>() >> 1) | 1,
        listen_addr: listen.to_string(),
        advertise_addr: advertise.clone(),
        managers: vec![advertise],
    };
    let data_key = DataKey::generate();
    let config = manager::store_config(&dir, &membership, data_key.clone());
    let node_id = header.node_id.clone();
    let (header, (cluster, known)) = shoal_store::backup::restore(file, &config, |view| {
        (
            view.list::<Cluster>().next().map(|c| c.to_owned_value()),
            view.get::<shoal_store::model::Node>(&node_id).is_some(),
        )
    })
    .await?;
    let cluster = cluster.context("the backup holds no swarm (no cluster object)")?;
    if !known {
        bail!(
            "the backup's manager {} is not among its nodes",
            header.node_id
        );
    }
    membership.cluster_id = cluster.meta.id.clone();
    let ca = RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)
        .context("the backup's root CA")?;
    let creds = ca.issue_credentials(
        &NodeCertSpec::for_node(&membership.node_id, NodeRole::Manager, &cluster.meta.id)
            .with_validity(cluster.spec.node_cert_expiry_or_default()),
    )?;
    let unlock = match cluster.unlock_key.as_str() {
        "" => None,
        key => Some(UnlockKey::parse(key).context("the backup's unlock key")?),
    };
    creds.save_with(
        dir.root(),
        &crate::ca::StoreKeys::current(data_key),
        unlock.as_ref(),
    )?;
    dir.save(&membership)?;
    std::fs::write(recovery_marker(&dir), b"")?;
    Ok(Restored {
        revision: header.revision,
        node_id: membership.node_id,
        cluster_id: membership.cluster_id,
        locked: unlock.is_some(),
        data_dir: data_dir.to_path_buf(),
    })
}
