//! One service from its (interpolated) tree to the typed model, with docker/cli's schema checks,
//! short syntaxes expanded, `env_file` and the caller's environment folded into `environment`,
//! bind sources made absolute, and warnings for what `docker stack deploy` ignores.

use std::collections::BTreeMap;

use super::decode::{join, Cx, Unknown};
use super::envfile;
use super::error::Result;
use super::model::{
    CredentialSpec, FileReference, Healthcheck, Logging, Port, Service, ServiceNetwork,
    ServiceVolume, Ulimit, VolumeOptions,
};
use super::ports::parse_port_spec;
use super::units::shlex_split;
use super::volume_spec::{parse_volume, resolve_bind_source};
use super::yaml::{Node, Value};

/// Keys docker/cli refuses, with its fix-it messages (`ForbiddenProperties`).
pub const FORBIDDEN: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    ("volume_driver", "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there."),
    ("volumes_from", "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option."),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

/// Keys docker/cli accepts and ignores with "Ignoring unsupported options".
const UNSUPPORTED: &[&str] = &[
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// Decodes service `name`.
pub fn service(cx: &mut Cx, name: &str, n: &Node) -> Result<Service> {
    let path = join("services", name);
    let mut s = Service::default();
    let mut env_files = Vec::new();
    let mut env_line = n.line;
    for (k, v) in cx.entries(n, &path)? {
        let p = join(&path, &k.name);
        match k.name.as_str() {
            "cap_add" => s.cap_add = cx.strings(v, &p, true)?,
            "cap_drop" => s.cap_drop = cx.strings(v, &p, true)?,
            "command" => s.command = shell_command(cx, v, &p)?,
            "entrypoint" => s.entrypoint = shell_command(cx, v, &p)?,
            "configs" => s.configs = file_references(cx, v, &p)?,
            "secrets" => s.secrets = file_references(cx, v, &p)?,
            "credential_spec" => s.credential_spec = credential_spec(cx, v, &p)?,
            "deploy" => s.deploy = super::deploy::deploy(cx, v, &p)?,
            "dns" => s.dns = Some(cx.string_or_list(v, &p)?),
            "dns_search" => s.dns_search = Some(cx.string_or_list(v, &p)?),
            "env_file" => {
                env_files = cx.string_or_list(v, &p)?;
                env_line = v.line;
            }
            "environment" => s.environment = cx.list_or_dict(v, &p)?,
            "extra_hosts" => s.extra_hosts = hosts(cx, v, &p)?,
            "healthcheck" => s.healthcheck = Some(healthcheck(cx, v, &p)?),
            "hostname" => s.hostname = cx.string(v, &p)?,
            "image" => s.image = cx.string(v, &p)?,
            "init" => s.init = Some(cx.boolean(v, &p)?),
            "isolation" => s.isolation = cx.string(v, &p)?,
            "labels" => s.labels = cx.labels(v, &p)?,
            "logging" => s.logging = Some(logging(cx, v, &p)?),
            "networks" => s.networks = networks(cx, v, &p)?,
            "oom_score_adj" => {
                cx.int(v, &p)?;
                // docker/cli's loader has no mapstructure tag for it, so it never reaches the spec.
                cx.warn(k.line, &p, "ignored: docker stack deploy drops it");
            }
            "ports" => s.ports = ports(cx, v, &p)?,
            "read_only" => s.read_only = cx.boolean(v, &p)?,
            "restart" => {
                s.restart = cx.string(v, &p)?;
                cx.warn(
                    k.line,
                    &p,
                    "unsupported by swarm; used as the restart policy only when deploy.restart_policy is absent",
                );
            }
            "stdin_open" => s.stdin_open = cx.boolean(v, &p)?,
            "stop_grace_period" => s.stop_grace_period = Some(cx.duration(v, &p)?),
            "stop_signal" => s.stop_signal = cx.string(v, &p)?,
            "sysctls" => s.sysctls = cx.labels(v, &p)?,
            "tty" => s.tty = cx.boolean(v, &p)?,
            "ulimits" => s.ulimits = ulimits(cx, v, &p)?,
            "user" => s.user = cx.string(v, &p)?,
            "volumes" => s.volumes = volumes(cx, v, &p)?,
            "working_dir" => s.working_dir = cx.string(v, &p)?,
            // Accepted, checked, and without effect on a swarm service.
            "container_name" => {
                cx.string(v, &p)?;
                cx.warn(
                    k.line,
                    &p,
                    "ignored: setting the container name is not supported",
                );
            }
            "expose" => {
                let items = cx.items(v, &p)?;
                cx.unique(items, &p)?;
                for (i, item) in items.iter().enumerate() {
                    if !matches!(item.value, Value::Str(_) | Value::Int(_) | Value::Float(_)) {
                        return Err(cx.wrong(item, &format!("{p}[{i}]"), "a string or number"));
                    }
                }
                cx.warn(k.line, &p, "ignored: services on the same network reach each other's containers on any port");
            }
            "depends_on" => {
                cx.strings(v, &p, true)?;
                cx.warn(
                    k.line,
                    &p,
                    "ignored: swarm starts services in no particular order",
                );
            }
            "tmpfs" => {
                cx.string_or_list(v, &p)?;
                cx.warn(
                    k.line,
                    &p,
                    "ignored by docker stack deploy: use a volume of type tmpfs",
                );
            }
            unsupported if UNSUPPORTED.contains(&unsupported) => {
                unsupported_shape(cx, unsupported, v, &p)?;
                cx.warn(k.line, &p, "ignored: unsupported by docker stack deploy");
            }
            _ => cx.unknown(k, &path, Unknown::Extensions)?,
        }
    }
    s.environment = resolve_environment(
        cx,
        &path,
        env_line,
        &env_files,
        std::mem::take(&mut s.environment),
    )?;
    let home = (cx.lookup)("HOME");
    for (i, vol) in s.volumes.iter_mut().enumerate() {
        if vol.kind != "bind" {
            continue;
        }
        let p = format!("{path}.volumes[{i}]");
        if vol.source.is_empty() {
            return Err(cx.err(
                n.line,
                &p,
                "invalid mount config for type \"bind\": field Source must not be empty",
            ));
        }
        vol.source = resolve_bind_source(&vol.source, cx.working_dir, home.as_deref())
            .map_err(|e| cx.err(n.line, &p, e))?;
    }
    Ok(s)
}

/// The schema's type for the keys docker/cli then ignores.
fn unsupported_shape(cx: &Cx, key: &str, v: &Node, p: &str) -> Result<()> {
    match key {
        "build" => match &v.value {
            Value::Str(_) | Value::Map(_) => Ok(()),
            _ => Err(cx.wrong(v, p, "a string or a mapping")),
        },
        "devices" | "external_links" | "links" | "security_opt" => {
            cx.strings(v, p, true).map(|_| ())
        }
        "privileged" => cx.boolean(v, p).map(|_| ()),
        "pid" if matches!(v.value, Value::Null) => Ok(()),
        "shm_size" => cx.string_or_number(v, p),
        _ => cx.string(v, p).map(|_| ()),
    }
}

impl Cx<'_> {
    fn string_or_number(&self, v: &Node, p: &str) -> Result<()> {
        match &v.value {
            Value::Str(_) | Value::Int(_) | Value::Float(_) => Ok(()),
            _ => Err(self.wrong(v, p, "a string or number")),
        }
    }
}

