//! Reconcilers and the runner that drives one of them: changes become keys in a work queue,
//! keys become reconciles (at most one per key at a time, a bounded number at once), and each
//! reconcile's outcome decides when the key runs again.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use shoal_store::model::Timestamp;
use shoal_store::{Commit, Event, StoreError};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::cache::Cache;
use super::context::{Ctx, Writer};
use super::queue::{Outcome, QueueConfig, Reasons, WorkQueue};

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run again after this long, even if nothing changes (timers: restart delays, monitors).
    Requeue(Duration),
    /// Run again only when a change affects the key.
    AwaitChange,
}

impl Action {
    /// `Requeue(d)` for the earliest of the given instants, or `AwaitChange` if there is none.
    pub fn at_earliest(wake: Option<Instant>) -> Action {
        match wake {
            Some(at) => Action::Requeue(at.saturating_duration_since(Instant::now())),
            None => Action::AwaitChange,
        }
    }
}

/// Why a reconcile failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A store operation failed (conflict, lost leadership, unavailable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// One change as reconcilers observe it.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// An object changed at `revision` (leader clock `at`).
    Event {
        /// The change (deletes carry the last object).
        event: &'a Event,
        /// Its revision.
        revision: u64,
        /// When it was committed (the leader's clock).
        at: Timestamp,
    },
    /// The cache was (re)built from a snapshot: forget derived state and rebuild it.
    Resync,
}

/// A level-triggered reconciler: given a key, make the world match the desired state as the
/// cache shows it. Reasons are only hints; a reconcile must be idempotent.
pub trait Reconciler: Send + Sync + 'static {
    /// What is reconciled (a service id, a node id, ...).
    type Key: Clone + Eq + Hash + Ord + Debug + Send + Sync + 'static;

    /// Name for logs.
    fn name(&self) -> &'static str;

    /// Maps a change to the keys it affects. Called in commit order on the reflector's task,
    /// with the cache including the change but before reconciles can see that cache, so
    /// derived state kept here (the scheduler's node accounting, the update monitor) is never
    /// older than the cache a reconcile gets. Must be cheap.
    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<Self::Key>);

    /// Every key, for a full pass (when the controller starts and after a relist).
    fn all_keys(&self, cache: &Cache) -> Vec<Self::Key>;

    /// Converges one key.
    fn reconcile(
        &self,
        key: &Self::Key,
        ctx: &Ctx,
    ) -> impl Future<Output = Result<Action, ReconcileError>> + Send;
}

/// Receives the reflector's changes (object-safe view of a controller).
pub trait Observer: Send + Sync {
    /// The controller's name.
    fn name(&self) -> &'static str;
    /// A commit was applied to the cache (`cache`, not yet published to reconciles: keys it
    /// queues wait for the publication).
    fn observe_commit(&self, commit: &Commit, cache: &Cache);
    /// The cache was rebuilt from a snapshot: rebuild derived state, queue a full pass.
    fn resync(&self, cache: &Cache);
}

