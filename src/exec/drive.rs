//! The agent half of the task state machine: SwarmKit's `exec.Do` (reference/swarmkit.md §2.4).
//!
//! [`drive`] looks at a task's observed and desired state, does at most one controller operation
//! and says what the new observed status is. The agent calls it in a loop, reporting every
//! [`Step::Changed`], sleeping briefly after a [`Step::Retry`], and waiting for a new desired state
//! after a [`Step::Noop`]. The rules:
//! - desired >= SHUTDOWN: shut the task down (unless it already finished);
//! - observed > desired: nothing to do (never move backwards, never run past desired except below);
//! - PREPARING, STARTING and RUNNING proceed whatever the desired state (the operation is already
//!   under way: prepare -> READY, start -> RUNNING, wait -> COMPLETE);
//! - otherwise advance one step while observed < desired (so desired READY holds a task at READY);
//! - a fatal error makes the task REJECTED before STARTING and FAILED from STARTING on, keeping the
//!   last message (Docker shows `preparing` + the error for a rejected task); a temporary one keeps
//!   the state and sets `err`.

use std::time::Duration;

use shoal_store::model::{Task, TaskState, TaskStatus, Timestamp};

use super::{ExecError, TaskController};

/// What one call of [`drive`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The task reached a new observed state: report this status.
    Changed(TaskStatus),
    /// Nothing to do until the desired state changes (held at READY, already past desired, or
    /// finished).
    Noop,
    /// A temporary error: the same state with `err` set (report it if you like) and the operation
    /// is to be retried after a short pause (SwarmKit waits 1 s).
    Retry(TaskStatus),
}

/// The stop signal (None: the workload's default) and grace period of a task, from its spec
/// (default grace 10 s, as Docker).
pub fn shutdown_params(task: &Task) -> (Option<String>, Duration) {
    match task.spec.container() {
        Some(c) => {
            let signal = (!c.stop_signal.is_empty()).then(|| c.stop_signal.clone());
            (signal, c.stop_grace_period_or_default())
        }
        None => (None, Duration::from_secs(10)),
    }
}

/// Does one step of the task state machine for `task` (its `status` is the current observed
/// state, `desired_state` the manager's wish) with its controller, and returns what happened.
/// Cancel-safe: dropping the future (e.g. a pending `wait` when the desired state changed) leaves
/// the task where it was, and the next call picks up from the same observed state.
pub async fn drive(task: &Task, ctl: &dyn TaskController) -> Step {
    let current = &task.status;
    let desired = task.desired_state;

    if desired >= TaskState::Shutdown {
        if current.state >= TaskState::Complete {
            return Step::Noop;
        }
        let (signal, grace) = shutdown_params(task);
        return match ctl.shutdown(signal.as_deref(), grace).await {
            Ok(()) => transition(ctl, current, TaskState::Shutdown, "shutdown").await,
            Err(err) => fail(ctl, current, err).await,
        };
    }

    if current.state > desired {
        return Step::Noop;
    }

    // Operations that were already under way finish even past the desired state.
    match current.state {
        TaskState::Preparing => {
            return match ctl.prepare().await {
                Ok(()) => transition(ctl, current, TaskState::Ready, "prepared").await,
                Err(err) => fail(ctl, current, err).await,
            }
        }
        TaskState::Starting => {
            return match ctl.start().await {
                Ok(()) => transition(ctl, current, TaskState::Running, "started").await,
                Err(err) => fail(ctl, current, err).await,
            }
        }
        TaskState::Running => {
            return match ctl.wait().await {
                Ok(exit) if exit.code == 0 => {
                    transition(ctl, current, TaskState::Complete, "finished").await
                }
                Ok(exit) => fail(ctl, current, ExecError::non_zero_exit(exit.code)).await,
                Err(err) => fail(ctl, current, err).await,
            }
        }
        _ => {}
    }

    // The rest are pauses: move on only while the desired state is further.
    if current.state >= desired {
        return Step::Noop;
    }
    match current.state {
        TaskState::New | TaskState::Allocated | TaskState::Pending | TaskState::Assigned => {
            transition(ctl, current, TaskState::Accepted, "accepted").await
        }
        TaskState::Accepted => transition(ctl, current, TaskState::Preparing, "preparing").await,
        TaskState::Ready => transition(ctl, current, TaskState::Starting, "starting").await,
        _ => Step::Noop,
    }
}

