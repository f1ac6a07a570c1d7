//! A small client of a shoal daemon's native API, over its API socket (unix or TCP): what the
//! `shoal` CLI uses, and what a Rust program that is not shoal can use to watch a swarm.
//!
//! Where the daemon is: `--host`, else `SHOAL_HOST`, else `SHOAL_API_SOCKET` (the daemon's own
//! variable for its socket), else [`DEFAULT_SOCKET`] (`shoal daemon`'s default). Hosts are
//! `unix:///path`, a plain `/path`, or `tcp://host:port` (`http://` too).
//!
//! Each request is one HTTP/1.1 connection: a watch holds its connection for as long as it
//! runs, and the other calls are rare. [`watcher`] turns watches into a stream that survives
//! disconnects.

pub mod watcher;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::native::watch::WatchParams;
use crate::native::wire::{code, WireError, WireMessage};

pub use watcher::{watcher, Event, WatcherConfig};

/// The socket `shoal daemon` serves on unless told otherwise (its `--api-socket` default).
pub const DEFAULT_SOCKET: &str = "/var/run/shoal.sock";
/// The variable that names the daemon to talk to.
pub const HOST_ENV: &str = "SHOAL_HOST";
/// The daemon's own variable for its socket, honoured when `SHOAL_HOST` is not set.
pub const SOCKET_ENV: &str = "SHOAL_API_SOCKET";

/// Where a daemon's API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address (`host:port`).
    Tcp(String),
}

impl Host {
    /// Parses `unix:///path`, `/path`, `tcp://host:port` or `http://host:port`.
    pub fn parse(s: &str) -> Result<Host, ClientError> {
        let bad = || {
            ClientError::BadHost(format!(
                "{s:?} is not a daemon address: use unix:///path/to/shoal.sock or tcp://host:port"
            ))
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            let addr = addr.trim_end_matches('/');
            if !addr.contains(':') || addr.contains('/') {
                return Err(bad());
            }
            return Ok(Host::Tcp(addr.to_string()));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        Err(bad())
    }

    /// The host to use: `flag` (`--host`), else `SHOAL_HOST`, else `SHOAL_API_SOCKET`, else
    /// [`DEFAULT_SOCKET`].
    pub fn resolve(flag: Option<&str>) -> Result<Host, ClientError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(h) = flag.filter(|f| !f.is_empty()) {
            return Host::parse(h);
        }
        if let Some(h) = env(HOST_ENV) {
            return Host::parse(&h);
        }
        if let Some(path) = env(SOCKET_ENV) {
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        Ok(Host::Unix(PathBuf::from(DEFAULT_SOCKET)))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Why a call failed. The messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host is malformed.
    #[error("{0}")]
    BadHost(String),
    /// Nothing answers there.
    #[error("cannot reach the shoal daemon at {host} ({cause}): is `shoal daemon` running there? Point --host or SHOAL_HOST at its API socket (scripts/run.sh and `shoal daemon` use unix:///var/run/shoal.sock by default)")]
    Connect {
        /// Where.
        host: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The daemon answered with an error (or ended a watch with one).
    #[error("{}", .error.message)]
    Api {
        /// HTTP status (200 for a watch that ended with an error line).
        status: u16,
        /// The daemon's error.
        error: WireError,
    },
    /// The connection failed or was cut.
    #[error("the connection to the shoal daemon at {host} failed: {message}")]
    Transport {
        /// Where.
        host: String,
        /// What happened.
        message: String,
    },
    /// The daemon said something this client does not understand.
    #[error("unexpected answer from the shoal daemon: {0} (is the daemon the same version as this client?)")]
    Decode(String),
    /// A watch went silent for longer than its progress interval allows.
    #[error("the watch went silent for {0:?} (no event and no progress): reconnecting")]
    Idle(Duration),
}

impl ClientError {
    /// Whether trying again later may work (the daemon restarting, a watch that fell behind or
    /// went silent); the others need a change from the caller.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Transport { .. } | ClientError::Idle(_) => {
                true
            }
            ClientError::Api { error, .. } => {
                [code::UNAVAILABLE, code::OVERFLOW, code::TIMEOUT].contains(&error.code.as_str())
            }
            ClientError::BadHost(_) | ClientError::Decode(_) => false,
        }
    }

    /// The daemon's error code, if the daemon answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

/// The revisions `GET /shoal/v1/revision` and `/wait` answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Revision {
    /// The last committed revision (for `wait`: the one waited for).
    pub revision: u64,
    /// How far the manager that answered has applied.
    pub applied: u64,
}

/// A stream of watch messages read from one connection.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<WireMessage, ClientError>> + Send>>;

/// A client of one daemon.
#[derive(Clone, Debug)]
pub struct Client {
    host: Host,
}

impl Client {
    /// A client of the daemon at `host`.
    pub fn new(host: Host) -> Self {
        Client { host }
    }

    /// Where the daemon is.
    pub fn host(&self) -> &Host {
        &self.host
    }

    fn transport(&self, e: impl fmt::Display) -> ClientError {
        ClientError::Transport {
            host: self.host.to_string(),
            message: e.to_string(),
        }
    }