/// `command` / `entrypoint`: a string split like a shell would, or a list.
fn shell_command(cx: &Cx, v: &Node, p: &str) -> Result<Vec<String>> {
    match &v.value {
        Value::Str(s) => shlex_split(s).map_err(|e| cx.err(v.line, p, e)),
        Value::Seq(_) => cx.strings(v, p, false),
        _ => Err(cx.wrong(v, p, "a string or a list of strings")),
    }
}

/// docker/cli's `resolveEnvironment`: env files in order, then `environment`; a key without a
/// value (or with an empty one) takes the caller's value when the caller has one.
fn resolve_environment(
    cx: &Cx,
    path: &str,
    line: usize,
    files: &[String],
    environment: BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    let update = |out: &mut BTreeMap<String, Option<String>>,
                  vars: BTreeMap<String, Option<String>>| {
        for (k, v) in vars {
            let empty = v.as_deref().is_none_or(str::is_empty);
            match (cx.lookup)(&k) {
                Some(from_env) if empty => out.insert(k, Some(from_env)),
                _ => out.insert(k, v),
            };
        }
    };
    if !files.is_empty() {
        let mut from_files = BTreeMap::new();
        for file in files {
            let p = join(path, "env_file");
            let content = cx.attachments.get(file).ok_or_else(|| {
                cx.err(
                    line,
                    &p,
                    format!("{file:?} was not sent with the compose file"),
                )
            })?;
            let lines = envfile::parse(content, cx.lookup)
                .map_err(|e| cx.err(line, &p, format!("invalid env file ({file}): {e}")))?;
            for l in lines {
                match l.split_once('=') {
                    Some((k, v)) => from_files.insert(k.to_string(), Some(v.to_string())),
                    None => from_files.insert(l, None),
                };
            }
        }
        update(&mut out, from_files);
    }
    update(&mut out, environment);
    Ok(out)
}

