//! `/services`: create, inspect, list, update (with `rollback=previous`), remove.
//!
//! Specs are stored as the client sent them, after dockerd's defaulting (name, mode) and the
//! normalisation swarmkit's protobufs imply (see [`service_spec`]). Tasks are never made here:
//! the orchestrators in the controllers crate react to the service's create/update; removal
//! marks the service's tasks for removal in the same transaction (see [`remove`]).
//!
//! Registry credentials (`--with-registry-auth`: the `X-Registry-Auth` header) are kept in the
//! spec's container as dockerd keeps them (swarmkit's `PullOptions`) so nodes can pull the image,
//! and stripped from everything the API shows ([`without_registry_auth`]).
//!
//! `SpecVersion` follows swarmkit: `0` on create (tasks are then judged by comparing specs) and,
//! on every update, the service's version before the update. So it differs for every spec the
//! service ever had, `PreviousSpecVersion` travels with `PreviousSpec`, and rollbacks swap both.

use axum::extract::{Query as QueryExtract, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use shoal_store::model::{
    new_id, ContainerSpec, JobStatus, Kind, Meta, RegistryAuth, Service, ServiceModeKind,
    ServiceSpec, Task, TaskState, Timestamp, UpdateState, UpdateStatus, Version,
};
use shoal_store::{Store, StoreError, Txn, TxnError, View};

use super::body::DockerJson;
use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::{parse_bool, version_param, Query};
use super::version::ApiVersion;
use super::{names, render, resolve, service_refs, service_spec};

/// How long an update waits for this manager to catch up with the version the client read.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// The checks and rewrites shared by create and update, in dockerd's order: version stripping,
/// network names to ids, conversion checks and mode defaulting, swarmkit's validation.
fn prepare(view: &View, spec: &mut ServiceSpec, version: ApiVersion) -> ApiResult<()> {
    service_spec::adjust_for_api_version(spec, version);
    service_refs::resolve_networks(view, spec)?;
    service_spec::convert(spec)?;
    service_refs::resolve_secrets_and_configs(view, spec)?;
    service_spec::validate(spec)?;
    Ok(())
}

fn check_size(spec: &ServiceSpec) -> ApiResult<()> {
    let size = serde_json::to_vec(spec).map(|v| v.len()).unwrap_or(0);
    if size > service_spec::MAX_SPEC_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "service spec is {size} bytes, larger than the {} byte limit",
            service_spec::MAX_SPEC_BYTES
        )));
    }
    Ok(())
}

/// The header the CLI sends registry credentials in (base64url JSON).
const REGISTRY_AUTH_HEADER: &str = "X-Registry-Auth";

