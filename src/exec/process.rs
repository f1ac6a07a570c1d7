//! The process executor: a task's `Command` + `Args` run as a supervised host process, for hosts
//! without a container engine. The image, mounts, limits and networks are ignored.
//!
//! Each task has a directory `<state>/<task id>/`:
//! - `meta.json`: task and service id (for [`Executor::adoptable`]);
//! - `pid`: `<pid> <start time>` once started (the start time, from `/proc`, guards against a
//!   recycled pid when a restarted agent adopts the process);
//! - `stdout.raw`, `stderr.raw`: the process writes straight into these (append-only files, not
//!   pipes, so the process survives its agent: no SIGPIPE when the agent goes away);
//! - `log`: the supervisor turns the raw output into timestamped CRI records (see `logfile`) every
//!   100 ms and remembers how far it got in `offsets`, so a restarted agent continues where the
//!   last one stopped; consumed raw bytes are punched out of the raw files to give the disk back;
//! - `exit`: the exit code (or `unknown` for a process that exited while no agent watched it),
//!   written once all its output is in `log`.
//!
//! The process leads its own process group, so stop signals reach its children too, and when it
//! exits what is left of the group is killed (a task ends with its main process, as a container
//! does).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shoal_store::model::{
    EngineDescription, Labels, NodeDescription, Platform, Resources, Task, Timestamp,
};
use tokio::sync::watch;

use super::logfile::{self, POLL};
use super::{
    parse_signal, Adoptable, Dependencies, ExecError, Executor, ExitStatus, Health, LogLines,
    LogOptions, LogStream, ObservedState, RunState, TaskController,
};

/// How long to wait for a process to go away after SIGKILL before giving up (temporarily).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// The longest record the supervisor writes; longer lines are split into partial records, as
/// Docker's log drivers split at 16 KiB.
const MAX_RECORD: usize = 16 * 1024;
/// The most raw output one pump pass reads per stream (the rest waits for the next pass).
const MAX_PUMP: usize = 1024 * 1024;
/// The PATH a task gets when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs tasks as host processes, keeping their state under one directory.
pub struct ProcessExecutor {
    state_dir: PathBuf,
    engine_labels: Labels,
}

impl ProcessExecutor {
    /// An executor keeping task directories under `state_dir` (created if missing).
    pub fn new(state_dir: impl Into<PathBuf>) -> io::Result<Self> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir)?;
        Ok(ProcessExecutor {
            state_dir,
            engine_labels: Labels::new(),
        })
    }

    /// Labels to report as engine labels (`engine.labels.*` in placement constraints).
    pub fn with_engine_labels(mut self, labels: Labels) -> Self {
        self.engine_labels = labels;
        self
    }
}

#[async_trait]
impl Executor for ProcessExecutor {
    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        let mut d = host_description();
        d.engine.labels = self.engine_labels.clone();
        Ok(d)
    }

    fn controller(
        &self,
        task: &Task,
        _deps: Arc<dyn Dependencies>,
    ) -> Result<Box<dyn TaskController>, ExecError> {
        let id = &task.meta.id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ExecError::Rejected(format!("invalid task id {id:?}")));
        }
        let spec = task.spec.container().ok_or_else(|| {
            ExecError::Rejected("process executor: the task has no container spec".into())
        })?;
        if !spec.secrets.is_empty() || spec.configs.iter().any(|c| c.file.is_some()) {
            return Err(ExecError::Rejected(
                "process executor: tasks with secrets or configs need a container to mount them in; run this node with --executor docker".into(),
            ));
        }
        let argv: Vec<String> = spec.command.iter().chain(&spec.args).cloned().collect();
        Ok(Box::new(ProcessController {
            meta: TaskMeta {
                task_id: id.clone(),
                service_id: task.service_id.clone(),
                node_id: task.node_id.clone(),
            },
            dir: self.state_dir.join(id),
            argv,
            env: spec.env.clone(),
            workdir: spec.dir.clone(),
            user: spec.user.clone(),
            supervisor: Mutex::new(None),
        }))
    }

    async fn adoptable(&self) -> Result<Vec<Adoptable>, ExecError> {
        let mut found = Vec::new();
        let entries = match std::fs::read_dir(&self.state_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => {
                return Err(ExecError::Temporary(format!(
                    "reading {}: {e}",
                    self.state_dir.display()
                )))
            }
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(meta) = read_meta(&dir) else {
                continue;
            };
            if let Some(state) = observe(&dir) {
                found.push(Adoptable {
                    task_id: meta.task_id,
                    service_id: meta.service_id,
                    node_id: meta.node_id,
                    state,
                });
            }
        }
        found.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(found)
    }
}

