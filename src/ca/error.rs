//! The error type of the CA module.

use std::path::PathBuf;

/// Everything that can go wrong while creating, issuing, loading, verifying or presenting swarm
/// certificates, join tokens and unlock keys.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Key or certificate generation, or CSR signing, failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),

    /// A PEM document or DER certificate could not be parsed, or lacks something we need.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),

    /// A PEM private key could not be parsed, or does not belong to the certificate.
    #[error("invalid private key: {0}")]
    InvalidKey(String),

    /// A certificate signing request could not be parsed, or its self-signature is wrong.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),

    /// A certificate is well formed but does not carry a swarm node identity
    /// (CN node id, OU `swarm-manager`/`swarm-worker`, O cluster id).
    #[error("certificate does not carry a swarm node identity: {0}")]
    InvalidIdentity(String),

    /// A certificate does not chain to the swarm root CA, has expired, or lacks the required usage.
    #[error("certificate verification failed: {0}")]
    Verification(String),

    /// A join token is malformed. The display text starts with Docker's `invalid join token`.
    #[error("invalid join token: {0}")]
    InvalidJoinToken(String),

    /// The root CA a manager served does not match the digest pinned in the join token.
    /// Same wording as Docker (`remote CA does not match fingerprint`).
    #[error("remote CA does not match fingerprint. Expected: {expected}, got: {actual}")]
    CaDigestMismatch {
        /// The digest from the join token, hex.
        expected: String,
        /// The digest of the CA certificate that was served, hex.
        actual: String,
    },

    /// An unlock key (`SWMKEY-1-...`) is malformed.
    #[error("invalid unlock key: {0}")]
    InvalidUnlockKey(String),

    /// The node's keys are sealed with the swarm's unlock key (autolock) and none was given.
    #[error("node is locked, and needs a valid unlock key")]
    Locked,

    /// The unlock key given does not open the node's keys.
    #[error("swarm could not be unlocked: invalid key provided")]
    WrongUnlockKey,

    /// Building a TLS configuration or completing a TLS handshake failed.
    #[error("TLS error: {0}")]
    Tls(String),

    /// Reading or writing a credentials file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing (`reading`, `writing`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A network error while talking to a manager during bootstrap.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address we were dialing.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl CaError {
    /// True for malformed join tokens, which the Docker API reports as `invalid join token`.
    pub fn is_invalid_join_token(&self) -> bool {
        matches!(self, CaError::InvalidJoinToken(_))
    }
}

/// Result alias for this module.
pub type CaResult<T> = Result<T, CaError>;
