//! From what a client sends (compose files, the variables they use, the files they name) to
//! the canonical objects a plan compares: the compose loader's Docker API JSON decoded exactly
//! as the Docker API decodes what `docker stack deploy` sends.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shoal_store::model::{ConfigSpec, NetworkSpec, SecretSpec, ServiceSpec, StackObjects};

use super::plan::Desired;
use super::StackError;
use crate::compose::{self, ComposeInput, SourceFile};

/// One compose file as a client sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileBody {
    /// The path the user gave (errors name the file by it).
    pub name: String,
    /// Its text.
    pub content: String,
}

/// The body of `plan` and `apply`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApplyBody {
    /// The compose files, merged in order.
    pub files: Vec<FileBody>,
    /// The variables the files use, from the caller's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Contents (base64) of the files that configs, secrets and `env_file` name, keyed by the
    /// path as written in the compose file.
    #[serde(default)]
    pub attachments: BTreeMap<String, String>,
    /// The first compose file's directory on the client (relative bind mounts).
    #[serde(default)]
    pub working_dir: String,
    /// Remove inventory objects the files no longer have.
    #[serde(default)]
    pub prune: bool,
    /// Only plan.
    #[serde(default)]
    pub dry_run: bool,
    /// Apply only if the plan is still this one.
    #[serde(default)]
    pub plan_token: Option<String>,
    /// Who applies (`user@host`).
    #[serde(default)]
    pub applied_by: String,
    /// How many revisions the stack keeps from the revision this apply makes on.
    #[serde(default)]
    pub history_limit: Option<u32>,
}

/// The range `history_limit` may take.
pub const HISTORY_LIMITS: std::ops::RangeInclusive<u32> = 1..=100;

/// The desired state of stack `stack` from a client's request.
pub fn desired(stack: &str, body: &ApplyBody) -> Result<Desired, StackError> {
    let mut attachments = BTreeMap::new();
    for (path, b64) in &body.attachments {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| {
                StackError::invalid(format!("attachment {path}"), format!("not base64: {e}"))
            })?;
        attachments.insert(path.clone(), bytes);
    }
    if body.files.is_empty() {
        return Err(StackError::Invalid(
            "no compose file was sent; give one with -f FILE".into(),
        ));
    }
    if let Some(n) = body.history_limit.filter(|n| !HISTORY_LIMITS.contains(n)) {
        return Err(StackError::invalid(
            "history_limit",
            format!(
                "{n} is out of range: a stack keeps between {} and {} revisions",
                HISTORY_LIMITS.start(),
                HISTORY_LIMITS.end()
            ),
        ));
    }
    let input = ComposeInput {
        stack: stack.to_string(),
        files: body
            .files
            .iter()
            .map(|f| SourceFile {
                name: f.name.clone(),
                content: f.content.clone(),
            })
            .collect(),
        env: body.env.clone(),
        attachments,
        working_dir: body.working_dir.clone(),
    };
    let loaded = compose::load(&input).map_err(|e| StackError::Invalid(e.to_string()))?;
    let objects = StackObjects {
        services: decode_all::<ServiceSpec>("service", &loaded.services)?,
        networks: decode_all::<NetworkSpec>("network", &loaded.networks)?,
        secrets: decode_all::<SecretSpec>("secret", &loaded.secrets)?,
        configs: decode_all::<ConfigSpec>("config", &loaded.configs)?,
        external_networks: loaded.external_networks.clone(),
        external_secrets: loaded.external_secrets.clone(),
        external_configs: loaded.external_configs.clone(),
    };
    Ok(Desired {
        stack: stack.to_string(),
        objects,
        source_digest: digest(&input),
        applied_by: body.applied_by.clone(),
        cause: "apply".into(),
        prune: body.prune,
        warnings: loaded.warnings,
        history_limit: body.history_limit,
        git_source: String::new(),
        git_commit: String::new(),
    })
}

/// Decodes the loader's JSON the way the Docker API decodes request bodies.
fn decode_all<T: serde::de::DeserializeOwned + Default>(
    kind: &str,
    objects: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<T>, StackError> {
    objects
        .iter()
        .map(|(name, json)| {
            let bytes = serde_json::to_vec(json).unwrap_or_default();
            crate::api::gojson::from_slice::<T>(&bytes)
                .map_err(|e| StackError::invalid(format!("{kind} {name}"), e))
        })
        .collect()
}

/// SHA-256 over the files, the variables and the attachments, in a fixed order.
fn digest(input: &ComposeInput) -> String {
    let mut h = Sha256::new();
    for f in &input.files {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.content.as_bytes());
        h.update([0]);
    }
    for (k, v) in &input.env {
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(v.as_bytes());
        h.update([0]);
    }
    for (k, v) in &input.attachments {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v);
        h.update([0]);
    }
    hex::encode(h.finalize())
}
