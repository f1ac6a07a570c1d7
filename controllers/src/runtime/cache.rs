//! The reflector's cache: the objects controllers care about at one revision, with the indexes
//! their reconcilers query (tasks by service, tasks by node).
//!
//! Persistent maps make a clone O(1), so every reconcile gets a frozen snapshot while the
//! reflector keeps applying commits to its own copy; unchanged parts stay shared.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use shoal_store::model::{Cluster, Kind, Network, Node, Object, Service, StoreObject, Task};
use shoal_store::{Action, Event, Obj};

/// Objects of one kind by id. Keys are shared strings, so copying a tree node on write (when
/// a published snapshot still holds it) costs reference counts, not allocations.
type Objects = OrdMap<Arc<str>, Arc<Object>>;

/// A task in the cache, with the shared strings its index entries use.
#[derive(Clone, Debug)]
struct TaskEntry {
    object: Arc<Object>,
    id: Arc<str>,
    service: Arc<str>,
    node: Arc<str>,
}

/// The kinds the controllers watch.
pub const WATCHED_KINDS: [Kind; 11] = [
    Kind::Cluster,
    Kind::Node,
    Kind::Service,
    Task::KIND,
    Kind::Network,
    Kind::Secret,
    Kind::Config,
    Kind::Stack,
    Kind::StackRevision,
    Kind::Health,
    Kind::GitSource,
];

/// A consistent snapshot of the watched objects at [`Cache::revision`].
#[derive(Clone, Debug, Default)]
pub struct Cache {
    revision: u64,
    clusters: Objects,
    nodes: Objects,
    services: Objects,
    networks: Objects,
    secrets: Objects,
    configs: Objects,
    stacks: Objects,
    stack_revisions: Objects,
    healths: Objects,
    git_sources: Objects,
    tasks: OrdMap<Arc<str>, TaskEntry>,
    tasks_by_service: OrdSet<(Arc<str>, Arc<str>)>,
    tasks_by_node: OrdSet<(Arc<str>, Arc<str>)>,
}

fn typed<T: StoreObject>(o: &Arc<Object>) -> Option<Obj<T>> {
    Obj::new(o.clone())
}

impl Cache {
    /// An empty cache at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every change up to and including this revision is reflected.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Moves the revision forward (commits and progress notifications).
    pub fn set_revision(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    fn map_mut(&mut self, kind: Kind) -> Option<&mut Objects> {
        match kind {
            Kind::Cluster => Some(&mut self.clusters),
            Kind::Node => Some(&mut self.nodes),
            Kind::Service => Some(&mut self.services),
            Kind::Network => Some(&mut self.networks),
            Kind::Secret => Some(&mut self.secrets),
            Kind::Config => Some(&mut self.configs),
            Kind::Stack => Some(&mut self.stacks),
            Kind::StackRevision => Some(&mut self.stack_revisions),
            Kind::Health => Some(&mut self.healths),
            Kind::GitSource => Some(&mut self.git_sources),
            Kind::Task => None,
        }
    }

    fn map(&self, kind: Kind) -> Option<&Objects> {
        match kind {
            Kind::Cluster => Some(&self.clusters),
            Kind::Node => Some(&self.nodes),
            Kind::Service => Some(&self.services),
            Kind::Network => Some(&self.networks),
            Kind::Secret => Some(&self.secrets),
            Kind::Config => Some(&self.configs),
            Kind::Stack => Some(&self.stacks),
            Kind::StackRevision => Some(&self.stack_revisions),
            Kind::Health => Some(&self.healths),
            Kind::GitSource => Some(&self.git_sources),
            Kind::Task => None,
        }
    }

    /// Every object of a watched kind other than tasks, ordered by id.
    pub fn list<T: StoreObject>(&self) -> impl Iterator<Item = Obj<T>> + '_ {
        self.map(T::KIND)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(typed)
    }

    /// Inserts or replaces an object (kinds the controllers do not watch are ignored).
    pub fn put(&mut self, object: Arc<Object>) {
        if let Object::Task(t) = object.as_ref() {
            let entry = match self.tasks.get(t.meta.id.as_str()).cloned() {
                Some(old) => {
                    // Touch only the index entries whose key changed (a placement changes the
                    // node, a status report nothing).
                    let mut e = TaskEntry {
                        object: object.clone(),
                        ..old.clone()
                    };
                    if *old.service != *t.service_id {
                        e.service = Arc::from(t.service_id.as_str());
                        self.tasks_by_service
                            .remove(&(old.service.clone(), old.id.clone()));
                        self.tasks_by_service
                            .insert((e.service.clone(), e.id.clone()));
                    }
                    if *old.node != *t.node_id {
                        e.node = Arc::from(t.node_id.as_str());
                        self.tasks_by_node
                            .remove(&(old.node.clone(), old.id.clone()));
                        self.tasks_by_node.insert((e.node.clone(), e.id.clone()));
                    }
                    e
                }
                None => {
                    let e = TaskEntry {
                        object: object.clone(),
                        id: Arc::from(t.meta.id.as_str()),
                        service: Arc::from(t.service_id.as_str()),
                        node: Arc::from(t.node_id.as_str()),
                    };
                    self.tasks_by_service
                        .insert((e.service.clone(), e.id.clone()));
                    self.tasks_by_node.insert((e.node.clone(), e.id.clone()));
                    e
                }
            };
            self.tasks.insert(entry.id.clone(), entry);
            return;
        }
        let kind = object.kind();
        let id: Arc<str> = Arc::from(object.id());
        if let Some(map) = self.map_mut(kind) {
            map.insert(id, object);
        }
    }

