//! What the controllers measure, for the leader's `/metrics`: per controller, how long
//! reconciles take, how many fail, and how many keys wait in its queue; and the scheduler's
//! decisions.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use shoal_store::metrics::LATENCY_BUCKETS;

/// The controllers' metrics. Cheap to clone (each is shared): one set per node, given to every
/// leader term's controllers through [`crate::ControllersConfig`].
#[derive(Clone)]
pub struct ControllerMetrics {
    /// `shoal_controller_reconcile_duration_seconds{controller}`.
    pub reconcile_seconds: HistogramVec,
    /// `shoal_controller_reconcile_errors_total{controller}`.
    pub reconcile_errors: IntCounterVec,
    /// `shoal_controller_queue_depth{controller}`: keys queued, due or waiting.
    pub queue_depth: IntGaugeVec,
    /// `shoal_scheduler_placements_total`: tasks assigned to a node.
    pub placements: IntCounter,
    /// `shoal_scheduler_unschedulable_total`: tasks left pending with a reason (no node fits).
    pub unschedulable: IntCounter,
    /// `shoal_scheduler_conflicts_total`: decisions refused because the task changed since the
    /// scheduler read it (retried at once; a steady rise means the scheduler's view is stale).
    pub conflicts: IntCounter,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            reconcile_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "shoal_controller_reconcile_duration_seconds",
                    "Time one reconcile of one key takes, by controller.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["controller"],
            )
            .expect("a valid histogram definition"),
            reconcile_errors: IntCounterVec::new(
                Opts::new(
                    "shoal_controller_reconcile_errors_total",
                    "Reconciles that failed (and are retried with backoff), by controller.",
                ),
                &["controller"],
            )
            .expect("a valid counter definition"),
            queue_depth: IntGaugeVec::new(
                Opts::new(
                    "shoal_controller_queue_depth",
                    "Keys in a controller's work queue, by controller.",
                ),
                &["controller"],
            )
            .expect("a valid gauge definition"),
            placements: IntCounter::new(
                "shoal_scheduler_placements_total",
                "Tasks the scheduler assigned to a node.",
            )
            .expect("a valid counter definition"),
            unschedulable: IntCounter::new(
                "shoal_scheduler_unschedulable_total",
                "Times the scheduler left a task pending because no node fits it.",
            )
            .expect("a valid counter definition"),
            conflicts: IntCounter::new(
                "shoal_scheduler_conflicts_total",
                "Scheduler decisions refused because their task changed since it was read (retried).",
            )
            .expect("a valid counter definition"),
        }
    }
}

impl std::fmt::Debug for ControllerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControllerMetrics")
    }
}

impl ControllerMetrics {
    /// Registers every series in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.reconcile_seconds.clone()))?;
        registry.register(Box::new(self.reconcile_errors.clone()))?;
        registry.register(Box::new(self.queue_depth.clone()))?;
        registry.register(Box::new(self.placements.clone()))?;
        registry.register(Box::new(self.unschedulable.clone()))?;
        registry.register(Box::new(self.conflicts.clone()))
    }
}
