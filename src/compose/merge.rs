//! Several `-f` files merged in order, as docker/cli merges them (mergo with override and
//! appended slices, plus its special cases), field by field:
//!
//! - strings, numbers and booleans: a later file's value wins unless it is the zero value
//!   (so a later `read_only: false` cannot undo an earlier `true`, as in docker/cli);
//! - optional values (`replicas`, `init`, durations, ...): a later file's value wins when set
//!   (for durations and `init`, when non-zero / true);
//! - mappings (labels, environment, sysctls, ulimits, networks): merged key by key;
//! - `ports` (keyed by published port), `secrets`/`configs` (by source) and `volumes` (by target):
//!   merged by key and sorted by it;
//! - `command`/`entrypoint`: replaced; other lists (`cap_add`, `dns`, `extra_hosts`,
//!   placement constraints, even `healthcheck.test`): appended;
//! - `logging`: options merged when the driver is the same (or unset), replaced otherwise;
//! - a top-level network, volume, secret or config: replaced as a whole.

use std::collections::BTreeMap;

use super::model::{
    Config, CredentialSpec, Deploy, FileReference, Healthcheck, Limits, Logging, Placement, Port,
    Reservations, RestartPolicy, Service, ServiceNetwork, ServiceVolume, UpdateConfig,
};

/// Merges `overrides` into `base`, in order.
pub fn merge(mut base: Config, overrides: Vec<Config>) -> Config {
    for o in overrides {
        for (name, svc) in o.services {
            match base.services.get_mut(&name) {
                Some(existing) => service(existing, svc),
                None => {
                    base.services.insert(name, svc);
                }
            }
        }
        base.networks.extend(o.networks);
        base.volumes.extend(o.volumes);
        base.secrets.extend(o.secrets);
        base.configs.extend(o.configs);
    }
    base
}

fn string(dst: &mut String, src: String) {
    if !src.is_empty() {
        *dst = src;
    }
}

fn flag(dst: &mut bool, src: bool) {
    if src {
        *dst = true;
    }
}

fn number<T: Default + PartialEq>(dst: &mut T, src: T) {
    if src != T::default() {
        *dst = src;
    }
}

/// A Go pointer to a scalar: set when unset, else overwritten by a non-zero value.
fn pointer<T: Default + PartialEq>(dst: &mut Option<T>, src: Option<T>) {
    match (dst.as_mut(), src) {
        (_, None) => {}
        (None, Some(s)) => *dst = Some(s),
        (Some(d), Some(s)) => number(d, s),
    }
}

/// A Go pointer with docker/cli's `mergeUint64`: set whenever the later file sets it.
fn replace<T>(dst: &mut Option<T>, src: Option<T>) {
    if src.is_some() {
        *dst = src;
    }
}

/// A Go pointer to a struct: taken when unset, merged field by field otherwise.
fn nested<T>(dst: &mut Option<T>, src: Option<T>, merge: impl FnOnce(&mut T, T)) {
    match (dst.as_mut(), src) {
        (_, None) => {}
        (None, Some(s)) => *dst = Some(s),
        (Some(d), Some(s)) => merge(d, s),
    }
}

fn append<T>(dst: &mut Vec<T>, src: Vec<T>) {
    dst.extend(src);
}

fn strings_map(dst: &mut BTreeMap<String, String>, src: BTreeMap<String, String>) {
    dst.extend(src);
}

/// docker/cli's keyed slice merge: only when the earlier file has entries (otherwise mergo
/// appends to the empty slice), then by key, later wins, sorted by key.
fn keyed<T, K: Ord>(dst: &mut Vec<T>, src: Vec<T>, key: impl Fn(&T) -> K) {
    if dst.is_empty() {
        dst.extend(src);
        return;
    }
    let mut by_key = BTreeMap::new();
    for item in dst.drain(..).chain(src) {
        by_key.insert(key(&item), item);
    }
    dst.extend(by_key.into_values());
}

