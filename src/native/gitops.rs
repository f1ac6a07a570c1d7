//! `/shoal/v1/gitops`: GitOps sources (add, list, inspect, remove, sync, suspend, resume) and
//! their webhook. The GitOps controller on the leader does the syncing ([`crate::gitops`]);
//! these routes only write a source's spec. Errors: 400 `invalid_argument` (nothing written),
//! 404 `not_found`, 409 `conflict` (the name is taken), 401 for a webhook that is not signed
//! with the source's secret (nothing triggered).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use shoal_store::model::{new_id, GitSource, Meta, Object, Secret};
use shoal_store::{Op, Store, StoreError, Txn, TxnError, View};

use super::extract::{JsonBody, PathParams};
use super::wire::code;
use super::{NativeError, NativeState};
use crate::gitops::spec::{spec_of, AddBody};
use crate::gitops::webhook;

type Answer<T> = Result<Json<T>, NativeError>;

fn not_found(name: &str) -> NativeError {
    NativeError::new(
        StatusCode::NOT_FOUND,
        code::NOT_FOUND,
        format!("gitops source {name} not found; `shoal gitops ls` lists them"),
    )
}

fn source(view: &View, name: &str) -> Result<GitSource, NativeError> {
    view.get_by_name::<GitSource>(name)
        .filter(|s| s.spec.name == name)
        .map(|s| s.to_owned_value())
        .ok_or_else(|| not_found(name))
}

fn store_error(e: StoreError) -> NativeError {
    match &e {
        StoreError::Rejected(TxnError::NameConflict { name, .. }) => NativeError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!("gitops source {name} already exists; `shoal gitops rm {name}` first, or pick another name"),
        ),
        StoreError::Rejected(_) => NativeError::new(StatusCode::CONFLICT, code::CONFLICT, e.to_string()),
        _ => NativeError::from_store(&e),
    }
}

/// `POST /shoal/v1/gitops`: adds a source (answers the source as stored).
pub async fn add<S: NativeState>(
    State(state): State<S>,
    JsonBody(body): JsonBody<AddBody>,
) -> Answer<GitSource> {
    let store = state.store().await?;
    let spec = spec_of(&body).map_err(NativeError::invalid)?;
    let view = store
        .linearizable_view()
        .await
        .map_err(|e| NativeError::from_store(&e))?;
    if !spec.webhook_secret.is_empty() && secret(&view, &spec.webhook_secret).is_none() {
        return Err(NativeError::invalid(format!(
            "gitops source {}: --webhook-secret {}: no such swarm secret; create it first (`printf %s VALUE | docker secret create {} -`)",
            spec.name, spec.webhook_secret, spec.webhook_secret
        )));
    }
    if !spec.token_secret.is_empty() && secret(&view, &spec.token_secret).is_none() {
        return Err(NativeError::invalid(format!(
            "gitops source {}: --token-secret {}: no such swarm secret; create it first (`printf %s TOKEN | docker secret create {} -`)",
            spec.name, spec.token_secret, spec.token_secret
        )));
    }
    if !spec.deploy_key_secret.is_empty() && secret(&view, &spec.deploy_key_secret).is_none() {
        return Err(NativeError::invalid(format!(
            "gitops source {}: --deploy-key-secret {}: no such swarm secret; create it from the private key first (`docker secret create {} deploy_key`)",
            spec.name, spec.deploy_key_secret, spec.deploy_key_secret
        )));
    }
    if !spec.age_identity_secret.is_empty() {
        let Some(data) = secret(&view, &spec.age_identity_secret) else {
            return Err(NativeError::invalid(format!(
                "gitops source {}: --age-identity-secret {}: no such swarm secret; create it from the identity file first (`docker secret create {} key.txt`)",
                spec.name, spec.age_identity_secret, spec.age_identity_secret
            )));
        };
        crate::gitops::age::parse_identities(&spec.age_identity_secret, &data).map_err(|e| {
            NativeError::invalid(format!(
                "gitops source {}: --age-identity-secret: {e}",
                spec.name
            ))
        })?;
    }
    let created = GitSource {
        meta: Meta::with_id(new_id()),
        spec,
        status: Default::default(),
    };
    let committed = store
        .submit(Txn::new().create(created))
        .await
        .map_err(store_error)?;
    let stored = committed
        .objects
        .into_iter()
        .find_map(|o| match o.as_ref() {
            Object::GitSource(s) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| NativeError::invalid("the store did not return the new source"))?;
    Ok(Json(stored))
}

/// `GET /shoal/v1/gitops`: every source, by name.
pub async fn list<S: NativeState>(State(state): State<S>) -> Answer<Vec<GitSource>> {
    let store = state.store().await?;
    let mut all: Vec<GitSource> = store
        .view()
        .list::<GitSource>()
        .map(|s| s.to_owned_value())
        .collect();
    all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(Json(all))
}

/// `GET /shoal/v1/gitops/{name}`.
pub async fn inspect<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
) -> Answer<GitSource> {
    let store = state.store().await?;
    Ok(Json(source(&store.view(), &name)?))
}

