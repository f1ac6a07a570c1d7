//! The scheduler: places tasks on nodes (key: service id, so each pass batches one service's
//! waiting tasks). Passes decide one at a time under the scheduler's lock, each seeing the
//! placements of the others in the node accounting, and commit concurrently.
//!
//! Tasks waiting for a node are grouped by spec version; each group runs the filter pipeline
//! once over all nodes, arranges the candidates by spread preferences, and then places its
//! tasks one by one in O(log n) each, re-checking the filters placements change. Placements
//! are recorded in the scheduler's node accounting at once and committed in large
//! transactions (several in flight, so the store group-commits them); a placement whose task
//! changed meanwhile is dropped and undone. Tasks that fit nowhere stay PENDING with Docker's
//! explanation in `Err` and are retried when a node appears or changes or resources are freed.
//! Global tasks come with their node and are only confirmed (or explained).

pub mod constraint;
pub mod feasibility;
pub mod filter;
pub mod nodes;
pub mod resources;
pub mod tree;

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Semaphore;

use futures::StreamExt;
use shoal_store::model::{
    GenericResource, Object, Service, Task, TaskState, TaskStatus, Timestamp,
};
use shoal_store::{Obj, Op, StoreError, Txn, TxnError};

use crate::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use constraint::descriptor_value;
use filter::Pipeline;
use nodes::{NodeInfo, SchedState};
use tree::{NodeKey, Placer, SpreadTree};

/// Most task updates in one transaction.
pub const MAX_WRITES_PER_TXN: usize = 500;
/// Placement transactions in flight at once, over all passes. The store group-commits what is
/// in flight into one Raft entry, and bigger entries cost less per task to apply (index nodes
/// are copied once per apply); 32 transactions of at most 500 tasks keep an entry around
/// 10 MB for typical task sizes.
const WRITES_IN_FLIGHT: usize = 32;

/// The scheduler reconciler.
pub struct Scheduler {
    state: Mutex<SchedState>,
    in_flight: Semaphore,
    metrics: crate::runtime::ControllerMetrics,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            state: Mutex::default(),
            in_flight: Semaphore::new(WRITES_IN_FLIGHT),
            metrics: Default::default(),
        }
    }
}

impl Scheduler {
    /// A scheduler with empty state (filled by the first snapshot).
    pub fn new() -> Self {
        Self::default()
    }

    /// A scheduler counting its placements in `metrics`.
    pub fn with_metrics(metrics: crate::runtime::ControllerMetrics) -> Self {
        Scheduler {
            metrics,
            ..Self::default()
        }
    }
}

/// How many of `writes` place a task on a node, and how many leave it pending.
fn decisions(writes: &[Write]) -> (u64, u64) {
    let placed = writes.iter().filter(|w| w.node_id.is_some()).count() as u64;
    (placed, writes.len() as u64 - placed)
}

/// A task update the scheduler wants to commit: the task as read, and what changes. The
/// updated task is only materialised when the transaction is built.
struct Write {
    base: Obj<Task>,
    node_id: Option<String>,
    generic: Vec<GenericResource>,
    status: TaskStatus,
}

impl Write {
    fn updated(&self) -> Task {
        let mut u = self.base.to_owned_value();
        if let Some(n) = &self.node_id {
            u.node_id = n.clone();
            u.generic_resources = self.generic.clone();
        }
        u.status = self.status.clone();
        u
    }
}

fn assigned(
    t: &Obj<Task>,
    node_id: &str,
    generic: Vec<GenericResource>,
    message: &str,
    now: Timestamp,
) -> Write {
    Write {
        base: t.clone(),
        node_id: Some(node_id.to_string()),
        generic,
        status: TaskStatus::new(TaskState::Assigned, now, message),
    }
}

fn unschedulable(t: &Obj<Task>, err: String, now: Timestamp) -> Option<Write> {
    if t.status.state == TaskState::Pending && t.status.err == err {
        return None;
    }
    let mut status = TaskStatus::new(TaskState::Pending, now, "pending task scheduling");
    status.err = err;
    Some(Write {
        base: t.clone(),
        node_id: None,
        generic: Vec::new(),
        status,
    })
}

fn node_key(n: &NodeInfo, service_id: &str, version: u64, now: Timestamp, idx: usize) -> NodeKey {
    NodeKey {
        failing: n.is_failing(service_id, version, now),
        service_tasks: n.service_count(service_id),
        total: n.total,
        ordinal: n.ordinal,
        idx,
    }
}

/// Places the tasks of one batch through the spread tree.
struct BatchPlacer<'a> {
    state: &'a mut SchedState,
    pipeline: &'a mut Pipeline,
    candidates: &'a [String],
    service_id: &'a str,
    version: u64,
    now: Timestamp,
    task: Option<Obj<Task>>,
    generic: Vec<GenericResource>,
}

