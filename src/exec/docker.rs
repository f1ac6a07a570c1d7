//! The docker executor: tasks as containers of a real Docker Engine, driven through its API
//! (bollard). Containers are named and labelled like Docker's own swarm tasks, so `docker ps`
//! shows them as such and a restarted agent finds them again by their task-id label.
//!
//! An image the engine does not have is pulled while the task is PREPARING, with the registry
//! credentials of its service ([`pull`]); one it has is used as it is, never pulled again. A
//! failed pull rejects the task with the registry's words.
//!
//! Secrets and configs reach containers as files on a per-task tmpfs, bind-mounted read-only
//! ([`files`]); that needs the engine on this host, in this mount namespace.

mod config;
mod files;
mod pending;
mod pull;

pub use pending::PendingDockerExecutor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, PluginsInfo,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, WaitContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use chrono::DateTime;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt};
use shoal_store::model::{
    EngineDescription, NodeDescription, Platform, PluginDescription, RegistryAuth, Resources, Task,
    Timestamp,
};

use crate::dataplane::{Attachment, DataPlane};

use super::{
    Adoptable, Dependencies, ExecError, Executor, ExitStatus, Health, LogLine, LogLines,
    LogOptions, LogStream, ObservedState, RunState, TaskController, TaskNames, LABEL_NODE_ID,
    LABEL_SERVICE_ID, LABEL_TASK_ID,
};

/// Where the engine listens unless `--docker-host` says otherwise.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds bollard waits for the engine's response headers. Long operations (waits, logs,
/// events) get their headers at once; stops are done with kill + wait, bounded by our own timers.
const ENGINE_TIMEOUT_SECS: u64 = 120;
/// The same for image pulls, whose headers come once the registry has answered.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(ENGINE_TIMEOUT_SECS);
/// How long to wait for a container to go away after SIGKILL before reporting a temporary error.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// How often health is re-inspected when the engine's event stream is unavailable.
const HEALTH_POLL: Duration = Duration::from_millis(250);
/// Docker's text for a container whose healthcheck failed.
const UNHEALTHY: &str = "unhealthy container";

/// Runs tasks as containers of one Docker Engine.
pub struct DockerExecutor {
    docker: Docker,
    /// Where the engine listens, for image pulls (their own connections, see [`pull`]).
    engine_addr: Option<pull::EngineAddr>,
    /// Where tasks' secret and config tmpfs mounts go (`<run dir>/tasks/<task id>`).
    run_dir: PathBuf,
    /// Whether the engine shares this host's file system (it bind-mounts our files).
    local_engine: bool,
    /// Plumbs tasks' containers into their swarm networks.
    dataplane: DataPlane,
}

impl DockerExecutor {
    /// Connects to the engine at `host` (`unix:///path`, a bare socket path, `tcp://host:port`)
    /// and negotiates the API version down to what the engine speaks (20.10 speaks 1.41; bollard
    /// would otherwise send a newer version, which an older engine refuses). Tasks' secrets and
    /// configs are mounted under `run_dir`, which must not be on the node's data disk.
    pub async fn connect(host: &str, run_dir: &Path) -> Result<Self, ExecError> {
        Self::connect_with(host, run_dir, DataPlane::without_engine()).await
    }

    /// [`DockerExecutor::connect`] plumbing containers through `dataplane` (which gets the
    /// engine): the executor of a node whose engine answered only after it started keeps the
    /// data plane the node has been running.
    pub async fn connect_with(
        host: &str,
        run_dir: &Path,
        dataplane: DataPlane,
    ) -> Result<Self, ExecError> {
        let docker = engine_client(host).await?;
        dataplane.set_engine(docker.clone());
        Ok(DockerExecutor {
            dataplane,
            docker,
            engine_addr: pull::EngineAddr::parse(host),
            run_dir: run_dir.to_path_buf(),
            local_engine: host.starts_with('/') || host.starts_with("unix://"),
        })
    }

    /// The data plane that plumbs this executor's containers into their networks (the node
    /// runs its reconcile loop while it holds the store).
    pub fn dataplane(&self) -> &DataPlane {
        &self.dataplane
    }

