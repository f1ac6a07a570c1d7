//! The compose loader: compose files in, the Docker Engine API objects `docker stack deploy`
//! would create out, computed on the server so every client gets the same result.
//!
//! The pipeline is docker/cli's (`cli/compose/loader`, `cli/compose/convert`,
//! `cli/command/stack/swarm/deploy_composefile.go`), step by step, one module each:
//!
//! 1. `yaml`: each file to a located tree (YAML 1.1 octal, merge keys and anchors, duplicate
//!    keys refused, alias budget);
//! 2. per file: version check, docker/cli's forbidden keys (`extends`, `cpu_shares`, ... with its
//!    fix-it messages), `interpolate` with the caller's environment (`template` has the
//!    grammar), then `decode` (`service`, `deploy`, `definitions`): the schema's checks
//!    (`versions` for what each 3.x adds) and the typed `model`, short syntaxes expanded
//!    (`ports`, `volume_spec`), `env_file` (`envfile`) folded in;
//! 3. `merge` of the files in order;
//! 4. conversion: `objects` (networks, secrets, configs), `convert` and `mounts`
//!    (services), `image` (the image as the Docker client sends it).
//!
//! The files are the compose specification's swarm subset as docker/cli 28 reads it (schema
//! 3.0-3.13). shoal's own YAML form is the same schema: there is no second format, and
//! `version` may be left out (3.13 is assumed, as docker/cli does). `x-` keys are ignored where
//! the schema allows them; keys `docker stack deploy` accepts but ignores are warnings; keys it
//! refuses are errors naming the file, line and key.
//!
//! What the caller supplies: the files' text, the environment the files refer to (see
//! [`references`]: the CLI sends only those variables), the contents of the files that configs,
//! secrets and `env_file` name (read by the CLI relative to the first compose file, keyed by the
//! path as written), and that file's directory (bind mounts with a relative source are resolved
//! against it, as docker/cli resolves them on the client).
//!
//! Known differences from docker/cli: error texts name the file, line and key instead of copying
//! docker/cli's; unset variables and ignored keys produce warnings; the schema's type rules are
//! those of 3.13 for every version (a key added in a later version is refused, as there).

mod convert;
mod decode;
mod definitions;
mod deploy;
mod envfile;
mod error;
mod image;
mod interpolate;
mod merge;
mod model;
mod mounts;
mod objects;
mod ports;
mod service;
mod template;
mod units;
mod versions;
mod volume_spec;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

pub use error::{ComposeError, Result};

use yaml::{Node, Value};

/// One compose file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user gave it (`-c docker-compose.yml`): errors name the file by it.
    pub name: String,
    /// Its text.
    pub content: String,
}

/// Everything the loader needs from the caller.
#[derive(Clone, Debug, Default)]
pub struct ComposeInput {
    /// The stack (namespace): names are scoped `<stack>_<name>` and labelled with it.
    pub stack: String,
    /// The files, merged in order (`-c a.yml -c b.yml`).
    pub files: Vec<SourceFile>,
    /// The caller's environment: at least the variables [`references`] lists.
    pub env: BTreeMap<String, String>,
    /// Contents of the files named by configs' and secrets' `file:` and services' `env_file`,
    /// keyed by the path as written in the compose file (after interpolation).
    pub attachments: BTreeMap<String, Vec<u8>>,
    /// The directory of the first compose file on the caller's machine; relative bind mount
    /// sources are resolved against it. Empty: such mounts are refused.
    pub working_dir: String,
}

