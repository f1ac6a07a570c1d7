//! The docker executor of a node whose engine did not answer when it started. The node still
//! runs (it can join and manage a swarm), but it refuses every task with an error that says
//! what to do, rather than run the task some other way. It keeps trying the engine in the
//! background, and from the moment one answers, tasks run as its containers: starting dockerd
//! later needs no restart of shoal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use shoal_store::model::{NodeDescription, Task};

use super::DockerExecutor;
use crate::dataplane::DataPlane;
use crate::exec::{Adoptable, Dependencies, ExecError, Executor, TaskController};

/// How long one attempt waits for the engine to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The docker executor while no engine answers at its address.
pub struct PendingDockerExecutor {
    host: String,
    /// Set once an engine answers.
    engine: Arc<OnceLock<DockerExecutor>>,
    /// The data plane, following the swarm from the start and given the engine when it comes.
    dataplane: DataPlane,
    retries: tokio::task::AbortHandle,
}

impl PendingDockerExecutor {
    /// The executor for the engine at `host`, which is tried every `retry_every` until it
    /// answers. Needs a tokio runtime.
    pub fn start(host: &str, run_dir: &Path, retry_every: Duration) -> Self {
        let engine = Arc::new(OnceLock::new());
        let dataplane = DataPlane::without_engine();
        let retries = tokio::spawn(connect_when_up(
            host.to_owned(),
            run_dir.to_path_buf(),
            retry_every,
            engine.clone(),
            dataplane.clone(),
        ))
        .abort_handle();
        PendingDockerExecutor {
            host: host.to_owned(),
            engine,
            dataplane,
            retries,
        }
    }

    /// The error every task gets while no engine answers.
    fn refusal(&self) -> ExecError {
        ExecError::Rejected(format!(
            "no Docker Engine answers at {}: start dockerd, or run shoal daemon --executor process to run tasks as host processes",
            self.host
        ))
    }
}

impl Drop for PendingDockerExecutor {
    fn drop(&mut self) {
        self.retries.abort();
    }
}

async fn connect_when_up(
    host: String,
    run_dir: PathBuf,
    retry_every: Duration,
    engine: Arc<OnceLock<DockerExecutor>>,
    dataplane: DataPlane,
) {
    loop {
        tokio::time::sleep(retry_every).await;
        let attempt = DockerExecutor::connect_with(&host, &run_dir, dataplane.clone());
        if let Ok(Ok(docker)) = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
            let _ = engine.set(docker);
            tracing::info!("a Docker Engine answers at {host} now: tasks run as its containers");
            return;
        }
    }
}

#[async_trait]
impl Executor for PendingDockerExecutor {
    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        match self.engine.get() {
            Some(docker) => docker.describe().await,
            // The host without an engine.
            None => Ok(crate::exec::process::host_description()),
        }
    }

    fn controller(
        &self,
        task: &Task,
        deps: Arc<dyn Dependencies>,
    ) -> Result<Box<dyn TaskController>, ExecError> {
        match self.engine.get() {
            Some(docker) => docker.controller(task, deps),
            None => Err(self.refusal()),
        }
    }

    fn dataplane(&self) -> Option<DataPlane> {
        Some(self.dataplane.clone())
    }

    async fn adoptable(&self) -> Result<Vec<Adoptable>, ExecError> {
        match self.engine.get() {
            Some(docker) => docker.adoptable().await,
            // No engine, no containers of ours.
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_store::model::{ContainerSpec, Meta, TaskSpec};

    use super::*;
    use crate::exec::NoDependencies;

    #[tokio::test]
    async fn tasks_are_refused_with_what_to_do_while_no_engine_answers() {
        let dir = tempfile::tempdir().unwrap();
        let host = "unix:///nonexistent/docker.sock";
        let executor = PendingDockerExecutor::start(host, dir.path(), Duration::from_millis(10));
        let task = Task {
            meta: Meta::with_id("t1"),
            spec: TaskSpec {
                container_spec: Some(ContainerSpec::with_image("busybox")),
                ..Default::default()
            },
            ..Default::default()
        };
        let refused = executor
            .controller(&task, Arc::new(NoDependencies))
            .err()
            .expect("a refusal");
        assert_eq!(
            refused.to_string(),
            "no Docker Engine answers at unix:///nonexistent/docker.sock: start dockerd, or run shoal daemon --executor process to run tasks as host processes"
        );
        assert!(!refused.is_temporary());
        assert!(executor.adoptable().await.unwrap().is_empty());
        let description = executor.describe().await.unwrap();
        assert!(description.resources.nano_cpus > 0);
        assert!(description.engine.engine_version.is_empty());
    }
}
