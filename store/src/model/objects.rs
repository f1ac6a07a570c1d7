//! The stored object kinds. Each is `meta` (store-owned) + `spec` (user-owned, kept as the client
//! sent it) + status fields (system-owned). Field names are the Docker Engine API's wire names, so
//! the API layer can render objects with little conversion; fields that only shoal uses are marked
//! "internal" and are stripped by the API layer.

use serde::{Deserialize, Serialize};

use super::enums::{NodeRole, TaskState};
use super::meta::{Meta, Timestamp, Version};
use super::spec::*;

/// The swarm itself (a singleton named `default`): its spec, join tokens and CA.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// The swarm's settings.
    #[serde(rename = "Spec", default)]
    pub spec: SwarmSpec,
    /// Current join tokens.
    #[serde(rename = "JoinTokens", default)]
    pub join_tokens: JoinTokens,
    /// Address pools for overlay networks.
    #[serde(rename = "DefaultAddrPool", default)]
    pub default_addr_pool: Vec<String>,
    /// Subnet size carved from the pools.
    #[serde(rename = "SubnetSize", default)]
    pub subnet_size: u32,
    /// VXLAN data path port.
    #[serde(rename = "DataPathPort", default)]
    pub data_path_port: u32,
    /// The swarm's trust root as `GET /swarm` shows it (CA certificate, issuer subject and key);
    /// kept in step with `root_ca` by whoever creates or rotates the CA.
    #[serde(rename = "TLSInfo", default)]
    pub tls_info: TLSInfo,
    /// Whether a root CA rotation is in progress (always emitted by `GET /swarm`).
    #[serde(rename = "RootRotationInProgress", default)]
    pub root_rotation_in_progress: bool,
    /// Internal: the swarm's root CA (certificate and key, PEM) that signs node certificates.
    #[serde(rename = "RootCA", default)]
    pub root_ca: RootCa,
    /// Internal: the current unlock key when autolock is on (empty otherwise).
    #[serde(
        rename = "UnlockKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub unlock_key: String,
    /// Internal: nodes removed from the swarm, refused by every inter-node RPC even with a
    /// certificate that still verifies (SwarmKit's blacklisted certificates): node id -> until
    /// when (the removal time plus the node certificate validity; no certificate issued before
    /// the removal is valid after that).
    #[serde(
        rename = "RemovedNodes",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub removed_nodes: std::collections::BTreeMap<String, Timestamp>,
}

impl Cluster {
    /// Records node `id` as removed now, and forgets removals whose certificates have all
    /// expired.
    pub fn record_removed_node(&mut self, id: &str, now: Timestamp) {
        let validity = self.spec.node_cert_expiry_or_default().as_nanos() as i64;
        self.removed_nodes
            .retain(|_, until| until.unix_nanos() > now.unix_nanos());
        self.removed_nodes.insert(
            id.to_string(),
            Timestamp::from_unix_nanos(now.unix_nanos().saturating_add(validity)),
        );
    }
}

/// The swarm's root certificate authority. The key lives in the replicated store, as in SwarmKit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootCa {
    /// CA certificate, PEM.
    #[serde(rename = "CACert", default)]
    pub cert_pem: String,
    /// CA private key, PEM.
    #[serde(rename = "CAKey", default)]
    pub key_pem: String,
    /// SHA-256 digest of the CA certificate (DER), hex; pinned by join tokens.
    #[serde(rename = "CACertHash", default)]
    pub cert_digest: String,
    /// A root rotation under way (`docker swarm ca --rotate`), until every node holds a
    /// certificate from the new root.
    #[serde(rename = "Rotation", default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RootRotation>,
}

/// A root CA rotation under way: the new root signs every certificate, with its certificate
/// cross-signed by the current root as intermediate, so nodes that still trust only the
/// current root accept the new certificates; nodes trust both roots meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootRotation {
    /// The new root's certificate, PEM.
    #[serde(rename = "CACert", default)]
    pub cert_pem: String,
    /// The new root's key, PEM.
    #[serde(rename = "CAKey", default)]
    pub key_pem: String,
    /// The new root's certificate signed by the current root, PEM.
    #[serde(rename = "CrossSignedCACert", default)]
    pub cross_signed_pem: String,
    /// Nodes that hold a certificate from the new root.
    #[serde(rename = "Issued", default)]
    pub issued: std::collections::BTreeSet<String>,
}

impl RootCa {
    /// The roots a node trusts: the current one, and the new one during a rotation.
    pub fn trust_bundle(&self) -> String {
        match &self.rotation {
            None => self.cert_pem.clone(),
            Some(r) => {
                let mut bundle = self.cert_pem.clone();
                if !bundle.ends_with('\n') {
                    bundle.push('\n');
                }
                bundle.push_str(&r.cert_pem);
                bundle
            }
        }
    }
}

/// Tokens that let a node join as a worker or a manager (`SWMTKN-1-<ca digest>-<secret>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinTokens {
    /// Token for workers.
    #[serde(rename = "Worker", default)]
    pub worker: String,
    /// Token for managers.
    #[serde(rename = "Manager", default)]
    pub manager: String,
}

