//! Finding the object a path parameter or filter value names, the way dockerd does
//! (`daemon/cluster/helpers.go`): exact id, then exact name, then unique id prefix. No match is a
//! 404 `service X not found`; several matches are a 400 `service X is ambiguous (N matches found)`.

use shoal_store::model::{Config, Network, Node, Secret, Service, StoreObject, Task};
use shoal_store::{Obj, View};

use super::error::{ApiError, ApiResult};

/// 404 `<what> <key> not found`.
pub fn not_found(what: &str, key: &str) -> ApiError {
    ApiError::not_found(format!("{what} {key} not found"))
}

/// 400 `<what> <key> is ambiguous (<n> matches found)`.
pub fn ambiguous(what: &str, key: &str, n: usize) -> ApiError {
    ApiError::bad_request(format!("{what} {key} is ambiguous ({n} matches found)"))
}

/// The common rule: exact id, then the objects `by_name` returns, then unique id prefix.
fn lookup<T: StoreObject>(
    view: &View,
    what: &str,
    key: &str,
    by_name: impl FnOnce() -> Vec<Obj<T>>,
) -> ApiResult<Obj<T>> {
    if key.is_empty() {
        return Err(not_found(what, key));
    }
    if let Some(o) = view.get::<T>(key) {
        return Ok(o);
    }
    let mut named = by_name();
    match named.len() {
        0 => {}
        1 => return Ok(named.pop().expect("one element")),
        n => return Err(ambiguous(what, key, n)),
    }
    let mut prefixed = view.with_id_prefix::<T>(key);
    let first = prefixed.next().ok_or_else(|| not_found(what, key))?;
    let more = prefixed.count();
    if more > 0 {
        return Err(ambiguous(what, key, more + 1));
    }
    Ok(first)
}

/// A uniquely named kind's object by exact (case-sensitive) name. The store's name index is
/// case-insensitive (uniqueness is), but dockerd's lookup is not: `GET /services/WEB` is a 404.
fn exact_name<T: StoreObject>(view: &View, key: &str, name: impl Fn(&T) -> &str) -> Vec<Obj<T>> {
    view.get_by_name::<T>(key)
        .filter(|o| name(o) == key)
        .into_iter()
        .collect()
}

/// A service by id, name or id prefix.
pub fn service(view: &View, key: &str) -> ApiResult<Obj<Service>> {
    lookup(view, "service", key, || {
        exact_name::<Service>(view, key, |s| s.spec.name())
    })
}

/// A node by id, name (`Spec.Name` or hostname) or id prefix.
pub fn node(view: &View, key: &str) -> ApiResult<Obj<Node>> {
    lookup(view, "node", key, || {
        view.list::<Node>()
            .filter(|n| n.spec.name == key || n.description.hostname == key)
            .collect()
    })
}

/// A task's full name, `service.slot.id` (`service.node.id` for global services), as dockerd
/// derives it when the task has no name of its own.
pub fn task_name(view: &View, t: &Task) -> String {
    if !t.name.is_empty() {
        return t.name.clone();
    }
    let service = view
        .get::<Service>(&t.service_id)
        .map(|s| s.spec.name().to_string())
        .unwrap_or_default();
    let slot = if t.slot != 0 {
        t.slot.to_string()
    } else {
        t.node_id.clone()
    };
    format!("{service}.{slot}.{}", t.meta.id)
}

/// A task by id, full name or id prefix.
pub fn task(view: &View, key: &str) -> ApiResult<Obj<Task>> {
    lookup(view, "task", key, || {
        // A full name ends with the task id: look that task up and compare its name.
        key.rsplit_once('.')
            .and_then(|(_, id)| view.get::<Task>(id))
            .filter(|t| task_name(view, t) == key)
            .into_iter()
            .collect()
    })
}

/// A network by id, name or id prefix.
pub fn network(view: &View, key: &str) -> ApiResult<Obj<Network>> {
    lookup(view, "network", key, || {
        exact_name::<Network>(view, key, |n| &n.spec.name)
    })
}

/// A secret by id, name or id prefix.
pub fn secret(view: &View, key: &str) -> ApiResult<Obj<Secret>> {
    lookup(view, "secret", key, || {
        exact_name::<Secret>(view, key, |s| s.spec.name())
    })
}

/// A config by id, name or id prefix.
pub fn config(view: &View, key: &str) -> ApiResult<Obj<Config>> {
    lookup(view, "config", key, || {
        exact_name::<Config>(view, key, |c| c.spec.name())
    })
}
