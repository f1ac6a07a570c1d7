//! From an interpolated tree to the typed model, checking what docker/cli's JSON schema (v3.13)
//! checks, with the file, line and key of each problem: types, unknown keys (refused where the
//! schema refuses them, warned about where it lets them through and docker/cli then ignores
//! them), duplicate list items, durations and port formats. The top level and the swarm objects
//! (networks, volumes, secrets, configs) are here; services are in `service.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::error::{ComposeError, Result};
use super::model::Config;
use super::service;
use super::units::{go_float, parse_duration};
use super::yaml::{Key, Node, Value};

/// What the decoder needs besides the tree.
pub struct Cx<'a> {
    /// The file, as errors name it.
    pub file: &'a str,
    /// The file's schema version.
    pub version: String,
    /// The first compose file's directory on the caller's machine (bind mounts are relative to
    /// it).
    pub working_dir: &'a str,
    /// The caller's environment.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Files the CLI sent (`env_file` contents), keyed by the path as written.
    pub attachments: &'a BTreeMap<String, Vec<u8>>,
    /// Where warnings go.
    pub warnings: &'a mut Vec<String>,
    /// Where each key was seen (file, line), for errors found after the files are merged.
    pub locations: &'a RefCell<Locations>,
}

/// Key paths (`services.web.networks`) to the file and line that last set them.
pub type Locations = BTreeMap<String, (String, usize)>;

/// Gives an error found after merging (a key, no file) the file and line of its key, or of the
/// closest enclosing key that was recorded.
pub fn locate(mut e: ComposeError, locations: &Locations) -> ComposeError {
    if e.file.is_some() {
        return e;
    }
    let Some(key) = e.key.clone() else { return e };
    let mut probe = key.as_str();
    loop {
        if let Some((file, line)) = locations.get(probe) {
            e.file = Some(file.clone());
            e.line = Some(*line);
            return e;
        }
        match probe.rfind(['.', '[']) {
            Some(i) => probe = &probe[..i],
            None => return e,
        }
    }
}

/// What to do with a key an object does not know.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// The schema refuses it.
    Refuse,
    /// The schema refuses it unless it starts with `x-` (an extension, ignored).
    Extensions,
    /// The schema lets it through and docker/cli ignores it: a warning.
    Warn,
}

/// `a.b` or `b` when `a` is empty.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// How a value is shown in an error.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => go_float(*f),
        Value::Str(s) => format!("{s:?}"),
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
    }
}

/// Structural equality, lines aside (the schema's `uniqueItems`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(&a.value, &b.value))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .any(|(k2, v2)| k.name == k2.name && same(&v.value, &v2.value))
                })
        }
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => *i as f64 == *f,
        _ => a == b,
    }
}