/// `DELETE /shoal/v1/gitops/{name}`: removes the source; its stacks stay as they are.
pub async fn remove<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
) -> Answer<Value> {
    let store = state.store().await?;
    let view = store
        .linearizable_view()
        .await
        .map_err(|e| NativeError::from_store(&e))?;
    let s = source(&view, &name)?;
    store
        .submit(Txn::new().delete(shoal_store::model::Kind::GitSource, s.meta.id.clone(), None))
        .await
        .map_err(store_error)?;
    let stacks: Vec<&String> = s.status.stacks.keys().collect();
    Ok(Json(
        json!({"removed": name, "stacks_left_running": stacks}),
    ))
}

/// Changes a source's spec with `change`, again on a concurrent write (the controller writes
/// the status while it syncs).
async fn edit(
    store: &Store,
    name: &str,
    change: impl Fn(&mut GitSource),
) -> Result<GitSource, NativeError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let view = store
            .linearizable_view()
            .await
            .map_err(|e| NativeError::from_store(&e))?;
        let mut s = source(&view, name)?;
        let version = s.meta.version.index;
        change(&mut s);
        let op = Op::Update {
            object: Object::GitSource(s.clone()),
            expected_version: version,
        };
        match store
            .submit(Txn {
                ops: vec![op],
                fence_term: None,
            })
            .await
        {
            Ok(_) => return Ok(s),
            Err(e) if e.is_out_of_sequence() && attempt < 10 => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
}

/// `POST /shoal/v1/gitops/{name}/sync`: asks for a sync now; answers the request number
/// (the status's `ObservedSyncRequest` reaches it when the sync is done).
pub async fn sync<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
) -> Answer<Value> {
    let store = state.store().await?;
    if source(&store.view(), &name)?.spec.suspended {
        return Err(NativeError::invalid(format!(
            "gitops source {name} is suspended: `shoal gitops resume {name}` syncs it"
        )));
    }
    let s = edit(&store, &name, |s| s.spec.sync_request += 1).await?;
    Ok(Json(json!({"sync_request": s.spec.sync_request})))
}

/// `POST /shoal/v1/gitops/{name}/suspend`.
pub async fn suspend<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
) -> Answer<GitSource> {
    let store = state.store().await?;
    Ok(Json(
        edit(&store, &name, |s| s.spec.suspended = true).await?,
    ))
}

/// `POST /shoal/v1/gitops/{name}/resume`: resumes and syncs at once.
pub async fn resume<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
) -> Answer<GitSource> {
    let store = state.store().await?;
    Ok(Json(
        edit(&store, &name, |s| {
            s.spec.suspended = false;
            s.spec.sync_request += 1;
        })
        .await?,
    ))
}

fn secret(view: &View, name: &str) -> Option<Vec<u8>> {
    view.get_by_name::<Secret>(name)
        .filter(|s| s.spec.name == name)
        .map(|s| s.spec.data.clone())
}

/// `POST /shoal/v1/gitops/{name}/webhook`: a push notification, verified against the
/// source's webhook secret, then a sync at once (`triggered`), unless the push is about
/// another ref or the source is suspended.
pub async fn hook<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Value> {
    let store = state.store().await?;
    let view = store.view();
    let s = source(&view, &name)?;
    let unauthorized =
        |m: String| NativeError::new(StatusCode::UNAUTHORIZED, code::UNAUTHENTICATED, m);
    if s.spec.webhook_secret.is_empty() {
        return Err(unauthorized(format!(
            "gitops source {name} takes no webhooks: add it with --webhook-secret SECRET"
        )));
    }
    let Some(key) = secret(&view, &s.spec.webhook_secret) else {
        return Err(unauthorized(format!(
            "gitops source {name}: its webhook secret {} is not in the swarm; create it again",
            s.spec.webhook_secret
        )));
    };
    webhook::verify(&headers, &body, &key)
        .map_err(|e| unauthorized(format!("gitops source {name}: {e}")))?;
    if s.spec.suspended {
        return Ok(Json(
            json!({"triggered": false, "reason": "the source is suspended"}),
        ));
    }
    if !webhook::concerns(&body, &s.spec.git_ref) {
        return Ok(Json(
            json!({"triggered": false, "reason": format!("the push is not about {}", s.spec.git_ref)}),
        ));
    }
    let s = edit(&store, &name, |s| s.spec.sync_request += 1).await?;
    Ok(Json(
        json!({"triggered": true, "sync_request": s.spec.sync_request}),
    ))
}