/// The Docker Engine API objects of a stack, exactly as `docker stack deploy` would send them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadedStack {
    /// `ServiceSpec` JSON by full name (`<stack>_<service>`). Secret and config references have
    /// `SecretName`/`ConfigName` set and `SecretID`/`ConfigID` empty, and a credential spec that
    /// uses a config has the config's *name* in `Privileges.CredentialSpec.Config`: the apply
    /// step looks the ids up by name (docker/cli does it on the client) before creating the
    /// service. Networks are referenced by name in `TaskTemplate.Networks[].Target`; the daemon
    /// resolves names.
    pub services: BTreeMap<String, Json>,
    /// `NetworkCreate` JSON (with `Name`) of the stack's own networks, by name: only the
    /// networks some service uses, `<stack>_default` when a service lists none. As docker/cli
    /// does, an existing network of that name is left as it is.
    pub networks: BTreeMap<String, Json>,
    /// Names of the external networks the services use (must exist, swarm-scoped).
    pub external_networks: Vec<String>,
    /// `SecretSpec` JSON (with `Data` in base64) of the stack's own secrets, by name.
    pub secrets: BTreeMap<String, Json>,
    /// Names of the external secrets the file declares.
    pub external_secrets: Vec<String>,
    /// `ConfigSpec` JSON of the stack's own configs, by name.
    pub configs: BTreeMap<String, Json>,
    /// Names of the external configs the file declares.
    pub external_configs: Vec<String>,
    /// Things the caller should show: ignored keys, unset variables, deprecated forms.
    pub warnings: Vec<String>,
}

/// What the CLI must send with the files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Environment variables the files use: in `${...}`, as `environment` entries without a
    /// value (those take the caller's value), `HOME` for `~` in bind mounts. Variables named
    /// bare in an `env_file` are listed by [`env_file_variables`].
    pub variables: BTreeSet<String>,
    /// Paths (as written, after interpolation with the given environment) of the files that
    /// configs, secrets and `env_file` name, relative to the first compose file's directory.
    pub files: BTreeSet<String>,
}

/// Loads a stack: parse, check, interpolate, merge and convert the files.
pub fn load(input: &ComposeInput) -> Result<LoadedStack> {
    let stack = input.stack.as_str();
    if stack.is_empty() || stack.trim() != stack {
        return Err(ComposeError::new(format!("invalid stack name: {stack:?}")));
    }
    if input.files.is_empty() {
        return Err(ComposeError::new("no compose file given"));
    }
    let env = &input.env;
    let lookup = |k: &str| env.get(k).cloned();
    let mut warnings = Vec::new();
    let mut unset = BTreeSet::new();
    let mut configs = Vec::new();
    let mut first_version: Option<String> = None;
    let locations = std::cell::RefCell::new(decode::Locations::new());
    for file in &input.files {
        let mut root = yaml::parse(&file.name, &file.content)?;
        let version = version(&file.name, &root)?;
        match &first_version {
            None => first_version = Some(version.clone()),
            Some(v) if *v != version => {
                return Err(ComposeError::at(
                    &file.name,
                    0,
                    "version",
                    format!("version mismatched between two composefiles : {v} and {version}"),
                ))
            }
            Some(_) => {}
        }
        forbidden(&file.name, &root)?;
        interpolate::interpolate(&file.name, &mut root, &lookup, &mut unset)?;
        let mut cx = decode::Cx {
            file: &file.name,
            version,
            working_dir: &input.working_dir,
            lookup: &lookup,
            attachments: &input.attachments,
            warnings: &mut warnings,
            locations: &locations,
        };
        configs.push(decode::config(&mut cx, &root)?);
    }
    for name in unset {
        warnings.push(format!(
            "the {name} variable is not set: substituting an empty string"
        ));
    }
    let mut configs = configs.into_iter();
    let first = configs.next().expect("at least one file");
    let cfg = merge::merge(first, configs.collect());

    let locations = locations.into_inner();
    let located = |e| decode::locate(e, &locations);
    let (networks, external_networks) = objects::networks(stack, &cfg);
    let (secrets, external_secrets) =
        objects::file_objects(stack, "secret", &cfg.secrets, &input.attachments)
            .map_err(located)?;
    let (configs, external_configs) =
        objects::file_objects(stack, "config", &cfg.configs, &input.attachments)
            .map_err(located)?;
    let mut services = BTreeMap::new();
    for (name, svc) in &cfg.services {
        services.insert(
            objects::scope(stack, name),
            convert::service(stack, name, svc, &cfg).map_err(located)?,
        );
    }
    Ok(LoadedStack {
        services,
        networks,
        external_networks,
        secrets,
        external_secrets,
        configs,
        external_configs,
        warnings,
    })
}