impl Cx<'_> {
    /// An error at `line` on `path`.
    pub fn err(&self, line: usize, path: &str, message: impl Into<String>) -> ComposeError {
        ComposeError::at(self.file, line, path, message)
    }

    /// A warning at `line` on `path`.
    pub fn warn(&mut self, line: usize, path: &str, message: impl AsRef<str>) {
        self.warnings.push(format!(
            "{}:{line}: {path}: {}",
            self.file,
            message.as_ref()
        ));
    }

    /// "must be X, got Y".
    pub fn wrong(&self, n: &Node, path: &str, expected: &str) -> ComposeError {
        self.err(
            n.line,
            path,
            format!("must be {expected}, got {}", describe(&n.value)),
        )
    }

    /// The entries of a mapping.
    pub fn entries<'n>(&self, n: &'n Node, path: &str) -> Result<&'n [(Key, Node)]> {
        match &n.value {
            Value::Map(entries) => {
                let mut locations = self.locations.borrow_mut();
                for (k, _) in entries {
                    let full = join(path, &k.name);
                    if let Some(since) = super::versions::since(&full) {
                        if !self.version_at_least(since) {
                            return Err(self.err(
                                k.line,
                                path,
                                format!(
                                    "additional property {} is not allowed in version {} (it needs {since} or later)",
                                    k.name, self.version
                                ),
                            ));
                        }
                    }
                    locations.insert(full, (self.file.to_string(), k.line));
                }
                Ok(entries)
            }
            _ => Err(self.wrong(n, path, "a mapping")),
        }
    }

    /// The items of a list.
    pub fn items<'n>(&self, n: &'n Node, path: &str) -> Result<&'n [Node]> {
        match &n.value {
            Value::Seq(items) => Ok(items),
            _ => Err(self.wrong(n, path, "a list")),
        }
    }

    /// A key the object does not know.
    pub fn unknown(&mut self, key: &Key, path: &str, policy: Unknown) -> Result<()> {
        if policy == Unknown::Extensions && key.name.starts_with("x-") {
            return Ok(());
        }
        if policy == Unknown::Warn {
            self.warn(
                key.line,
                &join(path, &key.name),
                "ignored (docker stack deploy does not use it)",
            );
            return Ok(());
        }
        Err(self.err(
            key.line,
            path,
            format!("additional property {} is not allowed", key.name),
        ))
    }

    /// The schema's `uniqueItems`.
    pub fn unique(&self, items: &[Node], path: &str) -> Result<()> {
        for (i, a) in items.iter().enumerate() {
            if let Some(b) = items[..i].iter().find(|b| same(&a.value, &b.value)) {
                return Err(self.err(
                    a.line,
                    path,
                    format!(
                        "contains a duplicate item {} (also on line {})",
                        describe(&a.value),
                        b.line
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A string.
    pub fn string(&self, n: &Node, path: &str) -> Result<String> {
        match &n.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.wrong(n, path, "a string")),
        }
    }

    /// A boolean.
    pub fn boolean(&self, n: &Node, path: &str) -> Result<bool> {
        match &n.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong(n, path, "a boolean")),
        }
    }

    /// An integer (a float without a fraction passes, as it does docker/cli's schema).
    pub fn int(&self, n: &Node, path: &str) -> Result<i64> {
        match &n.value {
            Value::Int(i) => Ok(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
            _ => Err(self.wrong(n, path, "an integer")),
        }
    }

    /// A non-negative integer (docker/cli decodes these into unsigned fields).
    pub fn uint(&self, n: &Node, path: &str) -> Result<u64> {
        let i = self.int(n, path)?;
        u64::try_from(i).map_err(|_| self.wrong(n, path, "a non-negative integer"))
    }

    /// A number.
    pub fn number(&self, n: &Node, path: &str) -> Result<f64> {
        match &n.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            _ => Err(self.wrong(n, path, "a number")),
        }
    }

    /// A Go duration string, in nanoseconds.
    pub fn duration(&self, n: &Node, path: &str) -> Result<i64> {
        let s = self.string(n, path)?;
        parse_duration(&s).ok_or_else(|| {
            self.err(
                n.line,
                path,
                format!("must be a duration like 10s or 1m30s, got {s:?}"),
            )
        })
    }

    /// A list of strings, unique if `unique`.
    pub fn strings(&self, n: &Node, path: &str, unique: bool) -> Result<Vec<String>> {
        let items = self.items(n, path)?;
        if unique {
            self.unique(items, path)?;
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.string(item, &format!("{path}[{i}]")))
            .collect()
    }

    /// A string or a list of unique strings.
    pub fn string_or_list(&self, n: &Node, path: &str) -> Result<Vec<String>> {
        match &n.value {
            Value::Str(s) => Ok(vec![s.clone()]),
            Value::Seq(_) => self.strings(n, path, true),
            _ => Err(self.wrong(n, path, "a string or a list of strings")),
        }
    }

    /// A scalar printed as docker/cli prints it into a string map (`fmt.Sprint`): strings as
    /// they are, numbers in Go's format, null as `None`. `types` names what the schema allows.
    fn map_value(&self, n: &Node, path: &str, allow_null: bool) -> Result<Option<String>> {
        match &n.value {
            Value::Str(s) => Ok(Some(s.clone())),
            Value::Int(i) => Ok(Some(i.to_string())),
            Value::Float(f) => Ok(Some(go_float(*f))),
            Value::Null if allow_null => Ok(None),
            _ => Err(self.wrong(
                n,
                path,
                if allow_null {
                    "a string, number or null"
                } else {
                    "a string or number"
                },
            )),
        }
    }

    /// A mapping of strings or numbers (`driver_opts`; `allow_null` for logging options, where
    /// null is an empty string).
    pub fn string_map(
        &self,
        n: &Node,
        path: &str,
        allow_null: bool,
    ) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (k, v) in self.entries(n, path)? {
            let value = self.map_value(v, &join(path, &k.name), allow_null)?;
            out.insert(k.name.clone(), value.unwrap_or_default());
        }
        Ok(out)
    }

    /// The schema's `list_or_dict` as docker/cli's `MappingWithEquals` reads it: a mapping
    /// (null values are `None`) or a list of unique `KEY[=VALUE]` strings (`KEY` alone is
    /// `None`).
    pub fn list_or_dict(&self, n: &Node, path: &str) -> Result<BTreeMap<String, Option<String>>> {
        let mut out = BTreeMap::new();
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    out.insert(
                        k.name.clone(),
                        self.map_value(v, &join(path, &k.name), true)?,
                    );
                }
            }
            Value::Seq(_) => {
                for item in self.strings(n, path, true)? {
                    match item.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                        None => out.insert(item, None),
                    };
                }
            }
            _ => return Err(self.wrong(n, path, "a mapping or a list of strings")),
        }
        Ok(out)
    }

    /// `list_or_dict` as a plain string map (labels, sysctls): a missing value is empty.
    pub fn labels(&self, n: &Node, path: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .list_or_dict(n, path)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    }

    /// Whether the file's version is at least `v`.
    pub fn version_at_least(&self, v: &str) -> bool {
        super::versions::at_least(&self.version, v)
    }
}