/// `extra_hosts` as docker/cli's `HostsList`: `host:ip` (a mapping, sorted, or a list of
/// `host:ip` / `host=ip`), brackets around an IPv6 address dropped.
fn hosts(cx: &Cx, v: &Node, p: &str) -> Result<Vec<String>> {
    let pairs: Vec<String> = match &v.value {
        Value::Map(_) => {
            let mut list: Vec<String> = cx
                .list_or_dict(v, p)?
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}:{v}")))
                .collect();
            list.sort();
            list
        }
        _ => cx
            .strings(v, p, true)?
            .into_iter()
            .filter_map(|e| {
                let (k, v) = e.split_once('=').or_else(|| e.split_once(':'))?;
                Some(format!("{k}:{v}"))
            })
            .collect(),
    };
    Ok(pairs
        .into_iter()
        .map(|h| {
            let (host, ip) = h.split_once(':').unwrap_or((&h, ""));
            let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
                Some(inner) if ip.len() > 2 => inner,
                _ => ip,
            };
            format!("{host}:{ip}")
        })
        .collect())
}

fn file_references(cx: &mut Cx, v: &Node, p: &str) -> Result<Vec<FileReference>> {
    let mut out = Vec::new();
    for (i, item) in cx.items(v, p)?.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let mut r = FileReference::default();
        match &item.value {
            Value::Str(s) => r.source = s.clone(),
            Value::Map(_) => {
                for (k, v) in cx.entries(item, &ip)? {
                    let kp = join(&ip, &k.name);
                    match k.name.as_str() {
                        "source" => r.source = cx.string(v, &kp)?,
                        "target" => r.target = cx.string(v, &kp)?,
                        "uid" => r.uid = cx.string(v, &kp)?,
                        "gid" => r.gid = cx.string(v, &kp)?,
                        "mode" => {
                            let mode = cx.number(v, &kp)?;
                            if !(0.0..=u32::MAX as f64).contains(&mode) {
                                return Err(cx.wrong(v, &kp, "a file mode"));
                            }
                            r.mode = Some(mode as u32);
                        }
                        _ => cx.unknown(k, &ip, Unknown::Warn)?,
                    }
                }
            }
            _ => return Err(cx.wrong(item, &ip, "a string or a mapping")),
        }
        out.push(r);
    }
    Ok(out)
}

fn credential_spec(cx: &mut Cx, v: &Node, p: &str) -> Result<CredentialSpec> {
    let mut c = CredentialSpec::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "config" => c.config = cx.string(v, &kp)?,
            "file" => c.file = cx.string(v, &kp)?,
            "registry" => c.registry = cx.string(v, &kp)?,
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(c)
}

