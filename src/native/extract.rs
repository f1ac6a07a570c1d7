//! The native API's request extractors: axum's `Json`, `Path` and `Query` with their rejections
//! answered in the native API's error form (`{"code": "invalid_argument", "message"}`) instead
//! of axum's plain-text bodies, so a client reads every error the same way. A malformed body,
//! path parameter or query is a 400 (an oversized body stays a 413, a body that is not JSON a
//! 415): nothing is written.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::wire::code;
use super::NativeError;

/// A JSON request body.
pub struct JsonBody<T>(pub T);

/// Path parameters.
pub struct PathParams<T>(pub T);

/// Query parameters.
pub struct QueryParams<T>(pub T);

fn invalid(status: StatusCode, message: String) -> NativeError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            NativeError::new(status, code::INVALID_ARGUMENT, message)
        }
        s if s.is_client_error() => NativeError::invalid(message),
        // A route whose parameters do not match its handler's: ours to fix, not the caller's.
        s => NativeError::new(s, code::INTERNAL, message),
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = NativeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, NativeError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(invalid(e.status(), e.body_text())),
        }
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = NativeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NativeError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParams(v)),
            Err(e) => Err(invalid(e.status(), e.body_text())),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = NativeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NativeError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(e) => Err(invalid(e.status(), e.body_text())),
        }
    }
}
