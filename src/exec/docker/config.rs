//! A task's `ContainerSpec` as a Docker Engine container-create request, the way Docker's own
//! swarm executor builds it: task labels, limits, mounts, healthcheck, security options, and a
//! restart policy of "no" (the manager restarts tasks, never the engine).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig, Mount as EngineMount,
    MountBindOptions, MountBindOptionsPropagationEnum, MountImageOptions, MountTmpfsOptions,
    MountType as EngineMountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, NetworkConnectRequest, NetworkingConfig, PortBinding,
};
use shoal_store::model::{
    ContainerSpec, Mount, MountType, PortConfig, PortProtocol, Privileges, Task,
};

use crate::dataplane::{Attachment, EngineEndpoint};

use crate::exec::{
    ExecError, TaskNames, LABEL_NODE_ID, LABEL_SERVICE_ID, LABEL_SERVICE_NAME, LABEL_TASK,
    LABEL_TASK_ID, LABEL_TASK_NAME,
};

/// The labels that tie a container to its task (on top of the spec's own labels).
pub(crate) fn task_labels(task: &Task, names: &TaskNames) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_TASK.to_owned(), String::new()),
        (LABEL_TASK_ID.to_owned(), task.meta.id.clone()),
        (LABEL_TASK_NAME.to_owned(), names.task.clone()),
        (LABEL_SERVICE_ID.to_owned(), task.service_id.clone()),
        (LABEL_SERVICE_NAME.to_owned(), names.service.clone()),
        (LABEL_NODE_ID.to_owned(), task.node_id.clone()),
    ])
}

/// The create request for `task`'s container. Fails (REJECTED) on options the engine could not
/// take, e.g. an unknown mount type.
pub(crate) fn container_config(
    task: &Task,
    spec: &ContainerSpec,
    names: &TaskNames,
    file_mounts: Vec<EngineMount>,
) -> Result<ContainerCreateBody, ExecError> {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.extend(task_labels(task, names));
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let some_str = |s: &String| (!s.is_empty()).then(|| s.clone());
    let grace = spec.stop_grace_period_or_default().as_secs();
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: some_vec(&spec.command),
        cmd: some_vec(&spec.args),
        env: some_vec(&spec.env),
        user: some_str(&spec.user),
        working_dir: some_str(&spec.dir),
        hostname: some_str(&spec.hostname),
        tty: spec.tty.then_some(true),
        open_stdin: spec.open_stdin.then_some(true),
        stop_signal: some_str(&spec.stop_signal),
        stop_timeout: Some(grace as i64),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: (!h.test.is_empty()).then(|| h.test.clone()),
            interval: (h.interval != 0).then_some(h.interval),
            timeout: (h.timeout != 0).then_some(h.timeout),
            retries: (h.retries != 0).then_some(h.retries),
            start_period: (h.start_period != 0).then_some(h.start_period),
            start_interval: (h.start_interval != 0).then_some(h.start_interval),
        }),
        labels: Some(labels),
        exposed_ports: (!task.host_ports.is_empty())
            .then(|| task.host_ports.iter().map(port_key).collect()),
        host_config: Some(host_config(task, spec, file_mounts)?),
        ..Default::default()
    })
}

