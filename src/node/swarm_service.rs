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

use crate::ca::rotation::Signer;
use crate::ca::{JoinToken, NodeCertSpec};
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

/// The cluster object and what signs certificates now, or an error saying the swarm is not
/// ready.
fn cluster_and_signer(store: &Store) -> Result<(Cluster, Signer), Status> {
    let view = store.view();
    let cluster = view
        .list::<Cluster>()
        .next()
        .ok_or_else(|| {
            Status::unavailable("the swarm is not initialised yet on this manager; retry")
        })?
        .to_owned_value();
    let signer =
        Signer::of(&cluster).map_err(|e| Status::internal(format!("swarm CA unusable: {e}")))?;
    Ok((cluster, signer))
}

/// Records that node `node_id` now holds a certificate from the root that signs today: its
/// `TLSInfo`, and during a root rotation its place among the converged nodes (the rotation
/// ends with the last one).
async fn record_issued(store: &Store, node_id: &str) -> Result<(), Status> {
    for _ in 0..10 {
        let view = store.view();
        let Some(cluster) = view.list::<Cluster>().next() else {
            return Ok(());
        };
        let Some(node) = view.get::<Node>(node_id) else {
            return Ok(());
        };
        let issuing_root = match &cluster.root_ca.rotation {
            Some(r) => r.cert_pem.clone(),
            None => cluster.root_ca.cert_pem.clone(),
        };
        let info = crate::ca::tls_info(&issuing_root)
            .map_err(|e| Status::internal(format!("swarm CA unusable: {e}")))?;
        let mut txn = Txn::new();
        if node.description.tls_info != info {
            let mut updated = node.to_owned_value();
            updated.description.tls_info = info;
            txn = txn.update(updated);
        }
        if let Some(rotation) = &cluster.root_ca.rotation {
            if !rotation.issued.contains(node_id) {
                let mut updated = cluster.to_owned_value();
                if let Some(r) = updated.root_ca.rotation.as_mut() {
                    r.issued.insert(node_id.to_string());
                }
                let nodes: Vec<String> = view.list::<Node>().map(|n| n.meta.id.clone()).collect();
                let finished = crate::ca::rotation::finish_if_converged(
                    &mut updated,
                    nodes.iter().map(String::as_str),
                )
                .map_err(|e| Status::internal(format!("finishing the root rotation: {e}")))?;
                if finished {
                    tracing::info!("root CA rotation complete: every node holds a certificate from the new root");
                }
                txn = txn.update(updated);
            }
        }
        drop(view);
        if txn.ops.is_empty() {
            return Ok(());
        }
        match store.submit(txn).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_out_of_sequence() => continue,
            Err(e) => return Err(store_status(e)),
        }
    }
    Err(Status::unavailable(
        "recording the certificate kept conflicting with other changes; retry",
    ))
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
        StoreError::Invalid(m) => Status::invalid_argument(m),
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
        let (cluster, signer) = cluster_and_signer(&self.store)?;
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
        // Signed before the node is recorded: a CSR that cannot be signed refuses the join
        // without leaving a node behind.
        let cert = signer
            .issue(
                &req.csr_pem,
                &NodeCertSpec::for_node(&node_id, role, &cluster.meta.id)
                    .with_validity(cluster.spec.node_cert_expiry_or_default()),
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.store
            .submit(Txn::new().create(node))
            .await
            .map_err(store_status)?;
        record_issued(&self.store, &node_id).await?;
        Ok(Response::new(JoinResponse {
            node_id,
            cluster_id: cluster.meta.id.clone(),
            cert_pem: cert.cert_pem,
            ca_pem: cluster.root_ca.trust_bundle(),
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
        // Only the Raft id the swarm gave this node (as it joined or was promoted): a manager's
        // certificate does not let it add members of its choosing.
        let view = self.store.linearizable_view().await.map_err(store_status)?;
        let given = view
            .get::<Node>(&identity.node_id)
            .map(|n| n.raft_id)
            .ok_or_else(|| Status::not_found(format!("node {} not found", identity.node_id)))?;
        drop(view);
        if given != req.raft_id {
            return Err(Status::permission_denied(format!(
                "permission denied: node {} was given Raft id {given}, not {}",
                identity.node_id, req.raft_id
            )));
        }
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
        let (cluster, signer) = cluster_and_signer(&self.store)?;
        let node = self
            .store
            .view()
            .get::<Node>(&identity.node_id)
            .ok_or_else(|| Status::not_found(format!("node {} not found", identity.node_id)))?;
        let role = node.role;
        // Signed before anything is written: a CSR that cannot be signed changes nothing.
        let cert = signer
            .issue(
                &req.csr_pem,
                &NodeCertSpec::for_node(&identity.node_id, role, &cluster.meta.id)
                    .with_validity(cluster.spec.node_cert_expiry_or_default()),
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
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
        record_issued(&self.store, &identity.node_id).await?;
        Ok(Response::new(RenewResponse {
            cert_pem: cert.cert_pem,
            role: role.as_str().to_string(),
            raft_id,
            ca_pem: cluster.root_ca.trust_bundle(),
        }))
    }
}
