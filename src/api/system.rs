//! `/_ping`, `/version`, `/info`: what every client asks first.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shoal_store::model::{Cluster, Node, NodeRole};

use super::context::ApiState;
use super::swarm::render_cluster;
use super::version::{MAX_API_VERSION, MIN_API_VERSION};
use crate::node::{description, SwarmState};

/// The `Swarm` header value: `inactive`, `active/manager`, `active/worker`.
async fn swarm_header(state: &ApiState) -> &'static str {
    match state.node.state().await {
        SwarmState::Inactive => "inactive",
        SwarmState::Manager { .. } => "active/manager",
        SwarmState::Worker { .. } => "active/worker",
        SwarmState::Locked { .. } => "locked",
        SwarmState::Joining { .. } => "pending",
    }
}

/// `GET|HEAD /_ping`.
pub async fn ping(State(state): State<ApiState>, method: Method) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "Swarm",
        HeaderValue::from_static(swarm_header(&state).await),
    );
    if method == Method::HEAD {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        return (StatusCode::OK, headers).into_response();
    }
    (StatusCode::OK, headers, "OK").into_response()
}

/// `GET /version`.
pub async fn version() -> Json<Value> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Json(json!({
        "Platform": {"Name": "shoal"},
        "Components": [{
            "Name": "Engine",
            "Version": crate::VERSION,
            "Details": {"ApiVersion": MAX_API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": goarch()},
        }],
        "Version": crate::VERSION,
        "ApiVersion": MAX_API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": goarch(),
        "KernelVersion": kernel.trim(),
        "BuildTime": "",
    }))
}

/// Go's name for this architecture.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /info`: the fields swarm clients read (`Swarm`), plus the host facts `docker info` prints.
pub async fn info(State(state): State<ApiState>) -> Json<Value> {
    let swarm = swarm_info(&state).await;
    let hostname = state.node.hostname();
    Json(json!({
        "ID": swarm.get("NodeID").cloned().unwrap_or(Value::String(String::new())),
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": 0,
        "Driver": "",
        "Name": hostname,
        "ServerVersion": crate::VERSION,
        "OperatingSystem": os_name(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "NCPU": description::cpus(),
        "MemTotal": description::memory_bytes(),
        "IndexServerAddress": "",
        "Labels": [],
        "ExperimentalBuild": false,
        // dockerd lists the swarm's warnings among the host's; `docker info` prints these.
        "Warnings": swarm.get("Warnings").cloned().unwrap_or(Value::Null),
        "Swarm": swarm,
    }))
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `/info`'s `Swarm` section for a node in a swarm that cannot manage it (a worker, a manager
/// still joining): the managers it knows of, in `local_state`.
fn member_without_control(
    membership: &crate::node::membership::SwarmMembership,
    local_state: &str,
) -> Value {
    json!({
        "NodeID": membership.node_id,
        "NodeAddr": crate::node::swarm_service::host_of(&membership.advertise_addr),
        "LocalNodeState": local_state,
        "ControlAvailable": false,
        "Error": "",
        "RemoteManagers": membership.managers.iter().map(|a| json!({"NodeID": "", "Addr": a})).collect::<Vec<_>>(),
    })
}

/// `/info`'s `Swarm` section (Docker's `swarm.Info`).
async fn swarm_info(state: &ApiState) -> Value {
    match state.node.state().await {
        SwarmState::Inactive => json!({
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false,
            "Error": "", "RemoteManagers": null,
        }),
        SwarmState::Locked { membership } => json!({
            "NodeID": "",
            "NodeAddr": crate::node::swarm_service::host_of(&membership.advertise_addr),
            "LocalNodeState": "locked",
            "ControlAvailable": false,
            "Error": crate::node::texts::LOCKED,
            "RemoteManagers": null,
        }),
        SwarmState::Joining { membership, .. } => member_without_control(&membership, "pending"),
        SwarmState::Worker { membership } => member_without_control(&membership, "active"),
        SwarmState::Manager {
            membership,
            manager,
        } => {
            let view = manager.store.view();
            let managers: Vec<Value> = view
                .nodes_with_role(NodeRole::Manager)
                .map(|n| json!({"NodeID": n.meta.id, "Addr": n.manager_status.as_ref().map(|m| m.addr.clone()).unwrap_or_default()}))
                .collect();
            let cluster = view.list::<Cluster>().next().map(|c| {
                let mut v = render_cluster(&c);
                if let Some(o) = v.as_object_mut() {
                    o.remove("JoinTokens");
                }
                v
            });
            let mut info = json!({
                "NodeID": membership.node_id,
                "NodeAddr": crate::node::swarm_service::host_of(&membership.advertise_addr),
                "LocalNodeState": "active",
                "ControlAvailable": true,
                "Error": "",
                "RemoteManagers": managers,
                "Nodes": view.list::<Node>().count(),
                "Managers": view.nodes_with_role(NodeRole::Manager).count(),
            });
            if let Some(c) = cluster {
                info["Cluster"] = c;
            }
            // As dockerd warns; here from the store's voters, the managers its quorum counts.
            if manager.store.voter_count() == 2 {
                info["Warnings"] = json!([shoal_store::quorum::TWO_MANAGERS_WARNING]);
            }
            info
        }
    }
}