    /// `GET path_and_query`; a non-2xx answer is [`ClientError::Api`].
    pub async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        self.request(hyper::Method::GET, path_and_query, None).await
    }

    /// `POST path` with a JSON body, the answer decoded as JSON; a non-2xx answer is
    /// [`ClientError::Api`].
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let body = self
            .request(hyper::Method::POST, path, Some(bytes))
            .await?
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("POST {path}: {e}")))
    }

    /// `DELETE path`, the answer decoded as JSON; a non-2xx answer is [`ClientError::Api`].
    pub async fn delete_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let body = self
            .request(hyper::Method::DELETE, path, None)
            .await?
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes();
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode(format!("DELETE {path}: {e}")))
    }

    /// One request; a non-2xx answer is [`ClientError::Api`].
    async fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        json: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let connect_error = |cause| ClientError::Connect {
            host: self.host.to_string(),
            cause,
        };
        let (mut sender, authority) = match &self.host {
            Host::Unix(path) => {
                let io = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_error)?;
                (self.handshake(io).await?, "localhost".to_string())
            }
            Host::Tcp(addr) => {
                let io = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(connect_error)?;
                let _ = io.set_nodelay(true);
                (self.handshake(io).await?, addr.clone())
            }
        };
        let mut req = hyper::Request::builder().method(method).uri(path_and_query);
        if json.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                format!("shoal/{}", crate::VERSION),
            )
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| ClientError::BadHost(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes();
        let error = serde_json::from_slice::<WireError>(&body).unwrap_or_else(|_| {
            WireError::new(
                "http",
                format!(
                    "the daemon answered {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ),
            )
        });
        Err(ClientError::Api { status, error })
    }

    async fn handshake<IO>(&self, io: IO) -> Result<http1::SendRequest<Full<Bytes>>, ClientError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.transport(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// `GET path` decoded as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self
            .get(path)
            .await?
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("GET {path}: {e}")))
    }

    /// The last committed revision and how far the daemon has applied.
    pub async fn current_revision(&self) -> Result<Revision, ClientError> {
        self.get_json("/shoal/v1/revision").await
    }

    /// Waits until the daemon has applied `revision`.
    pub async fn wait_for(
        &self,
        revision: u64,
        timeout: Duration,
    ) -> Result<Revision, ClientError> {
        self.get_json(&format!(
            "/shoal/v1/wait?revision={revision}&timeout={}ms",
            timeout.as_millis()
        ))
        .await
    }

    /// One watch connection: its messages until it ends (an error line is returned as
    /// `Ok(WireMessage::Error)`; a cut connection as an error). [`watcher`] resumes across them.
    pub async fn watch_once(&self, params: &WatchParams) -> Result<MessageStream, ClientError> {
        let resp = self
            .get(&format!("/shoal/v1/watch?{}", params.to_query()))
            .await?;
        let host = self.host.to_string();
        let state = (resp.into_body(), BytesMut::new(), host, false);
        let lines = futures::stream::unfold(state, |(mut body, mut buf, host, done)| async move {
            if done {
                return None;
            }
            loop {
                if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line = buf.split_to(end + 1);
                    let line = &line[..end];
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let m = serde_json::from_slice::<WireMessage>(line).map_err(|e| {
                        ClientError::Decode(format!(
                            "watch line {:?}: {e}",
                            String::from_utf8_lossy(line)
                        ))
                    });
                    return Some((m, (body, buf, host, false)));
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(mut data) = frame.into_data() {
                            while data.has_remaining() {
                                let chunk = data.chunk();
                                buf.extend_from_slice(chunk);
                                let n = chunk.len();
                                data.advance(n);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let e = ClientError::Transport {
                            host: host.clone(),
                            message: e.to_string(),
                        };
                        return Some((Err(e), (body, buf, host, true)));
                    }
                    None => {
                        let e = ClientError::Transport {
                            host: host.clone(),
                            message: "the daemon closed the watch".into(),
                        };
                        return Some((Err(e), (body, buf, host, true)));
                    }
                }
            }
        });
        Ok(Box::pin(lines))
    }

    /// A gRPC channel to the daemon's API socket (for `shoal_proto::watch::watch_client`).
    pub async fn grpc_channel(&self) -> Result<tonic::transport::Channel, ClientError> {
        let connect_error = |e: tonic::transport::Error| ClientError::Connect {
            host: self.host.to_string(),
            cause: std::io::Error::other(e),
        };
        match &self.host {
            Host::Unix(path) => {
                let path = path.clone();
                tonic::transport::Endpoint::from_static("http://localhost")
                    .connect_with_connector(tower::service_fn(move |_: hyper::Uri| {
                        let path = path.clone();
                        async move {
                            let io = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(io))
                        }
                    }))
                    .await
                    .map_err(connect_error)
            }
            Host::Tcp(addr) => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| ClientError::BadHost(e.to_string()))?
                .connect()
                .await
                .map_err(connect_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_and_print_back() {
        assert_eq!(
            Host::parse("unix:///tmp/shoal.sock").unwrap(),
            Host::Unix("/tmp/shoal.sock".into())
        );
        assert_eq!(
            Host::parse("/tmp/shoal.sock").unwrap(),
            Host::Unix("/tmp/shoal.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Host::parse("http://127.0.0.1:2375/").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Host::parse("unix:///tmp/x.sock").unwrap().to_string(),
            "unix:///tmp/x.sock"
        );
        for bad in ["", "unix://", "tcp://nohost", "shoal.sock", "ssh://h"] {
            let e = Host::parse(bad).unwrap_err();
            assert!(e.to_string().contains("unix:///"), "{bad}: {e}");
        }
        // A flag wins over everything.
        assert_eq!(
            Host::resolve(Some("tcp://h:1")).unwrap(),
            Host::Tcp("h:1".into())
        );
    }

    #[test]
    fn retryable_errors_are_the_ones_that_pass() {
        let api = |code: &str| ClientError::Api {
            status: 503,
            error: WireError::new(code, "x"),
        };
        assert!(api(code::OVERFLOW).is_retryable());
        assert!(api(code::UNAVAILABLE).is_retryable());
        assert!(!api(code::NOT_A_MANAGER).is_retryable());
        assert!(!api(code::INVALID_ARGUMENT).is_retryable());
        assert!(ClientError::Idle(Duration::from_secs(1)).is_retryable());
    }
}