/// The file's schema version, normalised like docker/cli (`3` and none mean 3.13).
fn version(file: &str, root: &Node) -> Result<String> {
    let Value::Map(_) = root.value else {
        return Err(ComposeError::at(
            file,
            root.line,
            "",
            "top-level object must be a mapping",
        ));
    };
    let Some(v) = root.get("version") else {
        return Ok("3.13".into());
    };
    let Value::Str(s) = &v.value else {
        return Err(ComposeError::at(
            file,
            v.line,
            "version",
            "must be a string (quote it: version: \"3.8\")",
        ));
    };
    let s = if s.is_empty() || s == "3" { "3.13" } else { s };
    if !versions::VERSIONS.contains(&s) {
        return Err(ComposeError::at(
            file,
            v.line,
            "version",
            format!(
                "unsupported Compose file version: {s} (docker stack deploy reads 3.0 to 3.13)"
            ),
        ));
    }
    Ok(s.to_string())
}

/// docker/cli's forbidden service keys, refused with its fix-it messages.
fn forbidden(file: &str, root: &Node) -> Result<()> {
    let Some(Node {
        value: Value::Map(services),
        ..
    }) = root.get("services")
    else {
        return Ok(());
    };
    for (name, def) in services {
        let Value::Map(keys) = &def.value else {
            continue;
        };
        for (key, _) in keys {
            if let Some((_, why)) = service::FORBIDDEN.iter().find(|(k, _)| *k == key.name) {
                return Err(ComposeError::at(
                    file,
                    key.line,
                    &format!("services.{}.{}", name.name, key.name),
                    format!("not supported by docker stack deploy: {why}"),
                ));
            }
        }
    }
    Ok(())
}

/// What the CLI must send for `files`: the variables they use and the files they name. `env`
/// (possibly empty on a first call) is used to interpolate the file paths; a path that cannot be
/// interpolated yet is left out.
pub fn references(files: &[SourceFile], env: &BTreeMap<String, String>) -> Result<References> {
    let lookup = |k: &str| env.get(k).cloned();
    let mut refs = References::default();
    for file in files {
        let root = yaml::parse(&file.name, &file.content)?;
        walk_strings(&root, &mut |s| {
            refs.variables.extend(template::variables(s))
        });
        let mut path = |n: &Node| {
            if let Some(s) = n.as_str() {
                if let Ok(p) = template::substitute(s, &lookup) {
                    refs.files.insert(p);
                }
            }
        };
        for section in ["secrets", "configs"] {
            if let Some(Node {
                value: Value::Map(objects),
                ..
            }) = root.get(section)
            {
                for (_, def) in objects {
                    if let Some(f) = def.get("file") {
                        path(f);
                    }
                }
            }
        }
        let Some(Node {
            value: Value::Map(services),
            ..
        }) = root.get("services")
        else {
            continue;
        };
        for (_, def) in services {
            match def.get("env_file").map(|n| &n.value) {
                Some(Value::Str(_)) => path(def.get("env_file").expect("present")),
                Some(Value::Seq(items)) => items.iter().for_each(&mut path),
                _ => {}
            }
            match def.get("environment").map(|n| &n.value) {
                Some(Value::Map(entries)) => {
                    for (k, v) in entries {
                        if matches!(&v.value, Value::Null) || v.as_str() == Some("") {
                            refs.variables.insert(k.name.clone());
                        }
                    }
                }
                Some(Value::Seq(items)) => {
                    for item in items.iter().filter_map(Node::as_str) {
                        match item.split_once('=') {
                            None => {
                                refs.variables.insert(item.to_string());
                            }
                            Some((k, "")) => {
                                refs.variables.insert(k.to_string());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            if let Some(Value::Seq(volumes)) = def.get("volumes").map(|n| &n.value) {
                let home = volumes.iter().any(|v| {
                    v.as_str()
                        .or_else(|| v.get("source").and_then(Node::as_str))
                        .is_some_and(|s| s.starts_with('~'))
                });
                if home {
                    refs.variables.insert("HOME".into());
                }
            }
        }
    }
    Ok(refs)
}

/// The variables an `env_file` takes from the caller's environment (its lines without `=`).
pub fn env_file_variables(content: &[u8]) -> Vec<String> {
    envfile::bare_keys(content)
}

fn walk_strings(n: &Node, f: &mut dyn FnMut(&str)) {
    match &n.value {
        Value::Str(s) => f(s),
        Value::Seq(items) => items.iter().for_each(|i| walk_strings(i, f)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| walk_strings(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
