//! API errors: Docker's status codes and texts, as `{"message": ...}` with
//! `Content-Type: application/json` (the Go client only decodes error bodies with exactly that).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shoal_store::{StoreError, TxnError};

use crate::node::SwarmError;

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Docker's message.
    pub message: String,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    /// 409.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    /// 500.
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    /// 501.
    pub fn not_implemented(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, m)
    }
    /// 503.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, m)
    }
    /// A swarmkit-style gRPC error text: `rpc error: code = <Code> desc = <text>`.
    pub fn rpc(status: StatusCode, code: &str, desc: impl std::fmt::Display) -> Self {
        Self::new(status, format!("rpc error: code = {code} desc = {desc}"))
    }
    /// 400 `rpc error: code = InvalidArgument desc = ...`.
    pub fn invalid_argument(desc: impl std::fmt::Display) -> Self {
        Self::rpc(StatusCode::BAD_REQUEST, "InvalidArgument", desc)
    }
    /// 400 `rpc error: code = FailedPrecondition desc = ...`.
    pub fn failed_precondition(desc: impl std::fmt::Display) -> Self {
        Self::rpc(StatusCode::BAD_REQUEST, "FailedPrecondition", desc)
    }
    /// 501 `rpc error: code = Unimplemented desc = ...`.
    pub fn unimplemented(desc: impl std::fmt::Display) -> Self {
        Self::rpc(StatusCode::NOT_IMPLEMENTED, "Unimplemented", desc)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(TxnError::OutOfSequence { .. }) => ApiError::rpc(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Unknown",
                "update out of sequence",
            ),
            StoreError::Rejected(TxnError::NameConflict { kind, name, .. }) => ApiError::rpc(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("name conflicts with an existing object: {kind} {name} already exists"),
            ),
            StoreError::Rejected(TxnError::NotFound { kind, id }) => {
                ApiError::not_found(format!("{kind} {id} not found"))
            }
            StoreError::Rejected(TxnError::AlreadyExists { kind, id }) => ApiError::rpc(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{kind} {id} already exists"),
            ),
            StoreError::Rejected(TxnError::Invalid(m)) | StoreError::Invalid(m) => {
                ApiError::invalid_argument(m)
            }
            StoreError::QuorumAtRisk(m) => ApiError::failed_precondition(m),
            StoreError::Unavailable(m) => ApiError::unavailable(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<SwarmError> for ApiError {
    fn from(e: SwarmError) -> Self {
        ApiError::new(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.message,
        )
    }
}
