//! shoal's native API, beside the Docker API on the same sockets (`src/api/` stays the Docker
//! surface): the watch with revisions, the current revision and `wait_for(revision)`, and the
//! OpenAPI document that describes it all; and stacks ([`stacks`]: plan, apply, rollback,
//! history, status) and every service's [`health`].
//!
//! Every HTTP route lives under `/shoal/v1/`, which can never clash with Docker's routes: those
//! are unversioned (`/services`) or under `/v{major.minor}/`, and the version middleware
//! (`api::version::versioned`) only rewrites paths that start with `/v` and a digit.
//!
//! The gRPC form of the watch (`proto/watch.proto`) is served on the same sockets too, as
//! HTTP/2 without TLS (h2c, prior knowledge) next to the HTTP/1 routes: the API socket is what a
//! client of this node already reaches and is allowed to use (its file permissions, like
//! dockerd's socket; the optional TCP listener is for loopback). The managers' swarm listener is
//! not used for it: it is mutual TLS for swarm members, and a client that is not shoal has no
//! node certificate.
//!
//! Only managers serve the native API; other nodes answer every route with an error that says
//! so (see [`NativeState`]).
//!
//! Adding a route: add it to [`http_routes`] and describe it in `openapi/openapi.json`; a test
//! checks that every route is documented and every documented path is served.

pub mod backup;
pub mod extract;
pub mod gitops;
pub mod grpc;
pub mod health;
pub mod stacks;
pub mod watch;
pub mod wire;

use std::future::Future;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shoal_store::{Store, StoreError};

use crate::api::ApiState;
use crate::node::SwarmState;
use wire::{code, WireError};

/// The OpenAPI 3 document of the native API, served at `GET /shoal/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi/openapi.json");

/// The prefix of every native HTTP route.
pub const PREFIX: &str = "/shoal/v1";

/// Longest `wait` a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// `wait` without a timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Where the native API finds the store: a manager's, through the node (the daemon), or a
/// store of its own (tests).
pub trait NativeState: Clone + Send + Sync + 'static {
    /// The store, or why this node cannot serve the native API.
    fn store(&self) -> impl Future<Output = Result<Store, NativeError>> + Send;
}

impl NativeState for ApiState {
    async fn store(&self) -> Result<Store, NativeError> {
        let unavailable =
            |m: &str| NativeError::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, m);
        let not_manager =
            |m: &str| NativeError::new(StatusCode::SERVICE_UNAVAILABLE, code::NOT_A_MANAGER, m);
        match self.node.state().await {
            SwarmState::Manager { manager, .. } => Ok(manager.store.clone()),
            SwarmState::Worker { .. } => Err(not_manager(
                "this node is a worker: the watch and the rest of shoal's native API are served by managers; \
                 point --host or SHOAL_HOST at a manager's API socket (`docker node ls` on a manager lists them)",
            )),
            SwarmState::Inactive => Err(not_manager(
                "this node is not in a swarm: the watch and the rest of shoal's native API are served by swarm managers; \
                 run `docker swarm init` (or join a swarm as a manager) first, or point --host or SHOAL_HOST at a manager's API socket",
            )),
            SwarmState::Locked { .. } => Err(unavailable(
                "this manager is locked: unlock it with `docker swarm unlock`, then retry",
            )),
            SwarmState::Joining { .. } => Err(unavailable(
                "this node is still joining the swarm as a manager: retry in a moment",
            )),
        }
    }
}

impl NativeState for Store {
    async fn store(&self) -> Result<Store, NativeError> {
        Ok(self.clone())
    }
}

/// An error answer: a status and a [`WireError`] body (`{"code", "message", ...}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub error: WireError,
}

impl NativeError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        NativeError {
            status,
            error: WireError::new(code, message),
        }
    }

    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, message)
    }

    /// The answer for a store error.
    pub fn from_store(e: &StoreError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            e.to_string(),
        )
    }
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        (self.status, Json(self.error)).into_response()
    }
}

/// One HTTP route of the native API.
pub struct Route<S> {
    /// Its method (documented in the OpenAPI document).
    pub method: Method,
    /// Its path.
    pub path: &'static str,
    /// Its handler.
    pub handler: MethodRouter<S>,
}

