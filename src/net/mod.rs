//! Sockets between nodes: the store's peer transport (gRPC over mutual TLS) and the
//! authorization of every inter-node RPC ([`authz`]).

pub mod authz;
pub mod store_peer;
pub mod tls_accept;

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};

/// HTTP/2 flow-control window of each stream between managers. HTTP/2's default (64 KiB) is
/// smaller than one busy AppendEntries or forwarded batch: the sender would stop mid-message
/// until the receiver's window update arrives, a round trip per 64 KiB.
pub const PEER_STREAM_WINDOW: u32 = 8 << 20;

/// HTTP/2 flow-control window of a whole connection between managers.
pub const PEER_CONNECTION_WINDOW: u32 = 32 << 20;

/// A gRPC server builder for the manager-to-manager listener, with its flow-control windows.
pub fn peer_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .initial_stream_window_size(PEER_STREAM_WINDOW)
        .initial_connection_window_size(PEER_CONNECTION_WINDOW)
}

/// The connections `listener` accepts, with Nagle's algorithm off.
///
/// tonic's `Server::tcp_nodelay` only applies to listeners tonic binds itself, not to a stream
/// handed to `serve_with_incoming`. With Nagle on, a small reply written while the peer still
/// holds back its ACK waits for the peer's delayed-ACK timer (40 ms on Linux): every Raft round
/// trip and RPC answer would risk that stall.
pub fn nodelay_incoming(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<TcpStream>> + Send + 'static {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
