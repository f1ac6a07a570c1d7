//! Endpoints, published ports, network attachments and network specs (docker-api.md §2.7, §3.4,
//! §3.5, §3.6).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::{is_zero, null_default, open_enum, opt_enum};
use super::{Driver, Labels};
use crate::model::meta::{Timestamp, Version};

/// How a service is reached: resolution mode and published ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Virtual IP or DNS round robin. Open enum (exact case): the API layer answers
    /// `invalid resolution mode: "x"` for unknown values.
    #[serde(rename = "Mode", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "opt_enum")]
    pub mode: Option<ResolutionMode>,
    /// Published ports.
    #[serde(rename = "Ports", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<PortConfig>,
}

open_enum! {
    /// How a service name resolves.
    pub enum ResolutionMode (ignore_case: false) {
        /// One virtual IP load-balancing over the tasks.
        Vip => "vip",
        /// DNS round robin over the task IPs.
        Dnsrr => "dnsrr",
    }
}

/// A published (or exposed) port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortConfig {
    /// Optional port name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Protocol. Open enum matched case-insensitively (the daemon maps unknown values to tcp
    /// rather than failing; the API layer decides).
    #[serde(rename = "Protocol", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "opt_enum")]
    pub protocol: Option<PortProtocol>,
    /// Port inside the container.
    #[serde(rename = "TargetPort", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub target_port: u32,
    /// Port on the nodes (0: allocated from 30000-32767 for ingress).
    #[serde(rename = "PublishedPort", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub published_port: u32,
    /// Routing mesh or host port. Open enum matched case-insensitively (unknown values are
    /// mapped to ingress by the daemon; the API layer decides).
    #[serde(
        rename = "PublishMode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[serde(deserialize_with = "opt_enum")]
    pub publish_mode: Option<PublishMode>,
}

open_enum! {
    /// Transport protocol of a port.
    pub enum PortProtocol (ignore_case: true) {
        /// TCP.
        Tcp => "tcp",
        /// UDP.
        Udp => "udp",
        /// SCTP.
        Sctp => "sctp",
    }
}

open_enum! {
    /// Where a port is published.
    pub enum PublishMode (ignore_case: true) {
        /// On every node, through the routing mesh.
        Ingress => "ingress",
        /// On the node running the task only.
        Host => "host",
    }
}

impl PortConfig {
    /// Protocol (unset: tcp).
    pub fn protocol_or_default(&self) -> PortProtocol {
        self.protocol.clone().unwrap_or(PortProtocol::Tcp)
    }

    /// Publish mode (unset: ingress).
    pub fn publish_mode_or_default(&self) -> PublishMode {
        self.publish_mode.clone().unwrap_or(PublishMode::Ingress)
    }
}

/// A service's allocated endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The endpoint spec it was allocated from (always emitted, `{}` if none).
    #[serde(rename = "Spec", default, deserialize_with = "null_default")]
    pub spec: EndpointSpec,
    /// Ports with their allocated published ports (what `docker service ls` shows).
    #[serde(rename = "Ports", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<PortConfig>,
    /// One virtual IP per attached network.
    #[serde(rename = "VirtualIPs", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub virtual_ips: Vec<EndpointVirtualIP>,
}

/// A service's virtual IP on one network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointVirtualIP {
    /// Network id.
    #[serde(
        rename = "NetworkID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub network_id: String,
    /// Address with prefix length (`10.0.0.3/24`).
    #[serde(rename = "Addr", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub addr: String,
}

/// A network a service's tasks attach to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachmentConfig {
    /// Network name or id as sent; the API layer replaces names by ids before storing.
    #[serde(rename = "Target", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub target: String,
    /// Extra DNS names of the task on this network.
    #[serde(rename = "Aliases", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub aliases: Vec<String>,
    /// Driver options for the attachment.
    #[serde(
        rename = "DriverOpts",
        default,
        skip_serializing_if = "Labels::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub driver_opts: Labels,
}

/// A task's attachment to a network, with its addresses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network, as the swarm API shows networks (always emitted).
    #[serde(rename = "Network", default, deserialize_with = "null_default")]
    pub network: AttachedNetwork,
    /// The task's addresses with prefix length (`10.0.0.10/24`).
    #[serde(rename = "Addresses", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub addresses: Vec<String>,
}

