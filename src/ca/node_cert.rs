//! A node's identity, the credentials it keeps on disk, and the key + CSR a joining node makes.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use x509_parser::certificate::X509Certificate;

pub use shoal_store::model::NodeRole;

use super::error::{CaError, CaResult};
use super::key_file::{self, StoreKeys};
use super::pem::{certs_from_pem, first_cert_from_pem};
use super::token::UnlockKey;
use super::verify::verify_node_chain;

/// Certificate OU of managers; also the DNS SAN managers carry and the TLS server name clients
/// use to reach a manager.
pub const MANAGER_ROLE_OU: &str = "swarm-manager";
/// Certificate OU of workers; also a DNS SAN of worker certificates.
pub const WORKER_ROLE_OU: &str = "swarm-worker";
/// DNS SAN every node certificate carries, whatever its role.
pub const NODE_SAN: &str = "swarm-node";

/// Directory (under the node's swarm state directory) holding the TLS credentials.
pub const CERTIFICATES_DIR: &str = "certificates";
/// File name of the node certificate (PEM) inside [`CERTIFICATES_DIR`].
pub const NODE_CERT_FILE: &str = "swarm-node.crt";
/// File name of the node private key (PKCS#8 PEM, mode 0600) inside [`CERTIFICATES_DIR`].
pub const NODE_KEY_FILE: &str = "swarm-node.key";
/// File name of the swarm root CA certificate (PEM) inside [`CERTIFICATES_DIR`].
pub const ROOT_CA_FILE: &str = "swarm-root-ca.crt";

/// The certificate OU for a role.
pub fn role_ou(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => MANAGER_ROLE_OU,
        NodeRole::Worker => WORKER_ROLE_OU,
    }
}

/// The role named by a certificate OU, if it is one of ours.
pub fn role_from_ou(ou: &str) -> Option<NodeRole> {
    match ou {
        MANAGER_ROLE_OU => Some(NodeRole::Manager),
        WORKER_ROLE_OU => Some(NodeRole::Worker),
        _ => None,
    }
}

/// Who a node certificate says its holder is: CN = node id, OU = role, O = cluster id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// The node id (certificate CN).
    pub node_id: String,
    /// The role (certificate OU `swarm-manager` / `swarm-worker`).
    pub role: NodeRole,
    /// The cluster id (certificate O).
    pub cluster_id: String,
}

impl NodeIdentity {
    /// Builds an identity.
    pub fn new(node_id: impl Into<String>, role: NodeRole, cluster_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            role,
            cluster_id: cluster_id.into(),
        }
    }

    /// Reads CN/OU/O from a DER certificate. This does **not** check who signed it: use it only on
    /// certificates that were verified (a TLS peer certificate, or after
    /// [`verify_node_certificate`](super::verify_node_certificate)).
    pub fn from_cert_der(der: &[u8]) -> CaResult<Self> {
        Ok(NodeCertInfo::from_der(der)?.identity)
    }

    /// Reads CN/OU/O from the first certificate of a PEM document (unverified, see
    /// [`NodeIdentity::from_cert_der`]).
    pub fn from_cert_pem(pem: &str) -> CaResult<Self> {
        Self::from_cert_der(first_cert_from_pem(pem)?.as_ref())
    }

    /// The certificate OU of this identity's role.
    pub fn role_ou(&self) -> &'static str {
        role_ou(self.role)
    }

    /// The certificate subject for this identity (CN, OU, O).
    pub(crate) fn distinguished_name(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.node_id.as_str());
        dn.push(DnType::OrganizationalUnitName, self.role_ou());
        dn.push(DnType::OrganizationName, self.cluster_id.as_str());
        dn
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} ({}) of cluster {}",
            self.node_id,
            self.role_ou(),
            self.cluster_id
        )
    }
}

/// What we read out of a node certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCertInfo {
    /// CN/OU/O.
    pub identity: NodeIdentity,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Serial number, lowercase hex.
    pub serial_hex: String,
}

impl NodeCertInfo {
    /// Parses a DER certificate (no signature check).
    pub fn from_der(der: &[u8]) -> CaResult<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| CaError::InvalidCertificate(format!("cannot parse X.509: {e}")))?;
        let identity = identity_of(&cert)?;
        let validity = cert.validity();
        Ok(Self {
            identity,
            not_before: unix_to_system_time(validity.not_before.timestamp()),
            not_after: unix_to_system_time(validity.not_after.timestamp()),
            serial_hex: hex::encode(cert.raw_serial()),
        })
    }

    /// Parses the first certificate of a PEM document (no signature check).
    pub fn from_pem(pem: &str) -> CaResult<Self> {
        Self::from_der(first_cert_from_pem(pem)?.as_ref())
    }

    /// True if `now` is past the end of validity.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }
}