/// The status to report when a task fails with `err` while in `current` (e.g. when the executor
/// could not even create its controller): REJECTED before STARTING, FAILED from then on, the
/// message kept and `err` set. A temporary error keeps the state.
pub fn fatal_status(current: &TaskStatus, err: &ExecError) -> TaskStatus {
    let mut status = current.clone();
    status.timestamp = Timestamp::now();
    status.err = err.to_string();
    if !err.is_temporary() && current.state < TaskState::Complete {
        status.state = if current.state < TaskState::Starting {
            TaskState::Rejected
        } else {
            TaskState::Failed
        };
    }
    if let Some(code) = err.exit_code() {
        status
            .container_status
            .get_or_insert_with(Default::default)
            .exit_code = code;
    }
    status
}

async fn transition(
    ctl: &dyn TaskController,
    current: &TaskStatus,
    next: TaskState,
    message: &str,
) -> Step {
    if next <= current.state {
        // Unreachable by construction; refuse rather than report time travel.
        debug_assert!(false, "backwards transition {} -> {next}", current.state);
        return Step::Noop;
    }
    let mut status = current.clone();
    status.state = next;
    status.message = message.to_owned();
    status.err.clear();
    status.timestamp = Timestamp::now();
    // Before PREPARING is reported the workload cannot exist (prepare creates it, and only
    // after that report), so there is nothing to ask the engine about.
    if next > TaskState::Preparing {
        refresh_container_status(ctl, &mut status).await;
    }
    Step::Changed(status)
}

async fn fail(ctl: &dyn TaskController, current: &TaskStatus, err: ExecError) -> Step {
    let mut status = fatal_status(current, &err);
    refresh_container_status(ctl, &mut status).await;
    // The error's exit code wins over a re-inspection (an adopted process may not know it).
    if let (Some(code), Some(cs)) = (err.exit_code(), status.container_status.as_mut()) {
        cs.exit_code = code;
    }
    if err.is_temporary() {
        Step::Retry(status)
    } else {
        Step::Changed(status)
    }
}

