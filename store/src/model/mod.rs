//! The object model: the kinds the store keeps, their ids, versions and specs.

pub mod enums;
pub mod gitops;
pub mod meta;
pub mod objects;
pub mod spec;
pub mod stack;
pub mod status;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use enums::{NodeRole, TaskState};
pub use gitops::*;
pub use meta::{new_id, Meta, Timestamp, Version, ID_LEN};
pub use objects::*;
pub use spec::*;
pub use stack::*;
pub use status::*;

/// The kinds of object the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// The swarm singleton.
    Cluster,
    /// A machine.
    Node,
    /// A service.
    Service,
    /// A task.
    Task,
    /// A swarm network.
    Network,
    /// A secret.
    Secret,
    /// A config.
    Config,
    /// A stack (its inventory and current revision).
    Stack,
    /// One applied revision of a stack.
    StackRevision,
    /// A service's health, kept apart from the service (see [`Health`]).
    Health,
    /// A git repository the GitOps controller keeps applied.
    GitSource,
}

impl Kind {
    /// Every kind, in a fixed order (new kinds go at the end: the order gives storage tags).
    pub const ALL: [Kind; 11] = [
        Kind::Cluster,
        Kind::Node,
        Kind::Service,
        Kind::Task,
        Kind::Network,
        Kind::Secret,
        Kind::Config,
        Kind::Stack,
        Kind::StackRevision,
        Kind::Health,
        Kind::GitSource,
    ];

    /// Lowercase name (`service`), as used in errors and Docker events.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Network => "network",
            Kind::Secret => "secret",
            Kind::Config => "config",
            Kind::Stack => "stack",
            Kind::StackRevision => "stackrevision",
            Kind::Health => "health",
            Kind::GitSource => "gitsource",
        }
    }

    /// A one-byte tag used as key prefix in storage.
    pub fn tag(&self) -> u8 {
        *self as u8
    }

    /// Inverse of [`Kind::tag`].
    pub fn from_tag(tag: u8) -> Option<Kind> {
        Kind::ALL.get(tag as usize).copied()
    }

    /// Whether objects of this kind have names that must be unique (case-insensitively).
    pub fn has_unique_names(&self) -> bool {
        // A service status shares its service's id and name; the service keeps names unique.
        !matches!(self, Kind::Node | Kind::Task | Kind::Health)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .iter()
            .find(|k| k.as_str() == s)
            .copied()
            .ok_or_else(|| format!("unknown object kind {s:?}"))
    }
}

/// Any stored object.
// Objects live behind `Arc`s in the state and in events, so the variant size difference costs
// nothing where it matters; boxing would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Kind", content = "Object")]
pub enum Object {
    /// The swarm.
    Cluster(Cluster),
    /// A node.
    Node(Node),
    /// A service.
    Service(Service),
    /// A task.
    Task(Task),
    /// A network.
    Network(Network),
    /// A secret.
    Secret(Secret),
    /// A config.
    Config(Config),
    /// A stack.
    Stack(Stack),
    /// A stack revision.
    StackRevision(StackRevision),
    /// A service's health.
    Health(Health),
    /// A GitOps source.
    GitSource(GitSource),
}

