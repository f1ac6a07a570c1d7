//! The sim executor: runs nothing. Prepare and start succeed (after optional delays), `wait`
//! blocks until the task is shut down (or a configured run time passes). Thousands of simulated
//! agents share one process in scale tests, so a controller is one small allocation: an id, a
//! state byte and a wake-up handle.
//!
//! A task can ask for its own end through its environment, so tests can make a service fail
//! without an engine: [`SIM_RUN_MS_ENV`] overrides how long it runs and [`SIM_EXIT_CODE_ENV`]
//! the code it then exits with (a non-zero code makes it a failed task, as a container's would).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shoal_store::model::{NodeDescription, Task};
use tokio::sync::Notify;

use super::{
    Adoptable, Dependencies, ExecError, Executor, ExitStatus, Health, LogLines, LogOptions,
    ObservedState, RunState, TaskController,
};

/// Timings of simulated tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimConfig {
    /// How long `prepare` takes (an image check and a container create, say).
    pub prepare_delay: Duration,
    /// How long `start` takes.
    pub start_delay: Duration,
    /// Tasks exit 0 after running this long (jobs); `None`: they run until shut down.
    pub run_for: Option<Duration>,
}

/// A task's environment variable: it exits after running this many milliseconds.
pub const SIM_RUN_MS_ENV: &str = "SHOAL_SIM_RUN_MS";
/// A task's environment variable: the code it exits with when its run time is over.
pub const SIM_EXIT_CODE_ENV: &str = "SHOAL_SIM_EXIT_CODE";

/// How `task` ends: its run time and exit code, from its environment where it sets them, else
/// from `config` (exit code 0). A value that does not parse is refused, so a test that meant to
/// make tasks fail does not silently run them forever.
fn ending(task: &Task, config: &SimConfig) -> Result<(Option<Duration>, i64), ExecError> {
    let env = task
        .spec
        .container()
        .map(|c| c.env.as_slice())
        .unwrap_or_default();
    let var = |name: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
    };
    let bad = |name: &str, value: &str| {
        ExecError::Rejected(format!(
            "sim executor: {name}={value:?} is not a number; set it to an integer or leave it out"
        ))
    };
    let run_for = match var(SIM_RUN_MS_ENV) {
        Some(v) => Some(Duration::from_millis(
            v.parse().map_err(|_| bad(SIM_RUN_MS_ENV, v))?,
        )),
        None => config.run_for,
    };
    let code = match var(SIM_EXIT_CODE_ENV) {
        Some(v) => v.parse().map_err(|_| bad(SIM_EXIT_CODE_ENV, v))?,
        None => 0,
    };
    Ok((run_for, code))
}

/// An executor whose tasks do nothing.
pub struct SimExecutor {
    description: NodeDescription,
    config: SimConfig,
}

impl SimExecutor {
    /// A simulated node that describes itself as `description`.
    pub fn new(description: NodeDescription, config: SimConfig) -> Self {
        SimExecutor {
            description,
            config,
        }
    }
}

#[async_trait]
impl Executor for SimExecutor {
    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        Ok(self.description.clone())
    }

    fn controller(
        &self,
        task: &Task,
        _deps: Arc<dyn Dependencies>,
    ) -> Result<Box<dyn TaskController>, ExecError> {
        // Simulated tasks run nothing, so their secrets and configs go nowhere.
        let (run_for, exit_code) = ending(task, &self.config)?;
        Ok(Box::new(SimController {
            id: task.meta.id.clone().into_boxed_str(),
            config: SimConfig {
                run_for,
                ..self.config
            },
            exit_code,
            state: AtomicU8::new(GONE),
            changed: Notify::new(),
        }))
    }

    async fn adoptable(&self) -> Result<Vec<Adoptable>, ExecError> {
        // Nothing outlives the process that simulates it.
        Ok(Vec::new())
    }
}

const GONE: u8 = 0;
const CREATED: u8 = 1;
const RUNNING: u8 = 2;
const EXITED: u8 = 3;
/// Exited because its run time was over, with the task's exit code.
const TIMED_OUT: u8 = 4;

struct SimController {
    id: Box<str>,
    /// The executor's timings, with this task's own run time.
    config: SimConfig,
    /// The code it exits with once its run time is over (a shutdown ends it with 0).
    exit_code: i64,
    state: AtomicU8,
    changed: Notify,
}