/// Puts the workload's id, pid and exit code into the status, as SwarmKit does after every step.
/// An error or a missing workload keeps what the status had.
async fn refresh_container_status(ctl: &dyn TaskController, status: &mut TaskStatus) {
    if let Ok(Some(observed)) = ctl.inspect().await {
        status.container_status = Some(observed.container_status());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use shoal_store::model::{ContainerSpec, Meta, TaskSpec};

    use super::*;
    use crate::exec::{
        ExitStatus, Health, LogLines, LogOptions, ObservedState, RunState, TaskController,
    };

    /// A controller that records calls and answers with scripted results.
    #[derive(Default)]
    struct Scripted {
        calls: Mutex<Vec<String>>,
        prepare: Option<ExecError>,
        start: Option<ExecError>,
        wait: Option<Result<ExitStatus, ExecError>>,
        shutdown: Option<ExecError>,
        exists: bool,
    }

    impl Scripted {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn record(&self, call: impl Into<String>) {
            self.calls.lock().unwrap().push(call.into());
        }
    }

    #[async_trait]
    impl TaskController for Scripted {
        async fn prepare(&self) -> Result<(), ExecError> {
            self.record("prepare");
            self.prepare.clone().map_or(Ok(()), Err)
        }
        async fn start(&self) -> Result<(), ExecError> {
            self.record("start");
            self.start.clone().map_or(Ok(()), Err)
        }
        async fn wait(&self) -> Result<ExitStatus, ExecError> {
            self.record("wait");
            self.wait.clone().unwrap_or(Ok(ExitStatus { code: 0 }))
        }
        async fn shutdown(&self, signal: Option<&str>, grace: Duration) -> Result<(), ExecError> {
            self.record(format!("shutdown {signal:?} {}", grace.as_secs()));
            self.shutdown.clone().map_or(Ok(()), Err)
        }
        async fn terminate(&self) -> Result<(), ExecError> {
            self.record("terminate");
            Ok(())
        }
        async fn remove(&self) -> Result<(), ExecError> {
            self.record("remove");
            Ok(())
        }
        async fn inspect(&self) -> Result<Option<ObservedState>, ExecError> {
            Ok(self.exists.then(|| ObservedState {
                container_id: "c1".into(),
                pid: 42,
                run_state: RunState::Running,
                exit_code: None,
                health: Health::None,
            }))
        }
        fn logs(&self, _: LogOptions) -> LogLines {
            Box::pin(futures::stream::empty())
        }
    }

    fn task(state: TaskState, desired: TaskState) -> Task {
        Task {
            meta: Meta::with_id("t1"),
            spec: TaskSpec {
                container_spec: Some(ContainerSpec {
                    image: "img".into(),
                    stop_signal: "SIGINT".into(),
                    stop_grace_period: Some(3_000_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            },
            status: TaskStatus::new(state, Timestamp::now(), "assigned"),
            desired_state: desired,
            ..Default::default()
        }
    }

    /// Drives until a non-`Changed` step; returns the states and messages passed through.
    async fn run(task: &mut Task, ctl: &Scripted) -> (Vec<(TaskState, String)>, Step) {
        let mut seen = Vec::new();
        loop {
            match drive(task, ctl).await {
                Step::Changed(status) => {
                    assert!(status.state > task.status.state, "moved backwards");
                    seen.push((status.state, status.message.clone()));
                    task.status = status;
                }
                other => return (seen, other),
            }
        }
    }

    #[tokio::test]
    async fn runs_a_task_to_completion_with_docker_messages() {
        let ctl = Scripted::default();
        let mut t = task(TaskState::Assigned, TaskState::Running);
        let (seen, last) = run(&mut t, &ctl).await;
        assert_eq!(
            seen,
            [
                (TaskState::Accepted, "accepted".to_string()),
                (TaskState::Preparing, "preparing".into()),
                (TaskState::Ready, "prepared".into()),
                (TaskState::Starting, "starting".into()),
                (TaskState::Running, "started".into()),
                (TaskState::Complete, "finished".into()),
            ]
        );
        assert_eq!(last, Step::Noop);
        assert_eq!(ctl.calls(), ["prepare", "start", "wait"]);
    }

    #[tokio::test]
    async fn desired_ready_holds_the_task_at_ready() {
        let ctl = Scripted::default();
        let mut t = task(TaskState::New, TaskState::Ready);
        let (seen, last) = run(&mut t, &ctl).await;
        assert_eq!(seen.last().unwrap().0, TaskState::Ready);
        assert_eq!(last, Step::Noop);
        assert_eq!(ctl.calls(), ["prepare"]);
        // Promoting the desired state lets it start.
        t.desired_state = TaskState::Running;
        let Step::Changed(status) = drive(&t, &ctl).await else {
            panic!("expected a step")
        };
        assert_eq!(status.state, TaskState::Starting);
    }

    #[tokio::test]
    async fn desired_shutdown_stops_with_the_specs_signal_and_grace() {
        let ctl = Scripted {
            exists: true,
            ..Default::default()
        };
        let mut t = task(TaskState::Running, TaskState::Shutdown);
        let Step::Changed(status) = drive(&t, &ctl).await else {
            panic!("expected a step")
        };
        assert_eq!(status.state, TaskState::Shutdown);
        assert_eq!(status.message, "shutdown");
        assert_eq!(status.container_status.as_ref().unwrap().container_id, "c1");
        assert_eq!(ctl.calls(), ["shutdown Some(\"SIGINT\") 3"]);
        t.status = status;
        assert_eq!(drive(&t, &ctl).await, Step::Noop);
        t.desired_state = TaskState::Remove;
        assert_eq!(drive(&t, &ctl).await, Step::Noop);

        // A task that never started is shut down too, without preparing it.
        let ctl = Scripted::default();
        let t = task(TaskState::New, TaskState::Remove);
        let Step::Changed(status) = drive(&t, &ctl).await else {
            panic!("expected a step")
        };
        assert_eq!(status.state, TaskState::Shutdown);
        assert_eq!(ctl.calls().len(), 1);
        assert!(ctl.calls()[0].starts_with("shutdown"));
    }

    #[tokio::test]
    async fn never_moves_backwards_and_finished_tasks_stay_put() {
        for current in TaskState::ALL {
            for desired in TaskState::ALL {
                let ctl = Scripted::default();
                let t = task(current, desired);
                match drive(&t, &ctl).await {
                    Step::Changed(s) => assert!(
                        s.state > current,
                        "{current} (desired {desired}) moved to {}",
                        s.state
                    ),
                    Step::Retry(s) => assert_eq!(s.state, current),
                    Step::Noop => {}
                }
                if current.is_terminal() {
                    assert_eq!(drive(&t, &ctl).await, Step::Noop, "{current}/{desired}");
                    assert!(ctl.calls().is_empty(), "{current}/{desired}");
                }
            }
        }
        // Past desired (but not under way): noop.
        let ctl = Scripted::default();
        assert_eq!(
            drive(&task(TaskState::Ready, TaskState::Accepted), &ctl).await,
            Step::Noop
        );
        assert!(ctl.calls().is_empty());
    }

    #[tokio::test]
    async fn fatal_errors_reject_before_start_and_fail_after() {
        let ctl = Scripted {
            prepare: Some(ExecError::Rejected(
                "No such image: shoal-test/nope:1".into(),
            )),
            ..Default::default()
        };
        let mut t = task(TaskState::Assigned, TaskState::Running);
        let (seen, _) = run(&mut t, &ctl).await;
        assert_eq!(seen.last().unwrap().0, TaskState::Rejected);
        assert_eq!(t.status.message, "preparing");
        assert_eq!(t.status.err, "No such image: shoal-test/nope:1");

        let ctl = Scripted {
            start: Some(ExecError::failed("cannot start")),
            ..Default::default()
        };
        let mut t = task(TaskState::Ready, TaskState::Running);
        let (seen, _) = run(&mut t, &ctl).await;
        assert_eq!(seen.last().unwrap().0, TaskState::Failed);
        assert_eq!(t.status.err, "cannot start");
        assert_eq!(t.status.message, "starting");

        let ctl = Scripted {
            wait: Some(Ok(ExitStatus { code: 3 })),
            exists: true,
            ..Default::default()
        };
        let mut t = task(TaskState::Running, TaskState::Running);
        let Step::Changed(status) = drive(&t, &ctl).await else {
            panic!("expected a step")
        };
        assert_eq!(status.state, TaskState::Failed);
        assert_eq!(status.err, "task: non-zero exit (3)");
        assert_eq!(status.container_status.as_ref().unwrap().exit_code, 3);
        t.status = status;
        assert_eq!(drive(&t, &ctl).await, Step::Noop);

        // A controller that could not be created rejects the task.
        let st = fatal_status(
            &TaskStatus::new(TaskState::Assigned, Timestamp::now(), "assigned"),
            &ExecError::Rejected("no container spec".into()),
        );
        assert_eq!(st.state, TaskState::Rejected);
        assert_eq!(st.err, "no container spec");
    }

    #[tokio::test]
    async fn temporary_errors_retry_in_place() {
        let ctl = Scripted {
            prepare: Some(ExecError::Temporary("engine unreachable".into())),
            ..Default::default()
        };
        let t = task(TaskState::Preparing, TaskState::Running);
        let Step::Retry(status) = drive(&t, &ctl).await else {
            panic!("expected a retry")
        };
        assert_eq!(status.state, TaskState::Preparing);
        assert_eq!(status.err, "engine unreachable");
    }
}
