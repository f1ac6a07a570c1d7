//! A service of the merged model to the `ServiceSpec` JSON `docker stack deploy` posts
//! (docker/cli's `convert.Service`, plus what the Docker client's `ServiceCreate` does to it:
//! `:latest` on a bare image). Secret and config references carry `SecretName`/`ConfigName` with
//! an empty `SecretID`/`ConfigID` (docker/cli looks the ids up by name on the daemon; the apply
//! step does that here), and a credential spec's `Config` holds the config's name for the same
//! reason.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::error::{ComposeError, Result};
use super::image;
use super::model::{Config, FileReference, Healthcheck, Service, UpdateConfig};
use super::objects::{scope, stack_labels};
use super::units::parse_cpus;

/// `com.docker.stack.image`: the image as written in the compose file.
pub const LABEL_IMAGE: &str = "com.docker.stack.image";

/// A stack-wide error about service `name`.
fn err(name: &str, key: &str, message: impl Into<String>) -> ComposeError {
    ComposeError {
        file: None,
        line: None,
        key: Some(if key.is_empty() {
            format!("services.{name}")
        } else {
            format!("services.{name}.{key}")
        }),
        message: message.into(),
    }
}

/// Inserts `key: value` unless `value` is Go's zero value for an `omitempty` field.
fn put(m: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    if !empty {
        m.insert(key.into(), value);
    }
}

/// The float32 `MaxFailureRatio` as Go prints it (`0.1`, not `0.10000000149011612`).
fn float32(f: f32) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return json!(f as i64);
    }
    let shortest: f64 = f.to_string().parse().unwrap_or(0.0);
    serde_json::Number::from_f64(shortest)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// The `ServiceSpec` of service `name` in stack `stack`.
