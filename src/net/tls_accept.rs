//! Accepting TLS connections without letting one client hold up the others: each handshake
//! runs in its own task with a deadline, and finished sessions are handed over in order of
//! completion. The server configuration is asked for at every handshake, so a renewed
//! certificate applies to the next connection while existing ones carry on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completed handshakes waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// A TLS session and the client's address.
pub type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// Accepts connections on `tcp` (Nagle off) and completes their handshakes with the
/// configuration `config` gives at that moment (`None`: refuse the connection), until the
/// returned receiver is dropped. `what` names the listener in logs.
pub fn spawn_acceptor<F>(
    tcp: TcpListener,
    config: F,
    what: &'static str,
) -> mpsc::Receiver<Accepted>
where
    F: Fn() -> Option<Arc<ServerConfig>> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = tcp.accept() => a,
                _ = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "{what}: accepting a TCP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Some(config) = config() else {
                tracing::warn!(%peer, "{what}: no TLS configuration, connection refused");
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = TlsAcceptor::from(config);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(session)) => {
                        let _ = tx.send((session, peer)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "{what}: TLS handshake refused")
                    }
                    Err(_) => tracing::info!(%peer, "{what}: TLS handshake timed out"),
                }
            });
        }
    });
    rx
}