/// How one controller runs.
#[derive(Clone, Copy, Debug)]
pub struct ControllerConfig {
    /// Reconciles running at once (distinct keys).
    pub concurrency: usize,
    /// Debounce and backoff.
    pub queue: QueueConfig,
    /// How long shutdown waits for running reconciles before cancelling them.
    pub shutdown_grace: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            concurrency: 4,
            queue: QueueConfig::default(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// One reconciler with its work queue.
pub struct Controller<R: Reconciler> {
    reconciler: Arc<R>,
    queue: Mutex<WorkQueue<R::Key>>,
    wake: Notify,
    config: ControllerConfig,
    metrics: super::ControllerMetrics,
}

impl<R: Reconciler> Controller<R> {
    /// A controller for `reconciler`, recording what it does in `metrics`.
    pub fn new(
        reconciler: R,
        config: ControllerConfig,
        metrics: super::ControllerMetrics,
    ) -> Arc<Self> {
        Arc::new(Controller {
            reconciler: Arc::new(reconciler),
            queue: Mutex::new(WorkQueue::new(config.queue)),
            wake: Notify::new(),
            config,
            metrics,
        })
    }

    /// The reconciler.
    pub fn reconciler(&self) -> &Arc<R> {
        &self.reconciler
    }

    /// Queues `keys` for the change at `revision`: they run on a cache at least that new.
    fn enqueue(&self, keys: &[R::Key], reason: Reasons, revision: u64) {
        if keys.is_empty() {
            return;
        }
        let now = Instant::now();
        {
            let mut q = self.queue.lock().expect("queue lock");
            for k in keys {
                q.require(k, revision);
                q.trigger(k, now, reason);
            }
        }
        self.wake.notify_one();
    }

    /// Runs reconciles until `stop` turns true (or its sender goes away), then waits up to the
    /// shutdown grace for running ones and cancels the rest.
    pub async fn run(
        self: Arc<Self>,
        mut cache: watch::Receiver<Cache>,
        writer: Writer,
        mut stop: watch::Receiver<bool>,
    ) {
        let name = self.reconciler.name();
        let reconcile_seconds = self.metrics.reconcile_seconds.with_label_values(&[name]);
        let reconcile_errors = self.metrics.reconcile_errors.with_label_values(&[name]);
        let queue_depth = self.metrics.queue_depth.with_label_values(&[name]);
        let mut running: JoinSet<(R::Key, Outcome, u64)> = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let now = Instant::now();
            let revision = cache.borrow_and_update().revision();
            let (next_due, held) = {
                let mut q = self.queue.lock().expect("queue lock");
                q.cache_advanced(revision);
                while running.len() < self.config.concurrency.max(1) {
                    let Some((key, reasons)) = q.pop(now, revision) else {
                        break;
                    };
                    let ctx = Ctx::new(cache.borrow().clone(), writer.clone());
                    let reconciler = self.reconciler.clone();
                    let span = tracing::debug_span!("reconcile", controller = name, key = ?key, reasons = %reasons);
                    let timer = reconcile_seconds.start_timer();
                    let errors = reconcile_errors.clone();
                    running.spawn(
                        async move {
                            let result = AssertUnwindSafe(reconciler.reconcile(&key, &ctx))
                                .catch_unwind()
                                .await;
                            timer.observe_duration();
                            if !matches!(result, Ok(Ok(_))) {
                                errors.inc();
                            }
                            let outcome = match result {
                                Ok(Ok(Action::Requeue(after))) => Outcome::Done(Some(after)),
                                Ok(Ok(Action::AwaitChange)) => Outcome::Done(None),
                                Ok(Err(e)) => {
                                    // Conflicts with other writers are routine: the retry
                                    // reads the newer object.
                                    match &e {
                                        ReconcileError::Store(s) if s.is_out_of_sequence() => {
                                            tracing::debug!(error = %e, "reconcile conflicted")
                                        }
                                        _ => tracing::info!(error = %e, "reconcile failed"),
                                    }
                                    Outcome::Failed
                                }
                                Err(_) => {
                                    tracing::error!("reconcile panicked");
                                    Outcome::Failed
                                }
                            };
                            (key, outcome, ctx.seen_revision())
                        }
                        .instrument(span),
                    );
                }
                queue_depth.set(q.len() as i64);
                // With every slot busy, only a finishing reconcile can let the next key run.
                let full = running.len() >= self.config.concurrency.max(1);
                (q.next_due().filter(|_| !full), q.has_held() && !full)
            };
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    if let Ok((key, outcome, seen)) = joined {
                        let mut q = self.queue.lock().expect("queue lock");
                        q.finish(&key, Instant::now(), outcome, seen);
                        if outcome == Outcome::Failed && q.failures(&key) >= 5 {
                            tracing::warn!(controller = name, key = ?key, failures = q.failures(&key), "reconcile keeps failing");
                        }
                    }
                }
                _ = self.wake.notified() => {}
                _ = sleep_until(next_due), if next_due.is_some() => {}
                changed = cache.changed(), if held => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                controller = name,
                "reconciles still running after the shutdown grace; cancelling them"
            );
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl<R: Reconciler> Observer for Controller<R> {
    fn name(&self) -> &'static str {
        self.reconciler.name()
    }

    fn observe_commit(&self, commit: &Commit, cache: &Cache) {
        let mut keys = Vec::new();
        for event in &commit.events {
            let change = Change::Event {
                event,
                revision: commit.revision,
                at: commit.at,
            };
            self.reconciler.observe(&change, cache, &mut keys);
        }
        keys.sort();
        keys.dedup();
        self.enqueue(&keys, Reasons::CHANGE, commit.revision);
    }

    fn resync(&self, cache: &Cache) {
        let mut ignored = Vec::new();
        self.reconciler
            .observe(&Change::Resync, cache, &mut ignored);
        let keys = self.reconciler.all_keys(cache);
        self.enqueue(&keys, Reasons::RESYNC, cache.revision());
    }
}
