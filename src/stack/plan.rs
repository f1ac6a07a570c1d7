//! Planning: what applying a stack's objects would change, and the one transaction that does it.
//!
//! The desired objects are canonicalised the way the Docker API canonicalises what `docker stack
//! deploy` sends (mode defaults, swarmkit's normalisation, names resolved to ids), so an object
//! that `docker stack deploy` created from the same file compares equal and re-applying an
//! unchanged file is a no-op: no write, no new revision, no task replaced.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shoal_store::model::StoreObject;
use shoal_store::model::{
    new_id, ContainerSpec, InventoryItem, JobStatus, Kind, Meta, Network, NetworkSpec, Object,
    PublishMode, RevisionResult, Secret, Service, ServiceSpec, Stack, StackObjects, StackRevision,
    StackSpec, Task, TaskState, Timestamp, Version, STACK_NAMESPACE_LABEL,
};
use shoal_store::{Obj, Txn, View};

use super::diff::{diff, FieldDiff};
use super::versions::{self, Versioned};
use super::StackError;
use crate::api::error::ApiError;
use crate::api::{networks, secrets as api_secrets, service_refs, service_spec};
use shoal_controllers::scheduler::feasibility;

/// Tasks marked for removal per pruned service in one transaction (as `docker service rm`).
const MAX_TASKS_WITH_REMOVAL: usize = 10_000;

/// What to apply to a stack.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// The stack's name.
    pub stack: String,
    /// Its objects, canonical and name-based.
    pub objects: StackObjects,
    /// Digest of the sources.
    pub source_digest: String,
    /// Who applies.
    pub applied_by: String,
    /// Why (`apply`, `rollback to 2`).
    pub cause: String,
    /// Remove inventory objects that are no longer desired.
    pub prune: bool,
    /// Warnings from loading the sources, passed through to the plan.
    pub warnings: Vec<String>,
    /// How many revisions the stack keeps from this revision on (`None`: as before).
    pub history_limit: Option<u32>,
    /// The GitOps source applying it (empty: not one).
    pub git_source: String,
    /// The git commit it comes from (empty: not from git).
    pub git_commit: String,
}

/// What happens to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It is new.
    Create,
    /// It changes in place.
    Update,
    /// It is removed and created again (a network spec, a service mode, a secret's data).
    Replace,
    /// It is pruned.
    Delete,
    /// Nothing changes.
    Unchanged,
    /// The stack owns it, the file no longer has it, and `--prune` was not given: it stays.
    Orphaned,
}

/// One object's line in a plan.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// What happens to it.
    pub action: Action,
    /// The fields that change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    /// Whether its tasks are replaced (services).
    pub rolls_tasks: bool,
    /// Why, in words (what makes tasks roll, why a replace).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// For services: why not every task would find a node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
    /// Whether the stack takes ownership of it (made by `docker stack deploy`).
    pub adopted: bool,
}

/// What an apply would do.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The stack.
    pub stack: String,
    /// The stack's revision now (0: none yet).
    pub current_revision: u64,
    /// The revision an apply would record (absent: nothing would change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_revision: Option<u64>,
    /// Every object of the stack, desired or owned.
    pub changes: Vec<Change>,
    /// Warnings (unsupported keys, unschedulable services).
    pub warnings: Vec<String>,
    /// Notes (adoption).
    pub messages: Vec<String>,
    /// Identifies the plan and the store state it was made from; `apply --plan-token` goes
    /// ahead only if an apply now would make the same plan.
    pub token: String,
}

impl Plan {
    /// Whether an apply would write anything.
    pub fn has_changes(&self) -> bool {
        self.next_revision.is_some()
    }
}

/// A plan and the transaction that carries it out.
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    /// Everything in one transaction (empty when nothing changes).
    pub txn: Txn,
    /// The stack's id.
    pub stack_id: String,
}

/// Plans applying `d` to the store as `view` shows it.
pub fn prepare(view: &View, d: &Desired) -> Result<Prepared, StackError> {
    check_stack_name(&d.stack)?;
    let stack = view
        .get_by_name::<Stack>(&d.stack)
        .filter(|s| s.spec.name == d.stack);
    let mut b = Builder::new(view, d, stack.as_ref());
    b.networks()?;
    b.versioned::<Secret>(Kind::Secret, &d.objects.secrets)?;
    b.versioned::<shoal_store::model::Config>(Kind::Config, &d.objects.configs)?;
    b.externals()?;
    b.services()?;
    b.orphans()?;
    b.finish()
}

