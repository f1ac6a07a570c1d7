//! The faults of each scenario (`reference/perf-reliability.md` §C2, the F numbers), done to
//! the cluster while the workload runs. Each returns what it measured; the oracles run after.

use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use rand::rngs::StdRng;
use rand::Rng;

use super::cluster::{Cluster, Disk};
use super::net::Direction;
use super::workload::Recorder;
use crate::bench::stats::Latencies;

/// A scenario: its name, the fault-matrix entry it covers, and what it guarantees.
pub struct Scenario {
    /// `--scenario NAME`.
    pub name: &'static str,
    /// The fault-matrix entry (`F1` ...).
    pub matrix: &'static str,
    /// What must hold, for people (the README's reliability section lists these).
    pub guarantees: &'static str,
    /// Managers in the cluster.
    pub managers: usize,
    /// A snapshot every this many log entries (debug builds only), so a short run reaches
    /// snapshots and purges; `None`: the default (10,000).
    pub snapshot_every: Option<u64>,
    /// Whether each manager runs in a network namespace of its own, so links can be cut
    /// ([`super::net`]).
    pub network: bool,
    /// Members that join as workers (beside the managers).
    pub workers: usize,
    /// Where each member keeps its data: a filesystem of its own to fill, or to cut the power
    /// under.
    pub disk: Disk,
}

/// Every scenario, in the order `--all` runs them; the first [`super::CI_SUBSET`] are the CI
/// subset.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "leader-kill",
        matrix: "F1",
        guarantees: "kill -9 of the leader during writes, again and again: no acknowledged write lost, reads linearizable, a new leader takes writes",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "follower-restart",
        matrix: "F2",
        guarantees: "a follower killed while writes go on (past several snapshots and purges), restarted later: it catches up from a snapshot and holds the same state",
        managers: 3,
        snapshot_every: Some(200),
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "minority-kills",
        matrix: "F3",
        guarantees: "random single-manager kills and restarts: safety always, writes resume after each",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "quorum-loss",
        matrix: "F4",
        guarantees: "2 of 3 managers down: writes and linearizable reads fail (no hang, no stale answer); one back: writes resume",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "restart-all",
        matrix: "F5",
        guarantees: "every manager killed and started again at once: no acknowledged write lost, no operator action",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "restart-staggered",
        matrix: "F5",
        guarantees: "every manager killed, started again one by one: no acknowledged write lost",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "pause-leader",
        matrix: "F8",
        guarantees: "the leader stopped (SIGSTOP) longer than the election timeout, then resumed: it serves no stale read and commits nothing on its own",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "leader-restart-fast",
        matrix: "F18",
        guarantees: "the leader killed and started at once, faster than an election: never answers from a stale state",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "failpoints",
        matrix: "F10",
        guarantees: "the leader crashes at each failpoint (log written but not synced, synced but not acknowledged, before and after apply, while building a snapshot, while purging the log), and a follower that fell behind while installing the leader's snapshot, and they restart: no acknowledged write lost, no revision regresses",
        managers: 3,
        snapshot_every: Some(200),
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "pause-follower",
        matrix: "F8",
        guarantees: "a follower paused and resumed: it serves linearizable reads only once caught up",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "leader-isolated",
        matrix: "F6",
        guarantees: "the leader cut off from the other managers by a partition: it acknowledges no write and serves no linearizable read on its own, the majority elects a leader and takes writes, the old leader rejoins when the partition heals",
        managers: 3,
        snapshot_every: None,
        network: true,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "burst",
        matrix: "F20",
        guarantees: "ten times the clients for a while: answers stay correct and the leader is not lost",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "membership-changes",
        matrix: "F14",
        guarantees: "a worker promoted, the leader demoted, a manager killed and then replaced by a wiped one (demoted while down, removed, rejoined empty), over and over: an API call that would leave no quorum is refused, every accepted change keeps the swarm writable, nothing acknowledged is lost",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 1,
        disk: Disk::Shared,
    },
    Scenario {
        name: "disk-full",
        matrix: "F13",
        guarantees: "the leader's disk fills up while clients write: it stops acknowledging writes and hands over or fails them cleanly, nothing is corrupted or lost, and once space is freed it serves again without an operator",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        // Room for what the others hold of the leader's large writes (log, tables, history,
        // snapshots): only the leader's disk is to fill up.
        disk: Disk::Tmpfs(1024),
    },
    Scenario {
        name: "agent-partition",
        matrix: "F17",
        guarantees: "a worker cut off from every manager shorter than the heartbeat grace: its node never goes down and nothing is rescheduled; cut off longer: it is marked down, its task is replaced exactly once on the other worker, and when it comes back its old task is shut down",
        managers: 3,
        snapshot_every: None,
        network: true,
        workers: 2,
        disk: Disk::Shared,
    },
    Scenario {
        name: "corrupt-wal",
        matrix: "F12",
        guarantees: "a bit flipped in a stopped follower's WAL (or newest table): it refuses to open its store and says why, instead of replaying up to the damage and forgetting what it acknowledged; the others go on, and the member replaced by a wiped one catches up",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "clock-skew",
        matrix: "F16",
        guarantees: "two of three managers' wall clocks set minutes ahead and behind, then, while they run, clocks jumping by minutes either way or strobing back and forth, and leaders killed so each leads in turn: safety holds (Raft, leases and heartbeats run on the monotonic clock), no node is marked down for it, the tasks converge",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "power-loss",
        matrix: "F11",
        guarantees: "the power cut under one manager (the leader or not), and every third time under all of them at once, while clients write and snapshots are taken: whatever was not synced is gone, yet every acknowledged write survives, and the swarm comes back by itself",
        managers: 3,
        snapshot_every: Some(300),
        network: false,
        workers: 0,
        disk: Disk::Ext4(512),
    },
    Scenario {
        name: "one-way-partition",
        matrix: "F7",
        guarantees: "a manager (the leader or not) stops hearing the others while they still hear it, then the link heals: safety always, writes resume, no election storm after healing",
        managers: 3,
        snapshot_every: None,
        network: true,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "flapping-partition",
        matrix: "F7",
        guarantees: "random managers cut off and reconnected every few hundred milliseconds: safety always, writes resume once the links stay up",
        managers: 3,
        snapshot_every: None,
        network: true,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "lossy-network",
        matrix: "F7",
        guarantees: "every manager drops 10-30% of its packets at random (TCP's retransmissions make it slow as well as lossy): safety always, writes resume once it heals",
        managers: 3,
        snapshot_every: None,
        network: true,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "five-managers-two-kills",
        matrix: "F3",
        guarantees: "5 managers, 2 killed at a time (a minority): writes go on, nothing is lost",
        managers: 5,
        snapshot_every: None,
        network: false,
        workers: 0,
        disk: Disk::Shared,
    },
    Scenario {
        name: "large-store",
        matrix: "F15",
        guarantees: "a store filled to 500 MB of configs (close to 1,000 KiB each) while clients write, then a worker promoted to manager, its catch-up from a snapshot of it interrupted by a leader kill: it joins and votes, the workers keep their sessions, nothing is lost",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 1,
        disk: Disk::Shared,
    },
    Scenario {
        name: "failing-tasks",
        matrix: "F15",
        guarantees: "1,000 tasks on one worker failing over and over (each exits 1 a second after it starts and is restarted), while the leader is killed every few seconds: the worker keeps its session (never marked down), every slot's failure is recorded with its exit code, clients are served, and when the service is removed all 1,000 are shut down and gone",
        managers: 3,
        snapshot_every: None,
        network: false,
        workers: 1,
        disk: Disk::Shared,
    },
];