fn service(d: &mut Service, s: Service) {
    append(&mut d.cap_add, s.cap_add);
    append(&mut d.cap_drop, s.cap_drop);
    if !s.command.is_empty() {
        d.command = s.command;
    }
    if !s.entrypoint.is_empty() {
        d.entrypoint = s.entrypoint;
    }
    keyed(&mut d.configs, s.configs, |r: &FileReference| {
        r.source.clone()
    });
    keyed(&mut d.secrets, s.secrets, |r: &FileReference| {
        r.source.clone()
    });
    credential_spec(&mut d.credential_spec, s.credential_spec);
    deploy(&mut d.deploy, s.deploy);
    nested(&mut d.dns, s.dns, append);
    nested(&mut d.dns_search, s.dns_search, append);
    for (k, v) in s.environment {
        let keep = matches!(d.environment.get(&k), Some(Some(existing)) if !existing.is_empty())
            && v.as_deref().is_none_or(str::is_empty);
        if !keep {
            d.environment.insert(k, v);
        }
    }
    append(&mut d.extra_hosts, s.extra_hosts);
    string(&mut d.hostname, s.hostname);
    nested(&mut d.healthcheck, s.healthcheck, healthcheck);
    string(&mut d.image, s.image);
    match (d.init.as_mut(), s.init) {
        (None, init) if init.is_some() => d.init = init,
        (Some(dst), Some(true)) => *dst = true,
        _ => {}
    }
    string(&mut d.isolation, s.isolation);
    strings_map(&mut d.labels, s.labels);
    nested(&mut d.logging, s.logging, logging);
    for (name, net) in s.networks {
        match (d.networks.get_mut(&name), net) {
            (Some(Some(existing)), Some(n)) => service_network(existing, n),
            (Some(Some(_)), None) => {}
            (_, net) => {
                d.networks.insert(name, net);
            }
        }
    }
    keyed(&mut d.ports, s.ports, |p: &Port| p.published);
    flag(&mut d.read_only, s.read_only);
    string(&mut d.restart, s.restart);
    flag(&mut d.stdin_open, s.stdin_open);
    pointer(&mut d.stop_grace_period, s.stop_grace_period);
    string(&mut d.stop_signal, s.stop_signal);
    strings_map(&mut d.sysctls, s.sysctls);
    flag(&mut d.tty, s.tty);
    for (name, u) in s.ulimits {
        if u != Default::default() || !d.ulimits.contains_key(&name) {
            d.ulimits.insert(name, u);
        }
    }
    string(&mut d.user, s.user);
    keyed(&mut d.volumes, s.volumes, |v: &ServiceVolume| {
        v.target.clone()
    });
    string(&mut d.working_dir, s.working_dir);
}

fn credential_spec(d: &mut CredentialSpec, s: CredentialSpec) {
    string(&mut d.config, s.config);
    string(&mut d.file, s.file);
    string(&mut d.registry, s.registry);
}

fn service_network(d: &mut ServiceNetwork, s: ServiceNetwork) {
    // docker/cli's `mergeServiceNetworkConfig`: aliases replaced, addresses when set, driver
    // options kept.
    d.aliases = s.aliases;
    string(&mut d.ipv4_address, s.ipv4_address);
    string(&mut d.ipv6_address, s.ipv6_address);
}

fn logging(d: &mut Logging, s: Logging) {
    if d.driver == s.driver || d.driver.is_empty() || s.driver.is_empty() {
        if d.driver.is_empty() {
            d.driver = s.driver;
        }
        // docker/cli merges into a copy of a nil map: options only survive onto existing ones.
        if let (Some(dst), Some(src)) = (d.options.as_mut(), s.options) {
            dst.extend(src);
        }
    } else {
        *d = s;
    }
}

fn healthcheck(d: &mut Healthcheck, s: Healthcheck) {
    append(&mut d.test, s.test);
    pointer(&mut d.timeout, s.timeout);
    pointer(&mut d.interval, s.interval);
    replace(&mut d.retries, s.retries);
    pointer(&mut d.start_period, s.start_period);
    pointer(&mut d.start_interval, s.start_interval);
    flag(&mut d.disable, s.disable);
}

fn deploy(d: &mut Deploy, s: Deploy) {
    string(&mut d.mode, s.mode);
    replace(&mut d.replicas, s.replicas);
    strings_map(&mut d.labels, s.labels);
    nested(&mut d.update_config, s.update_config, update_config);
    nested(&mut d.rollback_config, s.rollback_config, update_config);
    nested(&mut d.resources.limits, s.resources.limits, limits);
    nested(
        &mut d.resources.reservations,
        s.resources.reservations,
        reservations,
    );
    nested(&mut d.restart_policy, s.restart_policy, restart_policy);
    placement(&mut d.placement, s.placement);
    string(&mut d.endpoint_mode, s.endpoint_mode);
}

