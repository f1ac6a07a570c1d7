//! What one node's data plane should hold, computed from a store view: a pure function, so it
//! is tested without a kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_controllers::allocator::{address as addr, attached_network, publishes_ingress};
use shoal_store::model::{Network, PublishMode, ResolutionMode, Task, TaskState};

use super::dns::Records;
use super::links::Peer;
use super::nft::{PortRule, RoutedSubnet, Ruleset, SourceRule, VipRule};
use super::state::NetState;
use super::{LocalNetwork, DEFAULT_DATA_PATH_PORT};
use crate::exec::TaskNames;

/// A node's wanted data plane.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Networks to set up, by id.
    pub networks: BTreeMap<String, LocalNetwork>,
    /// Per network: the /32 addresses on its bridge (this node's own address, the VIPs).
    pub host_addresses: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// Per network: this node's own address on it (also among `host_addresses`).
    pub own_addresses: BTreeMap<String, Ipv4Addr>,
    /// Per network: endpoints on other nodes.
    pub peers: BTreeMap<String, BTreeSet<Peer>>,
    /// The nftables table.
    pub rules: Ruleset,
    /// The DNS records.
    pub records: Records,
    /// This node's data path address (the VXLAN source), when known.
    pub vtep: Option<Ipv4Addr>,
    /// The swarm's VXLAN port.
    pub data_path_port: u16,
}

impl Desired {
    /// Load-balancing endpoints in it: every backend of every VIP and published port.
    pub fn endpoint_count(&self) -> usize {
        let vips: usize = self.rules.vips.iter().map(|v| v.backends.len()).sum();
        let ports: usize = self.rules.ports.iter().map(|p| p.backends.len()).sum();
        vips + ports
    }
}

/// A task that may carry traffic: running, and not on its way out (a task whose desired
/// state passed RUNNING leaves the backends and DNS before its container is stopped).
fn serving(t: &Task) -> bool {
    t.status.state == TaskState::Running && t.desired_state <= TaskState::Running
}

/// A task whose container is or will be on this node's networks.
fn present(t: &Task) -> bool {
    t.status.state <= TaskState::Running && t.desired_state <= TaskState::Running
}

/// The task's address on `network`.
fn address_on(t: &Task, network: &str) -> Option<Ipv4Addr> {
    t.networks_attachments
        .iter()
        .find(|a| a.network.id == network)
        .and_then(|a| a.addresses.first())
        .and_then(|a| addr(a))
}

