//! The stack's networks, secrets and configs as `docker stack deploy` creates them
//! (docker/cli's `convert.Networks`, `convert.Secrets`, `convert.Configs` and the defaults of
//! `deploy_composefile.go`): names scoped by the stack unless the file names them, the
//! `com.docker.stack.namespace` label on each, `overlay` as the default driver, and only the
//! networks some service uses (`default` when a service lists none).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::error::{ComposeError, Result};
use super::model::{Config, FileObject};

/// `com.docker.stack.namespace`.
pub const LABEL_NAMESPACE: &str = shoal_store::model::STACK_NAMESPACE_LABEL;

/// `<stack>_<name>`.
pub fn scope(stack: &str, name: &str) -> String {
    format!("{stack}_{name}")
}

/// `labels` plus the stack's namespace label, as a JSON object.
pub fn stack_labels(stack: &str, labels: &BTreeMap<String, String>) -> Value {
    let mut m: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    m.insert(LABEL_NAMESPACE.into(), Value::String(stack.into()));
    Value::Object(m)
}

/// The networks the services use: the `NetworkCreate` bodies of the stack's own networks by
/// name, and the names of external ones.
pub fn networks(stack: &str, cfg: &Config) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut used = BTreeSet::new();
    for svc in cfg.services.values() {
        if svc.networks.is_empty() {
            used.insert("default".to_string());
        }
        used.extend(svc.networks.keys().cloned());
    }
    let mut created = BTreeMap::new();
    let mut external = Vec::new();
    for name in used {
        let nw = cfg.networks.get(&name).cloned().unwrap_or_default();
        if nw.external.external {
            external.push(nw.name.clone());
            continue;
        }
        let full = if nw.name.is_empty() {
            scope(stack, &name)
        } else {
            nw.name.clone()
        };
        let ipam = if nw.ipam_driver.is_empty() && nw.ipam_subnets.is_empty() {
            Value::Null
        } else {
            let config: Vec<Value> = nw
                .ipam_subnets
                .iter()
                .map(|s| {
                    if s.is_empty() {
                        json!({})
                    } else {
                        json!({ "Subnet": s })
                    }
                })
                .collect();
            json!({
                "Driver": nw.ipam_driver,
                "Options": null,
                "Config": if config.is_empty() { Value::Null } else { Value::Array(config) },
            })
        };
        let options = if nw.driver_opts.is_empty() {
            Value::Null
        } else {
            json!(nw.driver_opts)
        };
        let driver = if nw.driver.is_empty() {
            "overlay"
        } else {
            &nw.driver
        };
        created.insert(
            full.clone(),
            json!({
                "Name": full,
                "Driver": driver,
                "Scope": "",
                "IPAM": ipam,
                "Internal": nw.internal,
                "Attachable": nw.attachable,
                "Ingress": false,
                "ConfigOnly": false,
                "ConfigFrom": null,
                "Options": options,
                "Labels": stack_labels(stack, &nw.labels),
            }),
        );
    }
    (created, external)
}

/// The `SecretCreate` (`kind` = `secret`) or `ConfigCreate` bodies of the stack's own secrets or
/// configs by name, and the names of external ones. File contents come from `attachments`,
/// keyed by the path as written in the compose file.
pub fn file_objects(
    stack: &str,
    kind: &str,
    objects: &BTreeMap<String, FileObject>,
    attachments: &BTreeMap<String, Vec<u8>>,
) -> Result<(BTreeMap<String, Value>, Vec<String>)> {
    let mut created = BTreeMap::new();
    let mut external = Vec::new();
    for (name, obj) in objects {
        if obj.external.external {
            external.push(obj.name.clone());
            continue;
        }
        let full = if obj.name.is_empty() {
            scope(stack, name)
        } else {
            obj.name.clone()
        };
        let mut spec = Map::new();
        spec.insert("Name".into(), json!(full));
        spec.insert("Labels".into(), stack_labels(stack, &obj.labels));
        if obj.driver.is_empty() {
            let data = attachments.get(&obj.file).ok_or_else(|| ComposeError {
                file: None,
                line: None,
                key: Some(format!("{kind}s.{name}.file")),
                message: format!("{:?} was not sent with the compose file", obj.file),
            })?;
            if !data.is_empty() {
                spec.insert(
                    "Data".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(data)),
                );
            }
        } else {
            let mut driver = Map::new();
            driver.insert("Name".into(), json!(obj.driver));
            if !obj.driver_opts.is_empty() {
                driver.insert("Options".into(), json!(obj.driver_opts));
            }
            spec.insert("Driver".into(), Value::Object(driver));
        }
        if !obj.template_driver.is_empty() {
            spec.insert("Templating".into(), json!({ "Name": obj.template_driver }));
        }
        created.insert(full, Value::Object(spec));
    }
    Ok((created, external))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{External, Network, Service, ServiceNetwork};

    #[test]
    fn only_used_networks_with_default_and_externals() {
        let mut cfg = Config::default();
        cfg.services.insert("a".into(), Service::default());
        let mut b = Service::default();
        b.networks
            .insert("front".into(), Some(ServiceNetwork::default()));
        b.networks.insert("ext".into(), None);
        cfg.services.insert("b".into(), b);
        cfg.networks.insert(
            "front".into(),
            Network {
                attachable: true,
                driver_opts: [("encrypted".to_string(), "".to_string())].into(),
                ..Default::default()
            },
        );
        cfg.networks.insert("unused".into(), Network::default());
        cfg.networks.insert(
            "ext".into(),
            Network {
                name: "proxy".into(),
                external: External {
                    external: true,
                    name: String::new(),
                },
                ..Default::default()
            },
        );
        let (created, external) = networks("st", &cfg);
        assert_eq!(
            created.keys().collect::<Vec<_>>(),
            ["st_default", "st_front"]
        );
        assert_eq!(created["st_front"]["Driver"], "overlay");
        assert_eq!(created["st_front"]["Attachable"], true);
        assert_eq!(created["st_front"]["Options"]["encrypted"], "");
        assert_eq!(created["st_default"]["Labels"][LABEL_NAMESPACE], "st");
        assert_eq!(external, ["proxy"]);
    }

    #[test]
    fn secrets_carry_data_and_labels() {
        let objects: BTreeMap<String, FileObject> = [(
            "pw".to_string(),
            FileObject {
                file: "./pw.txt".into(),
                labels: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            },
        )]
        .into();
        let attachments = [("./pw.txt".to_string(), b"hunter2".to_vec())].into();
        let (created, _) = file_objects("st", "secret", &objects, &attachments).unwrap();
        assert_eq!(created["st_pw"]["Data"], "aHVudGVyMg==");
        assert_eq!(created["st_pw"]["Labels"]["a"], "b");
        let err = file_objects("st", "secret", &objects, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secrets.pw.file: \"./pw.txt\" was not sent with the compose file"
        );
    }
}
