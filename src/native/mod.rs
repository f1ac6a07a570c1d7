//! shoal's native API, beside the Docker surface of [`crate::api`] on the same sockets: stacks
//! (plan, apply, rollback, history, status) under `/shoal/v1/`, a prefix no Docker route
//! uses (Docker's are unversioned or `/v1.xx/...`).

pub mod stacks;

use axum::routing::{get, post};
use axum::Router;

use crate::api::ApiState;

/// The native routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/shoal/v1/stacks", get(stacks::list))
        .route("/shoal/v1/stacks/{name}", get(stacks::inspect))
        .route("/shoal/v1/stacks/{name}/plan", post(stacks::plan))
        .route("/shoal/v1/stacks/{name}/apply", post(stacks::apply))
        .route("/shoal/v1/stacks/{name}/rollback", post(stacks::rollback))
        .route("/shoal/v1/stacks/{name}/history", get(stacks::history))
        .route(
            "/shoal/v1/stacks/{name}/revisions/{number}",
            get(stacks::revision),
        )
}
