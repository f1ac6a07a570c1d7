//! The controller runtime, in kube-runtime's layers: a store watch feeds a shared cache with
//! indexes ([`reflector`], [`cache`]); changes become keys in per-controller work queues
//! ([`queue`]); a runner reconciles keys with bounded concurrency, one reconcile per key at a
//! time ([`controller`]), on a cache snapshot with a writer fenced to the leader term
//! ([`context`]).

pub mod backoff;
pub mod cache;
pub mod context;
pub mod controller;
pub mod metrics;
pub mod queue;
pub mod reflector;

use std::sync::Arc;

use futures::future::BoxFuture;
use shoal_store::Store;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use backoff::Backoff;
pub use cache::Cache;
pub use context::{Ctx, Writer};
pub use controller::{
    Action, Change, Controller, ControllerConfig, Observer, ReconcileError, Reconciler,
};
pub use metrics::ControllerMetrics;
pub use queue::{QueueConfig, Reasons};

type Runner = Box<
    dyn FnOnce(watch::Receiver<Cache>, Writer, watch::Receiver<bool>) -> BoxFuture<'static, ()>
        + Send,
>;

/// The controllers of one leader term, sharing one reflector.
pub struct Runtime {
    store: Store,
    term: u64,
    observers: Vec<Arc<dyn Observer>>,
    runners: Vec<Runner>,
    metrics: ControllerMetrics,
}

/// A running [`Runtime`]; stop it with [`RuntimeHandle::stop`].
pub struct RuntimeHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    cache: watch::Receiver<Cache>,
}

impl Runtime {
    /// An empty runtime whose writes are fenced to `term`.
    pub fn new(store: Store, term: u64) -> Self {
        Runtime {
            store,
            term,
            observers: Vec::new(),
            runners: Vec::new(),
            metrics: ControllerMetrics::default(),
        }
    }

    /// Records what its controllers do in `metrics` (by default in a set of their own).
    pub fn with_metrics(mut self, metrics: ControllerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Adds a controller; returns it (tests and benchmarks inspect reconcilers through it).
    pub fn add<R: Reconciler>(
        &mut self,
        reconciler: R,
        config: ControllerConfig,
    ) -> Arc<Controller<R>> {
        let controller = Controller::new(reconciler, config, self.metrics.clone());
        self.observers.push(controller.clone());
        let c = controller.clone();
        self.runners.push(Box::new(move |cache, writer, stop| {
            Box::pin(c.run(cache, writer, stop))
        }));
        controller
    }

    /// Starts the reflector (its first snapshot at `min_revision` or later) and every
    /// controller; each does a full pass once the snapshot is in.
    pub fn start(self, min_revision: u64) -> RuntimeHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (cache_tx, cache_rx) = watch::channel(Cache::new());
        let mut tasks = JoinSet::new();
        let writer = Writer::new(self.store.clone(), self.term);
        for runner in self.runners {
            tasks.spawn(runner(cache_rx.clone(), writer.clone(), stop_rx.clone()));
        }
        let reflector = reflector::Reflector::new(self.store, self.observers, cache_tx);
        tasks.spawn(reflector.run(min_revision, stop_rx));
        RuntimeHandle {
            stop: stop_tx,
            tasks,
            cache: cache_rx,
        }
    }
}

impl RuntimeHandle {
    /// The cache the controllers see.
    pub fn cache(&self) -> watch::Receiver<Cache> {
        self.cache.clone()
    }

    /// Stops the reflector and the controllers; waits for running reconciles (each controller
    /// cancels its stragglers after its shutdown grace).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
