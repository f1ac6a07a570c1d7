//! The `shoal` command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

// mimalloc instead of glibc malloc: the store and the transport allocate and free many
// medium and large buffers (log entries, batches); glibc serves the large ones with
// mmap/munmap and page faults, which cost about a fifth of the CPU in `shoal bench store`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Docker Swarm mode's control plane, rebuilt as Kubernetes-style controllers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (like dockerd): serves the Docker API on a unix socket; `docker swarm init` or
    /// `docker swarm join` against it make it a manager or a worker.
    Daemon(DaemonArgs),
    /// Run many simulated nodes (sim executor) in this process, joined to a swarm, for scale tests.
    Simnodes(SimnodesArgs),
    /// Print the swarm's changes as they happen (from a manager's native watch).
    Watch(shoal::cli::watch::WatchArgs),
    /// Apply a stack from compose files, in one transaction (exit 0 applied/succeeded, 2 error,
    /// 3 failed, 4 rolled back, 5 timed out).
    Apply(shoal::cli::apply::ApplyArgs),
    /// What applying the files would change, per object (exit 0 none, 1 changes, 2 error).
    Plan(shoal::cli::apply::PlanArgs),
    /// What applying the files would change, per field (exit 0 none, 1 changes, 2 error).
    Diff(shoal::cli::apply::PlanArgs),
    /// Restore an earlier revision of a stack (recorded as a new revision).
    Rollback(shoal::cli::stacks::RollbackArgs),
    /// A stack's revisions, or what changed between two of them.
    History(shoal::cli::stacks::HistoryArgs),
    /// The swarm on one screen (managers, nodes, services' health, recent events; --watch keeps
    /// it live), or one stack's health with its conditions.
    Status(shoal::cli::stacks::StatusArgs),
    /// Print a shell completion script: `shoal completions bash > /etc/bash_completion.d/shoal`
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Save a manager's store to a file (a consistent snapshot, checked by its checksum).
    Backup(shoal::cli::backup::BackupArgs),
    /// Make a new manager's data dir from a backup (its only manager; start it with
    /// `shoal daemon --data-dir`).
    Restore(shoal::cli::backup::RestoreArgs),
    /// GitOps: keep stacks applied from git repositories (add, ls, inspect, rm, sync, suspend,
    /// resume).
    Gitops {
        #[command(subcommand)]
        command: shoal::cli::gitops::GitopsCommand,
    },
    /// Fault injection on real manager processes, checked for linearizability, durability and
    /// identical replicas (prints one JSON object on its last line; exit 1 when a scenario fails).
    Chaos {
        #[command(subcommand)]
        command: Chaos,
    },
    /// Benchmarks (each prints one JSON object on its last line).
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
}

