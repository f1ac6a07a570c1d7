//! Typed, immutable read views of the state at one revision.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use crate::model::{Kind, Node, NodeRole, Object, Service, StoreObject, Task, TaskState};
use crate::state::State;

/// A cheap, typed handle to one stored object (an `Arc` of the stored value).
pub struct Obj<T> {
    inner: Arc<Object>,
    _kind: PhantomData<fn() -> T>,
}

impl<T: StoreObject> Obj<T> {
    /// Wraps an object of kind `T::KIND`; `None` for another kind.
    pub fn new(inner: Arc<Object>) -> Option<Self> {
        T::from_object(&inner)?;
        Some(Obj {
            inner,
            _kind: PhantomData,
        })
    }

    /// The untyped object.
    pub fn object(&self) -> &Arc<Object> {
        &self.inner
    }

    /// An owned copy of the typed value (to modify and submit as an update).
    pub fn to_owned_value(&self) -> T {
        (**self).clone()
    }
}

impl<T: StoreObject> Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        T::from_object(&self.inner).expect("Obj holds an object of its own kind")
    }
}

impl<T> Clone for Obj<T> {
    fn clone(&self) -> Self {
        Obj {
            inner: self.inner.clone(),
            _kind: PhantomData,
        }
    }
}

impl<T: StoreObject + std::fmt::Debug> std::fmt::Debug for Obj<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// The state at one revision. Cloning is O(1); holding it never blocks writers.
#[derive(Clone, Debug, Default)]
pub struct View {
    state: Arc<State>,
}

impl View {
    /// A view of the given state.
    pub fn new(state: Arc<State>) -> Self {
        View { state }
    }

    /// The underlying state.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The revision this view reflects (every change up to and including it is visible).
    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    /// One object by id.
    pub fn get<T: StoreObject>(&self, id: &str) -> Option<Obj<T>> {
        self.state.get(T::KIND, id).cloned().and_then(Obj::new)
    }

    /// One untyped object by kind and id.
    pub fn get_object(&self, kind: Kind, id: &str) -> Option<Arc<Object>> {
        self.state.get(kind, id).cloned()
    }

    /// The object of a named kind with this name (case-insensitive, as uniqueness is).
    pub fn get_by_name<T: StoreObject>(&self, name: &str) -> Option<Obj<T>> {
        let id = self.state.id_by_name(T::KIND, name)?;
        self.get(id)
    }

    /// Every object of a kind, ordered by id.
    pub fn list<T: StoreObject>(&self) -> impl Iterator<Item = Obj<T>> + '_ {
        self.state
            .objects(T::KIND)
            .values()
            .cloned()
            .filter_map(Obj::new)
    }

    /// Objects of a kind whose id starts with `prefix`, ordered by id.
    pub fn with_id_prefix<'a, T: StoreObject>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = Obj<T>> + 'a {
        self.state
            .objects(T::KIND)
            .range::<_, str>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(id, _)| id.starts_with(prefix))
            .filter_map(|(_, o)| Obj::new(o.clone()))
    }

    /// Number of objects of a kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.state.objects(kind).len()
    }

    fn tasks<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a str> + 'a,
    ) -> impl Iterator<Item = Obj<Task>> + 'a {
        ids.filter_map(|id| self.get::<Task>(id))
    }

    /// Tasks of a service (every slot, history included).
    pub fn tasks_of_service<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = Obj<Task>> + 'a {
        self.tasks(self.state.task_ids_of_service(service_id))
    }

    /// Tasks placed on a node.
    pub fn tasks_on_node<'a>(&'a self, node_id: &'a str) -> impl Iterator<Item = Obj<Task>> + 'a {
        self.tasks(self.state.task_ids_on_node(node_id))
    }

    /// Tasks in one slot of a replicated service.
    pub fn tasks_in_slot<'a>(
        &'a self,
        service_id: &'a str,
        slot: u64,
    ) -> impl Iterator<Item = Obj<Task>> + 'a {
        self.tasks(self.state.task_ids_in_slot(service_id, slot))
    }

    /// Tasks whose desired state is `state`.
    pub fn tasks_with_desired_state(
        &self,
        state: TaskState,
    ) -> impl Iterator<Item = Obj<Task>> + '_ {
        self.tasks(self.state.task_ids_with_desired(state))
    }

    /// Nodes that currently hold `role`.
    pub fn nodes_with_role(&self, role: NodeRole) -> impl Iterator<Item = Obj<Node>> + '_ {
        self.state
            .node_ids_with_role(role)
            .filter_map(|id| self.get::<Node>(id))
    }

    /// A service by id or exact (case-insensitive) name.
    pub fn service_by_id_or_name(&self, key: &str) -> Option<Obj<Service>> {
        self.get::<Service>(key)
            .or_else(|| self.get_by_name::<Service>(key))
    }
}
