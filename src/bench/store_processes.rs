//! `shoal bench store --processes`: the workload of `bench store` with each manager a `shoal`
//! process of its own, in a network namespace of its own on one bridge (the chaos suite's
//! [`Lan`]), so Raft's messages cross real sockets, veths and a bridge between processes, as
//! they do between hosts. Each manager process also runs its share of the clients, beside its
//! store, as the in-process run does (`--client-at` says which managers get them).
//!
//! The coordinator (this process) drives each manager over its stdin and stdout, one JSON
//! object per line ([`Command`] in, an answer out): make the swarm, create the clients'
//! objects, then run them all for the same time and send back every latency. A manager's
//! stderr goes to `manager-N.log` in the benchmark's directory.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shoal_store::codec::Encoding;
use shoal_store::model::new_id;
use shoal_store::PeerNode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::stats::Latencies;
use super::store::{client, create_objects, open_member, wait_for, Outcome, StoreBench, Variant};
use crate::ca::RootCa;
use crate::chaos::net::Lan;

/// The port every manager's store listens on, in its own namespace.
const PORT: u16 = 4242;

/// What the coordinator asks a manager process to do (one JSON line each).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Make a swarm of one of this manager, and wait until it leads.
    Init,
    /// Add a manager (through the leader).
    Add {
        /// Its Raft id.
        id: u64,
        /// Its store's address.
        addr: String,
        /// Its node id.
        node_id: String,
    },
    /// Create one object for each of `names` (this manager's clients).
    Prepare {
        /// The objects' names.
        names: Vec<String>,
        /// Payload size.
        value_bytes: usize,
    },
    /// Run this manager's clients for `duration_ms`, then answer with what they measured.
    Run {
        /// How long.
        duration_ms: u64,
        /// Payload size.
        value_bytes: usize,
    },
}

/// A manager process's answer to [`Command::Run`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Every committed write's latency, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Writes that failed.
    pub errors: u64,
}

/// The command line of `shoal bench store-member` (hidden: the coordinator writes it).
#[derive(Debug, Clone, clap::Args)]
pub struct MemberArgs {
    /// Its Raft id (1 makes the swarm).
    #[arg(long)]
    pub raft_id: u64,
    /// Its data directory's parent (it uses `manager-<id>` in it).
    #[arg(long)]
    pub dir: std::path::PathBuf,
    /// The address its store listens on.
    #[arg(long)]
    pub listen: String,
    /// The swarm's cluster id.
    #[arg(long)]
    pub cluster: String,
    /// The root CA's certificate (PEM) it issues its own credentials from.
    #[arg(long)]
    pub ca_cert: std::path::PathBuf,
    /// The root CA's key (PEM).
    #[arg(long)]
    pub ca_key: std::path::PathBuf,
    /// Its store writes in clear (to measure what sealing costs).
    #[arg(long)]
    pub no_seal: bool,
    /// Its store writes and sends JSON (to measure what the binary encoding gains).
    #[arg(long)]
    pub json_encoding: bool,
}

impl MemberArgs {
    /// How its store keeps and sends what it writes.
    fn variant(&self) -> Variant {
        Variant {
            seal_at_rest: !self.no_seal,
            encoding: if self.json_encoding {
                Encoding::Json
            } else {
                Encoding::Binary
            },
        }
    }
}

/// A manager process of the benchmark, as the coordinator sees it.
struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    addr: String,
    node_id: String,
    log: std::path::PathBuf,
}

impl Process {
    /// Sends `command` and waits (up to `timeout`) for its answer line.
    async fn ask(&mut self, command: &Command, timeout: Duration) -> anyhow::Result<Value> {
        self.send(command).await?;
        self.answer(timeout).await
    }

    /// Sends `command` without waiting for its answer.
    async fn send(&mut self, command: &Command) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(command)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Its next answer line (an `{"error": ...}` answer is an error).
    async fn answer(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        let line = tokio::time::timeout(timeout, self.stdout.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))??;
        let Some(line) = line else {
            bail!("it exited; its log: {}", tail(&self.log));
        };
        let v: Value = serde_json::from_str(&line).with_context(|| format!("answer {line}"))?;
        if let Some(e) = v.get("error") {
            bail!("{e}");
        }
        Ok(v)
    }
}