#[derive(Subcommand)]
enum Chaos {
    /// Run scenarios: without --scenario, the CI subset; --all runs every one.
    Run {
        /// One scenario by name (leader-kill, power-loss, ...; an unknown name lists them all)
        #[arg(long, conflicts_with = "all")]
        scenario: Option<String>,
        /// Every scenario
        #[arg(long)]
        all: bool,
        /// Seed of every random choice (scenario i uses seed + i)
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long each scenario's faults go on
        #[arg(long, default_value = "15s")]
        duration: String,
        /// Print only the JSON report (stderr keeps the progress lines)
        #[arg(long)]
        json: bool,
        /// Break the managers on purpose, to see an oracle catch it (debug builds only):
        /// stale-reads, skip-fsync, ... (an unknown name lists them all)
        #[arg(long, value_name = "NAME")]
        mutation: Option<String>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Service create -> every task RUNNING, with 3 managers and simulated nodes in-process.
    E2e {
        /// Simulated nodes.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Replicas of the measured service.
        #[arg(long, default_value_t = 1000)]
        tasks: usize,
        /// One-replica services created in sequence for the latency percentiles.
        #[arg(long, default_value_t = 50)]
        singles: usize,
        /// Seconds of idle heart-beating to measure CPU over (0: skip).
        #[arg(long, default_value_t = 10.0)]
        idle_secs: f64,
        /// Directory for the managers' data (a real disk).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Service create -> every task RUNNING, and remove -> containers gone, on one node with
    /// the docker executor, side by side with a private dockerd's own swarm when this machine
    /// has dockerd (both driving the same engine).
    Docker {
        /// Replica counts to measure, one service each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "10,50")]
        replicas: Vec<u64>,
        /// Rounds per replica count (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Measure shoal alone, on --docker-host, without a private dockerd.
        #[arg(long)]
        no_dockerd: bool,
        /// The image the replicas run (it must be in the engine).
        #[arg(long, default_value = "shoal-test/busybox:1")]
        image: String,
        /// The engine's address.
        #[arg(long, default_value = shoal::exec::docker::DEFAULT_DOCKER_HOST)]
        docker_host: String,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// GitOps on one node (sim executor): commit -> applied through a signed webhook and by
    /// polling, for a repository of `--stacks` stacks with one changed per commit; the cost of
    /// an idle source's syncs.
    Gitops {
        /// Stacks in the repository.
        #[arg(long, default_value_t = 20)]
        stacks: usize,
        /// Commits timed per trigger (webhook, polling).
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Polling interval in seconds (polling rounds and the idle window).
        #[arg(long, default_value_t = 1)]
        interval: u64,
        /// Seconds the idle source is watched.
        #[arg(long, default_value_t = 30)]
        idle_seconds: u64,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Stacks on one node (sim executor): a full apply against `docker stack deploy` of the same
    /// file, plan and no-op apply latency, and watchers following an apply.
    Apply {
        /// Services in the stack.
        #[arg(long, default_value_t = 50)]
        services: usize,
        /// Replicas per service.
        #[arg(long, default_value_t = 2)]
        replicas: usize,
        /// Plans and no-op applies timed.
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        /// Watchers following the apply.
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// The web dashboard over a store holding --nodes nodes and --tasks tasks: first render
    /// of its pages, and its event stream's lag behind a rollout that replaces every task.
    Dashboard {
        /// Nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Running tasks (over ten services).
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Docker API latency on one node with 10 services, over the unix socket.
    Api {
        /// Calls per read operation.
        #[arg(long, default_value_t = 2000)]
        reads: usize,
        /// Service updates (each a replicated commit).
        #[arg(long, default_value_t = 500)]
        updates: usize,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// In-process scheduler placements on simulated nodes (store on tmpfs when available).
    Scheduler {
        /// Nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Tasks to place.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Give services placement constraints.
        #[arg(long)]
        constraints: bool,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// A fourth manager joining three that hold --mb MiB: time to caught up and voting, the
    /// leader's write latency meanwhile, its data directory per MiB of data once compacted;
    /// etcd (on the PATH) side by side in the same run.
    Join {
        /// MiB of data (configs of 400 KiB) the swarm holds.
        #[arg(long, default_value_t = 100)]
        mb: usize,
        /// Directory for the managers' data (a real disk).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// The data plane on three hosts of this machine (network namespaces, each with its own
    /// dockerd and shoal): a new task's RUNNING to its VIP answering everywhere, requests/s
    /// and p99 through a VIP and the routing mesh against the task addressed directly, bulk
    /// throughput over the overlay (VXLAN, and with direct routing) against the hosts' veths.
    Net {
        /// Tasks started for the programming latency.
        #[arg(long, default_value_t = 50)]
        changes: usize,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// MiB per throughput download.
        #[arg(long, default_value_t = 512)]
        mib: u64,
        /// Rounds of measurement, each path once per round in a rotated order; the report
        /// gives medians, and ratios paired by round.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        /// Concurrent downloads per bulk throughput sample (enough to keep the CPUs busy, so
        /// that the figure is each path's cost per byte); each path is also measured with a
        /// single download, reported as `single_stream_*`.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=32))]
        streams: u64,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Replicated store write throughput/latency with managers on loopback.
    Store {
        /// Number of managers.
        #[arg(long, default_value_t = 3)]
        managers: u64,
        /// Concurrent clients, each updating its own object.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Payload size of each object.
        #[arg(long, default_value_t = 256)]
        value_bytes: usize,
        /// Directory for the managers' data (a real disk).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Kill the leader this many times during the run and report write unavailability.
        #[arg(long, default_value_t = 0)]
        leader_kills: usize,
        /// Run the same workload again on stores that do not seal at rest and report what
        /// sealing costs (`encryption_cost_pct`); the bench then takes twice as long.
        #[arg(long)]
        compare_encryption: bool,
        /// Run the same workload again with log entries and peer messages in JSON instead of
        /// the binary encoding and report the gain (`encoding_gain_pct`); twice as long.
        #[arg(long)]
        compare_encoding: bool,
        /// Run the same workload on three etcd members (on the PATH) right after and report
        /// `ratio_vs_etcd` (needs --managers 3).
        #[arg(long)]
        compare_etcd: bool,
        /// Which managers the clients write through: all of them in turn, the leader, or
        /// the followers (which forward each write to the leader).
        #[arg(long, value_enum, default_value = "spread")]
        client_at: shoal::bench::store::ClientAt,
        /// Run each manager as a process of its own in a network namespace of its own (on one
        /// bridge), its share of the clients beside it; needs root.
        #[arg(long)]
        processes: bool,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// One manager of `bench store --processes`, driven by the benchmark over stdin/stdout.
    #[command(hide = true)]
    StoreMember(shoal::bench::store_processes::MemberArgs),
}

#[derive(clap::Args)]
struct SimnodesArgs {
    /// Managers to join through and connect to (`host:port`, comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    managers: Vec<String>,
    /// How many nodes.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// The swarm's join token (worker or manager).
    #[arg(long)]
    join_token: String,
    /// Keep each node's credentials here, so a restart brings the same nodes back.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host names are `<prefix>-<i>`.
    #[arg(long, default_value = "sim")]
    hostname_prefix: String,
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// Directory for the node's state.
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// Unix socket for the Docker API.
    #[arg(long, env = "SHOAL_API_SOCKET", default_value = "/var/run/shoal.sock")]
    api_socket: PathBuf,
    /// Give this group read and write access to the API socket (mode 0660; by default the
    /// socket is owner-only, 0600), like dockerd's `docker` group
    #[arg(long, value_name = "GROUP")]
    api_socket_group: Option<String>,
    /// Also serve the API on this TCP address: TLS with client certificates (--tlsverify), or
    /// plain HTTP only with --insecure-tcp
    #[arg(long, value_name = "HOST:PORT")]
    api_tcp: Option<String>,
    /// Serve --api-tcp over TLS and accept only clients with a certificate signed by --tlscacert
    #[arg(long)]
    tlsverify: bool,
    /// The CA that signs the clients' certificates (--tlsverify)
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// The TCP listener's certificate, PEM (--tlsverify)
    #[arg(long, value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// The TCP listener's private key, PEM (--tlsverify)
    #[arg(long, value_name = "FILE")]
    tlskey: Option<PathBuf>,
    /// Serve --api-tcp as plain HTTP, without authentication: anyone who reaches the port
    /// controls the swarm
    #[arg(long, conflicts_with = "tlsverify")]
    insecure_tcp: bool,
    /// What the daemon logs: a level (error, warn, info, debug, trace) or a tracing filter such
    /// as "info,shoal_store=debug". Default: $SHOAL_LOG, else warn
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// How log lines are written to stderr: text, or json (one object per line, with the
    /// fields of the spans it is in, such as an API call's request_id)
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Serve this node's metrics (Prometheus text format) at http://HOST:PORT/metrics
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// Make this manager the only manager of its swarm as it starts, keeping everything it
    /// knows (its swarm lost its quorum for good; `docker swarm init --force-new-cluster` does
    /// the same on a running manager)
    #[arg(long)]
    force_new_cluster: bool,
    /// Host name this node reports (several nodes on one machine need distinct names).
    #[arg(long)]
    hostname: Option<String>,
    /// What runs this node's tasks: docker (the default) runs them as containers of the engine
    /// at --docker-host, and refuses them while no engine answers there; process runs task
    /// commands as host processes of this daemon's user, without isolation (only when asked
    /// for); sim runs nothing (scale tests).
    #[arg(long, value_enum)]
    executor: Option<shoal::agent::ExecutorKind>,
    /// The Docker Engine the docker executor drives.
    #[arg(long, env = "SHOAL_DOCKER_HOST", default_value = shoal::exec::docker::DEFAULT_DOCKER_HOST)]
    docker_host: String,
    /// Serve the web dashboard on this address (managers serve it; a worker answers that the
    /// dashboard is on managers). Off by default. On a non-loopback address it needs
    /// --dashboard-token-file or --dashboard-tlsverify
    #[arg(long, value_name = "HOST:PORT")]
    dashboard_addr: Option<String>,
    /// Ask for the token in FILE (at least 16 characters) on the dashboard's login form
    #[arg(long, value_name = "FILE", requires = "dashboard_addr")]
    dashboard_token_file: Option<PathBuf>,
    /// Serve the dashboard over TLS and accept only browsers with a client certificate signed
    /// by --tlscacert (the server uses --tlscert and --tlskey, as the API's --tlsverify does)
    #[arg(long, requires = "dashboard_addr")]
    dashboard_tlsverify: bool,
    /// Where tasks' secrets and configs are mounted (a tmpfs per task; never the data
    /// directory). Default: /run/shoal/<digest of the data directory>. The daemon's own, as
    /// dockerd's --exec-root is: at start it releases the task directories there of tasks it
    /// no longer has.
    #[arg(long)]
    exec_root: Option<PathBuf>,
}

/// How the daemon's TCP API listener is secured, from its flags; an error says what to give.
fn tcp_security(
    args: &DaemonArgs,
) -> anyhow::Result<Option<(String, Option<std::sync::Arc<rustls::ServerConfig>>)>> {
    let tls_flags = args.tlsverify
        || args.tlscacert.is_some()
        || args.tlscert.is_some()
        || args.tlskey.is_some();
    let Some(addr) = &args.api_tcp else {
        // The certificate files alone may be there for the dashboard (--dashboard-tlsverify).
        let for_dashboard = args.dashboard_tlsverify && !args.tlsverify;
        if (tls_flags && !for_dashboard) || args.insecure_tcp {
            anyhow::bail!(
                "--tlsverify, --tlscacert, --tlscert, --tlskey and --insecure-tcp apply to the TCP listener: give its address with --api-tcp HOST:PORT"
            );
        }
        return Ok(None);
    };
    if args.insecure_tcp {
        tracing::warn!(
            "serving the API on tcp {addr} without TLS (--insecure-tcp): anyone who reaches it controls the swarm"
        );
        return Ok(Some((addr.clone(), None)));
    }
    if !args.tlsverify {
        anyhow::bail!(
            "refusing to serve the API on tcp {addr} without TLS: anyone who reaches it would control the swarm. Give --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY (clients then need a certificate signed by CA), or --insecure-tcp to serve plain HTTP on purpose"
        );
    }
    let config = tls_files(args, "--tlsverify")?
        .server_config()
        .map_err(anyhow::Error::msg)?;
    Ok(Some((addr.clone(), Some(config))))
}

/// The certificate files of `--tlscacert --tlscert --tlskey`, all three required by `flag`.
fn tls_files(args: &DaemonArgs, flag: &str) -> anyhow::Result<shoal::api::listen::TlsFiles> {
    let missing: Vec<&str> = [
        ("--tlscacert", args.tlscacert.is_none()),
        ("--tlscert", args.tlscert.is_none()),
        ("--tlskey", args.tlskey.is_none()),
    ]
    .into_iter()
    .filter_map(|(flag, missing)| missing.then_some(flag))
    .collect();
    if !missing.is_empty() {
        anyhow::bail!("{flag} needs {} as well", missing.join(", "));
    }
    Ok(shoal::api::listen::TlsFiles {
        ca: args.tlscacert.clone().unwrap_or_default(),
        cert: args.tlscert.clone().unwrap_or_default(),
        key: args.tlskey.clone().unwrap_or_default(),
    })
}

/// The dashboard's listener and how it is protected, when `--dashboard-addr` asks for one; an
/// error (before anything else starts) when it would be open to a network.
async fn dashboard_listener(
    args: &DaemonArgs,
) -> anyhow::Result<Option<(tokio::net::TcpListener, shoal::dashboard::auth::Access)>> {
    let Some(addr) = &args.dashboard_addr else {
        return Ok(None);
    };
    let tls = if args.dashboard_tlsverify {
        let config = tls_files(args, "--dashboard-tlsverify")?
            .server_config()
            .map_err(anyhow::Error::msg)?;
        Some(config)
    } else {
        None
    };
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on --dashboard-addr {addr}"))?;
    // The address actually bound decides (a host name may resolve to anything).
    let local = tcp.local_addr()?;
    let access =
        shoal::dashboard::auth::Access::decide(local, tls, args.dashboard_token_file.as_deref())
            .map_err(anyhow::Error::msg)?;
    Ok(Some((tcp, access)))
}

async fn run_daemon(args: DaemonArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Listeners first: a daemon that cannot serve its API as asked refuses to start before it
    // touches its data dir.
    let tcp_listener = match tcp_security(&args)? {
        None => None,
        Some((addr, tls)) => {
            let tcp = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("listening on --api-tcp {addr}"))?;
            Some((addr, tcp, tls))
        }
    };
    let metrics_listener = match &args.metrics_addr {
        None => None,
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on --metrics-addr {addr}"))?,
        ),
    };
    let dashboard_listener = dashboard_listener(&args).await?;
    let unix_listener =
        shoal::api::listen::bind_unix(&args.api_socket, args.api_socket_group.as_deref())
            .with_context(|| format!("binding the API socket {}", args.api_socket.display()))?;
    let node = shoal::node::NodeRuntime::start(shoal::node::NodeConfig {
        data_dir: args.data_dir.clone(),
        hostname: args.hostname.clone(),
        executor: shoal::agent::ExecutorChoice {
            kind: args.executor,
            docker_host: args.docker_host.clone(),
            run_dir: args.exec_root.clone(),
        },
        force_new_cluster: args.force_new_cluster,
    })
    .await?;
    // One socket, like dockerd: pass the engine's own routes through when it runs our tasks.
    let engine = match args.executor {
        None | Some(shoal::agent::ExecutorKind::Docker) => {
            shoal::api::engine::Engine::connect(&args.docker_host).await
        }
        _ => None,
    };
    let state = shoal::api::ApiState {
        node: node.clone(),
        engine,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if let Some(listener) = metrics_listener {
        let addr = listener.local_addr()?;
        eprintln!("shoal daemon serving metrics on http://{addr}/metrics");
        tokio::spawn(shoal::api::metrics::serve(
            node.clone(),
            listener,
            wait_stop(stop_rx.clone()),
        ));
    }
    let dashboard = dashboard_listener.map(|(tcp, access)| {
        let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        eprintln!(
            "shoal daemon serving the dashboard on http{}://{local} ({})",
            if access.tls.is_some() { "s" } else { "" },
            access.describe()
        );
        let d = shoal::dashboard::Dashboard::new(state.clone(), access.clone());
        let stop = wait_stop(stop_rx.clone());
        match access.tls {
            None => tokio::spawn(shoal::dashboard::serve(d, tcp, stop)),
            Some(tls) => tokio::spawn(async move {
                let listener = shoal::api::listen::TlsListener::new(tcp, tls)?;
                shoal::dashboard::serve(d, listener, stop).await
            }),
        }
    });
    let unix_state = state.clone();
    let unix_stop = wait_stop(stop_rx.clone());
    let unix =
        tokio::spawn(async move { shoal::api::serve(unix_state, unix_listener, unix_stop).await });
    let tcp = match tcp_listener {
        None => None,
        Some((addr, tcp, None)) => {
            use axum::serve::ListenerExt;
            let listener = tcp.tap_io(|s| {
                let _ = s.set_nodelay(true);
            });
            eprintln!("shoal daemon serving the API on tcp {addr} (plain HTTP)");
            Some(tokio::spawn(shoal::api::serve(
                state,
                listener,
                wait_stop(stop_rx),
            )))
        }
        Some((addr, tcp, Some(tls))) => {
            let listener = shoal::api::listen::TlsListener::new(tcp, tls)?;
            eprintln!("shoal daemon serving the API on tcp {addr} (TLS, client certificates)");
            Some(tokio::spawn(shoal::api::serve(
                state,
                listener,
                wait_stop(stop_rx),
            )))
        }
    };
    eprintln!(
        "shoal daemon {} serving the Docker API on {}",
        shoal::VERSION,
        args.api_socket.display()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let served: anyhow::Result<()> = tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
        r = unix => r.map_err(anyhow::Error::from).and_then(|r| r.map_err(anyhow::Error::from)),
    };
    // Whatever ended the daemon, stop everything: the store's database must be closed before
    // the process exits (see `Store::shutdown`).
    let _ = stop_tx.send(true);
    if let Some(tcp) = tcp {
        let _ = tcp.await;
    }
    // Not awaited: its event streams stay open for as long as browsers keep them.
    if let Some(dashboard) = dashboard {
        dashboard.abort();
    }
    node.shutdown().await;
    let _ = std::fs::remove_file(&args.api_socket);
    served
}

async fn run_simnodes(args: SimnodesArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let nodes = shoal::agent::simnodes::SimNodes::start(shoal::agent::simnodes::SimNodesConfig {
        managers: args.managers,
        count: args.count,
        join_token: args.join_token,
        data_dir: args.data_dir,
        hostname_prefix: args.hostname_prefix,
        sim: Default::default(),
    })
    .await?;
    eprintln!(
        "shoal simnodes: {} simulated nodes joined",
        nodes.agents.len()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    nodes.stop().await;
    Ok(())
}

/// Prints a benchmark report: pretty on stderr unless `--json`, always one JSON line last on stdout.
fn print_report(report: &serde_json::Value, json_only: bool) -> anyhow::Result<()> {
    if !json_only {
        eprintln!("{}", serde_json::to_string_pretty(report)?);
    }
    println!("{report}");
    Ok(())
}

/// How the daemon writes its log lines.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up logging to stderr: `level` (a level or filter; else `$SHOAL_LOG`, else warn) in
/// `format`.
fn init_tracing(level: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::try_new(l).map_err(|e| {
            anyhow::anyhow!(
                "--log-level {l:?} is not a level (error, warn, info, debug, trace) or a filter such as \"info,shoal_store=debug\": {e}"
            )
        })?,
        None => tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    }
    // The DNS server library logs every query at info: one line per container lookup.
    .add_directive("hickory_server=warn".parse().expect("a valid directive"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Daemon(args) => init_tracing(args.log_level.as_deref(), args.log_format)?,
        _ => init_tracing(None, LogFormat::Text)?,
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Daemon(args) => run_daemon(args).await?,
            Command::Simnodes(args) => run_simnodes(args).await?,
            Command::Watch(args) => shoal::cli::exit_on_error(shoal::cli::watch::run(args).await),
            Command::Apply(args) => {
                shoal::cli::exit_with_status(shoal::cli::apply::apply(args).await)
            }
            Command::Plan(args) => {
                shoal::cli::exit_with_status(shoal::cli::apply::plan(args, false).await)
            }
            Command::Diff(args) => {
                shoal::cli::exit_with_status(shoal::cli::apply::plan(args, true).await)
            }
            Command::Rollback(args) => {
                shoal::cli::exit_with_status(shoal::cli::stacks::rollback(args).await)
            }
            Command::History(args) => {
                shoal::cli::exit_with_status(shoal::cli::stacks::history(args).await)
            }
            Command::Backup(args) => {
                shoal::cli::exit_with_status(shoal::cli::backup::backup(args).await)
            }
            Command::Restore(args) => {
                shoal::cli::exit_with_status(shoal::cli::backup::restore(args).await)
            }
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "shoal",
                    &mut std::io::stdout(),
                );
            }
            Command::Status(args) => {
                shoal::cli::exit_with_status(shoal::cli::stacks::status(args).await)
            }
            Command::Gitops { command } => {
                shoal::cli::exit_with_status(shoal::cli::gitops::run(command).await)
            }
            Command::Chaos {
                command:
                    Chaos::Run {
                        scenario,
                        all,
                        seed,
                        duration,
                        json,
                        mutation,
                    },
            } => {
                let duration = shoal::native::parse_duration(&duration)
                    .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
                let (report, ok) = shoal::chaos::run(shoal::chaos::ChaosRun {
                    scenario,
                    all,
                    seed,
                    duration,
                    exe: std::env::current_exe()?,
                    mutation,
                })
                .await?;
                print_report(&report, json)?;
                if !ok {
                    std::process::exit(1);
                }
            }
            Command::Bench { bench } => match bench {
                Bench::E2e {
                    nodes,
                    tasks,
                    singles,
                    idle_secs,
                    dir,
                    json,
                } => {
                    let report = shoal::bench::e2e::run(shoal::bench::e2e::E2eBench {
                        nodes,
                        tasks,
                        singles,
                        idle_secs,
                        dir,
                    })
                    .await?;
                    if !json {
                        eprintln!("{}", serde_json::to_string_pretty(&report)?);
                    }
                    println!("{report}");
                }
                Bench::Docker {
                    replicas,
                    rounds,
                    no_dockerd,
                    image,
                    docker_host,
                    json,
                } => {
                    let report = shoal::bench::docker::run(shoal::bench::docker::DockerBench {
                        replicas,
                        rounds,
                        image,
                        docker_host,
                        compare: !no_dockerd,
                    })
                    .await?;
                    print_report(&report, json)?;
                }
                Bench::Gitops {
                    stacks,
                    rounds,
                    interval,
                    idle_seconds,
                    json,
                } => {
                    let report = shoal::bench::gitops::run(shoal::bench::gitops::GitopsBench {
                        stacks,
                        rounds,
                        interval: std::time::Duration::from_secs(interval.max(1)),
                        idle: std::time::Duration::from_secs(idle_seconds),
                    })
                    .await?;
                    print_report(&report, json)?;
                }
                Bench::Apply {
                    services,
                    replicas,
                    rounds,
                    watchers,
                    json,
                } => {
                    let report = shoal::bench::apply::run(shoal::bench::apply::ApplyBench {
                        services,
                        replicas,
                        rounds,
                        watchers,
                    })
                    .await?;
                    print_report(&report, json)?;
                }
                Bench::Dashboard { nodes, tasks, json } => {
                    let report =
                        shoal::bench::dashboard::run(shoal::bench::dashboard::DashboardBench {
                            nodes,
                            tasks,
                        })
                        .await?;
                    print_report(&report, json)?;
                }
                Bench::Api {
                    reads,
                    updates,
                    json,
                } => {
                    let report =
                        shoal::bench::api::run(shoal::bench::api::ApiBench { reads, updates })
                            .await?;
                    print_report(&report, json)?;
                }
                Bench::Scheduler {
                    nodes,
                    tasks,
                    constraints,
                    json,
                } => {
                    let report =
                        shoal_controllers::bench::scheduler(nodes, tasks, constraints).await?;
                    let mut report = serde_json::to_value(&report)?;
                    report["bench"] = serde_json::json!("scheduler");
                    print_report(&report, json)?;
                }
                Bench::Net {
                    changes,
                    seconds,
                    mib,
                    rounds,
                    streams,
                    json,
                } => {
                    let bench = shoal::bench::net::NetBench {
                        changes,
                        seconds,
                        mib,
                        rounds: rounds as usize,
                        streams: streams as usize,
                    };
                    let report = tokio::task::spawn_blocking(move || shoal::bench::net::run(bench))
                        .await??;
                    print_report(&report, json)?;
                }
                Bench::Join { mb, dir, json } => {
                    let report =
                        shoal::bench::join::run(shoal::bench::join::JoinBench { mb, dir }).await?;
                    print_report(&report, json)?;
                }
                Bench::Store {
                    managers,
                    clients,
                    duration,
                    value_bytes,
                    dir,
                    leader_kills,
                    compare_encryption,
                    compare_encoding,
                    compare_etcd,
                    client_at,
                    processes,
                    json,
                } => {
                    let report = shoal::bench::store::run(shoal::bench::store::StoreBench {
                        managers,
                        clients,
                        duration: Duration::from_secs_f64(duration),
                        value_bytes,
                        dir,
                        leader_kills,
                        compare_encryption,
                        compare_encoding,
                        compare_etcd,
                        client_at,
                        processes,
                    })
                    .await?;
                    if !json {
                        eprintln!("{}", serde_json::to_string_pretty(&report)?);
                    }
                    println!("{report}");
                }
                Bench::StoreMember(args) => {
                    shoal::bench::store_processes::member(args).await?;
                }
            },
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command that prints what it did or found takes `-o json|yaml|table`; the ones
    /// that do not are the daemon and simulated nodes (they run until stopped and print logs),
    /// completions (a shell script), and the benchmarks and chaos runs (one JSON object by
    /// design).
    #[test]
    fn every_command_that_prints_results_takes_an_output_format() {
        const EXEMPT: [&str; 5] = ["daemon", "simnodes", "completions", "bench", "chaos"];
        fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
            for sub in cmd.get_subcommands() {
                leaves(sub, format!("{path} {}", sub.get_name()), out);
            }
            if cmd.get_subcommands().next().is_none() {
                out.push((path, cmd.clone()));
            }
        }
        let root = Cli::command();
        let mut all = Vec::new();
        for sub in root.get_subcommands() {
            if !EXEMPT.contains(&sub.get_name()) {
                leaves(sub, sub.get_name().to_string(), &mut all);
            }
        }
        assert!(
            all.len() >= 15,
            "{:?}",
            all.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        for (path, cmd) in all {
            let output = cmd
                .get_arguments()
                .find(|a| a.get_id() == "output")
                .unwrap_or_else(|| panic!("`shoal {path}` has no -o/--output"));
            assert_eq!(output.get_short(), Some('o'), "shoal {path}");
            let values: Vec<String> = output
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            for want in ["json", "yaml", "table"] {
                assert!(values.iter().any(|v| v == want), "shoal {path}: {values:?}");
            }
        }
    }
}