macro_rules! each_kind {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Object::Cluster($o) => $body,
            Object::Node($o) => $body,
            Object::Service($o) => $body,
            Object::Task($o) => $body,
            Object::Network($o) => $body,
            Object::Secret($o) => $body,
            Object::Config($o) => $body,
            Object::Stack($o) => $body,
            Object::StackRevision($o) => $body,
            Object::Health($o) => $body,
            Object::GitSource($o) => $body,
        }
    };
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Cluster(_) => Kind::Cluster,
            Object::Node(_) => Kind::Node,
            Object::Service(_) => Kind::Service,
            Object::Task(_) => Kind::Task,
            Object::Network(_) => Kind::Network,
            Object::Secret(_) => Kind::Secret,
            Object::Config(_) => Kind::Config,
            Object::Stack(_) => Kind::Stack,
            Object::StackRevision(_) => Kind::StackRevision,
            Object::Health(_) => Kind::Health,
            Object::GitSource(_) => Kind::GitSource,
        }
    }

    /// Store bookkeeping.
    pub fn meta(&self) -> &Meta {
        each_kind!(self, o => &o.meta)
    }

    /// Mutable store bookkeeping (the store sets version and timestamps on commit).
    pub fn meta_mut(&mut self) -> &mut Meta {
        each_kind!(self, o => &mut o.meta)
    }

    /// The object's id.
    pub fn id(&self) -> &str {
        &self.meta().id
    }

    /// The revision of the object's last change.
    pub fn version(&self) -> u64 {
        self.meta().version.index
    }

    /// The user-visible name, for kinds that have one (tasks and nodes have none that is unique).
    pub fn name(&self) -> Option<&str> {
        match self {
            Object::Cluster(o) => Some(&o.spec.name),
            Object::Service(o) => Some(&o.spec.name),
            Object::Network(o) => Some(&o.spec.name),
            Object::Secret(o) => Some(&o.spec.name),
            Object::Config(o) => Some(&o.spec.name),
            Object::Stack(o) => Some(&o.spec.name),
            Object::StackRevision(o) => Some(&o.name),
            Object::Health(o) => Some(&o.service_name),
            Object::GitSource(o) => Some(&o.spec.name),
            Object::Node(_) | Object::Task(_) => None,
        }
    }

    /// The name people know the object by: its unique name where the kind has one, a node's
    /// `Spec.Name` or else its hostname, a task's own name or else the `service.slot.id`
    /// (`service.node.id` for global services) dockerd derives for it.
    pub fn display_name(&self) -> Cow<'_, str> {
        match self {
            Object::Node(n) if !n.spec.name.is_empty() => Cow::Borrowed(&n.spec.name),
            Object::Node(n) => Cow::Borrowed(&n.description.hostname),
            Object::Task(t) if !t.name.is_empty() => Cow::Borrowed(&t.name),
            Object::Task(t) => {
                let slot = if t.slot != 0 {
                    t.slot.to_string()
                } else {
                    t.node_id.clone()
                };
                Cow::Owned(format!("{}.{slot}.{}", t.service_name, t.meta.id))
            }
            other => Cow::Borrowed(other.name().unwrap_or_default()),
        }
    }

    /// The value of label `key`: the spec's labels (a node's user labels, not its engine's);
    /// for a task, its own labels, then those of its container spec. A task's container spec is
    /// the copy of its service's template made when the task was created, and that is where
    /// `docker stack deploy` repeats the stack's namespace label; a label set on the service
    /// alone is not visible on its tasks.
    pub fn label(&self, key: &str) -> Option<&str> {
        let labels = match self {
            Object::Cluster(c) => &c.spec.labels,
            Object::Node(n) => &n.spec.labels,
            Object::Service(s) => &s.spec.labels,
            Object::Network(n) => &n.spec.labels,
            Object::Secret(s) => &s.spec.labels,
            Object::Config(c) => &c.spec.labels,
            Object::Stack(s) => &s.spec.labels,
            Object::StackRevision(_) | Object::GitSource(_) => return None,
            Object::Health(s) if key == STACK_NAMESPACE_LABEL && !s.stack.is_empty() => {
                return Some(&s.stack)
            }
            Object::Health(_) => return None,
            Object::Task(t) => {
                return t.labels.get(key).map(String::as_str).or_else(|| {
                    t.spec
                        .container_spec
                        .as_ref()
                        .and_then(|c| c.labels.get(key))
                        .map(String::as_str)
                })
            }
        };
        labels.get(key).map(String::as_str)
    }

    /// Approximate encoded size in bytes (used to bound transactions).
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map(|v| v.len()).unwrap_or(0)
    }

    /// A rough size without encoding: the payload of secrets and configs (which can be large)
    /// plus a flat allowance for the rest. Enough to tell a bulk write from an ordinary one.
    pub fn approx_len(&self) -> usize {
        const REST: usize = 1024;
        match self {
            Object::Secret(s) => s.spec.data.len() * 4 / 3 + REST,
            Object::Config(c) => c.spec.data.len() * 4 / 3 + REST,
            Object::StackRevision(r) => {
                let data: usize = (r.objects.secrets.iter().map(|s| s.data.len()))
                    .chain(r.objects.configs.iter().map(|c| c.data.len()))
                    .sum();
                data * 4 / 3 + REST * (1 + r.objects.services.len())
            }
            _ => REST,
        }
    }
}

/// Typed access to one kind of object inside an [`Object`].
pub trait StoreObject: Clone + Sized + Send + Sync + 'static {
    /// The kind of this type.
    const KIND: Kind;
    /// Borrow from an `Object` of this kind.
    fn from_object(o: &Object) -> Option<&Self>;
    /// Wrap into an `Object`.
    fn into_object(self) -> Object;
    /// Store bookkeeping.
    fn meta(&self) -> &Meta;
}

macro_rules! store_object {
    ($ty:ident) => {
        impl StoreObject for $ty {
            const KIND: Kind = Kind::$ty;
            fn from_object(o: &Object) -> Option<&Self> {
                match o {
                    Object::$ty(x) => Some(x),
                    _ => None,
                }
            }
            fn into_object(self) -> Object {
                Object::$ty(self)
            }
            fn meta(&self) -> &Meta {
                &self.meta
            }
        }
        impl From<$ty> for Object {
            fn from(x: $ty) -> Object {
                Object::$ty(x)
            }
        }
    };
}

store_object!(Cluster);
store_object!(Node);
store_object!(Service);
store_object!(Task);
store_object!(Network);
store_object!(Secret);
store_object!(Config);
store_object!(Stack);
store_object!(StackRevision);
store_object!(Health);
store_object!(GitSource);
