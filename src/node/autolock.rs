//! Autolock, the node's half (swarmkit's KEK handling): a manager's key file (its TLS key and
//! its store's data key, see [`crate::ca::key_file`]) is sealed with the swarm's unlock key
//! while the swarm is autolocked, so a manager restarted from its disk stays locked (no store,
//! no agent, the API answers "Swarm is encrypted...") until `docker swarm unlock` gives it the
//! key. Workers are never locked.
//!
//! The unlock key itself lives in the Cluster object (in the store, sealed at rest like
//! everything else). Every manager follows it: when autolock is turned on or off or the key is
//! rotated, it rewrites its own key file under the new key. A manager keeps the key it was
//! sealed with in memory only. Turning autolock on also rotates the manager's data key (see
//! [`NodeRuntime::reconcile_keys`]).

use std::time::Duration;

use shoal_store::model::{Cluster, Kind};
use shoal_store::{DataKey, Store, WatchFilter, WatchRequest, WatchStart};

use super::{NodeRuntime, SwarmError, SwarmState};
use crate::ca::{CaError, NodeCredentials, StoreKeys, UnlockKey};

/// Pause before following the unlock key again after the watch ended.
const REWATCH: Duration = Duration::from_secs(1);

/// The keys a node holds in memory while it runs: what its key file is sealed with, and its
/// store's data keys (managers).
#[derive(Default)]
pub(super) struct HeldKeys {
    pub unlock: Option<UnlockKey>,
    pub data: StoreKeys,
}

/// The unlock key the swarm wants managers sealed with: the Cluster's key while autolock is on.
pub(super) fn wanted_unlock_key(store: &Store) -> Option<UnlockKey> {
    let view = store.view();
    let cluster = view.list::<Cluster>().next()?;
    if !cluster.spec.encryption_config.auto_lock_managers || cluster.unlock_key.is_empty() {
        return None;
    }
    match UnlockKey::parse(&cluster.unlock_key) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::error!("the swarm's unlock key is malformed: {e}");
            None
        }
    }
}

impl NodeRuntime {
    /// Saves `creds` with the keys held in memory (the data keys, sealed with the unlock key)
    /// and makes them the ones new connections present.
    pub(super) fn save_credentials(&self, creds: &NodeCredentials) -> Result<(), CaError> {
        let held = self.inner.keys.lock().unwrap();
        creds.save_with(self.inner.dir.root(), &held.data, held.unlock.as_ref())?;
        self.inner.live.replace(creds)
    }

    /// Loads this node's credentials, opening its key file with the unlock key held in memory.
    pub(super) fn load_credentials(&self) -> Result<NodeCredentials, CaError> {
        let held = self.inner.keys.lock().unwrap();
        Ok(NodeCredentials::load_with(self.inner.dir.root(), held.unlock.as_ref())?.0)
    }

    /// Rewrites this manager's key file with `data` under `unlock`, and holds them.
    fn rewrite_keys(
        &self,
        held: &mut HeldKeys,
        data: StoreKeys,
        unlock: Option<UnlockKey>,
    ) -> Result<(), CaError> {
        let root = self.inner.dir.root();
        let (creds, _) = NodeCredentials::load_with(root, held.unlock.as_ref())?;
        creds.save_with(root, &data, unlock.as_ref())?;
        held.data = data;
        held.unlock = unlock;
        Ok(())
    }

    /// Brings this manager's keys in line with the swarm: its key file sealed with the swarm's
    /// unlock key while autolock is on, in clear otherwise. Turning autolock on also rotates
    /// the store's data key, as swarmkit does: the old one lay on disk in clear until then. The
    /// new key and the retiring one are both kept in the key file until the store has sealed
    /// everything again, so a manager stopped in the middle finishes the rotation when it
    /// starts; then its TLS key, which lay in clear too, is replaced by a renewal.
    async fn reconcile_keys(&self, store: &Store) -> anyhow::Result<()> {
        let wanted = wanted_unlock_key(store);
        let rotation = {
            let mut held = self.inner.keys.lock().unwrap();
            if held.unlock != wanted {
                let mut data = held.data.clone();
                let locking = held.unlock.is_none() && wanted.is_some();
                if locking && data.retiring.is_none() {
                    data.retiring = data.current.replace(DataKey::generate());
                }
                self.rewrite_keys(&mut held, data, wanted.clone())?;
                tracing::info!(
                    locked = wanted.is_some(),
                    "this manager's keys are now sealed with the swarm's current unlock key"
                );
            }
            match (&held.data.current, &held.data.retiring) {
                (Some(current), Some(_)) => Some(current.clone()),
                _ => None,
            }
        };
        let Some(new_key) = rotation else {
            return Ok(());
        };
        if store.rotating_data_key() {
            // Opened with both keys: it stopped in the middle of the rotation.
            store.finish_data_key_rotation().await?;
        } else {
            store.rotate_data_key(new_key).await?;
        }
        {
            let mut held = self.inner.keys.lock().unwrap();
            let data = StoreKeys {
                retiring: None,
                ..held.data.clone()
            };
            let unlock = held.unlock.clone();
            self.rewrite_keys(&mut held, data, unlock)?;
        }
        tracing::info!("this manager's data key is rotated; the old one is forgotten");
        if let Err(e) = self
            .renew_certificate_now(self.inner.live.generation())
            .await
        {
            tracing::warn!("replacing this manager's TLS key after the data key rotation: {e:#}; it is replaced at its next renewal");
        }
        Ok(())
    }