impl SimController {
    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn get(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// The exit code as things stand: the task's own once its run time ended, else 0.
    fn code(&self) -> i64 {
        if self.get() == TIMED_OUT {
            self.exit_code
        } else {
            0
        }
    }

    /// Waits until the task is no longer running.
    async fn stopped(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Register before checking, so a stop between the check and the await is not missed.
            notified.as_mut().enable();
            if self.get() != RUNNING {
                return;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl TaskController for SimController {
    async fn prepare(&self) -> Result<(), ExecError> {
        if self.get() == GONE {
            if !self.config.prepare_delay.is_zero() {
                tokio::time::sleep(self.config.prepare_delay).await;
            }
            let _ = self
                .state
                .compare_exchange(GONE, CREATED, Ordering::AcqRel, Ordering::Acquire);
        }
        Ok(())
    }

    async fn start(&self) -> Result<(), ExecError> {
        if self.get() <= CREATED {
            if !self.config.start_delay.is_zero() {
                tokio::time::sleep(self.config.start_delay).await;
            }
            if self.get() <= CREATED {
                self.set(RUNNING);
            }
        }
        Ok(())
    }

    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        match self.config.run_for {
            Some(run_for) => {
                if tokio::time::timeout(run_for, self.stopped()).await.is_err() {
                    self.set(TIMED_OUT);
                }
            }
            None => self.stopped().await,
        }
        Ok(ExitStatus { code: self.code() })
    }

    async fn shutdown(&self, _: Option<&str>, _: Duration) -> Result<(), ExecError> {
        // A task whose run time is over keeps the code it exited with.
        if !matches!(self.get(), GONE | TIMED_OUT) {
            self.set(EXITED);
        }
        Ok(())
    }

    async fn terminate(&self) -> Result<(), ExecError> {
        self.shutdown(None, Duration::ZERO).await
    }

    async fn remove(&self) -> Result<(), ExecError> {
        self.set(GONE);
        Ok(())
    }

    async fn inspect(&self) -> Result<Option<ObservedState>, ExecError> {
        let run_state = match self.get() {
            GONE => return Ok(None),
            CREATED => RunState::Created,
            RUNNING => RunState::Running,
            _ => RunState::Exited,
        };
        Ok(Some(ObservedState {
            container_id: self.id.to_string(),
            pid: 0,
            run_state,
            exit_code: (run_state == RunState::Exited).then(|| self.code()),
            health: Health::None,
        }))
    }

    fn logs(&self, _: LogOptions) -> LogLines {
        Box::pin(futures::stream::empty())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shoal_store::model::{ContainerSpec, TaskState};

    use super::*;
    use crate::exec::testutil::{command, drive_until, task_with};
    use crate::exec::{drive, Step};

    const DEADLINE: Duration = Duration::from_secs(10);

    fn exec(config: SimConfig) -> SimExecutor {
        let description = NodeDescription {
            hostname: "sim-1".into(),
            ..Default::default()
        };
        SimExecutor::new(description, config)
    }

    #[tokio::test]
    async fn reaches_running_and_shutdown_ends_wait() {
        let exec = exec(SimConfig {
            prepare_delay: Duration::from_millis(5),
            start_delay: Duration::from_millis(5),
            run_for: None,
        });
        assert_eq!(exec.describe().await.unwrap().hostname, "sim-1");
        let mut task = task_with("sim", command("img", &["x"]));
        let ctl: Arc<dyn TaskController> = exec
            .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
            .unwrap()
            .into();
        assert!(ctl.inspect().await.unwrap().is_none());
        let seen = drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
        assert_eq!(
            seen,
            [
                TaskState::Accepted,
                TaskState::Preparing,
                TaskState::Ready,
                TaskState::Starting,
                TaskState::Running
            ]
        );
        assert!(ctl.inspect().await.unwrap().unwrap().running());

        // The agent waits while RUNNING; the desired state changes; the wait is abandoned and
        // the next step shuts the task down, which also ends any other wait.
        let waiter = tokio::spawn({
            let ctl = ctl.clone();
            async move { ctl.wait().await }
        });
        let pending = {
            let t = task.clone();
            let ctl = ctl.clone();
            tokio::spawn(async move { drive(&t, ctl.as_ref()).await })
        };
        task.desired_state = TaskState::Shutdown;
        let Step::Changed(status) = drive(&task, ctl.as_ref()).await else {
            panic!("expected shutdown")
        };
        assert_eq!(status.state, TaskState::Shutdown);
        let waited = tokio::time::timeout(DEADLINE, waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(waited.unwrap(), ExitStatus { code: 0 });
        // The drive that was waiting sees the exit too (an agent would have dropped it).
        let _ = tokio::time::timeout(DEADLINE, pending)
            .await
            .unwrap()
            .unwrap();
        ctl.remove().await.unwrap();
        assert!(ctl.inspect().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn jobs_complete_after_their_run_time() {
        let exec = exec(SimConfig {
            run_for: Some(Duration::from_millis(20)),
            ..Default::default()
        });
        let mut task = task_with("sim", ContainerSpec::default());
        let ctl = exec
            .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
            .unwrap();
        drive_until(&mut task, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
        assert_eq!(task.status.state, TaskState::Complete);
        assert_eq!(task.status.message, "finished");
    }

    #[tokio::test]
    async fn a_task_can_ask_to_fail_with_its_own_code() {
        let exec = exec(SimConfig::default());
        let spec = ContainerSpec {
            env: vec![
                format!("{SIM_RUN_MS_ENV}=20"),
                format!("{SIM_EXIT_CODE_ENV}=3"),
            ],
            ..Default::default()
        };
        let mut task = task_with("sim", spec);
        let ctl = exec
            .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
            .unwrap();
        drive_until(&mut task, ctl.as_ref(), TaskState::Failed, DEADLINE).await;
        assert_eq!(task.status.state, TaskState::Failed);
        assert_eq!(task.status.container_status.as_ref().unwrap().exit_code, 3);
        // Shutting the failed task down keeps its code.
        ctl.shutdown(None, Duration::ZERO).await.unwrap();
        assert_eq!(ctl.inspect().await.unwrap().unwrap().exit_code, Some(3));

        // A value that is not a number is refused, not ignored.
        let spec = ContainerSpec {
            env: vec![format!("{SIM_EXIT_CODE_ENV}=one")],
            ..Default::default()
        };
        let err = exec
            .controller(
                &task_with("sim", spec),
                std::sync::Arc::new(crate::exec::NoDependencies),
            )
            .err()
            .expect("refused");
        assert!(err.to_string().contains("SHOAL_SIM_EXIT_CODE"), "{err}");
    }

    #[test]
    fn a_controller_is_small() {
        // One box per task: the id, the timings, a state byte and a Notify.
        assert!(std::mem::size_of::<SimController>() <= 128);
    }
}
