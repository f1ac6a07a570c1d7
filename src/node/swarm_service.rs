//! The `Swarm` gRPC service every manager serves: joining with a token, joining the store's Raft
//! group, and certificate renewal.

use shoal_proto::swarm::swarm_server::{Swarm, SwarmServer};
use shoal_proto::swarm::{
    JoinRaftRequest, JoinRaftResponse, JoinRequest, JoinResponse, RenewRequest, RenewResponse,
};
use shoal_store::model::{
    new_id, Cluster, ManagerStatus, Meta, Node, NodeDescription, NodeRole, NodeSpec, NodeState,
    NodeStatus, RaftMembership,
};
use shoal_store::{Assessment, PeerNode, Store, StoreError, Txn, VoterChange};
use tonic::{Request, Response, Status};

use crate::ca::{JoinToken, NodeCertSpec, RootCa};
use crate::net::authz::{authorize, Needs};

/// Serves joins and certificate requests from this manager's replica of the store.
pub struct SwarmService {
    store: Store,
}

impl SwarmService {
    /// A tonic server for the service.
    pub fn server(store: Store) -> SwarmServer<SwarmService> {
        SwarmServer::new(SwarmService { store })
    }
}

/// The cluster object and its CA, or an error saying the swarm is not ready.
fn cluster_and_ca(store: &Store) -> Result<(Cluster, RootCa), Status> {
    let view = store.view();
    let cluster = view
        .list::<Cluster>()
        .next()
        .ok_or_else(|| {
            Status::unavailable("the swarm is not initialised yet on this manager; retry")
        })?
        .to_owned_value();
    let ca = RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)
        .map_err(|e| Status::internal(format!("swarm CA unusable: {e}")))?;
    Ok((cluster, ca))
}

/// Manager addresses as recorded in the node objects.
pub fn manager_addrs(store: &Store) -> Vec<String> {
    store
        .view()
        .nodes_with_role(NodeRole::Manager)
        .filter_map(|n| n.manager_status.as_ref().map(|m| m.addr.clone()))
        .filter(|a| !a.is_empty())
        .collect()
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(m),
        StoreError::Shutdown => Status::unavailable("manager is shutting down"),
        StoreError::QuorumAtRisk(m) => Status::failed_precondition(m),
        other => Status::internal(other.to_string()),
    }
}

fn random_raft_id() -> u64 {
    // Never 0 (0 means "not a manager").
    rand::random::<u64>() >> 1 | 1
}

/// Host part of `host:port`.
pub fn host_of(addr: &str) -> String {
    addr.rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_default()
}

/// A manager may not join a swarm that has lost its quorum, nor one it would leave a failure
/// from losing it (some managers are unreachable); a second manager is let in with a warning,
/// as dockerd does.
async fn refuse_risky_manager_join(store: &Store, hostname: &str) -> Result<(), Status> {
    match store
        .assess_voter_change(VoterChange::Add)
        .await
        .map_err(store_status)?
    {
        Assessment::Safe => Ok(()),
        Assessment::Warn(why) => {
            tracing::warn!(joining = hostname, "a manager joins: {why}");
            Ok(())
        }
        Assessment::Risky(why) | Assessment::Refused(why) => Err(Status::failed_precondition(
            format!("a manager cannot join now: {why}"),
        )),
    }
}

#[tonic::async_trait]
impl Swarm for SwarmService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let req = request.into_inner();
        let (cluster, ca) = cluster_and_ca(&self.store)?;
        let presented =
            JoinToken::parse(&req.token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let role = [NodeRole::Manager, NodeRole::Worker]
            .into_iter()
            .find(|role| {
                let current = match role {
                    NodeRole::Manager => &cluster.join_tokens.manager,
                    NodeRole::Worker => &cluster.join_tokens.worker,
                };
                JoinToken::parse(current).is_ok_and(|t| t.matches(&presented.to_string()))
            })
            .ok_or_else(|| {
                Status::invalid_argument("A valid join token is necessary to join this cluster")
            })?;
        let description: NodeDescription = if req.description_json.is_empty() {
            NodeDescription::default()
        } else {
            serde_json::from_slice(&req.description_json)
                .map_err(|e| Status::invalid_argument(format!("malformed node description: {e}")))?
        };
        if role == NodeRole::Manager {
            refuse_risky_manager_join(&self.store, &description.hostname).await?;
        }
        let node_id = new_id();
        let raft_id = if role == NodeRole::Manager {
            random_raft_id()
        } else {
            0
        };
        let availability = if req.availability.is_empty() {
            "active".to_string()
        } else {
            req.availability.clone()
        };
        let spec: NodeSpec = serde_json::from_value(serde_json::json!({
            "Labels": {}, "Role": role.as_str(), "Availability": availability,
        }))
        .map_err(|e| {
            Status::invalid_argument(format!("invalid availability {availability:?}: {e}"))
        })?;
        let node = Node {
            meta: Meta::with_id(node_id.clone()),
            spec,
            description,
            status: NodeStatus {
                state: NodeState::Ready,
                addr: host_of(&req.advertise_addr),
                ..Default::default()
            },
            manager_status: (role == NodeRole::Manager).then(|| ManagerStatus {
                addr: req.advertise_addr.clone(),
                ..Default::default()
            }),
            role,
            raft_id,
            // Recorded by the leader as the store admits it.
            raft_membership: RaftMembership::None,
        };
        self.store
            .submit(Txn::new().create(node))
            .await
            .map_err(store_status)?;
        let cert = ca
            .issue(
                &req.csr_pem,
                &NodeCertSpec::for_node(&node_id, role, &cluster.meta.id)
                    .with_validity(cluster.spec.node_cert_expiry_or_default()),
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(JoinResponse {
            node_id,
            cluster_id: cluster.meta.id.clone(),
            cert_pem: cert.cert_pem,
            ca_pem: ca.cert_pem().to_string(),
            role: role.as_str().to_string(),
            raft_id,
            managers: manager_addrs(&self.store),
        }))
    }

    async fn join_raft(
        &self,
        request: Request<JoinRaftRequest>,
    ) -> Result<Response<JoinRaftResponse>, Status> {
        let identity = authorize(&request, &self.store, Needs::Manager)?;
        let req = request.into_inner();
        let node = PeerNode {
            addr: req.addr,
            node_id: identity.node_id,
        };
        self.store
            .add_member(req.raft_id, node)
            .await
            .map_err(store_status)?;
        Ok(Response::new(JoinRaftResponse {}))
    }

    async fn renew_certificate(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let identity = authorize(&request, &self.store, Needs::Node)?;
        let req = request.into_inner();
        let (cluster, ca) = cluster_and_ca(&self.store)?;
        let node = self
            .store
            .view()
            .get::<Node>(&identity.node_id)
            .ok_or_else(|| Status::not_found(format!("node {} not found", identity.node_id)))?;
        let role = node.role;
        let mut raft_id = node.raft_id;
        if role == NodeRole::Manager && raft_id == 0 {
            // Promoted: give it a Raft id before it joins the Raft group.
            raft_id = random_raft_id();
            let mut updated = node.to_owned_value();
            updated.raft_id = raft_id;
            self.store
                .submit(Txn::new().update(updated))
                .await
                .map_err(store_status)?;
        }
        let cert = ca
            .issue(
                &req.csr_pem,
                &NodeCertSpec::for_node(&identity.node_id, role, &cluster.meta.id)
                    .with_validity(cluster.spec.node_cert_expiry_or_default()),
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(RenewResponse {
            cert_pem: cert.cert_pem,
            role: role.as_str().to_string(),
            raft_id,
        }))
    }
}