impl Placer for BatchPlacer<'_> {
    fn try_place(&mut self, idx: usize) -> Option<NodeKey> {
        let id = &self.candidates[idx];
        let generic = {
            let n = self.state.nodes.get(id)?;
            if !self.pipeline.recheck(n) {
                return None;
            }
            n.available.pick(&self.pipeline.request)
        };
        let task = self.task.as_ref().expect("a task is being placed");
        let ports = self.pipeline.host_ports().to_vec();
        self.state
            .place(task, id, &self.pipeline.request, generic.clone(), ports);
        self.generic = generic;
        let n = self.state.nodes.get(id)?;
        Some(node_key(n, self.service_id, self.version, self.now, idx))
    }
}

/// Decides placements for a service's waiting tasks; records them in `st`.
fn plan(st: &mut SchedState, service: &Service, now: Timestamp) -> Vec<Write> {
    let sid = service.meta.id.as_str();
    let endpoint = service.spec.endpoint_spec.as_ref();
    let mut tasks = st.pending_of(sid);
    // Tasks on networks wait for the allocator to give them their addresses first.
    tasks.retain(|t| !crate::allocator::awaits_allocation(t, Some(service)));
    if tasks.is_empty() {
        return Vec::new();
    }
    tasks.sort_by(|a, b| (a.slot, &a.meta.id).cmp(&(b.slot, &b.meta.id)));
    let mut writes = Vec::new();
    let mut left_over = false;

    // Global tasks come with their node: confirm it can run them.
    let (preassigned, unassigned): (Vec<_>, Vec<_>) =
        tasks.into_iter().partition(|t| !t.node_id.is_empty());
    for t in preassigned {
        let mut p = Pipeline::new(sid, &t.spec, endpoint);
        let Some(n) = st.nodes.get(&t.node_id) else {
            continue;
        };
        if p.check(n) {
            let generic = n.available.pick(&p.request);
            let ports = p.host_ports().to_vec();
            st.place(&t, &t.node_id, &p.request, generic.clone(), ports);
            writes.push(assigned(
                &t,
                &t.node_id,
                generic,
                "scheduler confirmed task can run on preassigned node",
                now,
            ));
        } else {
            left_over = true;
            if let Some(w) = unschedulable(&t, p.explain(), now) {
                st.begin_write(&t);
                writes.push(w);
            }
        }
    }

    // Other tasks: one batch per spec version.
    let mut batches: BTreeMap<u64, Vec<Obj<Task>>> = BTreeMap::new();
    for t in unassigned {
        batches.entry(t.spec_version.index).or_default().push(t);
    }
    for (version, batch) in batches {
        let spec = &batch[0].spec;
        let mut pipeline = Pipeline::new(sid, spec, endpoint);
        let descriptors: Vec<String> = spec
            .placement
            .as_ref()
            .map(|p| p.spread_descriptors().map(str::to_string).collect())
            .unwrap_or_default();
        let candidates: Vec<String> = st
            .nodes
            .iter()
            .filter(|(_, n)| pipeline.check(n))
            .map(|(id, _)| id.clone())
            .collect();
        let values: Vec<Vec<Option<String>>> = candidates
            .iter()
            .map(|id| {
                let n = &st.nodes[id].node;
                descriptors
                    .iter()
                    .map(|d| descriptor_value(d, n).map(str::to_string))
                    .collect()
            })
            .collect();
        let keyed = candidates
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(i, (id, v))| {
                (
                    node_key(&st.nodes[id], sid, version, now, i),
                    v.iter().map(|x| x.as_deref()).collect(),
                )
            })
            .collect();
        let mut tree = SpreadTree::new(keyed, descriptors.len());
        let mut placer = BatchPlacer {
            state: st,
            pipeline: &mut pipeline,
            candidates: &candidates,
            service_id: sid,
            version,
            now,
            task: None,
            generic: Vec::new(),
        };
        let mut unplaced = Vec::new();
        for t in batch {
            if !unplaced.is_empty() {
                unplaced.push(t);
                continue;
            }
            placer.task = Some(t.clone());
            match tree.place(&mut placer) {
                Some(idx) => {
                    let generic = std::mem::take(&mut placer.generic);
                    writes.push(assigned(
                        &t,
                        &candidates[idx],
                        generic,
                        "scheduler assigned task to node",
                        now,
                    ));
                }
                None => unplaced.push(t),
            }
        }
        if !unplaced.is_empty() {
            left_over = true;
            let err = pipeline.no_suitable_node();
            for t in unplaced {
                if let Some(w) = unschedulable(&t, err.clone(), now) {
                    st.begin_write(&t);
                    writes.push(w);
                }
            }
        }
    }
    if left_over {
        st.waiting.insert(sid.to_string());
    } else {
        st.waiting.remove(sid);
    }
    writes
}

