//! New members joining a store that holds a lot of data: they count for no quorum until they
//! have caught up (snapshot installed, log close to the leader's), the leader keeps leading and
//! writing meanwhile, and a member lost halfway through its join is taken out again.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};
use shoal_store::model::Config;
use shoal_store::{PeerNode, Store, Txn};

/// Size of each config (as in the issue that asked for this: 256 configs of 400 KB).
const CONFIG_BYTES: usize = 400 * 1024;

fn peer(raft_id: u64) -> PeerNode {
    PeerNode {
        addr: addr(raft_id),
        node_id: String::new(),
    }
}

/// Fills the store with `mb` MiB of configs (incompressible bytes), then snapshots it, so the
/// log no longer holds the data and a new member needs the snapshot.
async fn fill(s: &Store, mb: usize) {
    let count = mb * (1 << 20) / CONFIG_BYTES;
    let mut txn = Txn::new();
    for i in 0..count {
        let mut c = config_object(&format!("big-{i}"));
        c.spec.data = vec![0; CONFIG_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut c.spec.data);
        txn = txn.create(c);
        if txn.ops.len() == 6 || i + 1 == count {
            s.submit(std::mem::take(&mut txn)).await.unwrap();
        }
    }
    s.trigger_snapshot().await.unwrap();
}

/// A digest of every config a member holds, and its revision.
fn state_of(s: &Store) -> (u64, String) {
    let view = s.view();
    let mut configs: Vec<Config> = view.list::<Config>().map(|c| c.to_owned_value()).collect();
    configs.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    let mut h = Sha256::new();
    for c in &configs {
        h.update(c.meta.id.as_bytes());
        h.update(c.meta.version.index.to_le_bytes());
        h.update(&c.spec.data);
    }
    (s.current_revision(), hex::encode(h.finalize()))
}

/// Writes small objects to `s` until told to stop; counts writes and errors.
struct Writer {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Writer {
    fn start(s: Store) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let (st, er, wr) = (stop.clone(), errors.clone(), writes.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !st.load(Ordering::SeqCst) {
                let c = config_object(&format!("small-{}", shoal_store::model::new_id()));
                match s.submit(Txn::new().create(c)).await {
                    Ok(_) => {
                        wr.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        er.fetch_add(1, Ordering::SeqCst);
                        seen.push(e.to_string());
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        });
        Writer {
            stop,
            errors,
            writes,
            task,
        }
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self.task.await.unwrap();
        (
            self.writes.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst),
            seen,
        )
    }
}

fn voters(s: &Store) -> Vec<u64> {
    s.members()
        .into_iter()
        .filter(|m| m.voter)
        .map(|m| m.raft_id)
        .collect()
}

async fn joins_one_after_the_other(mb: usize) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHOAL_LOG"))
        .with_test_writer()
        .try_init();
    let t = Instant::now();
    let mut c = Cluster::start_with(1, |cfg| {
        cfg.snapshot_every = 5_000;
        cfg.logs_kept_after_snapshot = 20;
    })
    .await;
    fill(c.store(1), mb).await;
    eprintln!("{mb} MiB written and snapshotted in {:.1?}", t.elapsed());
    let term = c.store(1).raft_metrics().current_term;
    let writer = Writer::start(c.store(1).clone());
    for id in [2, 3] {
        let s = c.open(config(c.dir.path(), id)).await;
        c.members.push(Some(s));
        let started = Instant::now();
        c.store(1).add_member(id, peer(id)).await.unwrap();
        eprintln!(
            "{mb} MiB: member {id} caught up and voting after {:.1?}",
            started.elapsed()
        );
        assert!(voters(c.store(1)).contains(&id));
    }
    // Keep writing a little with three voters, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (writes, errors, seen) = writer.finish().await;
    assert_eq!(
        errors, 0,
        "the leader's writes failed during the joins: {seen:?}"
    );
    assert!(writes > 0);
    let m = c.store(1).raft_metrics();
    assert!(c.store(1).is_leader(), "member 1 lost its leadership");
    assert_eq!(
        m.current_term, term,
        "member 1 lost its lease (a new term began)"
    );
    // All three hold the same state.
    let want = state_of(c.store(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in [2, 3] {
        loop {
            let got = state_of(c.store(id));
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {id} holds revision {} ({}), the leader {} ({})",
                got.0,
                got.1,
                want.0,
                want.1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        c.store(3).view().list::<Config>().count(),
        c.store(1).view().list::<Config>().count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_join_a_100_mib_store_one_after_the_other() {
    let mb = std::env::var("SHOAL_JOIN_TEST_MB").map_or(100, |v| v.parse().unwrap());
    joins_one_after_the_other(mb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_join_a_500_mib_store_one_after_the_other() {
    joins_one_after_the_other(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_while_it_receives_the_snapshot_is_removed_and_can_join_again() {
    let mut c = Cluster::start_with(1, |cfg| {
        cfg.snapshot_every = 5_000;
        cfg.logs_kept_after_snapshot = 20;
    })
    .await;
    fill(c.store(1), 100).await;
    let term = c.store(1).raft_metrics().current_term;
    let s2 = c.open(config(c.dir.path(), 2)).await;
    c.members.push(Some(s2));
    let leader = c.store(1).clone();
    let join = tokio::spawn(async move { leader.add_member(2, peer(2)).await });
    // Kill it as soon as the leader has reached it (the 100 MiB it needs take well over a
    // second to arrive and install), or a snapshot is seen on its way in.
    let incoming = member_dir(c.dir.path(), 2).join("snapshots");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let receiving = std::fs::read_dir(&incoming)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("incoming-"));
        let reached = c.store(2).raft_metrics().current_leader == Some(1);
        if receiving || reached {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader never reached member 2"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        !c.store(1)
            .members()
            .iter()
            .any(|m| m.raft_id == 2 && m.voter),
        "member 2 must not vote before it caught up"
    );
    c.kill(2).await;
    let err = join
        .await
        .unwrap()
        .expect_err("a join whose member died must fail");
    assert!(
        err.to_string().contains("removed again"),
        "the error says the member was taken out: {err}"
    );
    assert!(c.store(1).is_leader());
    assert_eq!(c.store(1).raft_metrics().current_term, term);
    assert!(
        c.store(1).members().iter().all(|m| m.raft_id != 2),
        "the learner is out of the membership"
    );
    // The leader still writes alone.
    c.store(1)
        .submit(Txn::new().create(config_object("after")))
        .await
        .unwrap();
    // The same node joins again, from an empty directory.
    std::fs::remove_dir_all(member_dir(c.dir.path(), 2)).unwrap();
    let s2 = c.open(config(c.dir.path(), 2)).await;
    c.members[1] = Some(s2);
    c.store(1).add_member(2, peer(2)).await.unwrap();
    assert_eq!(voters(c.store(1)), vec![1, 2]);
}