fn host_config(
    task: &Task,
    spec: &ContainerSpec,
    file_mounts: Vec<EngineMount>,
) -> Result<HostConfig, ExecError> {
    let mut mounts = spec
        .mounts
        .iter()
        .map(mount)
        .collect::<Result<Vec<_>, _>>()?;
    mounts.extend(file_mounts);
    let mut hc = HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        init: spec.init,
        readonly_rootfs: spec.read_only.then_some(true),
        mounts: (!mounts.is_empty()).then_some(mounts),
        cap_add: (!spec.capability_add.is_empty()).then(|| spec.capability_add.clone()),
        cap_drop: (!spec.capability_drop.is_empty()).then(|| spec.capability_drop.clone()),
        sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.clone().into_iter().collect()),
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        group_add: (!spec.groups.is_empty()).then(|| spec.groups.clone()),
        oom_score_adj: (spec.oom_score_adj != 0).then_some(spec.oom_score_adj),
        extra_hosts: (!spec.hosts.is_empty()).then(|| extra_hosts(&spec.hosts)),
        security_opt: spec
            .privileges
            .as_ref()
            .map(security_opts)
            .filter(|o| !o.is_empty()),
        log_config: task.spec.log_driver.as_ref().map(|d| HostConfigLogConfig {
            typ: Some(d.name.clone()),
            config: Some(d.options.clone().into_iter().collect()),
        }),
        ..Default::default()
    };
    if !task.host_ports.is_empty() {
        hc.port_bindings = Some(host_port_bindings(&task.host_ports));
    }
    if let Some(dns) = &spec.dns_config {
        hc.dns = (!dns.nameservers.is_empty()).then(|| dns.nameservers.clone());
        hc.dns_search = (!dns.search.is_empty()).then(|| dns.search.clone());
        hc.dns_options = (!dns.options.is_empty()).then(|| dns.options.clone());
    }
    if let Some(limits) = task.spec.limits() {
        hc.nano_cpus = (limits.nano_cpus != 0).then_some(limits.nano_cpus);
        hc.memory = (limits.memory_bytes != 0).then_some(limits.memory_bytes);
        hc.pids_limit = (limits.pids != 0).then_some(limits.pids);
    }
    if let Some(reservations) = task.spec.reservations() {
        hc.memory_reservation =
            (reservations.memory_bytes != 0).then_some(reservations.memory_bytes);
        // A CPU reservation is a scheduling promise; under contention the engine can only honour
        // it as a relative weight (1 CPU = the default 1024 shares; 2 is the engine's minimum).
        if reservations.nano_cpus != 0 {
            hc.cpu_shares = Some((reservations.nano_cpus * 1024 / 1_000_000_000).max(2));
        }
    }
    Ok(hc)
}

/// `80/tcp`: how the engine names a container port.
fn port_key(p: &PortConfig) -> String {
    let protocol = match p.protocol_or_default() {
        PortProtocol::Udp => "udp",
        PortProtocol::Sctp => "sctp",
        _ => "tcp",
    };
    format!("{}/{protocol}", p.target_port)
}

/// Host-mode published ports as engine port bindings (a port without a published number gets
/// one from the engine, as dockerd's executor does).
fn host_port_bindings(ports: &[PortConfig]) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut out: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in ports {
        let binding = PortBinding {
            host_ip: None,
            host_port: Some(if p.published_port == 0 {
                String::new()
            } else {
                p.published_port.to_string()
            }),
        };
        out.entry(port_key(p))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    out
}

/// Attaches the create request to the task's swarm networks: created on the first (with its
/// fixed address and MAC, the task's name as alias), asking the node's DNS server for names.
/// The other networks are connected after the create ([`connect_request`]).
pub(crate) fn with_networks(
    mut body: ContainerCreateBody,
    attachment: &Attachment,
    names: &TaskNames,
) -> ContainerCreateBody {
    let Some(first) = attachment.endpoints.first() else {
        return body;
    };
    let hc = body.host_config.get_or_insert_with(HostConfig::default);
    hc.network_mode = Some(first.network.clone());
    if let Some(dns) = attachment.dns {
        // The task's own DNS servers come first; ours answers the swarm's names.
        let mut servers = hc.dns.take().unwrap_or_default();
        servers.insert(0, dns.to_string());
        hc.dns = Some(servers);
    }
    body.networking_config = Some(NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            first.network.clone(),
            endpoint_settings(first, names),
        )])),
    });
    body
}

