//! The node's `/metrics` (`shoal daemon --metrics-addr`), in the Prometheus text format. One
//! registry per node, built at each scrape from what the node's components keep (histograms
//! and counters that live as long as the node) and gauges read then: on a manager its store's
//! Raft and state, its dispatcher's sessions and the swarm's nodes, services and tasks by
//! state; on every node its data plane's endpoints.

use std::collections::BTreeMap;

use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use shoal_controllers::runtime::ControllerMetrics;
use shoal_store::model::{Node, Service, Task, TaskState};
use shoal_store::View;

use super::{NodeRuntime, SwarmState};
use crate::dispatcher::DispatcherMetrics;

/// What a node's components record as they work. Cheap to clone.
#[derive(Clone, Default)]
pub struct NodeMetrics {
    /// The controllers of every leader term this node holds.
    pub controllers: ControllerMetrics,
    /// The dispatcher of this node's manager.
    pub dispatcher: DispatcherMetrics,
}

/// The content type of [`NodeRuntime::metrics_text`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The lower-case name an enum serializes to (the API's own spelling).
fn name_of(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_else(|| "unknown".into())
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    values: BTreeMap<Vec<String>, i64>,
) -> prometheus::Result<()> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    for (label_values, v) in values {
        let refs: Vec<&str> = label_values.iter().map(String::as_str).collect();
        g.with_label_values(&refs).set(v);
    }
    registry.register(Box::new(g))
}

/// The swarm's nodes, services and tasks by state, as of `view`.
fn register_swarm(registry: &Registry, view: &View) -> prometheus::Result<()> {
    let mut nodes = BTreeMap::new();
    for n in view.list::<Node>() {
        let availability = n
            .spec
            .availability
            .as_ref()
            .map_or_else(|| "active".to_string(), name_of);
        *nodes
            .entry(vec![
                name_of(&n.status.state),
                name_of(&n.role),
                availability,
            ])
            .or_insert(0) += 1;
    }
    gauge_vec(
        registry,
        "shoal_nodes",
        "Nodes of the swarm, by state, role and availability.",
        &["state", "role", "availability"],
        nodes,
    )?;
    let mut services = BTreeMap::new();
    for s in view.list::<Service>() {
        *services
            .entry(vec![s.spec.mode_kind().as_str().to_string()])
            .or_insert(0) += 1;
    }
    gauge_vec(
        registry,
        "shoal_services",
        "Services of the swarm, by mode.",
        &["mode"],
        services,
    )?;
    // Every state appears, at zero too, so a rollout shows as series that move.
    let mut tasks: BTreeMap<Vec<String>, i64> = TaskState::ALL
        .iter()
        .map(|s| (vec![s.as_str().to_string()], 0))
        .collect();
    let mut unschedulable = 0;
    for t in view.list::<Task>() {
        *tasks
            .entry(vec![t.status.state.as_str().to_string()])
            .or_insert(0) += 1;
        if t.status.state == TaskState::Pending
            && !t.status.err.is_empty()
            && t.desired_state <= TaskState::Running
        {
            unschedulable += 1;
        }
    }
    gauge_vec(
        registry,
        "shoal_tasks",
        "Tasks of the swarm, by observed state.",
        &["state"],
        tasks,
    )?;
    let g = IntGauge::new(
        "shoal_scheduler_unschedulable_tasks",
        "Tasks waiting for a node that fits them (pending, with the scheduler's reason).",
    )?;
    g.set(unschedulable);
    registry.register(Box::new(g))
}

impl NodeRuntime {
    /// This node's metrics, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let registry = Registry::new();
        let state = self.inner.state.read().await.clone();
        let manager = match &state {
            SwarmState::Manager { manager, .. } => Some(manager.clone()),
            _ => None,
        };
        let g = IntGauge::new(
            "shoal_node_is_manager",
            "1 if this node runs a manager (its store, dispatcher and controllers).",
        )?;
        g.set(manager.is_some() as i64);
        registry.register(Box::new(g))?;
        let (desired, programmed) = self
            .inner
            .executor
            .dataplane()
            .map_or((0, 0), |d| d.endpoints());
        gauge_vec(
            &registry,
            "shoal_dataplane_endpoints",
            "Load-balancing endpoints (VIP and published-port backends) on this node: wanted by the swarm, and programmed by the last reconcile.",
            &["state"],
            BTreeMap::from([
                (vec!["desired".to_string()], desired as i64),
                (vec!["programmed".to_string()], programmed as i64),
            ]),
        )?;
        if let Some(manager) = manager {
            manager.store.register_metrics(&registry)?;
            self.inner.metrics.controllers.register(&registry)?;
            self.inner
                .metrics
                .dispatcher
                .register(&registry, manager.dispatcher.session_count())?;
            register_swarm(&registry, &manager.store.view())?;
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}
