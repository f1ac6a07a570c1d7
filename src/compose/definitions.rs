//! The top-level definitions a stack's services refer to (networks, volumes, secrets, configs)
//! to the typed model, with docker/cli's schema checks and its rules for `external`, `name` and
//! `driver`.

use super::decode::{join, Cx, Unknown};
use super::error::Result;
use super::model::{External, FileObject, Network, Volume};
use super::yaml::{Node, Value};

/// Decodes top-level network `name` (at `path`), resolving `external` names as docker/cli does.
pub fn network(cx: &mut Cx, name: &str, n: &Node, path: &str) -> Result<Network> {
    let mut net = Network::default();
    if matches!(n.value, Value::Null) {
        return Ok(net);
    }
    for (k, v) in cx.entries(n, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "name" => net.name = cx.string(v, &p)?,
            "driver" => net.driver = cx.string(v, &p)?,
            "driver_opts" => net.driver_opts = cx.string_map(v, &p, false)?,
            "ipam" => {
                for (ik, iv) in cx.entries(v, &p)? {
                    let ip = join(&p, &ik.name);
                    match ik.name.as_str() {
                        "driver" => net.ipam_driver = cx.string(iv, &ip)?,
                        "config" => {
                            for (i, pool) in cx.items(iv, &ip)?.iter().enumerate() {
                                let pp = format!("{ip}[{i}]");
                                let mut subnet = String::new();
                                for (pk, pv) in cx.entries(pool, &pp)? {
                                    match pk.name.as_str() {
                                        "subnet" => subnet = cx.string(pv, &join(&pp, "subnet"))?,
                                        _ => cx.unknown(pk, &pp, Unknown::Refuse)?,
                                    }
                                }
                                net.ipam_subnets.push(subnet);
                            }
                        }
                        _ => cx.unknown(ik, &p, Unknown::Refuse)?,
                    }
                }
            }
            "external" => net.external = external(cx, v, &p, true)?,
            "internal" => net.internal = cx.boolean(v, &p)?,
            "attachable" => net.attachable = cx.boolean(v, &p)?,
            "labels" => net.labels = cx.labels(v, &p)?,
            _ => cx.unknown(k, path, Unknown::Extensions)?,
        }
    }
    if net.external.external {
        if !net.external.name.is_empty() {
            if !net.name.is_empty() {
                return Err(cx.err(
                    n.line,
                    path,
                    format!("network {name}: network.external.name and network.name conflict; only use network.name"),
                ));
            }
            if cx.version_at_least("3.5") {
                cx.warn(n.line, path, "external.name is deprecated in favor of name");
            }
            net.name = std::mem::take(&mut net.external.name);
        } else if net.name.is_empty() {
            net.name = name.to_string();
        }
    }
    Ok(net)
}

/// Decodes top-level volume `name` (at `path`).
pub fn volume(cx: &mut Cx, name: &str, n: &Node, path: &str) -> Result<Volume> {
    let mut vol = Volume::default();
    if matches!(n.value, Value::Null) {
        return Ok(vol);
    }
    for (k, v) in cx.entries(n, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "name" => vol.name = cx.string(v, &p)?,
            "driver" => vol.driver = cx.string(v, &p)?,
            "driver_opts" => vol.driver_opts = Some(cx.string_map(v, &p, false)?),
            "external" => vol.external = external(cx, v, &p, true)?,
            "labels" => vol.labels = cx.labels(v, &p)?,
            "x-cluster-spec" => cx.warn(
                k.line,
                &p,
                "ignored: docker stack deploy does not create cluster volumes",
            ),
            _ => cx.unknown(k, path, Unknown::Extensions)?,
        }
    }
    if vol.external.external {
        let conflict = if !vol.driver.is_empty() {
            Some("driver")
        } else if vol.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
            Some("driver_opts")
        } else if !vol.labels.is_empty() {
            Some("labels")
        } else {
            None
        };
        if let Some(key) = conflict {
            return Err(cx.err(
                n.line,
                path,
                format!(
                    "conflicting parameters \"external\" and {key:?} specified for volume {name:?}"
                ),
            ));
        }
        if !vol.external.name.is_empty() {
            if !vol.name.is_empty() {
                return Err(cx.err(
                    n.line,
                    path,
                    format!("volume {name}: volume.external.name and volume.name conflict; only use volume.name"),
                ));
            }
            if cx.version_at_least("3.4") {
                cx.warn(n.line, path, "external.name is deprecated in favor of name");
            }
            vol.name = std::mem::take(&mut vol.external.name);
        } else if vol.name.is_empty() {
            vol.name = name.to_string();
        }
    }
    Ok(vol)
}

/// Decodes top-level secret or config (`kind`) `name` (at `path`).
pub fn file_object(
    cx: &mut Cx,
    kind: &str,
    name: &str,
    n: &Node,
    path: &str,
) -> Result<FileObject> {
    let mut obj = FileObject::default();
    for (k, v) in cx.entries(n, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "name" => obj.name = cx.string(v, &p)?,
            "file" => obj.file = cx.string(v, &p)?,
            "external" => obj.external = external(cx, v, &p, false)?,
            "labels" => obj.labels = cx.labels(v, &p)?,
            "driver" if kind == "secret" => obj.driver = cx.string(v, &p)?,
            "driver_opts" if kind == "secret" => obj.driver_opts = cx.string_map(v, &p, false)?,
            "template_driver" => obj.template_driver = cx.string(v, &p)?,
            _ => cx.unknown(k, path, Unknown::Extensions)?,
        }
    }
    if obj.external.external {
        if !obj.external.name.is_empty() {
            if !obj.name.is_empty() {
                return Err(cx.err(
                    n.line,
                    path,
                    format!("{kind} {name}: {kind}.external.name and {kind}.name conflict; only use {kind}.name"),
                ));
            }
            if cx.version_at_least("3.5") {
                cx.warn(n.line, path, "external.name is deprecated in favor of name");
            }
            obj.name = std::mem::take(&mut obj.external.name);
        } else if obj.name.is_empty() {
            obj.name = name.to_string();
        }
    } else if !obj.driver.is_empty() {
        if !obj.file.is_empty() {
            return Err(cx.err(
                n.line,
                path,
                format!(
                    "{kind} {name}: {kind}.driver and {kind}.file conflict; only use {kind}.driver"
                ),
            ));
        }
    } else if obj.file.is_empty() {
        return Err(cx.err(
            n.line,
            path,
            format!("{kind} {name} needs a file, a driver or external: true"),
        ));
    }
    Ok(obj)
}

/// `external: true` or the deprecated `external: {name: x}`.
fn external(cx: &mut Cx, n: &Node, path: &str, strict: bool) -> Result<External> {
    match &n.value {
        Value::Bool(b) => Ok(External {
            external: *b,
            name: String::new(),
        }),
        Value::Map(entries) => {
            let mut e = External {
                external: true,
                name: String::new(),
            };
            for (k, v) in entries {
                match k.name.as_str() {
                    "name" => e.name = cx.string(v, &join(path, "name"))?,
                    _ => cx.unknown(
                        k,
                        path,
                        if strict {
                            Unknown::Refuse
                        } else {
                            Unknown::Warn
                        },
                    )?,
                }
            }
            Ok(e)
        }
        _ => Err(cx.wrong(n, path, "a boolean or a mapping")),
    }
}