/// This host as a node description: hostname, OS/architecture, CPUs and memory.
pub fn host_description() -> NodeDescription {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    NodeDescription {
        hostname,
        platform: Platform {
            architecture: std::env::consts::ARCH.to_owned(),
            os: std::env::consts::OS.to_owned(),
        },
        resources: Resources {
            nano_cpus: cpus * 1_000_000_000,
            memory_bytes: memory,
            generic_resources: Vec::new(),
        },
        engine: EngineDescription::default(),
        ..Default::default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TaskMeta {
    task_id: String,
    service_id: String,
    node_id: String,
}

fn read_meta(dir: &Path) -> Option<TaskMeta> {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()
}

/// How a supervised process ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Exit {
    Code(i64),
    /// It exited while no agent was watching.
    Unknown,
}

impl Exit {
    fn read(dir: &Path) -> Option<Exit> {
        let text = std::fs::read_to_string(dir.join("exit")).ok()?;
        Some(text.trim().parse().map_or(Exit::Unknown, Exit::Code))
    }

    fn code(self) -> Option<i64> {
        match self {
            Exit::Code(c) => Some(c),
            Exit::Unknown => None,
        }
    }
}

/// The process a task started: pid and kernel start time (clock ticks since boot).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pid {
    pid: i32,
    start_time: u64,
}

impl Pid {
    fn read(dir: &Path) -> Option<Pid> {
        let text = std::fs::read_to_string(dir.join("pid")).ok()?;
        let mut parts = text.split_whitespace();
        Some(Pid {
            pid: parts.next()?.parse().ok()?,
            start_time: parts.next()?.parse().ok()?,
        })
    }

    /// Whether the process still exists (and is not a zombie) and is the one we started.
    fn alive(self) -> bool {
        proc_stat(self.pid).is_some_and(|(state, start)| state != 'Z' && start == self.start_time)
    }

    /// Signals the process group, if the process is still ours.
    fn signal(self, sig: i32) {
        if self.alive() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-self.pid, sig);
            }
        }
    }
}

/// State and start time of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain anything, including ") ": fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// What the state files say about a task's process (None: no task directory).
fn observe(dir: &Path) -> Option<ObservedState> {
    let _ = read_meta(dir)?;
    let pid = Pid::read(dir);
    let exit = Exit::read(dir);
    let (run_state, pid_now, exit_code) = match (pid, exit) {
        (_, Some(exit)) => (RunState::Exited, 0, exit.code()),
        (Some(p), None) if p.alive() => (RunState::Running, i64::from(p.pid), None),
        (Some(_), None) => (RunState::Exited, 0, None),
        (None, None) => (RunState::Created, 0, None),
    };
    Some(ObservedState {
        container_id: pid.map(|p| p.pid.to_string()).unwrap_or_default(),
        pid: pid_now,
        run_state,
        exit_code,
        health: Health::None,
    })
}

struct ProcessController {
    meta: TaskMeta,
    dir: PathBuf,
    argv: Vec<String>,
    env: Vec<String>,
    workdir: String,
    user: String,
    supervisor: Mutex<Option<Supervisor>>,
}

