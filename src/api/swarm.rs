//! `/swarm/*`: init, join, leave, inspect, update (with token rotation), unlock key.

use axum::extract::{Query as QueryExtract, State};
use axum::http::StatusCode;

use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use shoal_store::model::{Cluster, SwarmSpec};
use shoal_store::Txn;

use super::body::DockerJson;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::query::{parse_bool, version_param, Query};
use crate::ca::{JoinToken, RootCa, UnlockKey};
use crate::node::{InitRequest, JoinSwarmRequest};

/// Renders the cluster object as Docker's `Swarm` (with `JoinTokens`, without internal fields).
pub fn render_cluster(c: &Cluster) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("RootCA");
        o.remove("UnlockKey");
        o.remove("RemovedNodes");
        // The root as it is: its certificate, subject and key (dockerd's values).
        let info = crate::ca::tls_info(&c.root_ca.cert_pem).unwrap_or_else(|_| {
            shoal_store::model::TLSInfo {
                trust_root: c.root_ca.cert_pem.clone(),
                ..Default::default()
            }
        });
        o.insert(
            "TLSInfo".into(),
            serde_json::to_value(info).unwrap_or(Value::Null),
        );
        o.entry("RootRotationInProgress")
            .or_insert(Value::Bool(false));
    }
    v
}

/// `POST /swarm/init` → the new node id as a JSON string.
pub async fn init(
    State(state): State<ApiState>,
    DockerJson(req): DockerJson<InitRequest>,
) -> ApiResult<Json<String>> {
    Ok(Json(state.node.init(req).await?))
}

/// `POST /swarm/join`.
pub async fn join(
    State(state): State<ApiState>,
    DockerJson(req): DockerJson<JoinSwarmRequest>,
) -> ApiResult<StatusCode> {
    state.node.join(req).await?;
    Ok(StatusCode::OK)
}

/// `POST /swarm/leave?force=`.
pub async fn leave(
    State(state): State<ApiState>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<StatusCode> {
    state
        .node
        .leave(super::query::bool_value(&q, "force"))
        .await?;
    Ok(StatusCode::OK)
}

/// `GET /swarm`.
pub async fn inspect(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let view = store.view();
    let cluster = view
        .list::<Cluster>()
        .next()
        .ok_or_else(|| ApiError::unavailable(crate::node::texts::MANAGER_STARTING))?;
    Ok(Json(render_cluster(&cluster)))
}

/// `POST /swarm/update?version=&rotateWorkerToken=&rotateManagerToken=&rotateManagerUnlockKey=`.
pub async fn update(
    State(state): State<ApiState>,
    QueryExtract(q): QueryExtract<Query>,
    DockerJson(spec): DockerJson<SwarmSpec>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let version = version_param(&q, "swarm")?;
    let rotate_worker = parse_bool(&q, "rotateWorkerToken")?;
    let rotate_manager = parse_bool(&q, "rotateManagerToken")?;
    let rotate_unlock = parse_bool(&q, "rotateManagerUnlockKey")?;
    let mut spec = spec;
    if spec.name.is_empty() {
        spec.name = "default".into();
    }
    if spec.name != "default" {
        return Err(ApiError::bad_request(
            "swarm spec must be named \"default\"",
        ));
    }
    let view = store.view();
    let current = view
        .list::<Cluster>()
        .next()
        .ok_or_else(|| ApiError::unavailable(crate::node::texts::MANAGER_STARTING))?;
    let mut cluster = current.to_owned_value();
    // The caller's version guards the update: a stale one is "update out of sequence".
    cluster.meta.version.index = version;
    cluster.spec = spec.merged_onto(&SwarmSpec::swarm_default());
    crate::ca::check_ca_config(&cluster.spec.ca_config, Some(&current.spec.ca_config))
        .map_err(ApiError::bad_request)?;
    if crate::ca::rotation_requested(&cluster.spec.ca_config, &current.spec.ca_config) {
        let ca_config = &mut cluster.spec.ca_config;
        let given = (!ca_config.signing_ca_cert.is_empty())
            .then(|| RootCa::from_pem(&ca_config.signing_ca_cert, &ca_config.signing_ca_key))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("the new root CA: {e}")))?;
        // The key never stays in the spec (which the API shows); the root keeps it.
        ca_config.signing_ca_key.clear();
        ca_config.signing_ca_cert.clear();
        crate::ca::rotation::start(&mut cluster, given)
            .map_err(|e| ApiError::internal(format!("starting the root rotation: {e}")))?;
    }
    if rotate_worker || rotate_manager {
        let ca = RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)
            .map_err(|e| ApiError::internal(format!("swarm CA unusable: {e}")))?;
        if rotate_worker {
            cluster.join_tokens.worker = JoinToken::for_ca(&ca)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .to_string();
        }
        if rotate_manager {
            cluster.join_tokens.manager = JoinToken::for_ca(&ca)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .to_string();
        }
    }
    let autolock = cluster.spec.encryption_config.auto_lock_managers;
    if !autolock {
        cluster.unlock_key.clear();
    } else if cluster.unlock_key.is_empty() || rotate_unlock {
        cluster.unlock_key = UnlockKey::generate()
            .map_err(|e| ApiError::internal(e.to_string()))?
            .to_string();
    }
    store.submit(Txn::new().update(cluster)).await?;
    Ok(StatusCode::OK)
}

/// `GET /swarm/unlockkey`.
pub async fn unlock_key(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let key = store
        .view()
        .list::<Cluster>()
        .next()
        .map(|c| c.unlock_key.clone())
        .unwrap_or_default();
    Ok(Json(json!({ "UnlockKey": key })))
}

/// The body of `POST /swarm/unlock`.
#[derive(Default, Deserialize)]
pub struct UnlockRequest {
    /// `SWMKEY-1-...`.
    #[serde(rename = "UnlockKey", default)]
    pub unlock_key: String,
}

/// `POST /swarm/unlock`: opens a restarted manager of an autolocked swarm and starts it
/// (400 `invalid key string`, 401 wrong key, 409 `swarm is not locked`).
pub async fn unlock(
    State(state): State<ApiState>,
    DockerJson(req): DockerJson<UnlockRequest>,
) -> ApiResult<StatusCode> {
    state.node.unlock(&req.unlock_key).await?;
    Ok(StatusCode::OK)
}