/// The name a resource is known by: `[a-zA-Z0-9._-]+` (the schema's pattern for services,
/// volumes, secrets and configs).
fn check_name(cx: &Cx, key: &Key, section: &str) -> Result<()> {
    let ok = !key.name.is_empty()
        && key
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(cx.err(
            key.line,
            section,
            format!(
                "additional property {} is not allowed (names are [a-zA-Z0-9._-]+)",
                key.name
            ),
        ))
    }
}

/// Decodes one interpolated file.
pub fn config(cx: &mut Cx, root: &Node) -> Result<Config> {
    let mut cfg = Config {
        version: cx.version.clone(),
        ..Default::default()
    };
    for (key, value) in cx.entries(root, "")? {
        let path = key.name.as_str();
        match path {
            "version" => {
                cx.string(value, path)?;
            }
            "services" => {
                for (name, def) in cx.entries(value, path)? {
                    check_name(cx, name, path)?;
                    let svc = service::service(cx, &name.name, def)?;
                    cfg.services.insert(name.name.clone(), svc);
                }
            }
            "networks" => {
                for (name, def) in cx.entries(value, path)? {
                    let net =
                        super::definitions::network(cx, &name.name, def, &join(path, &name.name))?;
                    cfg.networks.insert(name.name.clone(), net);
                }
            }
            "volumes" => {
                for (name, def) in cx.entries(value, path)? {
                    check_name(cx, name, path)?;
                    let vol =
                        super::definitions::volume(cx, &name.name, def, &join(path, &name.name))?;
                    cfg.volumes.insert(name.name.clone(), vol);
                }
            }
            "secrets" | "configs" => {
                let kind = &path[..path.len() - 1];
                for (name, def) in cx.entries(value, path)? {
                    check_name(cx, name, path)?;
                    let obj = super::definitions::file_object(
                        cx,
                        kind,
                        &name.name,
                        def,
                        &join(path, &name.name),
                    )?;
                    if kind == "secret" {
                        cfg.secrets.insert(name.name.clone(), obj);
                    } else {
                        cfg.configs.insert(name.name.clone(), obj);
                    }
                }
            }
            _ => cx.unknown(key, "", Unknown::Extensions)?,
        }
    }
    Ok(cfg)
}