/// The credentials of the request's `X-Registry-Auth` header, verbatim (none when absent).
fn registry_auth_header(headers: &HeaderMap) -> RegistryAuth {
    let value = headers
        .get(REGISTRY_AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    RegistryAuth(value.trim().to_owned())
}

/// The credentials kept in a spec's container (none for other runtimes).
fn registry_auth_of(spec: &ServiceSpec) -> RegistryAuth {
    spec.task_template
        .container_spec
        .as_ref()
        .map(|c| c.registry_auth.clone())
        .unwrap_or_default()
}

/// Keeps `auth` in the spec's container, replacing whatever the body carried there: only the
/// header sets credentials.
fn set_registry_auth(spec: &mut ServiceSpec, auth: RegistryAuth) {
    if let Some(c) = spec.task_template.container_spec.as_mut() {
        c.registry_auth = auth;
    }
}

/// A rendered service or task without the registry credentials of its specs (dockerd never
/// shows them).
pub(super) fn without_registry_auth(mut rendered: Value) -> Value {
    let containers = [
        "/Spec/TaskTemplate/ContainerSpec",
        "/PreviousSpec/TaskTemplate/ContainerSpec",
        "/Spec/ContainerSpec",
    ];
    for path in containers {
        if let Some(c) = rendered.pointer_mut(path).and_then(Value::as_object_mut) {
            c.remove(ContainerSpec::REGISTRY_AUTH_FIELD);
        }
    }
    rendered
}

/// `POST /services/create` → 201 `{"ID":"…","Warnings":null}`; the `X-Registry-Auth` header's
/// credentials are kept for the nodes' pulls.
pub async fn create(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    DockerJson(mut spec): DockerJson<ServiceSpec>,
) -> ApiResult<Response> {
    let store = state.manager_store().await?;
    let view = store.view();
    if spec.name.is_empty() {
        spec.name = names::random_name();
    }
    prepare(&view, &mut spec, version)?;
    service_refs::check_port_conflicts(&view, &spec, None)?;
    service_spec::normalize(&mut spec);
    set_registry_auth(&mut spec, registry_auth_header(&headers));
    check_size(&spec)?;
    let id = new_id();
    let endpoint = service_refs::allocate_endpoint(&view, &spec, &id, None);
    let job_status = spec.is_job().then(|| JobStatus {
        job_iteration: Version::at(0),
        last_execution: Timestamp::now(),
    });
    let service = Service {
        meta: Meta::with_id(id.clone()),
        spec,
        endpoint,
        job_status,
        spec_version: Version::at(0),
        ..Default::default()
    };
    store.submit(Txn::new().create(service)).await?;
    let body = json!({"ID": id, "Warnings": null});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /services/{id}?insertDefaults=`.
pub async fn inspect(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let insert_defaults = parse_bool(&q, "insertDefaults")?;
    let view = store.view();
    let service = resolve::service(&view, &id)?;
    if !insert_defaults {
        return Ok(Json(without_registry_auth(render::service(&service))));
    }
    // Like swarmkit, only the current spec gets the defaults, not `PreviousSpec`.
    let mut s = service.to_owned_value();
    render::insert_defaults(&mut s.spec);
    Ok(Json(without_registry_auth(render::service(&s))))
}

/// `GET /services?filters=&status=`.
pub async fn list(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let filters = Filters::from_query(&q, &["id", "label", "mode", "name", "runtime"])?;
    // `status` is only honoured from API 1.41 on; older clients count tasks themselves.
    let status = parse_bool(&q, "status")? && version.at_least(1, 41);
    let view = store.view();
    let out: Vec<Value> = view
        .list::<Service>()
        .filter(|s| service_matches(s, &filters))
        .map(|s| {
            without_registry_auth(if status {
                render::service_with_status(&s, render::service_status(&view, &s))
            } else {
                render::service(&s)
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

fn service_matches(s: &Service, f: &Filters) -> bool {
    let runtime = s
        .spec
        .task_template
        .runtime_or_default()
        .as_str()
        .to_string();
    f.any("id", |v| s.meta.id.starts_with(v))
        && f.any("name", |v| s.spec.name().starts_with(v))
        && f.labels_match("label", s.spec.labels())
        && f.any("mode", |v| v == s.spec.mode_kind().as_str())
        && f.any("runtime", |v| v == runtime)
}

/// The current version of a service, waiting briefly for this manager's replica to reach the
/// version the client read (it may have read it from another manager).
async fn current_service(
    store: &Store,
    key: &str,
    version: u64,
) -> ApiResult<(View, shoal_store::Obj<Service>)> {
    if version > store.current_revision() {
        let _ = store.wait_for_revision(version, CATCH_UP).await;
    }
    let view = store.view();
    let service = resolve::service(&view, key)?;
    Ok((view, service))
}

fn out_of_sequence(id: &str, expected: u64, actual: u64) -> ApiError {
    StoreError::Rejected(TxnError::OutOfSequence {
        kind: Kind::Service,
        id: id.to_string(),
        expected,
        actual,
    })
    .into()
}

/// How many times an update is tried again when the service moved on between its read and its
/// write through the system's own writes only (see [`Service::spec_current_at`]).
const SYSTEM_WRITE_RETRIES: usize = 8;

/// `POST /services/{id}/update?version=&registryAuthFrom=&rollback=` → `{"Warnings":null}`.
///
/// The version guards the spec: an update that read the current spec goes through even if the
/// update supervisor has written the service's rollout status since (swarmkit refuses it as
/// "update out of sequence", and `docker service update` right after another one hits that).
/// An update that missed a change of the spec is refused.
///
/// Registry credentials, as dockerd keeps them: the `X-Registry-Auth` header's when it is sent
/// (`--with-registry-auth`), else those of the current spec (`registryAuthFrom=spec`, the
/// default) or of the previous one (`previous-spec`, what `docker service rollback` asks for).
pub async fn update(
    State(state): State<ApiState>,
    Extension(api_version): Extension<ApiVersion>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
    headers: HeaderMap,
    DockerJson(spec): DockerJson<ServiceSpec>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let version = version_param(&q, "service")?;
    let request = UpdateRequest {
        version,
        api_version,
        registry_auth_header: registry_auth_header(&headers),
        registry_auth_from: q.get("registryAuthFrom").cloned().unwrap_or_default(),
        rollback: match q.get("rollback").map(String::as_str).unwrap_or("") {
            "" | "none" => false,
            "previous" => true,
            other => {
                return Err(ApiError::internal(format!(
                    "unrecognized rollback option {other}"
                )))
            }
        },
    };
    let mut retries = 0;
    loop {
        let (view, current) = current_service(&store, &key, version).await?;
        let svc = updated_service(&view, &current, spec.clone(), &request)?;
        match store.submit(Txn::new().update(svc)).await {
            // The service moved on since this read: judge the update again against the newer
            // version (a change of the spec refuses it there).
            Err(e) if e.is_out_of_sequence() && retries < SYSTEM_WRITE_RETRIES => retries += 1,
            done => {
                done?;
                return Ok(Json(json!({"Warnings": null})));
            }
        }
    }
}

/// What an update asks for, besides the spec.
struct UpdateRequest {
    /// The version the client read.
    version: u64,
    api_version: ApiVersion,
    /// `X-Registry-Auth`, if sent.
    registry_auth_header: RegistryAuth,
    /// `registryAuthFrom`.
    registry_auth_from: String,
    /// `rollback=previous`.
    rollback: bool,
}

/// `current` as `request` updates it to `spec`, checked against `view`.
fn updated_service(
    view: &View,
    current: &shoal_store::Obj<Service>,
    mut spec: ServiceSpec,
    request: &UpdateRequest,
) -> ApiResult<Service> {
    service_spec::adjust_for_api_version(&mut spec, request.api_version);
    service_refs::resolve_networks(view, &mut spec)?;
    service_spec::convert(&mut spec)?;
    let registry_auth = if !request.registry_auth_header.is_empty() {
        request.registry_auth_header.clone()
    } else {
        match request.registry_auth_from.as_str() {
            "" | "spec" => registry_auth_of(&current.spec),
            "previous-spec" => match current.previous_spec.as_ref() {
                Some(previous) => registry_auth_of(previous),
                None => return Err(ApiError::internal("service does not have a previous spec")),
            },
            _ => return Err(ApiError::internal("unsupported registryAuthFrom value")),
        }
    };
    service_refs::resolve_secrets_and_configs(view, &mut spec)?;
    service_spec::validate(&spec)?;
    let id = current.meta.id.clone();
    service_spec::normalize(&mut spec);
    set_registry_auth(&mut spec, registry_auth);
    if spec.endpoint_spec != current.spec.endpoint_spec {
        service_refs::check_port_conflicts(view, &spec, Some(&id))?;
    }
    if mode_type(&spec) != mode_type(&current.spec) {
        return Err(ApiError::unimplemented(
            "service mode change is not allowed",
        ));
    }
    if spec.name() != current.spec.name() {
        return Err(ApiError::unimplemented(
            "renaming services is not supported",
        ));
    }
    if !spec.networks.is_empty() && spec.networks != current.spec.networks {
        return Err(ApiError::unimplemented(
            "networks must be migrated to TaskSpec before being changed",
        ));
    }
    check_size(&spec)?;
    if request.rollback && current.previous_spec.is_none() {
        return Err(ApiError::failed_precondition(format!(
            "service {id} does not have a previous spec"
        )));
    }
    // Checked last, as swarmkit's store does: a stale update with another error reports that one.
    if !current.spec_current_at(request.version) {
        return Err(out_of_sequence(
            &id,
            request.version,
            current.meta.version.index,
        ));
    }

    let mut svc = current.to_owned_value();
    if let Some(job) = svc.job_status.as_mut() {
        job.job_iteration.index += 1;
        job.last_execution = Timestamp::now();
    }
    if request.rollback {
        svc.roll_back_spec();
        svc.update_status = Some(UpdateStatus {
            state: Some(UpdateState::RollbackStarted),
            started_at: Some(Timestamp::now()),
            completed_at: None,
            message: "manually requested rollback".into(),
        });
    } else {
        svc.take_new_spec(spec);
        svc.update_status = None;
    }
    svc.endpoint = service_refs::allocate_endpoint(view, &svc.spec, &id, Some(&current.endpoint));
    Ok(svc)
}

/// The mode's type, which an update may not change (`Replicated` to `Global`, ...).
fn mode_type(spec: &ServiceSpec) -> ServiceModeKind {
    spec.mode_kind()
}

/// Most task updates committed with a service's removal; the task reaper marks any others.
const MAX_TASKS_WITH_REMOVAL: usize = 200;

/// `DELETE /services/{id}` → 200.
///
/// The service's live tasks get desired state REMOVE in the same transaction. The task reaper
/// would mark them soon after anyway; doing it atomically means nothing sees a live task of a
/// service that is gone, so `docker stack rm` can remove the stack's networks right after its
/// services (dockerd races there: "network ... is in use by task ..."). Agents update tasks
/// concurrently and the task reaper deletes old tasks, so a transaction that lost a race with
/// either (a task moved on or vanished) is retried on a fresh view.
pub async fn remove(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let mut attempts = 0;
    loop {
        let view = store.view();
        let service = resolve::service(&view, &key)?;
        let mut txn = Txn::new().delete(Kind::Service, service.meta.id.clone(), None);
        for t in view
            .tasks_of_service(&service.meta.id)
            .filter(|t| t.desired_state < TaskState::Remove)
            .take(MAX_TASKS_WITH_REMOVAL)
        {
            let mut task: Task = t.to_owned_value();
            task.desired_state = TaskState::Remove;
            txn = txn.update(task);
        }
        match store.submit(txn).await {
            Err(e) if e.is_stale_read() && attempts < 10 => attempts += 1,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(StatusCode::OK),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_comes_from_the_header_and_is_never_shown() {
        let mut headers = HeaderMap::new();
        assert!(registry_auth_header(&headers).is_empty());
        headers.insert(
            REGISTRY_AUTH_HEADER,
            "eyJ1c2VybmFtZSI6ImEifQ==".parse().unwrap(),
        );
        let auth = registry_auth_header(&headers);
        assert_eq!(auth.0, "eyJ1c2VybmFtZSI6ImEifQ==");

        let mut spec: ServiceSpec = serde_json::from_str(
            r#"{"Name":"a","TaskTemplate":{"ContainerSpec":{"Image":"x","RegistryAuth":"from-the-body"}}}"#,
        )
        .unwrap();
        set_registry_auth(&mut spec, auth.clone());
        assert_eq!(registry_auth_of(&spec), auth);
        let service = Service {
            spec: spec.clone(),
            previous_spec: Some(spec.clone()),
            ..Default::default()
        };
        let shown = without_registry_auth(render::service(&service)).to_string();
        assert!(!shown.contains("RegistryAuth"), "{shown}");
        assert!(shown.contains(r#""Image":"x""#), "{shown}");
        let task = Task {
            spec: spec.task_template.clone(),
            ..Default::default()
        };
        let shown = without_registry_auth(render::task(&task, ApiVersion(1, 41))).to_string();
        assert!(!shown.contains("RegistryAuth"), "{shown}");
    }
}
