//! What a service spec refers to in the store: networks (names become ids), secrets and configs
//! (names become ids; unknown ones are refused), published ports (conflicts with other services,
//! and the allocation of ingress ports into the service's `Endpoint`).

use std::collections::{BTreeSet, HashSet};

use shoal_store::model::{
    Config, Endpoint, PortConfig, PortProtocol, PublishMode, Secret, Service, ServiceSpec,
};
use shoal_store::View;

use super::error::{ApiError, ApiResult};
use super::resolve;

/// First and last port of the ingress range swarmkit allocates published ports from.
pub const INGRESS_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// Replaces network names in `TaskTemplate.Networks` (and the deprecated `Networks`) by ids,
/// as dockerd's `populateNetworkID` does before handing the spec to swarmkit.
pub fn resolve_networks(view: &View, spec: &mut ServiceSpec) -> ApiResult<()> {
    for att in spec
        .task_template
        .networks
        .iter_mut()
        .chain(spec.networks.iter_mut())
    {
        let net = resolve::network(view, &att.target)?;
        if net.spec.ingress {
            return Err(ApiError::invalid_argument(format!(
                "Service cannot be explicitly attached to the ingress network {:?}",
                net.spec.name
            )));
        }
        att.target = net.meta.id.clone();
    }
    Ok(())
}

/// Fills in secret and config ids from their names where the id is missing or unknown, and
/// refuses references to secrets or configs that do not exist (swarmkit's
/// `checkSecretExistence`: `secret not found: a` / `secrets not found: a, b`).
pub fn resolve_secrets_and_configs(view: &View, spec: &mut ServiceSpec) -> ApiResult<()> {
    let Some(c) = spec.task_template.container_spec.as_mut() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    for r in &mut c.secrets {
        if view.get::<Secret>(&r.secret_id).is_some() {
            continue;
        }
        match view
            .get_by_name::<Secret>(&r.secret_name)
            .filter(|s| s.spec.name() == r.secret_name)
        {
            Some(s) => r.secret_id = s.meta.id.clone(),
            None => missing.push(if r.secret_name.is_empty() {
                r.secret_id.clone()
            } else {
                r.secret_name.clone()
            }),
        }
    }
    not_found_error("secret", &missing)?;
    let mut missing = Vec::new();
    for r in &mut c.configs {
        if view.get::<Config>(&r.config_id).is_some() {
            continue;
        }
        match view
            .get_by_name::<Config>(&r.config_name)
            .filter(|s| s.spec.name() == r.config_name)
        {
            Some(s) => r.config_id = s.meta.id.clone(),
            None => missing.push(if r.config_name.is_empty() {
                r.config_id.clone()
            } else {
                r.config_name.clone()
            }),
        }
    }
    not_found_error("config", &missing)
}

fn not_found_error(what: &str, missing: &[String]) -> ApiResult<()> {
    match missing.len() {
        0 => Ok(()),
        1 => Err(ApiError::invalid_argument(format!(
            "{what} not found: {}",
            missing[0]
        ))),
        _ => Err(ApiError::invalid_argument(format!(
            "{what}s not found: {}",
            missing.join(", ")
        ))),
    }
}

fn protocol(p: &PortConfig) -> PortProtocol {
    match p.protocol_or_default() {
        PortProtocol::Other(_) => PortProtocol::Tcp,
        known => known,
    }
}

fn key(p: &PortConfig) -> (u32, PortProtocol) {
    (p.published_port, protocol(p))
}

/// swarmkit's `checkPortConflicts`: an ingress port may not be published by another service in
/// any mode, and a host-mode port may not be another service's ingress port.
pub fn check_port_conflicts(
    view: &View,
    spec: &ServiceSpec,
    own_id: Option<&str>,
) -> ApiResult<()> {
    let Some(ep) = &spec.endpoint_spec else {
        return Ok(());
    };
    let mut ingress = HashSet::new();
    let mut host = HashSet::new();
    for p in ep.ports.iter().filter(|p| p.published_port != 0) {
        match p.publish_mode_or_default() {
            PublishMode::Host => host.insert(key(p)),
            _ => ingress.insert(key(p)),
        };
    }
    if ingress.is_empty() && host.is_empty() {
        return Ok(());
    }
    for other in view.list::<Service>() {
        if own_id == Some(other.meta.id.as_str()) {
            continue;
        }
        let spec_ports = other.spec.endpoint_spec.iter().flat_map(|e| e.ports.iter());
        for p in spec_ports
            .chain(other.endpoint.ports.iter())
            .filter(|p| p.published_port != 0)
        {
            let k = key(p);
            let conflict = match p.publish_mode_or_default() {
                PublishMode::Host => ingress.contains(&k).then_some("a host-published port"),
                _ => (ingress.contains(&k) || host.contains(&k)).then_some("an ingress port"),
            };
            if let Some(how) = conflict {
                return Err(ApiError::invalid_argument(format!(
                    "port '{}' is already in use by service '{}' ({}) as {how}",
                    p.published_port,
                    other.spec.name(),
                    other.meta.id
                )));
            }
        }
    }
    Ok(())
}

/// The service's endpoint for `spec`: the endpoint spec (`{}` if none) and its ports, ingress
/// ports without a published port getting one from 30000-32767 (kept across updates when the
/// same target port and protocol are still published).
pub fn allocate_endpoint(
    view: &View,
    spec: &ServiceSpec,
    own_id: &str,
    previous: Option<&Endpoint>,
) -> Endpoint {
    allocate_endpoint_with(view, spec, own_id, previous, &BTreeSet::new())
}

/// [`allocate_endpoint`], also keeping clear of `taken`: ports allocated to other services of
/// the same transaction.
pub fn allocate_endpoint_with(
    view: &View,
    spec: &ServiceSpec,
    own_id: &str,
    previous: Option<&Endpoint>,
    taken: &BTreeSet<u32>,
) -> Endpoint {
    let ep_spec = spec.endpoint_spec.clone().unwrap_or_default();
    let mut used: BTreeSet<u32> = view
        .list::<Service>()
        .filter(|s| s.meta.id != own_id)
        .flat_map(|s| s.endpoint.ports.clone())
        .filter(|p| p.publish_mode_or_default() != PublishMode::Host)
        .map(|p| p.published_port)
        .collect();
    used.extend(ep_spec.ports.iter().map(|p| p.published_port));
    used.extend(taken.iter().copied());
    let mut ports = Vec::with_capacity(ep_spec.ports.len());
    for p in &ep_spec.ports {
        let mut port = p.clone();
        if port.published_port == 0 && port.publish_mode_or_default() != PublishMode::Host {
            let kept = previous
                .into_iter()
                .flat_map(|e| e.ports.iter())
                .find(|old| {
                    old.target_port == p.target_port
                        && protocol(old) == protocol(p)
                        && !used.contains(&old.published_port)
                })
                .map(|old| old.published_port);
            let chosen = kept.or_else(|| INGRESS_PORTS.clone().find(|n| !used.contains(n)));
            if let Some(n) = chosen {
                used.insert(n);
                port.published_port = n;
            }
        }
        ports.push(port);
    }
    Endpoint {
        spec: ep_spec,
        ports,
        virtual_ips: previous.map(|e| e.virtual_ips.clone()).unwrap_or_default(),
    }
}
