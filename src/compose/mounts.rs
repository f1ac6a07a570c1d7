//! A service's `volumes` as the mounts `docker stack deploy` sends (docker/cli's
//! `convert.Volumes`): a named volume gets the stack prefix (or its `name:`), the stack label and
//! its driver; an anonymous volume, a bind, a tmpfs, a named pipe or a cluster volume as written;
//! options that do not belong to the mount's type are errors.

use serde_json::{json, Map, Value};

use super::error::{ComposeError, Result};
use super::model::{Config, Service, ServiceVolume};
use super::objects::{scope, stack_labels};

fn put(m: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    };
    if !empty {
        m.insert(key.into(), value);
    }
}

/// The mounts of service `name`.
pub fn mounts(stack: &str, name: &str, svc: &Service, cfg: &Config) -> Result<Vec<Value>> {
    svc.volumes
        .iter()
        .enumerate()
        .map(|(i, v)| {
            mount(stack, v, cfg).map_err(|message| ComposeError {
                file: None,
                line: None,
                key: Some(format!("services.{name}.volumes[{i}]")),
                message,
            })
        })
        .collect()
}

fn incompatible(
    v: &ServiceVolume,
    kind: &str,
    allowed: &[&str],
) -> std::result::Result<(), String> {
    let present = [
        ("volume", v.volume.is_some()),
        ("bind", v.bind.is_some()),
        ("tmpfs", v.tmpfs.is_some()),
    ];
    for (option, set) in present {
        if set && !allowed.contains(&option) {
            return Err(format!(
                "{option} options are incompatible with type {kind}"
            ));
        }
    }
    Ok(())
}

