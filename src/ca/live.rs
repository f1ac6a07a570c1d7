//! This node's credentials as they are now, for connections made from now on.
//!
//! A node certificate is renewed in place (before it expires, and after a role change) without
//! restarting anything: TLS checks certificates only during the handshake, so connections and
//! the sessions and Raft streams on them carry on, and every **new** connection presents the
//! new certificate. [`LiveCredentials`] holds the current credentials with a generation number;
//! servers build their TLS configuration per handshake from it ([`LiveCredentials::server_config`]),
//! and clients ([`ClientTls`]) open new channels once the generation they dialled with is old.

use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::error::{CaError, CaResult};
use super::node_cert::{check_key_matches_cert, NodeCredentials};
use super::pem::certs_from_pem;
use super::tls::{install_crypto_provider, MANAGER_SERVER_NAME};
use super::verify::{ring_provider, root_store};

/// One generation of credentials with the TLS configurations made from them (built once).
struct Generation {
    number: u64,
    creds: Arc<NodeCredentials>,
    client: ClientTlsConfig,
    server: Arc<ServerConfig>,
}

/// This node's current credentials. Cheap to clone; clones share the credentials.
#[derive(Clone, Default)]
pub struct LiveCredentials {
    current: Arc<RwLock<Option<Arc<Generation>>>>,
}

impl std::fmt::Debug for LiveCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCredentials")
            .field("generation", &self.generation())
            .finish()
    }
}

impl LiveCredentials {
    /// Live credentials starting with `creds`.
    pub fn new(creds: &NodeCredentials) -> CaResult<Self> {
        let live = LiveCredentials::default();
        live.replace(creds)?;
        Ok(live)
    }

    /// Makes `creds` the current credentials (the key must be the certificate's); connections
    /// made from now on use them. An expired certificate is taken too: the node must still
    /// start, say why its connections fail and be able to join again.
    pub fn replace(&self, creds: &NodeCredentials) -> CaResult<()> {
        let chain = certs_from_pem(&creds.cert_pem)?;
        let leaf = chain
            .first()
            .ok_or_else(|| CaError::InvalidCertificate("no node certificate".into()))?;
        check_key_matches_cert(&creds.key_pem, leaf.as_ref())?;
        install_crypto_provider();
        let client = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&creds.ca_pem))
            .identity(Identity::from_pem(&creds.cert_pem, &creds.key_pem))
            .domain_name(MANAGER_SERVER_NAME);
        let mut current = self.current.write().unwrap();
        let number = current.as_ref().map_or(1, |g| g.number + 1);
        *current = Some(Arc::new(Generation {
            number,
            creds: Arc::new(creds.clone()),
            client,
            server: server_config(creds)?,
        }));
        Ok(())
    }

    fn generation_now(&self) -> CaResult<Arc<Generation>> {
        self.current
            .read()
            .unwrap()
            .clone()
            .ok_or_else(|| CaError::Tls("this node has no certificate yet (not in a swarm)".into()))
    }

    /// The current credentials.
    pub fn get(&self) -> CaResult<Arc<NodeCredentials>> {
        Ok(self.generation_now()?.creds.clone())
    }

    /// How many times the credentials were set (0: never).
    pub fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap()
            .as_ref()
            .map_or(0, |g| g.number)
    }

    /// The TLS configuration of a manager's gRPC server for a handshake starting now: the
    /// current certificate followed by the root (so a joining node learns the root from the
    /// handshake), client certificates verified against the root when presented (joining
    /// nodes have none; every RPC but the join ones authorizes its caller).
    pub fn server_config(&self) -> CaResult<Arc<ServerConfig>> {
        Ok(self.generation_now()?.server.clone())
    }
}

/// The rustls form of `tls::server_tls_config`.
fn server_config(creds: &NodeCredentials) -> CaResult<Arc<ServerConfig>> {
    install_crypto_provider();
    let mut chain = certs_from_pem(&creds.cert_pem)?;
    for ca in certs_from_pem(&creds.ca_pem)? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes())
        .map_err(|e| CaError::InvalidKey(e.to_string()))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(&creds.ca_pem)?, ring_provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| CaError::Tls(format!("building the client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| CaError::Tls(format!("the node certificate: {e}")))?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Where a client gets the TLS configuration of a new connection to a manager: fixed (tests,
/// one-off calls) or this node's live credentials.
#[derive(Clone, Debug)]
pub enum ClientTls {
    /// Always this configuration.
    Fixed(ClientTlsConfig),
    /// This node's credentials as they are when the connection is made.
    Live(LiveCredentials),
}

impl From<ClientTlsConfig> for ClientTls {
    fn from(c: ClientTlsConfig) -> Self {
        ClientTls::Fixed(c)
    }
}

impl From<LiveCredentials> for ClientTls {
    fn from(l: LiveCredentials) -> Self {
        ClientTls::Live(l)
    }
}

impl ClientTls {
    /// The configuration for a connection made now, and its generation (a channel dialled with
    /// an older generation should be replaced for new calls; fixed configurations never age).
    pub fn current(&self) -> CaResult<(u64, ClientTlsConfig)> {
        match self {
            ClientTls::Fixed(c) => Ok((0, c.clone())),
            ClientTls::Live(l) => {
                let g = l.generation_now()?;
                Ok((g.number, g.client.clone()))
            }
        }
    }

    /// The generation a new connection would use.
    pub fn generation(&self) -> u64 {
        match self {
            ClientTls::Fixed(_) => 0,
            ClientTls::Live(l) => l.generation(),
        }
    }
}