pub fn service(stack: &str, name: &str, svc: &Service, cfg: &Config) -> Result<Value> {
    if svc.image.is_empty() {
        return Err(err(
            name,
            "image",
            format!("invalid image reference for service {name}: no image specified"),
        ));
    }
    image::validate(&svc.image).map_err(|e| {
        err(
            name,
            "image",
            format!("invalid image reference for service {name}: {e}"),
        )
    })?;

    let mut container = Map::new();
    container.insert("Image".into(), json!(image::spec_image(&svc.image)));
    container.insert("Labels".into(), stack_labels(stack, &svc.labels));
    put(&mut container, "Command", json!(svc.entrypoint));
    put(&mut container, "Args", json!(svc.command));
    put(&mut container, "Hostname", json!(svc.hostname));
    put(&mut container, "Env", json!(environment(&svc.environment)));
    put(&mut container, "Dir", json!(svc.working_dir));
    put(&mut container, "User", json!(svc.user));
    container.insert(
        "Privileges".into(),
        json!({ "CredentialSpec": credential_spec(name, svc)?, "SELinuxContext": null }),
    );
    if let Some(init) = svc.init {
        container.insert("Init".into(), json!(init));
    }
    put(&mut container, "StopSignal", json!(svc.stop_signal));
    put(&mut container, "TTY", json!(svc.tty));
    put(&mut container, "OpenStdin", json!(svc.stdin_open));
    put(&mut container, "ReadOnly", json!(svc.read_only));
    put(
        &mut container,
        "Mounts",
        json!(super::mounts::mounts(stack, name, svc, cfg)?),
    );
    if let Some(grace) = svc.stop_grace_period {
        container.insert("StopGracePeriod".into(), json!(grace));
    }
    if let Some(h) = &svc.healthcheck {
        container.insert("Healthcheck".into(), healthcheck(name, h)?);
    }
    let hosts: Vec<String> = svc
        .extra_hosts
        .iter()
        .filter_map(|h| h.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
        .collect();
    put(&mut container, "Hosts", json!(hosts));
    if svc.dns.is_some() || svc.dns_search.is_some() {
        let mut dns = Map::new();
        put(&mut dns, "Nameservers", json!(svc.dns));
        put(&mut dns, "Search", json!(svc.dns_search));
        container.insert("DNSConfig".into(), Value::Object(dns));
    }
    put(
        &mut container,
        "Secrets",
        json!(secret_refs(stack, name, svc, cfg)?),
    );
    put(
        &mut container,
        "Configs",
        json!(config_refs(stack, name, svc, cfg)?),
    );
    put(&mut container, "Isolation", json!(svc.isolation));
    put(&mut container, "Sysctls", json!(svc.sysctls));
    let (cap_add, cap_drop) = capabilities(&svc.cap_add, &svc.cap_drop);
    put(&mut container, "CapabilityAdd", json!(cap_add));
    put(&mut container, "CapabilityDrop", json!(cap_drop));
    let ulimits: Vec<Value> = svc
        .ulimits
        .iter()
        .map(|(n, u)| {
            let (soft, hard) = if u.single != 0 {
                (u.single, u.single)
            } else {
                (u.soft, u.hard)
            };
            json!({ "Name": n, "Hard": hard, "Soft": soft })
        })
        .collect();
    put(&mut container, "Ulimits", json!(ulimits));

    let mut task = Map::new();
    task.insert("ContainerSpec".into(), Value::Object(container));
    task.insert("Resources".into(), resources(name, svc)?);
    if let Some(policy) = restart_policy(name, svc)? {
        task.insert("RestartPolicy".into(), policy);
    }
    let mut placement = Map::new();
    put(
        &mut placement,
        "Constraints",
        json!(svc.deploy.placement.constraints),
    );
    let preferences: Vec<Value> = svc
        .deploy
        .placement
        .preferences
        .iter()
        .map(|s| json!({ "Spread": { "SpreadDescriptor": s } }))
        .collect();
    put(&mut placement, "Preferences", json!(preferences));
    put(
        &mut placement,
        "MaxReplicas",
        json!(svc.deploy.placement.max_replicas),
    );
    task.insert("Placement".into(), Value::Object(placement));
    task.insert("Networks".into(), json!(networks(stack, name, svc, cfg)?));
    if let Some(l) = &svc.logging {
        let mut driver = Map::new();
        put(&mut driver, "Name", json!(l.driver));
        put(&mut driver, "Options", json!(l.options));
        task.insert("LogDriver".into(), Value::Object(driver));
    }
    task.insert("ForceUpdate".into(), json!(0));

    let mut labels = svc.deploy.labels.clone();
    labels.insert(LABEL_IMAGE.into(), svc.image.clone());
    let mut spec = Map::new();
    spec.insert("Name".into(), json!(scope(stack, name)));
    spec.insert("Labels".into(), stack_labels(stack, &labels));
    spec.insert("TaskTemplate".into(), Value::Object(task));
    spec.insert("Mode".into(), mode(name, svc)?);
    if let Some(u) = &svc.deploy.update_config {
        spec.insert("UpdateConfig".into(), update_config(u));
    }
    if let Some(u) = &svc.deploy.rollback_config {
        spec.insert("RollbackConfig".into(), update_config(u));
    }
    let mut ports: Vec<&super::model::Port> = svc.ports.iter().collect();
    ports.sort_by_key(|p| p.published);
    let ports: Vec<Value> = ports
        .into_iter()
        .map(|p| {
            let mut m = Map::new();
            put(&mut m, "Protocol", json!(p.protocol));
            put(&mut m, "TargetPort", json!(p.target));
            put(&mut m, "PublishedPort", json!(p.published));
            put(&mut m, "PublishMode", json!(p.mode));
            Value::Object(m)
        })
        .collect();
    let mut endpoint = Map::new();
    put(
        &mut endpoint,
        "Mode",
        json!(svc.deploy.endpoint_mode.to_lowercase()),
    );
    put(&mut endpoint, "Ports", json!(ports));
    spec.insert("EndpointSpec".into(), Value::Object(endpoint));
    Ok(Value::Object(spec))
}

/// `KEY=VALUE` (or `KEY` without a value), sorted.
fn environment(env: &BTreeMap<String, Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = env
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    out.sort();
    out
}

/// The CLI's `EffectiveCapAddCapDrop`: upper-cased, `CAP_` prefixed, `ALL` trumping the rest,
/// an added capability not dropped, sorted and without duplicates.
fn capabilities(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let normalize = |caps: &[String]| -> BTreeSet<String> {
        let set: BTreeSet<String> = caps
            .iter()
            .map(|c| {
                let c = c.trim().to_uppercase();
                if c == "ALL" || c == "RESET" || c.starts_with("CAP_") {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect();
        if set.contains("ALL") {
            ["ALL".to_string()].into()
        } else {
            set
        }
    };
    let add = normalize(add);
    let drop = normalize(drop);
    let cap_drop = drop
        .iter()
        .filter(|c| !add.contains(*c) && *c != "RESET")
        .cloned()
        .collect();
    let cap_add = add.into_iter().filter(|c| c != "RESET").collect();
    (cap_add, cap_drop)
}

fn credential_spec(name: &str, svc: &Service) -> Result<Value> {
    let c = &svc.credential_spec;
    let set: Vec<&str> = [
        ("Config", &c.config),
        ("File", &c.file),
        ("Registry", &c.registry),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, _)| k)
    .collect();
    match set.len() {
        0 => Ok(Value::Null),
        1 => Ok(json!({ "Config": c.config, "File": c.file, "Registry": c.registry })),
        n => {
            let quoted: Vec<String> = set.iter().map(|s| format!("\"{s}\"")).collect();
            let both = if n == 2 {
                format!("{} and {}", quoted[0], quoted[1])
            } else {
                format!("{}, and {}", quoted[..n - 1].join(", "), quoted[n - 1])
            };
            Err(err(
                name,
                "credential_spec",
                format!("invalid credential spec: cannot specify both {both}"),
            ))
        }
    }
}

/// A reference's target file: name (the source by default), owner 0:0, mode 0444 by default.
fn file_target(r: &FileReference) -> Value {
    json!({
        "Name": if r.target.is_empty() { &r.source } else { &r.target },
        "UID": if r.uid.is_empty() { "0" } else { &r.uid },
        "GID": if r.gid.is_empty() { "0" } else { &r.gid },
        "Mode": r.mode.unwrap_or(0o444),
    })
}

fn object_name(stack: &str, source: &str, declared: &str) -> String {
    if declared.is_empty() {
        scope(stack, source)
    } else {
        declared.to_string()
    }
}

fn secret_refs(stack: &str, name: &str, svc: &Service, cfg: &Config) -> Result<Vec<Value>> {
    let mut refs: Vec<(String, String, Value)> = Vec::new();
    for r in &svc.secrets {
        let obj = cfg
            .secrets
            .get(&r.source)
            .ok_or_else(|| err(name, "secrets", format!("undefined secret {:?}", r.source)))?;
        let full = object_name(stack, &r.source, &obj.name);
        let file = file_target(r);
        let target = file["Name"].as_str().unwrap_or_default().to_string();
        if refs.iter().any(|(_, t, _)| *t == target) {
            return Err(err(
                name,
                "secrets",
                format!("duplicate secret target for {full} not allowed"),
            ));
        }
        refs.push((
            full.clone(),
            target,
            json!({ "File": file, "SecretID": "", "SecretName": full }),
        ));
    }
    refs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(refs.into_iter().map(|(_, _, v)| v).collect())
}

fn config_refs(stack: &str, name: &str, svc: &Service, cfg: &Config) -> Result<Vec<Value>> {
    let lookup = |source: &str| {
        cfg.configs
            .get(source)
            .ok_or_else(|| err(name, "configs", format!("undefined config {source:?}")))
    };
    let mut refs: Vec<(String, String, Value)> = Vec::new();
    for r in &svc.configs {
        let obj = lookup(&r.source)?;
        let full = object_name(stack, &r.source, &obj.name);
        let file = file_target(r);
        let target = file["Name"].as_str().unwrap_or_default().to_string();
        if refs.iter().any(|(_, t, _)| *t == target) {
            return Err(err(
                name,
                "configs",
                format!("duplicate config target for {full} not allowed"),
            ));
        }
        refs.push((
            full.clone(),
            target,
            json!({ "File": file, "ConfigID": "", "ConfigName": full }),
        ));
    }
    let credential_config = &svc.credential_spec.config;
    if !credential_config.is_empty() {
        let obj = lookup(credential_config)?;
        let full = object_name(stack, credential_config, &obj.name);
        refs.push((
            full.clone(),
            String::new(),
            json!({ "Runtime": {}, "ConfigID": "", "ConfigName": full }),
        ));
    }
    refs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(refs.into_iter().map(|(_, _, v)| v).collect())
}

fn duration_put(m: &mut Map<String, Value>, key: &str, d: Option<i64>) {
    put(m, key, json!(d.unwrap_or(0)));
}

fn healthcheck(name: &str, h: &Healthcheck) -> Result<Value> {
    if h.disable {
        if !h.test.is_empty() {
            return Err(err(
                name,
                "healthcheck",
                "test and disable can't be set at the same time",
            ));
        }
        return Ok(json!({ "Test": ["NONE"] }));
    }
    let mut m = Map::new();
    put(&mut m, "Test", json!(h.test));
    duration_put(&mut m, "Interval", h.interval);
    duration_put(&mut m, "Timeout", h.timeout);
    duration_put(&mut m, "StartPeriod", h.start_period);
    duration_put(&mut m, "StartInterval", h.start_interval);
    put(&mut m, "Retries", json!(h.retries.unwrap_or(0)));
    Ok(Value::Object(m))
}

fn resources(name: &str, svc: &Service) -> Result<Value> {
    let cpus = |s: &str| -> Result<i64> {
        if s.is_empty() {
            return Ok(0);
        }
        parse_cpus(s).map_err(|e| err(name, "deploy.resources", e))
    };
    let mut m = Map::new();
    if let Some(l) = &svc.deploy.resources.limits {
        let mut limits = Map::new();
        put(&mut limits, "NanoCPUs", json!(cpus(&l.cpus)?));
        put(&mut limits, "MemoryBytes", json!(l.memory));
        put(&mut limits, "Pids", json!(l.pids));
        m.insert("Limits".into(), Value::Object(limits));
    }
    if let Some(r) = &svc.deploy.resources.reservations {
        let mut res = Map::new();
        put(&mut res, "NanoCPUs", json!(cpus(&r.cpus)?));
        put(&mut res, "MemoryBytes", json!(r.memory));
        let generic: Vec<Value> = r
            .generic_resources
            .iter()
            .map(|g| match g {
                Some((kind, value)) => {
                    let mut d = Map::new();
                    put(&mut d, "Kind", json!(kind));
                    put(&mut d, "Value", json!(value));
                    json!({ "DiscreteResourceSpec": d })
                }
                None => json!({}),
            })
            .collect();
        put(&mut res, "GenericResources", json!(generic));
        m.insert("Reservations".into(), Value::Object(res));
    }
    Ok(Value::Object(m))
}

/// `deploy.restart_policy`, or else the `restart` key read as `docker run --restart`.
fn restart_policy(name: &str, svc: &Service) -> Result<Option<Value>> {
    if let Some(p) = &svc.deploy.restart_policy {
        let mut m = Map::new();
        put(&mut m, "Condition", json!(p.condition));
        if let Some(d) = p.delay {
            m.insert("Delay".into(), json!(d));
        }
        if let Some(a) = p.max_attempts {
            m.insert("MaxAttempts".into(), json!(a));
        }
        if let Some(w) = p.window {
            m.insert("Window".into(), json!(w));
        }
        return Ok(Some(Value::Object(m)));
    }
    let restart = svc.restart.as_str();
    let (policy, count) = match restart.split_once(':') {
        Some(("", _)) => {
            return Err(err(
                name,
                "restart",
                "invalid restart policy format: no policy provided before colon",
            ))
        }
        Some((p, c)) if !c.is_empty() => {
            let n: i64 = c.parse().map_err(|_| {
                err(
                    name,
                    "restart",
                    "invalid restart policy format: maximum retry count must be an integer",
                )
            })?;
            (p, n)
        }
        Some((p, _)) => (p, 0),
        None => (restart, 0),
    };
    match policy {
        "" | "no" => Ok(None),
        "always" | "unless-stopped" => Ok(Some(json!({ "Condition": "any" }))),
        "on-failure" => Ok(Some(
            json!({ "Condition": "on-failure", "MaxAttempts": count as u64 }),
        )),
        _ => Err(err(
            name,
            "restart",
            format!("unknown restart policy: {restart}"),
        )),
    }
}

fn update_config(u: &UpdateConfig) -> Value {
    let mut m = Map::new();
    m.insert("Parallelism".into(), json!(u.parallelism.unwrap_or(1)));
    put(&mut m, "Delay", json!(u.delay));
    put(&mut m, "FailureAction", json!(u.failure_action));
    put(&mut m, "Monitor", json!(u.monitor));
    m.insert("MaxFailureRatio".into(), float32(u.max_failure_ratio));
    m.insert("Order".into(), json!(u.order));
    Value::Object(m)
}

fn mode(name: &str, svc: &Service) -> Result<Value> {
    let replicas = svc.deploy.replicas;
    let only_replicated = || {
        err(
            name,
            "deploy.replicas",
            "replicas can only be used with replicated or replicated-job mode",
        )
    };
    match svc.deploy.mode.as_str() {
        "global-job" if replicas.is_some() => Err(only_replicated()),
        "global" if replicas.is_some() => Err(only_replicated()),
        "global-job" => Ok(json!({ "GlobalJob": {} })),
        "global" => Ok(json!({ "Global": {} })),
        "replicated-job" => {
            let mut job = Map::new();
            if let Some(r) = replicas {
                job.insert("MaxConcurrent".into(), json!(r));
                job.insert("TotalCompletions".into(), json!(r));
            }
            Ok(json!({ "ReplicatedJob": job }))
        }
        "replicated" | "" => {
            let mut rep = Map::new();
            if let Some(r) = replicas {
                rep.insert("Replicas".into(), json!(r));
            }
            Ok(json!({ "Replicated": rep }))
        }
        other => Err(err(name, "deploy.mode", format!("Unknown mode: {other}"))),
    }
}

/// Whether docker/cli adds the service's name as an alias on network `target` (user-defined
/// networks only).
fn user_defined(target: &str) -> bool {
    !matches!(target, "default" | "bridge" | "host" | "none") && !target.starts_with("container:")
}

fn networks(stack: &str, name: &str, svc: &Service, cfg: &Config) -> Result<Vec<Value>> {
    let default = BTreeMap::from([("default".to_string(), None)]);
    let listed = if svc.networks.is_empty() {
        &default
    } else {
        &svc.networks
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    for (net, opts) in listed {
        let declared = cfg.networks.get(net);
        if declared.is_none() && net != "default" {
            return Err(err(name, "networks", format!("undefined network {net:?}")));
        }
        let target = match declared {
            Some(d) if !d.name.is_empty() => d.name.clone(),
            _ => scope(stack, net),
        };
        let mut aliases: Vec<String> = opts.as_ref().map(|o| o.aliases.clone()).unwrap_or_default();
        if user_defined(&target) {
            aliases.push(name.to_string());
        }
        let mut m = Map::new();
        m.insert("Target".into(), json!(target));
        put(&mut m, "Aliases", json!(aliases));
        if let Some(o) = opts {
            put(&mut m, "DriverOpts", json!(o.driver_opts));
        }
        out.push((target, Value::Object(m)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_like_the_cli() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            capabilities(
                &s(&["net_admin", "CAP_SYS_ADMIN"]),
                &s(&["NET_ADMIN", "mknod"])
            ),
            (s(&["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]), s(&["CAP_MKNOD"]))
        );
        assert_eq!(
            capabilities(&s(&["ALL", "x"]), &s(&["ALL"])),
            (s(&["ALL"]), vec![])
        );
    }

    #[test]
    fn restart_key_is_a_fallback_policy() {
        let mut svc = Service {
            restart: "on-failure:3".into(),
            ..Default::default()
        };
        assert_eq!(
            restart_policy("web", &svc).unwrap(),
            Some(json!({"Condition": "on-failure", "MaxAttempts": 3}))
        );
        svc.restart = "unless-stopped".into();
        assert_eq!(
            restart_policy("web", &svc).unwrap(),
            Some(json!({"Condition": "any"}))
        );
        svc.restart = "no".into();
        assert_eq!(restart_policy("web", &svc).unwrap(), None);
        svc.restart = "sometimes".into();
        assert!(restart_policy("web", &svc).is_err());
    }

    #[test]
    fn modes() {
        let mut svc = Service::default();
        assert_eq!(mode("w", &svc).unwrap(), json!({"Replicated": {}}));
        svc.deploy.replicas = Some(2);
        assert_eq!(
            mode("w", &svc).unwrap(),
            json!({"Replicated": {"Replicas": 2}})
        );
        svc.deploy.mode = "replicated-job".into();
        assert_eq!(
            mode("w", &svc).unwrap(),
            json!({"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 2}})
        );
        svc.deploy.mode = "global".into();
        assert!(mode("w", &svc).is_err());
        svc.deploy.replicas = None;
        assert_eq!(mode("w", &svc).unwrap(), json!({"Global": {}}));
        svc.deploy.mode = "daemonset".into();
        assert_eq!(
            mode("w", &svc).unwrap_err().to_string(),
            "services.w.deploy.mode: Unknown mode: daemonset"
        );
    }

    #[test]
    fn max_failure_ratio_prints_like_go() {
        assert_eq!(float32(0.1).to_string(), "0.1");
    }
}
