//! `/configs`: create, inspect, list, update (labels only), remove. Unlike a secret's, a
//! config's `Data` is returned (as dockerd does).

use axum::extract::{Query as QueryExtract, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shoal_store::model::{new_id, Config, ConfigSpec, Kind, Meta, Service};
use shoal_store::{StoreError, Txn, TxnError};

use super::body::DockerJson;
use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::Query;
use super::resolve;
use super::secrets::{in_use_error, users, validate_name, version_of};

/// Largest config (swarmkit's `MaxConfigSize`, 1000 KiB; the data must be smaller).
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

/// `POST /configs/create` → 201 `{"ID":"…"}`.
pub async fn create(
    State(state): State<ApiState>,
    DockerJson(spec): DockerJson<ConfigSpec>,
) -> ApiResult<Response> {
    let store = state.manager_store().await?;
    validate_name(spec.name())?;
    super::secrets::refuse_templating("config", spec.name(), spec.templating.as_ref())?;
    if spec.data.is_empty() || spec.data.len() >= MAX_CONFIG_SIZE {
        return Err(ApiError::invalid_argument(format!(
            "config data must be larger than 0 and less than {MAX_CONFIG_SIZE} bytes"
        )));
    }
    let id = new_id();
    let name = spec.name().to_string();
    let config = Config {
        meta: Meta::with_id(id.clone()),
        spec,
    };
    match store.submit(Txn::new().create(config)).await {
        Ok(_) => Ok((StatusCode::CREATED, Json(json!({"ID": id}))).into_response()),
        Err(StoreError::Rejected(TxnError::NameConflict { .. })) => Err(ApiError::rpc(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("config {name} already exists"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /configs/{id}`.
pub async fn inspect(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let view = store.view();
    let config = resolve::config(&view, &key)?;
    Ok(Json(serde_json::to_value(&*config).unwrap_or(Value::Null)))
}

/// `GET /configs?filters=` (`name` prefix, `id` prefix, `label`).
pub async fn list(
    State(state): State<ApiState>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let f = Filters::from_query(&q, &["name", "id", "label"])?;
    let view = store.view();
    let out: Vec<Value> = view
        .list::<Config>()
        .filter(|c| {
            f.any("name", |v| c.spec.name().starts_with(v))
                && f.any("id", |v| c.meta.id.starts_with(v))
                && f.labels_match("label", &c.spec.labels)
        })
        .map(|c| serde_json::to_value(&*c).unwrap_or(Value::Null))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `POST /configs/{id}/update?version=`: only the labels may change.
pub async fn update(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
    DockerJson(spec): DockerJson<ConfigSpec>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let version = version_of(&q, "config")?;
    let view = store.view();
    let current = resolve::config(&view, &key)?;
    if spec.name() != current.spec.name()
        || (!spec.data.is_empty() && spec.data != current.spec.data)
    {
        return Err(ApiError::invalid_argument(
            "only updates to Labels are allowed",
        ));
    }
    let mut updated = current.to_owned_value();
    updated.meta.version.index = version;
    updated.spec.labels = spec.labels;
    store.submit(Txn::new().update(updated)).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /configs/{id}` → 204; refused while a service uses the config.
pub async fn remove(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let view = store.view();
    let config = resolve::config(&view, &key)?;
    let id = config.meta.id.clone();
    let users = users(view.list::<Service>(), |s| {
        s.spec
            .container()
            .is_some_and(|c| c.configs.iter().any(|r| r.config_id == id))
    });
    if !users.is_empty() {
        return Err(in_use_error("config", config.spec.name(), &users));
    }
    store
        .submit(Txn::new().delete(Kind::Config, id, None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
