//! Pulling a task's image that the engine does not have, with the registry credentials its
//! service was created with (`--with-registry-auth`).
//!
//! The pull is one `POST /images/create` whose `X-Registry-Auth` header carries the credentials
//! exactly as the client sent them to the API (the CLI's base64url JSON). It is made here on a
//! connection of its own rather than through bollard, which re-encodes credentials in standard
//! base64: the engine decodes the header as base64url, so a password with `?`, `>` or `~` at
//! the wrong offset would reach the registry as no credentials at all.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::TokioIo;
use shoal_store::model::RegistryAuth;

use super::ExecError;

/// Where the engine listens, for the pull's own connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum EngineAddr {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl EngineAddr {
    /// The address of `--docker-host` (`unix:///path`, a bare socket path, `tcp://host:port`,
    /// `http://host:port`); `None` for what bollard cannot reach either.
    pub(super) fn parse(host: &str) -> Option<EngineAddr> {
        if host.starts_with('/') {
            return Some(EngineAddr::Unix(PathBuf::from(host)));
        }
        if let Some(path) = host.strip_prefix("unix://") {
            return Some(EngineAddr::Unix(PathBuf::from(path)));
        }
        let rest = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        (!authority.is_empty()).then(|| EngineAddr::Tcp(authority.to_owned()))
    }
}

/// Whether `image` names an image by its id (`sha256:<hex>`), which no registry serves.
pub(super) fn is_image_id(image: &str) -> bool {
    image
        .strip_prefix("sha256:")
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The engine's `fromImage` and `tag` for `image`: the repository, and its digest, else its
/// tag, else `latest` (an empty tag would pull every tag of the repository).
pub(super) fn pull_reference(image: &str) -> (String, String) {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A tag is what follows the last `:` after the last `/` (`host:5000/repo` has none).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
        None => (name, ""),
    };
    let tag = match digest {
        Some(d) => d,
        None if tag.is_empty() => "latest",
        None => tag,
    };
    (repository.to_owned(), tag.to_owned())
}

/// Pulls `image` through the engine at `addr`, which speaks API `api_version`, with `auth` (none:
/// anonymous). A registry's refusal (unknown repository, bad credentials, unreachable registry)
/// is final; an engine that cannot be reached or hangs up is temporary.
pub(super) async fn pull(
    addr: &EngineAddr,
    api_version: &str,
    image: &str,
    auth: &RegistryAuth,
    timeout: Duration,
) -> Result<(), ExecError> {
    let (repository, tag) = pull_reference(image);
    let path = format!(
        "/v{api_version}/images/create?fromImage={}&tag={}",
        percent_encode(&repository),
        percent_encode(&tag)
    );
    let unreachable = |e: &dyn std::fmt::Display| {
        ExecError::Temporary(format!(
            "pulling {image}: cannot reach the Docker engine: {e}"
        ))
    };
    let response = tokio::time::timeout(timeout, post(addr, &path, auth))
        .await
        .map_err(|_| unreachable(&"the engine did not answer"))?
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(refused(image, &engine_message(&text)));
    }
    // Progress lines until the pull ends; a failed pull ends with an error line.
    let mut pending = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ExecError::Temporary(format!("pulling {image}: the engine hung up: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line = pending.split_to(end + 1);
            if let Some(error) = progress_error(&line) {
                return Err(refused(image, &error));
            }
        }
    }
    match progress_error(pending.chunk()) {
        Some(error) => Err(refused(image, &error)),
        None => Ok(()),
    }
}

/// The task's rejection for a pull the engine (or its registry) refused, in the engine's words.
fn refused(image: &str, message: &str) -> ExecError {
    ExecError::Rejected(format!("pulling {image}: {message}"))
}

async fn post(
    addr: &EngineAddr,
    path: &str,
    auth: &RegistryAuth,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = hyper::Request::post(path).header(hyper::header::HOST, "docker");
    if !auth.is_empty() {
        request = request.header("X-Registry-Auth", auth.0.as_str());
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let mut sender = match addr {
        EngineAddr::Unix(socket) => {
            handshake(tokio::net::UnixStream::connect(socket).await?).await?
        }
        EngineAddr::Tcp(authority) => {
            handshake(tokio::net::TcpStream::connect(authority.as_str()).await?).await?
        }
    };
    Ok(sender.send_request(request).await?)
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("engine connection of a pull ended: {e}");
        }
    });
    Ok(sender)
}

