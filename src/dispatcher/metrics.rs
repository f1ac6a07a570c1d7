//! What the dispatcher measures, for the node's `/metrics`: sessions, heartbeats, the size of
//! status reports, and how long tasks take from creation to running.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// The dispatcher's metrics. Cheap to clone (each is shared).
#[derive(Clone)]
pub struct DispatcherMetrics {
    /// `shoal_dispatcher_heartbeats_total`.
    pub heartbeats: IntCounter,
    /// `shoal_dispatcher_status_batch_size`: task statuses per `UpdateTaskStatus` call.
    pub status_batch: Histogram,
    /// `shoal_task_scheduling_delay_seconds`: from a task's creation (NEW) to its first report
    /// of RUNNING.
    pub scheduling_delay: Histogram,
}

impl Default for DispatcherMetrics {
    fn default() -> Self {
        DispatcherMetrics {
            heartbeats: IntCounter::new(
                "shoal_dispatcher_heartbeats_total",
                "Heartbeats received from agents.",
            )
            .expect("a valid counter definition"),
            status_batch: Histogram::with_opts(
                HistogramOpts::new(
                    "shoal_dispatcher_status_batch_size",
                    "Task statuses in one report from an agent.",
                )
                .buckets(vec![
                    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
                ]),
            )
            .expect("a valid histogram definition"),
            scheduling_delay: Histogram::with_opts(
                HistogramOpts::new(
                    "shoal_task_scheduling_delay_seconds",
                    "Time from a task's creation (NEW) to its agent reporting it RUNNING.",
                )
                .buckets(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
            )
            .expect("a valid histogram definition"),
        }
    }
}

impl std::fmt::Debug for DispatcherMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DispatcherMetrics")
    }
}

impl DispatcherMetrics {
    /// Registers these series, and the sessions open now, in `registry`.
    pub fn register(&self, registry: &Registry, sessions: usize) -> prometheus::Result<()> {
        registry.register(Box::new(self.heartbeats.clone()))?;
        registry.register(Box::new(self.status_batch.clone()))?;
        registry.register(Box::new(self.scheduling_delay.clone()))?;
        let g = IntGauge::new(
            "shoal_dispatcher_sessions",
            "Agent sessions open with this manager's dispatcher (it serves them while it leads).",
        )?;
        g.set(sessions as i64);
        registry.register(Box::new(g))
    }
}