/// The watcher of one process: its exit, once known, and the task that pumps its output.
struct Supervisor {
    exit: watch::Receiver<Option<Exit>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // A dropped controller stops pumping; the process itself keeps running, and the next
        // controller for the task adopts it.
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl ProcessController {
    fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
            ),
            ("HOME".into(), "/".into()),
        ];
        for kv in &self.env {
            // `KEY` alone would mean "the client's value" in Docker; there is no client here.
            if let Some((k, v)) = kv.split_once('=') {
                env.retain(|(old, _)| old != k);
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        env
    }

    /// The watcher for this task's process: the existing one, or a new one adopting a process
    /// that a previous controller (or agent) started. None when the task never started.
    fn attach(&self) -> Option<watch::Receiver<Option<Exit>>> {
        let mut slot = self.supervisor.lock().unwrap();
        if let Some(s) = slot.as_ref() {
            return Some(s.exit.clone());
        }
        if let Some(exit) = Exit::read(&self.dir) {
            let (_tx, rx) = watch::channel(Some(exit));
            *slot = Some(Supervisor {
                exit: rx.clone(),
                task: None,
            });
            return Some(rx);
        }
        let pid = Pid::read(&self.dir)?;
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(supervise(self.dir.clone(), None, pid, tx));
        *slot = Some(Supervisor {
            exit: rx.clone(),
            task: Some(task),
        });
        Some(rx)
    }

    /// Waits until the process has exited and its output is in the log.
    async fn exited(&self, mut rx: watch::Receiver<Option<Exit>>) -> Exit {
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                // The supervisor was stopped (the task is being removed): the files say the rest.
                return Exit::read(&self.dir).unwrap_or(Exit::Unknown);
            }
        }
    }

    fn resolve_program(&self, path_var: &str) -> Result<PathBuf, ExecError> {
        let program = self.argv.first().ok_or_else(|| {
            ExecError::Rejected(
                "process executor: the task has no command (ContainerSpec Command or Args)".into(),
            )
        })?;
        let executable = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if program.contains('/') {
            let p = Path::new(&self.workdir_or_root()).join(program);
            return if executable(&p) {
                Ok(p)
            } else {
                Err(ExecError::Rejected(format!(
                    "exec: {program:?}: no such executable file"
                )))
            };
        }
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(program))
            .find(|p| executable(p))
            .ok_or_else(|| {
                ExecError::Rejected(format!(
                    "exec: {program:?}: executable file not found in $PATH"
                ))
            })
    }

    fn workdir_or_root(&self) -> &str {
        if self.workdir.is_empty() {
            "/"
        } else {
            &self.workdir
        }
    }

    fn spawn(&self) -> Result<Pid, ExecError> {
        let env = self.environment();
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        let program = self.resolve_program(path_var)?;
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .map_err(|e| ExecError::failed(format!("opening {name}: {e}")))
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg0(&self.argv[0])
            .args(&self.argv[1..])
            .env_clear()
            .envs(env)
            .current_dir(self.workdir_or_root())
            .stdin(Stdio::null())
            .stdout(open("stdout.raw")?)
            .stderr(open("stderr.raw")?)
            .process_group(0);
        if !self.user.is_empty() && is_root() {
            let (uid, gid, home) = resolve_user(&self.user)?;
            cmd.uid(uid).gid(gid).env("HOME", home);
        }
        let child = cmd.spawn().map_err(|e| {
            ExecError::failed(format!("starting process {:?} failed: {e}", self.argv[0]))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| ExecError::failed("the process exited before it could be watched"))?
            as i32;
        let start_time = proc_stat(pid).map_or(0, |(_, s)| s);
        let pid = Pid { pid, start_time };
        write_atomic(
            &self.dir.join("pid"),
            format!("{} {}\n", pid.pid, pid.start_time).as_bytes(),
        )
        .map_err(|e| ExecError::failed(format!("writing pid file: {e}")))?;
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(supervise(self.dir.clone(), Some(child), pid, tx));
        *self.supervisor.lock().unwrap() = Some(Supervisor {
            exit: rx,
            task: Some(task),
        });
        Ok(pid)
    }

    /// Sends `sig` to the process group and waits up to `patience` for the exit.
    async fn signal_and_wait(
        &self,
        rx: &watch::Receiver<Option<Exit>>,
        sig: i32,
        patience: Duration,
    ) -> bool {
        if rx.borrow().is_some() {
            return true;
        }
        if let Some(pid) = Pid::read(&self.dir) {
            pid.signal(sig);
        }
        tokio::time::timeout(patience, self.exited(rx.clone()))
            .await
            .is_ok()
    }

    async fn kill(&self) -> Result<(), ExecError> {
        let Some(rx) = self.attach() else {
            return Ok(());
        };
        if !self.signal_and_wait(&rx, libc::SIGKILL, KILL_WAIT).await {
            return Err(ExecError::Temporary(
                "the process did not exit after SIGKILL".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl TaskController for ProcessController {
    async fn prepare(&self) -> Result<(), ExecError> {
        if read_meta(&self.dir).is_some() {
            return Ok(()); // prepared before (e.g. by an agent that restarted since)
        }
        self.resolve_program(
            &self
                .environment()
                .into_iter()
                .find(|(k, _)| k == "PATH")
                .map_or_else(|| DEFAULT_PATH.to_owned(), |(_, v)| v),
        )?;
        if !self.user.is_empty() && is_root() {
            resolve_user(&self.user)?;
        }
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| {
                write_atomic(
                    &self.dir.join("meta.json"),
                    &serde_json::to_vec(&self.meta).unwrap_or_default(),
                )
            })
            .map_err(|e| ExecError::Temporary(format!("creating {}: {e}", self.dir.display())))
    }

    async fn start(&self) -> Result<(), ExecError> {
        if self.attach().is_some() {
            return Ok(()); // started before: running or already exited
        }
        if read_meta(&self.dir).is_none() {
            self.prepare().await?;
        }
        self.spawn().map(|_| ())
    }

    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        let rx = self
            .attach()
            .ok_or_else(|| ExecError::failed("task: no process was started for this task"))?;
        match self.exited(rx).await {
            Exit::Code(code) => Ok(ExitStatus { code }),
            Exit::Unknown => Err(ExecError::failed(
                "task: the process exited while no agent watched it; exit status unknown",
            )),
        }
    }

    async fn shutdown(&self, stop_signal: Option<&str>, grace: Duration) -> Result<(), ExecError> {
        let Some(rx) = self.attach() else {
            return Ok(());
        };
        let sig = parse_signal(stop_signal.unwrap_or("SIGTERM"))?;
        if self.signal_and_wait(&rx, sig, grace).await {
            return Ok(());
        }
        self.kill().await
    }

    async fn terminate(&self) -> Result<(), ExecError> {
        self.kill().await
    }

    async fn remove(&self) -> Result<(), ExecError> {
        self.kill().await?;
        self.supervisor.lock().unwrap().take();
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecError::Temporary(format!(
                "removing {}: {e}",
                self.dir.display()
            ))),
        }
    }

    async fn inspect(&self) -> Result<Option<ObservedState>, ExecError> {
        Ok(observe(&self.dir))
    }

    fn logs(&self, options: LogOptions) -> LogLines {
        logfile::read(self.dir.join("log"), options, |dir| {
            dir.join("exit").exists() || !dir.exists()
        })
    }
}

/// Whether the agent runs as root: only then can a task run as another user (else `User` is
/// ignored and the task runs as the agent's user).
fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Resolves `user[:group]` (names or numbers) to uid, gid and home directory, as Docker does for
/// a container's `User`: a numeric user unknown to `/etc/passwd` gets gid 0 and home `/`.
fn resolve_user(spec: &str) -> Result<(u32, u32, String), ExecError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| {
            f.len() >= 6
                && (f[0] == user || user.parse::<u32>().is_ok_and(|n| f[2].parse() == Ok(n)))
        });
    let (uid, mut gid, home) = match (&entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_owned(),
        ),
        (None, Ok(uid)) => (uid, 0, "/".to_owned()),
        (None, Err(_)) => {
            return Err(ExecError::Rejected(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(group) = group {
        gid = match group.parse::<u32>() {
            Ok(n) => n,
            Err(_) => std::fs::read_to_string("/etc/group")
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == group)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    ExecError::Rejected(format!(
                        "unable to find group {group}: no matching entries in group file"
                    ))
                })?,
        };
    }
    Ok((uid, gid, home))
}

