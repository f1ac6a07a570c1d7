//! `shoal bench docker`: the engine path, shoal against Docker's own swarm, side by side in one
//! run. After an unmeasured warm-up service on each side, for each replica count and round:
//! `POST /services/create` of `busybox sleep` replicas
//! -> every task RUNNING as `GET /tasks` shows it (polled every 100 ms, for both), then
//! `DELETE /services/{id}` -> every container gone from the engine.
//!
//! When this machine has a `dockerd`, a private one is started ([`super::dockerd`]) and both
//! swarms drive that same engine: shoal's docker executor as its client, and the private
//! dockerd's own swarm mode. Services name the image by id (no registry here: a tag would make
//! dockerd try a pull per task). The rounds alternate which goes first; each figure is the median
//! over rounds and `ratio_vs_dockerd_<n>` is dockerd's time over shoal's (above 1: shoal is
//! faster). Without a dockerd, shoal runs against `--docker-host` alone.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::query_parameters::ListContainersOptions;
use serde_json::{json, Value};

use super::dockerd::PrivateDockerd;
use super::one_node::{urlencode, Client, OneNode};
use super::stats::round3;
use crate::agent::executor::{ExecutorChoice, ExecutorKind};
use crate::exec::LABEL_SERVICE_ID;

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct DockerBench {
    /// The replica counts to measure, one service each, in order.
    pub replicas: Vec<u64>,
    /// Rounds per replica count.
    pub rounds: usize,
    /// The image every replica runs (it must be in the engine: there is no registry).
    pub image: String,
    /// The machine's engine (where the image is).
    pub docker_host: String,
    /// Compare with a private dockerd when this machine has one.
    pub compare: bool,
}

/// How often the API is polled for progress (as the issue that set the target measured).
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for one service to converge or go away.
const TIMEOUT: Duration = Duration::from_secs(180);
/// Replicas of the unmeasured service each side runs first.
const WARM_UP_REPLICAS: u64 = 5;
/// API version both sides are spoken to with (dockerd 20.10 speaks up to 1.41).
const API: &str = "/v1.41";

/// One swarm under test: a client of its API and the engine its containers run in.
struct Side {
    name: &'static str,
    client: Client,
    engine: bollard::Docker,
}

/// What one service took on one side.
struct Sample {
    running_s: f64,
    removed_s: f64,
}

/// Runs the benchmark; returns the JSON report.
pub async fn run(b: DockerBench) -> anyhow::Result<Value> {
    if b.replicas.is_empty() || b.rounds == 0 {
        bail!("--replicas needs at least one count and --rounds at least 1");
    }
    let host_engine = crate::exec::docker::engine_client(&b.docker_host)
        .await
        .context("connecting to the Docker Engine")?;
    let inspected = host_engine.inspect_image(&b.image).await.with_context(|| {
        format!(
            "the image {} is not in the engine (scripts/setup.sh builds it)",
            b.image
        )
    })?;
    // Services name the image by its id: dockerd's swarm executor then does not try to pull it
    // (with no registry reachable every task would first wait for a failed pull, doubling
    // dockerd's time at 50 replicas), and shoal does not pull either.
    let image_id = inspected.id.context("the image has no id")?;
    let dockerd = match (b.compare, PrivateDockerd::find()) {
        (true, Some(program)) => {
            let d = PrivateDockerd::start(&program).await?;
            d.load_image(&host_engine, &b.image).await?;
            Some(d)
        }
        _ => None,
    };
    let (shoal_engine_host, shoal_engine) = match &dockerd {
        Some(d) => (d.socket.display().to_string(), d.client.clone()),
        None => (b.docker_host.clone(), host_engine.clone()),
    };
    let one = OneNode::start(
        "bench-docker",
        ExecutorChoice {
            kind: Some(ExecutorKind::Docker),
            docker_host: shoal_engine_host,
            run_dir: None,
        },
    )
    .await?;
    let result = async {
        let mut sides = Vec::new();
        let mut shoal_client = Client::connect(&one.socket).await?;
        shoal_client.expect("GET", "/_ping", None, 200).await?;
        sides.push(Side {
            name: "shoal",
            client: shoal_client,
            engine: shoal_engine,
        });
        if let Some(d) = &dockerd {
            let mut c = Client::connect(&d.socket).await?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let addr = format!("127.0.0.1:{port}");
            c.expect(
                "POST",
                &format!("{API}/swarm/init"),
                Some(json!({"ListenAddr": addr, "AdvertiseAddr": addr})),
                200,
            )
            .await
            .context("swarm init on the private dockerd")?;
            sides.push(Side {
                name: "dockerd",
                client: c,
                engine: d.client.clone(),
            });
        }
        measure_all(&b, &image_id, &mut sides).await
    }
    .await;
    one.stop().await;
    let mut report = result?;
    report["image"] = json!(b.image);
    if let Some(d) = &dockerd {
        report["dockerd_version"] = json!(d.version);
    }
    Ok(report)
}

