//! `/shoal/v1/stacks`: plan, apply, rollback, history and status of stacks (see
//! [`crate::stack`]). Bodies and answers are JSON with snake_case fields; errors are the native
//! API's `{"code", "message"}` with 400 `invalid_argument` (nothing written), 404 `not_found`,
//! 409 `conflict` (another owner, a concurrent change, a stale plan token) or 503 (not a
//! manager, no quorum).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shoal_store::model::{Stack, StackRevision};

use super::extract::{JsonBody, PathParams, QueryParams};
use super::wire::code;
use super::{NativeError, NativeState};
use crate::stack::apply::{self, Applied, ApplyOptions};
use crate::stack::plan::Plan;
use crate::stack::source::{self, ApplyBody};
use crate::stack::StackError;

impl From<StackError> for NativeError {
    fn from(e: StackError) -> Self {
        match e {
            StackError::Invalid(m) => NativeError::invalid(m),
            StackError::Conflict(m) => NativeError::new(StatusCode::CONFLICT, code::CONFLICT, m),
            StackError::NotFound(m) => NativeError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, m),
            StackError::Store(e) => NativeError::from_store(&e),
        }
    }
}

type Answer<T> = Result<Json<T>, NativeError>;

/// `POST /shoal/v1/stacks/{name}/plan`: what an apply of the body would do; writes nothing.
pub async fn plan<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ApplyBody>,
) -> Answer<Plan> {
    let store = state.store().await?;
    let desired = source::desired(&name, &body)?;
    Ok(Json(apply::plan(&store, &desired).await?))
}

/// `POST /shoal/v1/stacks/{name}/apply`: the whole stack in one transaction (or a dry run).
pub async fn apply<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ApplyBody>,
) -> Answer<Applied> {
    let store = state.store().await?;
    let desired = source::desired(&name, &body)?;
    let opts = ApplyOptions {
        dry_run: body.dry_run,
        plan_token: body.plan_token.clone(),
    };
    Ok(Json(apply::apply(&store, &desired, &opts).await?))
}

/// The body of a rollback.
#[derive(Debug, Default, Deserialize)]
pub struct RollbackBody {
    /// The revision to go back to (default: the one before the current).
    #[serde(default)]
    pub to: Option<u64>,
    /// Only plan.
    #[serde(default)]
    pub dry_run: bool,
    /// Who rolls back.
    #[serde(default)]
    pub applied_by: String,
}

/// `POST /shoal/v1/stacks/{name}/rollback`: applies an earlier revision's objects (pruning
/// what it did not have), recorded as a new revision.
pub async fn rollback<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<RollbackBody>,
) -> Answer<Applied> {
    let store = state.store().await?;
    let view = store.linearizable_view().await.map_err(StackError::from)?;
    let desired = apply::rollback_desired(&view, &name, body.to, &body.applied_by)?;
    let opts = ApplyOptions {
        dry_run: body.dry_run,
        plan_token: None,
    };
    Ok(Json(apply::apply(&store, &desired, &opts).await?))
}

/// A stack as listed.
#[derive(Serialize)]
struct Summary {
    name: String,
    revision: u64,
    services: usize,
    networks: usize,
    secrets: usize,
    configs: usize,
    conditions: Value,
}

fn summary(s: &Stack) -> Summary {
    let count = |k| s.inventory.iter().filter(|i| i.kind == k).count();
    use shoal_store::model::Kind;
    Summary {
        name: s.spec.name.clone(),
        revision: s.revision,
        services: count(Kind::Service),
        networks: count(Kind::Network),
        secrets: count(Kind::Secret),
        configs: count(Kind::Config),
        conditions: serde_json::to_value(&s.status.conditions).unwrap_or(Value::Null),
    }
}

/// `GET /shoal/v1/stacks`.
pub async fn list<S: NativeState>(State(state): State<S>) -> Answer<Value> {
    let store = state.store().await?;
    let view = store.view();
    let mut stacks: Vec<Summary> = view.list::<Stack>().map(|s| summary(&s)).collect();
    stacks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(json!(stacks)))
}

/// `GET /shoal/v1/stacks/{name}`: the stack object (inventory, revision, status).
pub async fn inspect<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
) -> Answer<Stack> {
    let store = state.store().await?;
    Ok(Json(apply::stack(&store.view(), &name)?))
}

/// Query of `history`: `diff=A,B` for the field differences between two revisions.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// `A,B`.
    #[serde(default)]
    pub diff: Option<String>,
}

/// A revision as the history lists it (without its objects).
fn revision_summary(r: &StackRevision) -> Value {
    json!({
        "number": r.number,
        "applied_at": r.applied_at,
        "applied_by": r.applied_by,
        "cause": r.cause,
        "source_digest": r.source_digest,
        "git_source": r.git_source,
        "git_commit": r.git_commit,
        "services": r.objects.services.len(),
        "result": r.result,
        "store_revision": r.meta.version.index,
    })
}

/// `GET /shoal/v1/stacks/{name}/history[?diff=A,B]`.
pub async fn history<S: NativeState>(
    State(state): State<S>,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> Answer<Value> {
    let store = state.store().await?;
    let view = store.view();
    if let Some(pair) = q.diff {
        let parse = |s: &str| s.trim().parse::<u64>().ok();
        let Some((a, b)) = pair
            .split_once(',')
            .and_then(|(a, b)| Some((parse(a)?, parse(b)?)))
        else {
            return Err(NativeError::invalid(format!(
                "diff={pair:?}: give two revision numbers, e.g. diff=1,2"
            )));
        };
        let (ra, rb) = (
            apply::revision(&view, &name, a)?,
            apply::revision(&view, &name, b)?,
        );
        let objects: Vec<Value> = apply::revision_diff(&ra, &rb)
            .into_iter()
            .map(|(object, fields)| json!({"object": object, "fields": fields}))
            .collect();
        return Ok(Json(json!({"from": a, "to": b, "objects": objects})));
    }
    let revisions: Vec<Value> = apply::history(&view, &name)?
        .iter()
        .map(revision_summary)
        .collect();
    Ok(Json(json!(revisions)))
}

/// `GET /shoal/v1/stacks/{name}/revisions/{number}`: one revision with its objects (secret
/// data left out).
pub async fn revision<S: NativeState>(
    State(state): State<S>,
    PathParams((name, number)): PathParams<(String, u64)>,
) -> Answer<StackRevision> {
    let store = state.store().await?;
    let r = apply::revision(&store.view(), &name, number)?;
    Ok(Json(r.without_secret_data()))
}