    /// The engine client (with the negotiated version), for callers that need more of the API.
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

/// A client of the engine at `host` (`unix:///path`, a bare socket path, `tcp://host:port`),
/// speaking the API version the engine speaks.
pub async fn engine_client(host: &str) -> Result<Docker, ExecError> {
    let cannot = |e: EngineError| {
        ExecError::Temporary(format!("cannot reach the Docker engine at {host}: {e}"))
    };
    let docker = if host.starts_with('/') {
        Docker::connect_with_unix(host, ENGINE_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_host(host)
    }
    .map_err(cannot)?;
    docker.negotiate_version().await.map_err(cannot)
}

#[async_trait]
impl Executor for DockerExecutor {
    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| temporary("reading the engine's info", e))?;
        let labels = info
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (l, String::new()),
            })
            .collect();
        Ok(NodeDescription {
            hostname: info.name.unwrap_or_default(),
            platform: Platform {
                architecture: info.architecture.unwrap_or_default(),
                os: info.os_type.unwrap_or_default(),
            },
            resources: Resources {
                nano_cpus: info.ncpu.unwrap_or(0) * 1_000_000_000,
                memory_bytes: info.mem_total.unwrap_or(0),
                generic_resources: Vec::new(),
            },
            engine: EngineDescription {
                engine_version: info.server_version.unwrap_or_default(),
                labels,
                plugins: plugins(info.plugins.unwrap_or_default()),
            },
            ..Default::default()
        })
    }

    fn controller(
        &self,
        task: &Task,
        deps: Arc<dyn Dependencies>,
    ) -> Result<Box<dyn TaskController>, ExecError> {
        let spec = task
            .spec
            .container()
            .ok_or_else(|| ExecError::Rejected("the task has no container spec".into()))?;
        if spec.image.is_empty() {
            return Err(ExecError::Rejected(
                "ContainerSpec: image reference must be provided".into(),
            ));
        }
        let names = TaskNames::of(task);
        let files = files::referenced_files(spec)?;
        if !files.is_empty() && !self.local_engine {
            return Err(ExecError::Rejected(
                "secrets and configs need the Docker engine on this node's host (a unix socket); this node's engine is remote".into(),
            ));
        }
        let files_dir = files::task_dir(&self.run_dir, &task.meta.id);
        let mounts = files::bind_mounts(&files_dir, &files);
        let create = config::container_config(task, spec, &names, mounts)?;
        Ok(Box::new(DockerController {
            task: task.clone(),
            dataplane: self.dataplane.clone(),
            names: names.clone(),
            docker: self.docker.clone(),
            engine_addr: self.engine_addr.clone(),
            task_id: task.meta.id.clone(),
            name: names.task,
            image: spec.image.clone(),
            registry_auth: spec.registry_auth.clone(),
            pull: Mutex::new(None),
            create,
            files,
            files_dir,
            deps,
            container: Mutex::new(Known::Unknown),
            last_seen: Mutex::new(None),
        }))
    }

    fn dataplane(&self) -> Option<DataPlane> {
        Some(self.dataplane.clone())
    }

    fn tasks_with_files(&self) -> Vec<String> {
        files::tasks_with_files(&self.run_dir)
    }

    fn release_task_files(&self, task_id: &str) -> Result<(), ExecError> {
        files::release(&files::task_dir(&self.run_dir, task_id))
    }

    async fn adoptable(&self) -> Result<Vec<Adoptable>, ExecError> {
        let mut found = Vec::new();
        for summary in list_task_containers(&self.docker, None).await? {
            let Some(id) = summary.id else { continue };
            let labels = summary.labels.unwrap_or_default();
            let inspected = match self.docker.inspect_container(&id, None).await {
                Ok(c) => c,
                Err(e) if status(&e) == Some(404) => continue, // removed meanwhile
                Err(e) => return Err(temporary("inspecting a task container", e)),
            };
            found.push(Adoptable {
                task_id: labels.get(LABEL_TASK_ID).cloned().unwrap_or_default(),
                service_id: labels.get(LABEL_SERVICE_ID).cloned().unwrap_or_default(),
                node_id: labels.get(LABEL_NODE_ID).cloned().unwrap_or_default(),
                state: observed(&inspected),
            });
        }
        found.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(found)
    }
}