fn endpoint_settings(ep: &EngineEndpoint, names: &TaskNames) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ep.ip.to_string()),
            ..Default::default()
        }),
        mac_address: Some(ep.mac.clone()),
        aliases: (!ep.ingress).then(|| vec![names.task.clone()]),
        ..Default::default()
    }
}

/// The request that connects container `id` to one of its further networks.
pub(crate) fn connect_request(
    id: &str,
    ep: &EngineEndpoint,
    names: &TaskNames,
) -> NetworkConnectRequest {
    NetworkConnectRequest {
        container: id.to_string(),
        endpoint_config: Some(endpoint_settings(ep, names)),
    }
}

/// `IP host [aliases...]` (the hosts-file order the spec uses) to the engine's `host:IP`.
fn extra_hosts(hosts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for entry in hosts {
        let mut fields = entry.split_whitespace();
        match (fields.next(), fields.clone().next()) {
            (Some(ip), Some(_)) => out.extend(fields.map(|host| format!("{host}:{ip}"))),
            // A single `host:IP` field is already in the engine's form.
            (Some(single), None) => out.push(single.to_owned()),
            (None, _) => {}
        }
    }
    out
}

fn security_opts(p: &Privileges) -> Vec<String> {
    let mut opts = Vec::new();
    if p.no_new_privileges {
        opts.push("no-new-privileges".to_owned());
    }
    if let Some(s) = &p.seccomp {
        match s.mode.as_str() {
            "unconfined" => opts.push("seccomp=unconfined".to_owned()),
            "custom" => opts.push(format!("seccomp={}", String::from_utf8_lossy(&s.profile))),
            _ => {}
        }
    }
    if let Some(a) = &p.app_armor {
        if a.mode == "disabled" {
            opts.push("apparmor=unconfined".to_owned());
        }
    }
    if let Some(l) = &p.se_linux_context {
        if l.disable {
            opts.push("label=disable".to_owned());
        } else {
            for (key, value) in [
                ("user", &l.user),
                ("role", &l.role),
                ("type", &l.kind),
                ("level", &l.level),
            ] {
                if !value.is_empty() {
                    opts.push(format!("label={key}:{value}"));
                }
            }
        }
    }
    opts
}

