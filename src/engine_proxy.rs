//! The engine pass-through: on a node whose executor is a Docker Engine, shoal's API socket
//! answers the swarm routes itself and hands every other request (containers, images, exec,
//! volumes, system, ...) to the engine unchanged, so `docker ps`, `docker exec` and SDK fixtures
//! work against shoal's socket exactly as against dockerd's. Used as the axum fallback handler.
//!
//! Each request gets its own connection to the engine's unix socket: requests that hijack their
//! connection (attach, exec) or stream for hours (logs -f, events) then never hold up others,
//! and nothing is pooled that the engine might close underneath us.
//!
//! Upgraded connections (`Connection: Upgrade`, `Upgrade: tcp`: `docker run` attaching, `docker
//! exec -it`) are answered with the engine's `101` and then both sides are spliced together as
//! raw byte streams, half-closes included (the CLI closes its write side when stdin ends).

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Forwards HTTP requests to a Docker Engine's unix socket.
#[derive(Clone, Debug)]
pub struct EngineProxy {
    socket: PathBuf,
}

impl EngineProxy {
    /// A proxy to the engine listening on `socket_path` (`/var/run/docker.sock`; a
    /// `unix://` prefix is accepted).
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        let socket: PathBuf = socket_path.into();
        let socket = match socket.to_str().and_then(|s| s.strip_prefix("unix://")) {
            Some(stripped) => PathBuf::from(stripped),
            None => socket,
        };
        EngineProxy { socket }
    }

    /// The engine's socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Sends `req` (method, path with its `/v1.xx` prefix, query, headers, streamed body) to the
    /// engine and returns its response as it comes (streamed body; for an upgrade, the `101`
    /// with the two connections spliced in the background). An unreachable engine is a `502`
    /// with Docker's JSON error shape.
    pub async fn forward(&self, mut req: Request) -> Response {
        let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
        if !req.headers().contains_key(HOST) {
            // HTTP/1.1 requires one; the engine ignores its value.
            req.headers_mut()
                .insert(HOST, HeaderValue::from_static("docker"));
        }

        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) => return self.unreachable(e),
        };
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => return self.unreachable(e),
            };
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!("engine connection ended: {e}");
            }
        });

        let mut response = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => return self.unreachable(e),
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let engine_side = hyper::upgrade::on(&mut response);
            match upgrade {
                Some(client_side) => {
                    tokio::spawn(splice(client_side, engine_side));
                }
                None => tracing::warn!("the engine upgraded a request that did not ask for it"),
            }
            return response.map(|_| Body::empty());
        }
        response.map(Body::new)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> Response {
        let message = format!(
            "Cannot connect to the Docker daemon at unix://{}: {e}",
            self.socket.display()
        );
        let body = serde_json::json!({ "message": message }).to_string();
        (
            StatusCode::BAD_GATEWAY,
            [(CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// Whether the client asks to take the connection over (`Connection: Upgrade` + `Upgrade`).
fn wants_upgrade(req: &Request) -> bool {
    let connection_upgrade = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && req.headers().contains_key(UPGRADE)
}

/// Copies bytes both ways between the client's and the engine's upgraded connections until both
/// directions have ended.
async fn splice(client: hyper::upgrade::OnUpgrade, engine: hyper::upgrade::OnUpgrade) {
    let (client, engine) = match tokio::try_join!(client, engine) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut engine = TokioIo::new(engine);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut engine).await {
        tracing::debug!("upgraded connection ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::process::Output;
    use std::time::Duration;

    use axum::Router;

    use super::*;
    use crate::exec::testutil::ContainerCleanup;

    const IMAGE: &str = "shoal-test/busybox:1";
    const DEADLINE: Duration = Duration::from_secs(60);

    /// An axum server on a fresh unix socket whose only handler is the proxy to the real engine.
    struct Server {
        _dir: tempfile::TempDir,
        host: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn serve() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shoal.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let proxy = EngineProxy::new("unix:///var/run/docker.sock");
        let app = Router::new().fallback(move |req: Request| {
            let proxy = proxy.clone();
            async move { proxy.forward(req).await }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            host: format!("unix://{}", path.display()),
            _dir: dir,
            task,
        }
    }

    /// Runs the real docker CLI against `host`, feeding `stdin`.
    async fn docker(host: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("docker");
        cmd.arg("-H")
            .arg(host)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("the docker CLI");
        if let Some(data) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(data).await.unwrap();
            // Dropping it closes stdin: the CLI then half-closes the hijacked connection.
        }
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("docker {args:?} hung"))
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn text(out: &Output) -> String {
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_docker_cli_lists_and_runs_containers_through_the_proxy() {
        let server = serve().await;
        let cleanup = ContainerCleanup::new();

        let ps = docker(&server.host, &["ps", "--no-trunc"], None).await;
        assert!(text(&ps).starts_with("CONTAINER ID"), "{}", text(&ps));
        // Version negotiation went through to the engine: the server is the engine.
        let version = docker(
            &server.host,
            &["version", "--format", "{{.Server.APIVersion}}"],
            None,
        )
        .await;
        assert_eq!(text(&version).trim(), "1.41");

        // `docker run` attaches (an upgraded, hijacked connection) before it starts the container.
        let run = docker(
            &server.host,
            &[
                "run",
                "--rm",
                "--label",
                &cleanup.label(),
                IMAGE,
                "echo",
                "hi",
            ],
            None,
        )
        .await;
        assert_eq!(text(&run), "hi\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_logs_and_stdin_work_through_the_proxy() {
        let server = serve().await;
        let cleanup = ContainerCleanup::new();
        // Started on the engine directly; used through the proxy.
        let started = docker(
            "unix:///var/run/docker.sock",
            &[
                "run",
                "-d",
                "--label",
                &cleanup.label(),
                IMAGE,
                "sh",
                "-c",
                "echo logged; sleep 60",
            ],
            None,
        )
        .await;
        let id = text(&started).trim().to_owned();
        assert_eq!(id.len(), 64, "{id}");

        let exec = docker(&server.host, &["exec", &id, "echo", "hi"], None).await;
        assert_eq!(text(&exec), "hi\n");

        // Bytes flow both ways and the end of stdin reaches the container.
        let cat = docker(
            &server.host,
            &["exec", "-i", &id, "cat"],
            Some(b"ping\npong\n"),
        )
        .await;
        assert_eq!(text(&cat), "ping\npong\n");

        let logs = docker(&server.host, &["logs", &id], None).await;
        assert_eq!(text(&logs), "logged\n");

        // A followed log is a long chunked stream: each line arrives as written, and the stream
        // ends when the container does.
        let label = cleanup.label();
        let chatty = docker(
            "unix:///var/run/docker.sock",
            &[
                "run",
                "-d",
                "--label",
                &label,
                IMAGE,
                "sh",
                "-c",
                "echo a; sleep 1; echo b",
            ],
            None,
        )
        .await;
        let chatty = text(&chatty).trim().to_owned();
        let followed = docker(&server.host, &["logs", "-f", &chatty], None).await;
        assert_eq!(text(&followed), "a\nb\n");
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_a_bad_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let proxy = EngineProxy::new(dir.path().join("none.sock"));
        let req = Request::builder()
            .uri("/_ping")
            .body(Body::empty())
            .unwrap();
        let resp = proxy.forward(req).await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json["message"]
            .as_str()
            .unwrap()
            .starts_with("Cannot connect to the Docker daemon"));
    }
}