/// A network in the swarm API's shape (moby `swarm.Network`), as embedded in task attachments.
/// The store's own network object keeps the `POST /networks/create` shape ([`NetworkSpec`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachedNetwork {
    /// Network id.
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
    /// Store version of the network.
    #[serde(rename = "Version", default, deserialize_with = "null_default")]
    pub version: Version,
    /// Creation time.
    #[serde(rename = "CreatedAt", default, deserialize_with = "null_default")]
    pub created_at: Timestamp,
    /// Last change.
    #[serde(rename = "UpdatedAt", default, deserialize_with = "null_default")]
    pub updated_at: Timestamp,
    /// The network's spec.
    #[serde(rename = "Spec", default, deserialize_with = "null_default")]
    pub spec: SwarmNetworkSpec,
    /// Driver state (name and options, e.g. the VXLAN id).
    #[serde(rename = "DriverState", default, deserialize_with = "null_default")]
    pub driver_state: Driver,
    /// Allocated IPAM settings.
    #[serde(
        rename = "IPAMOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_options: Option<IPAMOptions>,
}

/// A network spec in the swarm API's shape (moby `swarm.NetworkSpec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmNetworkSpec {
    /// Network name and labels.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Labels; always emitted (`{}` when empty), as the daemon does.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// Driver and options.
    #[serde(
        rename = "DriverConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub driver_configuration: Option<Driver>,
    /// IPv6.
    #[serde(rename = "IPv6Enabled", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub ipv6_enabled: bool,
    /// No external connectivity.
    #[serde(rename = "Internal", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub internal: bool,
    /// Standalone containers may attach.
    #[serde(rename = "Attachable", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub attachable: bool,
    /// The routing-mesh network.
    #[serde(rename = "Ingress", default, skip_serializing_if = "is_zero")]
    #[serde(deserialize_with = "null_default")]
    pub ingress: bool,
    /// IPAM settings.
    #[serde(
        rename = "IPAMOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_options: Option<IPAMOptions>,
    /// Config-only network this one takes its configuration from.
    #[serde(
        rename = "ConfigFrom",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub config_from: Option<NetworkConfigReference>,
    /// `swarm` for swarm networks.
    #[serde(rename = "Scope", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub scope: String,
}

/// IPAM settings in the swarm API's shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IPAMOptions {
    /// IPAM driver (always emitted).
    #[serde(rename = "Driver", default, deserialize_with = "null_default")]
    pub driver: Driver,
    /// Address pools.
    #[serde(rename = "Configs", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub configs: Vec<IPAMConfig>,
}

/// One address pool in the swarm API's shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IPAMConfig {
    /// Subnet (`10.0.1.0/24`).
    #[serde(rename = "Subnet", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub subnet: String,
    /// Sub-range to allocate from.
    #[serde(rename = "Range", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub range: String,
    /// Gateway address.
    #[serde(rename = "Gateway", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub gateway: String,
}

/// A swarm network as created: the body of `POST /networks/create` (moby
/// `network.CreateRequest`), kept as sent. Go has no `omitempty` on most of these, so they are
/// always emitted (`"IPAM":null`, `"ConfigFrom":null`; maps as `{}`). `CheckDuplicate` is a
/// request flag, not part of the network: ignored. `Name` comes first here (Go puts it last).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Network name (unique among networks).
    #[serde(rename = "Name", default, deserialize_with = "null_default")]
    pub name: String,
    /// Driver (`overlay`; the API layer defaults an empty one).
    #[serde(rename = "Driver", default, deserialize_with = "null_default")]
    pub driver: String,
    /// Scope (`swarm` for swarm networks; clients usually send `""`).
    #[serde(rename = "Scope", default, deserialize_with = "null_default")]
    pub scope: String,
    /// IPv4 on or off (Go pointer: absent means the daemon's default).
    #[serde(
        rename = "EnableIPv4",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv4: Option<bool>,
    /// IPv6 on or off (Go pointer since API 1.48; absent means off).
    #[serde(
        rename = "EnableIPv6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv6: Option<bool>,
    /// Address management (`null` when not given).
    #[serde(rename = "IPAM", default)]
    pub ipam: Option<IPAMSpec>,
    /// No external connectivity.
    #[serde(rename = "Internal", default, deserialize_with = "null_default")]
    pub internal: bool,
    /// Standalone containers may attach.
    #[serde(rename = "Attachable", default, deserialize_with = "null_default")]
    pub attachable: bool,
    /// The routing-mesh network.
    #[serde(rename = "Ingress", default, deserialize_with = "null_default")]
    pub ingress: bool,
    /// A configuration-only network.
    #[serde(rename = "ConfigOnly", default, deserialize_with = "null_default")]
    pub config_only: bool,
    /// Config-only network to take the configuration from (`null` when not given).
    #[serde(rename = "ConfigFrom", default)]
    pub config_from: Option<NetworkConfigReference>,
    /// Driver options.
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: Labels,
    /// Network labels (`com.docker.stack.namespace`, ...).
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
}

