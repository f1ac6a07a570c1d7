//! `shoal chaos run`: faults done to real `shoal daemon` processes while concurrent clients use
//! the public API, and the oracles that say whether anything went wrong (the etcd robustness
//! suite and Jepsen are the models; `reference/perf-reliability.md` §B, §C2).
//!
//! Each scenario starts its own swarm of managers ([`cluster`]), creates a few keys, runs the
//! workload ([`workload`]: linearizable reads and compare-and-sets, recorded) while its faults
//! happen ([`scenarios`]), heals the cluster, reads every key once more, and checks
//! ([`oracles`]): the history is linearizable (the `shoal-lincheck` checker), no acknowledged
//! write was lost, every manager holds the same state, the watches agree ([`history`]), a
//! service's tasks converge ([`tasks`]), and the scenario's own rules held (a write without
//! quorum fails fast, the leader survives a burst, ...).

pub mod cluster;
pub mod history;
pub mod net;
pub mod oracles;
pub mod scenarios;
pub mod tasks;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use cluster::Cluster;
use workload::{Key, Recorder};

/// Keys each scenario's clients share.
const KEYS: usize = 5;
/// Clients of each scenario.
const CLIENTS: usize = 4;
/// How much longer than its faults a scenario may take, healing and checking included, before
/// its watchdog ends it. The steps' own bounds keep a cluster that never converges again under
/// about 6 minutes (60 s to converge, the final reads, 60 s for the tasks, 60 s of checking,
/// the watches' 30 s each), and the test suite kills a test after 10.
const OVERRUN: Duration = Duration::from_secs(8 * 60);
/// The scenarios `shoal chaos run` runs without `--scenario` or `--all`.
pub const CI_SUBSET: usize = 18;

/// What to run.
#[derive(Clone, Debug)]
pub struct ChaosRun {
    /// One scenario by name; `None`: the subset (or all with `all`).
    pub scenario: Option<String>,
    /// Every scenario.
    pub all: bool,
    /// The seed of every random choice (faults, keys, members).
    pub seed: u64,
    /// How long the faults of each scenario go on.
    pub duration: Duration,
    /// This build's `shoal` (the managers run it).
    pub exe: PathBuf,
    /// Break the managers on purpose ([`shoal_store::mutation`]): the run must then fail.
    pub mutation: Option<String>,
}

