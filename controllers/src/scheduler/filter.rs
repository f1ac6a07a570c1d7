//! The filter pipeline: which nodes can take a task, and why the others cannot.
//!
//! Filters run in SwarmKit's order and a node counts against the first one it fails, so the
//! explanation of an unschedulable task reads like Docker's:
//! `no suitable node (insufficient resources on 3 nodes; scheduling constraints not satisfied
//! on 2 nodes)`. Resources, host ports and max-replicas change as tasks are placed, so they are
//! checked again for every placement.

use shoal_store::model::{EndpointSpec, Platform, PublishMode, TaskSpec};

use super::constraint::{node_matches, platform_matches, Constraint};
use super::nodes::{HostPort, NodeInfo};
use super::resources::Request;

/// The filters, in evaluation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Node READY and ACTIVE.
    Ready = 0,
    /// Reservations fit.
    Resources = 1,
    /// Volume plugins the task mounts exist on the node.
    Plugins = 2,
    /// Placement constraints hold.
    Constraints = 3,
    /// The node's platform is supported.
    Platform = 4,
    /// Host-mode published ports are free.
    HostPorts = 5,
    /// Fewer than `MaxReplicas` of the service run there.
    MaxReplicas = 6,
}

const ORDER: [Filter; 7] = [
    Filter::Ready,
    Filter::Resources,
    Filter::Plugins,
    Filter::Constraints,
    Filter::Platform,
    Filter::HostPorts,
    Filter::MaxReplicas,
];

impl Filter {
    fn explain(self, nodes: usize) -> String {
        let (one, many) = match self {
            Filter::Ready => (
                "1 node not available for new tasks",
                "nodes not available for new tasks",
            ),
            Filter::Resources => (
                "insufficient resources on 1 node",
                "insufficient resources on",
            ),
            Filter::Plugins => ("missing plugin on 1 node", "missing plugin on"),
            Filter::Constraints => (
                "scheduling constraints not satisfied on 1 node",
                "scheduling constraints not satisfied on",
            ),
            Filter::Platform => ("unsupported platform on 1 node", "unsupported platform on"),
            Filter::HostPorts => (
                "host-mode port already in use on 1 node",
                "host-mode port already in use on",
            ),
            Filter::MaxReplicas => return "max replicas per node limit exceed".into(),
        };
        match (nodes, self) {
            (1, _) => one.into(),
            (n, Filter::Ready) => format!("{n} {many}"),
            (n, _) => format!("{many} {n} nodes"),
        }
    }
}

/// The filters set up for one task spec (a batch of tasks of one service version).
pub struct Pipeline {
    service_id: String,
    /// What each task reserves.
    pub request: Request,
    constraints: Result<Vec<Constraint>, String>,
    platforms: Vec<Platform>,
    volume_drivers: Vec<String>,
    host_ports: Vec<HostPort>,
    max_replicas: u64,
    failures: [usize; 7],
}

impl Pipeline {
    /// Filters for tasks of `service_id` with this spec and the service's endpoint.
    pub fn new(service_id: &str, spec: &TaskSpec, endpoint: Option<&EndpointSpec>) -> Self {
        let placement = spec.placement.clone().unwrap_or_default();
        let volume_drivers = spec
            .container()
            .map(|c| {
                c.mounts
                    .iter()
                    .filter_map(|m| m.volume_options.as_ref()?.driver_config.as_ref())
                    .map(|d| d.name.clone())
                    .filter(|n| !n.is_empty() && n != "local")
                    .collect()
            })
            .unwrap_or_default();
        let host_ports = endpoint
            .map(|e| {
                e.ports
                    .iter()
                    .filter(|p| {
                        p.publish_mode_or_default() == PublishMode::Host && p.published_port != 0
                    })
                    .map(|p| (p.protocol_or_default().to_string(), p.published_port))
                    .collect()
            })
            .unwrap_or_default();
        Pipeline {
            service_id: service_id.to_string(),
            request: Request::of(spec),
            constraints: Constraint::parse_all(placement.constraints()),
            platforms: placement.platforms.clone(),
            volume_drivers,
            host_ports,
            max_replicas: placement.max_replicas,
            failures: [0; 7],
        }
    }

    /// The host ports each task takes.
    pub fn host_ports(&self) -> &[HostPort] {
        &self.host_ports
    }

    fn passes(&self, f: Filter, n: &NodeInfo) -> bool {
        match f {
            Filter::Ready => n.ready(),
            Filter::Resources => n.available.fits(&self.request),
            Filter::Plugins => {
                let plugins = &n.node.description.engine.plugins;
                // Nodes that report no plugins at all are not running an engine that could.
                plugins.is_empty()
                    || self.volume_drivers.iter().all(|d| {
                        plugins
                            .iter()
                            .any(|p| p.kind.eq_ignore_ascii_case("volume") && &p.name == d)
                    })
            }
            Filter::Constraints => match &self.constraints {
                Ok(cs) => node_matches(cs, &n.node),
                Err(_) => false,
            },
            Filter::Platform => platform_matches(&self.platforms, &n.node),
            Filter::HostPorts => self.host_ports.iter().all(|p| !n.port_used(p)),
            Filter::MaxReplicas => {
                self.max_replicas == 0
                    || u64::from(n.service_count(&self.service_id)) < self.max_replicas
            }
        }
    }

    /// Runs every filter; counts the node against the first one it fails.
    pub fn check(&mut self, n: &NodeInfo) -> bool {
        for f in ORDER {
            if !self.passes(f, n) {
                self.failures[f as usize] += 1;
                return false;
            }
        }
        true
    }

    /// Runs the filters that placements change (resources, host ports, max replicas) on a node
    /// that passed [`Pipeline::check`] earlier; counts a failure the same way.
    pub fn recheck(&mut self, n: &NodeInfo) -> bool {
        for f in [Filter::Resources, Filter::HostPorts, Filter::MaxReplicas] {
            if !self.passes(f, n) {
                self.failures[f as usize] += 1;
                return false;
            }
        }
        true
    }

    /// Why nodes were rejected, most common reason first (`""` if none was).
    pub fn explain(&self) -> String {
        let mut counted: Vec<(usize, Filter)> = ORDER
            .iter()
            .map(|f| (self.failures[*f as usize], *f))
            .filter(|(n, _)| *n > 0)
            .collect();
        counted.sort_by_key(|c| std::cmp::Reverse(c.0));
        counted
            .into_iter()
            .map(|(n, f)| f.explain(n))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The error an unschedulable task shows.
    pub fn no_suitable_node(&self) -> String {
        let why = self.explain();
        if why.is_empty() {
            "no suitable node".into()
        } else {
            format!("no suitable node ({why})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_read_like_dockers() {
        assert_eq!(
            Filter::Resources.explain(3),
            "insufficient resources on 3 nodes"
        );
        assert_eq!(
            Filter::Constraints.explain(1),
            "scheduling constraints not satisfied on 1 node"
        );
        assert_eq!(
            Filter::Ready.explain(2),
            "2 nodes not available for new tasks"
        );
        let mut p = Pipeline::new("s", &TaskSpec::default(), None);
        p.failures[Filter::Constraints as usize] = 2;
        p.failures[Filter::Resources as usize] = 3;
        assert_eq!(
            p.no_suitable_node(),
            "no suitable node (insufficient resources on 3 nodes; scheduling constraints not satisfied on 2 nodes)"
        );
        p.failures = [0; 7];
        assert_eq!(p.no_suitable_node(), "no suitable node");
    }
}
