//! How the controllers run: which ones, how fast they retry, and the few timeouts SwarmKit has
//! as constants (its defaults are ours).

use std::time::Duration;

use crate::runtime::Backoff;

/// Which reconcilers run on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enabled {
    /// Replicated-service orchestrator (with its restart and update supervisors).
    pub replicated: bool,
    /// Global-service orchestrator (with its restart and update supervisors).
    pub global: bool,
    /// Replicated-job and global-job orchestrator.
    pub jobs: bool,
    /// Scheduler.
    pub scheduler: bool,
    /// Task reaper.
    pub task_reaper: bool,
    /// Constraint enforcer.
    pub constraint_enforcer: bool,
    /// Role manager.
    pub role_manager: bool,
    /// Network allocator (VIPs, task and node addresses).
    pub allocator: bool,
    /// Stack controller (health, revision results, retired secret and config revisions).
    pub stack: bool,
    /// Health controller (every service's observed generation and conditions).
    pub health: bool,
}

impl Enabled {
    /// Every reconciler.
    pub const ALL: Enabled = Enabled {
        replicated: true,
        global: true,
        jobs: true,
        scheduler: true,
        task_reaper: true,
        constraint_enforcer: true,
        role_manager: true,
        allocator: true,
        stack: true,
        health: true,
    };

    /// No reconciler (combine with struct update syntax to pick some).
    pub const NONE: Enabled = Enabled {
        replicated: false,
        global: false,
        jobs: false,
        scheduler: false,
        task_reaper: false,
        constraint_enforcer: false,
        role_manager: false,
        allocator: false,
        stack: false,
        health: false,
    };
}

impl Default for Enabled {
    fn default() -> Self {
        Self::ALL
    }
}

/// Settings of [`crate::Controllers`].
#[derive(Clone, Debug)]
pub struct ControllersConfig {
    /// Where the controllers record what they do (the node's `/metrics`).
    pub metrics: crate::runtime::ControllerMetrics,
    /// Which reconcilers run.
    pub enabled: Enabled,
    /// Reconciles (of distinct keys) running at once per controller.
    pub concurrency: usize,
    /// Retry delays of a failing key.
    pub backoff: Backoff,
    /// The scheduler waits for this long after a change before a pass, so bursts of task
    /// creations are placed in one batch (SwarmKit: 50 ms) ...
    pub scheduler_debounce: Duration,
    /// ... but never longer than this after the first change (SwarmKit: 1 s).
    pub scheduler_max_latency: Duration,
    /// The task reaper batches its work the same way (SwarmKit: every 250 ms).
    pub reaper_debounce: Duration,
    /// A replacement task held at READY waits at most this long for the task it replaces to
    /// stop before it is started anyway (SwarmKit: 1 min).
    pub stop_wait_timeout: Duration,
    /// A rolling update waits at most this long for a new task to reach RUNNING; after it the
    /// task counts as failed and the failure action applies (SwarmKit waits forever).
    pub update_progress_deadline: Duration,
    /// A refused role change is retried this often (SwarmKit: 5 s).
    pub role_retry: Duration,
    /// How long a stopping controller waits for running reconciles.
    pub shutdown_grace: Duration,
    /// The GitOps controller's link to git and the stack apply (it runs only when set: the
    /// binary provides it).
    pub gitops: Option<crate::gitops::GitOpsBackend>,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        ControllersConfig {
            metrics: Default::default(),
            enabled: Enabled::ALL,
            concurrency: 4,
            backoff: Backoff::default(),
            scheduler_debounce: Duration::from_millis(50),
            scheduler_max_latency: Duration::from_secs(1),
            reaper_debounce: Duration::from_millis(250),
            stop_wait_timeout: Duration::from_secs(60),
            update_progress_deadline: Duration::from_secs(600),
            role_retry: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            gitops: None,
        }
    }
}