/// Runs the scenarios; the report (`{"scenarios": [...]}`) and whether all passed.
pub async fn run(r: ChaosRun) -> anyhow::Result<(Value, bool)> {
    if let Some(m) = &r.mutation {
        if !shoal_store::mutation::AVAILABLE {
            bail!("--mutation {m}: this is a release build, which cannot break itself on purpose; mutations exist only in debug builds (cargo build), which the test suite uses");
        }
        if !shoal_store::mutation::KNOWN.contains(&m.as_str()) {
            bail!(
                "--mutation {m}: no such mutation; there are: {}",
                shoal_store::mutation::KNOWN.join(", ")
            );
        }
    }
    let chosen: Vec<&scenarios::Scenario> = match (&r.scenario, r.all) {
        (Some(name), _) => vec![scenarios::ALL
            .iter()
            .find(|s| s.name == name)
            .with_context(|| {
                format!(
                    "no scenario {name}; there are: {}",
                    scenarios::ALL
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?],
        (None, true) => scenarios::ALL.iter().collect(),
        (None, false) => scenarios::ALL.iter().take(CI_SUBSET).collect(),
    };
    let mut reports = Vec::new();
    let mut all_ok = true;
    for (i, s) in chosen.iter().enumerate() {
        let seed = r.seed.wrapping_add(i as u64);
        eprintln!("chaos: {} ({}), seed {seed}", s.name, s.matrix);
        let report = match scenario(s, seed, r.duration, &r.exe, r.mutation.as_deref()).await {
            Ok(v) => v,
            Err(e) => {
                json!({"name": s.name, "matrix": s.matrix, "ok": false, "seed": seed, "mutation": r.mutation, "error": format!("{e:#}")})
            }
        };
        all_ok &= report["ok"] == true;
        eprintln!("chaos: {} ok={}", s.name, report["ok"]);
        reports.push(report);
    }
    Ok((json!({"scenarios": reports}), all_ok))
}

async fn create_keys(c: &Cluster) -> anyhow::Result<Vec<Key>> {
    let mut keys = Vec::new();
    for i in 0..KEYS {
        let name = format!("chaos-k{i}");
        let (status, v) = cluster::call(
            &c.members[0].socket,
            "POST",
            "/secrets/create",
            &[],
            Some(json!({"Name": name, "Data": "eA=="})),
            Duration::from_secs(10),
        )
        .await?;
        if status != 201 {
            bail!("creating secret {name}: {status} {v}");
        }
        let id = v["ID"].as_str().context("secret id")?.to_string();
        keys.push(Key { name, id });
    }
    Ok(keys)
}

async fn scenario(
    s: &scenarios::Scenario,
    seed: u64,
    duration: Duration,
    exe: &std::path::Path,
    mutation: Option<&str>,
) -> anyhow::Result<Value> {
    if s.snapshot_every.is_some() && !shoal_store::mutation::AVAILABLE {
        bail!(
            "scenario {} needs a debug build (its snapshots are made more often, and it may crash at failpoints), which the test suite uses",
            s.name
        );
    }
    let env: Vec<(&str, String)> = s
        .snapshot_every
        .map(|n| (shoal_store::mutation::SNAPSHOT_EVERY_ENV, n.to_string()))
        .into_iter()
        .collect();
    let mut c = Cluster::start(
        s.managers, s.workers, exe, mutation, &env, s.network, s.disk,
    )
    .await?;
    // The workload's and the watches' stop flags live out here: a run the watchdog ends
    // must still stop the tasks it spawned.
    let stop = Arc::new(AtomicBool::new(false));
    let follow_stop = Arc::new(AtomicBool::new(false));
    let follow_upto = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    // What the run is doing, for the watchdog to say where it was stuck.
    let phase = std::sync::Mutex::new("creating its keys");
    let step = |what: &'static str| *phase.lock().unwrap() = what;
    let checked = async {
        let keys = Arc::new(create_keys(&c).await?);
        // A watch kept open on every manager through the faults, resuming whenever it breaks.
        let followers: Vec<_> = c
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.manager)
            .map(|(i, m)| {
                let f = history::follow(
                    m.socket.clone(),
                    0,
                    follow_stop.clone(),
                    follow_upto.clone(),
                    history::FOLLOW_GRACE,
                );
                (i, tokio::spawn(f))
            })
            .collect();
        tasks::create(&c.members[0].socket).await?;
        let sockets = Arc::new(c.sockets());
        let rec = Recorder::new();
        let spawn = {
            let (keys, sockets, rec, stop) =
                (keys.clone(), sockets.clone(), rec.clone(), stop.clone());
            let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
            let h = handles.clone();
            let f = move |n: usize| {
                for _ in 0..n {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    h.lock().unwrap().push(tokio::spawn(workload::client(
                        id,
                        seed,
                        sockets.clone(),
                        keys.clone(),
                        rec.clone(),
                        stop.clone(),
                    )));
                }
            };
            (f, handles)
        };
        let (spawn_clients, handles) = spawn;
        spawn_clients(CLIENTS);
        let burst = |n: usize| spawn_clients(n * CLIENTS);
        let mut rng = StdRng::seed_from_u64(seed);
        step("injecting its faults");
        let faults = scenarios::run(s.name, &mut c, &rec, &mut rng, duration, &burst).await;
        stop.store(true, Ordering::Relaxed);
        let running: Vec<_> = std::mem::take(&mut *handles.lock().unwrap());
        for h in running {
            let _ = h.await;
        }
        let faults = faults?;
        step("healing the cluster and waiting for it to converge");
        c.heal().await?;
        let converge = c.wait_healthy(Duration::from_secs(60)).await;
        // The final reads, recorded like any other: after healing, each key once.
        step("reading every key after healing");
        let mut finals = Vec::new();
        for key in keys.iter() {
            let mut value = None;
            // From any manager that answers: one still catching up must not fail the run (the
            // convergence check above reports it).
            let managers = c.sockets();
            for attempt in 0..50 {
                let socket = &managers[attempt % managers.len()];
                if let Some((v, _)) = workload::read(&rec, u64::MAX, socket, key).await {
                    value = Some(v);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match value {
                Some(v) => finals.push((key.name.clone(), v)),
                None => bail!(
                    "key {} could not be read from any manager after the cluster healed ({})",
                    key.name,
                    match &converge {
                        Ok(_) => "they had converged".to_string(),
                        Err(e) => format!("{e:#}"),
                    }
                ),
            }
        }
        // Tasks: one running per slot, none on a node that is down, within the budget.
        step("waiting for the tasks to converge");
        let tasks_converged = tasks::converged(c.a_manager(), Duration::from_secs(60)).await;
        // Every operation is recorded by now: one history for all the oracles.
        let history = Arc::new(rec.history());
        step("checking linearizability");
        let (linearizable, lin_report) = {
            let history = history.clone();
            tokio::task::spawn_blocking(move || oracles::linearizable(&history)).await?
        };
        let mut lost = oracles::lost_writes(&history, &finals);
        let mut violations = faults.violations.clone();
        // The committed history as each manager's watch replays it: every acknowledged write must
        // be in it, and every manager must replay the same changes in order, also from the middle.
        let names: std::collections::HashMap<&str, &str> = keys
            .iter()
            .map(|k| (k.id.as_str(), k.name.as_str()))
            .collect();
        step("replaying every manager's watch");
        let mut replays = Vec::new();
        let mut watch_unavailable = Vec::new();
        for m in c.members.iter().filter(|m| m.manager) {
            match history::replay(&m.socket, 0).await {
                Ok(changes) => replays.push((m.name.clone(), m.socket.clone(), changes)),
                Err(e) => watch_unavailable.push(format!("{}: {e:#}", m.name)),
            }
        }
        let mut watch_ok = true;
        let mut followers = followers;
        let mut watch_resumes = 0u64;
        match replays.first() {
            None => {
                watch_ok = false;
                violations.push(format!(
                    "no manager could replay the history: {}",
                    watch_unavailable.join("; ")
                ));
            }
            Some((first, _, reference)) => {
                let committed = reference
                    .iter()
                    .filter_map(|c| Some((names.get(c.id.as_str())?.to_string(), c.value.clone()?)))
                    .collect();
                lost.extend(oracles::unrecorded_writes(&history, &committed));
                for (name, _, changes) in &replays {
                    if let Some(d) = history::disorder(changes) {
                        watch_ok = false;
                        violations.push(format!("{name}'s watch: {d}"));
                    }
                    if changes != reference {
                        watch_ok = false;
                        violations.push(format!(
                            "{name}'s watch replays {} changes, {first}'s {}: they differ",
                            changes.len(),
                            reference.len()
                        ));
                    }
                }
                // The watches kept open through the faults: exactly the history, in order.
                let upto = reference.last().map_or(0, |c| c.revision);
                follow_upto.store(upto, Ordering::Relaxed);
                follow_stop.store(true, Ordering::Relaxed);
                step("ending the watches kept open through the faults");
                for (i, f) in std::mem::take(&mut followers) {
                    let m = &c.members[i];
                    if !m.manager {
                        // Demoted during the run: it holds no history to follow any more.
                        f.abort();
                        continue;
                    }
                    match f.await {
                        Ok(followed) => {
                            if let Some(d) = history::followed_differs(&followed, reference) {
                                watch_ok = false;
                                violations.push(format!("the watch kept open on {}: {d}", m.name));
                            }
                            watch_resumes += followed.resumes;
                        }
                        Err(e) => violations.push(format!("following {}'s watch: {e}", m.name)),
                    }
                }
                // Resumed from the middle, on the last manager: exactly the rest.
                if let (Some(mid), Some((name, socket, _))) =
                    (reference.get(reference.len() / 2), replays.last())
                {
                    let rest: Vec<_> = reference
                        .iter()
                        .filter(|c| c.revision > mid.revision)
                        .cloned()
                        .collect();
                    match history::replay(socket, mid.revision).await {
                        Ok(resumed) if resumed == rest => {}
                        Ok(resumed) => {
                            watch_ok = false;
                            violations.push(format!(
                            "{name}'s watch resumed after revision {} replays {} changes, not the {} after it",
                            mid.revision,
                            resumed.len(),
                            rest.len()
                        ));
                        }
                        Err(e) => {
                            watch_ok = false;
                            violations.push(format!("resuming {name}'s watch: {e:#}"));
                        }
                    }
                }
            }
        }
        // Without a history to compare with, the watches are not waited for.
        follow_stop.store(true, Ordering::Relaxed);
        for (_, f) in followers {
            f.abort();
        }
        step("comparing the replicas");
        let (identical, digests) = match &converge {
            Ok(_) => {
                // A write may still be applying on one manager (a controller's, after the
                // convergence check): read again, for a few seconds, until every manager reports
                // the same applied revision; replicas that differ at the same revision still fail.
                let mut digests = c.replica_digests().await?;
                for _ in 0..20 {
                    if digests.windows(2).all(|w| w[0].1 == w[1].1) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    digests = c.replica_digests().await?;
                }
                oracles::replicas_identical(&digests)
            }
            Err(_) => (false, Value::Null),
        };
        if let Err(e) = &tasks_converged {
            violations.push(e.clone());
        }
        if let Err(e) = &converge {
            violations.push(format!("{e:#}"));
        }
        if lost.is_empty() && !identical {
            violations.push("the managers' states differ after converging".into());
        }
        let ok = linearizable == "true"
            && lost.is_empty()
            && identical
            && watch_ok
            && violations.is_empty();
        let mut report = json!({
            "name": s.name,
            "matrix": s.matrix,
            "ok": ok,
            "seed": seed,
            "managers": s.managers,
            "mutation": mutation,
            "operations": rec.operations(),
            "faults": faults.faults,
            "failures": rec.failures(),
            "linearizable": linearizable,
            "lost_acknowledged_writes": lost,
            "replicas_identical": identical,
            "replicas": digests,
            "watch_consistent": watch_ok,
            "watch_resumes": watch_resumes,
            "tasks_converged_ms": tasks::figure(&tasks_converged),
            "watch_unavailable": watch_unavailable,
            "unavailable_ms": rec.unavailable_ms(),
            "recovery_ms": faults.recoveries.max_ms() as u64,
            "violations": violations,
        });
        let mut recoveries = faults.recoveries;
        if !recoveries.is_empty() {
            // Samples are whole milliseconds: so are their quantiles.
            report["recovery_p50_ms"] = (recoveries.quantile_ms(0.5) as u64).into();
            report["recovery_p99_ms"] = (recoveries.quantile_ms(0.99) as u64).into();
            report["recoveries"] = recoveries.len().into();
        }
        for (k, v) in faults.extra {
            report[k] = v;
        }
        if let Some(text) = lin_report {
            report["linearizability_report"] = text.into();
            let path = std::env::temp_dir().join(format!("shoal-chaos-{}-{seed}.json", s.name));
            if std::fs::write(&path, history.to_json()).is_ok() {
                report["history_file"] = path.display().to_string().into();
            }
        }
        anyhow::Ok(report)
    };
    // Every step above has a bound of its own; this one catches a step that turns out not to
    // (a run must end, whatever the system under test does).
    let budget = duration + OVERRUN;
    let outcome = match tokio::time::timeout(budget, checked).await {
        Ok(outcome) => outcome,
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            follow_upto.store(0, Ordering::Relaxed);
            follow_stop.store(true, Ordering::Relaxed);
            Err(anyhow!(
                "the scenario did not finish within {} s (its {} s of faults and {} s for the checks): it was stuck {}",
                budget.as_secs(),
                duration.as_secs(),
                OVERRUN.as_secs(),
                *phase.lock().unwrap()
            ))
        }
    };
    // A failed scenario says which members panicked and keeps their logs (its data goes with
    // the cluster): what a post-mortem needs.
    let failed = !matches!(&outcome, Ok(report) if report["ok"] == true);
    if !failed {
        return outcome;
    }
    let panics = c.panics();
    let logs = c.save_logs(&format!("{}-{seed}", s.name));
    match outcome {
        Ok(mut report) => {
            report["panics"] = panics.into();
            if let Some(dir) = logs {
                report["logs"] = dir.display().to_string().into();
            }
            Ok(report)
        }
        Err(e) => {
            let mut e = e;
            if let Some(dir) = logs {
                e = e.context(format!("the members' logs are in {}", dir.display()));
            }
            if !panics.is_empty() {
                e = e.context(format!("panics: {}", panics.join(" | ")));
            }
            Err(e)
        }
    }
}