/// Watches one process: pumps its output into the log every [`POLL`], and when it exits, pumps
/// the rest, records the exit code and announces it. `child` is the process when this agent
/// started it (exit code known); without it the process was adopted and is polled via `/proc`.
async fn supervise(
    dir: PathBuf,
    child: Option<tokio::process::Child>,
    pid: Pid,
    tx: watch::Sender<Option<Exit>>,
) {
    let mut pump = Pump::load(&dir);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let exit = match child {
        Some(mut child) => loop {
            tokio::select! {
                status = child.wait() => {
                    // The task ends with its main process, as a container does: members of its
                    // group left behind go too. (While any member lives, the kernel keeps the
                    // group id from being reused, so this cannot hit a stranger's group.)
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe { libc::kill(-pid.pid, libc::SIGKILL) };
                    break match status {
                        Ok(s) => Exit::Code(s.code().map_or_else(|| 128 + i64::from(s.signal().unwrap_or(0)), i64::from)),
                        Err(_) => Exit::Unknown,
                    };
                }
                _ = tick.tick() => pump.run(&dir, false),
            }
        },
        None => loop {
            tick.tick().await;
            pump.run(&dir, false);
            if !pid.alive() {
                break Exit::Unknown;
            }
        },
    };
    pump.run(&dir, true);
    let text = match exit {
        Exit::Code(c) => c.to_string(),
        Exit::Unknown => "unknown".to_owned(),
    };
    if let Err(e) = write_atomic(&dir.join("exit"), text.as_bytes()) {
        tracing::warn!(dir = %dir.display(), "recording a task's exit failed: {e}");
    }
    let _ = tx.send(Some(exit));
}