/// The engine's plugins as node description entries, sorted by type then name (as Docker does).
fn plugins(info: PluginsInfo) -> Vec<PluginDescription> {
    let mut out: Vec<PluginDescription> = [
        ("Volume", info.volume),
        ("Network", info.network),
        ("Authorization", info.authorization),
        ("Log", info.log),
    ]
    .into_iter()
    .flat_map(|(kind, names)| {
        names
            .unwrap_or_default()
            .into_iter()
            .map(move |name| PluginDescription {
                kind: kind.to_owned(),
                name,
            })
    })
    .collect();
    out.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    out
}

/// The HTTP status of an engine error, if the engine answered at all.
fn status(e: &EngineError) -> Option<u16> {
    match e {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message for an error it answered, else the client's description.
fn message(e: &EngineError) -> String {
    match e {
        EngineError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The engine's answer to a create from an image it does not have.
fn no_such_image(e: &EngineError) -> bool {
    status(e) == Some(404) && message(e).contains("No such image")
}

/// An error that may go away (the engine is unreachable or slow): retry.
fn temporary(what: &str, e: EngineError) -> ExecError {
    ExecError::Temporary(format!("{what}: {}", message(&e)))
}

/// Engine refusals (it answered with an error) are fatal via `fatal`; anything else is temporary.
fn classify(what: &str, e: EngineError, fatal: fn(String) -> ExecError) -> ExecError {
    if status(&e).is_some() {
        fatal(message(&e))
    } else {
        temporary(what, e)
    }
}

/// All containers (running or not) that belong to a task, optionally only `task_id`'s.
async fn list_task_containers(
    docker: &Docker,
    task_id: Option<&str>,
) -> Result<Vec<bollard::models::ContainerSummary>, ExecError> {
    let label = match task_id {
        Some(id) => format!("{LABEL_TASK_ID}={id}"),
        None => LABEL_TASK_ID.to_owned(),
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_owned(), vec![label])])),
        ..Default::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .map_err(|e| temporary("listing task containers", e))
}

/// The id of `task_id`'s container, if it has one.
async fn find_task_container(docker: &Docker, task_id: &str) -> Result<Option<String>, ExecError> {
    Ok(list_task_containers(docker, Some(task_id))
        .await?
        .into_iter()
        .find_map(|c| c.id))
}

/// What an inspected container is doing.
fn observed(c: &ContainerInspectResponse) -> ObservedState {
    let state = c.state.clone().unwrap_or_default();
    let run_state = match state.status {
        Some(ContainerStateStatusEnum::CREATED) | None => RunState::Created,
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING,
        ) => RunState::Running,
        Some(_) => RunState::Exited,
    };
    let health = match state.health.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        _ => Health::None,
    };
    ObservedState {
        container_id: c.id.clone().unwrap_or_default(),
        pid: if run_state == RunState::Running {
            state.pid.unwrap_or(0)
        } else {
            0
        },
        run_state,
        exit_code: (run_state == RunState::Exited).then(|| state.exit_code.unwrap_or(0)),
        health,
    }
}

/// What a controller knows of its task's container.
#[derive(Clone, Debug, PartialEq)]
enum Known {
    /// Not looked up yet: a previous agent may have created it.
    Unknown,
    /// Looked up (or removed) by this controller: there is none.
    Absent,
    /// This container.
    Present(String),
}

/// A task's container. Every engine call is on the task's way from NEW to RUNNING, so the
/// controller remembers what it learnt instead of asking again: whether the container exists
/// (looked up once, then known from its own create and remove), and what its last operation
/// saw of it (reported as the status that follows the operation, as SwarmKit reports the
/// container status after every step). A fresh task costs create, start, inspect, wait.
struct DockerController {
    docker: Docker,
    engine_addr: Option<pull::EngineAddr>,
    task_id: String,
    /// The container name, `<service>.<slot>.<task id>`.
    name: String,
    image: String,
    /// The credentials its image is pulled with.
    registry_auth: RegistryAuth,
    /// The pull under way. It runs on a task of its own, so a `prepare` that is cancelled (the
    /// agent re-drives a task whenever its assignment changes) and called again waits for the
    /// same pull instead of starting over; dropping the controller stops it.
    pull: Mutex<Option<(PullFuture, tokio::task::AbortHandle)>>,
    create: bollard::models::ContainerCreateBody,
    /// The task's network attachments (and node), for the data plane.
    task: Task,
    dataplane: DataPlane,
    names: TaskNames,
    /// The secrets and configs its container bind-mounts, and the tmpfs they are written to.
    files: Vec<files::TaskFile>,
    files_dir: PathBuf,
    deps: Arc<dyn Dependencies>,
    container: Mutex<Known>,
    /// The container as this controller's last operation left it; cleared when an operation
    /// that changes it begins and when it ends without saying.
    last_seen: Mutex<Option<ObservedState>>,
}

