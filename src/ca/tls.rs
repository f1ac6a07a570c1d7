//! Mutual TLS for tonic: server and client configurations built from [`NodeCredentials`], the
//! unauthenticated bootstrap a joining node uses to learn the root CA, and reading/authorizing
//! the peer's identity inside gRPC handlers.

use std::sync::{Arc, Once};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt as _;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::error::{CaError, CaResult};
use super::node_cert::{role_ou, NodeCredentials, NodeIdentity, NodeRole, MANAGER_ROLE_OU};
use super::pem::{certs_from_pem, certs_to_pem};
use super::token::JoinToken;
use super::verify::{
    check_root_ca_pem, is_self_signed_ca, ring_provider, verify_manager_server_chain,
};

/// TLS server name clients use to reach a manager: a DNS SAN only manager certificates carry.
pub const MANAGER_SERVER_NAME: &str = MANAGER_ROLE_OU;
/// How long the unauthenticated root CA fetch may take (connect + handshake).
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs rustls' ring crypto provider as the process default. Idempotent and cheap; every
/// builder in this module calls it, and `main` may call it early too.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first; that one is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The TLS configuration of a manager's gRPC server.
///
/// * The server presents the node certificate **followed by the root CA certificate**, so that a
///   node that has no certificate yet can learn the root from the handshake
///   ([`fetch_root_ca`]) and check it against its join token.
/// * Client certificates are verified against the swarm root CA when presented, but are
///   **optional** (`client_auth_optional(true)`): the CA bootstrap and join RPCs
///   (`GetRootCACertificate`/`IssueNodeCertificate` in SwarmKit) must serve cert-less joiners
///   holding a token. Every other RPC must therefore call [`require_role`], which rejects requests
///   without a verified client certificate.
///
/// The credentials are checked first (certificate chains to the CA, key matches).
pub fn server_tls_config(creds: &NodeCredentials) -> CaResult<ServerTlsConfig> {
    install_crypto_provider();
    creds.verify()?;
    let mut chain = certs_from_pem(&creds.cert_pem)?;
    for ca in certs_from_pem(&creds.ca_pem)? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(certs_to_pem(&chain), &creds.key_pem))
        .client_ca_root(Certificate::from_pem(&creds.ca_pem))
        .client_auth_optional(true))
}

/// The TLS configuration of a node dialing another node with its own certificate: presents the
/// node certificate and trusts only the swarm root CA. `domain` is the name the server's
/// certificate must carry: [`MANAGER_SERVER_NAME`] (`swarm-manager`) to reach a manager.
pub fn client_tls_config(creds: &NodeCredentials, domain: &str) -> CaResult<ClientTlsConfig> {
    install_crypto_provider();
    creds.verify()?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&creds.ca_pem))
        .identity(Identity::from_pem(&creds.cert_pem, &creds.key_pem))
        .domain_name(domain))
}

/// [`client_tls_config`] with the domain `swarm-manager`.
pub fn manager_client_tls_config(creds: &NodeCredentials) -> CaResult<ClientTlsConfig> {
    client_tls_config(creds, MANAGER_SERVER_NAME)
}

/// The TLS configuration of a joining node **after** it has pinned the root CA
/// (see [`fetch_root_ca`]) but before it has a certificate: no client certificate, the server must
/// be a manager (`swarm-manager`) of that CA. Use it for the join RPC that sends the token + CSR.
pub fn pinned_ca_client_tls_config(ca_pem: &str) -> CaResult<ClientTlsConfig> {
    install_crypto_provider();
    check_root_ca_pem(ca_pem)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(MANAGER_SERVER_NAME))
}

/// A server certificate verifier that accepts **any** certificate, while still checking the
/// handshake signatures (so the peer does hold the key of the certificate it sent). Used only for
/// the bootstrap fetch of the root CA, whose result is then checked against the join token.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn accept_any_verifier() -> Arc<AcceptAnyServerCert> {
    Arc::new(AcceptAnyServerCert {
        provider: ring_provider(),
    })
}

/// A tonic endpoint to `addr` (`host:port`) over TLS that does **not** verify the server, and
/// presents no client certificate. Only for calling an RPC that returns the root CA (SwarmKit's
/// `GetRootCACertificate`), whose answer must then be checked with
/// [`JoinToken::verify_ca_pem`] before anything else is sent. Everything afterwards goes over
/// [`pinned_ca_client_tls_config`].
pub fn unverified_endpoint(addr: &str) -> CaResult<Endpoint> {
    install_crypto_provider();
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| CaError::Tls(format!("bad address {addr:?}: {e}")))?
        .connect_timeout(BOOTSTRAP_TIMEOUT)
        .tls_config_with_verifier(
            ClientTlsConfig::new().domain_name(MANAGER_SERVER_NAME),
            accept_any_verifier(),
        )
        .map_err(|e| CaError::Tls(format!("bootstrap TLS config: {e}")))
}

