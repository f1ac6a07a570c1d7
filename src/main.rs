//! The `shoal` command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shoal", version, about = "Docker Swarm mode's control plane, rebuilt as Kubernetes-style controllers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks (each prints one JSON object on its last line).
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
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
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Bench { bench } => match bench {
                Bench::Store {
                    managers,
                    clients,
                    duration,
                    value_bytes,
                    dir,
                    leader_kills,
                    json,
                } => {
                    let report = shoal::bench::store::run(shoal::bench::store::StoreBench {
                        managers,
                        clients,
                        duration: Duration::from_secs_f64(duration),
                        value_bytes,
                        dir,
                        leader_kills,
                    })
                    .await?;
                    if !json {
                        eprintln!("{}", serde_json::to_string_pretty(&report)?);
                    }
                    println!("{report}");
                }
            },
        }
        Ok(())
    })
}