/// How much `large-store` writes, in MiB.
const LARGE_STORE_MB: usize = 500;
/// Each of its configs' data (under swarmkit's 1,000 KiB limit, so the API takes it).
const LARGE_CONFIG_BYTES: usize = 960 << 10;

/// What the faults measured.
#[derive(Default)]
pub struct FaultStats {
    /// Faults injected.
    pub faults: u64,
    /// Each fault's recovery time: from its end (or a kill of the leader) to the next
    /// successful operation.
    pub recoveries: Latencies,
    /// Things that must not happen and did (a write that hung, a stale answer, ...).
    pub violations: Vec<String>,
    /// Extra figures of the scenario.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Waits until an operation succeeds after `since` (ns on the recorder's clock); the time
/// that took, in ms (`None`: not within `timeout`).
async fn recovered(rec: &Recorder, since: u64, timeout: Duration) -> Option<u64> {
    let started = Instant::now();
    loop {
        let last = rec.last_success();
        if last > since {
            return Some((last - since) / 1_000_000);
        }
        if started.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn note_recovery(stats: &mut FaultStats, rec: &Recorder, since: u64, what: &str) {
    match recovered(rec, since, Duration::from_secs(30)).await {
        Some(ms) => stats.recoveries.record(Duration::from_millis(ms)),
        None => stats
            .violations
            .push(format!("no operation succeeded within 30 s after {what}")),
    }
}

async fn leader_or_wait(c: &Cluster) -> Option<usize> {
    for _ in 0..100 {
        if let Some(l) = c.leader().await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Sends a write to `socket` that must be refused (`who` has no quorum behind it): a
/// violation if it is acknowledged, or hangs for `patience`; how long the refusal took, in ms.
async fn refused_write(
    s: &mut FaultStats,
    socket: &std::path::Path,
    name: String,
    patience: Duration,
    who: &str,
) -> u64 {
    let t = Instant::now();
    let body = serde_json::json!({"Name": name, "Data": "eA=="});
    let w =
        super::cluster::call(socket, "POST", "/secrets/create", &[], Some(body), patience).await;
    match w {
        Ok((status, _)) if (200..300).contains(&status) => {
            s.violations.push(format!("{who} acknowledged a write"))
        }
        Err(_) => s
            .violations
            .push(format!("a write on {who} hung for {patience:?}")),
        Ok(_) => {}
    }
    t.elapsed().as_millis() as u64
}

/// The cluster's network (scenarios with `network: true` have one).
fn lan(c: &mut Cluster) -> anyhow::Result<&mut super::net::Lan> {
    c.lan.as_mut().ok_or_else(|| {
        anyhow::anyhow!("this scenario needs its managers on a network of their own")
    })
}

/// How many times the leader changed over `period`, looked at every 100 ms.
async fn leader_changes(c: &Cluster, period: Duration) -> u64 {
    let end = Instant::now() + period;
    let mut last = c.leader().await;
    let mut changes = 0;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = c.leader().await;
        if now.is_some() && now != last {
            if last.is_some() {
                changes += 1;
            }
            last = now;
        }
    }
    changes
}

/// Replaces manager `k`, which is down, by a wiped member, as an operator would: demoted
/// while down (allowed: it keeps what margin there is), removed, started empty and joined
/// again as a manager; records how long the new member took to catch up. `false` (and a
/// violation) when the demotion was refused.
async fn replace_with_wiped(c: &mut Cluster, s: &mut FaultStats, k: usize) -> anyhow::Result<bool> {
    let t = Instant::now();
    loop {
        let r = c.set_role(k, false).await?;
        if (200..300).contains(&r.0) {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            s.violations.push(format!(
                "demoting {} (down) was refused for 30 s: {} {}",
                c.members[k].name, r.0, r.1
            ));
            return Ok(false);
        }
        // The swarm may still be marking it down, which changes its version.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The demotion takes it out of the store's membership a moment later; until then the
    // node cannot be removed.
    let t = Instant::now();
    while let Err(e) = c.remove_node(k).await {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(e.context("removing the demoted node for 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.members[k].wipe()?;
    c.members[k].start().await?;
    c.join(k, true).await?;
    let caught_up = c.wait_healthy(Duration::from_secs(60)).await?;
    let slowest = s
        .extra
        .get("wiped_member_caught_up_ms")
        .and_then(|v| v.as_u64());
    let ms = caught_up.as_millis() as u64;
    s.extra.insert(
        "wiped_member_caught_up_ms".into(),
        slowest.unwrap_or(0).max(ms).into(),
    );
    Ok(true)
}

/// The worker-only service of `agent-partition`.
const AGENT_SERVICE: &str = "chaos-agents";
/// The heartbeat period `agent-partition` sets: a node is down after three missed (6 s).
const AGENT_HEARTBEAT: Duration = Duration::from_secs(2);
/// How long its blip lasts: a quarter of the grace, so that TCP's retransmission backoff after
/// the cut (the next try can come 1.6 s after the last lost one) still ends well within it.
const AGENT_BLIP: Duration = Duration::from_millis(1500);

/// `agent-partition` (F17): a blip shorter than the grace, then a partition longer than it.
async fn agent_partition(
    c: &mut Cluster,
    s: &mut FaultStats,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    use serde_json::json;
    let via = c.a_manager().to_path_buf();
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let via = via.clone();
        async move {
            let (status, v) =
                super::cluster::call(&via, method, &path, &[], body, Duration::from_secs(5))
                    .await?;
            anyhow::ensure!(
                (200..300).contains(&status),
                "{method} {path}: {status} {v}"
            );
            anyhow::Ok(v)
        }
    };
    let swarm = call("GET", "/swarm".into(), None).await?;
    let mut spec = swarm["Spec"].clone();
    spec["Dispatcher"]["HeartbeatPeriod"] = (AGENT_HEARTBEAT.as_nanos() as u64).into();
    let version = swarm["Version"]["Index"].as_u64().unwrap_or(0);
    call(
        "POST",
        format!("/swarm/update?version={version}"),
        Some(spec),
    )
    .await?;
    call(
        "POST",
        "/services/create".into(),
        Some(json!({
            "Name": AGENT_SERVICE,
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox:1", "Command": ["sleep", "1d"]},
                "Placement": {"Constraints": ["node.role==worker"]},
            },
            "Mode": {"Replicated": {"Replicas": 2}},
        })),
    )
    .await?;
    let workers: Vec<usize> = (0..c.members.len())
        .filter(|&i| !c.members[i].manager)
        .collect();
    let managers: Vec<usize> = (0..c.members.len())
        .filter(|&i| c.members[i].manager)
        .collect();
    // Each task's id, slot, node, state and desired state.
    let tasks = || async {
        let filters = form_urlencoded::byte_serialize(
            json!({"service": [AGENT_SERVICE]}).to_string().as_bytes(),
        )
        .collect::<String>();
        let v = call("GET", format!("/tasks?filters={filters}"), None).await?;
        let rows: Vec<(String, u64, String, String, String)> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["ID"].as_str().unwrap_or("").to_string(),
                    t["Slot"].as_u64().unwrap_or(0),
                    t["NodeID"].as_str().unwrap_or("").to_string(),
                    t["Status"]["State"].as_str().unwrap_or("").to_string(),
                    t["DesiredState"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        anyhow::Ok(rows)
    };
    let node_state = |name: String| async move {
        let nodes = call("GET", "/nodes".into(), None).await?;
        let n = nodes
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["Description"]["Hostname"] == name.as_str())
            .cloned()
            .unwrap_or_default();
        anyhow::Ok((
            n["ID"].as_str().unwrap_or("").to_string(),
            n["Status"]["State"].as_str().unwrap_or("").to_string(),
        ))
    };
    // Both tasks run, one per worker.
    let started = Instant::now();
    let running = loop {
        let t = tasks().await?;
        let running: Vec<_> = t.iter().filter(|t| t.3 == "running").cloned().collect();
        if running.len() == 2 {
            break running;
        }
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("{AGENT_SERVICE} did not start on the workers: {t:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let w = workers[rng.random_range(0..workers.len())];
    let (w_id, _) = node_state(c.members[w].name.clone()).await?;
    let Some(victim) = running.iter().find(|t| t.2 == w_id).cloned() else {
        anyhow::bail!(
            "no task of {AGENT_SERVICE} runs on {}: {running:?}",
            c.members[w].name
        );
    };
    // A blip, well within the time a node is given before it is down.
    lan(c)?.partition(w, &managers, Direction::Both)?;
    s.faults += 1;
    let blip_end = Instant::now() + AGENT_BLIP;
    while Instant::now() < blip_end {
        if node_state(c.members[w].name.clone()).await?.1 == "down" {
            s.violations
                .push("a worker cut off for a quarter of its grace was marked down".into());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lan(c)?.heal()?;
    tokio::time::sleep(AGENT_HEARTBEAT * 5).await;
    let after_blip = tasks().await?;
    if after_blip.len() != 2
        || !after_blip
            .iter()
            .any(|t| t.0 == victim.0 && t.3 == "running")
    {
        s.violations.push(format!(
            "a blip shorter than the grace moved tasks: before {running:?}, after {after_blip:?}"
        ));
    }
    // A partition well past the grace: down, replaced once, shut down when it comes back.
    lan(c)?.partition(w, &managers, Direction::Both)?;
    s.faults += 1;
    let cut = Instant::now();
    let mut down_after = None;
    let mut replaced_after = None;
    while cut.elapsed() < Duration::from_secs(30) && replaced_after.is_none() {
        if down_after.is_none() && node_state(c.members[w].name.clone()).await?.1 == "down" {
            down_after = Some(cut.elapsed());
        }
        let t = tasks().await?;
        if t.iter()
            .any(|t| t.1 == victim.1 && t.0 != victim.0 && t.3 == "running")
        {
            replaced_after = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match (down_after, replaced_after) {
        (Some(d), Some(r)) => {
            s.extra
                .insert("worker_down_after_ms".into(), (d.as_millis() as u64).into());
            s.extra
                .insert("task_replaced_after_ms".into(), (r.as_millis() as u64).into());
            s.recoveries.record(r);
        }
        _ => s.violations.push(format!(
            "a worker cut off for 30 s: marked down {down_after:?}, its task replaced {replaced_after:?}"
        )),
    }
    tokio::time::sleep(AGENT_HEARTBEAT * 3).await;
    lan(c)?.heal()?;
    // Back: the old task is shut down, and the slot was filled exactly once.
    let back = Instant::now();
    loop {
        let t = tasks().await?;
        let old_stopped = t
            .iter()
            .any(|x| x.0 == victim.0 && x.3 != "running" && x.4 != "running");
        let in_slot = t.iter().filter(|x| x.1 == victim.1).count();
        if old_stopped {
            if in_slot != 2 {
                s.violations.push(format!(
                    "slot {} was filled {} times for one partition: {t:?}",
                    victim.1,
                    in_slot - 1
                ));
            }
            s.extra.insert(
                "old_task_shut_down_after_reconnect_ms".into(),
                (back.elapsed().as_millis() as u64).into(),
            );
            break;
        }
        if back.elapsed() > Duration::from_secs(30) {
            s.violations.push(format!(
                "the worker came back and its old task {} was not shut down in 30 s: {t:?}",
                victim.0
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The `snapshot-install` failpoint: a follower is stopped until the leader's log has moved
/// on past several snapshots (and purged what it needs), then started with the failpoint on:
/// it crashes installing the leader's snapshot, and starts again.
async fn crash_installing_a_snapshot(
    c: &mut Cluster,
    s: &mut FaultStats,
    rec: &Recorder,
    leader: usize,
) -> anyhow::Result<()> {
    let f = (leader + 1) % c.members.len();
    let from = c.members[leader].revision().await.map_or(0, |r| r.0);
    c.members[f].kill9().await;
    s.faults += 1;
    // Three snapshot intervals (the scenario snapshots every 200 entries and keeps 20 after).
    let started = Instant::now();
    while c.members[leader].revision().await.map_or(0, |r| r.0) < from + 600 {
        if started.elapsed() > Duration::from_secs(60) {
            s.violations
                .push("the log did not move on by 600 entries in 60 s".into());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let setting = "snapshot-install:1";
    let env = [(shoal_store::mutation::FAILPOINT_ENV, setting)];
    c.members[f].restart_with(&env).await.ok();
    if !c.members[f].wait_exit(Duration::from_secs(30)).await {
        s.violations
            .push("failpoint snapshot-install was not reached in 30 s".into());
        c.members[f].kill9().await;
    }
    let at = rec.now();
    c.members[f].start().await?;
    note_recovery(s, rec, at, "a crash at snapshot-install").await;
    c.wait_healthy(Duration::from_secs(60)).await?;
    Ok(())
}

/// `large-store` (F15): the store grows to [`LARGE_STORE_MB`], then a new manager catches up
/// from it while the leader is killed.
async fn large_store(c: &mut Cluster, s: &mut FaultStats, rec: &Recorder) -> anyhow::Result<()> {
    let socket = c.a_manager().to_path_buf();
    let count = (LARGE_STORE_MB << 20).div_ceil(LARGE_CONFIG_BYTES);
    let data = base64::engine::general_purpose::STANDARD.encode(vec![0x5au8; LARGE_CONFIG_BYTES]);
    let filling = Instant::now();
    // Four writers, each its share of the configs.
    let writers = (0..4).map(|w| {
        let (socket, data) = (socket.clone(), data.clone());
        async move {
            for i in (w..count).step_by(4) {
                let body = serde_json::json!({"Name": format!("chaos-large-{i}"), "Data": data});
                let (status, v) = super::cluster::call(
                    &socket,
                    "POST",
                    "/configs/create",
                    &[],
                    Some(body),
                    Duration::from_secs(60),
                )
                .await?;
                if status != 201 {
                    anyhow::bail!("creating config {i} of {count}: {status} {v}");
                }
            }
            anyhow::Ok(())
        }
    });
    for r in futures::future::join_all(writers).await {
        r?;
    }
    s.extra.insert(
        "store_mb".into(),
        ((count * LARGE_CONFIG_BYTES) >> 20).into(),
    );
    s.extra.insert(
        "fill_s".into(),
        serde_json::json!((filling.elapsed().as_secs_f64() * 10.0).round() / 10.0),
    );
    // The worker becomes a manager: it arrives as a learner and catches up from a snapshot.
    let w = c
        .members
        .iter()
        .position(|m| !m.manager)
        .context("large-store needs a worker to promote")?;
    let joining = Instant::now();
    let r = c.set_role(w, true).await?;
    if !(200..300).contains(&r.0) {
        s.violations.push(format!(
            "promoting {} was refused: {} {}",
            c.members[w].name, r.0, r.1
        ));
        return Ok(());
    }
    s.faults += 1;
    // The leader dies while the snapshot is on its way (the new member is no leader: it
    // holds no vote yet).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if let Some(l) = leader_or_wait(c).await {
        let at = rec.now();
        c.members[l].kill9().await;
        s.faults += 1;
        note_recovery(
            s,
            rec,
            at,
            "a leader kill during the new manager's catch-up",
        )
        .await;
        c.members[l].start().await?;
    }
    match c.wait_healthy(Duration::from_secs(300)).await {
        Ok(_) => {
            s.extra.insert(
                "new_manager_caught_up_ms".into(),
                (joining.elapsed().as_millis() as u64).into(),
            );
        }
        Err(e) => s
            .violations
            .push(format!("the promoted manager did not catch up: {e:#}")),
    }
    nodes_ready(c, s, Duration::from_secs(30)).await
}

/// The service of `failing-tasks`, its replicas and how its tasks end.
const FAILING_SERVICE: &str = "chaos-failing";
const FAILING_REPLICAS: u64 = 1000;
/// Each task runs this long, then exits with code 1; the restart delay is the default 5 s, so
/// about 170 tasks fail every second.
const FAILING_RUN_MS: u64 = 1000;

/// `failing-tasks` (F15): [`FAILING_REPLICAS`] tasks failing on one worker, leader kills.
async fn failing_tasks(
    c: &mut Cluster,
    s: &mut FaultStats,
    rec: &Recorder,
    rng: &mut StdRng,
    end: Instant,
) -> anyhow::Result<()> {
    use serde_json::json;
    use std::collections::BTreeSet;
    // Any manager that answers: the leader is killed under the scenario's own calls too.
    async fn call(
        c: &Cluster,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut last = None;
        for socket in c.sockets() {
            match super::cluster::call(
                &socket,
                method,
                path,
                &[],
                body.clone(),
                Duration::from_secs(10),
            )
            .await
            {
                Ok((status, v)) if (200..300).contains(&status) => return Ok(v),
                Ok((status, v)) => last = Some(format!("{status} {v}")),
                Err(e) => last = Some(format!("{e:#}")),
            }
        }
        anyhow::bail!("{method} {path}: no manager answered ({last:?})")
    }
    let filters = form_urlencoded::byte_serialize(
        json!({"service": [FAILING_SERVICE]}).to_string().as_bytes(),
    )
    .collect::<String>();
    let tasks_path = format!("/tasks?filters={filters}");
    let worker = c
        .members
        .iter()
        .find(|m| !m.manager)
        .map(|m| m.name.clone())
        .context("failing-tasks needs a worker")?;
    let created = call(
        c,
        "POST",
        "/services/create",
        Some(json!({
            "Name": FAILING_SERVICE,
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "busybox:1",
                    "Command": ["false"],
                    "Env": [
                        format!("{}={FAILING_RUN_MS}", crate::exec::sim::SIM_RUN_MS_ENV),
                        format!("{}=1", crate::exec::sim::SIM_EXIT_CODE_ENV),
                    ],
                },
                "Placement": {"Constraints": ["node.role==worker"]},
                "RestartPolicy": {"Condition": "on-failure", "Delay": 5_000_000_000u64},
            },
            "Mode": {"Replicated": {"Replicas": FAILING_REPLICAS}},
        })),
    )
    .await?;
    let service_id = created["ID"]
        .as_str()
        .context("the created service's id")?
        .to_string();
    /// The failed tasks seen in the task lists so far.
    #[derive(Default)]
    struct Failures {
        slots: BTreeSet<u64>,
        tasks: BTreeSet<String>,
        wrong_codes: u64,
    }
    impl Failures {
        fn look(&mut self, tasks: &serde_json::Value) {
            for t in tasks.as_array().into_iter().flatten() {
                if t["Status"]["State"] != "failed" {
                    continue;
                }
                if t["Status"]["ContainerStatus"]["ExitCode"] != 1 {
                    self.wrong_codes += 1;
                }
                self.slots.insert(t["Slot"].as_u64().unwrap_or(0));
                self.tasks
                    .insert(t["ID"].as_str().unwrap_or("").to_string());
            }
        }
    }
    // The worker must never be marked down; every slot's failure must reach the store.
    let mut seen = Failures::default();
    let mut next_kill = Instant::now() + Duration::from_millis(rng.random_range(3000..5000));
    while Instant::now() < end {
        let nodes = call(c, "GET", "/nodes", None).await?;
        for n in nodes.as_array().into_iter().flatten() {
            if n["Description"]["Hostname"] == worker.as_str() && n["Status"]["State"] == "down" {
                s.violations.push(format!(
                    "the worker running {FAILING_REPLICAS} failing tasks was marked down: {}",
                    n["Status"]
                ));
                return Ok(());
            }
        }
        seen.look(&call(c, "GET", &tasks_path, None).await?);
        if Instant::now() >= next_kill {
            if let Some(l) = leader_or_wait(c).await {
                let at = rec.now();
                c.members[l].kill9().await;
                s.faults += 1;
                note_recovery(s, rec, at, "a leader kill under failing tasks").await;
                c.members[l].start().await?;
            }
            next_kill = Instant::now() + Duration::from_millis(rng.random_range(3000..5000));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every slot failed at least once by now (its first task ended after a second); give the
    // last reports a moment after the final leader change.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.slots.len() as u64) < FAILING_REPLICAS && Instant::now() < deadline {
        seen.look(&call(c, "GET", &tasks_path, None).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    s.extra
        .insert("failures_seen".into(), (seen.tasks.len() as u64).into());
    s.extra
        .insert("slots_failed".into(), (seen.slots.len() as u64).into());
    if (seen.slots.len() as u64) < FAILING_REPLICAS {
        s.violations.push(format!(
            "only {} of {FAILING_REPLICAS} slots had a failure recorded",
            seen.slots.len()
        ));
    }
    if seen.wrong_codes > 0 {
        s.violations.push(format!(
            "{} failed tasks without the exit code 1 they exited with",
            seen.wrong_codes
        ));
    }
    // Removed: the worker shuts all of them down, and then they are gone from the store (all
    // tasks are listed: a filter naming a removed service is a 404, as with dockerd).
    let removing = Instant::now();
    call(c, "DELETE", &format!("/services/{service_id}"), None).await?;
    loop {
        let all = call(c, "GET", "/tasks", None).await?;
        let n = all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["ServiceID"] == service_id.as_str())
            .count();
        if n == 0 {
            s.extra.insert(
                "all_gone_after_removal_ms".into(),
                (removing.elapsed().as_millis() as u64).into(),
            );
            break;
        }
        if removing.elapsed() > Duration::from_secs(60) {
            s.violations.push(format!(
                "{n} tasks of the removed service still in the store after 60 s"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    nodes_ready(c, s, Duration::from_secs(30)).await
}

/// Every node is ready within `within` (none was marked down for what the scenario did).
async fn nodes_ready(c: &Cluster, s: &mut FaultStats, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let (status, nodes) = super::cluster::call(
            c.a_manager(),
            "GET",
            "/nodes",
            &[],
            None,
            Duration::from_secs(5),
        )
        .await?;
        let not_ready: Vec<String> = nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["Status"]["State"] != "ready")
            .map(|n| format!("{} {}", n["Description"]["Hostname"], n["Status"]["State"]))
            .collect();
        if status == 200 && not_ready.is_empty() {
            return Ok(());
        }
        if started.elapsed() > within {
            s.violations
                .push(format!("nodes not ready after {within:?}: {not_ready:?}"));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the faults of `name` for about `duration`.
pub async fn run(
    name: &str,
    c: &mut Cluster,
    rec: &Recorder,
    rng: &mut StdRng,
    duration: Duration,
    burst: &dyn Fn(usize),
) -> anyhow::Result<FaultStats> {
    let mut s = FaultStats::default();
    let end = Instant::now() + duration;
    let n = c.members.len();
    match name {
        "leader-kill" | "leader-restart-fast" => {
            let fast = name == "leader-restart-fast";
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
                let Some(l) = leader_or_wait(c).await else {
                    s.violations.push("no leader within 10 s".into());
                    break;
                };
                let at = rec.now();
                c.members[l].kill9().await;
                s.faults += 1;
                if !fast {
                    note_recovery(&mut s, rec, at, "a leader kill").await;
                }
                c.members[l].start().await?;
                if fast {
                    note_recovery(&mut s, rec, at, "a leader restart").await;
                }
            }
        }
        "follower-restart" => {
            let l = leader_or_wait(c).await.unwrap_or(0);
            let f = (l + 1 + rng.random_range(0..n - 1)) % n;
            tokio::time::sleep(duration / 5).await;
            c.members[f].kill9().await;
            s.faults += 1;
            tokio::time::sleep(duration / 2).await;
            c.members[f].start().await?;
            let caught_up = c.wait_healthy(Duration::from_secs(60)).await?;
            s.extra
                .insert("catch_up_ms".into(), (caught_up.as_millis() as u64).into());
        }
        "minority-kills" | "five-managers-two-kills" => {
            let at_once = if name == "minority-kills" { 1 } else { 2 };
            while Instant::now() < end {
                let mut victims: Vec<usize> = Vec::new();
                while victims.len() < at_once {
                    let v = rng.random_range(0..n);
                    if !victims.contains(&v) {
                        victims.push(v);
                    }
                }
                for &v in &victims {
                    c.members[v].kill9().await;
                    s.faults += 1;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
                let at = rec.now();
                for &v in &victims {
                    c.members[v].start().await?;
                }
                note_recovery(&mut s, rec, at, "restarting killed managers").await;
            }
        }
        "quorum-loss" => {
            tokio::time::sleep(duration / 4).await;
            let keep = rng.random_range(0..n);
            for i in (0..n).filter(|&i| i != keep) {
                c.members[i].kill9().await;
                s.faults += 1;
            }
            // A write on the survivor must fail, and fail fast; so must a linearizable read.
            let sock = c.members[keep].socket.clone();
            let name = format!("chaos-quorum-{}", rng.random::<u32>());
            let write_ms = refused_write(
                &mut s,
                &sock,
                name,
                Duration::from_secs(30),
                "the survivor of a lost quorum",
            )
            .await;
            let t = Instant::now();
            let r = super::cluster::call(
                &sock,
                "GET",
                "/secrets",
                &[("X-Shoal-Consistency", "linearizable")],
                None,
                Duration::from_secs(30),
            )
            .await;
            let read_ms = t.elapsed().as_millis() as u64;
            match r {
                Ok((200, _)) => s
                    .violations
                    .push("a linearizable read was answered without a quorum".into()),
                Err(_) => s
                    .violations
                    .push("a linearizable read without a quorum hung for 30 s".into()),
                Ok(_) => {}
            }
            s.extra.insert(
                "write_without_quorum_failed_after_ms".into(),
                write_ms.into(),
            );
            s.extra
                .insert("read_without_quorum_failed_after_ms".into(), read_ms.into());
            tokio::time::sleep(duration / 4).await;
            let back = (keep + 1) % n;
            let at = rec.now();
            c.members[back].start().await?;
            note_recovery(&mut s, rec, at, "one manager of the lost quorum came back").await;
        }
        "restart-all" | "restart-staggered" => {
            tokio::time::sleep(duration / 3).await;
            for m in &mut c.members {
                m.kill9().await;
                s.faults += 1;
            }
            let at = rec.now();
            if name == "restart-all" {
                let starts = c.members.iter_mut().map(|m| m.start());
                for r in futures::future::join_all(starts).await {
                    r?;
                }
            } else {
                for m in &mut c.members {
                    m.start().await?;
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                }
            }
            note_recovery(&mut s, rec, at, "restarting every manager").await;
        }
        "pause-leader" | "pause-follower" => {
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..1000))).await;
                let Some(l) = leader_or_wait(c).await else {
                    s.violations.push("no leader within 10 s".into());
                    break;
                };
                let target = if name == "pause-leader" {
                    l
                } else {
                    (l + 1 + rng.random_range(0..n - 1)) % n
                };
                c.members[target].pause();
                s.faults += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(2500..4000))).await;
                let at = rec.now();
                c.members[target].resume();
                note_recovery(&mut s, rec, at, "resuming a paused manager").await;
            }
        }
        "failpoints" => {
            for point in shoal_store::mutation::FAILPOINTS {
                let Some(l) = leader_or_wait(c).await else {
                    s.violations.push("no leader within 10 s".into());
                    break;
                };
                if point == "snapshot-install" {
                    crash_installing_a_snapshot(c, &mut s, rec, l).await?;
                    continue;
                }
                // Appends and applies happen many times a second: crash at a random hit.
                let hit = match point {
                    "snapshot-build" | "log-purge" => 1,
                    _ => rng.random_range(3..40),
                };
                let setting = format!("{point}:{hit}");
                c.members[l]
                    .restart_with(&[(shoal_store::mutation::FAILPOINT_ENV, &setting)])
                    .await?;
                s.faults += 1;
                if !c.members[l].wait_exit(Duration::from_secs(30)).await {
                    s.violations
                        .push(format!("failpoint {point} was not reached in 30 s"));
                }
                let at = rec.now();
                c.members[l].start().await?;
                note_recovery(&mut s, rec, at, &format!("a crash at {point}")).await;
                c.wait_healthy(Duration::from_secs(60)).await?;
            }
            let crashed: Vec<serde_json::Value> = shoal_store::mutation::FAILPOINTS
                .iter()
                .map(|p| (*p).into())
                .collect();
            s.extra.insert("failpoints".into(), crashed.into());
        }
        "burst" => {
            let before = leader_or_wait(c).await;
            tokio::time::sleep(duration / 4).await;
            burst(9);
            s.faults += 1;
            tokio::time::sleep(duration / 2).await;
            let after = leader_or_wait(c).await;
            if before.is_some() && before != after {
                s.violations
                    .push("the leader changed during the burst".into());
            }
        }
        "membership-changes" => {
            let accepted = |r: &(u16, serde_json::Value)| (200..300).contains(&r.0);
            while Instant::now() < end {
                // A worker becomes a manager: four managers.
                let Some(w) = c.members.iter().position(|m| !m.manager) else {
                    s.violations.push("no worker left to promote".into());
                    break;
                };
                let r = c.set_role(w, true).await?;
                if !accepted(&r) {
                    s.violations.push(format!(
                        "promoting {} with every manager up was refused: {} {}",
                        c.members[w].name, r.0, r.1
                    ));
                    break;
                }
                s.faults += 1;
                c.wait_healthy(Duration::from_secs(60)).await?;
                // The leader is demoted (four to three, all up): it must hand over.
                let Some(l) = leader_or_wait(c).await else {
                    s.violations.push("no leader within 10 s".into());
                    break;
                };
                let at = rec.now();
                let r = c.set_role(l, false).await?;
                if !accepted(&r) {
                    s.violations.push(format!(
                        "demoting the leader of four managers was refused: {} {}",
                        r.0, r.1
                    ));
                    break;
                }
                s.faults += 1;
                note_recovery(&mut s, rec, at, "demoting the leader").await;
                // A manager dies; once the leader shows it unreachable, demoting another live
                // one would leave no quorum at the next failure: it must be refused. (Within
                // the moment before, nobody can know it died.)
                let managers: Vec<usize> = (0..n).filter(|&i| c.members[i].manager).collect();
                let k = managers[rng.random_range(0..managers.len())];
                c.members[k].kill9().await;
                s.faults += 1;
                match c.wait_unreachable(k, Duration::from_secs(10)).await {
                    Ok(after) => {
                        let slowest = s
                            .extra
                            .get("dead_manager_shown_unreachable_ms")
                            .and_then(|v| v.as_u64())
                            .unwrap_or(0);
                        s.extra.insert(
                            "dead_manager_shown_unreachable_ms".into(),
                            slowest.max(after.as_millis() as u64).into(),
                        );
                    }
                    Err(e) => {
                        s.violations.push(format!("{e:#}"));
                        break;
                    }
                }
                let d = *managers.iter().find(|&&i| i != k).expect("three managers");
                let r = c.set_role(d, false).await?;
                if accepted(&r) {
                    s.violations.push(format!(
                        "demoting {} while {} was down was accepted: the swarm is one failure from losing its quorum",
                        c.members[d].name, c.members[k].name
                    ));
                    c.set_role(d, true).await?;
                }
                // The dead one is replaced by a wiped member.
                if !replace_with_wiped(c, &mut s, k).await? {
                    break;
                }
                s.faults += 1;
            }
        }
        "disk-full" => {
            tokio::time::sleep(duration / 5).await;
            let Some(l) = leader_or_wait(c).await else {
                s.violations.push("no leader within 10 s".into());
                return Ok(s);
            };
            let filler = c.members[l].fill_disk()?;
            s.faults += 1;
            // RocksDB's WAL files are allocated ahead, so small writes still fit for a while:
            // large ones through the leader use that up.
            let ballast = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 256 << 10]);
            let mut refused = None;
            for i in 0..400 {
                let r = super::cluster::call(
                    &c.members[l].socket,
                    "POST",
                    "/secrets/create",
                    &[],
                    Some(
                        serde_json::json!({"Name": format!("chaos-ballast-{i}"), "Data": ballast}),
                    ),
                    Duration::from_secs(20),
                )
                .await;
                match r {
                    Ok((201, _)) => {}
                    Ok((status, body)) => {
                        refused = Some((i, status, body));
                        break;
                    }
                    Err(e) => {
                        s.violations.push(format!(
                            "a write to the leader with a full disk got no answer: {e:#}"
                        ));
                        break;
                    }
                }
            }
            match refused {
                Some((i, status, body)) => {
                    s.extra
                        .insert("large_writes_until_refused".into(), i.into());
                    s.extra
                        .insert("refused_with".into(), format!("{status} {body}").into());
                }
                None => s
                    .violations
                    .push("400 large writes on a full disk were all acknowledged".into()),
            }
            let at = rec.now();
            note_recovery(
                &mut s,
                rec,
                at,
                "the leader's store stopped on its full disk",
            )
            .await;
            tokio::time::sleep(duration / 3).await;
            // It is still there (a full disk is no reason to crash) and answers.
            if !c.members[l].is_running() {
                s.violations.push(format!(
                    "{} exited when its disk filled up:\n{}",
                    c.members[l].name,
                    c.members[l].log_tail(20)
                ));
            }
            std::fs::remove_file(&filler)?;
            let freed = Instant::now();
            match c.wait_healthy(Duration::from_secs(60)).await {
                Ok(_) => {
                    s.extra.insert(
                        "serving_again_after_space_freed_ms".into(),
                        (freed.elapsed().as_millis() as u64).into(),
                    );
                }
                Err(e) => s.violations.push(format!(
                    "{} did not serve again within 60 s of space being freed: {e:#}",
                    c.members[l].name
                )),
            }
        }
        "agent-partition" => agent_partition(c, &mut s, rng).await?,
        "clock-skew" => {
            if !shoal_store::mutation::AVAILABLE {
                anyhow::bail!(
                    "scenario clock-skew needs a debug build (only those read the clock offset)"
                );
            }
            // Minutes either way, within the hour certificates are backdated by.
            let ahead = rng.random_range(60..900);
            let behind = -rng.random_range(60..900);
            c.members[0].set_clock(ahead)?;
            c.members[1].set_clock(behind)?;
            s.faults += 2;
            s.extra
                .insert("skews_s".into(), serde_json::json!([ahead, behind, 0]));
            let (mut kills, mut jumps, mut strobes) = (0u64, 0u64, 0u64);
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..1000))).await;
                match rng.random_range(0..3) {
                    // A leader killed, so that each manager leads in turn, whatever its clock.
                    0 => {
                        let Some(l) = leader_or_wait(c).await else {
                            s.violations.push("no leader within 10 s".into());
                            break;
                        };
                        let at = rec.now();
                        c.members[l].kill9().await;
                        kills += 1;
                        note_recovery(&mut s, rec, at, "a leader kill with skewed clocks").await;
                        c.members[l].start().await?;
                    }
                    // A running manager's clock jumps, forward or back.
                    1 => {
                        let k = rng.random_range(0..n);
                        c.members[k].set_clock(rng.random_range(-900..900))?;
                        jumps += 1;
                    }
                    // A strobe: back and forth by minutes, every 60 ms for a while.
                    _ => {
                        let k = rng.random_range(0..n);
                        let by = rng.random_range(60..900);
                        for i in 0..10 {
                            c.members[k].set_clock(if i % 2 == 0 { by } else { -by })?;
                            tokio::time::sleep(Duration::from_millis(60)).await;
                        }
                        strobes += 1;
                    }
                }
                s.faults += 1;
            }
            s.extra.insert("leader_kills".into(), kills.into());
            s.extra.insert("clock_jumps".into(), jumps.into());
            s.extra.insert("clock_strobes".into(), strobes.into());
            c.wait_healthy(Duration::from_secs(60)).await?;
            // Nobody was marked down for a clock: every node is ready again within the grace.
            nodes_ready(c, &mut s, Duration::from_secs(30)).await?;
        }
        "corrupt-wal" => {
            tokio::time::sleep(duration / 4).await;
            let l = leader_or_wait(c).await.unwrap_or(0);
            let f = (l + 1 + rng.random_range(0..n - 1)) % n;
            c.members[f].kill9().await;
            let file = match c.members[f].flip_a_bit(".log") {
                Ok(file) => file,
                // Just flushed: its WAL is nearly empty, and the data in tables.
                Err(_) => c.members[f].flip_a_bit(".sst")?,
            };
            s.faults += 1;
            s.extra.insert("damaged_file".into(), file.into());
            let t = Instant::now();
            c.members[f].spawn()?;
            if c.members[f].wait_exit(Duration::from_secs(30)).await {
                if !c.members[f].log().contains("is damaged") {
                    s.violations.push(format!(
                        "{} stopped on its damaged store without saying so:\n{}",
                        c.members[f].name,
                        c.members[f].log_tail(20)
                    ));
                }
                s.extra.insert(
                    "damage_refused_after_ms".into(),
                    (t.elapsed().as_millis() as u64).into(),
                );
            } else {
                s.violations.push(format!(
                    "{} started on a store with a flipped bit in {} instead of refusing it",
                    c.members[f].name, s.extra["damaged_file"]
                ));
                c.members[f].kill9().await;
            }
            // The other two go on; then the damaged member is replaced by a wiped one.
            tokio::time::sleep(duration / 4).await;
            replace_with_wiped(c, &mut s, f).await?;
        }
        "power-loss" => {
            let (mut one, mut all) = (0u64, 0u64);
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(rng.random_range(700..1800))).await;
                let victims: Vec<usize> = if (one + all) % 3 == 2 {
                    all += 1;
                    (0..n).collect()
                } else {
                    one += 1;
                    // The leader half the time: its unsynced tail is the newest.
                    match leader_or_wait(c).await {
                        Some(l) if rng.random_bool(0.5) => vec![l],
                        _ => vec![rng.random_range(0..n)],
                    }
                };
                // Every process stops, then every filesystem, then the processes are killed:
                // none of them does anything after the first has lost power.
                for &v in &victims {
                    c.members[v].freeze().await?;
                }
                for &v in &victims {
                    c.members[v].stop_disk()?;
                }
                for &v in &victims {
                    c.members[v].kill9().await;
                }
                s.faults += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
                let at = rec.now();
                let powered = c
                    .members
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| victims.contains(i))
                    .map(|(_, m)| m.power_on());
                for r in futures::future::join_all(powered).await {
                    r?;
                }
                note_recovery(&mut s, rec, at, "power back on").await;
            }
            s.extra.insert("power_cuts_one".into(), one.into());
            s.extra.insert("power_cuts_all".into(), all.into());
        }
        "large-store" => large_store(c, &mut s, rec).await?,
        "failing-tasks" => failing_tasks(c, &mut s, rec, rng, end).await?,
        "leader-isolated" => {
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..800))).await;
                let Some(l) = leader_or_wait(c).await else {
                    s.violations.push("no leader within 10 s".into());
                    break;
                };
                let others: Vec<usize> = (0..n).filter(|&i| i != l).collect();
                lan(c)?.partition(l, &others, Direction::Both)?;
                s.faults += 1;
                let at = rec.now();
                let cut = Instant::now();
                note_recovery(&mut s, rec, at, "isolating the leader").await;
                // The old leader, alone, must not acknowledge a write nor answer a
                // linearizable read (the workload's reads on it are checked too).
                let sock = c.members[l].socket.clone();
                let name = format!("chaos-isolated-{}", rng.random::<u32>());
                let ms = refused_write(
                    &mut s,
                    &sock,
                    name,
                    Duration::from_secs(20),
                    "the isolated old leader",
                )
                .await;
                s.extra
                    .insert("isolated_write_failed_after_ms".into(), ms.into());
                if let Some(left) = Duration::from_secs(3).checked_sub(cut.elapsed()) {
                    tokio::time::sleep(left).await;
                }
                lan(c)?.heal()?;
                c.wait_healthy(Duration::from_secs(30)).await?;
            }
        }
        "one-way-partition" => {
            let mut worst = 0;
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..800))).await;
                let Some(l) = leader_or_wait(c).await else {
                    s.violations.push("no leader within 10 s".into());
                    break;
                };
                let target = if rng.random_bool(0.5) {
                    l
                } else {
                    (l + 1 + rng.random_range(0..n - 1)) % n
                };
                let others: Vec<usize> = (0..n).filter(|&i| i != target).collect();
                lan(c)?.partition(target, &others, Direction::Inbound)?;
                s.faults += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(1500..3500))).await;
                let at = rec.now();
                lan(c)?.heal()?;
                note_recovery(&mut s, rec, at, "healing a one-way partition").await;
                c.wait_healthy(Duration::from_secs(30)).await?;
                // Once healed, the cluster settles: at most one change of leader after it.
                let changes = leader_changes(c, Duration::from_secs(3)).await;
                worst = worst.max(changes);
                if changes > 1 {
                    s.violations.push(format!(
                        "an election storm after a one-way partition healed: the leader changed {changes} times in 3 s"
                    ));
                }
            }
            s.extra
                .insert("most_leader_changes_after_heal".into(), worst.into());
        }
        "flapping-partition" => {
            while Instant::now() < end {
                let target = rng.random_range(0..n);
                let others: Vec<usize> = (0..n).filter(|&i| i != target).collect();
                lan(c)?.partition(target, &others, Direction::Both)?;
                s.faults += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
                lan(c)?.heal()?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
            }
            let at = rec.now();
            note_recovery(&mut s, rec, at, "the partitions stopped flapping").await;
        }
        "lossy-network" => {
            for k in 0..n {
                let percent = rng.random_range(10..=30);
                lan(c)?.loss(k, percent)?;
                s.faults += 1;
            }
            tokio::time::sleep(duration * 3 / 4).await;
            let at = rec.now();
            lan(c)?.heal()?;
            note_recovery(&mut s, rec, at, "the packet loss stopped").await;
        }
        other => anyhow::bail!("no scenario {other}"),
    }
    // The rest of the duration without faults, so the run ends on a working cluster.
    if let Some(left) = end.checked_duration_since(Instant::now()) {
        tokio::time::sleep(left.min(Duration::from_secs(2))).await;
    }
    Ok(s)
}
