//! `GET /shoal/v1/health`: every service's health as the health controller last wrote it
//! (`observed_generation`, desired and running tasks, Ready / Progressing / Degraded).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use shoal_store::model::Health;

use super::extract::QueryParams;
use super::{NativeError, NativeState};

/// Query of `health`.
#[derive(Debug, Default, Deserialize)]
pub struct HealthQuery {
    /// Only the services of this stack.
    #[serde(default)]
    pub stack: Option<String>,
}

/// `GET /shoal/v1/health[?stack=NAME]`: the services' health, by service name.
pub async fn list<S: NativeState>(
    State(state): State<S>,
    QueryParams(q): QueryParams<HealthQuery>,
) -> Result<Json<Vec<Health>>, NativeError> {
    let store = state.store().await?;
    let view = store.view();
    let mut all: Vec<Health> = view
        .list::<Health>()
        .filter(|h| q.stack.as_ref().is_none_or(|s| *s == h.stack))
        .map(|h| h.to_owned_value())
        .collect();
    all.sort_by(|a, b| a.service_name.cmp(&b.service_name));
    Ok(Json(all))
}
