//! Request bodies the way dockerd reads them: `Content-Type` must be JSON when a body is present,
//! an empty body is the zero value, keys match field names as Go's `encoding/json` matches them
//! (exactly, else case-insensitively: see [`super::gojson`]), unknown fields are ignored,
//! malformed JSON is a 400. Path parameters ([`DockerPath`]) are refused the same way: a JSON
//! error, never axum's plain-text one.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body accepted (specs are small; secrets are at most 500 KiB).
pub const MAX_BODY: usize = 4 << 20;

/// A JSON body decoded with Docker's rules.
pub struct DockerJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for DockerJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    e.status(),
                    format!("request body is larger than the {MAX_BODY} byte limit"),
                )
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        decode(content_type.as_deref(), &bytes).map(DockerJson)
    }
}

/// Decodes a body given its content type.
pub fn decode<T: DeserializeOwned + Default>(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    if let Some(ct) = content_type {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime != "application/json" {
            return Err(ApiError::bad_request(format!(
                "unsupported Content-Type header ({mime}): must be 'application/json'"
            )));
        }
    }
    super::gojson::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Path parameters, refused as a Docker error (JSON with a message) when they do not decode, e.g.
/// an id whose percent-escapes are not UTF-8 (`/tasks/%ff`): the Go client only reads error
/// bodies that are JSON.
pub struct DockerPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for DockerPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(DockerPath(v)),
            Err(e) => Err(ApiError::new(e.status(), e.body_text())),
        }
    }
}