/// Commits writes in one transaction, dropping those whose task changed meanwhile; returns
/// the writes that did not commit and the error that stopped them.
async fn commit_chunk(ctx: &Ctx, mut writes: Vec<Write>) -> (Vec<Write>, Option<StoreError>) {
    let mut dropped = Vec::new();
    loop {
        if writes.is_empty() {
            return (dropped, None);
        }
        let txn = Txn {
            ops: writes
                .iter()
                .map(|w| Op::Update {
                    object: Object::Task(w.updated()),
                    expected_version: w.base.meta.version.index,
                })
                .collect(),
            fence_term: None,
        };
        match ctx.submit(txn).await {
            Ok(_) => return (dropped, None),
            Err(StoreError::Rejected(
                TxnError::OutOfSequence { id, .. } | TxnError::NotFound { id, .. },
            )) => {
                // That task changed (or went away) since it was read: drop its placement and
                // commit the others.
                let (bad, good): (Vec<Write>, Vec<Write>) =
                    writes.into_iter().partition(|w| w.base.meta.id == id);
                if bad.is_empty() {
                    return (
                        good,
                        Some(StoreError::Invalid(format!(
                            "conflict on unknown task {id}"
                        ))),
                    );
                }
                dropped.extend(bad);
                writes = good;
            }
            Err(e) => {
                dropped.extend(writes);
                return (dropped, Some(e));
            }
        }
    }
}

/// Splits writes into transactions under the count and size limits.
fn chunks(mut writes: Vec<Write>) -> Vec<Vec<Write>> {
    // In id order, one transaction's tasks share tree nodes of the id-ordered maps (the
    // store's and the cache's), so fewer nodes are copied on write per commit.
    writes.sort_by(|a, b| a.base.meta.id.cmp(&b.base.meta.id));
    let Some(first) = writes.first() else {
        return Vec::new();
    };
    // Tasks of a batch share their spec, so one size estimate holds for all.
    let size = Object::Task(first.updated()).encoded_len().max(1);
    let per_txn =
        (crate::orchestrator::write::MAX_TXN_BYTES * 2 / size).clamp(1, MAX_WRITES_PER_TXN);
    let mut out = Vec::new();
    let mut it = writes.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(per_txn).collect());
    }
    out
}

impl Reconciler for Scheduler {
    type Key = String;

    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn observe(&self, change: &Change<'_>, cache: &Cache, keys: &mut Vec<String>) {
        let mut st = self.state.lock().expect("scheduler lock");
        let Change::Event { event, at, .. } = change else {
            st.rebuild(cache);
            return;
        };
        match event.object.as_ref() {
            Object::Task(_) => {
                let effect = st.apply_task(event, *at, cache);
                if let Some(s) = effect.pending_service {
                    keys.push(s);
                }
                if effect.freed {
                    keys.extend(st.waiting.iter().cloned());
                }
            }
            Object::Node(_) if st.apply_node(event, cache) => {
                keys.extend(st.pending_services());
            }
            Object::Service(s) if !st.pending_of(&s.meta.id).is_empty() => {
                keys.push(s.meta.id.clone());
            }
            _ => {}
        }
    }

    fn all_keys(&self, _cache: &Cache) -> Vec<String> {
        self.state
            .lock()
            .expect("scheduler lock")
            .pending_services()
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(service) = ctx.cache().service(key) else {
            // Tasks of a deleted service are not placed; the reaper removes them.
            return Ok(Action::AwaitChange);
        };
        let now = Timestamp::now();
        let writes = {
            let mut st = self.state.lock().expect("scheduler lock");
            plan(&mut st, &service, now)
        };
        if writes.is_empty() {
            return Ok(Action::AwaitChange);
        }
        let results: Vec<(Vec<Write>, Option<StoreError>)> = futures::stream::iter(chunks(writes))
            .map(|c| async {
                let _permit = self.in_flight.acquire().await.expect("never closed");
                let (placed, pending) = decisions(&c);
                let (dropped, err) = commit_chunk(ctx, c).await;
                let (not_placed, not_pending) = decisions(&dropped);
                self.metrics.placements.inc_by(placed - not_placed);
                self.metrics.unschedulable.inc_by(pending - not_pending);
                self.metrics.conflicts.inc_by(dropped.len() as u64);
                (dropped, err)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        let mut failed = 0;
        let mut error = None;
        {
            let mut st = self.state.lock().expect("scheduler lock");
            for (dropped, err) in results {
                failed += dropped.len();
                for w in &dropped {
                    st.write_failed(&w.base);
                }
                error = error.or(err);
            }
        }
        match error {
            Some(e) => Err(e.into()),
            // Dropped placements are retried once their tasks' changes are in.
            None if failed > 0 => Ok(Action::Requeue(std::time::Duration::ZERO)),
            None => Ok(Action::AwaitChange),
        }
    }
}