/// Whether `name` may name a stack: stack names become name prefixes and label values, so
/// what `docker stack deploy` accepts (1 to 63 letters, digits, '-', '_' or '.', starting with
/// a letter or digit).
pub(crate) fn is_valid_stack_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn check_stack_name(name: &str) -> Result<(), StackError> {
    if is_valid_stack_name(name) {
        Ok(())
    } else {
        Err(StackError::invalid(
            format!("stack name {name:?}"),
            "use letters, digits, '-', '_' or '.', starting with a letter or digit (at most 63)",
        ))
    }
}

fn api(what: impl std::fmt::Display) -> impl Fn(ApiError) -> StackError {
    let what = what.to_string();
    move |e| StackError::invalid(&what, e.message)
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A service spec as plans show it: without registry credentials.
fn shown(spec: &ServiceSpec) -> Value {
    let mut v = to_json(spec);
    if let Some(c) = v
        .pointer_mut("/TaskTemplate/ContainerSpec")
        .and_then(Value::as_object_mut)
    {
        c.remove(ContainerSpec::REGISTRY_AUTH_FIELD);
    }
    v
}

/// A resolved reference: the object's id and store name.
#[derive(Clone, Debug)]
struct Resolved {
    id: String,
    name: String,
}

struct Builder<'a> {
    view: &'a View,
    d: &'a Desired,
    stack: Option<&'a Obj<Stack>>,
    /// Every object some stack owns (current or retired), by id: the stack's name.
    owners: HashMap<String, String>,
    changes: Vec<Change>,
    txn: Txn,
    inventory: Vec<InventoryItem>,
    retired: Vec<InventoryItem>,
    messages: Vec<String>,
    warnings: Vec<String>,
    networks: HashMap<String, Resolved>,
    secrets: HashMap<String, Resolved>,
    configs: HashMap<String, Resolved>,
    /// Objects this transaction deletes.
    deleted: HashSet<String>,
    /// Networks this transaction creates (for subnet allocation).
    new_networks: Vec<Network>,
    /// Ingress ports this transaction allocates.
    ports: BTreeSet<u32>,
    /// `(id, what the plan depends on)` of every object read: part of the plan token.
    read: BTreeSet<(String, u64)>,
}

