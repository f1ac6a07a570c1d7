//! `/secrets`: create, inspect, list, update (labels only), remove. A secret's `Data` is never
//! returned.

use axum::extract::{Query as QueryExtract, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shoal_store::model::{new_id, Driver, Kind, Meta, Secret, SecretSpec, Service};
use shoal_store::{StoreError, Txn, TxnError};

use super::body::DockerJson;
use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::Query;
use super::resolve;

/// Largest secret (swarmkit's `MaxSecretSize`, 500 KiB; the data must be smaller).
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

/// swarmkit's rule for secret and config names.
pub fn validate_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::invalid_argument("name must be provided"));
    }
    let b = name.as_bytes();
    let ok = name.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !ok {
        return Err(ApiError::invalid_argument(
            "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]",
        ));
    }
    Ok(())
}

/// The `version` parameter of secret and config updates (dockerd's terse text).
pub fn version_of(q: &Query, what: &str) -> ApiResult<u64> {
    q.get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid {what} version")))
}

/// Names of the services that use a secret or config (`uses`), for the in-use refusal.
pub fn users(
    services: impl Iterator<Item = shoal_store::Obj<Service>>,
    uses: impl Fn(&Service) -> bool,
) -> Vec<String> {
    services
        .filter(|s| uses(s))
        .map(|s| s.spec.name().to_string())
        .collect()
}

/// swarmkit's refusal to remove something services still reference.
pub fn in_use_error(what: &str, name: &str, users: &[String]) -> ApiError {
    let noun = if users.len() == 1 {
        "service"
    } else {
        "services"
    };
    ApiError::invalid_argument(format!(
        "{what} '{name}' is in use by the following {noun}: {}",
        users.join(", ")
    ))
}

/// A secret as `GET /secrets/{id}` shows it: without its data.
pub fn render(s: &Secret) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(spec) = v.get_mut("Spec").and_then(Value::as_object_mut) {
        spec.remove("Data");
    }
    v
}

/// Refuses a templating driver: shoal does not expand templates in secrets and configs, and a
/// container must never get the raw template where it expects the expanded text.
pub fn refuse_templating(kind: &str, name: &str, templating: Option<&Driver>) -> ApiResult<()> {
    match templating {
        Some(t) if !t.name.is_empty() => Err(ApiError::unimplemented(format!(
            "{kind} {name}: templating ({:?}) is not supported by shoal; create the {kind} without a template driver",
            t.name
        ))),
        _ => Ok(()),
    }
}

/// `POST /secrets/create` → 201 `{"ID":"…"}`.
pub async fn create(
    State(state): State<ApiState>,
    DockerJson(spec): DockerJson<SecretSpec>,
) -> ApiResult<Response> {
    let store = state.manager_store().await?;
    validate_name(spec.name())?;
    refuse_templating("secret", spec.name(), spec.templating.as_ref())?;
    match &spec.driver {
        Some(d) if d.name.is_empty() => {
            return Err(ApiError::invalid_argument("secret driver must have a name"))
        }
        Some(d) => {
            return Err(ApiError::unimplemented(format!(
                "secret {}: secret drivers (here {:?}) are not supported by shoal; create the secret with its data instead",
                spec.name(),
                d.name
            )))
        }
        None if spec.data.is_empty() || spec.data.len() >= MAX_SECRET_SIZE => {
            return Err(ApiError::invalid_argument(format!(
                "secret data must be larger than 0 and less than {MAX_SECRET_SIZE} bytes"
            )))
        }
        None => {}
    }
    let id = new_id();
    let name = spec.name().to_string();
    let secret = Secret {
        meta: Meta::with_id(id.clone()),
        spec,
    };
    match store.submit(Txn::new().create(secret)).await {
        Ok(_) => Ok((StatusCode::CREATED, Json(json!({"ID": id}))).into_response()),
        Err(StoreError::Rejected(TxnError::NameConflict { .. })) => Err(ApiError::rpc(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("secret {name} already exists"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /secrets/{id}`.
pub async fn inspect(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let view = store.view();
    let secret = resolve::secret(&view, &key)?;
    Ok(Json(render(&secret)))
}

/// `GET /secrets?filters=` (`names` exact, `name` prefix, `id` prefix, `label`).
pub async fn list(
    State(state): State<ApiState>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let f = Filters::from_query(&q, &["names", "name", "id", "label"])?;
    let view = store.view();
    let out: Vec<Value> = view
        .list::<Secret>()
        .filter(|s| {
            f.any("names", |v| s.spec.name() == v)
                && f.any("name", |v| s.spec.name().starts_with(v))
                && f.any("id", |v| s.meta.id.starts_with(v))
                && f.labels_match("label", &s.spec.labels)
        })
        .map(|s| render(&s))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `POST /secrets/{id}/update?version=`: only the labels may change.
pub async fn update(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
    DockerJson(spec): DockerJson<SecretSpec>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let version = version_of(&q, "secret")?;
    let view = store.view();
    let current = resolve::secret(&view, &key)?;
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
    if shoal_store::mutation::active("ack-without-commit") {
        // Broken on purpose (debug builds only; see `shoal_store::mutation`): every tenth
        // update is acknowledged and dropped, which the chaos suite's oracles must catch.
        static UPDATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if UPDATES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10 == 9 {
            return Ok(StatusCode::OK);
        }
    }
    store.submit(Txn::new().update(updated)).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /secrets/{id}` → 204; refused while a service uses the secret.
pub async fn remove(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let view = store.view();
    let secret = resolve::secret(&view, &key)?;
    let id = secret.meta.id.clone();
    let users = users(view.list::<Service>(), |s| {
        s.spec
            .container()
            .is_some_and(|c| c.secrets.iter().any(|r| r.secret_id == id))
    });
    if !users.is_empty() {
        return Err(in_use_error("secret", secret.spec.name(), &users));
    }
    store
        .submit(Txn::new().delete(Kind::Secret, id, None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