/// A pull shared by every `prepare` call that waits for it.
type PullFuture = Shared<BoxFuture<'static, Result<(), ExecError>>>;

impl Drop for DockerController {
    fn drop(&mut self) {
        if let Some((_, pulling)) = self.pull.get_mut().ok().and_then(Option::take) {
            pulling.abort();
        }
    }
}

impl DockerController {
    /// Creates the task's container, or says why not (the engine's error as it came).
    async fn create_container(&self, networks: &Attachment) -> Result<String, EngineError> {
        let options = CreateContainerOptions {
            name: Some(self.name.clone()),
            ..Default::default()
        };
        let body = config::with_networks(self.create.clone(), networks, &self.names);
        let created = self.docker.create_container(Some(options), body).await?;
        // Further networks are joined before the container starts (an engine of API < 1.44
        // takes one network at create).
        for ep in networks.endpoints.iter().skip(1) {
            let request = config::connect_request(&created.id, ep, &self.names);
            if let Err(e) = self.docker.connect_network(&ep.network, request).await {
                let _ = self
                    .docker
                    .remove_container(&created.id, None::<RemoveContainerOptions>)
                    .await;
                return Err(e);
            }
        }
        Ok(created.id)
    }

    /// Pulls the task's image, joining the pull already under way if there is one.
    async fn pull_image(&self) -> Result<(), ExecError> {
        let Some(addr) = self.engine_addr.clone() else {
            return Err(ExecError::Rejected(format!(
                "No such image: {} (this node cannot pull images from its engine's address)",
                self.image
            )));
        };
        let pulling = {
            let mut slot = self.pull.lock().unwrap();
            match slot.as_ref() {
                Some((pulling, _)) => pulling.clone(),
                None => {
                    let version = self.docker.client_version().to_string();
                    let (image, auth) = (self.image.clone(), self.registry_auth.clone());
                    tracing::info!(task = %self.task_id, image = %image, "pulling the task's image");
                    let handle = tokio::spawn(async move {
                        pull::pull(&addr, &version, &image, &auth, ENGINE_TIMEOUT).await
                    });
                    let abort = handle.abort_handle();
                    let pulling = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(ExecError::Temporary(format!("pulling the image: {e}")))
                        })
                    }
                    .boxed()
                    .shared();
                    *slot = Some((pulling.clone(), abort));
                    pulling
                }
            }
        };
        let pulled = pulling.await;
        // Done either way: a later prepare (after a temporary error) pulls afresh.
        self.pull.lock().unwrap().take();
        pulled
    }

    /// The task's container id: known, or looked up by its name (adopting a container that a
    /// previous agent created). The name holds the task id, so it is the task's container
    /// whoever created it; looking it up by name costs the engine a map lookup, where a list
    /// filtered by label walks every container (once per new task, that showed).
    async fn find(&self) -> Result<Option<String>, ExecError> {
        match self.container.lock().unwrap().clone() {
            Known::Present(id) => return Ok(Some(id)),
            Known::Absent => return Ok(None),
            Known::Unknown => {}
        }
        let found = match self.docker.inspect_container(&self.name, None).await {
            Ok(c)
                if c.config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(LABEL_TASK_ID))
                    == Some(&self.task_id) =>
            {
                c.id
            }
            // A container of that name that is not this task's (not ours to adopt): the
            // create will say so.
            Ok(_) => None,
            Err(e) if status(&e) == Some(404) => None,
            Err(e) => return Err(temporary("inspecting the task's container", e)),
        };
        *self.container.lock().unwrap() = match &found {
            Some(id) => Known::Present(id.clone()),
            None => Known::Absent,
        };
        Ok(found)
    }

    /// The container is gone (removed, or the engine no longer knows it).
    fn forget(&self) {
        *self.container.lock().unwrap() = Known::Absent;
        self.seen(None);
    }

    fn seen(&self, state: Option<ObservedState>) {
        *self.last_seen.lock().unwrap() = state;
    }

    async fn inspect_container(&self) -> Result<Option<ContainerInspectResponse>, ExecError> {
        let Some(id) = self.find().await? else {
            return Ok(None);
        };
        match self.docker.inspect_container(&id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if status(&e) == Some(404) => {
                self.forget();
                Ok(None)
            }
            Err(e) => Err(temporary("inspecting the task's container", e)),
        }
    }

    /// Waits until the container is no longer running; returns its exit code.
    async fn exit_code(&self, id: &str) -> Result<i64, ExecError> {
        let mut wait = self
            .docker
            .wait_container(id, Some(WaitContainerOptions::default()));
        match wait.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(EngineError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) if status(&e) == Some(404) => Err(ExecError::failed(
                "task: the container was removed while it ran",
            )),
            Some(Err(e)) => Err(temporary("waiting for the container", e)),
            None => Err(ExecError::Temporary(
                "waiting for the container: the engine closed the wait".into(),
            )),
        }
    }

    /// Sends `signal`; false when the container was not running (or is gone).
    async fn kill(&self, id: &str, signal: &str) -> Result<bool, ExecError> {
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(false),
            Err(e) => Err(classify("signalling the container", e, ExecError::failed)),
        }
    }

    async fn kill_and_wait(&self, id: &str) -> Result<(), ExecError> {
        self.kill(id, "SIGKILL").await?;
        match tokio::time::timeout(KILL_WAIT, self.exit_code(id)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ExecError::Temporary(
                "the container did not stop after SIGKILL".into(),
            )),
        }
    }

    /// Events about this container (health changes, death), only to wake health watchers,
    /// which re-inspect on each; when the stream fails they fall back to polling.
    fn events(&self, id: &str) -> impl Stream<Item = Result<(), EngineError>> + Send + 'static {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("container".to_owned(), vec![id.to_owned()]),
        ]);
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .map(|e| e.map(|_| ()))
    }

    /// Returns once the container's health is decided: Ok when healthy (or it has no
    /// healthcheck), the unhealthy error, or its exit if it dies first (as Docker: a zero exit
    /// is not an error here, `wait` reports it).
    async fn await_healthy(&self, id: &str) -> Result<(), ExecError> {
        let mut events = Some(Box::pin(self.events(id)));
        loop {
            let Some(c) = self.inspect_container().await? else {
                return Err(ExecError::failed(
                    "task: the container was removed while it started",
                ));
            };
            let state = observed(&c);
            self.seen(Some(state.clone()));
            match (state.run_state, state.health) {
                // Without a healthcheck, started is running; an early exit is for `wait`.
                (_, Health::None) => return Ok(()),
                (RunState::Exited, _) => {
                    let code = state.exit_code.unwrap_or(0);
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(ExecError::non_zero_exit(code))
                    };
                }
                (_, Health::Healthy) => return Ok(()),
                (_, Health::Unhealthy) => return Err(ExecError::failed(UNHEALTHY)),
                (_, Health::Starting) => {}
            }
            next_event(&mut events).await;
        }
    }

    /// Returns when the container's health turns unhealthy (never if it has no healthcheck).
    async fn until_unhealthy(&self, id: &str) {
        let known = self.last_seen.lock().unwrap().as_ref().map(|s| s.health);
        if known == Some(Health::None) {
            // Started without a healthcheck (start inspected it): nothing can turn unhealthy.
            return std::future::pending().await;
        }
        let mut events = Some(Box::pin(self.events(id)));
        loop {
            match self.inspect_container().await {
                Ok(Some(c)) => match observed(&c).health {
                    Health::Unhealthy => return,
                    Health::None => return std::future::pending().await,
                    _ => {}
                },
                // Gone, or the engine is unreachable: the exit wait reports what matters.
                _ => return std::future::pending().await,
            }
            next_event(&mut events).await;
        }
    }
}