fn update_config(d: &mut UpdateConfig, s: UpdateConfig) {
    replace(&mut d.parallelism, s.parallelism);
    number(&mut d.delay, s.delay);
    string(&mut d.failure_action, s.failure_action);
    number(&mut d.monitor, s.monitor);
    number(&mut d.max_failure_ratio, s.max_failure_ratio);
    string(&mut d.order, s.order);
}

fn limits(d: &mut Limits, s: Limits) {
    string(&mut d.cpus, s.cpus);
    number(&mut d.memory, s.memory);
    number(&mut d.pids, s.pids);
}

fn reservations(d: &mut Reservations, s: Reservations) {
    string(&mut d.cpus, s.cpus);
    number(&mut d.memory, s.memory);
    append(&mut d.generic_resources, s.generic_resources);
}

fn restart_policy(d: &mut RestartPolicy, s: RestartPolicy) {
    string(&mut d.condition, s.condition);
    pointer(&mut d.delay, s.delay);
    replace(&mut d.max_attempts, s.max_attempts);
    pointer(&mut d.window, s.window);
}

fn placement(d: &mut Placement, s: Placement) {
    append(&mut d.constraints, s.constraints);
    append(&mut d.preferences, s.preferences);
    number(&mut d.max_replicas, s.max_replicas);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(published: u32, target: u32) -> Port {
        Port {
            mode: "ingress".into(),
            target,
            published,
            protocol: "tcp".into(),
        }
    }

    #[test]
    fn later_files_override_scalars_but_not_with_zero_values() {
        let mut base = Service {
            image: "nginx:1".into(),
            read_only: true,
            user: "root".into(),
            ..Default::default()
        };
        base.deploy.replicas = Some(2);
        let mut over = Service {
            image: "nginx:2".into(),
            ..Default::default()
        };
        over.deploy.replicas = Some(0);
        service(&mut base, over);
        assert_eq!(base.image, "nginx:2");
        assert!(base.read_only);
        assert_eq!(base.user, "root");
        assert_eq!(base.deploy.replicas, Some(0));
    }

    #[test]
    fn keyed_lists_merge_by_key_and_sort() {
        let mut base = Service {
            ports: vec![port(8080, 80), port(443, 443)],
            ..Default::default()
        };
        service(
            &mut base,
            Service {
                ports: vec![port(8080, 8000), port(9000, 9000)],
                ..Default::default()
            },
        );
        assert_eq!(
            base.ports,
            [port(443, 443), port(8080, 8000), port(9000, 9000)]
        );
    }

    #[test]
    fn maps_merge_key_by_key_and_lists_append() {
        let mut base = Service {
            cap_add: vec!["NET_ADMIN".into()],
            command: vec!["a".into()],
            labels: [("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into(),
            environment: [("A".to_string(), Some("1".to_string())), ("B".into(), None)].into(),
            ..Default::default()
        };
        service(
            &mut base,
            Service {
                cap_add: vec!["SYS_ADMIN".into()],
                command: vec!["b".into(), "c".into()],
                labels: [("b".to_string(), "3".to_string())].into(),
                environment: [("A".to_string(), None), ("B".into(), Some("2".into()))].into(),
                ..Default::default()
            },
        );
        assert_eq!(base.cap_add, ["NET_ADMIN", "SYS_ADMIN"]);
        assert_eq!(base.command, ["b", "c"]);
        assert_eq!(base.labels["a"], "1");
        assert_eq!(base.labels["b"], "3");
        assert_eq!(base.environment["A"].as_deref(), Some("1"));
        assert_eq!(base.environment["B"].as_deref(), Some("2"));
    }

    #[test]
    fn top_level_objects_are_replaced_and_new_services_added() {
        let mut a = Config::default();
        a.services.insert("web".into(), Service::default());
        a.networks.insert(
            "n".into(),
            super::super::model::Network {
                driver: "overlay".into(),
                attachable: true,
                ..Default::default()
            },
        );
        let mut b = Config::default();
        b.services.insert("db".into(), Service::default());
        b.networks.insert(
            "n".into(),
            super::super::model::Network {
                internal: true,
                ..Default::default()
            },
        );
        let merged = merge(a, vec![b]);
        assert_eq!(merged.services.len(), 2);
        assert!(!merged.networks["n"].attachable && merged.networks["n"].internal);
    }
}