async fn measure_all(b: &DockerBench, image_id: &str, sides: &mut [Side]) -> anyhow::Result<Value> {
    let mut report =
        json!({"bench": "docker", "rounds": b.rounds, "poll_ms": POLL.as_millis() as u64});
    let mut n = 0;
    // A fresh engine is slower at its first containers: warm it up for both, unmeasured.
    for side in sides.iter_mut() {
        n += 1;
        measure(side, image_id, n, WARM_UP_REPLICAS).await?;
    }
    for &replicas in &b.replicas {
        let mut samples: Vec<Vec<Sample>> = sides.iter().map(|_| Vec::new()).collect();
        for round in 0..b.rounds {
            // Alternate who goes first: the engine warms up as it works.
            let mut order: Vec<usize> = (0..sides.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                n += 1;
                let s = measure(&mut sides[i], image_id, n, replicas).await?;
                samples[i].push(s);
            }
        }
        for (side, samples) in sides.iter().zip(&samples) {
            let prefix = if side.name == "shoal" {
                String::new()
            } else {
                format!("{}_", side.name)
            };
            let running: Vec<f64> = samples.iter().map(|s| s.running_s).collect();
            let removed: Vec<f64> = samples.iter().map(|s| s.removed_s).collect();
            report[format!("{prefix}replicas_{replicas}_running_s")] =
                json!(round3(median(&running)));
            report[format!("{prefix}replicas_{replicas}_running_s_all")] =
                json!(running.iter().map(|v| round3(*v)).collect::<Vec<_>>());
            report[format!("{prefix}replicas_{replicas}_removed_s")] =
                json!(round3(median(&removed)));
        }
        if samples.len() == 2 {
            let shoal = median(&samples[0].iter().map(|s| s.running_s).collect::<Vec<_>>());
            let dockerd = median(&samples[1].iter().map(|s| s.running_s).collect::<Vec<_>>());
            report[format!("ratio_vs_dockerd_{replicas}")] = json!(round3(dockerd / shoal));
        }
    }
    Ok(report)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// One service of `replicas` on `side`: seconds to every task RUNNING, then seconds to every
/// container removed.
async fn measure(side: &mut Side, image: &str, n: usize, replicas: u64) -> anyhow::Result<Sample> {
    let c = &mut side.client;
    let spec = json!({
        "Name": format!("bench-docker-{n}"),
        "TaskTemplate": {
            "ContainerSpec": {"Image": image, "Args": ["sleep", "100000"], "StopGracePeriod": 1_000_000_000},
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
    });
    let started = Instant::now();
    let created = c
        .expect("POST", &format!("{API}/services/create"), Some(spec), 201)
        .await
        .with_context(|| format!("{}: creating a service", side.name))?;
    let id = created["ID"].as_str().context("service id")?.to_string();
    let filter = urlencode(&json!({"service": [&id], "desired-state": ["running"]}).to_string());
    let path = format!("{API}/tasks?filters={filter}");
    loop {
        let tasks = c.expect("GET", &path, None, 200).await?;
        let running = tasks
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["Status"]["State"] == "running")
                    .count() as u64
            })
            .unwrap_or(0);
        if running >= replicas {
            break;
        }
        if started.elapsed() > TIMEOUT {
            bail!(
                "{}: service {id}: {running} of {replicas} tasks running after {TIMEOUT:?}",
                side.name
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let running_s = started.elapsed().as_secs_f64();

    let removing = Instant::now();
    c.expect("DELETE", &format!("{API}/services/{id}"), None, 200)
        .await?;
    let options = ListContainersOptions {
        all: true,
        filters: Some(std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_SERVICE_ID}={id}")],
        )])),
        ..Default::default()
    };
    loop {
        let left = side
            .engine
            .list_containers(Some(options.clone()))
            .await?
            .len();
        if left == 0 {
            break;
        }
        if removing.elapsed() > TIMEOUT {
            bail!(
                "{}: service {id}: {left} containers still in the engine after {TIMEOUT:?}",
                side.name
            );
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(Sample {
        running_s,
        removed_s: removing.elapsed().as_secs_f64(),
    })
}
