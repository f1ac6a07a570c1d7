//! A request id for every API call: taken from the client's `X-Request-Id` when it sends a
//! sensible one, else made up; returned in the `X-Request-Id` header, added to error bodies as
//! `request_id` (next to Docker's `message`, which clients print), and carried by the daemon's
//! log lines for the call (a span with the id, method and path), so a user's error report
//! finds its log line.

use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header that carries the id both ways.
pub const HEADER: &str = "x-request-id";

/// Error bodies larger than this are passed on as they are (they are a line or two).
const MAX_ERROR_BODY: usize = 64 << 10;

/// Whether a client's id is one to keep: short, and only characters safe in logs and headers.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The middleware: tags the call, logs its outcome, and marks its answer.
pub async fn tag(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(new_id, str::to_string);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("api", request_id = %id, %method, %path);
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        // 501 is a refusal (a feature shoal does not have), not a failure of the daemon.
        if status.is_server_error() && status != axum::http::StatusCode::NOT_IMPLEMENTED {
            tracing::error!(status = status.as_u16(), elapsed_ms, "API call failed");
        } else if status.is_client_error() || status.is_server_error() {
            tracing::info!(status = status.as_u16(), elapsed_ms, "API call refused");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "API call");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, v);
    }
    if status.is_client_error() || status.is_server_error() {
        resp = with_id_in_body(resp, &id).await;
    }
    resp
}

/// `resp` with `request_id` added to its JSON object body; as it was if it is not one.
async fn with_id_in_body(resp: Response, id: &str) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        // Too large or broken: nothing sensible to pass on either way.
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("request_id".into(), id.into());
            let out = serde_json::to_vec(&map).expect("a JSON object encodes");
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(out)
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_from_clients_are_kept() {
        assert!(acceptable("req-1.a_B"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\ny"));
        assert!(!acceptable(&"a".repeat(65)));
        assert_eq!(new_id().len(), 16);
    }
}
