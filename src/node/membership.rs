//! What a node remembers about its swarm across restarts (`<data>/swarm/state.json`), beside its
//! certificates (`<data>/swarm/certificates/`) and, on managers, the store (`<data>/swarm/raft/`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_store::model::NodeRole;

/// The node's swarm membership.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwarmMembership {
    /// This node's id.
    pub node_id: String,
    /// The swarm's id.
    pub cluster_id: String,
    /// The role this node's certificate grants.
    pub role: NodeRole,
    /// Raft member id when a manager (0 otherwise).
    pub raft_id: u64,
    /// Where the swarm listener binds (managers).
    pub listen_addr: String,
    /// Where other nodes reach this node.
    pub advertise_addr: String,
    /// Known manager addresses (for workers to find a dispatcher, and to rejoin).
    pub managers: Vec<String>,
}

/// Layout of a node's swarm state directory.
#[derive(Clone, Debug)]
pub struct SwarmDir {
    root: PathBuf,
}

impl SwarmDir {
    /// The swarm directory inside a node's data directory.
    pub fn new(data_dir: &Path) -> Self {
        SwarmDir {
            root: data_dir.join("swarm"),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's directory (managers).
    pub fn raft(&self) -> PathBuf {
        self.root.join("raft")
    }

    /// The agent's directory (its local task records, logs of the process executor).
    pub fn worker(&self) -> PathBuf {
        self.root.join("worker")
    }

    fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Loads the membership, if this node is in a swarm.
    pub fn load(&self) -> std::io::Result<Option<SwarmMembership>> {
        match std::fs::read(self.state_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves the membership atomically.
    pub fn save(&self, m: &SwarmMembership) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let tmp = self.root.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(m)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.state_file())
    }

    /// Removes all swarm state (leaving the swarm).
    pub fn wipe(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