    fn unindex(&mut self, e: &TaskEntry) {
        self.tasks_by_service
            .remove(&(e.service.clone(), e.id.clone()));
        self.tasks_by_node.remove(&(e.node.clone(), e.id.clone()));
    }

    /// Removes an object.
    pub fn remove(&mut self, kind: Kind, id: &str) {
        if kind == Kind::Task {
            if let Some(old) = self.tasks.remove(id) {
                self.unindex(&old);
            }
            return;
        }
        if let Some(map) = self.map_mut(kind) {
            map.remove(id);
        }
    }

    /// Applies one watch event.
    pub fn apply(&mut self, event: &Event) {
        match event.action {
            Action::Create | Action::Update => self.put(event.object.clone()),
            Action::Delete => self.remove(event.object.kind(), event.object.id()),
        }
    }

    /// One object by id.
    pub fn get<T: StoreObject>(&self, id: &str) -> Option<Obj<T>> {
        self.get_object(T::KIND, id).and_then(typed)
    }

    /// One untyped object.
    pub fn get_object(&self, kind: Kind, id: &str) -> Option<&Arc<Object>> {
        match kind {
            Kind::Task => self.tasks.get(id).map(|e| &e.object),
            other => self.map(other)?.get(id),
        }
    }

    /// A node.
    pub fn node(&self, id: &str) -> Option<Obj<Node>> {
        self.get(id)
    }

    /// A service.
    pub fn service(&self, id: &str) -> Option<Obj<Service>> {
        self.get(id)
    }

    /// A task.
    pub fn task(&self, id: &str) -> Option<Obj<Task>> {
        self.get(id)
    }

    /// The swarm object (the singleton), if it exists.
    pub fn cluster(&self) -> Option<Obj<Cluster>> {
        self.clusters.values().next().and_then(typed)
    }

    /// Every node, ordered by id.
    pub fn nodes(&self) -> impl Iterator<Item = Obj<Node>> + '_ {
        self.nodes.values().filter_map(typed)
    }

    /// Every service, ordered by id.
    pub fn services(&self) -> impl Iterator<Item = Obj<Service>> + '_ {
        self.services.values().filter_map(typed)
    }

    /// A swarm network.
    pub fn network(&self, id: &str) -> Option<Obj<Network>> {
        self.get(id)
    }

    /// Every swarm network, ordered by id.
    pub fn networks(&self) -> impl Iterator<Item = Obj<Network>> + '_ {
        self.networks.values().filter_map(typed)
    }

    /// The routing-mesh network, if there is one.
    pub fn ingress_network(&self) -> Option<Obj<Network>> {
        self.networks().find(|n| n.spec.ingress)
    }

    /// Every task, ordered by id.
    pub fn tasks(&self) -> impl Iterator<Item = Obj<Task>> + '_ {
        self.tasks.values().filter_map(|e| typed(&e.object))
    }

    /// Number of objects of a watched kind.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Task => self.tasks.len(),
            other => self.map(other).map_or(0, |m| m.len()),
        }
    }

    /// Ids of a service's tasks (history included), ordered by task id.
    pub fn task_ids_of_service<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let from: (Arc<str>, Arc<str>) = (Arc::from(service_id), Arc::from(""));
        self.tasks_by_service
            .range(from..)
            .take_while(move |(s, _)| &**s == service_id)
            .map(|(_, t)| &**t)
    }

    /// A service's tasks (history included).
    pub fn tasks_of_service<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = Obj<Task>> + 'a {
        self.task_ids_of_service(service_id)
            .filter_map(|id| self.task(id))
    }

    /// Tasks placed on a node (`""`: tasks not placed yet).
    pub fn tasks_on_node<'a>(&'a self, node_id: &'a str) -> impl Iterator<Item = Obj<Task>> + 'a {
        let from: (Arc<str>, Arc<str>) = (Arc::from(node_id), Arc::from(""));
        self.tasks_by_node
            .range(from..)
            .take_while(move |(n, _)| &**n == node_id)
            .filter_map(|(_, t)| self.task(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{Meta, Version};

    fn task(id: &str, service: &str, node: &str, version: u64) -> Arc<Object> {
        Arc::new(Object::Task(Task {
            meta: Meta {
                id: id.into(),
                version: Version::at(version),
                ..Default::default()
            },
            service_id: service.into(),
            node_id: node.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn indexes_follow_updates_and_deletes() {
        let mut c = Cache::new();
        c.put(task("t1", "s1", "", 1));
        c.put(task("t2", "s1", "n1", 2));
        c.put(task("t3", "s2", "n1", 3));
        assert_eq!(c.tasks_of_service("s1").count(), 2);
        assert_eq!(c.tasks_on_node("").count(), 1);
        // t1 gets placed: it moves from the unassigned index to n2's.
        c.put(task("t1", "s1", "n2", 4));
        assert_eq!(c.tasks_on_node("").count(), 0);
        assert_eq!(c.tasks_on_node("n2").next().unwrap().meta.id, "t1");
        let snapshot = c.clone();
        c.remove(Kind::Task, "t2");
        assert_eq!(c.tasks_on_node("n1").count(), 1);
        assert_eq!(c.tasks_of_service("s1").count(), 1);
        // The snapshot taken before the delete is unaffected.
        assert_eq!(snapshot.tasks_on_node("n1").count(), 2);
        assert_eq!(snapshot.task("t1").unwrap().meta.version.index, 4);
    }
}
