//! What a node's data plane is computed from: the part of the store that says who is where on
//! which network. Managers read it from their replica; every node receives it from the leader's
//! dispatcher (`NetworkState` stream), so workers, which hold no replica, get the same input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shoal_store::model::{Cluster, Network, Node, Service, Task, TaskState};
use shoal_store::View;

/// The data plane's input.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetState {
    /// The store revision it was read at.
    pub revision: u64,
    /// The swarm's VXLAN port (0: the default).
    pub data_path_port: u32,
    /// Every node's data path address (node id -> address).
    pub node_addrs: BTreeMap<String, String>,
    /// The allocated networks.
    pub networks: Vec<Network>,
    /// Every service (VIPs, published ports, names, endpoint mode).
    pub services: Vec<Service>,
    /// Tasks with addresses that run or are about to.
    pub tasks: Vec<Task>,
}

impl NetState {
    /// The state as of `view`.
    pub fn from_view(view: &View) -> NetState {
        NetState {
            revision: view.revision(),
            data_path_port: view
                .list::<Cluster>()
                .next()
                .map(|c| c.data_path_port)
                .unwrap_or_default(),
            node_addrs: view
                .list::<Node>()
                .filter(|n| !n.status.addr.is_empty())
                .map(|n| (n.meta.id.clone(), n.status.addr.clone()))
                .collect(),
            networks: view
                .list::<Network>()
                .filter(|n| n.allocation.is_some())
                .map(|n| (*n).clone())
                .collect(),
            services: view.list::<Service>().map(|s| (*s).clone()).collect(),
            tasks: view
                .list::<Task>()
                .filter(|t| {
                    !t.networks_attachments.is_empty()
                        && t.status.state <= TaskState::Running
                        && t.desired_state <= TaskState::Running
                })
                .map(|t| (*t).clone())
                .collect(),
        }
    }

    /// The same state without its revision (to tell whether anything that matters changed).
    pub fn content_eq(&self, other: &NetState) -> bool {
        self.data_path_port == other.data_path_port
            && self.node_addrs == other.node_addrs
            && self.networks == other.networks
            && self.services == other.services
            && self.tasks == other.tasks
    }
}