impl Desired {
    /// What node `node_id` should hold, as of `state`.
    pub fn compute(state: &NetState, node_id: &str) -> Desired {
        let mut d = Desired {
            data_path_port: u16::try_from(state.data_path_port)
                .ok()
                .filter(|p| *p != 0)
                .unwrap_or(DEFAULT_DATA_PATH_PORT),
            ..Default::default()
        };
        let vtep_of = |id: &str| -> Option<Ipv4Addr> {
            state.node_addrs.get(id).and_then(|a| a.parse().ok())
        };
        d.vtep = vtep_of(node_id);
        let networks: BTreeMap<String, Network> = state
            .networks
            .iter()
            .filter(|n| n.allocation.is_some())
            .map(|n| (n.meta.id.clone(), n.clone()))
            .collect();
        let services = &state.services;
        let mesh_in_use = services.iter().any(publishes_ingress);
        let tasks: Vec<&Task> = state
            .tasks
            .iter()
            .filter(|t| present(t) && !t.networks_attachments.is_empty())
            .collect();

        // The networks this node carries: those of its tasks, and the ingress network while
        // any service publishes through the routing mesh.
        let mut local: BTreeSet<String> = BTreeSet::new();
        for t in tasks.iter().filter(|t| t.node_id == node_id) {
            local.extend(t.networks_attachments.iter().map(|a| a.network.id.clone()));
        }
        if mesh_in_use {
            local.extend(
                networks
                    .values()
                    .filter(|n| n.spec.ingress)
                    .map(|n| n.meta.id.clone()),
            );
        }
        for id in &local {
            let Some(n) = networks.get(id) else { continue };
            let attachment = shoal_store::model::NetworkAttachment {
                network: attached_network(n),
                addresses: Vec::new(),
            };
            if let Ok(ln) = LocalNetwork::from_attachment(&attachment) {
                d.networks.insert(id.clone(), ln);
            }
        }

        // Own address, VIPs, peers, source rules.
        for (id, ln) in &d.networks {
            let n = &networks[id];
            let alloc = n.allocation.as_ref().expect("filtered");
            let own = alloc
                .node_addresses
                .get(node_id)
                .and_then(|a| a.parse().ok());
            if let Some(own) = own {
                d.own_addresses.insert(id.clone(), own);
            }
            let mut host: BTreeSet<Ipv4Addr> = own.into_iter().collect();
            for s in services {
                host.extend(
                    s.endpoint
                        .virtual_ips
                        .iter()
                        .filter(|v| &v.network_id == id)
                        .filter_map(|v| addr(&v.addr)),
                );
            }
            d.host_addresses.insert(id.clone(), host);
            let mut peers = BTreeSet::new();
            for t in tasks
                .iter()
                .filter(|t| t.node_id != node_id && !t.node_id.is_empty())
            {
                if let (Some(ip), Some(vtep)) = (address_on(t, id), vtep_of(&t.node_id)) {
                    peers.insert(Peer { ip, vtep });
                }
            }
            for (node, a) in alloc
                .node_addresses
                .iter()
                .filter(|(n, _)| n.as_str() != node_id)
            {
                if let (Ok(ip), Some(vtep)) = (a.parse(), vtep_of(node)) {
                    peers.insert(Peer { ip, vtep });
                }
            }
            d.peers.insert(id.clone(), peers);
            d.rules.sources.push(SourceRule {
                bridge: super::links::NetworkLinks::new(id, node_id, 0, 0, 0).bridge,
                source: own,
                gateway: Some(ln.gateway),
                routed: ln.direct_routing.then(|| RoutedSubnet {
                    subnet: ln.subnet.clone(),
                    masquerade: !ln.internal,
                }),
            });
        }

        // VIPs and published ports: backends are the serving tasks, wherever they run.
        for s in services {
            let backends_on = |network: &str| -> Vec<Ipv4Addr> {
                let mut v: Vec<Ipv4Addr> = tasks
                    .iter()
                    .filter(|t| t.service_id == s.meta.id && serving(t))
                    .filter_map(|t| address_on(t, network))
                    .collect();
                v.sort();
                v
            };
            for v in &s.endpoint.virtual_ips {
                if !d.networks.contains_key(&v.network_id) {
                    continue;
                }
                if let Some(vip) = addr(&v.addr) {
                    d.rules.vips.push(VipRule {
                        vip,
                        backends: backends_on(&v.network_id),
                    });
                }
            }
            let ingress = networks.values().find(|n| n.spec.ingress);
            for p in s
                .endpoint
                .ports
                .iter()
                .filter(|p| p.publish_mode_or_default() != PublishMode::Host)
                .filter(|p| p.published_port != 0)
            {
                let Some(ingress) = ingress else { continue };
                d.rules.ports.push(PortRule {
                    protocol: match p.protocol_or_default().to_string().as_str() {
                        "udp" => "udp".into(),
                        _ => "tcp".into(),
                    },
                    published: p.published_port as u16,
                    target: p.target_port as u16,
                    backends: backends_on(&ingress.meta.id),
                });
            }
        }

        // Names, per network: the service (VIP, or its tasks for dnsrr), tasks.<service>,
        // aliases, and each task's own name.
        for s in services {
            let dnsrr = s
                .spec
                .endpoint_spec
                .as_ref()
                .and_then(|e| e.mode.as_ref())
                .is_some_and(|m| *m == ResolutionMode::Dnsrr);
            let attached = s
                .spec
                .task_template
                .networks
                .iter()
                .chain(s.spec.networks.iter());
            for a in attached {
                let net = a.target.as_str();
                if !d.networks.contains_key(net) {
                    continue;
                }
                let serving_tasks: Vec<&Task> = tasks
                    .iter()
                    .copied()
                    .filter(|t| t.service_id == s.meta.id && serving(t))
                    .collect();
                let task_ips: Vec<Ipv4Addr> = serving_tasks
                    .iter()
                    .filter_map(|t| address_on(t, net))
                    .collect();
                let vip: Vec<Ipv4Addr> = s
                    .endpoint
                    .virtual_ips
                    .iter()
                    .filter(|v| v.network_id == net)
                    .filter_map(|v| addr(&v.addr))
                    .collect();
                let front = if dnsrr { task_ips.clone() } else { vip };
                let mut names = vec![s.spec.name().to_string()];
                names.extend(a.aliases.iter().cloned());
                for name in &names {
                    d.records.add_name(net, name, front.clone());
                    d.records
                        .add_name(net, &format!("tasks.{name}"), task_ips.clone());
                }
                for t in &serving_tasks {
                    if let Some(ip) = address_on(t, net) {
                        d.records.add_name(net, &TaskNames::of(t).task, [ip]);
                    }
                }
            }
        }
        for t in tasks.iter().filter(|t| t.node_id == node_id) {
            let nets: Vec<String> = t
                .networks_attachments
                .iter()
                .filter(|a| !a.network.spec.ingress)
                .map(|a| a.network.id.clone())
                .collect();
            for a in t
                .networks_attachments
                .iter()
                .filter(|a| !a.network.spec.ingress)
            {
                if let Some(ip) = a.addresses.first().and_then(|s| addr(s)) {
                    d.records.networks_of.insert(ip, nets.clone());
                }
            }
        }
        d
    }
}
