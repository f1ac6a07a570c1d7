//! The engine side of a swarm network on this node: a Docker bridge network on the bridge that
//! [`super::links`] made, with the swarm network's subnet and gateway, so the engine does the
//! container plumbing (veth, MTU, fixed addresses, egress NAT, its embedded DNS) exactly as
//! for its own networks (`reference/networking.md` §4.1).

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::Docker;

/// Label carrying the swarm network id on the engine network.
pub const LABEL_NETWORK: &str = "io.shoal.network.id";
/// Label carrying the id of the node that made it (several test nodes may share an engine).
pub const LABEL_NODE: &str = "io.shoal.node.id";

/// What the engine network of one swarm network looks like.
#[derive(Clone, Debug)]
pub struct EngineNetwork {
    /// Engine network name (`shoal_<swarm name>_<short id>`: unique on a shared engine).
    pub name: String,
    /// The Linux bridge it sits on.
    pub bridge: String,
    /// Swarm network id.
    pub network_id: String,
    /// This node's id.
    pub node_id: String,
    /// Subnet (`10.0.1.0/24`).
    pub subnet: String,
    /// Gateway address.
    pub gateway: String,
    /// MTU of the containers' interfaces.
    pub mtu: u32,
    /// No external connectivity (`--internal`).
    pub internal: bool,
    /// Whether the engine masquerades what leaves the bridge. Off for a network with direct
    /// routing: the engine's rule would also rewrite the source of packets routed to an
    /// endpoint on another node; shoal's own table masquerades what leaves the network instead.
    pub masquerade: bool,
}

impl EngineNetwork {
    /// The engine network name for swarm network `name` with id `id`.
    pub fn name_for(name: &str, id: &str) -> String {
        let short: String = id.chars().take(12).collect();
        format!("shoal_{name}_{short}")
    }
}

/// Creates the engine network unless one with the same name, swarm network and subnet exists;
/// a stale one of ours (other subnet, other swarm network) is removed first.
pub async fn ensure(docker: &Docker, n: &EngineNetwork) -> Result<(), bollard::errors::Error> {
    if let Ok(existing) = docker.inspect_network(&n.name, None).await {
        let labels = existing.labels.clone().unwrap_or_default();
        let subnet = existing
            .ipam
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.subnet.clone());
        if labels.get(LABEL_NETWORK) == Some(&n.network_id) && subnet.as_deref() == Some(&n.subnet)
        {
            return Ok(());
        }
        docker.remove_network(&n.name).await?;
    }
    let options: HashMap<String, String> = [
        ("com.docker.network.bridge.name", n.bridge.clone()),
        ("com.docker.network.driver.mtu", n.mtu.to_string()),
        ("com.docker.network.bridge.enable_icc", "true".into()),
        (
            "com.docker.network.bridge.enable_ip_masquerade",
            n.masquerade.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let labels: HashMap<String, String> = [
        (LABEL_NETWORK.to_string(), n.network_id.clone()),
        (LABEL_NODE.to_string(), n.node_id.clone()),
    ]
    .into_iter()
    .collect();
    let request = NetworkCreateRequest {
        name: n.name.clone(),
        driver: Some("bridge".into()),
        internal: Some(n.internal),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(n.subnet.clone()),
                gateway: Some(n.gateway.clone()),
                ..Default::default()
            }]),
            options: None,
        }),
        options: Some(options),
        labels: Some(labels),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => Ok(()),
        // Another task's preparation made it meanwhile.
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The engine networks this node made: (engine name, swarm network id).
pub async fn owned(
    docker: &Docker,
    node_id: &str,
) -> Result<Vec<(String, String)>, bollard::errors::Error> {
    use bollard::query_parameters::ListNetworksOptions;
    let filters: HashMap<String, Vec<String>> =
        [("label".to_string(), vec![format!("{LABEL_NODE}={node_id}")])].into();
    let list = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await?;
    Ok(list
        .into_iter()
        .filter_map(|n| {
            let id = n.labels.as_ref()?.get(LABEL_NETWORK)?.clone();
            Some((n.name?, id))
        })
        .collect())
}
