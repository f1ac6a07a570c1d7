//! Who may reach the API: the listeners it is served on, with dockerd's model of access.
//!
//! Whoever can talk to the API controls the swarm (and, through the engine, the host), so:
//!
//! - the **unix socket** is owner-only (`0600`) unless a group is named
//!   (`--api-socket-group`, like dockerd's `docker` group: `0660` and that group). The socket is
//!   bound under a temporary name, given its mode and group, then renamed into place, so there
//!   is no moment where it exists with the umask's permissions;
//! - a **TCP listener** speaks TLS and requires a client certificate signed by the configured CA
//!   (dockerd's `--tlsverify --tlscacert --tlscert --tlskey`); plain HTTP on TCP only with an
//!   explicit `--insecure-tcp`. Handshakes run in their own tasks with a deadline, so a client
//!   that connects and says nothing holds up no one else.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::net::tls_accept::{spawn_acceptor, Accepted};

/// Binds the API's unix socket at `path` (replacing a stale one): mode `0600`, or `0660` and
/// owned by `group` (a name or a numeric gid) when one is given.
pub fn bind_unix(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    let gid = group.map(group_id).transpose()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} is not a socket path", path.display())))?;
    let staging = path.with_file_name(format!(
        ".{}.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    let placed = (|| {
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&staging, None, Some(gid))?;
        }
        // Replaces a stale socket from an earlier run in one step.
        std::fs::rename(&staging, path)
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    Ok(listener)
}

/// The gid of group `group` (a name from the group database, or a number).
fn group_id(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("--api-socket-group: no group named {group:?} on this host; create it (groupadd {group}) or name an existing one"),
        )),
        Err(e) => Err(io::Error::other(format!(
            "--api-socket-group: looking up group {group:?}: {e}"
        ))),
    }
}

/// The files of a TLS listener that requires client certificates (dockerd's flag names).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// `--tlscacert`: the CA that signs the clients' certificates.
    pub ca: PathBuf,
    /// `--tlscert`: the server's certificate (chain), PEM.
    pub cert: PathBuf,
    /// `--tlskey`: the server's private key, PEM.
    pub key: PathBuf,
}

impl TlsFiles {
    /// A rustls server configuration that accepts only clients with a certificate the CA
    /// signed, TLS 1.2 or 1.3 with rustls' safe defaults (forward-secret AEAD suites only).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let read_certs =
            |flag: &str, path: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!(
                        "{flag} {}: no PEM certificate in the file",
                        path.display()
                    ));
                }
                Ok(certs)
            };
        let mut roots = RootCertStore::empty();
        for ca in read_certs("--tlscacert", &self.ca)? {
            roots
                .add(ca)
                .map_err(|e| format!("--tlscacert {}: {e}", self.ca.display()))?;
        }
        let chain = read_certs("--tlscert", &self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("--tlskey {}: {e}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("--tlscacert {}: {e}", self.ca.display()))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| {
                format!(
                    "--tlscert {} and --tlskey {}: {e}",
                    self.cert.display(),
                    self.key.display()
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A TCP listener whose connections are TLS sessions with a verified client certificate.
pub struct TlsListener {
    handshaken: mpsc::Receiver<Accepted>,
    local: SocketAddr,
}

impl TlsListener {
    /// Listens on `tcp`; each connection's handshake runs in its own task.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let handshaken = spawn_acceptor(tcp, move || Some(config.clone()), "API");
        Ok(TlsListener { handshaken, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(conn) => conn,
            // The acceptor only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
