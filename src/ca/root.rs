//! The swarm root CA: creation, loading, digest, and signing node certificates.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rand::rngs::OsRng;
use rand::TryRngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::error::{CaError, CaResult};
use super::node_cert::{
    check_key_matches_cert, NodeCertInfo, NodeCredentials, NodeIdentity, NodeRole, NODE_SAN,
};
use super::pem::{certs_from_pem, der_to_pem};
use super::verify::{is_self_signed_ca, verify_node_certificate};

/// Common name of every swarm root CA certificate.
pub const ROOT_CA_CN: &str = "swarm-ca";
/// Validity of a new root CA: 20 years.
pub const ROOT_CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Default validity of node certificates: 90 days (SwarmKit's default `NodeCertExpiry`).
pub const DEFAULT_NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Every certificate's `notBefore` is set this far in the past, to tolerate clock skew.
pub const CERT_BACKDATE: Duration = Duration::from_secs(3600);

/// The shortest node certificate validity a swarm may ask for: 1 h, as SwarmKit's
/// `MinNodeCertExpiration`. Debug builds (the test suite) honour `SHOAL_TEST_MIN_CERT_EXPIRY`
/// (seconds) instead, so renewals can be watched in seconds; release builds ignore it.
pub fn min_node_cert_expiry() -> Duration {
    if cfg!(debug_assertions) {
        if let Some(secs) = std::env::var("SHOAL_TEST_MIN_CERT_EXPIRY")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            return Duration::from_secs(secs);
        }
    }
    Duration::from_secs(3600)
}

/// Checks a swarm's CA settings (`new`, replacing `old` on an update) against what this CA
/// does; the error says what is wrong and what to do.
pub fn check_ca_config(
    new: &shoal_store::model::CAConfig,
    old: Option<&shoal_store::model::CAConfig>,
) -> Result<(), String> {
    let min = min_node_cert_expiry();
    if new.node_cert_expiry != 0
        && (new.node_cert_expiry < 0 || (new.node_cert_expiry as u128) < min.as_nanos())
    {
        return Err(format!(
            "minimum certificate expiry time is: {}",
            go_duration(min)
        ));
    }
    if !new.external_cas.is_empty() {
        return Err("external CAs are not supported: node certificates are signed by the swarm's own root CA; remove --external-ca".into());
    }
    let given = (
        !new.signing_ca_cert.is_empty(),
        !new.signing_ca_key.is_empty(),
    );
    if old.is_none() && (given.0 || given.1) {
        return Err("a root CA of your own is set with `docker swarm ca --rotate --ca-cert --ca-key` once the swarm exists; `swarm init` makes one".into());
    }
    match given {
        (true, false) => return Err("--ca-cert without --ca-key: an external signer is not supported, give the root CA's key too".into()),
        (false, true) => return Err("--ca-key without --ca-cert: give the root CA's certificate too".into()),
        (true, true) => {
            RootCa::from_pem(&new.signing_ca_cert, &new.signing_ca_key)
                .map_err(|e| format!("the new root CA (--ca-cert, --ca-key): {e}"))?;
        }
        (false, false) => {}
    }
    Ok(())
}

/// Whether an update of the swarm's CA settings from `old` to `new` asks for a root rotation
/// (`docker swarm ca --rotate` bumps `ForceRotate`; `--ca-cert --ca-key` give the new root).
pub fn rotation_requested(
    new: &shoal_store::model::CAConfig,
    old: &shoal_store::model::CAConfig,
) -> bool {
    !new.signing_ca_cert.is_empty() || new.force_rotate != old.force_rotate
}

/// A duration as Go prints it (`1h0m0s`, `30s`), as dockerd's messages show them.
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// What the CA puts in a node certificate. The CA decides all of it; nothing comes from the CSR
/// except the public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCertSpec {
    /// CN (node id), OU (role), O (cluster id).
    pub identity: NodeIdentity,
    /// Extra IP address SANs (the node's advertise/listen addresses).
    pub ips: Vec<IpAddr>,
    /// Validity from now (the certificate is also backdated by [`CERT_BACKDATE`]).
    pub validity: Duration,
}

impl NodeCertSpec {
    /// A spec with no IP SANs and the default validity of 90 days.
    pub fn new(identity: NodeIdentity) -> Self {
        Self {
            identity,
            ips: Vec::new(),
            validity: DEFAULT_NODE_CERT_VALIDITY,
        }
    }

