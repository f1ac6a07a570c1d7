//! Authorization of inter-node RPCs: the certificate, then the store.
//!
//! A node certificate is valid for months, but what a node may do changes at once: a removed
//! node must be refused everywhere the moment it is removed, and a demoted manager must lose
//! the manager-only RPCs (the Raft peer RPCs above all) even though its old manager certificate
//! still verifies. So every RPC checks, in order:
//!
//! 1. the certificate (verified against the swarm root at the TLS layer) and its role;
//! 2. its cluster id against the swarm's (a certificate of another swarm signed by the same
//!    CA, after a restore, is refused);
//! 3. the store's list of removed nodes ([`Cluster::removed_nodes`]), which grows in the same
//!    transaction that removes a node;
//! 4. for manager-only RPCs, that the store does not know the caller as a demoted manager: a
//!    worker by role and by spec that is not a member of the Raft group.
//!
//! The store can only refuse what it knows. A replica that has not received the cluster object
//! yet (a new member catching up) checks the certificate alone, and a node the replica has not
//! heard of is let through on its certificate: refusing unknown nodes would stop a lagging
//! replica from ever hearing of them. The lists only ever say "refuse" once the removal or
//! demotion is committed, so a lagging replica errs on the side of the certificate, never
//! against a node that is allowed.

use shoal_store::model::{Cluster, Node, NodeRole};
use shoal_store::Store;
use tonic::{Request, Status};

use crate::ca::{require_role, NodeIdentity};

/// What an RPC needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Any node of the swarm (the dispatcher, certificate renewal).
    Node,
    /// A manager (Raft peer RPCs, joining the Raft group, log subscriptions between managers).
    Manager,
}

/// Authorizes `req` against its certificate and `store` (see the module docs); returns the
/// caller's identity, or `PermissionDenied` saying why.
pub fn authorize<T>(req: &Request<T>, store: &Store, needs: Needs) -> Result<NodeIdentity, Status> {
    let roles: &[NodeRole] = match needs {
        Needs::Node => &[NodeRole::Worker, NodeRole::Manager],
        Needs::Manager => &[NodeRole::Manager],
    };
    let identity = require_role(req, roles)?;
    check_store(&identity, store, needs)?;
    Ok(identity)
}

/// Steps 2-4 of the module docs for an identity whose certificate was verified.
pub fn check_store(identity: &NodeIdentity, store: &Store, needs: Needs) -> Result<(), Status> {
    let view = store.view();
    let Some(cluster) = view.list::<Cluster>().next() else {
        return Ok(());
    };
    let id = &identity.node_id;
    if identity.cluster_id != cluster.meta.id {
        return Err(Status::permission_denied(format!(
            "permission denied: node {id} has a certificate of cluster {}, this is cluster {}",
            identity.cluster_id, cluster.meta.id
        )));
    }
    if cluster.removed_nodes.contains_key(id) {
        return Err(Status::permission_denied(format!(
            "permission denied: node {id} was removed from the swarm; to take part again, leave (docker swarm leave --force) and join with a join token"
        )));
    }
    if needs == Needs::Manager {
        if let Some(node) = view.get::<Node>(id) {
            let demoted = node.role == NodeRole::Worker
                && node.spec.role_or_default() == NodeRole::Worker
                && !store.members().iter().any(|m| m.is_of(&node));
            if demoted {
                return Err(Status::permission_denied(format!(
                    "permission denied: node {id} was demoted to worker; its manager certificate no longer grants manager RPCs"
                )));
            }
        }
    }
    Ok(())
}
