//! Leader-only operation: the reconcilers run while this manager leads the store, start each
//! term with a full pass over everything earlier leaders committed, stop when leadership is
//! lost, and fence every write to their term.

use std::time::Duration;

use shoal_store::{Leadership, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::allocator::Allocator;
use crate::config::ControllersConfig;
use crate::enforcer::ConstraintEnforcer;
use crate::gitops::GitOpsController;
use crate::health::HealthController;
use crate::orchestrator::{
    GlobalOrchestrator, JobsOrchestrator, ReplicatedOrchestrator, TaskTimeline,
};
use crate::reaper::TaskReaper;
use crate::role_manager::RoleManager;
use crate::runtime::{Backoff, ControllerConfig, QueueConfig, Runtime};
use crate::scheduler::Scheduler;
use crate::stack::StackController;

/// Whether this manager's reconcilers are running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllersState {
    /// Not leading (or catching up after winning an election).
    Standby,
    /// Leading in `term`: the reconcilers run.
    Leading {
        /// The leader term their writes are fenced to.
        term: u64,
    },
    /// Shut down.
    Stopped,
}

/// Entry point: the controllers of one manager.
pub struct Controllers;

impl Controllers {
    /// Starts following `store.leadership()`: whenever this member becomes leader, the enabled
    /// reconcilers start (after a linearizable read, with a full pass) and run until leadership
    /// is lost. Must be called inside a Tokio runtime.
    pub fn start(store: Store, config: ControllersConfig) -> ControllersHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(ControllersState::Standby);
        let task = tokio::spawn(supervise(store, config, stop_rx, state_tx));
        ControllersHandle {
            stop: stop_tx,
            state: state_rx,
            task,
        }
    }
}

/// Controls running controllers. Dropping it stops them too (without waiting).
pub struct ControllersHandle {
    stop: watch::Sender<bool>,
    state: watch::Receiver<ControllersState>,
    task: JoinHandle<()>,
}

impl ControllersHandle {
    /// Whether the reconcilers run now, and in which term.
    pub fn state(&self) -> ControllersState {
        *self.state.borrow()
    }

    /// Changes of [`ControllersHandle::state`].
    pub fn watch_state(&self) -> watch::Receiver<ControllersState> {
        self.state.clone()
    }

    /// Stops the reconcilers: no new reconciles start, running ones get the shutdown grace to
    /// finish, then the rest are cancelled.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Whether `lead` still says "leader in `term`".
fn leads(lead: &watch::Receiver<Leadership>, term: u64) -> bool {
    matches!(*lead.borrow(), Leadership::Leader { term: t } if t == term)
}

/// Resolves once this member no longer leads in `term` (or the store is gone).
async fn lost(lead: &mut watch::Receiver<Leadership>, term: u64) {
    loop {
        lead.borrow_and_update();
        if !leads(lead, term) {
            return;
        }
        if lead.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves once a stop is requested (or the handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn supervise(
    store: Store,
    config: ControllersConfig,
    mut stop: watch::Receiver<bool>,
    state: watch::Sender<ControllersState>,
) {
    let mut lead = store.leadership();
    loop {
        let term = loop {
            if lead.has_changed().is_err() {
                break None;
            }
            let current = *lead.borrow_and_update();
            if let Leadership::Leader { term } = current {
                break Some(term);
            }
            tokio::select! {
                changed = lead.changed() => if changed.is_err() { break None },
                _ = stopped(&mut stop) => break None,
            }
        };
        let Some(term) = term else { break };
        if *stop.borrow() {
            break;
        }
        lead_term(&store, term, &config, &mut lead, &mut stop, &state).await;
        let _ = state.send(ControllersState::Standby);
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
    }
    let _ = state.send(ControllersState::Stopped);
}

/// One term of leadership: catch up, run the controllers, stop them when the term ends.
async fn lead_term(
    store: &Store,
    term: u64,
    config: &ControllersConfig,
    lead: &mut watch::Receiver<Leadership>,
    stop: &mut watch::Receiver<bool>,
    state: &watch::Sender<ControllersState>,
) {
    // A new leader may not yet have applied everything its predecessors committed: confirm the
    // commit index with a quorum first, and start the cache at or after it.
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    let mut attempts = 0;
    let read_index = loop {
        tokio::select! {
            r = store.read_index() => match r {
                Ok(index) => break index,
                Err(e) => {
                    attempts += 1;
                    tracing::info!(term, error = %e, "new leader could not confirm its commit index yet");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.delay(attempts)) => {}
                        _ = lost(lead, term) => return,
                        _ = stopped(stop) => return,
                    }
                }
            },
            _ = lost(lead, term) => return,
            _ = stopped(stop) => return,
        }
    };
    tracing::info!(term, read_index, "leading: starting controllers");
    let handle = build(store.clone(), term, config).start(read_index);
    let _ = state.send(ControllersState::Leading { term });
    tokio::select! {
        _ = lost(lead, term) => tracing::info!(term, "leadership lost: stopping controllers"),
        _ = stopped(stop) => {}
    }
    handle.stop().await;
}

/// The runtime with the enabled controllers for one term.
pub(crate) fn build(store: Store, term: u64, config: &ControllersConfig) -> Runtime {
    let mut runtime = Runtime::new(store.clone(), term).with_metrics(config.metrics.clone());
    let base = ControllerConfig {
        concurrency: config.concurrency,
        queue: QueueConfig {
            backoff: config.backoff,
            ..QueueConfig::default()
        },
        shutdown_grace: config.shutdown_grace,
    };
    let enabled = config.enabled;
    let timeline = TaskTimeline::new();
    if enabled.replicated {
        runtime.add(
            ReplicatedOrchestrator::new(config.clone(), timeline.clone()),
            base,
        );
    }
    if enabled.global {
        runtime.add(
            GlobalOrchestrator::new(config.clone(), timeline.clone()),
            base,
        );
    }
    if enabled.jobs {
        runtime.add(JobsOrchestrator::new(config.clone()), base);
    }
    if enabled.scheduler {
        // Services are scheduled concurrently: passes plan one at a time under the scheduler's
        // lock (each sees the others' placements in its node accounting) and commit in parallel.
        let sched = ControllerConfig {
            queue: QueueConfig {
                debounce: config.scheduler_debounce,
                max_latency: config.scheduler_max_latency,
                backoff: config.backoff,
            },
            ..base
        };
        runtime.add(Scheduler::with_metrics(config.metrics.clone()), sched);
    }
    if enabled.task_reaper {
        let reaper = ControllerConfig {
            queue: QueueConfig {
                debounce: config.reaper_debounce,
                max_latency: config.reaper_debounce * 4,
                backoff: config.backoff,
            },
            ..base
        };
        runtime.add(TaskReaper::new(), reaper);
    }
    if enabled.constraint_enforcer {
        runtime.add(ConstraintEnforcer::new(), base);
    }
    if enabled.allocator {
        runtime.add(Allocator::new(), base);
    }
    if enabled.stack {
        runtime.add(StackController::new(), base);
    }
    if enabled.health {
        runtime.add(HealthController::new(), base);
    }
    if let Some(backend) = &config.gitops {
        runtime.add(GitOpsController::new(backend.0.clone()), base);
    }
    if enabled.role_manager {
        runtime.add(RoleManager::new(store.clone(), config.role_retry), base);
    }
    runtime
}
