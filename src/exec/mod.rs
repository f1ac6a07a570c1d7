//! Task executors: what turns an assigned task into a running workload on this node.
//!
//! The shape follows SwarmKit's executor/controller split (reference/swarmkit.md §1.3): an
//! [`Executor`] describes the node and hands out one [`TaskController`] per task; the agent drives
//! each controller through prepare -> start -> wait -> shutdown -> remove with [`drive`], which
//! implements the agent half of the task state machine (`exec.Do`, swarmkit.md §2.4).
//!
//! Three executors exist: [`docker`] (a real Docker Engine), [`process`] (host processes, for
//! hosts without an engine) and [`sim`] (no work at all, for scale tests).
//!
//! Every controller method is idempotent and resolves its workload lazily (by task id), because a
//! restarted agent recreates controllers for tasks whose workloads already exist: `prepare` on a
//! task whose container is already there adopts it, `start` on a running one is a no-op, `wait`
//! attaches to whatever runs. Futures are cancel-safe: the agent drops a pending `wait` when the
//! desired state changes and calls [`drive`] again, which then shuts the task down.

pub mod docker;
mod drive;
mod error;
mod logfile;
pub mod process;
pub mod sim;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use shoal_store::model::{Config, ContainerStatus, NodeDescription, Secret, Task, Timestamp};

pub use drive::{drive, fatal_status, shutdown_params, Step};
pub use error::ExecError;

/// The label Docker puts on every task container: the task id. Adoption looks containers up by it.
pub const LABEL_TASK_ID: &str = "com.docker.swarm.task.id";
/// The task's full name, `<service>.<slot>.<task id>`.
pub const LABEL_TASK_NAME: &str = "com.docker.swarm.task.name";
/// Present (empty) on every task container; `docker ps --filter is-task=true` keys on it.
pub const LABEL_TASK: &str = "com.docker.swarm.task";
/// The owning service's id.
pub const LABEL_SERVICE_ID: &str = "com.docker.swarm.service.id";
/// The owning service's name.
pub const LABEL_SERVICE_NAME: &str = "com.docker.swarm.service.name";
/// The node the task was assigned to.
pub const LABEL_NODE_ID: &str = "com.docker.swarm.node.id";

/// Runs tasks on one node. Object-safe: the agent holds an `Arc<dyn Executor>`.
#[async_trait]
pub trait Executor: Send + Sync {
    /// What this node offers: hostname, platform, resources, engine version, labels and plugins.
    /// The agent reports it when it opens a session and whenever it changes.
    async fn describe(&self) -> Result<NodeDescription, ExecError>;

    /// A controller for `task`. Cheap and side-effect free: nothing is created until `prepare`.
    /// An error here is fatal for the task (the agent reports it REJECTED, see [`fatal_status`]),
    /// e.g. a task without a container spec. `deps` holds the secrets and configs the task
    /// references, read when the workload is prepared.
    fn controller(
        &self,
        task: &Task,
        deps: Arc<dyn Dependencies>,
    ) -> Result<Box<dyn TaskController>, ExecError>;

    /// Every workload this executor finds on the node that belongs to a task, running or not. A
    /// restarted agent compares this with its assignments: it keeps driving the tasks it still has
    /// (their controllers adopt the workload), and removes the rest.
    async fn adoptable(&self) -> Result<Vec<Adoptable>, ExecError>;

    /// The tasks this executor holds files for on the node (the docker executor: the tmpfs of
    /// each task's secrets and configs). An agent that crashed after making a task's files but
    /// before recording the task leaves them behind; [`Executor::release_task_files`] removes
    /// them.
    fn tasks_with_files(&self) -> Vec<String> {
        Vec::new()
    }

    /// Removes what [`Executor::tasks_with_files`] found for `task_id`.
    fn release_task_files(&self, _task_id: &str) -> Result<(), ExecError> {
        Ok(())
    }

    /// The data plane that plumbs this executor's workloads into the swarm's networks, if it
    /// has one (the docker executor).
    fn dataplane(&self) -> Option<crate::dataplane::DataPlane> {
        None
    }
}

