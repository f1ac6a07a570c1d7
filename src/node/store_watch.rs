//! Opening a manager's store again after it stopped on its own. A write to the store's
//! database that fails (most often: the disk is full) stops the member: the database takes no
//! more writes (`shoal_store`'s `Db`) and openraft stops on the storage error, so the member
//! acknowledges nothing it could not persist and the other managers carry on without it. This
//! watch notices that, waits until the data directory's filesystem has room again, and starts
//! the manager side again on the same data, as a daemon restart would, with no operator
//! (the fault matrix's F13; docker/for-aws#86 is Swarm's version of the failure).

use std::path::Path;
use std::time::Duration;

use shoal_store::Store;

use super::{NodeRuntime, SwarmState};

/// How often the store is checked, and the disk while waiting for room.
const CHECK: Duration = Duration::from_secs(1);
/// Room the store needs before it is opened again: a memtable flush (64 MiB) and a new WAL
/// file.
const ROOM_NEEDED: u64 = 96 << 20;
/// Wait after an attempt to open the store again failed.
const RETRY: Duration = Duration::from_secs(10);

/// Bytes an unprivileged writer may still write on the filesystem holding `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs(3) with a NUL-terminated path and a zeroed struct it fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

impl NodeRuntime {
    /// Watches `store` (the running manager's) until it stops on its own, and then opens it
    /// again once there is room; returns when the manager is stopped or replaced otherwise.
    pub(super) async fn watch_store(self, store: Store) {
        let why = loop {
            tokio::time::sleep(CHECK).await;
            if !self.runs_manager_with(&store).await {
                return;
            }
            if let Some(why) = store.failure() {
                break why;
            }
        };
        drop(store);
        let raft_dir = self.inner.dir.raft();
        tracing::error!(
            "this manager's store stopped: {why}; the other managers go on without it, and it is opened again once {} has {} MiB free",
            raft_dir.display(),
            ROOM_NEEDED >> 20
        );
        loop {
            match free_bytes(&raft_dir) {
                Ok(free) if free >= ROOM_NEEDED => {}
                Ok(_) => {
                    tokio::time::sleep(CHECK).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("checking the free space at {}: {e}", raft_dir.display());
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
            match self.reopen_manager().await {
                Ok(true) => {
                    tracing::info!("this manager's store is open again");
                    return;
                }
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(
                        "opening this manager's store again failed, retrying in {RETRY:?}: {e:#}"
                    );
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Whether this node still runs a manager whose store is `store`.
    async fn runs_manager_with(&self, store: &Store) -> bool {
        matches!(&*self.inner.state.read().await, SwarmState::Manager { manager, .. } if manager.store.is_same(store))
    }

    /// Stops the manager side and starts it again on the same data; `false` when this node is
    /// no longer a manager (nothing to do).
    async fn reopen_manager(&self) -> anyhow::Result<bool> {
        let _guard = self.inner.lifecycle.lock().await;
        let (membership, old) = match &*self.inner.state.read().await {
            SwarmState::Manager {
                membership,
                manager,
            } => (membership.clone(), manager.clone()),
            _ => return Ok(false),
        };
        if !old.store.is_stopped() {
            if old.store.failure().is_none() {
                // Opened again meanwhile.
                return Ok(true);
            }
            old.stop().await;
        }
        let creds = self.load_credentials()?;
        let manager = self.start_manager_side(&membership, &creds).await?;
        *self.inner.state.write().await = SwarmState::Manager {
            membership,
            manager,
        };
        Ok(true)
    }
}
