//! The store's peer transport: [`shoal_store::Transport`] over gRPC with mutual TLS, and the
//! server side that hands requests to the local [`Store`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use shoal_proto::raft::store_peer_client::StorePeerClient;
use shoal_proto::raft::store_peer_server::{StorePeer, StorePeerServer};
use shoal_proto::raft::{PeerMessage, PeerReply, PeerRequest, SnapshotChunk};
use shoal_store::{ReplyStream, RequestStream, Rpc, Store, Transport, TransportError, WeakStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

use crate::ca::ClientTls;
use tonic::{Request, Response, Status, Streaming};

/// Snapshot chunk size on the wire.
const CHUNK: usize = 1 << 20;

/// The request metadata key that names a stream's rpc.
const STREAM_RPC_KEY: &str = "shoal-rpc";

/// A request stream as the messages of a `Stream` call. It is `Sync`, as tonic's streaming call
/// needs its body to be (a boxed stream is only `Send`); polling goes through
/// `Mutex::get_mut`, which takes no lock.
struct OutboundMessages(Mutex<RequestStream>);

impl futures::Stream for OutboundMessages {
    type Item = PeerMessage;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<PeerMessage>> {
        match self.get_mut().0.get_mut() {
            Ok(inner) => inner
                .poll_next_unpin(cx)
                .map(|body| body.map(|body| PeerMessage { body })),
            Err(_) => std::task::Poll::Ready(None),
        }
    }
}

/// Client side: one lazily connected channel per peer address, replaced for new calls once the
/// node's certificate is renewed (calls and streams already under way keep theirs).
pub struct GrpcTransport {
    tls: ClientTls,
    channels: Mutex<HashMap<String, (u64, Channel)>>,
}

impl GrpcTransport {
    /// A transport presenting this node's certificate (`tls`) to its peers.
    pub fn new(tls: impl Into<ClientTls>) -> Self {
        GrpcTransport {
            tls: tls.into(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, addr: &str) -> Result<StorePeerClient<Channel>, TransportError> {
        let mut channels = self.channels.lock().expect("channel cache lock");
        let generation = self.tls.generation();
        if let Some((_, ch)) = channels.get(addr).filter(|(g, _)| *g == generation) {
            return Ok(StorePeerClient::new(ch.clone()).max_decoding_message_size(usize::MAX));
        }
        let unreachable = |reason: String| TransportError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let (generation, tls) = self
            .tls
            .current()
            .map_err(|e| unreachable(format!("TLS configuration: {e}")))?;
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| unreachable(format!("bad address: {e}")))?
            .tls_config(tls)
            .map_err(|e| unreachable(format!("TLS configuration: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .initial_stream_window_size(crate::net::PEER_STREAM_WINDOW)
            .initial_connection_window_size(crate::net::PEER_CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let ch = endpoint.connect_lazy();
        channels.insert(addr.to_string(), (generation, ch.clone()));
        Ok(StorePeerClient::new(ch).max_decoding_message_size(usize::MAX))
    }
}

fn map_status(addr: &str, s: Status, timeout: Duration) -> TransportError {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown
            if s.message().contains("connect") || s.code() == tonic::Code::Unavailable =>
        {
            TransportError::Unreachable {
                addr: addr.to_string(),
                reason: s.message().to_string(),
            }
        }
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => TransportError::Timeout {
            addr: addr.to_string(),
            after: timeout,
        },
        _ => TransportError::Remote {
            addr: addr.to_string(),
            reason: format!("{}: {}", s.code(), s.message()),
        },
    }
}

impl Transport for GrpcTransport {
    fn call(
        &self,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let client = self.client(addr);
        let addr = addr.to_string();
        Box::pin(async move {
            let mut client = client?;
            let mut req = Request::new(PeerRequest {
                rpc: rpc.as_str().to_string(),
                body,
            });
            req.set_timeout(timeout);
            match tokio::time::timeout(timeout, client.call(req)).await {
                Ok(Ok(resp)) => Ok(resp.into_inner().body),
                Ok(Err(status)) => Err(map_status(&addr, status, timeout)),
                Err(_) => Err(TransportError::Timeout {
                    addr,
                    after: timeout,
                }),
            }
        })
    }

    fn open_stream(
        &self,
        addr: &str,
        rpc: Rpc,
        requests: RequestStream,
    ) -> BoxFuture<'static, Result<ReplyStream, TransportError>> {
        let client = self.client(addr);
        let mut req = Request::new(OutboundMessages(Mutex::new(requests)));
        req.metadata_mut().insert(
            STREAM_RPC_KEY,
            tonic::metadata::MetadataValue::from_static(rpc.as_str()),
        );
        Box::pin(open_grpc_stream(client, addr.to_string(), req))
    }

    fn send_snapshot(
        &self,
        addr: &str,
        header: Vec<u8>,
        file: PathBuf,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let client = self.client(addr);
        let addr = addr.to_string();
        Box::pin(async move {
            let mut client = client?;
            let f = tokio::fs::File::open(&file)
                .await
                .map_err(|e| TransportError::Remote {
                    addr: addr.clone(),
                    reason: format!("opening snapshot {}: {e}", file.display()),
                })?;
            let chunks = futures::stream::unfold((f, Some(header)), |(mut f, header)| async move {
                let mut buf = vec![0u8; CHUNK];
                let n = match f.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("reading snapshot: {e}");
                        return None;
                    }
                };
                if n == 0 && header.is_none() {
                    return None;
                }
                buf.truncate(n);
                Some((
                    SnapshotChunk {
                        header: header.unwrap_or_default(),
                        data: buf,
                    },
                    (f, None),
                ))
            });
            let mut req = Request::new(chunks);
            req.set_timeout(timeout);
            match tokio::time::timeout(timeout, client.install_snapshot(req)).await {
                Ok(Ok(resp)) => Ok(resp.into_inner().body),
                Ok(Err(status)) => Err(map_status(&addr, status, timeout)),
                Err(_) => Err(TransportError::Timeout {
                    addr,
                    after: timeout,
                }),
            }
        })
    }
}

/// Opens a `Stream` call. Setting it up is bounded; the stream itself lives as long as its
/// caller wants (the caller times out answers that stop coming).
async fn open_grpc_stream(
    client: Result<StorePeerClient<Channel>, TransportError>,
    addr: String,
    req: Request<OutboundMessages>,
) -> Result<ReplyStream, TransportError> {
    let mut client = client?;
    let setup = Duration::from_secs(1);
    let resp = match tokio::time::timeout(setup, client.stream(req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(status)) => return Err(map_status(&addr, status, setup)),
        Err(_) => return Err(TransportError::Timeout { addr, after: setup }),
    };
    let replies = resp
        .into_inner()
        .map(move |m| m.map(|m| m.body).map_err(|s| map_status(&addr, s, setup)));
    Ok(replies.boxed())
}

/// Server side: answers peers on behalf of the local store member. It holds the member weakly:
/// the member's owner decides when it stops, not the connections peers keep open.
#[derive(Clone)]
pub struct StorePeerService {
    store: WeakStore,
}

impl StorePeerService {
    /// A service for `store`, ready to add to a tonic server.
    pub fn server(store: Store) -> StorePeerServer<StorePeerService> {
        StorePeerServer::new(StorePeerService {
            store: store.downgrade(),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
    }

    /// The member, unless it has stopped.
    fn store(&self) -> Result<Store, Status> {
        self.store
            .upgrade()
            .ok_or_else(|| Status::unavailable("this manager's store has stopped"))
    }
}

impl StorePeerService {
    /// A manager of this swarm that is neither removed nor demoted (see `net::authz`).
    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        super::authz::authorize(req, &self.store()?, super::authz::Needs::Manager).map(|_| ())
    }
}

#[tonic::async_trait]
impl StorePeer for StorePeerService {
    type StreamStream = futures::stream::BoxStream<'static, Result<PeerMessage, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<PeerMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        self.authorize(&request)?;
        let name = request
            .metadata()
            .get(STREAM_RPC_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let rpc = Rpc::parse(&name).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown store rpc {name:?} in the {STREAM_RPC_KEY} metadata"
            ))
        })?;
        // The requests end where the peer's stream ends or breaks.
        let requests = request
            .into_inner()
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(|m| std::future::ready(m.ok().map(|m| m.body)))
            .boxed();
        let replies = self
            .store()?
            .handle_stream(rpc, requests)
            .map(|body| Ok(PeerMessage { body }));
        Ok(Response::new(replies.boxed()))
    }

    async fn call(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let rpc = Rpc::parse(&req.rpc)
            .ok_or_else(|| Status::invalid_argument(format!("unknown store rpc {:?}", req.rpc)))?;
        let body = self.store()?.handle(rpc, &req.body).await;
        Ok(Response::new(PeerReply { body }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerReply>, Status> {
        self.authorize(&request)?;
        let mut stream = request.into_inner();
        // Not held while the chunks arrive: a stalled sender must not keep the member open.
        let path = self.store()?.snapshot_receive_path();
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Status::internal(format!("creating {}: {e}", path.display())))?;
        let mut header = Vec::new();
        let result: Result<(), Status> = async {
            let mut unsynced = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if header.is_empty() && !chunk.header.is_empty() {
                    header = chunk.header;
                }
                file.write_all(&chunk.data)
                    .await
                    .map_err(|e| Status::internal(format!("writing snapshot: {e}")))?;
                // Written back as it arrives: one sync of a whole large snapshot at the end
                // holds the disk long enough to delay every Raft log sync behind it.
                unsynced += chunk.data.len();
                if unsynced >= shoal_store::raft::snapshot::SYNC_EVERY_BYTES {
                    file.sync_data()
                        .await
                        .map_err(|e| Status::internal(format!("syncing snapshot: {e}")))?;
                    unsynced = 0;
                }
            }
            file.sync_all()
                .await
                .map_err(|e| Status::internal(format!("syncing snapshot: {e}")))?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        if header.is_empty() {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(Status::invalid_argument("snapshot stream without a header"));
        }
        let store = match self.store() {
            Ok(store) => store,
            Err(stopped) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(stopped);
            }
        };
        let body = store.install_received_snapshot(&header, path).await;
        Ok(Response::new(PeerReply { body }))
    }
}

/// Serves the store peer service (and `extra` services, if any are added by the caller's router)
/// on `listener` with this node's TLS identity, until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: tonic::transport::ServerTlsConfig,
    store: Store,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = crate::net::nodelay_incoming(listener);
    crate::net::peer_server()
        .tls_config(tls)?
        .add_service(StorePeerService::server(store))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