/// Where a controller finds the secrets and configs its task references: the agent's in-memory
/// copies of what its assignments delivered (swarmkit's `DependencyGetter`). Nothing here is
/// ever written to the node's disk.
pub trait Dependencies: Send + Sync {
    /// The secret with this id, if this node holds it.
    fn secret(&self, id: &str) -> Option<Secret>;
    /// The config with this id, if this node holds it.
    fn config(&self, id: &str) -> Option<Config>;
}

/// No secrets or configs: for tasks that reference none and for stray workloads being removed.
pub struct NoDependencies;

impl Dependencies for NoDependencies {
    fn secret(&self, _id: &str) -> Option<Secret> {
        None
    }
    fn config(&self, _id: &str) -> Option<Config> {
        None
    }
}

/// A workload found on the node that belongs to a task (see [`Executor::adoptable`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Adoptable {
    /// The task it runs.
    pub task_id: String,
    /// The task's service, when the workload records it.
    pub service_id: String,
    /// The node the task was assigned to. Several nodes may share one engine (a test swarm on
    /// one machine): an agent adopts only its own node's workloads.
    pub node_id: String,
    /// What it is doing now.
    pub state: ObservedState,
}

/// Drives one task's workload. All methods take `&self` and are idempotent, so a controller can
/// be shared between the loop that drives the task and a log reader.
#[async_trait]
pub trait TaskController: Send + Sync {
    /// Makes the task ready to start: checks its image or command, creates the workload (or adopts
    /// an existing one). Errors are reported REJECTED (the task never started).
    async fn prepare(&self) -> Result<(), ExecError>;

    /// Starts the workload and returns once it is running, or, when it has a healthcheck, once
    /// it is healthy. Starting a workload that already runs (or ran) is a no-op.
    async fn start(&self) -> Result<(), ExecError>;

    /// Waits for the workload to exit and returns how it exited. A health check that turns
    /// unhealthy ends the wait with a fatal error. Cancel-safe.
    async fn wait(&self) -> Result<ExitStatus, ExecError>;

    /// Stops the workload: `stop_signal` (None: the workload's own default, else SIGTERM), then
    /// SIGKILL once `grace` has passed. Returns when it has stopped; a workload that does not
    /// exist or is not running is already shut down.
    async fn shutdown(&self, stop_signal: Option<&str>, grace: Duration) -> Result<(), ExecError>;

    /// Kills the workload at once (SIGKILL).
    async fn terminate(&self) -> Result<(), ExecError>;

    /// Removes the workload and what it left behind (container, state files). Kills it first
    /// if it still runs. Removing a workload that does not exist succeeds.
    async fn remove(&self) -> Result<(), ExecError>;

    /// The workload's current state, or `None` when it does not exist (yet or any more).
    async fn inspect(&self) -> Result<Option<ObservedState>, ExecError>;

    /// The workload's output. Lines come in order per stream; the stream ends when the output
    /// does (without `follow`: at the current end; with `follow`: when the workload is gone).
    fn logs(&self, options: LogOptions) -> LogLines;
}

/// How a workload exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code; `128 + n` for a process killed by signal `n`, as the engine reports it.
    pub code: i64,
}

/// Whether a workload is created, running or done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Created (prepared) but never started.
    Created,
    /// Running.
    Running,
    /// Exited (or dead).
    Exited,
}

/// The health of a workload with a healthcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No healthcheck.
    None,
    /// Checks have not passed yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// Enough consecutive checks failed.
    Unhealthy,
}

/// What a workload is doing now, as [`TaskController::inspect`] sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedState {
    /// Container id (docker), process id as text (process), task id (sim).
    pub container_id: String,
    /// Main process id while running, 0 otherwise.
    pub pid: i64,
    /// Created, running or exited.
    pub run_state: RunState,
    /// Exit code once exited (`None` when unknown, e.g. an adopted process that exited while
    /// the agent was away).
    pub exit_code: Option<i64>,
    /// Health, for workloads with a healthcheck.
    pub health: Health,
}

impl ObservedState {
    /// Whether the workload is running.
    pub fn running(&self) -> bool {
        self.run_state == RunState::Running
    }

    /// Whether the workload has exited.
    pub fn exited(&self) -> bool {
        self.run_state == RunState::Exited
    }