/// Waits for the next container event, or polls when the event stream has failed.
async fn next_event<S>(events: &mut Option<std::pin::Pin<Box<S>>>)
where
    S: Stream<Item = Result<(), EngineError>>,
{
    match events {
        Some(stream) => match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            Ok(Some(Ok(()))) | Err(_) => {}
            Ok(_) => *events = None,
        },
        None => tokio::time::sleep(HEALTH_POLL).await,
    }
}

#[async_trait]
impl TaskController for DockerController {
    async fn prepare(&self) -> Result<(), ExecError> {
        if !self.files.is_empty() {
            files::materialize(&self.files_dir, &self.files, self.deps.as_ref()).await?;
        }
        // Created before by this controller: nothing to do. Otherwise create straight away
        // rather than list the engine's containers first (a list per task costs the engine
        // more than the create): the container's name holds the task id, so one that a
        // previous agent created answers the create with a name conflict, and is adopted.
        if matches!(*self.container.lock().unwrap(), Known::Present(_)) {
            return Ok(());
        }
        self.seen(None);
        // The task's networks exist on this node before its container is created on them.
        let networks = self
            .dataplane
            .attach(&self.task)
            .await
            .map_err(|e| ExecError::Rejected(e.to_string()))?;
        // The image is pulled only when the create says the engine lacks it (404 "No such
        // image"): an image that is there costs nothing more, and is never pulled again.
        let mut created = self.create_container(&networks).await;
        if matches!(&created, Err(e) if no_such_image(e)) && !pull::is_image_id(&self.image) {
            self.pull_image().await?;
            created = self.create_container(&networks).await;
        }
        match created {
            Ok(id) => {
                self.seen(Some(ObservedState {
                    container_id: id.clone(),
                    pid: 0,
                    run_state: RunState::Created,
                    exit_code: None,
                    health: Health::None,
                }));
                *self.container.lock().unwrap() = Known::Present(id);
                Ok(())
            }
            // Pulled and still missing (or an image id, which no registry serves): final, in
            // Docker's words.
            Err(e) if no_such_image(&e) => Err(ExecError::Rejected(format!(
                "No such image: {}",
                self.image
            ))),
            // The task's container exists (a previous agent's, or another create won the
            // race): adopt it.
            Err(e) if status(&e) == Some(409) => {
                *self.container.lock().unwrap() = Known::Unknown;
                match self.find().await? {
                    Some(_) => Ok(()),
                    None => Err(classify("creating the container", e, ExecError::Rejected)),
                }
            }
            Err(e) => Err(classify("creating the container", e, ExecError::Rejected)),
        }
    }

