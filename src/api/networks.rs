//! `/networks`: swarm-scoped overlay networks (create, inspect by name or id, list, remove).
//! shoal keeps no node-local networks: `bridge`, `host` and other local drivers are refused.

use axum::extract::{Query as QueryExtract, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use shoal_controllers::allocator::{ipam, publishes_ingress};
use shoal_store::model::{
    new_id, Cluster, Kind, Meta, Network, NetworkAllocation, NetworkSpec, Service, Task, TaskState,
    VXLAN_ID_OPTION,
};
use shoal_store::{Txn, View};

use super::body::DockerJson;
use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::filters::Filters;
use super::query::Query;
use super::version::ApiVersion;
use super::{resolve, service_spec};

/// Names dockerd reserves for its own networks.
const PREDEFINED: &[&str] = &["bridge", "host", "none", "default"];

/// A network as `GET /networks` shows it to a client of API `version` (moby's
/// `network.Inspect` for a swarm network; `EnableIPv4` came in 1.48).
pub fn render(n: &Network, version: ApiVersion) -> Value {
    let s = &n.spec;
    let ipam = s.ipam.clone().unwrap_or_default();
    // What was allocated, as dockerd shows a swarm network's pool and VXLAN id.
    let (config, options) = match &n.allocation {
        Some(a) => {
            let mut pool = json!({"Subnet": a.subnet, "Gateway": a.gateway});
            if !a.ip_range.is_empty() {
                pool["IPRange"] = json!(a.ip_range);
            }
            let mut options = s.options.clone();
            options.insert(VXLAN_ID_OPTION.to_string(), a.vni.to_string());
            (json!([pool]), options)
        }
        None => (json!(ipam.config), s.options.clone()),
    };
    let mut v = json!({
        "Name": s.name,
        "Id": n.meta.id,
        "Created": n.meta.created_at,
        "Scope": "swarm",
        "Driver": if s.driver.is_empty() { "overlay" } else { s.driver.as_str() },
        "EnableIPv4": s.enable_ipv4.unwrap_or(true),
        "EnableIPv6": s.enable_ipv6.unwrap_or(false),
        "IPAM": {
            "Driver": if ipam.driver.is_empty() { "default".to_string() } else { ipam.driver.clone() },
            "Options": if ipam.options.is_empty() { Value::Null } else { json!(ipam.options) },
            "Config": config,
        },
        "Internal": s.internal,
        "Attachable": s.attachable,
        "Ingress": s.ingress,
        "ConfigFrom": {"Network": s.config_from.as_ref().map(|c| c.network.clone()).unwrap_or_default()},
        "ConfigOnly": s.config_only,
        "Containers": null,
        "Options": options,
        "Labels": s.labels,
    });
    if !version.at_least(1, 48) {
        if let Some(o) = v.as_object_mut() {
            o.remove("EnableIPv4");
        }
    }
    v
}

/// dockerd's and swarmkit's checks of a new network's spec, with the defaults they fill in
/// (driver `overlay`, scope `swarm`); shared by `docker network create` and `shoal apply`.
pub fn check_spec(spec: &mut NetworkSpec) -> ApiResult<()> {
    if PREDEFINED.contains(&spec.name.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a pre-defined network and cannot be created",
                spec.name
            ),
        ));
    }
    match spec.driver.as_str() {
        "" | "overlay" => spec.driver = "overlay".into(),
        other => {
            return Err(ApiError::bad_request(format!(
            "shoal manages swarm-scoped overlay networks only; driver {other:?} is not supported"
        )))
        }
    }
    match spec.scope.as_str() {
        "" | "swarm" => spec.scope = "swarm".into(),
        other => {
            return Err(ApiError::bad_request(format!(
                "shoal manages swarm-scoped networks only; scope {other:?} is not supported"
            )))
        }
    }
    service_spec::validate_name(&spec.name)?;
    if spec.options.contains_key("encrypted") {
        return Err(ApiError::invalid_argument(format!(
            "network {}: encrypted overlay networks are not supported by shoal yet; create it without --opt encrypted",
            spec.name
        )));
    }
    if let Err(why) = crate::dataplane::direct_routing_option(Some(&spec.options)) {
        return Err(ApiError::invalid_argument(format!(
            "network {}: {why}",
            spec.name
        )));
    }
    if spec.attachable && spec.ingress {
        return Err(ApiError::invalid_argument(
            "ingress network cannot be attachable",
        ));
    }
    Ok(())
}

