//! `/nodes`: inspect, list, update (role, availability, labels), remove.
//!
//! Updating a node only writes its spec. Promotion and demotion are carried out by the role
//! manager (controllers crate), which moves the node's actual role and Raft membership towards
//! `Spec.Role`; here the change is checked first ([`shoal_store::quorum`]): never the last
//! manager, never a demotion that costs the Raft group its quorum (swarmkit's checks), and,
//! unless the request says `force=1`, no change that leaves the swarm one manager failure from
//! losing it.

use axum::extract::{Query as QueryExtract, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use shoal_store::model::{
    Cluster, Kind, Node, NodeAvailability, NodeRole, NodeSpec, NodeState, Task, TaskState,
    TaskStatus, Timestamp,
};
use shoal_store::{Assessment, Txn, VoterChange};

use super::body::DockerJson;
use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::{bool_value, version_param, Query};
use super::{render, resolve};

/// `GET /nodes/{id}`.
pub async fn inspect(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let view = store.view();
    let node = resolve::node(&view, &key)?;
    Ok(Json(render::node(&node, &store.members())))
}

/// `GET /nodes?filters=`.
pub async fn list(
    State(state): State<ApiState>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let f = Filters::from_query(
        &q,
        &["id", "label", "membership", "name", "node.label", "role"],
    )?;
    let mut roles = Vec::new();
    for r in f.get("role") {
        match r.to_ascii_lowercase().as_str() {
            "manager" => roles.push(NodeRole::Manager),
            "worker" => roles.push(NodeRole::Worker),
            "" => {}
            _ => return Err(ApiError::internal(format!("Invalid role filter: '{r}'"))),
        }
    }
    // Every node in the store has been accepted: shoal admits nodes with their join token.
    let mut want_accepted = !f.contains("membership");
    for m in f.get("membership") {
        match m.to_ascii_lowercase().as_str() {
            "accepted" => want_accepted = true,
            "pending" | "" => {}
            _ => {
                return Err(ApiError::internal(format!(
                    "Invalid membership filter: '{m}'"
                )))
            }
        }
    }
    let members = store.members();
    let view = store.view();
    let out: Vec<Value> = view
        .list::<Node>()
        .filter(|n| {
            want_accepted
                && f.any("id", |v| n.meta.id.starts_with(v))
                && f.any("name", |v| n.description.hostname.starts_with(v))
                && f.labels_match("label", &n.description.engine.labels)
                && f.labels_match("node.label", n.spec.labels())
                && (roles.is_empty() || roles.contains(&n.role))
        })
        .map(|n| render::node(&n, &members))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// moby's `NodeSpecToGRPC`: role and availability are required, in any case.
fn parse_spec(body: Value) -> ApiResult<NodeSpec> {
    // An empty body is the zero spec, which then lacks a role.
    let body = if body.is_null() {
        Value::Object(Default::default())
    } else {
        body
    };
    let spec: NodeSpec =
        super::gojson::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if spec.role.is_none() {
        return Err(ApiError::bad_request("invalid Role: \"\""));
    }
    match &spec.availability {
        None => Err(ApiError::bad_request("invalid Availability: \"\"")),
        Some(NodeAvailability::Other(x)) => Err(ApiError::bad_request(format!(
            "invalid Availability: {x:?}"
        ))),
        Some(_) => Ok(spec),
    }
}

/// Refuses a change of voters that would lose the quorum, and one that would leave the swarm
/// one manager failure from that unless `force` asks for it; logs one dockerd would allow with
/// a warning (a second manager).
async fn check_voter_change(
    store: &shoal_store::Store,
    node: &Node,
    change: VoterChange,
    force: bool,
) -> ApiResult<()> {
    let what = match change {
        VoterChange::Add => "promoting",
        VoterChange::Remove(_) => "demoting",
    };
    let name = node_name(node);
    match store.assess_voter_change(change).await? {
        Assessment::Safe => Ok(()),
        Assessment::Warn(why) => {
            tracing::warn!(node = %node.meta.id, "{what} {name}: {why}");
            Ok(())
        }
        Assessment::Refused(why) if why.starts_with("can't remove member") => {
            // dockerd's words, which scripts match.
            Err(ApiError::failed_precondition(why))
        }
        Assessment::Refused(why) => Err(ApiError::failed_precondition(format!(
            "{what} node {name} refused: {why}"
        ))),
        Assessment::Risky(why) if force => {
            tracing::warn!(node = %node.meta.id, "{what} {name} although {why} (forced)");
            Ok(())
        }
        Assessment::Risky(why) => Err(ApiError::failed_precondition(format!(
            "{what} node {name} refused: {why}. To do it anyway, repeat the request with \
             force=1 (POST /nodes/{{id}}/update?version=N&force=1)"
        ))),
    }
}

fn node_name(node: &Node) -> &str {
    if node.description.hostname.is_empty() {
        &node.meta.id
    } else {
        &node.description.hostname
    }
}

/// `POST /nodes/{id}/update?version=` with the complete new `NodeSpec`.
pub async fn update(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
    DockerJson(body): DockerJson<Value>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let version = version_param(&q, "node")?;
    let spec = parse_spec(body)?;
    // Not a dockerd parameter: how a client asks for a change of managers that leaves the
    // swarm one failure from losing its quorum.
    let force = bool_value(&q, "force");
    if version > store.current_revision() {
        let _ = store
            .wait_for_revision(version, std::time::Duration::from_secs(2))
            .await;
    }
    let view = store.view();
    let node = resolve::node(&view, &key)?;
    let demoting =
        node.spec.role_or_default() == NodeRole::Manager && spec.role == Some(NodeRole::Worker);
    if demoting {
        let managers: Vec<_> = view.nodes_with_role(NodeRole::Manager).collect();
        if managers.len() == 1 && managers[0].meta.id == node.meta.id {
            return Err(ApiError::failed_precondition(
                "attempting to demote the last manager of the swarm",
            ));
        }
        let members = store.members();
        let member = members.iter().find(|m| m.is_of(&node)).ok_or_else(|| {
            ApiError::rpc(
                StatusCode::NOT_FOUND,
                "NotFound",
                "can't find manager in raft memberlist",
            )
        })?;
        if member.voter {
            check_voter_change(&store, &node, VoterChange::Remove(member.raft_id), force).await?;
        }
    }
    let promoting =
        node.spec.role_or_default() == NodeRole::Worker && spec.role == Some(NodeRole::Manager);
    if promoting {
        check_voter_change(&store, &node, VoterChange::Add, force).await?;
    }
    let mut updated = node.to_owned_value();
    updated.meta.version.index = version;
    updated.spec = spec;
    store.submit(Txn::new().update(updated)).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /nodes/{id}?force=`: refused for a manager still in the Raft group and, without
/// `force`, for a node that is not down. The node's tasks are orphaned and its id recorded as
/// removed (refused by every inter-node RPC, see `net::authz`) in the same transaction.
pub async fn remove(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let force = bool_value(&q, "force");
    let view = store.view();
    let node = resolve::node(&view, &key)?;
    let id = node.meta.id.clone();
    if node.spec.role_or_default() == NodeRole::Manager || node.role == NodeRole::Manager {
        let in_raft = store.members().iter().any(|m| m.is_of(&node));
        if in_raft {
            return Err(ApiError::failed_precondition(format!(
                "node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
            )));
        }
    }
    if !force && node.status.state == NodeState::Ready {
        return Err(ApiError::failed_precondition(format!(
            "node {id} is not down and can't be removed"
        )));
    }
    // Agents may report task status and the reaper delete old tasks meanwhile: retry on a fresh
    // view when a task moved on or vanished.
    let mut attempts = 0;
    loop {
        let view = store.view();
        let Some(node) = view.get::<Node>(&id) else {
            return Err(resolve::not_found("node", &key));
        };
        let mut txn = Txn::new();
        let now = Timestamp::now();
        for t in view.tasks_on_node(&id) {
            let mut orphan: Task = t.to_owned_value();
            orphan.status = TaskStatus::new(
                TaskState::Orphaned,
                now,
                "Task belonged to a node that has been deleted",
            );
            txn = txn.update(orphan);
        }
        txn = txn.delete(Kind::Node, id.clone(), Some(node.meta.version.index));
        // Refused by every inter-node RPC from this commit on, whatever its certificate says.
        if let Some(cluster) = view.list::<Cluster>().next() {
            let mut cluster = cluster.to_owned_value();
            cluster.record_removed_node(&id, now);
            // A root rotation no longer waits for it.
            let rest: Vec<String> = view
                .list::<Node>()
                .filter(|n| n.meta.id != id)
                .map(|n| n.meta.id.clone())
                .collect();
            crate::ca::rotation::finish_if_converged(&mut cluster, rest.iter().map(String::as_str))
                .map_err(|e| ApiError::internal(format!("finishing the root rotation: {e}")))?;
            txn = txn.update(cluster);
        }
        match store.submit(txn).await {
            Err(e) if e.is_stale_read() && attempts < 10 => attempts += 1,
            Err(e) => return Err(e.into()),
            Ok(_) => break,
        }
    }
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_specs_need_role_and_availability() {
        let e = parse_spec(json!({"Labels":{"a":"b"}})).unwrap_err();
        assert_eq!(e.message, "invalid Role: \"\"");
        let e = parse_spec(Value::Null).unwrap_err();
        assert_eq!(e.message, "invalid Role: \"\"");
        let e = parse_spec(json!({"Role":"boss","Availability":"active"})).unwrap_err();
        assert_eq!(e.message, "invalid Role: \"boss\"");
        let e = parse_spec(json!({"Role":"worker","Availability":"x"})).unwrap_err();
        assert_eq!(e.message, "invalid Availability: \"x\"");
        let s = parse_spec(json!({"Role":"MANAGER","Availability":"Drain"})).unwrap();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"Labels":{},"Role":"manager","Availability":"drain"})
        );
    }
}