    async fn start(&self) -> Result<(), ExecError> {
        let Some(id) = self.find().await? else {
            return Err(ExecError::failed(
                "task: the task has no container to start",
            ));
        };
        self.seen(None);
        match self.docker.start_container(&id, None).await {
            Ok(()) => {}
            Err(e) if status(&e) == Some(304) => {} // already started
            Err(e) if status(&e) == Some(404) => {
                self.forget();
                return Err(ExecError::failed(
                    "task: the task has no container to start",
                ));
            }
            Err(e) => return Err(classify("starting the container", e, ExecError::failed)),
        }
        // Not RUNNING until healthy, when the container (or its image) has a healthcheck.
        self.await_healthy(&id).await
    }

    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        let Some(id) = self.find().await? else {
            return Err(ExecError::failed("task: the task has no container"));
        };
        let ended = tokio::select! {
            code = self.exit_code(&id) => code.map(|code| ExitStatus { code }),
            () = self.until_unhealthy(&id) => Err(ExecError::failed(UNHEALTHY)),
        };
        // It exited or turned unhealthy: what start saw no longer holds.
        self.seen(None);
        ended
    }

    async fn shutdown(&self, stop_signal: Option<&str>, grace: Duration) -> Result<(), ExecError> {
        self.seen(None);
        let Some(c) = self.inspect_container().await? else {
            return Ok(());
        };
        if !observed(&c).running() {
            return Ok(());
        }
        let id = c.id.clone().unwrap_or_default();
        // Out of the VIPs, the routing mesh and DNS before the workload is told to stop, so
        // no new connection reaches a task that is going away.
        if !self.task.networks_attachments.is_empty() {
            self.dataplane.drained(&self.task.meta.id).await;
        }
        // The container's own stop signal (from the spec or the image) unless told otherwise.
        let signal = stop_signal
            .map(str::to_owned)
            .or_else(|| c.config.as_ref().and_then(|cfg| cfg.stop_signal.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "SIGTERM".to_owned());
        if !self.kill(&id, &signal).await? {
            return Ok(());
        }
        match tokio::time::timeout(grace, self.exit_code(&id)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_temporary() => Err(e),
            Ok(Err(_)) => Ok(()), // removed meanwhile: stopped all the same
            Err(_) => self.kill_and_wait(&id).await,
        }
    }

    async fn terminate(&self) -> Result<(), ExecError> {
        self.seen(None);
        match self.find().await? {
            Some(id) => self.kill_and_wait(&id).await,
            None => Ok(()),
        }
    }

    async fn remove(&self) -> Result<(), ExecError> {
        let Some(id) = self.find().await? else {
            return files::release(&self.files_dir);
        };
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(&id, Some(options)).await {
            Ok(()) => {}
            Err(e) if status(&e) == Some(404) => {}
            // "removal already in progress" and the like: try again.
            Err(e) if status(&e) == Some(409) => {
                return Err(ExecError::Temporary(message(&e)));
            }
            Err(e) => return Err(classify("removing the container", e, ExecError::failed)),
        }
        self.forget();
        files::release(&self.files_dir)
    }

    async fn inspect(&self) -> Result<Option<ObservedState>, ExecError> {
        if let Some(seen) = self.last_seen.lock().unwrap().clone() {
            return Ok(Some(seen));
        }
        Ok(self.inspect_container().await?.as_ref().map(observed))
    }

    fn logs(&self, options: LogOptions) -> LogLines {
        let docker = self.docker.clone();
        let task_id = self.task_id.clone();
        let cached = match &*self.container.lock().unwrap() {
            Known::Present(id) => Some(id.clone()),
            _ => None,
        };
        futures::stream::once(async move {
            let id = match cached {
                Some(id) => id,
                None => match find_task_container(&docker, &task_id).await {
                    Ok(Some(id)) => id,
                    Ok(None) => return futures::stream::empty().boxed(),
                    Err(e) => return futures::stream::iter([Err(e)]).boxed(),
                },
            };
            container_logs(&docker, &id, options)
        })
        .flatten()
        .boxed()
    }
}

