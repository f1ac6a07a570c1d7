//! What handlers share: the node, the optional engine pass-through, and the swarm-state gate.

use shoal_store::Store;

use super::error::ApiError;
use crate::node::{texts, NodeRuntime, SwarmState};

/// Shared handler state.
#[derive(Clone)]
pub struct ApiState {
    /// The node.
    pub node: NodeRuntime,
    /// The engine whose routes this API passes through (nodes running the docker executor).
    pub engine: Option<super::engine::Engine>,
}

impl ApiState {
    /// The store, if this node is a manager; else Docker's 503 for the node's state.
    pub async fn manager_store(&self) -> Result<Store, ApiError> {
        match self.node.state().await {
            SwarmState::Manager { manager, .. } => Ok(manager.store.clone()),
            SwarmState::Worker { .. } => Err(ApiError::unavailable(texts::WORKER)),
            SwarmState::Inactive => Err(ApiError::unavailable(texts::NOT_A_MANAGER)),
            SwarmState::Locked { .. } => Err(ApiError::unavailable(texts::LOCKED)),
            SwarmState::Joining { .. } => Err(ApiError::unavailable(texts::MANAGER_STARTING)),
        }
    }
}
