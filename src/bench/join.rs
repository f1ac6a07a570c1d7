//! `shoal bench join`: a new manager joining three that hold N MiB (configs of 400 KiB, sealed
//! random bytes, as the issue that asked for this measured). Reports the time from the join
//! call to the new member voting (caught up: snapshot installed, log close to the leader's),
//! the leader's write latency while it happened (one client writing small objects in a loop),
//! and the leader's data directory per MiB of data once compacted. etcd runs side by side
//! ([`super::etcd_join`]): the same data, a fourth member added, the same measure of time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use shoal_store::model::{new_id, Config, ConfigSpec, Meta};
use shoal_store::{PeerNode, Txn};

use super::stats::{round3, Latencies};
use super::store::{start_member, wait_for, Member};
use crate::ca::RootCa;

/// Size of each config.
const CONFIG_BYTES: usize = 400 * 1024;
/// Configs per transaction (their base64 stays under the 4 MiB transaction limit).
const CONFIGS_PER_TXN: usize = 6;

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct JoinBench {
    /// MiB of data the swarm holds before the join.
    pub mb: usize,
    /// Where the managers keep their data (a real disk; default: the system temp dir).
    pub dir: Option<PathBuf>,
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn peer(m: &Member) -> PeerNode {
    PeerNode {
        addr: m.addr.clone(),
        node_id: m.store().config().node_id.clone(),
    }
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: JoinBench) -> anyhow::Result<serde_json::Value> {
    if b.mb == 0 {
        bail!("--mb must be at least 1");
    }
    let base = super::data_dir(b.dir.as_deref())?;
    crate::ca::install_crypto_provider();
    let ca = RootCa::generate()?;
    let cluster = new_id();
    let mut members = Vec::new();
    for id in 1..=3 {
        members.push(start_member(&ca, &cluster, id, base.path()).await?);
    }
    let leader = members[0].store();
    leader.initialize().await?;
    wait_for(|| leader.is_leader(), Duration::from_secs(10)).await?;
    for (i, m) in members.iter().enumerate().skip(1) {
        leader.add_member(i as u64 + 1, peer(m)).await?;
    }

    let filling = Instant::now();
    let count = b.mb * (1 << 20) / CONFIG_BYTES;
    let mut txn = Txn::new();
    for i in 0..count {
        let mut data = vec![0u8; CONFIG_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut data);
        txn = txn.create(Config {
            meta: Meta::with_id(new_id()),
            spec: ConfigSpec {
                name: format!("bench-join-{i}"),
                data,
                ..Default::default()
            },
        });
        if txn.ops.len() == CONFIGS_PER_TXN || i + 1 == count {
            leader
                .submit(std::mem::take(&mut txn))
                .await
                .context("filling the store")?;
        }
    }
    let fill_s = filling.elapsed().as_secs_f64();
    // Measured once compaction has run: a snapshot, the log behind it dropped, RocksDB flushed
    // and compacted (what the store keeps for this data in a steady state).
    leader.compact().await?;
    let leader_dir_bytes = dir_bytes(&base.path().join("manager-1"));

    let newcomer = start_member(&ca, &cluster, 4, base.path()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, leader) = (stop.clone(), leader.clone());
        tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut errors = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let c = Config {
                    meta: Meta::with_id(new_id()),
                    spec: ConfigSpec {
                        name: format!("bench-join-small-{n}"),
                        data: b"x".to_vec(),
                        ..Default::default()
                    },
                };
                let t = Instant::now();
                match leader.submit(Txn::new().create(c)).await {
                    Ok(_) => lat.record(t.elapsed()),
                    Err(_) => errors += 1,
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (lat, errors)
        })
    };
    let term = leader.raft_metrics().current_term;
    let joining = Instant::now();
    let joined = leader.add_member(4, peer(&newcomer)).await;
    let join_s = joining.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let (mut lat, errors) = writer.await?;
    let kept_leadership = leader.is_leader() && leader.raft_metrics().current_term == term;
    for m in members.iter().chain(std::iter::once(&newcomer)) {
        m.kill().await;
    }
    joined.context("the new manager did not join")?;
    // etcd side by side, in the same run, on the same disk.
    let etcd_dir = base.path().to_path_buf();
    let mb = b.mb;
    let etcd = tokio::task::spawn_blocking(move || {
        super::etcd_join::run(mb * (1 << 20) / CONFIG_BYTES, CONFIG_BYTES, &etcd_dir)
    })
    .await?
    .context("etcd side by side")?;
    let mib = (b.mb as f64) * f64::from(1 << 20);
    Ok(json!({
        "bench": "join",
        "mb": b.mb,
        "fill_s": round3(fill_s),
        "join_s": round3(join_s),
        "etcd_join_s": round3(etcd.join_s),
        "ratio_vs_etcd": round3(etcd.join_s / join_s),
        "leader_kept_leadership": kept_leadership,
        "leader_writes_during_join": lat.len(),
        "leader_write_errors_during_join": errors,
        "leader_write_p99_ms": round3(lat.quantile_ms(0.99)),
        "leader_write_max_ms": round3(lat.max_ms()),
        "leader_data_dir_mb": round3(leader_dir_bytes as f64 / f64::from(1 << 20)),
        "leader_data_dir_per_data": round3(leader_dir_bytes as f64 / mib),
    }))
}
