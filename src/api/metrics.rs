//! The metrics listener (`shoal daemon --metrics-addr HOST:PORT`): `GET /metrics` answers the
//! node's metrics in the Prometheus text format, for a Prometheus server to scrape. It is a
//! listener of its own, as dockerd's `--metrics-addr` is, so a scraper needs no access to the
//! API; it serves nothing but counts and states (no names, specs or secrets).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::node::metrics::CONTENT_TYPE;
use crate::node::NodeRuntime;

async fn metrics(State(node): State<NodeRuntime>) -> Response {
    match node.metrics_text().await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("collecting this node's metrics failed: {e:#}\n"),
        )
            .into_response(),
    }
}

/// Serves `GET /metrics` for `node` on `listener` until `shutdown` resolves.
pub async fn serve(
    node: NodeRuntime,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(node);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
