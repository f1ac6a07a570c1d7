//! Root CA rotation (`docker swarm ca --rotate`), as SwarmKit does it, without any node losing
//! contact:
//!
//! 1. The swarm's update starts it ([`start`]): a new root (generated, or given with
//!    `--ca-cert`/`--ca-key`) and its certificate cross-signed by the current root are kept
//!    beside the current root; `RootRotationInProgress` is true.
//! 2. Every certificate is now signed by the new root and carries the cross-signed certificate
//!    as intermediate ([`Signer`]): nodes that still trust only the current root accept it. Nodes
//!    trust both roots ([`shoal_store::model::RootCa::trust_bundle`], sent in every session):
//!    a node whose trust bundle changes renews its certificate at once.
//! 3. When every node holds a certificate from the new root ([`finish_if_converged`]), the new
//!    root replaces the old one, the join tokens are made again for it (they pin the root), and
//!    nodes, seeing the bundle change again, renew once more to drop the old root.
//!
//! A node that stays down through a rotation blocks its end (as in SwarmKit); removing it lets
//! the rotation finish.

use shoal_store::model::{Cluster, RootRotation};

use super::error::CaResult;
use super::node_cert::tls_info;
use super::root::{NodeCertSpec, NodeCertificate, RootCa};
use super::token::JoinToken;

/// What signs node certificates now: the current root, or the new one during a rotation (with
/// the cross-signed certificate after each leaf).
pub struct Signer {
    ca: RootCa,
    chain: String,
}

impl Signer {
    /// The signer of `cluster` as it is now.
    pub fn of(cluster: &Cluster) -> CaResult<Signer> {
        match &cluster.root_ca.rotation {
            None => Ok(Signer {
                ca: RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)?,
                chain: String::new(),
            }),
            Some(r) => Ok(Signer {
                ca: RootCa::from_pem(&r.cert_pem, &r.key_pem)?,
                chain: r.cross_signed_pem.clone(),
            }),
        }
    }

    /// Signs `csr_pem` for `spec`: the leaf, followed by the intermediate during a rotation.
    pub fn issue(&self, csr_pem: &str, spec: &NodeCertSpec) -> CaResult<NodeCertificate> {
        let mut cert = self.ca.issue(csr_pem, spec)?;
        if !self.chain.is_empty() {
            if !cert.cert_pem.ends_with('\n') {
                cert.cert_pem.push('\n');
            }
            cert.cert_pem.push_str(&self.chain);
        }
        Ok(cert)
    }
}

/// Starts a rotation of `cluster`'s root to `new` (or a generated root).
pub fn start(cluster: &mut Cluster, new: Option<RootCa>) -> CaResult<()> {
    let current = RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)?;
    let new = match new {
        Some(n) => n,
        None => RootCa::generate()?,
    };
    let cross_signed_pem = current.cross_sign(&new)?;
    cluster.root_ca.rotation = Some(RootRotation {
        cert_pem: new.cert_pem().to_string(),
        key_pem: new.key_pem().to_string(),
        cross_signed_pem,
        issued: Default::default(),
    });
    cluster.root_rotation_in_progress = true;
    Ok(())
}

/// Ends `cluster`'s rotation if every node in `nodes` holds a certificate from the new root;
/// returns whether it did.
pub fn finish_if_converged<'a>(
    cluster: &mut Cluster,
    mut nodes: impl Iterator<Item = &'a str>,
) -> CaResult<bool> {
    let Some(rotation) = &cluster.root_ca.rotation else {
        return Ok(false);
    };
    if !nodes.all(|id| rotation.issued.contains(id)) {
        return Ok(false);
    }
    let new = RootCa::from_pem(&rotation.cert_pem, &rotation.key_pem)?;
    cluster.root_ca.cert_pem = new.cert_pem().to_string();
    cluster.root_ca.key_pem = new.key_pem().to_string();
    cluster.root_ca.cert_digest = new.digest();
    cluster.root_ca.rotation = None;
    cluster.root_rotation_in_progress = false;
    cluster.tls_info = tls_info(new.cert_pem())?;
    // Join tokens pin the root: new ones for the new root (their secrets change too).
    cluster.join_tokens.worker = JoinToken::for_ca(&new)?.to_string();
    cluster.join_tokens.manager = JoinToken::for_ca(&new)?.to_string();
    Ok(true)
}