fn mount(stack: &str, v: &ServiceVolume, cfg: &Config) -> std::result::Result<Value, String> {
    let kind = if v.kind.is_empty() {
        "volume"
    } else {
        v.kind.as_str()
    };
    let mut m = Map::new();
    put(&mut m, "Type", json!(v.kind));
    put(&mut m, "Source", json!(v.source));
    put(&mut m, "Target", json!(v.target));
    put(&mut m, "ReadOnly", json!(v.read_only));
    put(&mut m, "Consistency", json!(v.consistency));
    let bind_options = |m: &mut Map<String, Value>| {
        if let Some(p) = &v.bind {
            let mut o = Map::new();
            put(&mut o, "Propagation", json!(p));
            m.insert("BindOptions".into(), Value::Object(o));
        }
    };
    match kind {
        "volume" => {
            incompatible(v, kind, &["volume"])?;
            if v.source.is_empty() {
                return Ok(Value::Object(m));
            }
            let declared = cfg
                .volumes
                .get(&v.source)
                .ok_or_else(|| format!("undefined volume {:?}", v.source))?;
            let source = if declared.name.is_empty() {
                scope(stack, &v.source)
            } else {
                declared.name.clone()
            };
            m.insert("Source".into(), json!(source));
            let mut options = Map::new();
            if let Some(o) = &v.volume {
                put(&mut options, "NoCopy", json!(o.nocopy));
                put(&mut options, "Subpath", json!(o.subpath));
            }
            if !declared.external.external {
                options.insert("Labels".into(), stack_labels(stack, &declared.labels));
                if !declared.driver.is_empty() || declared.driver_opts.is_some() {
                    let mut driver = Map::new();
                    put(&mut driver, "Name", json!(declared.driver));
                    if let Some(opts) = &declared.driver_opts {
                        if !opts.is_empty() {
                            driver.insert("Options".into(), json!(opts));
                        }
                    }
                    options.insert("DriverConfig".into(), Value::Object(driver));
                }
            }
            m.insert("VolumeOptions".into(), Value::Object(options));
        }
        "bind" | "npipe" => {
            if v.source.is_empty() {
                return Err(format!("invalid {kind} source, source cannot be empty"));
            }
            incompatible(v, kind, &["bind"])?;
            bind_options(&mut m);
        }
        "tmpfs" => {
            if !v.source.is_empty() {
                return Err("invalid tmpfs source, source must be empty".into());
            }
            incompatible(v, kind, &["tmpfs"])?;
            if let Some(size) = v.tmpfs {
                let mut o = Map::new();
                if size != 0 {
                    o.insert("SizeBytes".into(), json!(size));
                }
                m.insert("TmpfsOptions".into(), Value::Object(o));
            }
        }
        "image" => {
            if v.source.is_empty() {
                return Err("invalid image source, source cannot be empty".into());
            }
            incompatible(v, kind, &[])?;
        }
        "cluster" => {
            if v.source.is_empty() {
                return Err("invalid cluster source, source cannot be empty".into());
            }
            incompatible(v, kind, &[])?;
            m.insert("ClusterOptions".into(), json!({}));
            if !v.source.starts_with("group:") {
                let declared = cfg
                    .volumes
                    .get(&v.source)
                    .ok_or_else(|| format!("undefined volume {:?}", v.source))?;
                let source = if declared.name.is_empty() {
                    scope(stack, &v.source)
                } else {
                    declared.name.clone()
                };
                m.insert("Source".into(), json!(source));
            }
        }
        _ => return Err("volume type must be volume, bind, tmpfs, npipe, or cluster".into()),
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{External, Volume, VolumeOptions};

    fn cfg() -> Config {
        let mut cfg = Config::default();
        cfg.volumes.insert(
            "data".into(),
            Volume {
                driver: "local".into(),
                labels: [("backup".to_string(), "yes".to_string())].into(),
                ..Default::default()
            },
        );
        cfg.volumes.insert(
            "shared".into(),
            Volume {
                name: "shared-data".into(),
                external: External {
                    external: true,
                    name: String::new(),
                },
                ..Default::default()
            },
        );
        cfg
    }

    fn vol(kind: &str, source: &str, target: &str) -> ServiceVolume {
        ServiceVolume {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    #[test]
    fn named_volumes_get_the_stack_prefix_and_labels() {
        let m = mount("st", &vol("volume", "data", "/data"), &cfg()).unwrap();
        assert_eq!(
            m,
            json!({"Type": "volume", "Source": "st_data", "Target": "/data", "VolumeOptions": {
                "Labels": {"backup": "yes", "com.docker.stack.namespace": "st"},
                "DriverConfig": {"Name": "local"}}})
        );
        let mut v = vol("volume", "shared", "/s");
        v.volume = Some(VolumeOptions {
            nocopy: true,
            subpath: String::new(),
        });
        let m = mount("st", &v, &cfg()).unwrap();
        assert_eq!(
            m,
            json!({"Type": "volume", "Source": "shared-data", "Target": "/s", "VolumeOptions": {"NoCopy": true}})
        );
        assert_eq!(
            mount("st", &vol("volume", "", "/anon"), &cfg()).unwrap(),
            json!({"Type": "volume", "Target": "/anon"})
        );
        assert!(mount("st", &vol("volume", "nope", "/x"), &cfg()).is_err());
    }

    #[test]
    fn binds_and_tmpfs() {
        let mut b = vol("bind", "/src", "/dst");
        b.bind = Some("rshared".into());
        b.read_only = true;
        assert_eq!(
            mount("st", &b, &cfg()).unwrap(),
            json!({"Type": "bind", "Source": "/src", "Target": "/dst", "ReadOnly": true, "BindOptions": {"Propagation": "rshared"}})
        );
        let mut t = vol("tmpfs", "", "/tmp");
        t.tmpfs = Some(1024);
        assert_eq!(
            mount("st", &t, &cfg()).unwrap(),
            json!({"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 1024}})
        );
        t.source = "x".into();
        assert!(mount("st", &t, &cfg()).is_err());
        let mut bad = vol("bind", "/a", "/b");
        bad.tmpfs = Some(1);
        assert_eq!(
            mount("st", &bad, &cfg()).unwrap_err(),
            "tmpfs options are incompatible with type bind"
        );
    }
}
