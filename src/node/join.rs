//! The network half of joining a swarm, usable without a [`super::NodeRuntime`] (simulated nodes
//! join with it many times in one process): pin the swarm CA by the join token, send a CSR with
//! the token, get back a certificate and the node's identity.

use std::time::Duration;

use shoal_proto::swarm::swarm_client::SwarmClient;
use shoal_proto::swarm::JoinRequest;
use shoal_store::model::{NodeDescription, NodeRole};
use tonic::transport::Endpoint;

use super::SwarmError;
use crate::ca::{self, JoinToken, NodeCredentials, NodeKeyRequest};

/// Why a join attempt failed.
pub enum JoinFailure {
    /// A definite refusal: report it, don't try other managers.
    Refused(SwarmError),
    /// Try the next manager.
    Retry(String),
}

impl std::fmt::Display for JoinFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinFailure::Refused(e) => write!(f, "{e}"),
            JoinFailure::Retry(m) => write!(f, "{m}"),
        }
    }
}

/// What a manager granted a joining node.
pub struct Joined {
    /// The node's credentials (certificate, key, root CA).
    pub creds: NodeCredentials,
    /// The node's id.
    pub node_id: String,
    /// The swarm's id.
    pub cluster_id: String,
    /// The role the certificate grants.
    pub role: NodeRole,
    /// Raft id (managers), else 0.
    pub raft_id: u64,
    /// Manager addresses, including `remote`.
    pub managers: Vec<String>,
}

/// Asks the manager at `remote` to let this node join with `token`: pins the CA by the token's
/// digest before trusting anything the manager says, then sends a fresh key's CSR.
pub async fn request_join(
    remote: &str,
    token: &JoinToken,
    advertise: &str,
    description: &NodeDescription,
    availability: &str,
) -> Result<Joined, JoinFailure> {
    let ca_pem = ca::fetch_root_ca(remote, token).await.map_err(|e| {
        if matches!(e, ca::CaError::CaDigestMismatch { .. }) {
            JoinFailure::Refused(SwarmError::bad_request(e.to_string()))
        } else {
            JoinFailure::Retry(e.to_string())
        }
    })?;
    let key = NodeKeyRequest::generate().map_err(|e| JoinFailure::Retry(e.to_string()))?;
    let tls =
        ca::pinned_ca_client_tls_config(&ca_pem).map_err(|e| JoinFailure::Retry(e.to_string()))?;
    let channel = Endpoint::from_shared(format!("https://{remote}"))
        .map_err(|e| {
            JoinFailure::Refused(SwarmError::bad_request(format!(
                "invalid remote address {remote}: {e}"
            )))
        })?
        .tls_config(tls)
        .map_err(|e| JoinFailure::Retry(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| JoinFailure::Retry(e.to_string()))?;
    let resp = SwarmClient::new(channel)
        .join(JoinRequest {
            token: token.to_string(),
            csr_pem: key.csr_pem.clone(),
            advertise_addr: advertise.to_string(),
            description_json: serde_json::to_vec(description).unwrap_or_default(),
            availability: availability.to_string(),
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => {
                JoinFailure::Refused(SwarmError::bad_request(format!(
                    "rpc error: code = {:?} desc = {}",
                    s.code(),
                    s.message()
                )))
            }
            _ => JoinFailure::Retry(s.message().to_string()),
        })?
        .into_inner();
    let creds = key
        .into_credentials(resp.cert_pem.clone(), resp.ca_pem.clone())
        .map_err(|e| JoinFailure::Retry(e.to_string()))?;
    let role: NodeRole = resp.role.parse().map_err(JoinFailure::Retry)?;
    let mut managers = resp.managers;
    if !managers.iter().any(|m| m == remote) {
        managers.push(remote.to_string());
    }
    Ok(Joined {
        creds,
        node_id: resp.node_id,
        cluster_id: resp.cluster_id,
        role,
        raft_id: resp.raft_id,
        managers,
    })
}
