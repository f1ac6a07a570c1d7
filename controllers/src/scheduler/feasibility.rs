//! Would a service's tasks find nodes? A dry run of the filter pipeline against the nodes as
//! they are now, for `shoal plan`: every replica is placed in turn on the eligible node with
//! the fewest of them, taking its reservations, so too few nodes, too little memory or a
//! `max_replicas_per_node` that cannot be met are reported before anything is written.
//!
//! What other services' tasks hold is charged as the scheduler charges it (they keep running):
//! resources, the generic resources assigned to them and their host-mode ports; the service's
//! own current tasks are not (a rollout replaces them). Host-mode ports allow one of the
//! service's own replicas per node.

use std::collections::HashMap;

use shoal_store::model::{Node, Service, ServiceSpec, Task, TaskState};
use shoal_store::{Obj, View};

use super::filter::Pipeline;
use super::nodes::{host_ports, NodeInfo};

/// Why not every task of a service would be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Infeasible {
    /// Tasks that would wait for a node.
    pub unplaced: u64,
    /// Tasks wanted.
    pub wanted: u64,
    /// The scheduler's explanation (`no suitable node (insufficient resources on 2 nodes)`).
    pub reason: String,
}

/// Checks a service spec against the nodes of `view`; `service_id` names the service's own
/// tasks (empty for a service not created yet).
pub fn check(view: &View, service_id: &str, spec: &ServiceSpec) -> Result<(), Infeasible> {
    let nodes: Vec<Obj<Node>> = view.list::<Node>().collect();
    let mut infos: Vec<NodeInfo> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeInfo::new(n.clone(), i as u32))
        .collect();
    for info in &mut infos {
        let node_id = info.node.meta.id.clone();
        for t in view.tasks_on_node(&node_id) {
            if t.service_id == service_id || !holds_node(&t) {
                continue;
            }
            let ports = host_ports(view.get::<Service>(&t.service_id).as_deref());
            info.charge_task(&t, ports);
        }
    }
    let template = &spec.task_template;
    let mut pipeline = Pipeline::new(service_id, template, spec.endpoint_spec.as_ref());
    let eligible: Vec<usize> = (0..infos.len())
        .filter(|&i| pipeline.check(&infos[i]))
        .collect();
    let max_per_node = match template.placement.as_ref().map(|p| p.max_replicas) {
        Some(0) | None => u64::MAX,
        Some(n) => n,
    };
    let max_per_node = if pipeline.host_ports().is_empty() {
        max_per_node
    } else {
        max_per_node.min(1)
    };
    let wanted = if spec.is_global() {
        return if eligible.is_empty() && !infos.is_empty() {
            Err(Infeasible {
                unplaced: 0,
                wanted: 0,
                reason: pipeline.no_suitable_node(),
            })
        } else {
            Ok(())
        };
    } else {
        spec.replicas().unwrap_or(1)
    };
    let request = pipeline.request.clone();
    let mut placed: HashMap<usize, u64> = HashMap::new();
    let mut unplaced = 0;
    for _ in 0..wanted {
        let choice = eligible
            .iter()
            .copied()
            .filter(|i| placed.get(i).copied().unwrap_or(0) < max_per_node)
            .filter(|&i| infos[i].available.fits(&request))
            .min_by_key(|i| (placed.get(i).copied().unwrap_or(0), *i));
        match choice {
            Some(i) => {
                infos[i].available.claim(&request);
                *placed.entry(i).or_default() += 1;
            }
            None => unplaced += 1,
        }
    }
    if unplaced == 0 {
        return Ok(());
    }
    let mut reason = pipeline.no_suitable_node();
    if !eligible.is_empty() {
        let limit = if max_per_node == u64::MAX {
            String::new()
        } else {
            format!(", at most {max_per_node} per node")
        };
        reason = format!(
            "{} of {wanted} tasks fit on the {} eligible node(s){limit}; {reason}",
            wanted - unplaced,
            eligible.len()
        );
    }
    Err(Infeasible {
        unplaced,
        wanted,
        reason,
    })
}

fn holds_node(t: &Task) -> bool {
    t.desired_state <= TaskState::Running && t.status.state <= TaskState::Running
}
