//! The controller runtime with a probe reconciler: full pass, one reconcile per key at a time,
//! retries with backoff, read-your-writes, shutdown.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use shoal_controllers::runtime::{
    Action, Backoff, Cache, Change, ControllerConfig, Ctx, QueueConfig, ReconcileError, Reconciler,
    Runtime,
};
use shoal_controllers::{Controllers, ControllersConfig, ControllersState, Enabled};
use shoal_store::model::{Node, Object};
use shoal_store::{Leadership, Txn};

#[derive(Default)]
struct Probe {
    calls: Mutex<HashMap<String, u32>>,
    running: Mutex<HashSet<String>>,
    overlapped: AtomicBool,
    stale_reads: AtomicBool,
    /// Nodes (by hostname) that fail their first three reconciles.
    failing: HashSet<String>,
    /// Nodes (by hostname) whose reconcile writes a label once, then checks it reads it back.
    writers: HashSet<String>,
}

impl Probe {
    fn calls(&self, host: &str) -> u32 {
        self.calls.lock().unwrap().get(host).copied().unwrap_or(0)
    }
}

struct Shared(Arc<Probe>);

impl Reconciler for Shared {
    type Key = String;

    fn name(&self) -> &'static str {
        "probe"
    }

    fn observe(&self, change: &Change<'_>, _cache: &Cache, keys: &mut Vec<String>) {
        if let Change::Event { event, .. } = change {
            if let Object::Node(n) = event.object.as_ref() {
                keys.push(n.meta.id.clone());
            }
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.nodes().map(|n| n.meta.id.clone()).collect()
    }

    async fn reconcile(&self, key: &String, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let p = &self.0;
        let Some(node) = ctx.cache().node(key) else {
            return Ok(Action::AwaitChange);
        };
        let host = node.description.hostname.clone();
        if !p.running.lock().unwrap().insert(key.clone()) {
            p.overlapped.store(true, Ordering::SeqCst);
        }
        // Stay a while, so overlapping runs of a key would be caught.
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.running.lock().unwrap().remove(key);
        let n = {
            let mut calls = p.calls.lock().unwrap();
            let c = calls.entry(host.clone()).or_default();
            *c += 1;
            *c
        };
        if p.failing.contains(&host) && n <= 3 {
            return Err(ReconcileError::Failed(format!("attempt {n} fails")));
        }
        if p.writers.contains(&host) {
            // Writes to another node (whose change does not queue this key), so only the
            // read-your-writes gate can make the next run see it.
            let target = ctx
                .cache()
                .nodes()
                .find(|n| n.description.hostname == "target")
                .expect("target node");
            let written = target.spec.labels().get("written").cloned();
            match (n, written) {
                (1, _) => {
                    let mut u = target.to_owned_value();
                    u.spec.labels.insert("written".into(), "yes".into());
                    ctx.submit(Txn::new().update(u)).await?;
                    // Run again at once: the runtime must hold this until the cache has it.
                    return Ok(Action::Requeue(Duration::ZERO));
                }
                (_, Some(_)) => {}
                (_, None) => p.stale_reads.store(true, Ordering::SeqCst),
            }
        }
        Ok(Action::AwaitChange)
    }
}

fn node_named(host: &str) -> Node {
    node(host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_runs_full_pass_one_per_key_retries_and_reads_its_writes() {
    let h = Harness::single(ControllersConfig {
        enabled: Enabled::NONE,
        ..test_config()
    })
    .await;
    let s = h.store(1).clone();
    let mut ids = HashMap::new();
    for host in ["plain", "flaky", "writer", "target"] {
        ids.insert(host, add_node(&s, node_named(host)).await);
    }
    let probe = Arc::new(Probe {
        failing: HashSet::from(["flaky".to_string()]),
        writers: HashSet::from(["writer".to_string()]),
        ..Default::default()
    });
    let Leadership::Leader { term } = *s.leadership().borrow() else {
        panic!("single member leads");
    };
    let mut runtime = Runtime::new(s.clone(), term);
    runtime.add(
        Shared(probe.clone()),
        ControllerConfig {
            concurrency: 4,
            queue: QueueConfig {
                debounce: Duration::ZERO,
                max_latency: Duration::from_secs(1),
                backoff: Backoff {
                    initial: Duration::from_millis(20),
                    max: Duration::from_millis(200),
                },
            },
            shutdown_grace: Duration::from_secs(2),
        },
    );
    let handle = runtime.start(s.read_index().await.unwrap());

    // Full pass: every existing key; the failing one until it succeeds (3 failures + 1).
    eventually("full pass and retries done", || {
        (probe.calls("plain") >= 1 && probe.calls("flaky") == 4 && probe.calls("writer") >= 2)
            .then_some(())
    })
    .await;

    // A burst of changes to one key: coalesced, never two runs of it at once.
    for i in 0..10 {
        change_node(&s, &ids["plain"], |n| {
            n.spec.labels.insert("round".into(), i.to_string());
        })
        .await;
    }
    eventually("the last change reconciled", || {
        let cache = handle.cache().borrow().clone();
        let n = cache.node(&ids["plain"])?;
        (n.spec.labels().get("round").map(String::as_str) == Some("9")
            && probe.running.lock().unwrap().is_empty()
            && probe.calls("plain") >= 2)
            .then_some(())
    })
    .await;
    assert!(probe.calls("plain") <= 11);
    // A success ended the retries: no more runs of the flaky key without a change.
    assert_eq!(probe.calls("flaky"), 4);
    assert!(
        !probe.overlapped.load(Ordering::SeqCst),
        "a key ran twice at once"
    );
    assert!(
        !probe.stale_reads.load(Ordering::SeqCst),
        "a reconcile read a cache older than its own write"
    );
    handle.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_run_while_leading_and_stop_on_shutdown() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let extra = Controllers::start(s.clone(), test_config());
    eventually(
        "a second set of controllers on the leader also leads",
        || matches!(extra.state(), ControllersState::Leading { .. }).then_some(()),
    )
    .await;
    let mut state = extra.watch_state();
    extra.shutdown().await;
    assert_eq!(*state.borrow_and_update(), ControllersState::Stopped);
    h.stop().await;
}
