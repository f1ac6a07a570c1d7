//! What `shoal apply` / `plan` / `diff` send: the compose files, the variables they use from
//! this shell's environment, and the files they name (read here, relative to the first compose
//! file, as `docker stack deploy` reads them on the client).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;

use crate::compose::{self, SourceFile};
use crate::stack::source::{ApplyBody, FileBody};

/// The names a directory's compose file may have, in the order they are looked for.
pub(crate) const COMPOSE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Which files and which stack.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StackInput {
    /// A compose file, a directory holding one (compose.yaml, docker-compose.yml, ...) or `-`
    /// for standard input; several are merged in order [default: the current directory]
    #[arg(long = "file", short = 'f', value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
    /// The stack's name [default: the first file's directory name]
    #[arg(long)]
    pub stack: Option<String>,
}

fn find_in_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    COMPOSE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no compose file in {} (looked for {}); give one with -f FILE",
                dir.display(),
                COMPOSE_NAMES.join(", ")
            )
        })
}

/// A stack name from a directory name, as compose derives project names: lowercase letters,
/// digits, `-` and `_`.
fn name_from_dir(dir: &Path) -> Option<String> {
    let base = dir
        .canonicalize()
        .ok()?
        .file_name()?
        .to_string_lossy()
        .to_lowercase();
    let name: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let name = name.trim_start_matches(['-', '_']).to_string();
    (!name.is_empty()).then_some(name)
}

impl StackInput {
    /// The stack's name and the request body (without the apply options).
    pub fn load(&self) -> anyhow::Result<(String, ApplyBody)> {
        let args = if self.files.is_empty() {
            vec![".".to_string()]
        } else {
            self.files.clone()
        };
        let mut files = Vec::new();
        let mut first_dir: Option<PathBuf> = None;
        for arg in &args {
            let (name, content, dir) = if arg == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the compose file from standard input")?;
                ("-".to_string(), s, std::env::current_dir()?)
            } else {
                let path = Path::new(arg);
                let path = if path.is_dir() {
                    find_in_dir(path)?
                } else {
                    path.to_path_buf()
                };
                let content = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read compose file {}", path.display()))?;
                let dir = path
                    .parent()
                    .map(|p| {
                        if p.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            p
                        }
                    })
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                (path.display().to_string(), content, dir)
            };
            first_dir.get_or_insert(dir);
            files.push(SourceFile { name, content });
        }
        let dir = first_dir.unwrap_or_else(|| PathBuf::from("."));
        let stack = match &self.stack {
            Some(s) => s.clone(),
            None => name_from_dir(&dir).context(
                "cannot derive a stack name from the directory; give one with --stack NAME",
            )?,
        };
        let shell: BTreeMap<String, String> = std::env::vars().collect();
        // The variables the files use, then the files they name (their paths may use variables).
        let refs =
            compose::references(&files, &BTreeMap::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut env: BTreeMap<String, String> = refs
            .variables
            .iter()
            .filter_map(|v| shell.get(v).map(|x| (v.clone(), x.clone())))
            .collect();
        let refs = compose::references(&files, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut attachments = BTreeMap::new();
        for path in &refs.files {
            let full = dir.join(path);
            let bytes = std::fs::read(&full).with_context(|| {
                format!(
                    "cannot read {} (named by the compose file as {path})",
                    full.display()
                )
            })?;
            for v in compose::env_file_variables(&bytes) {
                if let Some(x) = shell.get(&v) {
                    env.insert(v, x.clone());
                }
            }
            attachments.insert(
                path.clone(),
                base64::engine::general_purpose::STANDARD.encode(&bytes),
            );
        }
        for v in &refs.variables {
            if let Some(x) = shell.get(v) {
                env.insert(v.clone(), x.clone());
            }
        }
        let working_dir = dir
            .canonicalize()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let body = ApplyBody {
            files: files
                .into_iter()
                .map(|f| FileBody {
                    name: f.name,
                    content: f.content,
                })
                .collect(),
            env,
            attachments,
            working_dir,
            applied_by: applied_by(),
            ..Default::default()
        };
        if body.files.is_empty() {
            bail!("no compose file given");
        }
        Ok((stack, body))
    }
}

/// `user@host` of this shell.
pub fn applied_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}