fn healthcheck(cx: &mut Cx, v: &Node, p: &str) -> Result<Healthcheck> {
    let mut h = Healthcheck::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "disable" => h.disable = cx.boolean(v, &kp)?,
            "interval" => h.interval = Some(cx.duration(v, &kp)?),
            "timeout" => h.timeout = Some(cx.duration(v, &kp)?),
            "start_period" => h.start_period = Some(cx.duration(v, &kp)?),
            "start_interval" => h.start_interval = Some(cx.duration(v, &kp)?),
            "retries" => {
                let r = cx.number(v, &kp)?;
                if r < 0.0 {
                    return Err(cx.wrong(v, &kp, "a non-negative number"));
                }
                h.retries = Some(r as u64);
            }
            "test" => {
                h.test = match &v.value {
                    Value::Str(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    _ => cx
                        .strings(v, &kp, false)
                        .map_err(|_| cx.wrong(v, &kp, "a string or a list of strings"))?,
                }
            }
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(h)
}

fn logging(cx: &mut Cx, v: &Node, p: &str) -> Result<Logging> {
    let mut l = Logging::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "driver" => l.driver = cx.string(v, &kp)?,
            "options" => l.options = Some(cx.string_map(v, &kp, true)?),
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(l)
}

fn networks(cx: &mut Cx, v: &Node, p: &str) -> Result<BTreeMap<String, Option<ServiceNetwork>>> {
    let mut out = BTreeMap::new();
    if let Value::Seq(_) = v.value {
        for name in cx.strings(v, p, true)? {
            out.insert(name, None);
        }
        return Ok(out);
    }
    for (name, def) in cx
        .entries(v, p)
        .map_err(|_| cx.wrong(v, p, "a list or a mapping"))?
    {
        let np = join(p, &name.name);
        let valid_name = name
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid_name || name.name.is_empty() {
            return Err(cx.err(
                name.line,
                p,
                format!("additional property {} is not allowed", name.name),
            ));
        }
        if matches!(def.value, Value::Null) {
            out.insert(name.name.clone(), None);
            continue;
        }
        let mut sn = ServiceNetwork::default();
        for (k, v) in cx
            .entries(def, &np)
            .map_err(|_| cx.wrong(def, &np, "a mapping or null"))?
        {
            let kp = join(&np, &k.name);
            match k.name.as_str() {
                "aliases" => sn.aliases = cx.strings(v, &kp, true)?,
                "driver_opts" => sn.driver_opts = cx.string_map(v, &kp, false)?,
                "ipv4_address" | "ipv6_address" => {
                    let a = cx.string(v, &kp)?;
                    cx.warn(
                        k.line,
                        &kp,
                        "ignored: swarm services get their addresses from the network's IPAM",
                    );
                    if k.name == "ipv4_address" {
                        sn.ipv4_address = a;
                    } else {
                        sn.ipv6_address = a;
                    }
                }
                _ => cx.unknown(k, &np, Unknown::Refuse)?,
            }
        }
        out.insert(name.name.clone(), Some(sn));
    }
    Ok(out)
}

fn ports(cx: &mut Cx, v: &Node, p: &str) -> Result<Vec<Port>> {
    let items = cx.items(v, p)?;
    cx.unique(items, p)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        match &item.value {
            Value::Int(n) => {
                let mut w = Vec::new();
                out.extend(
                    parse_port_spec(&n.to_string(), &mut w)
                        .map_err(|e| cx.err(item.line, &ip, e))?,
                );
            }
            Value::Str(s) => {
                let mut w = Vec::new();
                let ports = parse_port_spec(s, &mut w).map_err(|e| cx.err(item.line, &ip, e))?;
                for warning in w {
                    cx.warn(item.line, &ip, warning);
                }
                out.extend(ports);
            }
            Value::Map(_) => {
                let mut port = Port::default();
                for (k, v) in cx.entries(item, &ip)? {
                    let kp = join(&ip, &k.name);
                    match k.name.as_str() {
                        "mode" => port.mode = cx.string(v, &kp)?,
                        "protocol" => port.protocol = cx.string(v, &kp)?,
                        "target" | "published" => {
                            let n = u32::try_from(cx.int(v, &kp)?)
                                .map_err(|_| cx.wrong(v, &kp, "a port number"))?;
                            if k.name == "target" {
                                port.target = n;
                            } else {
                                port.published = n;
                            }
                        }
                        _ => cx.unknown(k, &ip, Unknown::Refuse)?,
                    }
                }
                out.push(port);
            }
            _ => return Err(cx.wrong(item, &ip, "a port (number, string or mapping)")),
        }
    }
    Ok(out)
}