/// The engine's logs of container `id`, demultiplexed into lines with their timestamps.
fn container_logs(docker: &Docker, id: &str, options: LogOptions) -> LogLines {
    let since = options.since;
    let engine_options = LogsOptions {
        follow: options.follow,
        stdout: options.stdout,
        stderr: options.stderr,
        // Whole seconds here (the API takes fractions, bollard does not); the rest is filtered
        // below from each line's timestamp.
        since: since.map_or(0, |t| {
            i32::try_from(t.unix_nanos().div_euclid(1_000_000_000)).unwrap_or(0)
        }),
        until: 0,
        timestamps: true,
        tail: options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string()),
    };
    docker
        .logs(id, Some(engine_options))
        .filter_map(move |item| {
            let out = match item {
                Ok(out) => out,
                Err(e) => {
                    let err = classify("reading container logs", e, ExecError::failed);
                    return futures::future::ready(Some(Err(err)));
                }
            };
            let line = parse_log(out).filter(|l| since.is_none_or(|s| l.timestamp >= s));
            futures::future::ready(line.map(Ok))
        })
        .boxed()
}

/// Splits the engine's `<RFC 3339 timestamp> <bytes>` frame into a log line.
fn parse_log(out: bollard::container::LogOutput) -> Option<LogLine> {
    use bollard::container::LogOutput;
    let (stream, frame) = match out {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (LogStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    let (timestamp, line) = match frame.iter().position(|b| *b == b' ') {
        Some(space) => match std::str::from_utf8(&frame[..space])
            .ok()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) => (Timestamp(t.to_utc()), frame.slice(space + 1..)),
            None => (Timestamp::now(), frame),
        },
        None => (Timestamp::now(), frame),
    };
    Some(LogLine {
        stream,
        timestamp,
        line,
    })
}

#[cfg(test)]
mod tests;
