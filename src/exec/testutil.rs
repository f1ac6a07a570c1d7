//! Helpers for executor tests: task builders, driving to a state, polling with deadlines.

use std::future::Future;
use std::time::Duration;

use futures::TryStreamExt;
use shoal_store::model::{
    new_id, ContainerSpec, Meta, Task, TaskSpec, TaskState, TaskStatus, Timestamp,
};

use super::{drive, LogLine, LogOptions, LogStream, Step, TaskController};

/// A task (fresh random id, slot 1, assigned, desired RUNNING) running `spec`.
pub(crate) fn task_with(service: &str, spec: ContainerSpec) -> Task {
    let id = new_id();
    Task {
        meta: Meta::with_id(id.clone()),
        name: format!("{service}.1.{id}"),
        service_id: format!("svc{}", &id[..10]),
        node_id: "node1".into(),
        slot: 1,
        spec: TaskSpec {
            container_spec: Some(spec),
            ..Default::default()
        },
        status: TaskStatus::new(TaskState::Assigned, Timestamp::now(), "assigned"),
        desired_state: TaskState::Running,
        ..Default::default()
    }
}

/// A container spec running `args` (as Args, so an image's entrypoint would stay).
pub(crate) fn command(image: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        image: image.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Drives `task` (updating its status) until it reaches `target` or a later state, or nothing is
/// left to do; returns the states passed through. Retries temporary errors a bounded number of
/// times. Panics after `deadline`.
pub(crate) async fn drive_until(
    task: &mut Task,
    ctl: &dyn TaskController,
    target: TaskState,
    deadline: Duration,
) -> Vec<TaskState> {
    let mut seen = Vec::new();
    let work = async {
        let mut retries = 0;
        while task.status.state < target {
            match drive(task, ctl).await {
                Step::Changed(status) => {
                    seen.push(status.state);
                    task.status = status;
                }
                Step::Noop => break,
                Step::Retry(status) => {
                    retries += 1;
                    assert!(retries < 20, "too many retries: {}", status.err);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    };
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or_else(|_| panic!("task stuck at {} (wanted {target})", task.status.state));
    seen
}

/// Polls `check` until it returns `Some`, panicking with `what` after `deadline`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// All current log lines of a controller (no follow).
pub(crate) async fn all_logs(ctl: &dyn TaskController) -> Vec<LogLine> {
    ctl.logs(LogOptions::default())
        .try_collect()
        .await
        .expect("logs")
}

/// Whether `lines` has a line on `stream` equal to `text` plus a newline.
pub(crate) fn has_line(lines: &[LogLine], stream: LogStream, text: &str) -> bool {
    lines
        .iter()
        .any(|l| l.stream == stream && l.line == format!("{text}\n").as_bytes())
}

/// The label every container a test creates carries, so a guard can remove them.
pub(crate) const RUN_LABEL: &str = "shoal.test.run";

/// Removes every container labelled with this guard's run id when dropped (also on panic).
pub(crate) struct ContainerCleanup {
    /// The run id (the label's value).
    pub(crate) run: String,
}

impl ContainerCleanup {
    pub(crate) fn new() -> Self {
        ContainerCleanup { run: new_id() }
    }

    /// `shoal.test.run=<run id>`, for `docker run --label`.
    pub(crate) fn label(&self) -> String {
        format!("{RUN_LABEL}={}", self.run)
    }
}

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label());
        let Ok(out) = std::process::Command::new("docker")
            .args([
                "-H",
                "unix:///var/run/docker.sock",
                "ps",
                "-aq",
                "--filter",
                &filter,
            ])
            .output()
        else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["-H", "unix:///var/run/docker.sock", "rm", "-f", "-v"])
                .args(&ids)
                .output();
        }
    }
}
