//! One socket, like dockerd: on a node whose executor is a Docker Engine, every route the API
//! does not serve itself (containers, images, exec, volumes, system...) is passed through to the
//! engine unchanged, upgraded connections included. The only rewrite is the version prefix: the
//! client negotiated against our (newer) API version, so it is lowered to what the engine speaks.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::context::ApiState;
use super::error::ApiError;
use super::version::{split_version, ApiVersion, OriginalUri};
use crate::engine_proxy::EngineProxy;

/// The engine behind the API socket.
#[derive(Clone, Debug)]
pub struct Engine {
    proxy: EngineProxy,
    max_version: ApiVersion,
}

impl Engine {
    /// Connects to the engine at `host` (`unix:///path` or a path) and learns its API version;
    /// `None` when no engine answers there.
    pub async fn connect(host: &str) -> Option<Engine> {
        let proxy = EngineProxy::new(host);
        let req = Request::builder()
            .method("GET")
            .uri("/version")
            .body(Body::empty())
            .ok()?;
        let resp = proxy.forward(req).await;
        if !resp.status().is_success() {
            return None;
        }
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let max_version = ApiVersion::parse(v["ApiVersion"].as_str()?)?;
        Some(Engine { proxy, max_version })
    }

    /// The engine's API version.
    pub fn api_version(&self) -> ApiVersion {
        self.max_version
    }

    fn rewrite(&self, uri: &Uri) -> Uri {
        let path = uri.path();
        let Some((ver, rest)) = split_version(path) else {
            return uri.clone();
        };
        let asked = ApiVersion::parse(ver).unwrap_or(self.max_version);
        let version = asked.min(self.max_version);
        let pq = match uri.query() {
            Some(q) => format!("/v{version}{rest}?{q}"),
            None => format!("/v{version}{rest}"),
        };
        pq.parse().unwrap_or_else(|_| uri.clone())
    }
}

/// Fallback for every route the API does not serve: the engine's, or `page not found`.
pub async fn fallback(State(state): State<ApiState>, mut req: Request) -> Response {
    let Some(engine) = state.engine.as_ref() else {
        return ApiError::not_found("page not found").into_response();
    };
    let original = req
        .extensions()
        .get::<OriginalUri>()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| req.uri().clone());
    *req.uri_mut() = engine.rewrite(&original);
    engine.proxy.forward(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_client_versions_are_lowered_to_the_engines() {
        let e = Engine {
            proxy: EngineProxy::new("/nonexistent"),
            max_version: ApiVersion(1, 41),
        };
        let u: Uri = "/v1.50/containers/json?all=1".parse().unwrap();
        assert_eq!(e.rewrite(&u).to_string(), "/v1.41/containers/json?all=1");
        let u: Uri = "/v1.30/images/json".parse().unwrap();
        assert_eq!(e.rewrite(&u).to_string(), "/v1.30/images/json");
        let u: Uri = "/containers/json".parse().unwrap();
        assert_eq!(e.rewrite(&u).to_string(), "/containers/json");
    }
}