/// A machine in the swarm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned: desired role, availability, labels.
    #[serde(rename = "Spec", default)]
    pub spec: NodeSpec,
    /// Reported by the node's agent.
    #[serde(rename = "Description", default)]
    pub description: NodeDescription,
    /// Written by the dispatcher.
    #[serde(rename = "Status", default)]
    pub status: NodeStatus,
    /// Present for managers only.
    #[serde(
        rename = "ManagerStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub manager_status: Option<ManagerStatus>,
    /// Internal: the role the node currently holds (reconciled towards `spec.role` by the role manager).
    #[serde(rename = "Role", default)]
    pub role: NodeRole,
    /// Internal: the node's Raft member id when it is a manager (0 otherwise).
    #[serde(rename = "RaftID", default, skip_serializing_if = "is_zero")]
    pub raft_id: u64,
    /// Internal: the node's place in the store's Raft group as the leader last recorded it, so
    /// that every membership change (joined as a learner, made a voter, removed) is a change of
    /// the node, with an event.
    #[serde(
        rename = "RaftMembership",
        default,
        skip_serializing_if = "RaftMembership::is_none"
    )]
    pub raft_membership: RaftMembership,
}

/// A node's place in the store's Raft group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftMembership {
    /// Not a member.
    #[default]
    None,
    /// Catching up; counts for no quorum yet.
    Learner,
    /// A voting member.
    Voter,
}

impl RaftMembership {
    /// Not a member.
    pub fn is_none(&self) -> bool {
        *self == RaftMembership::None
    }

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RaftMembership::None => "none",
            RaftMembership::Learner => "learner",
            RaftMembership::Voter => "voter",
        }
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A service: the desired state of a set of tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned spec, as the client sent it.
    #[serde(rename = "Spec", default)]
    pub spec: ServiceSpec,
    /// The spec before the last update (for `rollback=previous`).
    #[serde(
        rename = "PreviousSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_spec: Option<ServiceSpec>,
    /// Allocated endpoint (ports, virtual IPs).
    #[serde(rename = "Endpoint", default)]
    pub endpoint: Endpoint,
    /// Progress of the current rolling update or rollback.
    #[serde(
        rename = "UpdateStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub update_status: Option<UpdateStatus>,
    /// Task counts for `GET /services?status=true`: computed by the API layer when it answers,
    /// never stored (always `None` in the store).
    #[serde(
        rename = "ServiceStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service_status: Option<ServiceStatus>,
    /// Job modes only: the current iteration.
    #[serde(rename = "JobStatus", default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    /// Internal: revision at which `spec` was last set; tasks carry the version they were made from.
    #[serde(rename = "SpecVersion", default)]
    pub spec_version: Version,
    /// Internal: revision of `previous_spec`.
    #[serde(
        rename = "PreviousSpecVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_spec_version: Option<Version>,
    /// Internal: the revision that wrote the current spec (its creation or its last change),
    /// set by the store as it applies the write (`0` for a service last written before this
    /// field existed). See [`Service::spec_current_at`].
    #[serde(rename = "SpecRevision", default, skip_serializing_if = "is_zero")]
    pub spec_revision: u64,
}

impl Service {
    /// Puts `spec` in place as a client's update (`docker service update`, a stack apply): the
    /// old spec becomes the previous one.
    pub fn take_new_spec(&mut self, spec: ServiceSpec) {
        self.previous_spec = Some(std::mem::replace(&mut self.spec, spec));
        self.previous_spec_version = Some(self.spec_version);
        self.spec_version = self.meta.version;
    }

    /// Swaps the spec and the previous one: the rollback a client asks for (`docker service
    /// rollback`), which can be rolled back in turn. (The update supervisor's automatic
    /// rollback drops the failed spec instead, as swarmkit's does.)
    pub fn roll_back_spec(&mut self) {
        if let Some(previous) = self.previous_spec.take() {
            let previous_version = self.previous_spec_version.take().unwrap_or_default();
            self.previous_spec = Some(std::mem::replace(&mut self.spec, previous));
            self.previous_spec_version =
                Some(std::mem::replace(&mut self.spec_version, previous_version));
        }
    }

    /// Whether a client that read this service at version `read` saw its current spec: `read`
    /// is this version, or one between the revision that wrote the spec and this version. The
    /// writes since the spec's were the system's own (update status, rollout progress), which
    /// an update of the spec does not conflict with.
    pub fn spec_current_at(&self, read: u64) -> bool {
        let now = self.meta.version.index;
        read == now || (self.spec_revision != 0 && read >= self.spec_revision && read <= now)
    }

    /// Records, as the store applies a write of this service at `revision`, whether the write
    /// changed the spec (`prev`: the service it replaces; `None` for a creation).
    pub fn note_spec_written(&mut self, prev: Option<&Service>, revision: u64) {
        self.spec_revision = match prev {
            Some(prev) if prev.spec == self.spec => prev.spec_revision,
            _ => revision,
        };
    }
}

