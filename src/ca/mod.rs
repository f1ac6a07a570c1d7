//! The swarm certificate authority: node certificates, join tokens and mutual TLS.
//!
//! # Trust model
//!
//! Every swarm has its own **root CA** ([`RootCa`]): a self-signed ECDSA P-256 certificate with
//! CN `swarm-ca`, valid 20 years, created at `swarm init` and kept (with its key) by the managers.
//! Everything between nodes is gRPC over **mutual TLS**, and the only trust anchor is that root:
//! no system roots are ever consulted.
//!
//! A node's identity is its certificate ([`NodeIdentity`]): CN = node id, OU = role
//! (`swarm-manager` / `swarm-worker`), O = cluster id. Only the CA chooses these: a joining node
//! sends a CSR ([`NodeKeyRequest`]) and the CA keeps nothing from it but the public key
//! ([`RootCa::issue`]). Manager certificates carry the DNS SAN `swarm-manager`, which clients
//! require as the server name ([`MANAGER_SERVER_NAME`]), so a worker cannot pose as a manager.
//!
//! Servers ([`server_tls_config`]) verify client certificates against the root **when presented**
//! but accept clients without one, because a joining node has no certificate yet. Authorization
//! therefore happens per RPC: every handler except the CA bootstrap/join ones calls
//! [`require_role`], which rejects requests without a verified certificate or with the wrong role.
//!
//! A joining node trusts nothing at first. It holds a **join token** ([`JoinToken`],
//! `SWMTKN-1-<CA digest>-<secret>`): it dials a manager without verifying it, takes the root CA
//! from the handshake ([`fetch_root_ca`]) and accepts it only if its SHA-256 matches the digest in
//! the token (pinning). From then on it verifies the manager against that root
//! ([`pinned_ca_client_tls_config`]) and sends the token (the secret, which selects worker or
//! manager role) and a CSR; managers compare tokens in constant time ([`JoinTokens::role_for`]).
//! With its certificate saved ([`NodeCredentials::save`]) the node uses full mTLS
//! ([`client_tls_config`]).
//!
//! Unlock keys for autolock ([`UnlockKey`], `SWMKEY-1-...`) live here too.

mod error;
pub mod key_file;
mod live;
mod node_cert;
mod pem;
mod root;
pub mod rotation;
mod tls;
mod token;
mod verify;

pub use error::{CaError, CaResult};
pub use key_file::StoreKeys;
pub use live::{ClientTls, LiveCredentials};
pub use node_cert::{
    role_from_ou, role_ou, tls_info, NodeCertInfo, NodeCredentials, NodeIdentity, NodeKeyRequest,
    NodeRole, CERTIFICATES_DIR, MANAGER_ROLE_OU, NODE_CERT_FILE, NODE_KEY_FILE, NODE_SAN,
    ROOT_CA_FILE, WORKER_ROLE_OU,
};
pub use pem::ca_bundle_digest;
pub use root::{
    check_ca_config, min_node_cert_expiry, rotation_requested, NodeCertSpec, NodeCertificate,
    RootCa, CERT_BACKDATE, DEFAULT_NODE_CERT_VALIDITY, ROOT_CA_CN, ROOT_CA_VALIDITY,
};
pub use tls::{
    authorize, client_tls_config, fetch_root_ca, fetch_root_ca_unverified, install_crypto_provider,
    manager_client_tls_config, peer_identity, pinned_ca_client_tls_config, require_role,
    require_role_in_cluster, server_tls_config, unverified_endpoint, BOOTSTRAP_TIMEOUT,
    MANAGER_SERVER_NAME,
};
pub use token::{
    JoinToken, JoinTokens, UnlockKey, JOIN_TOKEN_PREFIX, JOIN_TOKEN_VERSION, TOKEN_DIGEST_LEN,
    TOKEN_SECRET_LEN, UNLOCK_KEY_PREFIX,
};
pub use verify::verify_node_certificate;
