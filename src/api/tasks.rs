//! `/tasks`: list with every filter dockerd accepts (including the CLI's internal `_up-to-date`)
//! and inspect by id, full name or id prefix.

use std::collections::BTreeSet;

use axum::extract::{Query as QueryExtract, State};
use axum::{Extension, Json};
use serde_json::Value;
use shoal_controllers::orchestrator::dirty::is_task_dirty;
use shoal_store::model::{Node, Service, Task, TaskSpec, TaskState};
use shoal_store::View;

use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::Query;
use super::version::ApiVersion;
use super::{render, resolve, services};

/// `GET /tasks/{id}`.
pub async fn inspect(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let view = store.view();
    let task = resolve::task(&view, &key)?;
    Ok(Json(services::without_registry_auth(render::task(
        &task, version,
    ))))
}

/// `GET /tasks?filters=`.
pub async fn list(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let f = Filters::from_query(
        &q,
        &[
            "name",
            "id",
            "label",
            "service",
            "node",
            "desired-state",
            "_up-to-date",
            "runtime",
        ],
    )?;
    let view = store.view();
    let mut desired = Vec::new();
    for s in f.get("desired-state") {
        match s.to_ascii_lowercase().parse::<TaskState>() {
            Ok(state) => desired.push(state),
            Err(_) if s.is_empty() => {}
            Err(_) => {
                return Err(ApiError::internal(format!(
                    "Invalid desired-state filter: '{s}'"
                )))
            }
        }
    }
    // Service and node values may be names or prefixes: dockerd resolves each to one id (404
    // when one resolves to nothing) before filtering.
    let services = f
        .get("service")
        .map(|s| resolve::service(&view, s).map(|s| s.meta.id.clone()))
        .collect::<ApiResult<BTreeSet<String>>>()?;
    let nodes = f
        .get("node")
        .map(|n| resolve::node(&view, n).map(|n| n.meta.id.clone()))
        .collect::<ApiResult<BTreeSet<String>>>()?;
    let up_to_date = f.contains("_up-to-date");
    let runtimes: Vec<&str> = if f.contains("runtime") {
        f.get("runtime").collect()
    } else {
        vec!["container", ""]
    };

    // Narrow the candidates with the store's indexes when a service or node is named.
    let candidates: Vec<shoal_store::Obj<Task>> = if !services.is_empty() {
        services
            .iter()
            .flat_map(|s| view.tasks_of_service(s).collect::<Vec<_>>())
            .collect()
    } else if !nodes.is_empty() {
        nodes
            .iter()
            .flat_map(|n| view.tasks_on_node(n).collect::<Vec<_>>())
            .collect()
    } else {
        view.list::<Task>().collect()
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    for t in candidates {
        let service = view.get::<Service>(&t.service_id);
        let keep = (services.is_empty() || services.contains(&t.service_id))
            && (nodes.is_empty() || nodes.contains(&t.node_id))
            && (desired.is_empty() || desired.contains(&t.desired_state))
            && f.any("id", |v| t.meta.id.starts_with(v))
            && runtimes.contains(&runtime_of(&t.spec))
            && (!f.contains("label")
                || service
                    .as_ref()
                    .is_some_and(|s| f.labels_match("label", s.spec.labels())))
            && (!f.contains("name") || {
                let name = resolve::task_name(&view, &t);
                f.get("name").any(|p| name.starts_with(p))
            })
            && (!up_to_date
                || service
                    .as_ref()
                    .is_some_and(|s| is_up_to_date(&view, s, &t)));
        if keep {
            let shown = services::without_registry_auth(render::task(&t, version));
            out.push((t.meta.id.clone(), shown));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(Value::Array(
        out.into_iter().map(|(_, v)| v).collect(),
    )))
}

fn runtime_of(spec: &TaskSpec) -> &str {
    spec.runtime.as_ref().map_or("", |r| r.as_str())
}

/// The `_up-to-date` rule: the task is not "dirty" by the orchestrators' own judgement
/// (swarmkit's `IsTaskDirty`: made from the service's current spec version, or with an equal
/// task spec, or differing only in placement while its node still satisfies it), so the CLI's
/// progress display and the updater agree on which tasks are current.
pub fn is_up_to_date(view: &View, service: &Service, task: &Task) -> bool {
    let node = view.get::<Node>(&task.node_id);
    !is_task_dirty(service, task, node.as_deref())
}
