//! Linearizable reads on request: `X-Shoal-Consistency: linearizable` on a `GET` makes the
//! manager confirm with the leader which revision is the swarm's latest (a Raft ReadIndex,
//! acknowledged by a quorum) and wait until it has applied it before the handler reads.
//!
//! Without the header a manager answers from its own replica, as SwarmKit's followers do for
//! most reads: fast, but a follower may be a little behind, and a deposed leader cut off from
//! the others may be further behind. With it the answer includes every write acknowledged
//! before the request was sent, whichever manager serves it (etcd's default `linearizable`
//! range read against its `serializable` one). When no quorum answers, the read fails with 503
//! instead of answering from a state that may be stale. The chaos suite's clients read this way;
//! the docker CLI never sends the header and is unaffected.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::context::ApiState;
use super::error::ApiError;

/// The request header.
pub const HEADER: &str = "x-shoal-consistency";

/// The middleware (see the module's documentation).
pub async fn reads(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(value) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    match value.to_str().map(str::trim) {
        Ok("linearizable") if req.method() == Method::GET => {}
        Ok("serializable") | Ok("local") => return next.run(req).await,
        Ok("linearizable") => {
            return ApiError::bad_request(format!(
                "{HEADER}: linearizable applies to GET requests only; writes are always committed by a quorum"
            ))
            .into_response()
        }
        _ => {
            return ApiError::bad_request(format!(
                "{HEADER}: {value:?} is not a consistency; use linearizable (confirmed with a quorum) or serializable (this manager's replica, the default)"
            ))
            .into_response()
        }
    }
    // A node that is not a manager: the handler says why in its own words.
    let Ok(store) = state.manager_store().await else {
        return next.run(req).await;
    };
    // Broken on purpose (debug builds only; see `shoal_store::mutation`): the chaos suite's
    // linearizability oracle must catch it.
    if shoal_store::mutation::active("stale-reads") {
        return next.run(req).await;
    }
    if let Err(e) = store.linearizable_view().await {
        return ApiError::unavailable(format!(
            "a linearizable read needs the swarm's leader and a quorum of managers, and this manager could not confirm one: {e}"
        ))
        .into_response();
    }
    next.run(req).await
}