/// Does a TLS handshake with `addr` without verifying it and returns the chain the server sent.
async fn fetch_server_chain(addr: &str) -> CaResult<Vec<CertificateDer<'static>>> {
    install_crypto_provider();
    let config = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(accept_any_verifier())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(MANAGER_SERVER_NAME)
        .map_err(|e| CaError::Tls(e.to_string()))?
        .to_owned();
    let connect_err = |source| CaError::Connect {
        addr: addr.to_string(),
        source,
    };
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(connect_err)?;
        connector.connect(name, tcp).await.map_err(connect_err)
    };
    let mut tls = tokio::time::timeout(BOOTSTRAP_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            connect_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS bootstrap timed out",
            ))
        })??;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let _ = tls.shutdown().await;
    Ok(chain)
}

/// The root CA certificates (PEM) in a server chain: the self-signed CA certificates after the
/// leaf.
fn roots_in_chain(chain: &[CertificateDer<'static>]) -> CaResult<String> {
    let roots: Vec<_> = chain
        .iter()
        .skip(1)
        .filter(|c| is_self_signed_ca(c.as_ref()))
        .collect();
    if roots.is_empty() {
        return Err(CaError::InvalidCertificate(
            "the manager's TLS chain holds no root CA certificate".into(),
        ));
    }
    Ok(certs_to_pem(roots))
}

/// Of the roots a manager served, the ones `token` pins: all of them if the token pins the
/// bundle, else the single root whose digest it is.
fn pinned_roots(served: &str, token: &JoinToken) -> CaResult<String> {
    let whole = token.verify_ca_pem(served);
    if whole.is_ok() {
        return Ok(served.to_string());
    }
    for root in certs_from_pem(served)? {
        let one = certs_to_pem([&root]);
        if token.verify_ca_pem(&one).is_ok() {
            return Ok(one);
        }
    }
    whole.map(|()| served.to_string())
}

/// Connects to the manager at `addr` (`host:port`) **without verifying it**, and returns the root
/// CA certificate(s) (PEM) it presented after its own certificate (see [`server_tls_config`]).
/// The result is untrusted: check it with [`JoinToken::verify_ca_pem`], or use [`fetch_root_ca`]
/// which does that.
pub async fn fetch_root_ca_unverified(addr: &str) -> CaResult<String> {
    roots_in_chain(&fetch_server_chain(addr).await?)
}

/// The bootstrap of a joining node: fetches the root CA from the manager at `addr` over an
/// unverified TLS connection, accepts it only if its digest is the one pinned in `token`, and
/// checks that the server's own certificate is a manager certificate issued by that CA.
/// Returns the root CA PEM, to be used with [`pinned_ca_client_tls_config`].
///
/// During a root rotation a manager presents both roots; the token (made before the rotation
/// ends) pins the old one, and only that one is trusted: the manager's certificate chains to it
/// through the cross-signed certificate it presents, and the joining node learns the full trust
/// bundle from the swarm once it is connected to the root it pinned.
pub async fn fetch_root_ca(addr: &str, token: &JoinToken) -> CaResult<String> {
    let chain = fetch_server_chain(addr).await?;
    let served = roots_in_chain(&chain)?;
    let ca_pem = pinned_roots(&served, token)?;
    let server = verify_manager_server_chain(&chain, &ca_pem)?;
    if server.role != NodeRole::Manager {
        return Err(CaError::Verification(format!("{server} is not a manager")));
    }
    Ok(ca_pem)
}

/// The identity in the client certificate of a request, if the client presented one.
///
/// Only meaningful on a server built with [`server_tls_config`]: tonic's TLS acceptor has then
/// verified the certificate against the swarm root CA, so the CN/OU/O can be trusted. Without a
/// client certificate (a joining node), or on a plaintext server, this is `None`.
pub fn peer_identity<T>(req: &Request<T>) -> Option<NodeIdentity> {
    let certs = req.peer_certs()?;
    let leaf = certs.first()?;
    match NodeIdentity::from_cert_der(leaf.as_ref()) {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!("peer certificate has no usable node identity: {e}");
            None
        }
    }
}

