//! What a manager's store measures, for the node's `/metrics` (`shoal daemon --metrics-addr`):
//! latency histograms kept as the store works ([`StoreMetrics`]), and gauges read from Raft and
//! the state when a scrape asks ([`Store::register_metrics`]).

use prometheus::{Histogram, HistogramOpts, IntGauge, IntGaugeVec, Opts, Registry};

use crate::model::Kind;
use crate::replica::Store;

/// Latency buckets (seconds) from 100 µs to 10 s: a local commit takes a fraction of a
/// millisecond, one waiting for a slow disk or a new leader seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The store's histograms. Cheap to clone (each is shared).
#[derive(Clone)]
pub struct StoreMetrics {
    /// `Store::submit`, from the call to its answer (queueing, forwarding, commit, apply).
    pub txn_seconds: Histogram,
    /// One Raft entry of grouped transactions, from its proposal to its application.
    pub proposal_seconds: Histogram,
    /// Transactions per Raft entry (group commit).
    pub batch_transactions: Histogram,
    /// Building a snapshot.
    pub snapshot_seconds: Histogram,
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("a valid histogram definition")
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            txn_seconds: histogram(
                "shoal_store_txn_duration_seconds",
                "Time from a transaction's submission to its answer.",
                LATENCY_BUCKETS,
            ),
            proposal_seconds: histogram(
                "shoal_raft_proposal_duration_seconds",
                "Time from proposing a Raft entry (a group of transactions) to its application.",
                LATENCY_BUCKETS,
            ),
            batch_transactions: histogram(
                "shoal_store_batch_transactions",
                "Transactions grouped into one Raft entry.",
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            ),
            snapshot_seconds: histogram(
                "shoal_raft_snapshot_duration_seconds",
                "Time to build a snapshot of the state.",
                LATENCY_BUCKETS,
            ),
        }
    }
}

fn gauge(registry: &Registry, name: &str, help: &str, value: i64) -> prometheus::Result<()> {
    let g = IntGauge::new(name, help)?;
    g.set(value);
    registry.register(Box::new(g))
}

impl Store {
    /// Registers this member's metrics in `registry`: its histograms, and gauges read now from
    /// Raft (term, leadership, log indexes, voters, snapshot size) and the state (revision,
    /// objects by kind, watchers).
    pub fn register_metrics(&self, registry: &Registry) -> prometheus::Result<()> {
        let m = self.metrics();
        for h in [
            &m.txn_seconds,
            &m.proposal_seconds,
            &m.batch_transactions,
            &m.snapshot_seconds,
        ] {
            registry.register(Box::new(h.clone()))?;
        }
        let raft = self.raft_metrics();
        let index = |l: Option<u64>| l.map_or(0, |i| i as i64);
        let voters = raft.membership_config.membership().voter_ids().count();
        let members = raft.membership_config.membership().nodes().count();
        for (name, help, value) in [
            (
                "shoal_raft_term",
                "The Raft term this member is in.",
                raft.current_term as i64,
            ),
            (
                "shoal_raft_is_leader",
                "1 if this member leads the Raft group.",
                (raft.current_leader == Some(raft.id)) as i64,
            ),
            (
                "shoal_raft_has_leader",
                "1 if this member knows a leader.",
                raft.current_leader.is_some() as i64,
            ),
            (
                "shoal_raft_last_log_index",
                "Index of the last entry in this member's Raft log.",
                index(raft.last_log_index),
            ),
            (
                "shoal_raft_commit_index",
                "Index of the last entry this member knows committed.",
                index(raft.local_committed.map(|l| l.index)),
            ),
            (
                "shoal_raft_applied_index",
                "Index of the last entry applied to this member's state.",
                index(raft.last_applied.map(|l| l.index)),
            ),
            (
                "shoal_raft_snapshot_index",
                "Index of the last entry this member's newest snapshot covers.",
                index(raft.snapshot.map(|l| l.index)),
            ),
            (
                "shoal_raft_voters",
                "Voting members of the Raft group.",
                voters as i64,
            ),
            (
                "shoal_raft_learners",
                "Members of the Raft group that do not vote yet.",
                members.saturating_sub(voters) as i64,
            ),
            (
                "shoal_raft_snapshot_bytes",
                "Size of this member's newest snapshot file.",
                self.snapshot_bytes() as i64,
            ),
            (
                "shoal_store_revision",
                "The store revision this member's state is at.",
                self.current_revision() as i64,
            ),
            (
                "shoal_store_watchers",
                "Watches open on this member.",
                self.watcher_count() as i64,
            ),
        ] {
            gauge(registry, name, help, value)?;
        }
        let objects = IntGaugeVec::new(
            Opts::new("shoal_store_objects", "Objects in the state, by kind."),
            &["kind"],
        )?;
        let view = self.view();
        for kind in Kind::ALL {
            objects
                .with_label_values(&[kind.as_str()])
                .set(view.count(kind) as i64);
        }
        registry.register(Box::new(objects))
    }
}