/// IPAM settings in the `POST /networks/create` shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IPAMSpec {
    /// IPAM driver (`default`).
    #[serde(rename = "Driver", default, deserialize_with = "null_default")]
    pub driver: String,
    /// IPAM driver options.
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: Labels,
    /// Address pools.
    #[serde(rename = "Config", default, deserialize_with = "null_default")]
    pub config: Vec<IPAMPool>,
}

/// One address pool in the `POST /networks/create` shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IPAMPool {
    /// Subnet (`10.0.1.0/24`).
    #[serde(rename = "Subnet", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub subnet: String,
    /// Sub-range to allocate from.
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub ip_range: String,
    /// Gateway address.
    #[serde(rename = "Gateway", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub gateway: String,
    /// Reserved addresses by name.
    #[serde(
        rename = "AuxiliaryAddresses",
        default,
        skip_serializing_if = "Labels::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub auxiliary_addresses: Labels,
}

/// What the managers allocated for a swarm network (internal to the store).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAllocation {
    /// The IPv4 subnet (`10.0.1.0/24`).
    #[serde(rename = "Subnet")]
    pub subnet: String,
    /// The gateway address (no prefix): the first address unless the user chose one. Every
    /// node that carries the network has it on its bridge, as with Swarm's overlay.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// The part of the subnet tasks and VIPs are allocated from (`--ip-range`; empty: all).
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    /// The VXLAN network identifier.
    #[serde(rename = "VNI")]
    pub vni: u32,
    /// Each node's own address on the network (node id -> address, no prefix), given to a
    /// node while it runs tasks on the network (always, for the ingress network): the source
    /// of the traffic the node load-balances into the network, so replies come back to it.
    #[serde(
        rename = "NodeAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub node_addresses: BTreeMap<String, String>,
}

impl NetworkAllocation {
    /// The subnet's prefix length (24 for `10.0.1.0/24`; 0 if the subnet is malformed).
    pub fn prefix_len(&self) -> u8 {
        self.subnet
            .split_once('/')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    /// `addr` with the subnet's prefix length (`10.0.1.7/24`).
    pub fn with_prefix(&self, addr: &str) -> String {
        format!("{addr}/{}", self.prefix_len())
    }
}

/// Driver option that carries a network's VXLAN id, as dockerd shows it.
pub const VXLAN_ID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";

/// A reference to a config-only network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfigReference {
    /// Its name.
    #[serde(rename = "Network", default, deserialize_with = "null_default")]
    pub network: String,
}