/// What a plan depends on in an object it read: the spec of a service, network, secret or
/// config (their other fields move with every task: allocations, update status), the version
/// of anything else.
fn plan_input(o: &Object) -> u64 {
    let spec = match o {
        Object::Service(s) => serde_json::to_vec(&s.spec),
        Object::Network(n) => serde_json::to_vec(&n.spec),
        Object::Secret(s) => serde_json::to_vec(&s.spec),
        Object::Config(c) => serde_json::to_vec(&c.spec),
        other => return other.version(),
    };
    let digest = Sha256::digest(spec.unwrap_or_default());
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

impl<'a> Builder<'a> {
    fn new(view: &'a View, d: &'a Desired, stack: Option<&'a Obj<Stack>>) -> Self {
        let mut owners = HashMap::new();
        for s in view.list::<Stack>() {
            for item in s.inventory.iter().chain(s.retired.iter()) {
                owners.insert(item.id.clone(), s.spec.name.clone());
            }
        }
        let mut read = BTreeSet::new();
        if let Some(s) = stack {
            // The stack's revision and retired objects, not its version: the stack controller
            // rewrites its status with every task change, which changes no plan.
            let retired: Vec<&str> = s.retired.iter().map(|i| i.id.as_str()).collect();
            read.insert((format!("{}/{}", s.meta.id, retired.join(",")), s.revision));
        }
        Builder {
            view,
            d,
            stack,
            owners,
            changes: Vec::new(),
            txn: Txn::new(),
            inventory: Vec::new(),
            retired: stack.map(|s| s.retired.clone()).unwrap_or_default(),
            messages: Vec::new(),
            warnings: d.warnings.clone(),
            networks: HashMap::new(),
            secrets: HashMap::new(),
            configs: HashMap::new(),
            deleted: HashSet::new(),
            new_networks: Vec::new(),
            ports: BTreeSet::new(),
            read,
        }
    }

    fn change(&mut self, kind: Kind, name: &str, action: Action) -> &mut Change {
        self.changes.push(Change {
            kind,
            name: name.to_string(),
            action,
            fields: Vec::new(),
            rolls_tasks: false,
            why: String::new(),
            unschedulable: None,
            adopted: false,
        });
        self.changes.last_mut().expect("just pushed")
    }

    fn own(&mut self, kind: Kind, name: &str, id: &str, spec_name: &str) {
        self.inventory.push(InventoryItem {
            kind,
            name: name.to_string(),
            id: id.to_string(),
            spec_name: if spec_name == name {
                String::new()
            } else {
                spec_name.to_string()
            },
        });
    }

    fn owned_item(&self, kind: Kind, spec_name: &str) -> Option<&'a InventoryItem> {
        self.stack?
            .inventory
            .iter()
            .find(|i| i.kind == kind && i.spec_name() == spec_name)
    }

    /// The existing object named `name` that this stack may take: its own, or one `docker
    /// stack deploy` labelled for it (adopted). Anything else with that name is a conflict.
    fn claim<T: StoreObject>(
        &mut self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<(Obj<T>, bool)>, StackError> {
        let found = match self.owned_item(kind, name) {
            Some(item) => self.view.get::<T>(&item.id),
            None => None,
        };
        let found = found.or_else(|| {
            self.view
                .get_by_name::<T>(name)
                .filter(|o| o.object().name() == Some(name))
        });
        let Some(obj) = found else { return Ok(None) };
        let id = obj.object().id().to_string();
        self.read.insert((id.clone(), plan_input(obj.object())));
        match self.owners.get(&id) {
            Some(owner) if *owner == self.d.stack => Ok(Some((obj, false))),
            Some(owner) => Err(StackError::Conflict(format!(
                "{kind} {name} belongs to stack {owner}; a stack only changes its own objects: rename it in the file or remove it from stack {owner} first"
            ))),
            None => {
                let label = obj.object().label(STACK_NAMESPACE_LABEL);
                if label == Some(self.d.stack.as_str()) {
                    self.messages.push(format!(
                        "adopting {kind} {name}: it was created by `docker stack deploy` for stack {}",
                        self.d.stack
                    ));
                    Ok(Some((obj, true)))
                } else {
                    Err(StackError::Conflict(format!(
                        "a {kind} named {name} already exists and is not part of stack {}{}; remove or rename it, or give the stack's {kind} another name",
                        self.d.stack,
                        label.map(|l| format!(" (it is labelled for stack {l})")).unwrap_or_default()
                    )))
                }
            }
        }
    }

    fn networks(&mut self) -> Result<(), StackError> {
        let mut specs = self.d.objects.networks.clone();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        for mut spec in specs {
            let name = spec.name.clone();
            networks::check_spec(&mut spec).map_err(api(format!("network {name}")))?;
            if spec.ingress {
                return Err(StackError::invalid(
                    format!("network {name}"),
                    "a stack cannot create the ingress network; remove `ingress: true`",
                ));
            }
            match self.claim::<Network>(Kind::Network, &name)? {
                None => {
                    let id = self.create_network(spec)?;
                    self.change(Kind::Network, &name, Action::Create);
                    self.own(Kind::Network, &name, &id, &name);
                }
                Some((cur, adopted)) => {
                    let fields = diff(&to_json(&cur.spec), &to_json(&spec));
                    if fields.is_empty() {
                        self.networks.insert(
                            name.clone(),
                            Resolved {
                                id: cur.meta.id.clone(),
                                name: name.clone(),
                            },
                        );
                        self.own(Kind::Network, &name, &cur.meta.id, &name);
                        let c = self.change(Kind::Network, &name, Action::Unchanged);
                        c.adopted = adopted;
                        continue;
                    }
                    let users = self.outside_users(|s| spec_uses(s, Kind::Network, &cur.meta.id));
                    if !users.is_empty() {
                        return Err(StackError::Conflict(format!(
                            "network {name} must be re-created to change it, but services outside stack {} use it: {}; detach them first",
                            self.d.stack,
                            users.join(", ")
                        )));
                    }
                    self.txn = std::mem::take(&mut self.txn).delete(
                        Kind::Network,
                        cur.meta.id.clone(),
                        Some(cur.meta.version.index),
                    );
                    self.deleted.insert(cur.meta.id.clone());
                    let id = self.create_network(spec)?;
                    self.own(Kind::Network, &name, &id, &name);
                    let c = self.change(Kind::Network, &name, Action::Replace);
                    c.fields = fields;
                    c.adopted = adopted;
                    c.why = "a network's spec cannot change in place: it is re-created and the services on it move to the new one".into();
                }
            }
        }
        Ok(())
    }

    fn create_network(&mut self, spec: NetworkSpec) -> Result<String, StackError> {
        let name = spec.name.clone();
        let allocation = networks::allocate_with(self.view, &spec, &self.new_networks)
            .map_err(api(format!("network {name}")))?;
        let id = new_id();
        let network = Network {
            meta: Meta::with_id(id.clone()),
            spec,
            allocation: Some(allocation),
        };
        self.new_networks.push(network.clone());
        self.txn = std::mem::take(&mut self.txn).create(network);
        self.networks.insert(
            name.clone(),
            Resolved {
                id: id.clone(),
                name,
            },
        );
        Ok(id)
    }

    /// Names of services outside this stack's desired services for which `uses` holds.
    fn outside_users(&self, uses: impl Fn(&ServiceSpec) -> bool) -> Vec<String> {
        let ours: HashSet<&str> = self
            .d
            .objects
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        self.view
            .list::<Service>()
            .filter(|s| !ours.contains(s.spec.name.as_str()) && !self.deleted.contains(&s.meta.id))
            .filter(|s| uses(&s.spec))
            .map(|s| s.spec.name.clone())
            .collect()
    }

    fn versioned<T: Versioned>(&mut self, kind: Kind, specs: &[T::Spec]) -> Result<(), StackError>
    where
        T::Spec: Serialize,
    {
        let mut specs = specs.to_vec();
        specs.sort_by(|a, b| T::name_of(a).cmp(T::name_of(b)));
        for spec in specs {
            let name = T::name_of(&spec).to_string();
            api_secrets::validate_name(&name).map_err(api(format!("{kind} {name}")))?;
            let data_len = T::data(&spec).len();
            if data_len > api_secrets::MAX_SECRET_SIZE {
                return Err(StackError::invalid(
                    format!("{kind} {name}"),
                    format!(
                        "{data_len} bytes is more than the {} byte limit",
                        api_secrets::MAX_SECRET_SIZE
                    ),
                ));
            }
            let current = self.claim::<T>(kind, &name)?;
            let resolved = match current {
                Some((cur, adopted)) if T::same_content(cur.spec(), &spec) => {
                    let cur_name = T::name_of(cur.spec()).to_string();
                    let mut wanted = cur.spec().clone();
                    *T::labels_mut(&mut wanted) = T::labels_mut(&mut spec.clone()).clone();
                    let fields = diff(&to_json(cur.spec()), &to_json(&wanted));
                    let action = if fields.is_empty() {
                        Action::Unchanged
                    } else {
                        let mut updated: T = cur.to_owned_value();
                        *updated.spec_mut() = wanted;
                        self.txn = std::mem::take(&mut self.txn).update(updated.into_object());
                        Action::Update
                    };
                    let c = self.change(kind, &name, action);
                    c.fields = fields;
                    c.adopted = adopted;
                    Resolved {
                        id: cur.meta().id.clone(),
                        name: cur_name,
                    }
                }
                Some((cur, adopted)) => {
                    let cur_name = T::name_of(cur.spec()).to_string();
                    self.retired.push(InventoryItem {
                        kind,
                        name: cur_name.clone(),
                        id: cur.meta().id.clone(),
                        spec_name: if cur_name == name {
                            String::new()
                        } else {
                            name.clone()
                        },
                    });
                    let (r, restored) = self.new_revision::<T>(kind, &name, spec.clone())?;
                    let c = self.change(kind, &name, Action::Replace);
                    c.adopted = adopted;
                    c.fields = vec![FieldDiff {
                        path: "Data".into(),
                        old: Some(json!(versions::digest(T::data(cur.spec())))),
                        new: Some(json!(versions::digest(T::data(&spec)))),
                    }];
                    c.why = match restored {
                        true => format!("its data is back to that of revision {}, which is used again; the services using it roll", r.name),
                        false => format!("its data changed: a new immutable revision {} is created and the services using it roll to it", r.name),
                    };
                    r
                }
                None => {
                    let (r, _) = self.new_revision::<T>(kind, &name, spec.clone())?;
                    self.change(kind, &name, Action::Create);
                    r
                }
            };
            self.own(kind, &resolved.name, &resolved.id, &name);
            let map = match kind {
                Kind::Secret => &mut self.secrets,
                _ => &mut self.configs,
            };
            map.insert(name, resolved);
        }
        Ok(())
    }

    /// A revision of `name` with `spec`'s content: a retired one with the same content if there
    /// is one (returned with `true`), else a new object.
    fn new_revision<T: Versioned>(
        &mut self,
        kind: Kind,
        name: &str,
        spec: T::Spec,
    ) -> Result<(Resolved, bool), StackError> {
        let retired = self.retired.iter().position(|i| {
            i.kind == kind
                && i.spec_name() == name
                && self
                    .view
                    .get::<T>(&i.id)
                    .is_some_and(|o| T::same_content(o.spec(), &spec))
        });
        if let Some(at) = retired {
            let item = self.retired.remove(at);
            return Ok((
                Resolved {
                    id: item.id,
                    name: item.name,
                },
                true,
            ));
        }
        let taken = |n: &str| {
            self.view
                .get_by_name::<T>(n)
                .is_some_and(|o| o.object().name() == Some(n))
        };
        let store_name = if !taken(name) {
            name.to_string()
        } else {
            let highest = self
                .retired
                .iter()
                .chain(self.stack.map(|s| s.inventory.as_slice()).unwrap_or(&[]))
                .filter(|i| i.kind == kind && i.spec_name() == name)
                .filter_map(|i| versions::revision_of(name, &i.name))
                .max()
                .unwrap_or(1);
            (highest + 1..)
                .map(|n| versions::revision_name(name, n))
                .find(|n| !taken(n))
                .expect("an unused revision name")
        };
        let mut spec = spec;
        T::rename(&mut spec, store_name.clone());
        api_secrets::validate_name(&store_name).map_err(api(format!("{kind} {name}")))?;
        let id = new_id();
        self.txn = std::mem::take(&mut self.txn).create(T::build(id.clone(), spec).into_object());
        Ok((
            Resolved {
                id,
                name: store_name,
            },
            false,
        ))
    }

    fn externals(&mut self) -> Result<(), StackError> {
        for name in &self.d.objects.external_networks {
            let found = self
                .view
                .get_by_name::<Network>(name)
                .filter(|n| &n.spec.name == name)
                .or_else(|| self.view.get::<Network>(name));
            match found {
                Some(n) => {
                    self.read.insert((n.meta.id.clone(), plan_input(n.object())));
                    self.networks.insert(
                        name.clone(),
                        Resolved {
                            id: n.meta.id.clone(),
                            name: name.clone(),
                        },
                    );
                }
                None => return Err(StackError::Invalid(format!(
                    "network {name:?} is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"
                ))),
            }
        }
        let secrets =
            external::<Secret>(self.view, Kind::Secret, &self.d.objects.external_secrets)?;
        self.secrets.extend(secrets);
        let configs = external::<shoal_store::model::Config>(
            self.view,
            Kind::Config,
            &self.d.objects.external_configs,
        )?;
        self.configs.extend(configs);
        Ok(())
    }

    /// `spec` with names resolved to ids, checked and normalised as the Docker API would.
    fn resolve_service(&self, spec: &ServiceSpec) -> Result<ServiceSpec, StackError> {
        let what = format!("service {}", spec.name);
        let mut s = spec.clone();
        for att in s
            .task_template
            .networks
            .iter_mut()
            .chain(s.networks.iter_mut())
        {
            if let Some(r) = self.networks.get(&att.target) {
                att.target = r.id.clone();
                continue;
            }
            let net = crate::api::resolve::network(self.view, &att.target)
                .map_err(|_| {
                    StackError::invalid(
                        &what,
                        format!(
                            "network {:?} is neither in the stack nor declared external; add it under `networks:`",
                            att.target
                        ),
                    )
                })?;
            if net.spec.ingress || self.deleted.contains(&net.meta.id) {
                return Err(StackError::invalid(
                    &what,
                    format!("it cannot be attached to network {:?}", att.target),
                ));
            }
            att.target = net.meta.id.clone();
        }
        service_spec::convert(&mut s).map_err(api(&what))?;
        if let Some(c) = s.task_template.container_spec.as_mut() {
            for r in &mut c.secrets {
                let found = reference(&self.secrets, &what, "secret", &r.secret_name)?;
                r.secret_id = found.id.clone();
                r.secret_name = found.name.clone();
            }
            for r in &mut c.configs {
                let found = reference(&self.configs, &what, "config", &r.config_name)?;
                r.config_id = found.id.clone();
                r.config_name = found.name.clone();
            }
            // The loader names a credential spec's config; the spec holds its id.
            if let Some(cs) = c
                .privileges
                .as_mut()
                .and_then(|p| p.credential_spec.as_mut())
                .filter(|cs| !cs.config.is_empty())
            {
                cs.config = reference(&self.configs, &what, "credential spec config", &cs.config)?
                    .id
                    .clone();
            }
        }
        service_spec::validate(&s).map_err(api(&what))?;
        service_spec::normalize(&mut s);
        Ok(s)
    }

    fn services(&mut self) -> Result<(), StackError> {
        let mut specs = self.d.objects.services.clone();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut published: HashMap<(u32, String), String> = HashMap::new();
        for desired in &specs {
            let name = desired.name.clone();
            let mut spec = self.resolve_service(desired)?;
            for p in spec.endpoint_spec.iter().flat_map(|e| e.ports.iter()) {
                if p.published_port == 0 {
                    continue;
                }
                let key = (p.published_port, p.protocol_or_default().to_string());
                if let Some(other) = published.insert(key, name.clone()) {
                    return Err(StackError::invalid(
                        format!("service {name}"),
                        format!(
                            "port {} is also published by service {other} of this stack",
                            p.published_port
                        ),
                    ));
                }
            }
            let current = self.claim::<Service>(Kind::Service, &name)?;
            let own_id = current.as_ref().map(|(c, _)| c.meta.id.clone());
            service_refs::check_port_conflicts(self.view, &spec, own_id.as_deref())
                .map_err(api(format!("service {name}")))?;
            match current {
                None => {
                    let id = new_id();
                    let unschedulable = feasibility::check(self.view, "", &spec).err();
                    self.create_service(&id, spec);
                    self.own(Kind::Service, &name, &id, &name);
                    let c = self.change(Kind::Service, &name, Action::Create);
                    c.rolls_tasks = true;
                    c.unschedulable = unschedulable.map(|u| u.reason);
                }
                Some((cur, adopted)) => {
                    if let (Some(c), Some(old)) = (
                        spec.task_template.container_spec.as_mut(),
                        cur.spec.task_template.container_spec.as_ref(),
                    ) {
                        if c.registry_auth.is_empty() {
                            c.registry_auth = old.registry_auth.clone();
                        }
                    }
                    let fields = diff(&shown(&cur.spec), &shown(&spec));
                    if fields.is_empty() {
                        self.own(Kind::Service, &name, &cur.meta.id, &name);
                        let c = self.change(Kind::Service, &name, Action::Unchanged);
                        c.adopted = adopted;
                        continue;
                    }
                    let rolls = spec.task_template != cur.spec.task_template;
                    let unschedulable = feasibility::check(self.view, &cur.meta.id, &spec)
                        .err()
                        .map(|u| u.reason);
                    let why = rolls.then(|| {
                        let paths: Vec<&str> = fields
                            .iter()
                            .map(|f| f.path.as_str())
                            .filter(|p| p.starts_with("TaskTemplate"))
                            .collect();
                        format!("its tasks roll because {} changed", paths.join(", "))
                    });
                    if spec.mode_kind() != cur.spec.mode_kind() {
                        self.remove_service(&cur);
                        let id = new_id();
                        self.create_service(&id, spec);
                        self.own(Kind::Service, &name, &id, &name);
                        let c = self.change(Kind::Service, &name, Action::Replace);
                        c.fields = fields;
                        c.rolls_tasks = true;
                        c.adopted = adopted;
                        c.unschedulable = unschedulable;
                        c.why = "a service's mode cannot change in place: it is removed and created again".into();
                        continue;
                    }
                    self.update_service(&cur, spec);
                    self.own(Kind::Service, &name, &cur.meta.id, &name);
                    let c = self.change(Kind::Service, &name, Action::Update);
                    c.fields = fields;
                    c.rolls_tasks = rolls;
                    c.adopted = adopted;
                    c.unschedulable = unschedulable;
                    c.why = why.unwrap_or_default();
                }
            }
        }
        for c in &self.changes {
            if let Some(u) = &c.unschedulable {
                self.warnings.push(format!(
                    "service {}: not every task would find a node: {u}",
                    c.name
                ));
            }
        }
        Ok(())
    }

    fn take_ports(&mut self, service: &Service) {
        self.ports.extend(
            service
                .endpoint
                .ports
                .iter()
                .filter(|p| p.publish_mode_or_default() != PublishMode::Host)
                .map(|p| p.published_port),
        );
    }

    fn create_service(&mut self, id: &str, spec: ServiceSpec) {
        let endpoint =
            service_refs::allocate_endpoint_with(self.view, &spec, id, None, &self.ports);
        let job_status = spec.is_job().then(|| JobStatus {
            job_iteration: Version::at(0),
            last_execution: Timestamp::now(),
        });
        let service = Service {
            meta: Meta::with_id(id.to_string()),
            spec,
            endpoint,
            job_status,
            spec_version: Version::at(0),
            ..Default::default()
        };
        self.take_ports(&service);
        self.txn = std::mem::take(&mut self.txn).create(service);
    }

    /// An update as `docker service update` makes it: the old spec becomes the previous one.
    fn update_service(&mut self, cur: &Obj<Service>, spec: ServiceSpec) {
        let mut svc: Service = cur.to_owned_value();
        if let Some(job) = svc.job_status.as_mut() {
            job.job_iteration.index += 1;
            job.last_execution = Timestamp::now();
        }
        svc.take_new_spec(spec);
        svc.update_status = None;
        svc.endpoint = service_refs::allocate_endpoint_with(
            self.view,
            &svc.spec,
            &svc.meta.id,
            Some(&cur.endpoint),
            &self.ports,
        );
        self.take_ports(&svc);
        self.txn = std::mem::take(&mut self.txn).update(svc);
    }

    /// A removal as `docker service rm` makes it: the service goes, its tasks are to be removed.
    fn remove_service(&mut self, cur: &Obj<Service>) {
        let mut txn = std::mem::take(&mut self.txn).delete(
            Kind::Service,
            cur.meta.id.clone(),
            Some(cur.meta.version.index),
        );
        for t in self
            .view
            .tasks_of_service(&cur.meta.id)
            .filter(|t| t.desired_state < TaskState::Remove)
            .take(MAX_TASKS_WITH_REMOVAL)
        {
            let mut task: Task = t.to_owned_value();
            task.desired_state = TaskState::Remove;
            txn = txn.update(task);
        }
        self.deleted.insert(cur.meta.id.clone());
        self.txn = txn;
    }

    /// Inventory objects the file no longer has: pruned with `--prune`, else kept and shown.
    fn orphans(&mut self) -> Result<(), StackError> {
        let Some(stack) = self.stack else {
            return Ok(());
        };
        let wanted: HashSet<(Kind, String)> = self
            .changes
            .iter()
            .map(|c| (c.kind, c.name.clone()))
            .collect();
        let mut orphans: Vec<&InventoryItem> = stack
            .inventory
            .iter()
            .filter(|i| !wanted.contains(&(i.kind, i.spec_name().to_string())))
            .collect();
        // Services first, so the networks, secrets and configs they used are free to go.
        orphans.sort_by_key(|i| (i.kind != Kind::Service, i.kind, i.name.clone()));
        for item in orphans {
            let Some(obj) = self.view.get_object(item.kind, &item.id) else {
                continue;
            };
            self.read.insert((item.id.clone(), plan_input(&obj)));
            if !self.d.prune {
                self.inventory.push(item.clone());
                self.change(item.kind, item.spec_name(), Action::Orphaned)
                    .why = "no longer in the file; `--prune` removes it".into();
                continue;
            }
            match item.kind {
                Kind::Service => {
                    if let Some(s) = Obj::<Service>::new(obj.clone()) {
                        self.remove_service(&s);
                    }
                }
                kind => {
                    let id = item.id.clone();
                    let users = self.final_users(kind, &id);
                    if !users.is_empty() {
                        return Err(StackError::Conflict(format!(
                            "{kind} {} cannot be pruned: services use it: {}; remove them or keep it in the file",
                            item.spec_name(),
                            users.join(", ")
                        )));
                    }
                    self.txn =
                        std::mem::take(&mut self.txn).delete(kind, id.clone(), Some(obj.version()));
                    self.deleted.insert(id);
                }
            }
            self.change(item.kind, item.spec_name(), Action::Delete);
        }
        Ok(())
    }

    /// Services that would still refer to `id` after this transaction: others' services (as
    /// stored) and this stack's (as desired, which reference names, so by resolved name).
    fn final_users(&self, kind: Kind, id: &str) -> Vec<String> {
        let ours: HashSet<&str> = self
            .d
            .objects
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        self.view
            .list::<Service>()
            .filter(|s| !self.deleted.contains(&s.meta.id) && !ours.contains(s.spec.name.as_str()))
            .filter(|s| spec_uses(&s.spec, kind, id))
            .map(|s| s.spec.name.clone())
            .collect()
    }

    fn finish(mut self) -> Result<Prepared, StackError> {
        let previous_inventory: BTreeSet<&InventoryItem> = self
            .stack
            .map(|s| s.inventory.iter().collect())
            .unwrap_or_default();
        self.inventory.sort();
        let inventory_changed =
            self.inventory.iter().collect::<BTreeSet<_>>() != previous_inventory;
        // A write is due for a new stack, a changed or adopted object, or an inventory that
        // no longer matches the store (objects removed behind the stack's back).
        let changed = self.stack.is_none()
            || inventory_changed
            || self
                .changes
                .iter()
                .any(|c| c.adopted || !matches!(c.action, Action::Unchanged | Action::Orphaned));
        let current_revision = self.stack.map(|s| s.revision).unwrap_or(0);
        let token = self.token();
        let stack_id = self.stack.map(|s| s.meta.id.clone()).unwrap_or_else(new_id);
        let mut plan = Plan {
            stack: self.d.stack.clone(),
            current_revision,
            next_revision: None,
            changes: self.changes,
            warnings: self.warnings,
            messages: self.messages,
            token,
        };
        if !changed {
            return Ok(Prepared {
                plan,
                txn: Txn::new(),
                stack_id,
            });
        }
        let number = current_revision + 1;
        plan.next_revision = Some(number);
        let mut stack = match self.stack {
            Some(s) => s.to_owned_value(),
            None => Stack {
                meta: Meta::with_id(stack_id.clone()),
                spec: StackSpec {
                    name: self.d.stack.clone(),
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        if let Some(limit) = self.d.history_limit {
            stack.spec.history_limit = limit;
        }
        stack.inventory = self.inventory;
        stack.retired = self.retired;
        stack.revision = number;
        let revision = StackRevision {
            meta: Meta::with_id(new_id()),
            name: StackRevision::name_of(&self.d.stack, number),
            stack_id: stack_id.clone(),
            stack: self.d.stack.clone(),
            number,
            source_digest: self.d.source_digest.clone(),
            applied_by: self.d.applied_by.clone(),
            applied_at: Timestamp::now(),
            cause: self.d.cause.clone(),
            git_source: self.d.git_source.clone(),
            git_commit: self.d.git_commit.clone(),
            objects: self.d.objects.clone(),
            result: RevisionResult {
                state: "Applied".into(),
                message: String::new(),
            },
        };
        let limit = u64::from(stack.spec.history_limit());
        let mut txn = self.txn;
        for old in self.view.list::<StackRevision>() {
            if old.stack_id == stack_id && old.number + limit <= number {
                txn = txn.delete(Kind::StackRevision, old.meta.id.clone(), None);
            }
        }
        txn = match self.stack {
            Some(_) => txn.update(stack),
            None => txn.create(stack),
        };
        txn = txn.create(revision);
        Ok(Prepared {
            plan,
            txn,
            stack_id,
        })
    }

    /// The objects read and the desired state, hashed: equal tokens mean the same plan.
    fn token(&self) -> String {
        let mut h = Sha256::new();
        for (id, version) in &self.read {
            h.update(id.as_bytes());
            h.update(version.to_le_bytes());
        }
        h.update(serde_json::to_vec(&self.d.objects).unwrap_or_default());
        h.update([u8::from(self.d.prune)]);
        hex::encode(&h.finalize()[..16])
    }
}

/// The secret or config `name` a service (`what`) refers to: the stack's own or an external one.
fn reference<'m>(
    resolved: &'m HashMap<String, Resolved>,
    what: &str,
    kind: &str,
    name: &str,
) -> Result<&'m Resolved, StackError> {
    resolved.get(name).ok_or_else(|| {
        StackError::invalid(
            what,
            format!("{kind} {name:?} is neither in the stack nor declared external"),
        )
    })
}

/// The external secrets or configs `names`, which must exist.
fn external<T: Versioned>(
    view: &View,
    kind: Kind,
    names: &[String],
) -> Result<Vec<(String, Resolved)>, StackError> {
    names
        .iter()
        .map(|name| {
            let found = view
                .get_by_name::<T>(name)
                .filter(|o| T::name_of(o.spec()) == name)
                .ok_or_else(|| {
                    StackError::Invalid(format!(
                        "{kind} {name:?} is declared as external, but could not be found; create it with `docker {kind} create {name} FILE` first"
                    ))
                })?;
            Ok((
                name.clone(),
                Resolved {
                    id: found.meta().id.clone(),
                    name: name.clone(),
                },
            ))
        })
        .collect()
}

/// Whether a service spec refers to the network, secret or config `id`.
pub fn spec_uses(spec: &ServiceSpec, kind: Kind, id: &str) -> bool {
    match kind {
        Kind::Network => spec
            .task_template
            .networks
            .iter()
            .chain(spec.networks.iter())
            .any(|a| a.target == id),
        Kind::Secret => spec
            .task_template
            .container_spec
            .iter()
            .flat_map(|c| c.secrets.iter())
            .any(|r| r.secret_id == id),
        Kind::Config => spec
            .task_template
            .container_spec
            .iter()
            .flat_map(|c| c.configs.iter())
            .any(|r| r.config_id == id),
        _ => false,
    }
}