    /// Keeps this manager's keys in line with the swarm ([`NodeRuntime::reconcile_keys`]) for
    /// as long as `store` runs: on every change of the Cluster object, and again after a
    /// failure.
    pub(super) async fn follow_unlock_key(self, store: Store) {
        let mut watch = None;
        loop {
            if store.is_stopped() {
                return;
            }
            if let Err(e) = self.reconcile_keys(&store).await {
                if store.is_stopped() {
                    return;
                }
                tracing::error!("bringing this manager's keys in line with the swarm: {e:#}");
                tokio::time::sleep(REWATCH).await;
                continue;
            }
            let w = match watch.as_mut() {
                Some(w) => w,
                None => {
                    let req = WatchRequest {
                        start: WatchStart::Snapshot,
                        filter: WatchFilter::kinds([Kind::Cluster]),
                        min_revision: None,
                        buffer: 16,
                        progress_interval: Duration::from_secs(60),
                    };
                    match store.watch(req).await {
                        Ok(w) => watch.insert(w),
                        Err(e) => {
                            if store.is_stopped() {
                                return;
                            }
                            tracing::debug!("following the unlock key: {e}");
                            tokio::time::sleep(REWATCH).await;
                            continue;
                        }
                    }
                }
            };
            match w.next().await {
                Some(Ok(_)) => {}
                _ => {
                    watch = None;
                    tokio::time::sleep(REWATCH).await;
                }
            }
        }
    }

    /// `POST /swarm/unlock`: opens a locked manager's keys with `key` and starts it.
    pub async fn unlock(&self, key: &str) -> Result<(), SwarmError> {
        let _guard = self.inner.lifecycle.lock().await;
        let state = self.inner.state.read().await.clone();
        let membership = match state {
            SwarmState::Locked { membership } => membership,
            SwarmState::Manager { .. } => {
                return Err(SwarmError::conflict("swarm is not locked"));
            }
            SwarmState::Worker { .. } => return Err(SwarmError::unavailable(super::texts::WORKER)),
            SwarmState::Joining { .. } => {
                return Err(SwarmError::unavailable(super::texts::MANAGER_STARTING))
            }
            SwarmState::Inactive => {
                return Err(SwarmError::unavailable(super::texts::NOT_A_MANAGER))
            }
        };
        let key =
            UnlockKey::parse(key).map_err(|_| SwarmError::bad_request("invalid key string"))?;
        let (creds, data_keys) = match NodeCredentials::load_with(self.inner.dir.root(), Some(&key))
        {
            Ok(opened) => opened,
            Err(CaError::WrongUnlockKey) => {
                return Err(SwarmError::unauthorized(
                    "swarm could not be unlocked: invalid key provided",
                ))
            }
            Err(e) => return Err(SwarmError::internal(e)),
        };
        {
            let mut held = self.inner.keys.lock().unwrap();
            held.unlock = Some(key);
            held.data = data_keys;
        }
        let state = self.resume(membership, creds).await.map_err(|e| {
            SwarmError::internal(format!("swarm component could not be started: {e:#}"))
        })?;
        *self.inner.state.write().await = state;
        self.start_agent().await;
        self.wait_for_agent_session().await;
        Ok(())
    }

    /// Starts what watches a manager that just started: the unlock key it follows, and its
    /// store, opened again should it stop on its own ([`super::store_watch`]).
    pub(super) fn spawn_manager_watches(&self, store: &Store) {
        tokio::spawn(self.clone().follow_unlock_key(store.clone()));
        tokio::spawn(self.clone().watch_store(store.clone()));
    }
}

/// The data key of a manager whose key file has none yet (a node from before keys were kept
/// there): the one its store kept beside its data, if any, else a new one.
pub(super) fn adopt_data_key(raft_dir: &std::path::Path) -> std::io::Result<DataKey> {
    let kept = raft_dir.join("data.key");
    if kept.exists() {
        let key = DataKey::load_or_create(&kept)?;
        return Ok(key);
    }
    Ok(DataKey::generate())
}