/// Every HTTP route of the native API (the gRPC service comes on top, see [`router`]).
pub fn http_routes<S: NativeState>() -> Vec<Route<S>> {
    vec![
        Route {
            method: Method::GET,
            path: "/shoal/v1/watch",
            handler: get(watch::watch::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/revision",
            handler: get(revision::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/wait",
            handler: get(wait::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/openapi.json",
            handler: get(openapi),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/backup",
            handler: get(backup::backup::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/health",
            handler: get(health::list::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/stacks",
            handler: get(stacks::list::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/stacks/{name}",
            handler: get(stacks::inspect::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/stacks/{name}/plan",
            handler: post(stacks::plan::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/stacks/{name}/apply",
            handler: post(stacks::apply::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/stacks/{name}/rollback",
            handler: post(stacks::rollback::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/stacks/{name}/history",
            handler: get(stacks::history::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/stacks/{name}/revisions/{number}",
            handler: get(stacks::revision::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/gitops",
            handler: get(gitops::list::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/gitops",
            handler: post(gitops::add::<S>),
        },
        Route {
            method: Method::GET,
            path: "/shoal/v1/gitops/{name}",
            handler: get(gitops::inspect::<S>),
        },
        Route {
            method: Method::DELETE,
            path: "/shoal/v1/gitops/{name}",
            handler: delete(gitops::remove::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/gitops/{name}/sync",
            handler: post(gitops::sync::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/gitops/{name}/suspend",
            handler: post(gitops::suspend::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/gitops/{name}/resume",
            handler: post(gitops::resume::<S>),
        },
        Route {
            method: Method::POST,
            path: "/shoal/v1/gitops/{name}/webhook",
            handler: post(gitops::hook::<S>),
        },
    ]
}

/// The native API for `state`, to merge into the app served on the API sockets: the HTTP
/// routes, the gRPC watch service, and a 404 for any other path under `/shoal/`.
pub fn router<S: NativeState, T: Clone + Send + Sync + 'static>(state: S) -> Router<T> {
    // One method router per path (a path may serve several methods).
    let mut by_path: Vec<(&'static str, MethodRouter<S>)> = Vec::new();
    for route in http_routes::<S>() {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, handler)) => *handler = std::mem::take(handler).merge(route.handler),
            None => by_path.push((route.path, route.handler)),
        }
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        // Another method on a native path is the native 404 (with its `code`), not the Docker
        // API's method fallback.
        router = router.route(path, handler.fallback(not_found));
    }
    router
        // The prefix itself too: a wildcard matches one character at least.
        .route("/shoal", any(not_found))
        .route("/shoal/", any(not_found))
        .route("/shoal/{*rest}", any(not_found))
        .route_service(&grpc::route_path(), grpc::server(state.clone()))
        .with_state(state)
}

async fn not_found(req: Request) -> NativeError {
    NativeError::new(
        StatusCode::NOT_FOUND,
        code::NOT_FOUND,
        format!(
            "no native API route {} {}; GET {PREFIX}/openapi.json lists them",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /shoal/v1/revision`: the last revision committed in the swarm (a ReadIndex: confirmed
/// with a quorum by the leader) and how far this manager has applied.
async fn revision<S: NativeState>(
    State(state): State<S>,
) -> Result<Json<serde_json::Value>, NativeError> {
    let store = state.store().await?;
    let revision = store
        .read_index()
        .await
        .map_err(|e| NativeError::from_store(&e))?;
    Ok(Json(
        json!({"revision": revision, "applied": store.current_revision()}),
    ))
}

/// Query of `GET /shoal/v1/wait`.
#[derive(Deserialize)]
struct WaitQuery {
    revision: Option<String>,
    timeout: Option<String>,
}

/// `GET /shoal/v1/wait?revision=R&timeout=30s`: answers once this manager has applied `R`
/// (504 `timeout` if it has not within the timeout).
async fn wait<S: NativeState>(
    State(state): State<S>,
    extract::QueryParams(q): extract::QueryParams<WaitQuery>,
) -> Result<Json<serde_json::Value>, NativeError> {
    let raw = q.revision.unwrap_or_default();
    let revision: u64 = raw.parse().map_err(|_| {
        NativeError::invalid(format!(
            "revision {raw:?} is not a revision: pass ?revision=R with the revision a write or GET {PREFIX}/revision returned"
        ))
    })?;
    let timeout = match q.timeout.as_deref() {
        None | Some("") => DEFAULT_WAIT,
        Some(t) => parse_duration(t).map_err(NativeError::invalid)?,
    };
    let timeout = check_wait(timeout)?;
    let store = state.store().await?;
    wait_for(&store, revision, timeout).await?;
    Ok(Json(
        json!({"revision": revision, "applied": store.current_revision()}),
    ))
}

/// Refuses waits longer than [`MAX_WAIT`].
pub(crate) fn check_wait(timeout: Duration) -> Result<Duration, NativeError> {
    if timeout > MAX_WAIT {
        return Err(NativeError::invalid(format!(
            "timeout {timeout:?} is longer than the {MAX_WAIT:?} a wait may take; wait again instead"
        )));
    }
    Ok(timeout)
}

/// Waits until `store` has applied `revision`.
pub(crate) async fn wait_for(
    store: &Store,
    revision: u64,
    timeout: Duration,
) -> Result<(), NativeError> {
    match store.wait_for_revision(revision, timeout).await {
        Ok(_) => Ok(()),
        Err(StoreError::Unavailable(_)) => Err(NativeError::new(
            StatusCode::GATEWAY_TIMEOUT,
            code::TIMEOUT,
            format!(
                "this manager has applied revision {} and did not reach {revision} within {timeout:?}; \
                 wait again, or check that the revision came from this swarm (GET {PREFIX}/revision shows the current one)",
                store.current_revision()
            ),
        )),
        Err(e) => Err(NativeError::from_store(&e)),
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h` or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: use e.g. 500ms, 5s, 2m or a number of seconds");
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    /// Every route the native router serves is in the OpenAPI document with its method, and
    /// every path the document describes is served.
    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("the document is JSON");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "an OpenAPI 3 document"
        );
        let paths = doc["paths"].as_object().expect("paths");
        let routes = http_routes::<Store>();
        for r in &routes {
            assert!(r.path.starts_with(PREFIX), "{} is under {PREFIX}", r.path);
            let method = r.method.as_str().to_ascii_lowercase();
            let op = &paths
                .get(r.path)
                .unwrap_or_else(|| panic!("{} is not documented", r.path))[&method];
            assert!(op.is_object(), "{method} {} is not documented", r.path);
            assert!(
                op["responses"]["200"].is_object(),
                "{} documents its answer",
                r.path
            );
        }
        for path in paths.keys() {
            assert!(
                routes.iter().any(|r| r.path == path),
                "{path} is documented but not served"
            );
        }
        // Every $ref points at a schema the document has.
        let text = OPENAPI;
        for (i, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[i + "#/components/schemas/".len()..];
            let name = &rest[..rest.find('"').expect("closing quote")];
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "schema {name} is referenced but not defined"
            );
        }
    }
}
