//! Field-level differences between two specs, as rows of `(path, old, new)`.
//!
//! Lists whose items have a natural key are compared by key, not by position, so reordering
//! them is no change and one new item is one row: environment entries (`KEY=value`) by key,
//! mounts by target, ports by target and protocol, secret and config references by target
//! file, network attachments by target. Other lists are compared as whole values.

use serde::Serialize;
use serde_json::Value;

/// One changed field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDiff {
    /// Where, in the Docker API's JSON names (`TaskTemplate.ContainerSpec.Image`,
    /// `TaskTemplate.ContainerSpec.Env[DEBUG]`).
    pub path: String,
    /// The value before (absent: the field is new).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after (absent: the field is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// Every field that differs between `old` and `new`, in a stable order.
pub fn diff(old: &Value, new: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldDiff>) {
    match (old, new) {
        (Some(a), Some(b)) if a == b => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(&join(path, k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => match key_of(path) {
            Some(key) => keyed(path, a, b, key, out),
            None => out.push(FieldDiff {
                path: path.to_string(),
                old: old.cloned(),
                new: new.cloned(),
            }),
        },
        (None, None) => {}
        _ => out.push(FieldDiff {
            path: path.to_string(),
            old: old.filter(|v| !v.is_null()).cloned(),
            new: new.filter(|v| !v.is_null()).cloned(),
        }),
    }
}

/// How items of the list at `path` are identified, if they are.
fn key_of(path: &str) -> Option<fn(&Value) -> String> {
    let last = path.rsplit('.').next().unwrap_or(path);
    Some(match last {
        "Env" => |v| {
            let s = v.as_str().unwrap_or_default();
            s.split_once('=').map(|(k, _)| k).unwrap_or(s).to_string()
        },
        "Mounts" => |v| v["Target"].as_str().unwrap_or_default().to_string(),
        "Ports" => |v| {
            format!(
                "{}/{}",
                v["TargetPort"],
                v["Protocol"].as_str().unwrap_or("tcp")
            )
        },
        "Secrets" | "Configs" => |v| {
            v.pointer("/File/Name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| v["ConfigName"].as_str().map(str::to_string))
                .unwrap_or_default()
        },
        "Networks" => |v| v["Target"].as_str().unwrap_or_default().to_string(),
        _ => return None,
    })
}

fn keyed(
    path: &str,
    a: &[Value],
    b: &[Value],
    key: fn(&Value) -> String,
    out: &mut Vec<FieldDiff>,
) {
    let index = |items: &[Value]| -> Vec<(String, Value)> {
        items.iter().map(|v| (key(v), v.clone())).collect()
    };
    let (a, b) = (index(a), index(b));
    let mut keys: Vec<&String> = a.iter().chain(b.iter()).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let find = |items: &'_ [(String, Value)]| -> Option<Value> {
            items.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone())
        };
        let item_path = format!("{path}[{k}]");
        match (find(&a), find(&b)) {
            (Some(x), Some(y)) if x.is_object() && y.is_object() => {
                walk(&item_path, Some(&x), Some(&y), out)
            }
            (x, y) if x != y => out.push(FieldDiff {
                path: item_path,
                old: x,
                new: y,
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_fields_are_reported_by_path() {
        let a = json!({"TaskTemplate": {"ContainerSpec": {"Image": "a:1", "Args": ["x"]}}});
        let b = json!({"TaskTemplate": {"ContainerSpec": {"Image": "a:2", "Args": ["x"]}}});
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "TaskTemplate.ContainerSpec.Image");
        assert_eq!(d[0].old, Some(json!("a:1")));
        assert_eq!(d[0].new, Some(json!("a:2")));
    }

    #[test]
    fn keyed_lists_ignore_order_and_name_the_item() {
        let a = json!({"Env": ["A=1", "B=2"]});
        let b = json!({"Env": ["B=2", "A=1", "C=3"]});
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, "Env[C]");
        assert_eq!(d[0].old, None);

        let a = json!({"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]});
        let b = json!({"Ports": [{"TargetPort": 80, "PublishedPort": 8081}]});
        assert_eq!(diff(&a, &b)[0].path, "Ports[80/tcp].PublishedPort");
    }

    #[test]
    fn removed_fields_have_no_new_value() {
        let d = diff(&json!({"Labels": {"a": "1"}}), &json!({"Labels": {}}));
        assert_eq!(d[0].path, "Labels.a");
        assert_eq!(d[0].new, None);
        assert!(diff(&json!({"x": 1}), &json!({"x": 1})).is_empty());
    }
}