/// What `docker info` and `docker node inspect` show as `TLSInfo`: the trust root (PEM) and the
/// subject and public key (DER) of the CA that issues certificates, read from its certificate
/// (the first of `root_pem`).
pub fn tls_info(root_pem: &str) -> CaResult<shoal_store::model::TLSInfo> {
    let der = first_cert_from_pem(root_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| CaError::InvalidCertificate(format!("cannot parse X.509: {e}")))?;
    Ok(shoal_store::model::TLSInfo {
        trust_root: root_pem.to_string(),
        cert_issuer_subject: cert.subject().as_raw().to_vec(),
        cert_issuer_public_key: cert.public_key().raw.to_vec(),
    })
}

fn unix_to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Extracts exactly one CN, OU and O from a parsed certificate's subject.
fn identity_of(cert: &X509Certificate<'_>) -> CaResult<NodeIdentity> {
    fn single<'a>(
        mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
        what: &str,
    ) -> CaResult<String> {
        let first = it
            .next()
            .ok_or_else(|| CaError::InvalidIdentity(format!("subject has no {what}")))?;
        if it.next().is_some() {
            return Err(CaError::InvalidIdentity(format!(
                "subject has more than one {what}"
            )));
        }
        let s = first
            .as_str()
            .map_err(|e| CaError::InvalidIdentity(format!("{what} is not a string: {e}")))?;
        if s.is_empty() {
            return Err(CaError::InvalidIdentity(format!("{what} is empty")));
        }
        Ok(s.to_string())
    }
    let subject = cert.subject();
    let node_id = single(subject.iter_common_name(), "CN (node id)")?;
    let ou = single(subject.iter_organizational_unit(), "OU (role)")?;
    let cluster_id = single(subject.iter_organization(), "O (cluster id)")?;
    let role = role_from_ou(&ou).ok_or_else(|| {
        CaError::InvalidIdentity(format!(
            "OU {ou:?} is neither {MANAGER_ROLE_OU:?} nor {WORKER_ROLE_OU:?}"
        ))
    })?;
    Ok(NodeIdentity {
        node_id,
        role,
        cluster_id,
    })
}

/// A node's TLS credentials: its certificate, its private key and the swarm root CA, all PEM.
/// This is what [`server_tls_config`](super::server_tls_config) and
/// [`client_tls_config`](super::client_tls_config) are built from.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    /// The node certificate (PEM; may be followed by intermediates).
    pub cert_pem: String,
    /// The node's private key (PKCS#8 PEM). Never leaves the node.
    pub key_pem: String,
    /// The swarm root CA certificate(s) (PEM) this node trusts.
    pub ca_pem: String,
}

impl fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}