fn ulimits(cx: &mut Cx, v: &Node, p: &str) -> Result<BTreeMap<String, Ulimit>> {
    let mut out = BTreeMap::new();
    for (name, def) in cx.entries(v, p)? {
        let np = join(p, &name.name);
        let u = match &def.value {
            Value::Map(_) => {
                let (mut soft, mut hard) = (None, None);
                for (k, v) in cx.entries(def, &np)? {
                    let kp = join(&np, &k.name);
                    match k.name.as_str() {
                        "soft" => soft = Some(cx.int(v, &kp)?),
                        "hard" => hard = Some(cx.int(v, &kp)?),
                        _ => cx.unknown(k, &np, Unknown::Refuse)?,
                    }
                }
                let (Some(soft), Some(hard)) = (soft, hard) else {
                    return Err(cx.err(def.line, &np, "needs both soft and hard"));
                };
                Ulimit {
                    single: 0,
                    soft,
                    hard,
                }
            }
            _ => Ulimit {
                single: cx
                    .int(def, &np)
                    .map_err(|_| cx.wrong(def, &np, "an integer or a mapping"))?,
                soft: 0,
                hard: 0,
            },
        };
        out.insert(name.name.clone(), u);
    }
    Ok(out)
}

fn volumes(cx: &mut Cx, v: &Node, p: &str) -> Result<Vec<ServiceVolume>> {
    let items = cx.items(v, p)?;
    cx.unique(items, p)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let vol = match &item.value {
            Value::Str(s) => parse_volume(s).map_err(|e| cx.err(item.line, &ip, e))?,
            Value::Map(_) => {
                let mut vol = ServiceVolume::default();
                let mut has_type = false;
                for (k, v) in cx.entries(item, &ip)? {
                    let kp = join(&ip, &k.name);
                    match k.name.as_str() {
                        "type" => {
                            vol.kind = cx.string(v, &kp)?;
                            has_type = true;
                        }
                        "source" => vol.source = cx.string(v, &kp)?,
                        "target" => vol.target = cx.string(v, &kp)?,
                        "read_only" => vol.read_only = cx.boolean(v, &kp)?,
                        "consistency" => vol.consistency = cx.string(v, &kp)?,
                        "bind" => {
                            let mut propagation = String::new();
                            for (bk, bv) in cx.entries(v, &kp)? {
                                match bk.name.as_str() {
                                    "propagation" => {
                                        propagation = cx.string(bv, &join(&kp, "propagation"))?
                                    }
                                    _ => cx.unknown(bk, &kp, Unknown::Warn)?,
                                }
                            }
                            vol.bind = Some(propagation);
                        }
                        "volume" => {
                            let mut o = VolumeOptions::default();
                            for (vk, vv) in cx.entries(v, &kp)? {
                                let vp = join(&kp, &vk.name);
                                match vk.name.as_str() {
                                    "nocopy" => o.nocopy = cx.boolean(vv, &vp)?,
                                    "subpath" => o.subpath = cx.string(vv, &vp)?,
                                    _ => cx.unknown(vk, &kp, Unknown::Warn)?,
                                }
                            }
                            vol.volume = Some(o);
                        }
                        "tmpfs" => {
                            let mut size = 0;
                            for (tk, tv) in cx.entries(v, &kp)? {
                                let tp = join(&kp, &tk.name);
                                match tk.name.as_str() {
                                    "size" => {
                                        size = cx.int(tv, &tp)?;
                                        if size < 0 {
                                            return Err(cx.wrong(tv, &tp, "a size of 0 or more"));
                                        }
                                    }
                                    _ => cx.unknown(tk, &kp, Unknown::Warn)?,
                                }
                            }
                            vol.tmpfs = Some(size);
                        }
                        _ => cx.unknown(k, &ip, Unknown::Refuse)?,
                    }
                }
                if !has_type {
                    return Err(cx.err(item.line, &ip, "type is required"));
                }
                vol
            }
            _ => return Err(cx.wrong(item, &ip, "a string or a mapping")),
        };
        out.push(vol);
    }
    Ok(out)
}