    /// The task status' `ContainerStatus` for this state.
    pub fn container_status(&self) -> ContainerStatus {
        ContainerStatus {
            container_id: self.container_id.clone(),
            pid: self.pid,
            exit_code: self.exit_code.unwrap_or(0),
        }
    }
}

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of a workload's output.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// Which stream.
    pub stream: LogStream,
    /// When it was written (every line carries one; callers that were not asked for timestamps
    /// leave them out when rendering).
    pub timestamp: Timestamp,
    /// The bytes as written, including the trailing newline when there was one (a line without
    /// one is a partial line: the workload had not finished it, or it was too long).
    pub line: Bytes,
}

/// Which output [`TaskController::logs`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct LogOptions {
    /// Include standard output.
    pub stdout: bool,
    /// Include standard error.
    pub stderr: bool,
    /// Keep streaming new lines until the workload is gone.
    pub follow: bool,
    /// Only the last `n` lines (per workload) that exist when the call is made.
    pub tail: Option<u64>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            stdout: true,
            stderr: true,
            follow: false,
            tail: None,
            since: None,
        }
    }
}

/// A stream of log lines, independent of the controller that produced it.
pub type LogLines = BoxStream<'static, Result<LogLine, ExecError>>;

/// Names Docker gives a task's workload: the container is named like the task,
/// `<service name>.<slot>.<task id>` (global services: the node id instead of the slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskNames {
    /// The service's name.
    pub service: String,
    /// The task's full name.
    pub task: String,
}

impl TaskNames {
    /// The names of `task`, as swarmkit's `naming.Task` gives them: `Task::name` when it is set
    /// (its service part is the first dot-separated part: service names are DNS labels without
    /// dots), else `<service name>.<slot or node id>.<task id>`. A task recorded before tasks
    /// carried their service's name falls back to the service id.
    pub fn of(task: &Task) -> TaskNames {
        if !task.name.is_empty() {
            let service = task.name.split('.').next().unwrap_or_default().to_owned();
            return TaskNames {
                service,
                task: task.name.clone(),
            };
        }
        let service = [&task.service_name, &task.service_id, &task.meta.id]
            .into_iter()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_default();
        let slot = if task.slot != 0 {
            task.slot.to_string()
        } else {
            task.node_id.clone()
        };
        let task_name = format!("{service}.{slot}.{}", task.meta.id);
        TaskNames {
            service,
            task: task_name,
        }
    }
}

/// Parses a signal name as Docker accepts it (`SIGTERM`, `TERM`, `term`, `15`).
pub fn parse_signal(name: &str) -> Result<i32, ExecError> {
    let trimmed = name.trim();
    if let Ok(n) = trimmed.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(ExecError::Rejected(format!("invalid signal: {name}"))),
    };
    Ok(n)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::model::Meta;

    #[test]
    fn task_names_follow_docker() {
        let mut task = Task {
            meta: Meta::with_id("t1"),
            service_name: "web".into(),
            service_id: "s1".into(),
            slot: 3,
            ..Default::default()
        };
        assert_eq!(
            TaskNames::of(&task),
            TaskNames {
                service: "web".into(),
                task: "web.3.t1".into()
            }
        );
        task.name = "api.3.t1".into();
        assert_eq!(TaskNames::of(&task).service, "api");
        assert_eq!(TaskNames::of(&task).task, "api.3.t1");
        let global = Task {
            meta: Meta::with_id("t2"),
            service_name: "web".into(),
            service_id: "s1".into(),
            node_id: "n1".into(),
            ..Default::default()
        };
        assert_eq!(TaskNames::of(&global).task, "web.n1.t2");
        let recorded_before_names = Task {
            meta: Meta::with_id("t3"),
            service_id: "s1".into(),
            slot: 1,
            ..Default::default()
        };
        assert_eq!(TaskNames::of(&recorded_before_names).task, "s1.1.t3");
    }

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("int").unwrap(), libc::SIGINT);
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        let err = parse_signal("SIGNOPE").unwrap_err();
        assert_eq!(err.to_string(), "invalid signal: SIGNOPE");
        assert!(parse_signal("0").is_err());
    }
}
