//! Sockets between nodes: the store's peer transport (gRPC over mutual TLS).

pub mod store_peer;

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};

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