/// Turns raw output into log records. Offsets point just past the last complete line written
/// to the log, so an unfinished line is read again by a successor after a restart.
struct Pump {
    offsets: [u64; 2],
    partial: [Vec<u8>; 2],
    punched: [u64; 2],
}

const RAW: [(&str, LogStream); 2] = [
    ("stdout.raw", LogStream::Stdout),
    ("stderr.raw", LogStream::Stderr),
];

impl Pump {
    fn load(dir: &Path) -> Pump {
        let text = std::fs::read_to_string(dir.join("offsets")).unwrap_or_default();
        let mut nums = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
        let offsets = [nums.next().unwrap_or(0), nums.next().unwrap_or(0)];
        Pump {
            offsets,
            partial: [Vec::new(), Vec::new()],
            punched: [0, 0],
        }
    }

    /// One pass over both streams; `last` flushes unfinished lines (the process is gone).
    fn run(&mut self, dir: &Path, last: bool) {
        let now = Timestamp::now();
        let mut records = Vec::new();
        let mut read_to = self.offsets;
        for (i, (name, stream)) in RAW.iter().enumerate() {
            let path = dir.join(name);
            let start = self.offsets[i] + self.partial[i].len() as u64;
            let data = match logfile::read_from(&path, start, MAX_PUMP) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "reading task output failed: {e}");
                    continue;
                }
            };
            read_to[i] = start + data.len() as u64;
            let buf = &mut self.partial[i];
            buf.extend_from_slice(&data);
            let mut consumed = 0;
            while let Some(nl) = buf[consumed..].iter().position(|b| *b == b'\n') {
                let line = &buf[consumed..consumed + nl];
                for (j, chunk) in line.chunks(MAX_RECORD).enumerate() {
                    let end = (j + 1) * MAX_RECORD >= line.len();
                    logfile::encode(&mut records, now, *stream, chunk, end);
                }
                if line.is_empty() {
                    logfile::encode(&mut records, now, *stream, b"", true);
                }
                consumed += nl + 1;
            }
            // An overlong unfinished line goes out in partial records; a short one waits.
            while buf.len() - consumed >= MAX_RECORD || (last && buf.len() > consumed) {
                let n = (buf.len() - consumed).min(MAX_RECORD);
                logfile::encode(
                    &mut records,
                    now,
                    *stream,
                    &buf[consumed..consumed + n],
                    false,
                );
                consumed += n;
            }
            buf.drain(..consumed);
            self.offsets[i] = read_to[i] - buf.len() as u64;
        }
        if records.is_empty() {
            return;
        }
        if let Err(e) = logfile::append(&dir.join("log"), &records) {
            tracing::warn!(dir = %dir.display(), "writing task log failed: {e}");
            return;
        }
        let _ = write_atomic(
            &dir.join("offsets"),
            format!("{} {}\n", self.offsets[0], self.offsets[1]).as_bytes(),
        );
        self.release(dir);
    }

    /// Punches the consumed part of the raw files out, so they take no disk space twice.
    fn release(&mut self, dir: &Path) {
        use std::os::fd::AsRawFd;
        for (i, (name, _)) in RAW.iter().enumerate() {
            let upto = self.offsets[i] & !0xfff;
            if upto < self.punched[i] + 64 * 1024 {
                continue;
            }
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(dir.join(name)) {
                // SAFETY: fallocate(2) on a valid fd; it does not touch our memory.
                let rc = unsafe {
                    libc::fallocate(
                        f.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        0,
                        upto as libc::off_t,
                    )
                };
                if rc == 0 {
                    self.punched[i] = upto;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
