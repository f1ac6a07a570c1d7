//! A service's `deploy` section to the typed model, with docker/cli's schema checks: mode,
//! replicas, labels, update and rollback configs, resources (sizes parsed like go-units), restart
//! policy, placement and endpoint mode.

use super::decode::{join, Cx, Unknown};
use super::error::Result;
use super::model::{Deploy, Limits, Placement, Reservations, RestartPolicy, UpdateConfig};
use super::yaml::{Node, Value};

/// Decodes a service's `deploy` section (at `p`).
pub fn deploy(cx: &mut Cx, v: &Node, p: &str) -> Result<Deploy> {
    let mut d = Deploy::default();
    if matches!(v.value, Value::Null) {
        return Ok(d);
    }
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "mode" => d.mode = cx.string(v, &kp)?,
            "endpoint_mode" => d.endpoint_mode = cx.string(v, &kp)?,
            "replicas" => d.replicas = Some(cx.uint(v, &kp)?),
            "labels" => d.labels = cx.labels(v, &kp)?,
            "update_config" => d.update_config = Some(update_config(cx, v, &kp)?),
            "rollback_config" => d.rollback_config = Some(update_config(cx, v, &kp)?),
            "resources" => {
                for (rk, rv) in cx.entries(v, &kp)? {
                    let rp = join(&kp, &rk.name);
                    match rk.name.as_str() {
                        "limits" => d.resources.limits = Some(limits(cx, rv, &rp)?),
                        "reservations" => {
                            d.resources.reservations = Some(reservations(cx, rv, &rp)?)
                        }
                        _ => cx.unknown(rk, &kp, Unknown::Refuse)?,
                    }
                }
            }
            "restart_policy" => d.restart_policy = Some(restart_policy(cx, v, &kp)?),
            "placement" => d.placement = placement(cx, v, &kp)?,
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(d)
}

fn update_config(cx: &mut Cx, v: &Node, p: &str) -> Result<UpdateConfig> {
    let mut u = UpdateConfig::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "parallelism" => u.parallelism = Some(cx.uint(v, &kp)?),
            "delay" => u.delay = cx.duration(v, &kp)?,
            "failure_action" => u.failure_action = cx.string(v, &kp)?,
            "monitor" => u.monitor = cx.duration(v, &kp)?,
            "max_failure_ratio" => u.max_failure_ratio = cx.number(v, &kp)? as f32,
            "order" => {
                u.order = cx.string(v, &kp)?;
                if !matches!(u.order.as_str(), "start-first" | "stop-first") {
                    return Err(cx.wrong(v, &kp, "start-first or stop-first"));
                }
            }
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(u)
}

fn memory(cx: &Cx, v: &Node, p: &str) -> Result<i64> {
    let s = cx.string(v, p)?;
    super::units::ram_in_bytes(&s).ok_or_else(|| {
        cx.err(
            v.line,
            p,
            format!("must be a size like 512M or 1.5G, got {s:?}"),
        )
    })
}

fn limits(cx: &mut Cx, v: &Node, p: &str) -> Result<Limits> {
    let mut l = Limits::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "cpus" => l.cpus = cx.string(v, &kp)?,
            "memory" => l.memory = memory(cx, v, &kp)?,
            "pids" => l.pids = cx.int(v, &kp)?,
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(l)
}

fn reservations(cx: &mut Cx, v: &Node, p: &str) -> Result<Reservations> {
    let mut r = Reservations::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "cpus" => r.cpus = cx.string(v, &kp)?,
            "memory" => r.memory = memory(cx, v, &kp)?,
            "generic_resources" => {
                for (i, item) in cx.items(v, &kp)?.iter().enumerate() {
                    let ip = format!("{kp}[{i}]");
                    let mut spec = None;
                    for (gk, gv) in cx.entries(item, &ip)? {
                        let gp = join(&ip, &gk.name);
                        match gk.name.as_str() {
                            "discrete_resource_spec" => {
                                let (mut kind, mut value) = (String::new(), 0);
                                for (dk, dv) in cx.entries(gv, &gp)? {
                                    let dp = join(&gp, &dk.name);
                                    match dk.name.as_str() {
                                        "kind" => kind = cx.string(dv, &dp)?,
                                        "value" => value = cx.number(dv, &dp)? as i64,
                                        _ => cx.unknown(dk, &gp, Unknown::Refuse)?,
                                    }
                                }
                                spec = Some((kind, value));
                            }
                            _ => cx.unknown(gk, &ip, Unknown::Refuse)?,
                        }
                    }
                    r.generic_resources.push(spec);
                }
            }
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(r)
}

fn restart_policy(cx: &mut Cx, v: &Node, p: &str) -> Result<RestartPolicy> {
    let mut r = RestartPolicy::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "condition" => r.condition = cx.string(v, &kp)?,
            "delay" => r.delay = Some(cx.duration(v, &kp)?),
            "max_attempts" => r.max_attempts = Some(cx.uint(v, &kp)?),
            "window" => r.window = Some(cx.duration(v, &kp)?),
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(r)
}

fn placement(cx: &mut Cx, v: &Node, p: &str) -> Result<Placement> {
    let mut pl = Placement::default();
    for (k, v) in cx.entries(v, p)? {
        let kp = join(p, &k.name);
        match k.name.as_str() {
            "constraints" => pl.constraints = cx.strings(v, &kp, false)?,
            "preferences" => {
                for (i, item) in cx.items(v, &kp)?.iter().enumerate() {
                    let ip = format!("{kp}[{i}]");
                    let mut spread = String::new();
                    for (sk, sv) in cx.entries(item, &ip)? {
                        match sk.name.as_str() {
                            "spread" => spread = cx.string(sv, &join(&ip, "spread"))?,
                            _ => cx.unknown(sk, &ip, Unknown::Refuse)?,
                        }
                    }
                    pl.preferences.push(spread);
                }
            }
            "max_replicas_per_node" => pl.max_replicas = cx.uint(v, &kp)?,
            _ => cx.unknown(k, p, Unknown::Refuse)?,
        }
    }
    Ok(pl)
}
