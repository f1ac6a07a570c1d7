//! The Docker Engine API (swarm subset) that the `docker` CLI and docker-py drive, served on a
//! unix socket and optionally TCP. `reference/docker-api.md` is the contract: routes, JSON names,
//! omission rules, status codes and texts.
//!
//! Every route answers both unversioned and `/v{version}/...` paths (see [`version`]).

pub mod body;
pub mod configs;
pub mod consistency;
pub mod context;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod events;
pub mod filters;
pub mod gojson;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod networks;
pub mod nodes;
pub mod query;
pub mod render;
pub mod request_id;
pub mod resolve;
pub mod secrets;
pub mod service_refs;
pub mod service_spec;
pub mod services;
pub mod swarm;
pub mod system;
pub mod tasks;
pub mod version;

use std::path::Path;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

pub use context::ApiState;
use error::ApiError;

/// Every route, without the version layer.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/swarm/unlock", post(swarm::unlock))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route(
            "/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(logs::service_logs))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::inspect))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/secrets", get(secrets::list))
        .route("/secrets/create", post(secrets::create))
        .route(
            "/secrets/{id}",
            get(secrets::inspect).delete(secrets::remove),
        )
        .route("/secrets/{id}/update", post(secrets::update))
        .route("/configs", get(configs::list))
        .route("/configs/create", post(configs::create))
        .route(
            "/configs/{id}",
            get(configs::inspect).delete(configs::remove),
        )
        .route("/configs/{id}/update", post(configs::update))
        .route("/events", get(events::events))
        .route("/distribution/{*rest}", get(distribution::inspect))
}

/// The complete application: routes, shoal's native API (`/shoal/v1/...` and its gRPC
/// service, see [`crate::native`]), version handling, body limit, 404 fallback.
pub fn app(state: ApiState) -> Router {
    routes()
        .merge(crate::native::router(state.clone()))
        // A known path with another method is Docker's 404, not axum's 405 (and not the engine's).
        .method_not_allowed_fallback(|| async {
            ApiError::not_found("page not found").into_response()
        })
        .fallback(engine::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            consistency::reads,
        ))
        .layer(DefaultBodyLimit::max(body::MAX_BODY))
        .with_state(state)
}

/// Serves the API on a unix socket (owner-only, replacing a stale socket file) until
/// `shutdown` resolves.
pub async fn serve_unix(
    state: ApiState,
    path: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(state, listen::bind_unix(path, None)?, shutdown).await
}

/// Serves the API on `listener` (see [`listen`] for the kinds and who may reach them) until
/// `shutdown` resolves.
pub async fn serve<L: axum::serve::Listener>(
    state: ApiState,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L::Addr: std::fmt::Debug,
{
    let app = tower::Layer::layer(&axum::middleware::from_fn(version::versioned), app(state));
    // Outermost: the id covers the whole call, and its log line names the path as sent.
    let app = tower::Layer::layer(&axum::middleware::from_fn(request_id::tag), app);
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