impl NodeCredentials {
    /// The directory the credentials live in: `<state_dir>/certificates`.
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join(CERTIFICATES_DIR)
    }

    /// True if a node certificate was saved under `state_dir`.
    pub fn exist(state_dir: &Path) -> bool {
        Self::dir(state_dir).join(NODE_CERT_FILE).is_file()
    }

    /// Loads `<state_dir>/certificates/{swarm-node.crt, swarm-node.key, swarm-root-ca.crt}` and
    /// checks they belong together (see [`NodeCredentials::verify`]). A key file sealed with an
    /// unlock key is [`CaError::Locked`].
    pub fn load(state_dir: &Path) -> CaResult<Self> {
        Ok(Self::load_with(state_dir, None)?.0)
    }

    /// Like [`NodeCredentials::load`], opening a sealed key file with `unlock`; also returns
    /// the store's data keys kept with the TLS key (managers).
    pub fn load_with(state_dir: &Path, unlock: Option<&UnlockKey>) -> CaResult<(Self, StoreKeys)> {
        let dir = Self::dir(state_dir);
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|source| CaError::Io {
                op: "reading",
                path,
                source,
            })
        };
        let keys = key_file::read(&dir.join(NODE_KEY_FILE), unlock)?;
        // The key file's copy of the certificate is the one written with the key.
        let cert_pem = match keys.cert_pem {
            Some(cert) => cert,
            None => read(NODE_CERT_FILE)?,
        };
        let creds = Self {
            cert_pem,
            key_pem: keys.key_pem,
            ca_pem: read(ROOT_CA_FILE)?,
        };
        creds.verify_ignoring_expiry()?;
        Ok((creds, keys.data))
    }

    /// Whether the key file under `state_dir` is sealed with an unlock key.
    pub fn is_locked(state_dir: &Path) -> bool {
        fs::read_to_string(Self::dir(state_dir).join(NODE_KEY_FILE))
            .is_ok_and(|text| key_file::is_locked(&text))
    }

    /// Saves the three files under `<state_dir>/certificates` (created with mode 0700), the key
    /// file without a data key and in clear (workers). Each file is written to a temporary name,
    /// synced and renamed, so a crash leaves either the old or the new file. The key file has
    /// mode 0600.
    pub fn save(&self, state_dir: &Path) -> CaResult<()> {
        self.save_with(state_dir, &StoreKeys::default(), None)
    }

    /// Like [`NodeCredentials::save`], keeping the store's data keys in the key file and
    /// sealing the file with `unlock` when given (autolock).
    pub fn save_with(
        &self,
        state_dir: &Path,
        data: &StoreKeys,
        unlock: Option<&UnlockKey>,
    ) -> CaResult<()> {
        let dir = Self::dir(state_dir);
        create_private_dir(&dir)?;
        let keys = key_file::NodeKeys {
            key_pem: self.key_pem.clone(),
            data: data.clone(),
            cert_pem: Some(self.cert_pem.clone()),
        };
        write_atomic(&dir.join(ROOT_CA_FILE), self.ca_pem.as_bytes(), 0o644)?;
        write_atomic(
            &dir.join(NODE_KEY_FILE),
            key_file::encode(&keys, unlock).as_bytes(),
            0o600,
        )?;
        write_atomic(&dir.join(NODE_CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        Ok(())
    }

    /// The identity in the node certificate (not re-verified; see [`NodeCredentials::verify`]).
    pub fn identity(&self) -> CaResult<NodeIdentity> {
        NodeIdentity::from_cert_pem(&self.cert_pem)
    }

    /// Identity, validity and serial of the node certificate.
    pub fn info(&self) -> CaResult<NodeCertInfo> {
        NodeCertInfo::from_pem(&self.cert_pem)
    }

    /// [`NodeCredentials::verify`] as of the middle of the certificate's life: the CA signed
    /// it and the key is its key, whether or not it has expired since (a node must load an
    /// expired certificate to start, say why it cannot reach its swarm, and join again).
    pub fn verify_ignoring_expiry(&self) -> CaResult<NodeIdentity> {
        let chain = certs_from_pem(&self.cert_pem)?;
        let info = self.info()?;
        let life = info
            .not_after
            .duration_since(info.not_before)
            .unwrap_or_default();
        let middle = rustls::pki_types::UnixTime::since_unix_epoch(
            (info.not_before + life / 2)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let identity = super::verify::verify_node_chain_at(&chain, &self.ca_pem, middle)?;
        check_key_matches_cert(&self.key_pem, chain[0].as_ref())?;
        Ok(identity)
    }

    /// Checks that the certificate chains to `ca_pem` (signature, validity period, client+server
    /// usage), carries a node identity, and that `key_pem` is the key of the certificate.
    pub fn verify(&self) -> CaResult<NodeIdentity> {
        let chain = certs_from_pem(&self.cert_pem)?;
        let identity = verify_node_chain(&chain, &self.ca_pem)?;
        check_key_matches_cert(&self.key_pem, chain[0].as_ref())?;
        Ok(identity)
    }
}

/// Checks that a PEM private key is the key of a DER certificate.
pub(crate) fn check_key_matches_cert(key_pem: &str, cert_der: &[u8]) -> CaResult<()> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::InvalidKey(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| CaError::InvalidCertificate(format!("cannot parse X.509: {e}")))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(CaError::InvalidKey(
            "the private key does not belong to the certificate".into(),
        ));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> CaResult<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| CaError::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source,
    })
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> CaResult<()> {
    let tmp = path.with_extension("tmp");
    let io_err = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| CaError::Io {
            op,
            path: p,
            source,
        }
    };
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(io_err("creating", &tmp))?;
    f.write_all(data).map_err(io_err("writing", &tmp))?;
    f.sync_all().map_err(io_err("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err("renaming to", path))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A fresh key pair and a certificate signing request for it, made by a node that is joining
/// (or renewing). The key stays on the node; only [`NodeKeyRequest::csr_pem`] is sent to the CA,
/// which decides the subject and SANs itself.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKeyRequest {
    /// The new private key (PKCS#8 PEM, ECDSA P-256).
    pub key_pem: String,
    /// The CSR (PEM) to send to the CA.
    pub csr_pem: String,
}

impl fmt::Debug for NodeKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKeyRequest")
            .field("key_pem", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

impl NodeKeyRequest {
    /// Generates an ECDSA P-256 key and a CSR signed with it. The CSR's subject is a placeholder
    /// (CN `swarm-node`); the CA ignores it.
    pub fn generate() -> CaResult<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, NODE_SAN);
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key)?;
        Ok(Self {
            key_pem: key.serialize_pem(),
            csr_pem: csr.pem()?,
        })
    }

    /// Combines the key with the certificate the CA issued for this CSR and the root CA, checking
    /// the certificate is for this key and chains to the CA.
    pub fn into_credentials(
        self,
        cert_pem: impl Into<String>,
        ca_pem: impl Into<String>,
    ) -> CaResult<NodeCredentials> {
        let creds = NodeCredentials {
            cert_pem: cert_pem.into(),
            key_pem: self.key_pem,
            ca_pem: ca_pem.into(),
        };
        creds.verify()?;
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ou_mapping() {
        assert_eq!(role_ou(NodeRole::Manager), "swarm-manager");
        assert_eq!(role_ou(NodeRole::Worker), "swarm-worker");
        assert_eq!(role_from_ou("swarm-manager"), Some(NodeRole::Manager));
        assert_eq!(role_from_ou("swarm-worker"), Some(NodeRole::Worker));
        assert_eq!(role_from_ou("swarm-ca"), None);
    }

    #[test]
    fn save_and_load_credentials() {
        use crate::ca::{NodeCertSpec, RootCa};
        let ca = RootCa::generate().unwrap();
        let creds = ca
            .issue_credentials(&NodeCertSpec::for_node("n1", NodeRole::Manager, "c1"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(!NodeCredentials::exist(dir.path()));
        assert!(matches!(
            NodeCredentials::load(dir.path()),
            Err(CaError::Io { .. })
        ));
        creds.save(dir.path()).unwrap();
        assert!(NodeCredentials::exist(dir.path()));
        let certs = dir.path().join("certificates");
        for f in ["swarm-node.crt", "swarm-node.key", "swarm-root-ca.crt"] {
            assert!(certs.join(f).is_file(), "{f}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(certs.join("swarm-node.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = NodeCredentials::load(dir.path()).unwrap();
        assert_eq!(loaded, creds);
        assert_eq!(
            loaded.identity().unwrap(),
            NodeIdentity::new("n1", NodeRole::Manager, "c1")
        );
        let info = loaded.info().unwrap();
        assert!(!info.is_expired_at(SystemTime::now()));
        assert!(info.is_expired_at(SystemTime::now() + Duration::from_secs(91 * 24 * 3600)));
        assert!(!format!("{loaded:?}").contains("PRIVATE KEY"));

        // Saving again overwrites; a root CA that did not sign the certificate fails to load.
        let other = RootCa::generate().unwrap();
        NodeCredentials {
            ca_pem: other.cert_pem().to_string(),
            ..creds.clone()
        }
        .save(dir.path())
        .unwrap();
        assert!(matches!(
            NodeCredentials::load(dir.path()),
            Err(CaError::Verification(_))
        ));
        // A key that does not belong to the certificate fails too.
        let stray = NodeKeyRequest::generate().unwrap();
        NodeCredentials {
            key_pem: stray.key_pem,
            ..creds
        }
        .save(dir.path())
        .unwrap();
        assert!(matches!(
            NodeCredentials::load(dir.path()),
            Err(CaError::InvalidKey(_))
        ));
    }

    #[test]
    fn key_request_makes_a_parsable_csr() {
        let req = NodeKeyRequest::generate().unwrap();
        assert!(req.csr_pem.contains("BEGIN CERTIFICATE REQUEST"));
        assert!(req.key_pem.contains("BEGIN PRIVATE KEY"));
        rcgen::CertificateSigningRequestParams::from_pem(&req.csr_pem).unwrap();
        assert!(!format!("{req:?}").contains("PRIVATE"));
    }
}
