//! One task on the agent (SwarmKit's task manager): drives its controller with [`drive`] from the
//! agent's own observed state towards the latest desired state, persists and reports every new
//! status, and when the task leaves the node's assignments shuts it down and removes it.

use std::sync::Arc;
use std::time::Duration;

use shoal_store::model::{Task, TaskState};
use tokio::sync::watch;

use super::reporter::Reporter;
use super::storage::TaskStore;
use crate::exec::{drive, fatal_status, Dependencies, ExecError, Executor, Step, TaskController};

/// Pause after a temporary error before trying again (SwarmKit: 1 s).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What the worker keeps per task to steer its runner.
pub struct RunnerHandle {
    /// The latest assignment (its desired state; the runner keeps its own status).
    pub assigned: watch::Sender<Arc<Task>>,
    /// Set when the task left the node's assignments.
    pub removed: watch::Sender<bool>,
    /// The controller, for log readers (`None` when the executor refused the task).
    pub controller: Option<Arc<dyn TaskController>>,
    /// The runner.
    pub join: tokio::task::JoinHandle<()>,
}

/// What a runner needs from its agent.
#[derive(Clone)]
pub struct RunnerContext {
    /// Persists the task's record.
    pub db: Arc<dyn TaskStore>,
    /// Sends its statuses.
    pub reporter: Reporter,
    /// Called with the task id once the task is removed from the node.
    pub on_removed: Arc<dyn Fn(&str) + Send + Sync>,
    /// The secrets and configs the node holds, for controllers whose tasks reference some.
    pub deps: Arc<dyn Dependencies>,
}

/// Starts a runner for `task`, whose `status` is the observed state to continue from.
pub fn spawn(task: Task, executor: &dyn Executor, ctx: RunnerContext) -> RunnerHandle {
    let controller: Result<Arc<dyn TaskController>, ExecError> =
        executor.controller(&task, ctx.deps.clone()).map(Arc::from);
    let (assigned, assigned_rx) = watch::channel(Arc::new(task.clone()));
    let (removed, removed_rx) = watch::channel(false);
    let ctl = controller.as_ref().ok().cloned();
    let join = tokio::spawn(run(task, controller, assigned_rx, removed_rx, ctx));
    RunnerHandle {
        assigned,
        removed,
        controller: ctl,
        join,
    }
}

/// Takes what the manager decides (desired state, never lowered) from a new assignment, and
/// keeps the agent's own observed status.
fn merge(current: &mut Task, assigned: &Task) {
    if assigned.meta.version < current.meta.version {
        return;
    }
    let status = std::mem::take(&mut current.status);
    let desired = current.desired_state.max(assigned.desired_state);
    *current = assigned.clone();
    current.status = status;
    current.desired_state = desired;
}

async fn run(
    mut task: Task,
    controller: Result<Arc<dyn TaskController>, ExecError>,
    mut assigned: watch::Receiver<Arc<Task>>,
    mut removed: watch::Receiver<bool>,
    ctx: RunnerContext,
) {
    let id = task.meta.id.clone();
    let started = std::time::Instant::now();
    let save = |t: &Task| {
        if let Err(e) = ctx.db.save(t) {
            tracing::warn!(task = %id, "could not record the task locally: {e}");
        }
    };
    save(&task);
    ctx.reporter.report(&id, task.status.clone());
    let ctl = match controller {
        Ok(c) => c,
        Err(e) => {
            // The executor cannot run this task at all: it is rejected, and only waits to be
            // removed.
            if task.status.state < TaskState::Complete {
                task.status = fatal_status(&task.status, &e);
                save(&task);
                ctx.reporter.report(&id, task.status.clone());
            }
            let _ = removed.wait_for(|r| *r).await;
            finish(&id, &ctx);
            return;
        }
    };
    loop {
        let removing = *removed.borrow_and_update();
        let mut target = task.clone();
        if removing {
            target.desired_state = target.desired_state.max(TaskState::Remove);
        }
        let step = tokio::select! {
            step = drive(&target, ctl.as_ref()) => step,
            r = assigned.changed() => {
                if r.is_ok() {
                    merge(&mut task, &assigned.borrow_and_update());
                    save(&task);
                }
                continue;
            }
            r = removed.changed(), if !removing => {
                if r.is_err() { return }
                continue;
            }
        };
        match step {
            Step::Changed(status) => {
                tracing::debug!(task = %id, state = %status.state, after_ms = started.elapsed().as_millis() as u64, "task state changed");
                task.status = status;
                save(&task);
                ctx.reporter.report(&id, task.status.clone());
            }
            Step::Retry(status) => {
                if status != task.status {
                    task.status = status;
                    ctx.reporter.report(&id, task.status.clone());
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                    _ = assigned.changed() => merge(&mut task, &assigned.borrow_and_update()),
                    _ = removed.changed(), if !removing => {}
                }
            }
            Step::Noop if removing => {
                if let Err(e) = ctl.remove().await {
                    tracing::warn!(task = %id, "removing the task's workload: {e}; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
                finish(&id, &ctx);
                return;
            }
            Step::Noop => {
                tokio::select! {
                    r = assigned.changed() => {
                        if r.is_err() { return }
                        merge(&mut task, &assigned.borrow_and_update());
                        save(&task);
                    }
                    r = removed.changed() => if r.is_err() { return },
                }
            }
        }
    }
}

fn finish(id: &str, ctx: &RunnerContext) {
    if let Err(e) = ctx.db.remove(id) {
        tracing::warn!(task = %id, "could not delete the task's record: {e}");
    }
    ctx.reporter.forget(id);
    (ctx.on_removed)(id);
}

#[cfg(test)]
mod tests {
    use shoal_store::model::{Meta, TaskStatus, Timestamp, Version};

    use super::*;

    #[test]
    fn a_new_assignment_never_lowers_desired_state_nor_replaces_observed_state() {
        let mut current = Task {
            meta: Meta::with_id("t"),
            status: TaskStatus::new(TaskState::Running, Timestamp::now(), "started"),
            desired_state: TaskState::Shutdown,
            ..Default::default()
        };
        current.meta.version = Version::at(5);
        let mut assigned = current.clone();
        assigned.status = TaskStatus::new(TaskState::Assigned, Timestamp::now(), "assigned");
        assigned.desired_state = TaskState::Running;
        assigned.meta.version = Version::at(6);
        merge(&mut current, &assigned);
        assert_eq!(current.desired_state, TaskState::Shutdown);
        assert_eq!(current.status.state, TaskState::Running);
        assert_eq!(current.meta.version, Version::at(6));
        // An older copy is ignored altogether.
        let mut old = assigned.clone();
        old.meta.version = Version::at(1);
        old.desired_state = TaskState::Remove;
        merge(&mut current, &old);
        assert_eq!(current.desired_state, TaskState::Shutdown);
    }
}