    /// A spec for `node_id` with `role` in `cluster_id`, default validity, no IP SANs.
    pub fn for_node(node_id: &str, role: NodeRole, cluster_id: &str) -> Self {
        Self::new(NodeIdentity::new(node_id, role, cluster_id))
    }

    /// Sets the IP address SANs.
    #[must_use]
    pub fn with_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.ips = ips.into_iter().collect();
        self
    }

    /// Sets the validity.
    #[must_use]
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// The DNS SANs of the certificate: the role name (`swarm-manager` / `swarm-worker`),
    /// `swarm-node`, and the node id.
    pub fn dns_names(&self) -> Vec<String> {
        vec![
            self.identity.role_ou().to_string(),
            NODE_SAN.to_string(),
            self.identity.node_id.clone(),
        ]
    }
}

/// A node certificate the CA just signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCertificate {
    /// The certificate (PEM, leaf only).
    pub cert_pem: String,
    /// Identity, validity and serial, as written into the certificate.
    pub info: NodeCertInfo,
}

/// The swarm's root certificate authority: a self-signed ECDSA P-256 certificate (CN `swarm-ca`)
/// and its private key. Held by managers (stored in the cluster object) and used to sign node
/// certificates.
pub struct RootCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Clone for RootCa {
    fn clone(&self) -> Self {
        // Both PEMs were validated when `self` was built, so re-loading cannot fail in practice.
        Self::from_pem(&self.cert_pem, &self.key_pem).expect("re-loading a valid root CA")
    }
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::from(shoal_store::clock::now())
}

fn random_serial() -> CaResult<SerialNumber> {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| CaError::Tls(format!("system RNG: {e}")))?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // never zero, constant length
    Ok(SerialNumber::from_slice(&bytes))
}

fn add_duration(t: OffsetDateTime, d: Duration) -> CaResult<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .ok_or_else(|| CaError::InvalidCertificate(format!("validity {d:?} is out of range")))
}

fn sub_duration(t: OffsetDateTime, d: Duration) -> CaResult<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .ok_or_else(|| CaError::InvalidCertificate(format!("backdate {d:?} is out of range")))
}

/// What a root CA certificate says of itself: a CA for anything below it, signing
/// certificates and revocation lists, valid from `not_before` to `not_after`, a random serial.
fn root_params(
    dn: DistinguishedName,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CaResult<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn check_id(what: &str, id: &str) -> CaResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(CaError::InvalidIdentity(format!(
            "{what} {id:?} must be 1-64 characters of [A-Za-z0-9._-]"
        )))
    }
}

