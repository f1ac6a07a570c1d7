//! Certificate chain verification against the swarm root CA (webpki, via rustls).

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::error::{CaError, CaResult};
use super::node_cert::{NodeIdentity, MANAGER_ROLE_OU};
use super::pem::{certs_from_pem, first_cert_from_pem};

/// The ring crypto provider, the only one this project links.
pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls root store holding every certificate of a CA PEM bundle.
pub(crate) fn root_store(ca_pem: &str) -> CaResult<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| CaError::InvalidCertificate(format!("unusable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// Verifies a node certificate chain (leaf first, then optional intermediates) as a TLS
/// **client** certificate issued by `ca_pem`: signatures, validity period now, client-auth usage.
/// Returns the identity of the leaf.
pub(crate) fn verify_node_chain(
    chain: &[CertificateDer<'static>],
    ca_pem: &str,
) -> CaResult<NodeIdentity> {
    verify_node_chain_at(chain, ca_pem, UnixTime::now())
}

/// [`verify_node_chain`] as of `at` (to check what signed a certificate that may have expired).
pub(crate) fn verify_node_chain_at(
    chain: &[CertificateDer<'static>],
    ca_pem: &str,
    at: UnixTime,
) -> CaResult<NodeIdentity> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| CaError::InvalidCertificate("empty certificate chain".into()))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(ca_pem)?, ring_provider())
            .build()
            .map_err(|e| CaError::Tls(format!("building client verifier: {e}")))?;
    verifier
        .verify_client_cert(leaf, intermediates, at)
        .map_err(|e| CaError::Verification(e.to_string()))?;
    NodeIdentity::from_cert_der(leaf.as_ref())
}

/// Verifies that a PEM node certificate (leaf, optionally followed by intermediates) was issued by
/// the CA in `ca_pem`, is currently valid and carries a node identity, which is returned.
/// A certificate from any other CA is rejected.
pub fn verify_node_certificate(cert_pem: &str, ca_pem: &str) -> CaResult<NodeIdentity> {
    verify_node_chain(&certs_from_pem(cert_pem)?, ca_pem)
}

/// Verifies a chain a TLS server presented as a **manager** of the swarm whose root is `ca_pem`:
/// it must chain to the CA, be valid now, allow server auth and name `swarm-manager`.
pub(crate) fn verify_manager_server_chain(
    chain: &[CertificateDer<'_>],
    ca_pem: &str,
) -> CaResult<NodeIdentity> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| CaError::InvalidCertificate("server sent no certificate".into()))?;
    let verifier =
        WebPkiServerVerifier::builder_with_provider(root_store(ca_pem)?, ring_provider())
            .build()
            .map_err(|e| CaError::Tls(format!("building server verifier: {e}")))?;
    let name = ServerName::try_from(MANAGER_ROLE_OU)
        .map_err(|e| CaError::Tls(format!("server name: {e}")))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map_err(|e| CaError::Verification(e.to_string()))?;
    NodeIdentity::from_cert_der(leaf.as_ref())
}

/// True if the PEM certificate is self-signed by its own key and is a CA (basic constraints).
pub(crate) fn is_self_signed_ca(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    cert.is_ca() && cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok()
}

/// Checks that the first certificate of `ca_pem` is a self-signed CA certificate.
pub(crate) fn check_root_ca_pem(ca_pem: &str) -> CaResult<()> {
    if is_self_signed_ca(first_cert_from_pem(ca_pem)?.as_ref()) {
        Ok(())
    } else {
        Err(CaError::InvalidCertificate(
            "not a self-signed CA certificate".into(),
        ))
    }
}
