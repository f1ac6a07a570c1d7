//! What the one-node benchmarks share: a node serving the Docker API on a unix socket in a
//! temporary directory, made a single-node swarm, and a keep-alive HTTP/1.1 client for it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use serde_json::{json, Value};

use crate::agent::executor::ExecutorChoice;
use crate::api::ApiState;
use crate::node::{NodeConfig, NodeRuntime};

/// A keep-alive HTTP/1.1 connection to the API socket.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects to the API socket at `socket`.
    pub async fn connect(socket: &Path) -> anyhow::Result<Client> {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { sender })
    }

    /// One call; the status and the decoded JSON body (`Null` when empty, a string when not
    /// JSON).
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        self.call_with_headers(method, path, &[], bytes).await
    }

    /// One call with extra headers and a raw JSON body (webhooks sign the exact bytes).
    pub async fn call_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header("Content-Type", "application/json");
                b
            }
            None => Bytes::new(),
        };
        self.sender.ready().await?;
        let resp = self
            .sender
            .send_request(req.body(Full::new(bytes))?)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()))
        };
        Ok((status, v))
    }

    /// One call that must answer `want`; its decoded body.
    pub async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body).await?;
        if status != want {
            bail!("{method} {path}: expected {want}, got {status}: {v}");
        }
        Ok(v)
    }
}

/// A one-node swarm serving the Docker API on a socket in a temporary directory.
pub struct OneNode {
    /// The node.
    pub node: NodeRuntime,
    /// A client of its API socket.
    pub client: Client,
    /// The API socket.
    pub socket: std::path::PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl OneNode {
    /// Starts the node with `executor`, serves its API and runs `swarm init`.
    pub async fn start(hostname: &str, executor: ExecutorChoice) -> anyhow::Result<OneNode> {
        let dir = tempfile::tempdir()?;
        let node = NodeRuntime::start(NodeConfig {
            data_dir: dir.path().join("data"),
            hostname: Some(hostname.into()),
            executor,
            force_new_cluster: false,
        })
        .await?;
        let socket = dir.path().join("api.sock");
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let state = ApiState {
            node: node.clone(),
            engine: None,
        };
        let serve_socket = socket.clone();
        let server = tokio::spawn(async move {
            crate::api::serve_unix(state, &serve_socket, async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut client = loop {
            match Client::connect(&socket).await {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => return Err(e).context("connecting to the API socket"),
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        client
            .expect(
                "POST",
                "/v1.44/swarm/init",
                Some(json!({"ListenAddr": addr, "AdvertiseAddr": addr})),
                200,
            )
            .await?;
        Ok(OneNode {
            node,
            client,
            socket,
            stop,
            server,
            _dir: dir,
        })
    }

    /// Stops the API and the node.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        self.node.shutdown().await;
    }
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