/// `POST /networks/create` → 201 `{"Id":"…","Warning":""}`.
pub async fn create(
    State(state): State<ApiState>,
    DockerJson(mut spec): DockerJson<NetworkSpec>,
) -> ApiResult<Response> {
    let store = state.manager_store().await?;
    check_spec(&mut spec)?;
    // One allocation at a time on this manager, so two creates cannot pick the same subnet.
    let _allocating = ALLOCATING.lock().await;
    let view = store.view();
    let taken = view
        .get_by_name::<Network>(&spec.name)
        .is_some_and(|n| n.spec.name == spec.name);
    if taken {
        return Err(ApiError::conflict(format!(
            "network with name {} already exists",
            spec.name
        )));
    }
    if spec.ingress {
        if let Some(other) = view.list::<Network>().find(|n| n.spec.ingress) {
            return Err(ApiError::conflict(format!(
                "ingress network ({}) is already present",
                other.meta.id
            )));
        }
    }
    let allocation = allocate(&view, &spec)?;
    let id = new_id();
    let network = Network {
        meta: Meta::with_id(id.clone()),
        spec,
        allocation: Some(allocation),
    };
    store.submit(Txn::new().create(network)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warning": ""}))).into_response())
}

/// Held while a subnet is chosen and committed, so two creates on this manager cannot pick the
/// same one.
pub static ALLOCATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A subnet, gateway and VXLAN id for a new network: the ones asked for, checked against the
/// other networks, or the next free ones from the swarm's default address pools.
pub fn allocate(view: &View, spec: &NetworkSpec) -> ApiResult<NetworkAllocation> {
    allocate_with(view, spec, &[])
}

/// [`allocate`], also keeping clear of `pending`: networks allocated for the same transaction.
pub fn allocate_with(
    view: &View,
    spec: &NetworkSpec,
    pending: &[Network],
) -> ApiResult<NetworkAllocation> {
    let mut networks: Vec<Network> = view.list::<Network>().map(|n| (*n).clone()).collect();
    networks.extend(pending.iter().cloned());
    let taken = ipam::Taken {
        networks: networks
            .iter()
            .filter_map(|n| n.allocation.as_ref().map(|a| (n.spec.name.as_str(), a)))
            .collect(),
    };
    let cluster = view.list::<Cluster>().next();
    let (pools, size) = ipam::swarm_pools(cluster.as_deref());
    ipam::allocate_network(spec, &taken, &pools, size)
        .map_err(|e| ApiError::invalid_argument(format!("network {}: {e}", spec.name)))
}

/// `GET /networks/{id}?scope=`: by id, name or id prefix.
pub async fn inspect(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    if q.get("scope")
        .is_some_and(|s| !s.is_empty() && s != "swarm")
    {
        return Err(resolve::not_found("network", &key));
    }
    let view = store.view();
    let n = resolve::network(&view, &key)?;
    Ok(Json(render(&n, version)))
}

/// Whether a network is attached to a service.
fn in_use(view: &View, id: &str) -> bool {
    view.list::<Service>().any(|s| {
        s.spec
            .task_template
            .networks
            .iter()
            .chain(s.spec.networks.iter())
            .any(|a| a.target == id)
    })
}

/// `GET /networks?filters=`.
pub async fn list(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let store = state.manager_store().await?;
    let f = Filters::from_query(
        &q,
        &["dangling", "driver", "id", "label", "name", "scope", "type"],
    )?;
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let mut dangling = None;
    for d in f.get("dangling") {
        dangling = Some(match d.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter: 'dangling'='{d}'"
                )))
            }
        });
    }
    let view = store.view();
    let out: Vec<Value> = view
        .list::<Network>()
        .filter(|n| {
            let driver = if n.spec.driver.is_empty() {
                "overlay"
            } else {
                n.spec.driver.as_str()
            };
            // dockerd matches `name` and `id` as patterns; plain text matches as a substring.
            f.any("name", |v| n.spec.name.contains(v))
                && f.any("id", |v| n.meta.id.contains(v))
                && f.any("driver", |v| v == driver)
                && f.any("scope", |v| v == "swarm")
                && f.any("type", |v| v == "custom")
                && f.labels_match("label", &n.spec.labels)
                && dangling.is_none_or(|d| d != in_use(&view, &n.meta.id))
        })
        .map(|n| render(&n, version))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `DELETE /networks/{id}` → 204; refused while a service or a live task uses it.
pub async fn remove(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    let view = store.view();
    let n = resolve::network(&view, &key)?;
    let id = n.meta.id.clone();
    let user = view.list::<Service>().find(|s| {
        s.spec
            .task_template
            .networks
            .iter()
            .chain(s.spec.networks.iter())
            .any(|a| a.target == id)
    });
    if let Some(s) = user {
        return Err(ApiError::failed_precondition(format!(
            "network {id} is in use by service {}",
            s.meta.id
        )));
    }
    if n.spec.ingress {
        if let Some(s) = view.list::<Service>().find(|s| publishes_ingress(s)) {
            return Err(ApiError::failed_precondition(format!(
                "ingress network cannot be removed because service {} depends on it",
                s.meta.id
            )));
        }
    }
    // Tasks of a service that is gone are on their way out (the reaper is about to mark
    // them): they do not hold the network, or removing a service and then its network races.
    let task = view.list::<Task>().find(|t| {
        t.desired_state <= TaskState::Running
            && t.status.state <= TaskState::Running
            && t.spec.networks.iter().any(|a| a.target == id)
            && view.get::<Service>(&t.service_id).is_some()
    });
    if let Some(t) = task {
        return Err(ApiError::failed_precondition(format!(
            "network {id} is in use by task {}",
            t.meta.id
        )));
    }
    store
        .submit(Txn::new().delete(Kind::Network, id, None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