/// The last lines of a log file, for an error.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Starts `b.managers` manager processes in namespaces of their own in `dir`, makes them one
/// swarm, runs the workload on them and stops them.
pub(super) async fn drive(
    b: &StoreBench,
    ca: &RootCa,
    dir: &Path,
    variant: Variant,
) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe().context("finding this shoal binary")?;
    let n = b.managers as usize;
    let lan = Lan::create(n)
        .context("--processes puts each manager in a network namespace (run as root)")?;
    let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    std::fs::write(&ca_cert, ca.cert_pem())?;
    std::fs::write(&ca_key, ca.key_pem())?;
    let cluster = new_id();
    let mut procs = Vec::new();
    for k in 0..n {
        let id = k as u64 + 1;
        let log = dir.join(format!("manager-{id}.log"));
        let mut command = tokio::process::Command::new("nsenter");
        command
            .arg(lan.enter(k))
            .arg(&exe)
            .args(["bench", "store-member", "--raft-id", &id.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--listen", &format!("{}:{PORT}", lan.ip(k))])
            .args(["--cluster", &cluster])
            .arg("--ca-cert")
            .arg(&ca_cert)
            .arg("--ca-key")
            .arg(&ca_key);
        if !variant.seal_at_rest {
            command.arg("--no-seal");
        }
        if variant.encoding == Encoding::Json {
            command.arg("--json-encoding");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting a manager process")?;
        let stdin = child.stdin.take().context("its stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("its stdout")?).lines();
        let mut p = Process {
            child,
            stdin,
            stdout,
            addr: String::new(),
            node_id: String::new(),
            log,
        };
        let ready = p
            .answer(Duration::from_secs(30))
            .await
            .with_context(|| format!("manager {id} starting"))?;
        p.addr = ready["addr"].as_str().unwrap_or_default().to_string();
        p.node_id = ready["node_id"].as_str().unwrap_or_default().to_string();
        procs.push(p);
    }
    let setup = Duration::from_secs(30);
    procs[0].ask(&Command::Init, setup).await.context("init")?;
    for k in 1..n {
        let add = Command::Add {
            id: k as u64 + 1,
            addr: procs[k].addr.clone(),
            node_id: procs[k].node_id.clone(),
        };
        procs[0]
            .ask(&add, setup)
            .await
            .with_context(|| format!("adding manager {}", k + 1))?;
    }
    // The clients' objects, each created by the manager its client talks to.
    let mut names: Vec<Vec<String>> = vec![Vec::new(); n];
    for c in 0..b.clients {
        names[b.client_at.manager_of(c, n)].push(format!("bench-{c}"));
    }
    for (k, p) in procs.iter_mut().enumerate() {
        let prepare = Command::Prepare {
            names: std::mem::take(&mut names[k]),
            value_bytes: b.value_bytes,
        };
        p.ask(&prepare, setup)
            .await
            .with_context(|| format!("manager {} creating its clients' objects", k + 1))?;
    }
    // Every manager's clients start together and run for the same time.
    let run = Command::Run {
        duration_ms: b.duration.as_millis() as u64,
        value_bytes: b.value_bytes,
    };
    let started = Instant::now();
    for p in procs.iter_mut() {
        p.send(&run).await?;
    }
    let mut lat = Latencies::default();
    let mut errors = 0;
    for (k, p) in procs.iter_mut().enumerate() {
        let v = p
            .answer(b.duration + Duration::from_secs(30))
            .await
            .with_context(|| format!("manager {} running its clients", k + 1))?;
        let m: Measured = serde_json::from_value(v)?;
        for us in m.latencies_us {
            lat.record(Duration::from_micros(us));
        }
        errors += m.errors;
    }
    let elapsed = started.elapsed().min(b.duration);
    for p in procs.iter_mut() {
        let _ = p.child.start_kill();
        let _ = p.child.wait().await;
    }
    drop(lan);
    Ok(Outcome {
        elapsed,
        lat,
        errors,
        unavailable: Latencies::default(),
        each_kill_ms: Vec::new(),
        elected_ms: Vec::new(),
    })
}

/// `shoal bench store-member`: one manager of `bench store --processes`. Answers the
/// coordinator's [`Command`]s, one JSON line each, until its stdin closes.
pub async fn member(a: MemberArgs) -> anyhow::Result<()> {
    crate::ca::install_crypto_provider();
    let ca = RootCa::from_pem(
        &std::fs::read_to_string(&a.ca_cert)?,
        &std::fs::read_to_string(&a.ca_key)?,
    )?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let (store, server) =
        open_member(&ca, &a.cluster, a.raft_id, &a.dir, listener, a.variant()).await?;
    let mut out = tokio::io::stdout();
    let ready = serde_json::json!({"addr": a.listen, "node_id": store.config().node_id});
    say(&mut out, ready).await?;
    let mut objects = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Command>(&line) {
            Err(e) => Err(anyhow::anyhow!("not a command: {e}: {line}")),
            Ok(Command::Init) => async {
                store.initialize().await?;
                wait_for(|| store.is_leader(), Duration::from_secs(10)).await
            }
            .await
            .map(|()| serde_json::json!({"ok": true})),
            Ok(Command::Add { id, addr, node_id }) => store
                .add_member(id, PeerNode { addr, node_id })
                .await
                .map_err(anyhow::Error::from)
                .map(|()| serde_json::json!({"ok": true})),
            Ok(Command::Prepare { names, value_bytes }) => {
                create_objects(&store, names.into_iter(), value_bytes)
                    .await
                    .map(|created| {
                        objects = created;
                        serde_json::json!({"ok": true})
                    })
            }
            Ok(Command::Run {
                duration_ms,
                value_bytes,
            }) => {
                let measured = run_clients(&store, &objects, value_bytes, duration_ms).await;
                serde_json::to_value(measured).map_err(anyhow::Error::from)
            }
        };
        let answer = answer.unwrap_or_else(|e| serde_json::json!({"error": format!("{e:#}")}));
        say(&mut out, answer).await?;
    }
    store.shutdown().await;
    server.kill().await;
    Ok(())
}

/// Writes one answer line to the coordinator.
async fn say(out: &mut tokio::io::Stdout, v: Value) -> anyhow::Result<()> {
    out.write_all(format!("{v}\n").as_bytes()).await?;
    out.flush().await?;
    Ok(())
}

/// Runs one client per object against `store` for `duration_ms`.
async fn run_clients(
    store: &shoal_store::Store,
    objects: &[shoal_store::model::Config],
    value_bytes: usize,
    duration_ms: u64,
) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = objects
        .iter()
        .map(|obj| {
            let (store, obj, stop, errors) =
                (store.clone(), obj.clone(), stop.clone(), errors.clone());
            tokio::spawn(async move {
                client(
                    |_| Some(store.clone()),
                    1,
                    0,
                    obj,
                    value_bytes,
                    stop,
                    errors,
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(duration_ms)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for c in clients {
        if let Ok((lat, _)) = c.await {
            latencies_us.extend(lat.samples().iter().map(|d| d.as_micros() as u64));
        }
    }
    Measured {
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
    }
}