fn roles_text(roles: &[NodeRole]) -> String {
    roles
        .iter()
        .map(|r| role_ou(*r))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The authorization decision behind [`require_role`], for an already extracted identity.
pub fn authorize(
    identity: Option<NodeIdentity>,
    roles: &[NodeRole],
) -> Result<NodeIdentity, Status> {
    let Some(identity) = identity else {
        return Err(Status::permission_denied(format!(
            "permission denied: this RPC requires a swarm node certificate ({}), \
             and the client presented none",
            roles_text(roles)
        )));
    };
    if !roles.contains(&identity.role) {
        return Err(Status::permission_denied(format!(
            "permission denied: node {} has role {}, this RPC requires {}",
            identity.node_id,
            identity.role_ou(),
            roles_text(roles)
        )));
    }
    Ok(identity)
}

/// Authorizes a request: the client must have presented a certificate verified against the swarm
/// root CA (see [`server_tls_config`]: client certificates are optional at the TLS level) whose
/// role is in `roles`. Returns the caller's identity, or `PermissionDenied` saying why.
/// Every RPC except the CA bootstrap/join ones must call this (or
/// [`require_role_in_cluster`]) first.
pub fn require_role<T>(req: &Request<T>, roles: &[NodeRole]) -> Result<NodeIdentity, Status> {
    authorize(peer_identity(req), roles)
}

/// [`require_role`], and the certificate's O must be `cluster_id`.
pub fn require_role_in_cluster<T>(
    req: &Request<T>,
    roles: &[NodeRole],
    cluster_id: &str,
) -> Result<NodeIdentity, Status> {
    let identity = require_role(req, roles)?;
    if identity.cluster_id != cluster_id {
        return Err(Status::permission_denied(format!(
            "permission denied: node {} belongs to cluster {}, not {}",
            identity.node_id, identity.cluster_id, cluster_id
        )));
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::root::{NodeCertSpec, RootCa};
    use crate::ca::NodeKeyRequest;
    use std::net::SocketAddr;
    use tokio::sync::{mpsc, oneshot};
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::Server;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    const CLUSTER: &str = "cluster1";

    fn creds_via_csr(ca: &RootCa, node_id: &str, role: NodeRole) -> NodeCredentials {
        let req = NodeKeyRequest::generate().unwrap();
        let spec =
            NodeCertSpec::for_node(node_id, role, CLUSTER).with_ips(["127.0.0.1".parse().unwrap()]);
        let cert = ca.issue(&req.csr_pem, &spec).unwrap();
        req.into_credentials(cert.cert_pem, ca.cert_pem()).unwrap()
    }

    struct TestServer {
        addr: SocketAddr,
        seen: mpsc::UnboundedReceiver<NodeIdentity>,
        _stop: oneshot::Sender<()>,
    }

    /// A gRPC health service behind our server TLS config; an interceptor authorizes `allowed`
    /// roles with `require_role` and reports each accepted identity.
    async fn start_server(creds: &NodeCredentials, allowed: Vec<NodeRole>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let (tx, seen) = mpsc::unbounded_channel();
        let svc = InterceptedService::new(health, move |req: Request<()>| {
            let id = require_role(&req, &allowed)?;
            let _ = tx.send(id);
            Ok(req)
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let router = Server::builder()
            .tls_config(server_tls_config(creds).unwrap())
            .unwrap()
            .add_service(svc);
        tokio::spawn(router.serve_with_incoming_shutdown(
            crate::net::nodelay_incoming(listener),
            async {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            seen,
            _stop: stop,
        }
    }

    fn endpoint(addr: SocketAddr, tls: ClientTlsConfig) -> Endpoint {
        Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .tls_config(tls)
            .unwrap()
    }

    /// Connects and calls Check; `Err(None)` is a transport failure, `Err(Some(status))` an RPC
    /// error.
    async fn health_check(ep: Endpoint) -> Result<(), Option<Status>> {
        let ch = ep.connect().await.map_err(|_| None)?;
        match HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(_) => Ok(()),
            // Our interceptor only ever answers PermissionDenied; anything else is the transport.
            Err(s) if s.code() == tonic::Code::PermissionDenied => Err(Some(s)),
            Err(_) => Err(None),
        }
    }

    #[tokio::test]
    async fn mutual_tls_end_to_end() {
        let ca = RootCa::generate().unwrap();
        let manager = creds_via_csr(&ca, "manager1", NodeRole::Manager);
        let worker = creds_via_csr(&ca, "worker1", NodeRole::Worker);
        let mut server = start_server(&manager, vec![NodeRole::Worker]).await;

        // 1. A worker certificate: TLS succeeds and the handler sees the worker's identity.
        let ep = endpoint(server.addr, manager_client_tls_config(&worker).unwrap());
        health_check(ep).await.expect("worker call succeeds");
        let seen = server.seen.try_recv().expect("interceptor saw the call");
        assert_eq!(
            seen,
            NodeIdentity::new("worker1", NodeRole::Worker, CLUSTER)
        );

        // 2. A manager certificate: TLS succeeds, require_role(&[Worker]) rejects by role.
        let ep = endpoint(server.addr, manager_client_tls_config(&manager).unwrap());
        let status = health_check(ep).await.unwrap_err().expect("an RPC error");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(
            status.message().contains("has role swarm-manager"),
            "{status}"
        );

        // 3. No client certificate (a joining node with the pinned CA): TLS succeeds,
        //    require_role rejects.
        let ep = endpoint(
            server.addr,
            pinned_ca_client_tls_config(ca.cert_pem()).unwrap(),
        );
        let status = health_check(ep).await.unwrap_err().expect("an RPC error");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("presented none"), "{status}");

        // 4. A certificate from another CA (the client trusts our CA, so only the server's
        //    client-certificate check can fail): the handshake fails, the handler never runs.
        let other_ca = RootCa::generate().unwrap();
        let foreign = creds_via_csr(&other_ca, "intruder", NodeRole::Manager);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert_pem()))
            .identity(Identity::from_pem(&foreign.cert_pem, &foreign.key_pem))
            .domain_name(MANAGER_SERVER_NAME);
        assert!(matches!(
            health_check(endpoint(server.addr, tls)).await,
            Err(None)
        ));

        // 5. A worker client that does not trust the server's CA fails too.
        let stranger = creds_via_csr(&other_ca, "w2", NodeRole::Worker);
        let ep = endpoint(server.addr, manager_client_tls_config(&stranger).unwrap());
        assert!(matches!(health_check(ep).await, Err(None)));

        // 6. A client expecting a manager must not accept a worker's certificate as server.
        let mut worker_server = start_server(&worker, vec![NodeRole::Manager]).await;
        let ep = endpoint(
            worker_server.addr,
            manager_client_tls_config(&manager).unwrap(),
        );
        assert!(matches!(health_check(ep).await, Err(None)));

        assert!(
            server.seen.try_recv().is_err(),
            "only the worker call got through"
        );
        assert!(worker_server.seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn bootstrap_fetches_and_pins_root_ca() {
        let ca = RootCa::generate().unwrap();
        let manager = creds_via_csr(&ca, "manager1", NodeRole::Manager);
        let server = start_server(&manager, vec![NodeRole::Worker, NodeRole::Manager]).await;
        let addr = server.addr.to_string();

        let unverified = fetch_root_ca_unverified(&addr).await.unwrap();
        assert_eq!(
            certs_from_pem(&unverified).unwrap(),
            certs_from_pem(ca.cert_pem()).unwrap()
        );

        let token = JoinToken::for_ca(&ca).unwrap();
        let pinned = fetch_root_ca(&addr, &token).await.unwrap();
        assert_eq!(pinned, unverified);

        let other = RootCa::generate().unwrap();
        let wrong = JoinToken::for_ca(&other).unwrap();
        let err = fetch_root_ca(&addr, &wrong).await.unwrap_err();
        assert!(matches!(err, CaError::CaDigestMismatch { .. }), "{err}");

        // The pinned CA lets the joiner reach the manager with a verified server but no client
        // cert; an unverified tonic endpoint works as well. Both are refused by require_role.
        for ep in [
            endpoint(server.addr, pinned_ca_client_tls_config(&pinned).unwrap()),
            unverified_endpoint(&addr).unwrap(),
        ] {
            let status = health_check(ep).await.unwrap_err().expect("an RPC error");
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
        }

        // Nothing listening.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        assert!(matches!(
            fetch_root_ca_unverified(&dead).await,
            Err(CaError::Connect { .. })
        ));
    }

    #[test]
    fn authorize_decisions() {
        let w = NodeIdentity::new("w", NodeRole::Worker, "c");
        let m = NodeIdentity::new("m", NodeRole::Manager, "c");
        assert_eq!(authorize(Some(w.clone()), &[NodeRole::Worker]).unwrap(), w);
        assert_eq!(
            authorize(Some(m.clone()), &[NodeRole::Worker, NodeRole::Manager]).unwrap(),
            m
        );
        let s = authorize(Some(w), &[NodeRole::Manager]).unwrap_err();
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert!(s.message().contains("requires swarm-manager"));
        let s = authorize(None, &[NodeRole::Manager]).unwrap_err();
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        // A plain request (no TLS at all) has no identity.
        let req = Request::new(());
        assert!(peer_identity(&req).is_none());
        assert!(require_role(&req, &[NodeRole::Worker]).is_err());
        assert!(require_role_in_cluster(&req, &[NodeRole::Worker], "c").is_err());
    }

    #[test]
    fn server_config_rejects_mismatched_credentials() {
        let ca = RootCa::generate().unwrap();
        let other = RootCa::generate().unwrap();
        let mut creds = ca
            .issue_credentials(&NodeCertSpec::for_node("m", NodeRole::Manager, "c"))
            .unwrap();
        creds.ca_pem = other.cert_pem().to_string();
        assert!(server_tls_config(&creds).is_err());
        assert!(pinned_ca_client_tls_config("junk").is_err());
    }
}
