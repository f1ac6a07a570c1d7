//! Choosing a node's executor: `shoal daemon --executor docker|process|sim`, defaulting to the
//! Docker Engine at `--docker-host`. Tasks never become host processes unless asked for: a node
//! without the flag whose engine does not answer still starts (it can join and manage a swarm)
//! but refuses tasks with an error saying so, until an engine answers there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shoal_store::model::NodeDescription;

use crate::exec::docker::{DockerExecutor, PendingDockerExecutor, DEFAULT_DOCKER_HOST};
use crate::exec::process::ProcessExecutor;
use crate::exec::sim::{SimConfig, SimExecutor};
use crate::exec::Executor;

/// How long the default choice waits for an engine to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a node whose engine did not answer tries it again.
const ENGINE_RETRY: Duration = Duration::from_secs(2);

/// Which executor runs a node's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// A Docker Engine (`--docker-host`).
    Docker,
    /// Task commands as host processes of this daemon's user, without isolation.
    Process,
    /// Nothing at all (scale tests).
    Sim,
}

/// How to build the executor.
#[derive(Clone, Debug)]
pub struct ExecutorChoice {
    /// The kind, or `None` for "docker, refusing tasks while no engine answers".
    pub kind: Option<ExecutorKind>,
    /// The engine's address.
    pub docker_host: String,
    /// Where the executor keeps what must never reach a disk (tasks' secrets and configs, each
    /// on a tmpfs of its own); `None`: [`default_run_dir`].
    pub run_dir: Option<PathBuf>,
}

impl Default for ExecutorChoice {
    fn default() -> Self {
        ExecutorChoice {
            kind: None,
            docker_host: DEFAULT_DOCKER_HOST.to_string(),
            run_dir: None,
        }
    }
}

/// `/run/shoal/<digest of the state dir>`: one directory per node state on this host (several
/// test nodes share a machine), outside the data directory.
pub fn default_run_dir(state_dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let path = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    PathBuf::from("/run/shoal").join(hex::encode(&digest[..6]))
}

/// A built executor and what it is.
pub struct BuiltExecutor {
    /// The executor.
    pub executor: Arc<dyn Executor>,
    /// Its kind.
    pub kind: ExecutorKind,
}

/// Builds the executor; `state_dir` holds the process executor's task directories, `hostname`
/// names a simulated node.
pub async fn build(
    choice: &ExecutorChoice,
    state_dir: &Path,
    hostname: &str,
) -> anyhow::Result<BuiltExecutor> {
    let run_dir = choice
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(state_dir));
    let process = || -> anyhow::Result<BuiltExecutor> {
        Ok(BuiltExecutor {
            executor: Arc::new(ProcessExecutor::new(state_dir.join("process"))?),
            kind: ExecutorKind::Process,
        })
    };
    match choice.kind {
        Some(ExecutorKind::Docker) => Ok(BuiltExecutor {
            executor: Arc::new(DockerExecutor::connect(&choice.docker_host, &run_dir).await?),
            kind: ExecutorKind::Docker,
        }),
        Some(ExecutorKind::Process) => process(),
        Some(ExecutorKind::Sim) => Ok(BuiltExecutor {
            executor: Arc::new(SimExecutor::new(
                sim_description(hostname),
                SimConfig::default(),
            )),
            kind: ExecutorKind::Sim,
        }),
        None => {
            let probe = DockerExecutor::connect(&choice.docker_host, &run_dir);
            let executor: Arc<dyn Executor> = match tokio::time::timeout(PROBE_TIMEOUT, probe).await
            {
                Ok(Ok(d)) => Arc::new(d),
                _ => {
                    tracing::warn!(
                        host = %choice.docker_host,
                        "no Docker Engine answers: tasks are refused until one does (start \
                         dockerd, or run shoal daemon --executor process)"
                    );
                    Arc::new(PendingDockerExecutor::start(
                        &choice.docker_host,
                        &run_dir,
                        ENGINE_RETRY,
                    ))
                }
            };
            Ok(BuiltExecutor {
                executor,
                kind: ExecutorKind::Docker,
            })
        }
    }
}

/// A simulated node's description: like this host, under its own name.
pub fn sim_description(hostname: &str) -> NodeDescription {
    let mut d = crate::exec::process::host_description();
    d.hostname = hostname.to_string();
    d
}