fn mount(m: &Mount) -> Result<EngineMount, ExecError> {
    let typ = match &m.kind {
        Some(MountType::Bind) => EngineMountType::BIND,
        Some(MountType::Volume) => EngineMountType::VOLUME,
        Some(MountType::Tmpfs) => EngineMountType::TMPFS,
        Some(MountType::Npipe) => EngineMountType::NPIPE,
        Some(MountType::Image) => EngineMountType::IMAGE,
        Some(MountType::Cluster) => {
            return Err(ExecError::Rejected(format!(
                "invalid mount config for {}: cluster volumes are not supported",
                m.target
            )))
        }
        Some(MountType::Other(other)) => {
            return Err(ExecError::Rejected(format!(
                "invalid mount type: {other:?}"
            )))
        }
        None => {
            return Err(ExecError::Rejected(format!(
                "invalid mount config for {}: mount type unknown",
                m.target
            )))
        }
    };
    let bind_options =
        match &m.bind_options {
            Some(b) => Some(MountBindOptions {
                propagation: match b.propagation.as_str() {
                    "" => None,
                    p => Some(p.parse::<MountBindOptionsPropagationEnum>().map_err(|_| {
                        ExecError::Rejected(format!("invalid propagation mode: {p}"))
                    })?),
                },
                non_recursive: b.non_recursive.then_some(true),
                create_mountpoint: b.create_mountpoint.then_some(true),
                read_only_non_recursive: b.read_only_non_recursive.then_some(true),
                read_only_force_recursive: b.read_only_force_recursive.then_some(true),
            }),
            None => None,
        };
    Ok(EngineMount {
        target: Some(m.target.clone()),
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        typ: Some(typ),
        read_only: m.read_only.then_some(true),
        consistency: (!m.consistency.is_empty()).then(|| m.consistency.clone()),
        bind_options,
        volume_options: m.volume_options.as_ref().map(|v| MountVolumeOptions {
            no_copy: v.no_copy.then_some(true),
            labels: (!v.labels.is_empty()).then(|| v.labels.clone().into_iter().collect()),
            driver_config: v
                .driver_config
                .as_ref()
                .map(|d| MountVolumeOptionsDriverConfig {
                    name: Some(d.name.clone()),
                    options: Some(d.options.clone().into_iter().collect()),
                }),
            subpath: (!v.subpath.is_empty()).then(|| v.subpath.clone()),
        }),
        image_options: m.image_options.as_ref().map(|i| MountImageOptions {
            subpath: (!i.subpath.is_empty()).then(|| i.subpath.clone()),
        }),
        tmpfs_options: m.tmpfs_options.as_ref().map(|t| MountTmpfsOptions {
            size_bytes: (t.size_bytes != 0).then_some(t.size_bytes),
            mode: (t.mode != 0).then_some(i64::from(t.mode)),
            options: (!t.options.is_empty()).then(|| t.options.clone()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use shoal_store::model::{
        BindOptions, DNSConfig, Driver, HealthConfig as SpecHealth, Limit, ResourceRequirements,
        Resources, SeccompOpts, TmpfsOptions, Ulimit,
    };

    use super::*;
    use crate::exec::testutil::{command, task_with};

    fn full_task() -> Task {
        let mut spec = command("shoal-test/busybox:1", &["sleep", "30"]);
        spec.command = vec!["/bin/sh".into(), "-c".into()];
        spec.labels.insert("app".into(), "web".into());
        spec.env = vec!["A=1".into()];
        spec.user = "1000:1000".into();
        spec.dir = "/work".into();
        spec.hostname = "h1".into();
        spec.init = Some(true);
        spec.read_only = true;
        spec.stop_signal = "SIGINT".into();
        spec.stop_grace_period = Some(7_000_000_000);
        spec.healthcheck = Some(SpecHealth {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 500_000_000,
            retries: 3,
            ..Default::default()
        });
        spec.hosts = vec!["10.0.0.1 db cache".into(), "web:10.0.0.2".into()];
        spec.dns_config = Some(DNSConfig {
            nameservers: vec!["10.0.0.53".into()],
            search: vec!["example.com".into()],
            options: vec!["ndots:2".into()],
        });
        spec.capability_add = vec!["CAP_NET_ADMIN".into()];
        spec.capability_drop = vec!["CAP_MKNOD".into()];
        spec.sysctls
            .insert("net.core.somaxconn".into(), "1024".into());
        spec.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }];
        spec.privileges = Some(Privileges {
            no_new_privileges: true,
            seccomp: Some(SeccompOpts {
                mode: "unconfined".into(),
                profile: Vec::new(),
            }),
            ..Default::default()
        });
        spec.mounts = vec![
            Mount {
                kind: Some(MountType::Bind),
                source: "/srv".into(),
                target: "/srv".into(),
                read_only: true,
                bind_options: Some(BindOptions {
                    propagation: "rslave".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Mount {
                kind: Some(MountType::Tmpfs),
                target: "/tmp".into(),
                tmpfs_options: Some(TmpfsOptions {
                    size_bytes: 1 << 20,
                    mode: 0o700,
                    options: Vec::new(),
                }),
                ..Default::default()
            },
        ];
        let mut task = task_with("web", spec);
        task.spec.resources = Some(ResourceRequirements {
            limits: Some(Limit {
                nano_cpus: 500_000_000,
                memory_bytes: 64 << 20,
                pids: 100,
            }),
            reservations: Some(Resources {
                nano_cpus: 250_000_000,
                memory_bytes: 32 << 20,
                generic_resources: Vec::new(),
            }),
        });
        task.spec.log_driver = Some(Driver {
            name: "json-file".into(),
            options: [("max-size".to_string(), "1m".to_string())].into(),
        });
        task
    }

    #[test]
    fn converts_every_supported_option() {
        let task = full_task();
        let names = TaskNames::of(&task);
        let spec = task.spec.container().unwrap();
        let c = container_config(&task, spec, &names, Vec::new()).unwrap();
        assert_eq!(c.image.as_deref(), Some("shoal-test/busybox:1"));
        assert_eq!(c.entrypoint.as_deref().unwrap(), ["/bin/sh", "-c"]);
        assert_eq!(c.cmd.as_deref().unwrap(), ["sleep", "30"]);
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/work"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.stop_timeout, Some(7));
        let labels = c.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[LABEL_TASK_ID], task.meta.id);
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_TASK_NAME], format!("web.1.{}", task.meta.id));
        assert_eq!(labels[LABEL_NODE_ID], "node1");
        let hc = c.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test.as_deref().unwrap(), ["CMD-SHELL", "true"]);
        assert_eq!(hc.interval, Some(500_000_000));
        assert_eq!(hc.timeout, None);
        let h = c.host_config.as_ref().unwrap();
        assert_eq!(
            h.restart_policy.as_ref().unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(h.nano_cpus, Some(500_000_000));
        assert_eq!(h.memory, Some(64 << 20));
        assert_eq!(h.pids_limit, Some(100));
        assert_eq!(h.memory_reservation, Some(32 << 20));
        assert_eq!(h.cpu_shares, Some(256));
        assert_eq!(h.init, Some(true));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(
            h.extra_hosts.as_deref().unwrap(),
            ["db:10.0.0.1", "cache:10.0.0.1", "web:10.0.0.2"]
        );
        assert_eq!(h.dns.as_deref().unwrap(), ["10.0.0.53"]);
        assert_eq!(h.dns_options.as_deref().unwrap(), ["ndots:2"]);
        assert_eq!(
            h.security_opt.as_deref().unwrap(),
            ["no-new-privileges", "seccomp=unconfined"]
        );
        assert_eq!(h.ulimits.as_ref().unwrap()[0].hard, Some(2048));
        assert_eq!(h.sysctls.as_ref().unwrap()["net.core.somaxconn"], "1024");
        assert_eq!(
            h.log_config.as_ref().unwrap().typ.as_deref(),
            Some("json-file")
        );
        let mounts = h.mounts.as_ref().unwrap();
        assert_eq!(mounts[0].typ, Some(EngineMountType::BIND));
        assert_eq!(
            mounts[0].bind_options.as_ref().unwrap().propagation,
            Some(MountBindOptionsPropagationEnum::RSLAVE)
        );
        assert_eq!(mounts[1].tmpfs_options.as_ref().unwrap().mode, Some(0o700));
        // The JSON the engine receives uses its own names.
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(json["HostConfig"]["Mounts"][1]["Type"], "tmpfs");
    }

    #[test]
    fn a_minimal_spec_sends_only_what_is_set() {
        let task = task_with("web", command("img:1", &[]));
        let spec = task.spec.container().unwrap();
        let c = container_config(&task, spec, &TaskNames::of(&task), Vec::new()).unwrap();
        assert!(c.entrypoint.is_none() && c.cmd.is_none() && c.healthcheck.is_none());
        let h = c.host_config.unwrap();
        assert!(h.mounts.is_none() && h.memory.is_none() && h.security_opt.is_none());
    }

    #[test]
    fn bad_mounts_are_rejected() {
        let mut spec = command("img:1", &[]);
        spec.mounts = vec![Mount {
            kind: Some(MountType::Bind),
            source: "/a".into(),
            target: "/a".into(),
            bind_options: Some(BindOptions {
                propagation: "sideways".into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let task = task_with("web", spec);
        let err = container_config(
            &task,
            task.spec.container().unwrap(),
            &TaskNames::of(&task),
            Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ExecError::Rejected("invalid propagation mode: sideways".into())
        );
    }
}