/// One unit of work: a copy of a service's task spec, placed on one node, never re-targeted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// Optional task name (docker derives `service.slot.id` when empty).
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Task labels.
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    /// Copy of the service's task template at creation; never modified.
    #[serde(rename = "Spec", default)]
    pub spec: TaskSpec,
    /// Internal: the owning service's name when the task was created (swarmkit's
    /// `ServiceAnnotations`); the task's container is named after it, as dockerd names it.
    #[serde(
        rename = "ServiceName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub service_name: String,
    /// Owning service.
    #[serde(
        rename = "ServiceID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub service_id: String,
    /// Replica slot 1..N for replicated services; 0 for global services (the node is the slot).
    #[serde(rename = "Slot", default, skip_serializing_if = "is_zero")]
    pub slot: u64,
    /// The node it runs on; empty until scheduled (pre-set for global services).
    #[serde(rename = "NodeID", default, skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    /// Observed state, written by agents (and the scheduler/enforcers for a few edges).
    #[serde(rename = "Status", default)]
    pub status: TaskStatus,
    /// Desired state, written only by managers and never lowered.
    #[serde(rename = "DesiredState", default)]
    pub desired_state: TaskState,
    /// Network attachments.
    #[serde(
        rename = "NetworksAttachments",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks_attachments: Vec<NetworkAttachment>,
    /// Generic resources assigned by the scheduler.
    #[serde(
        rename = "GenericResources",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub generic_resources: Vec<GenericResource>,
    /// Job modes: the job iteration this task belongs to.
    #[serde(
        rename = "JobIteration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub job_iteration: Option<Version>,
    /// Cluster volumes attached to the task. Go has no `omitempty` here: `null` when none (API
    /// 1.42+; the daemon of API 1.41 did not have the field).
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<Vec<VolumeAttachment>>,
    /// Internal: the service `SpecVersion` this task was created from.
    #[serde(rename = "SpecVersion", default)]
    pub spec_version: Version,
    /// Internal: the ports its service publishes in host mode when the task was created, bound
    /// by the engine on the task's node (Swarm keeps the service endpoint in the task too).
    #[serde(rename = "HostPorts", default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<PortConfig>,
}

/// A swarm-scoped (overlay) network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned spec.
    #[serde(rename = "Spec", default)]
    pub spec: NetworkSpec,
    /// Internal: what the managers allocated for it (subnet, gateway, VXLAN id, node
    /// addresses); `None` only for networks stored before allocation existed, until the
    /// allocator gives them one. Rendered into `IPAM.Config` and `Options` by the API layer.
    #[serde(
        rename = "Allocation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub allocation: Option<NetworkAllocation>,
}

impl Task {
    /// Whether every network the task attaches to has given it an address (tasks with no
    /// networks are trivially allocated); the scheduler places only allocated tasks.
    pub fn network_allocated(&self) -> bool {
        self.networks_attachments
            .iter()
            .all(|a| !a.addresses.is_empty())
    }
}

/// A secret; its data is never returned by the API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned spec (only labels may change after creation).
    #[serde(rename = "Spec", default)]
    pub spec: SecretSpec,
}

/// A config (like a secret, but not confidential).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Store bookkeeping.
    #[serde(flatten)]
    pub meta: Meta,
    /// User-owned spec (only labels may change after creation).
    #[serde(rename = "Spec", default)]
    pub spec: ConfigSpec,
}

/// Convenience: the timestamp type used for status fields.
pub type Time = Timestamp;

#[cfg(test)]
mod tests {
    use super::*;

    fn service_at(version: u64) -> Service {
        let mut s = Service::default();
        s.meta.version = Version::at(version);
        s
    }

    #[test]
    fn only_a_write_that_changes_the_spec_moves_its_revision() {
        let mut s = service_at(3);
        s.note_spec_written(None, 3);
        assert_eq!(s.spec_revision, 3);
        // The supervisor's status writes at 5 and 9 keep the spec.
        let prev = s.clone();
        s.meta.version = Version::at(9);
        s.note_spec_written(Some(&prev), 9);
        assert_eq!(s.spec_revision, 3);
        assert!(s.spec_current_at(3) && s.spec_current_at(5) && s.spec_current_at(9));
        assert!(!s.spec_current_at(2), "before the service existed");
        assert!(!s.spec_current_at(1));
        assert!(!s.spec_current_at(10), "a version it never had");
        // A spec change at 12.
        let prev = s.clone();
        s.take_new_spec(ServiceSpec {
            name: "changed".into(),
            ..Default::default()
        });
        s.meta.version = Version::at(12);
        s.note_spec_written(Some(&prev), 12);
        assert_eq!(s.spec_revision, 12);
        assert!(!s.spec_current_at(9), "read before the change");
        assert!(s.spec_current_at(12));
        // A service last written before the field existed: only its own version goes.
        let old = service_at(20);
        assert!(old.spec_current_at(20) && !old.spec_current_at(19));
        assert!(!old.spec_current_at(5));
    }
}