/// The error of a progress line (`{"errorDetail":{"message":…},"error":…}`), if it is one.
fn progress_error(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let detail = v.pointer("/errorDetail/message").and_then(|m| m.as_str());
    detail
        .or_else(|| v.get("error").and_then(|m| m.as_str()))
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

/// The message of an engine's error answer (`{"message":…}`), else its text.
fn engine_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// `s` as a query value: everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::Full;
    use hyper::service::service_fn;

    use super::*;

    #[test]
    fn references_split_into_repository_and_tag_or_digest() {
        let cases = [
            ("busybox", "busybox", "latest"),
            ("busybox:1.36", "busybox", "1.36"),
            (
                "127.0.0.1:5000/shoal/busybox",
                "127.0.0.1:5000/shoal/busybox",
                "latest",
            ),
            (
                "127.0.0.1:5000/shoal/busybox:1",
                "127.0.0.1:5000/shoal/busybox",
                "1",
            ),
            ("repo@sha256:abc", "repo", "sha256:abc"),
            (
                "host:5000/repo:1@sha256:abc",
                "host:5000/repo",
                "sha256:abc",
            ),
        ];
        for (image, repository, tag) in cases {
            assert_eq!(
                pull_reference(image),
                (repository.to_owned(), tag.to_owned()),
                "{image}"
            );
        }
        assert!(is_image_id(
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(!is_image_id("busybox") && !is_image_id("sha256:"));
        assert_eq!(
            percent_encode("host:5000/a_b@sha256:x"),
            "host%3A5000%2Fa_b%40sha256%3Ax"
        );
    }

    #[test]
    fn engine_addresses() {
        assert_eq!(
            EngineAddr::parse("unix:///var/run/docker.sock"),
            Some(EngineAddr::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            EngineAddr::parse("/run/d.sock"),
            Some(EngineAddr::Unix("/run/d.sock".into()))
        );
        assert_eq!(
            EngineAddr::parse("tcp://10.0.0.1:2375"),
            Some(EngineAddr::Tcp("10.0.0.1:2375".into()))
        );
        assert_eq!(EngineAddr::parse("ssh://host"), None);
    }

    #[test]
    fn progress_errors_are_found() {
        assert_eq!(
            progress_error(br#"{"status":"Pulling fs layer","id":"abc"}"#),
            None
        );
        assert_eq!(
            progress_error(
                br#"{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}"#
            ),
            Some("unauthorized: authentication required".into())
        );
        assert_eq!(engine_message(br#"{"message":"no such"}"#), "no such");
        assert_eq!(engine_message(b"plain\n"), "plain");
    }

    /// A fake engine on a unix socket: records each request's path and `X-Registry-Auth`, and
    /// answers with `status` and `body`.
    async fn fake_engine(
        status: u16,
        body: &'static str,
    ) -> (
        tempfile::TempDir,
        EngineAddr,
        Arc<Mutex<Vec<(String, String)>>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let auth = req
                        .headers()
                        .get("X-Registry-Auth")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    record.lock().unwrap().push((req.uri().to_string(), auth));
                    let response = hyper::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (dir, EngineAddr::Unix(socket), seen)
    }

    #[tokio::test]
    async fn a_pull_sends_the_clients_credentials_verbatim_and_reports_the_registrys_error() {
        // `?` makes standard and url-safe base64 differ: the header must be the client's own.
        let auth = RegistryAuth("eyJwYXNzd29yZCI6Ij8_In0=".into());
        let progress = concat!(
            "{\"status\":\"Pulling from shoal/busybox\",\"id\":\"1\"}\r\n",
            "{\"status\":\"Status: Downloaded newer image for 127.0.0.1:5000/shoal/busybox:1\"}\r\n"
        );
        let (_dir, addr, seen) = fake_engine(200, progress).await;
        let image = "127.0.0.1:5000/shoal/busybox:1";
        let timeout = Duration::from_secs(10);
        pull(&addr, "1.41", image, &auth, timeout).await.unwrap();
        assert_eq!(
            seen.lock().unwrap().clone(),
            [(
                "/v1.41/images/create?fromImage=127.0.0.1%3A5000%2Fshoal%2Fbusybox&tag=1"
                    .to_owned(),
                auth.0.clone()
            )]
        );

        let failed = concat!(
            "{\"status\":\"Pulling from shoal/busybox\",\"id\":\"1\"}\n",
            "{\"errorDetail\":{\"message\":\"unauthorized: authentication required\"},",
            "\"error\":\"unauthorized: authentication required\"}"
        );
        let (_dir, addr, seen) = fake_engine(200, failed).await;
        let err = pull(&addr, "1.41", image, &RegistryAuth::default(), timeout)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ExecError::Rejected(format!(
                "pulling {image}: unauthorized: authentication required"
            ))
        );
        assert_eq!(seen.lock().unwrap()[0].1, "", "no credentials, no header");

        let (_dir, addr, _) = fake_engine(404, r#"{"message":"pull access denied for x"}"#).await;
        let err = pull(&addr, "1.41", "x", &auth, timeout).await.unwrap_err();
        assert_eq!(
            err,
            ExecError::Rejected("pulling x: pull access denied for x".into())
        );

        let gone = EngineAddr::Unix("/nonexistent/engine.sock".into());
        let err = pull(&gone, "1.41", "x", &auth, timeout).await.unwrap_err();
        assert!(err.is_temporary(), "{err}");
    }
}