impl RootCa {
    /// Creates a new root CA: fresh ECDSA P-256 key, CN `swarm-ca`, valid 20 years from one hour
    /// ago.
    pub fn generate() -> CaResult<Self> {
        let key = KeyPair::generate()?;
        let now = now_utc();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ROOT_CA_CN);
        let params = root_params(
            dn,
            sub_duration(now, CERT_BACKDATE)?,
            add_duration(now, ROOT_CA_VALIDITY)?,
        )?;
        let cert = params.self_signed(&key)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a root CA from its PEM certificate and PEM (PKCS#8) private key, checking that the
    /// certificate is a self-signed CA and that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> CaResult<Self> {
        let mut certs = certs_from_pem(cert_pem)?;
        if certs.len() != 1 {
            return Err(CaError::InvalidCertificate(format!(
                "a root CA PEM must hold exactly one certificate, found {}",
                certs.len()
            )));
        }
        let cert_der = certs.swap_remove(0);
        if !is_self_signed_ca(cert_der.as_ref()) {
            return Err(CaError::InvalidCertificate(
                "the root CA certificate is not a self-signed CA certificate".into(),
            ));
        }
        check_key_matches_cert(key_pem, cert_der.as_ref())?;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert_der.as_ref())
            .map_err(|e| CaError::InvalidCertificate(format!("cannot parse X.509: {e}")))?;
        let not_after = parsed.validity().not_after.to_datetime();
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::InvalidKey(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Self {
            cert_pem: der_to_pem("CERTIFICATE", cert_der.as_ref()),
            cert_der,
            key_pem: key_pem.to_string(),
            not_after,
            issuer,
        })
    }

    /// The CA certificate, PEM. This is what nodes trust (`swarm-root-ca.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// The CA private key, PKCS#8 PEM. Secret: only for persisting in the cluster object.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// End of the CA certificate's validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after.into()
    }

    /// SHA-256 of the DER CA certificate, as 32 bytes. Join tokens carry this digest.
    pub fn digest_bytes(&self) -> [u8; 32] {
        Sha256::digest(self.cert_der.as_ref()).into()
    }

    /// SHA-256 of the DER CA certificate, lowercase hex (64 characters).
    pub fn digest(&self) -> String {
        hex::encode(self.digest_bytes())
    }

    /// Signs a node certificate for the key in a PEM CSR. The CSR's self-signature is checked
    /// (proof that the requester holds the key), then **everything but the public key is
    /// ignored**: subject, SANs, usages and validity are what `spec` and the CA decide.
    pub fn issue(&self, csr_pem: &str, spec: &NodeCertSpec) -> CaResult<NodeCertificate> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::InvalidCsr(e.to_string()))?;
        self.sign(&csr.public_key, spec)
    }

    /// Signs a node certificate for a public key given as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    /// Prefer [`RootCa::issue`] with a CSR, which also proves possession of the private key.
    pub fn issue_for_public_key(
        &self,
        public_key_pem: &str,
        spec: &NodeCertSpec,
    ) -> CaResult<NodeCertificate> {
        let spki = SubjectPublicKeyInfo::from_pem(public_key_pem)
            .map_err(|e| CaError::InvalidKey(e.to_string()))?;
        self.sign(&spki, spec)
    }

    /// Generates a key locally and issues a certificate for it: full credentials for a node whose
    /// key may be made by the CA holder itself (the first manager at `swarm init`).
    pub fn issue_credentials(&self, spec: &NodeCertSpec) -> CaResult<NodeCredentials> {
        let key = KeyPair::generate()?;
        let cert = self.sign(&key, spec)?;
        Ok(NodeCredentials {
            cert_pem: cert.cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }

    /// Verifies that a PEM node certificate was issued by this CA and is valid now; returns its
    /// identity. See [`verify_node_certificate`].
    pub fn verify(&self, cert_pem: &str) -> CaResult<NodeIdentity> {
        verify_node_certificate(cert_pem, &self.cert_pem)
    }

    /// `new`'s certificate signed by this root: the same subject and key as `new`'s, issued by
    /// this root. During a rotation it goes with every certificate `new` signs, so a node that
    /// trusts only this root still accepts them (leaf, then this, then this root).
    pub fn cross_sign(&self, new: &RootCa) -> CaResult<String> {
        let (_, parsed) = x509_parser::parse_x509_certificate(new.cert_der.as_ref())
            .map_err(|e| CaError::InvalidCertificate(format!("cannot parse X.509: {e}")))?;
        let mut dn = DistinguishedName::new();
        for attr in parsed.subject().iter_attributes() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .map(|arcs| arcs.collect())
                .unwrap_or_default();
            let value = attr
                .as_str()
                .map_err(|e| CaError::InvalidCertificate(format!("the new root's subject: {e}")))?;
            dn.push(DnType::from_oid(&oid), value);
        }
        // Not past the signing root's own end: nothing it signs is valid after that.
        let params = root_params(
            dn,
            parsed.validity().not_before.to_datetime(),
            parsed
                .validity()
                .not_after
                .to_datetime()
                .min(self.not_after),
        )?;
        let key =
            KeyPair::from_pem(&new.key_pem).map_err(|e| CaError::InvalidKey(e.to_string()))?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(cert.pem())
    }

    fn sign(
        &self,
        public_key: &impl PublicKeyData,
        spec: &NodeCertSpec,
    ) -> CaResult<NodeCertificate> {
        check_id("node id", &spec.identity.node_id)?;
        check_id("cluster id", &spec.identity.cluster_id)?;
        if spec.validity.is_zero() {
            return Err(CaError::InvalidCertificate(
                "node certificate validity must be positive".into(),
            ));
        }
        let now = now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = spec.identity.distinguished_name();
        params.subject_alt_names = spec
            .dns_names()
            .into_iter()
            .map(|n| n.try_into().map(SanType::DnsName))
            .collect::<Result<Vec<_>, _>>()?;
        params
            .subject_alt_names
            .extend(spec.ips.iter().copied().map(SanType::IpAddress));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = sub_duration(now, CERT_BACKDATE)?;
        // Never outlive the CA: a certificate past its issuer's expiry would not verify anyway.
        params.not_after = add_duration(now, spec.validity)?.min(self.not_after);
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(public_key, &self.issuer)?;
        let info = NodeCertInfo::from_der(cert.der().as_ref())?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::node_cert::NodeKeyRequest;

    fn san_dns_and_ips(cert_pem: &str) -> (Vec<String>, Vec<String>) {
        let der = crate::ca::pem::first_cert_from_pem(cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => ips.push(hex::encode(b)),
                _ => {}
            }
        }
        (dns, ips)
    }

    #[test]
    fn root_ca_shape() {
        let ca = RootCa::generate().unwrap();
        let der = ca.cert_der();
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        assert!(cert.is_ca());
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, vec!["swarm-ca"]);
        let v = cert.validity();
        let lifetime = v.not_after.timestamp() - v.not_before.timestamp();
        let expected = (ROOT_CA_VALIDITY + CERT_BACKDATE).as_secs() as i64;
        assert!((lifetime - expected).abs() < 5, "lifetime {lifetime}");
        assert!(v.not_before.timestamp() < OffsetDateTime::now_utc().unix_timestamp() - 3000);
        assert_eq!(ca.digest().len(), 64);
        assert_eq!(ca.digest(), hex::encode(Sha256::digest(der)));
    }

    #[test]
    fn root_ca_reloads_from_pem() {
        let ca = RootCa::generate().unwrap();
        let again = RootCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(ca.digest(), again.digest());
        // A certificate issued by the reloaded CA verifies against the original certificate.
        let creds = again
            .issue_credentials(&NodeCertSpec::for_node("n1", NodeRole::Worker, "c1"))
            .unwrap();
        assert_eq!(ca.verify(&creds.cert_pem).unwrap().node_id, "n1");
        // Mismatched key is rejected.
        let other = RootCa::generate().unwrap();
        assert!(matches!(
            RootCa::from_pem(ca.cert_pem(), other.key_pem()),
            Err(CaError::InvalidKey(_))
        ));
        // A node certificate is not a CA.
        assert!(RootCa::from_pem(&creds.cert_pem, &creds.key_pem).is_err());
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn issue_manager_and_worker_from_csr() {
        let ca = RootCa::generate().unwrap();
        for (role, ou, role_san) in [
            (NodeRole::Manager, "swarm-manager", "swarm-manager"),
            (NodeRole::Worker, "swarm-worker", "swarm-worker"),
        ] {
            let req = NodeKeyRequest::generate().unwrap();
            let spec = NodeCertSpec::for_node("node1abc", role, "cluster9")
                .with_ips(["10.0.0.5".parse().unwrap()])
                .with_validity(Duration::from_secs(7 * 24 * 3600));
            let issued = ca.issue(&req.csr_pem, &spec).unwrap();
            assert_eq!(issued.info.identity, spec.identity);
            let lifetime = issued
                .info
                .not_after
                .duration_since(issued.info.not_before)
                .unwrap();
            assert!(
                lifetime.as_secs().abs_diff(7 * 24 * 3600 + 3600) < 5,
                "{lifetime:?}"
            );

            let creds = req
                .into_credentials(issued.cert_pem, ca.cert_pem())
                .unwrap();
            let id = creds.verify().unwrap();
            assert_eq!(id.node_id, "node1abc");
            assert_eq!(id.role, role);
            assert_eq!(id.role_ou(), ou);
            assert_eq!(id.cluster_id, "cluster9");

            let (dns, ips) = san_dns_and_ips(&creds.cert_pem);
            assert!(dns.contains(&role_san.to_string()));
            assert!(dns.contains(&"swarm-node".to_string()));
            assert!(dns.contains(&"node1abc".to_string()));
            if role == NodeRole::Worker {
                assert!(!dns.contains(&"swarm-manager".to_string()));
            }
            assert_eq!(ips, vec!["0a000005".to_string()]);
        }
    }

    #[test]
    fn csr_subject_is_ignored() {
        let ca = RootCa::generate().unwrap();
        // A CSR that asks to be a manager named "evil" in another cluster.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["swarm-manager".to_string()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "evil");
        dn.push(DnType::OrganizationalUnitName, "swarm-manager");
        dn.push(DnType::OrganizationName, "other-cluster");
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let issued = ca
            .issue(
                &csr,
                &NodeCertSpec::for_node("w1", NodeRole::Worker, "mycluster"),
            )
            .unwrap();
        assert_eq!(
            issued.info.identity,
            NodeIdentity::new("w1", NodeRole::Worker, "mycluster")
        );
        let (dns, _) = san_dns_and_ips(&issued.cert_pem);
        assert!(!dns.contains(&"swarm-manager".to_string()));
    }

    #[test]
    fn bad_csr_and_ids_are_rejected() {
        let ca = RootCa::generate().unwrap();
        let spec = NodeCertSpec::for_node("n", NodeRole::Worker, "c");
        assert!(matches!(
            ca.issue("not a csr", &spec),
            Err(CaError::InvalidCsr(_))
        ));
        let req = NodeKeyRequest::generate().unwrap();
        let bad = NodeCertSpec::for_node("has space", NodeRole::Worker, "c");
        assert!(matches!(
            ca.issue(&req.csr_pem, &bad),
            Err(CaError::InvalidIdentity(_))
        ));
    }

    #[test]
    fn issue_for_public_key_pem() {
        let ca = RootCa::generate().unwrap();
        let key = KeyPair::generate().unwrap();
        let issued = ca
            .issue_for_public_key(
                &key.public_key_pem(),
                &NodeCertSpec::for_node("m1", NodeRole::Manager, "c"),
            )
            .unwrap();
        check_key_matches_cert(
            &key.serialize_pem(),
            crate::ca::pem::first_cert_from_pem(&issued.cert_pem)
                .unwrap()
                .as_ref(),
        )
        .unwrap();
    }

    #[test]
    fn certificate_from_another_ca_is_rejected() {
        let ca_a = RootCa::generate().unwrap();
        let ca_b = RootCa::generate().unwrap();
        let creds_b = ca_b
            .issue_credentials(&NodeCertSpec::for_node("n1", NodeRole::Manager, "c"))
            .unwrap();
        assert!(ca_b.verify(&creds_b.cert_pem).is_ok());
        assert!(matches!(
            ca_a.verify(&creds_b.cert_pem),
            Err(CaError::Verification(_))
        ));
        let mixed = NodeCredentials {
            ca_pem: ca_a.cert_pem().to_string(),
            ..creds_b
        };
        assert!(mixed.verify().is_err());
    }

    #[test]
    fn node_cert_never_outlives_ca() {
        let ca = RootCa::generate().unwrap();
        let spec = NodeCertSpec::for_node("n1", NodeRole::Worker, "c")
            .with_validity(Duration::from_secs(100 * 365 * 24 * 3600));
        let cert = ca.issue_credentials(&spec).unwrap();
        assert!(cert.info().unwrap().not_after <= ca.not_after());
    }

    #[test]
    fn certificates_of_a_new_root_verify_against_the_old_root_through_the_cross_signed_one() {
        let old = RootCa::generate().unwrap();
        let new = RootCa::generate().unwrap();
        let cross = old.cross_sign(&new).unwrap();
        let key = NodeKeyRequest::generate().unwrap();
        let leaf = new
            .issue(
                &key.csr_pem,
                &NodeCertSpec::for_node("n1", NodeRole::Worker, "c1"),
            )
            .unwrap();
        let chain = format!("{}{}", leaf.cert_pem, cross);
        // A node that trusts only the old root, one that trusts only the new, one that trusts both.
        for roots in [
            old.cert_pem().to_string(),
            new.cert_pem().to_string(),
            format!("{}{}", old.cert_pem(), new.cert_pem()),
        ] {
            let id = verify_node_certificate(&chain, &roots).unwrap();
            assert_eq!(id.node_id, "n1");
        }
        // Without the cross-signed certificate, the old root does not accept it.
        assert!(verify_node_certificate(&leaf.cert_pem, old.cert_pem()).is_err());
        // A third root accepts neither.
        let other = RootCa::generate().unwrap();
        assert!(verify_node_certificate(&chain, other.cert_pem()).is_err());
    }
}
