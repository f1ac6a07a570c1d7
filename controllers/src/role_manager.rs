//! The role manager (key: node id) moves each node's held role (`Node.Role`, what the CA will
//! certify) towards its desired role (`Spec.Role`), keeping the store's membership in step:
//! - promotion: the role is set at once; the node then gets a manager certificate and joins
//!   the store itself;
//! - demotion: the node's store member is removed first (refused while that would lose quorum;
//!   the last manager is never demoted), and only then is the role set to worker;
//! - a deleted node that is still a store member is removed from the store.
//!
//! Refused changes are retried every `role_retry`.
//!
//! It also records each manager's place in the store's membership on its node (learner,
//! voter, leader, reachable), so that every membership change is a change of the node, with an
//! event, and managers that do not lead can show what the leader saw. Membership is not in the
//! store's change feed, so managers are looked at again every [`MEMBERSHIP_POLL`].

use std::time::Duration;

use shoal_store::model::{ManagerStatus, Node, NodeRole, Object, RaftMembership, Reachability};
use shoal_store::{Member, Obj, Op, Store, StoreError};

use crate::orchestrator::write;
use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};

/// The role manager.
pub struct RoleManager {
    store: Store,
    retry: Duration,
}

impl RoleManager {
    /// A role manager for `store`'s membership, retrying refused changes every `retry`.
    pub fn new(store: Store, retry: Duration) -> Self {
        RoleManager { store, retry }
    }

    /// Removes the store member of `raft_id`: `Ok(true)` when done, `Ok(false)` when refused
    /// for now (quorum), errors otherwise.
    async fn remove_member(&self, ctx: &Ctx, raft_id: u64) -> Result<bool, ReconcileError> {
        let _ = ctx;
        match self.store.remove_member(raft_id).await {
            Ok(()) => Ok(true),
            Err(StoreError::QuorumAtRisk(why)) => {
                tracing::warn!(raft_id, %why, "not removing manager yet");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// How often a manager's recorded membership is compared with the store's.
pub const MEMBERSHIP_POLL: Duration = Duration::from_secs(1);

/// What the store's membership says of `node` now: its place in the group and its manager
/// status (kept as recorded where the membership says nothing new).
fn membership_of(node: &Node, members: &[Member]) -> (RaftMembership, Option<ManagerStatus>) {
    let member = members.iter().find(|m| m.is_of(node));
    let Some(m) = member else {
        let status = (node.role == NodeRole::Manager)
            .then(|| node.manager_status.clone())
            .flatten();
        return (RaftMembership::None, status);
    };
    let recorded = node.manager_status.clone().unwrap_or_default();
    let (place, reachability) = if m.voter {
        let reachability = match m.reachable {
            Some(true) => Reachability::Reachable,
            Some(false) => Reachability::Unreachable,
            None => recorded.reachability,
        };
        (RaftMembership::Voter, reachability)
    } else {
        (RaftMembership::Learner, Reachability::Unknown)
    };
    let status = ManagerStatus {
        leader: m.leader,
        reachability,
        addr: if m.node.addr.is_empty() {
            recorded.addr
        } else {
            m.node.addr.clone()
        },
    };
    (place, Some(status))
}

/// The update that records `node`'s membership, if it changed.
fn record_membership(node: &Obj<Node>, members: &[Member]) -> Option<Op> {
    let (place, status) = membership_of(node, members);
    if place == node.raft_membership && status == node.manager_status {
        return None;
    }
    let mut u = node.to_owned_value();
    u.raft_membership = place;
    u.manager_status = status;
    Some(Op::Update {
        object: Object::Node(u),
        expected_version: node.meta.version.index,
    })
}

fn set_role(node: &Obj<Node>, role: NodeRole) -> Vec<Vec<Op>> {
    let mut u = node.to_owned_value();
    u.role = role;
    if role == NodeRole::Worker {
        u.raft_id = 0;
    }
    vec![vec![Op::Update {
        object: Object::Node(u),
        expected_version: node.meta.version.index,
    }]]
}

impl Reconciler for RoleManager {
    type Key = String;

    fn name(&self) -> &'static str {
        "role-manager"
    }

    fn observe(&self, change: &Change<'_>, _cache: &Cache, keys: &mut Vec<String>) {
        let Change::Event { event, .. } = change else {
            return;
        };
        if let Object::Node(n) = event.object.as_ref() {
            keys.push(n.meta.id.clone());
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        // Store members whose node is gone are keyed by that node's id too.
        let mut keys: Vec<String> = cache.nodes().map(|n| n.meta.id.clone()).collect();
        for m in self.store.members() {
            if !m.node.node_id.is_empty() && cache.node(&m.node.node_id).is_none() {
                keys.push(m.node.node_id);
            }
        }
        keys
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let cache = ctx.cache();
        let store = &self.store;
        let Some(node) = cache.node(key) else {
            // Deleted: make sure it no longer counts towards the store's quorum.
            let member = store
                .members()
                .into_iter()
                .find(|m| m.node.node_id == *key && m.raft_id != store.raft_id());
            if let Some(m) = member {
                if !self.remove_member(ctx, m.raft_id).await? {
                    return Ok(Action::Requeue(self.retry));
                }
            }
            return Ok(Action::AwaitChange);
        };
        let desired = node.spec.role_or_default();
        if desired == node.role {
            if let Some(op) = record_membership(&node, &store.members()) {
                write::commit(ctx, vec![vec![op]]).await?;
            }
            let watched = node.role == NodeRole::Manager || !node.raft_membership.is_none();
            return Ok(if watched {
                Action::Requeue(MEMBERSHIP_POLL)
            } else {
                Action::AwaitChange
            });
        }
        match desired {
            NodeRole::Manager => {
                write::commit(ctx, set_role(&node, NodeRole::Manager)).await?;
            }
            NodeRole::Worker => {
                let managers = cache
                    .nodes()
                    .filter(|n| n.role == NodeRole::Manager)
                    .count();
                if managers <= 1 {
                    tracing::warn!(node = %key, "the last manager cannot be demoted");
                    return Ok(Action::Requeue(self.retry));
                }
                if node.raft_id != 0 && !self.remove_member(ctx, node.raft_id).await? {
                    return Ok(Action::Requeue(self.retry));
                }
                write::commit(ctx, set_role(&node, NodeRole::Worker)).await?;
            }
        }
        Ok(Action::AwaitChange)
    }
}
