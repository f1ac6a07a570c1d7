//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`.
//!
//! The parameters are checked as dockerd checks them (at least one stream, a known service or
//! task, a valid `tail` and `since`), so clients get the same errors. The log lines themselves
//! come from the nodes' agents, which do not ship them to the managers yet: until they do, a
//! valid request is answered with a 501 that says so, rather than with an empty stream that
//! would look like a silent service.

use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::StatusCode;

use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::query::{bool_value, Query};
use super::resolve;

/// What the logs routes answer once the request is valid.
pub const NOT_AVAILABLE: &str =
    "logs are not available: shoal's agents do not ship task logs to the managers yet";

/// dockerd's checks of the log selector, before any streaming starts.
fn check_params(q: &Query) -> ApiResult<()> {
    if !(bool_value(q, "stdout") || bool_value(q, "stderr")) {
        return Err(ApiError::internal(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    if let Some(tail) = q.get("tail") {
        if !tail.is_empty() && tail != "all" && tail.parse::<i64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "invalid value for tail: {tail:?} is neither \"all\" nor a number of lines"
            )));
        }
    }
    if let Some(since) = q.get("since").filter(|s| !s.is_empty()) {
        let (secs, frac) = since.split_once('.').unwrap_or((since, "0"));
        if secs.parse::<i64>().is_err() || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(ApiError::bad_request(format!(
                "invalid value for since: {since:?} is not a Unix timestamp"
            )));
        }
    }
    Ok(())
}

/// `GET /services/{id}/logs`.
pub async fn service_logs(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    check_params(&q)?;
    resolve::service(&store.view(), &key)?;
    Err(ApiError::not_implemented(NOT_AVAILABLE))
}

/// `GET /tasks/{id}/logs`.
pub async fn task_logs(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<StatusCode> {
    let store = state.manager_store().await?;
    check_params(&q)?;
    resolve::task(&store.view(), &key)?;
    Err(ApiError::not_implemented(NOT_AVAILABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_must_be_chosen() {
        let mut q = Query::new();
        let e = check_params(&q).unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.message,
            "Bad parameters: you must choose at least one stream"
        );
        q.insert("stdout".into(), "1".into());
        assert!(check_params(&q).is_ok());
        q.insert("tail".into(), "ten".into());
        assert!(check_params(&q).is_err());
        q.insert("tail".into(), "all".into());
        q.insert("since".into(), "1700000000.5".into());
        assert!(check_params(&q).is_ok());
    }
}