impl NetworkSpec {
    /// The same network in the swarm API's shape (for task attachments).
    pub fn to_swarm_spec(&self) -> SwarmNetworkSpec {
        SwarmNetworkSpec {
            name: self.name.clone(),
            labels: self.labels.clone(),
            driver_configuration: Some(Driver {
                name: self.driver.clone(),
                options: self.options.clone(),
            }),
            ipv6_enabled: self.enable_ipv6.unwrap_or(false),
            internal: self.internal,
            attachable: self.attachable,
            ingress: self.ingress,
            ipam_options: self.ipam.as_ref().map(|ipam| IPAMOptions {
                driver: Driver {
                    name: ipam.driver.clone(),
                    options: ipam.options.clone(),
                },
                configs: ipam
                    .config
                    .iter()
                    .map(|pool| IPAMConfig {
                        subnet: pool.subnet.clone(),
                        range: pool.ip_range.clone(),
                        gateway: pool.gateway.clone(),
                    })
                    .collect(),
            }),
            config_from: self.config_from.clone(),
            scope: self.scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::round_trip_exact;
    use super::*;

    #[test]
    fn cli_network_create_body_round_trips() {
        // docker-api.md §2.7 (CLI / stack deploy), minus the CheckDuplicate request flag.
        let body = r#"{"Name":"st_front","Driver":"overlay","Scope":"","IPAM":null,"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{"com.docker.stack.namespace":"st"}}"#;
        let spec: NetworkSpec = round_trip_exact(body);
        assert_eq!(spec.name, "st_front");
        assert_eq!(spec.driver, "overlay");
        assert!(spec.ipam.is_none());
        let with_flag: NetworkSpec =
            serde_json::from_str(&body.replace(r#""Labels""#, r#""CheckDuplicate":true,"Labels""#))
                .unwrap();
        assert_eq!(with_flag, spec);
    }

    #[test]
    fn docker_py_network_create_body_is_accepted() {
        let spec: NetworkSpec = serde_json::from_str(
            r#"{"Name":"dockerpytest_net","Driver":"overlay","IPAM":{"Driver":"default"},"Options":null,"Labels":null,"EnableIPv6":false}"#,
        )
        .unwrap();
        assert_eq!(spec.ipam.as_ref().unwrap().driver, "default");
        assert_eq!(spec.enable_ipv6, Some(false));
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"Name":"dockerpytest_net","Driver":"overlay","Scope":"","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{}}"#
        );
    }

    #[test]
    fn ipam_pools_round_trip_and_convert_to_the_swarm_shape() {
        let spec: NetworkSpec = round_trip_exact(
            r#"{"Name":"appnet","Driver":"overlay","Scope":"swarm","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.0.9.0/24","IPRange":"10.0.9.128/25","Gateway":"10.0.9.1","AuxiliaryAddresses":{"r":"10.0.9.2"}}]},"Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":{"Network":"cfg"},"Options":{"encrypted":""},"Labels":{}}"#,
        );
        let swarm = spec.to_swarm_spec();
        assert_eq!(swarm.name, "appnet");
        let ipam = swarm.ipam_options.as_ref().unwrap();
        assert_eq!(ipam.configs[0].range, "10.0.9.128/25");
        assert_eq!(
            serde_json::to_string(&swarm).unwrap(),
            r#"{"Name":"appnet","Labels":{},"DriverConfiguration":{"Name":"overlay","Options":{"encrypted":""}},"Internal":true,"Attachable":true,"IPAMOptions":{"Driver":{"Name":"default"},"Configs":[{"Subnet":"10.0.9.0/24","Range":"10.0.9.128/25","Gateway":"10.0.9.1"}]},"ConfigFrom":{"Network":"cfg"},"Scope":"swarm"}"#
        );
    }

    #[test]
    fn endpoint_and_ports_round_trip() {
        let e: Endpoint = round_trip_exact(r#"{"Spec":{}}"#);
        assert_eq!(e, Endpoint::default());
        let e: Endpoint = round_trip_exact(
            r#"{"Spec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]},"Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}],"VirtualIPs":[{"NetworkID":"ingressid","Addr":"10.0.0.3/24"}]}"#,
        );
        assert_eq!(e.virtual_ips[0].addr, "10.0.0.3/24");
        // docker-py's port dict: PublishMode host must round-trip.
        let p: PortConfig = round_trip_exact(
            r#"{"Protocol":"udp","TargetPort":9090,"PublishedPort":9091,"PublishMode":"host"}"#,
        );
        assert_eq!(p.publish_mode_or_default(), PublishMode::Host);
        let bare: PortConfig = round_trip_exact(r#"{"TargetPort":80}"#);
        assert_eq!(bare.protocol_or_default(), PortProtocol::Tcp);
        assert_eq!(bare.publish_mode_or_default(), PublishMode::Ingress);
        let upper: PortConfig = serde_json::from_str(r#"{"Protocol":"UDP"}"#).unwrap();
        assert_eq!(upper.protocol, Some(PortProtocol::Udp));
        let dns: EndpointSpec = serde_json::from_str(r#"{"Mode":"DNSRR"}"#).unwrap();
        assert_eq!(dns.mode, Some(ResolutionMode::Other("DNSRR".into())));
    }

    #[test]
    fn task_network_attachment_round_trips() {
        let a: NetworkAttachment = round_trip_exact(
            r#"{"Network":{"ID":"4mzrxtsxvoq9d5kn1pt82yvh7","Version":{"Index":20},"CreatedAt":"2026-11-25T05:30:00Z","UpdatedAt":"2026-11-25T05:30:00Z","Spec":{"Name":"appnet","Labels":{},"DriverConfiguration":{"Name":"overlay"},"IPAMOptions":{"Driver":{"Name":"default"},"Configs":[{"Subnet":"10.0.1.0/24","Gateway":"10.0.1.1"}]},"Scope":"swarm"},"DriverState":{"Name":"overlay","Options":{"com.docker.network.driver.overlay.vxlanid_list":"4097"}},"IPAMOptions":{"Driver":{"Name":"default"},"Configs":[{"Subnet":"10.0.1.0/24","Gateway":"10.0.1.1"}]}},"Addresses":["10.0.1.10/24"]}"#,
        );
        assert_eq!(a.network.spec.name, "appnet");
        assert_eq!(a.addresses, ["10.0.1.10/24"]);
        let attach: NetworkAttachmentConfig = round_trip_exact(
            r#"{"Target":"appnet","Aliases":["web","www"],"DriverOpts":{"k":"v"}}"#,
        );
        assert_eq!(attach.aliases.len(), 2);
    }
}
