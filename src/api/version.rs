//! API versions: every route answers at `/path` and `/v{version}/path`; versions outside the
//! supported range are refused with Docker's texts; every response carries the server headers.

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Highest API version served (Docker 28.5). The CLI negotiates down to its own maximum.
pub const MAX_API_VERSION: &str = "1.51";
/// Lowest API version served.
pub const MIN_API_VERSION: &str = "1.24";

/// The API version a request asked for (the maximum when unversioned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// Parses `1.41`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }

    /// The newest version served.
    pub fn max() -> ApiVersion {
        Self::parse(MAX_API_VERSION).expect("valid constant")
    }

    fn min() -> ApiVersion {
        Self::parse(MIN_API_VERSION).expect("valid constant")
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        *self >= ApiVersion(major, minor)
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Splits `/v1.41/rest` into the version and `/rest`.
pub fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (ver, tail) = rest.split_at(end);
    if ver.is_empty() || !ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    Some((ver, if tail.is_empty() { "/" } else { tail }))
}

/// Middleware: strips the version prefix (recording it), checks it, adds the server headers.
pub async fn versioned(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut version = ApiVersion::max();
    if let Some((ver, rest)) = split_version(&path) {
        let Some(v) = ApiVersion::parse(ver) else {
            return with_headers(ApiError::not_found("page not found").into_response());
        };
        if v > ApiVersion::max() {
            return with_headers(
                ApiError::bad_request(format!(
                    "client version {ver} is too new. Maximum supported API version is {MAX_API_VERSION}"
                ))
                .into_response(),
            );
        }
        if v < ApiVersion::min() {
            return with_headers(
                ApiError::bad_request(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response(),
            );
        }
        version = v;
        let new_pq = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = new_pq.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            // Keep the original for the engine pass-through.
            let original = req.uri().clone();
            req.extensions_mut().insert(OriginalUri(original));
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(version);
    with_headers(next.run(req).await)
}

/// The request URI before the version prefix was stripped.
#[derive(Clone, Debug)]
pub struct OriginalUri(pub Uri);

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(MAX_API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    if let Ok(v) = HeaderValue::from_str(&format!("shoal/{} (linux)", crate::VERSION)) {
        h.insert("Server", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_and_compare() {
        assert_eq!(split_version("/v1.41/swarm"), Some(("1.41", "/swarm")));
        assert_eq!(split_version("/v1.41"), Some(("1.41", "/")));
        assert_eq!(split_version("/volumes"), None);
        assert!(ApiVersion::parse("1.41").unwrap() < ApiVersion::parse("1.100").unwrap());
        assert!(ApiVersion::parse("1.44").unwrap().at_least(1, 41));
    }
}
