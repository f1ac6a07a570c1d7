//! Whether a task still matches its service's spec ("dirty" tasks are replaced by updates).

use shoal_store::model::{Node, Service, Task, TaskSpec};

use crate::scheduler::constraint::node_matches_exprs;

/// Whether two task specs differ in anything but placement.
fn differs_outside_placement(a: &TaskSpec, b: &TaskSpec) -> bool {
    a.container_spec != b.container_spec
        || a.plugin_spec != b.plugin_spec
        || a.network_attachment_spec != b.network_attachment_spec
        || a.resources != b.resources
        || a.restart_policy != b.restart_policy
        || a.networks != b.networks
        || a.log_driver != b.log_driver
        || a.force_update != b.force_update
        || a.runtime != b.runtime
}

/// Whether `task` must be replaced to match `service`: it was made from another spec version
/// and its spec differs. A change of placement alone does not make a task dirty while its node
/// still satisfies the new constraints (as SwarmKit).
pub fn is_task_dirty(service: &Service, task: &Task, node: Option<&Node>) -> bool {
    if task.spec_version == service.spec_version && task.spec_version.index != 0 {
        return false;
    }
    let want = &service.spec.task_template;
    if &task.spec == want {
        return false;
    }
    if differs_outside_placement(&task.spec, want) {
        return true;
    }
    match node {
        Some(n) => {
            let placement = want.placement.clone().unwrap_or_default();
            !(node_matches_exprs(placement.constraints(), n)
                && crate::scheduler::constraint::platform_matches(&placement.platforms, n))
        }
        // Not placed yet: the scheduler will judge it against the spec it carries.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::{ContainerSpec, Placement, Version};

    fn service(image: &str, constraints: &[&str], version: u64) -> Service {
        let mut s = Service::default();
        s.spec.task_template.container_spec = Some(ContainerSpec {
            image: image.into(),
            ..Default::default()
        });
        s.spec.task_template.placement = Some(Placement {
            constraints: constraints.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        });
        s.spec_version = Version::at(version);
        s
    }

    #[test]
    fn image_change_is_dirty_but_satisfied_placement_change_is_not() {
        let old = service("a:1", &[], 5);
        let task = Task {
            spec: old.spec.task_template.clone(),
            spec_version: old.spec_version,
            ..Default::default()
        };
        let mut node = Node::default();
        node.spec.labels.insert("zone".into(), "a".into());
        assert!(!is_task_dirty(&old, &task, Some(&node)));
        assert!(is_task_dirty(&service("a:2", &[], 6), &task, Some(&node)));
        assert!(!is_task_dirty(
            &service("a:1", &["node.labels.zone==a"], 6),
            &task,
            Some(&node)
        ));
        assert!(is_task_dirty(
            &service("a:1", &["node.labels.zone==b"], 6),
            &task,
            Some(&node)
        ));
        let mut forced = service("a:1", &[], 7);
        forced.spec.task_template.force_update = 1;
        assert!(is_task_dirty(&forced, &task, Some(&node)));
    }
}
