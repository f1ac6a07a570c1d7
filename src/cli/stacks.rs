//! `shoal rollback`, `shoal history` and `shoal status`: a stack's revisions and health.

use std::time::Duration;

use serde_json::{json, Value};

use super::apply::{parse_deadline, render_plan, report};
use super::stack_input::applied_by;
use super::wait;
use super::{Connection, Output};

/// `shoal rollback STACK [--to REV]`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The stack
    stack: String,
    /// The revision to restore [default: the one before the current]
    #[arg(long)]
    to: Option<u64>,
    /// Show what would change; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Follow the rollout until it ends, at most this long
    #[arg(long, value_name = "DEADLINE", num_args = 0..=1, default_missing_value = "5m")]
    wait: Option<String>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `shoal history STACK [--diff A B]`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// The stack
    stack: String,
    /// Show what changed between revisions A and B
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    diff: Option<Vec<u64>>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `shoal status [STACK]`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The stack [default: the whole swarm: managers, nodes, services' health, recent events]
    stack: Option<String>,
    /// Redraw the swarm's screen every 2 seconds until interrupted (without a stack)
    #[arg(long, short = 'w')]
    watch: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// Runs `shoal rollback`; returns the exit status (as `shoal apply`'s).
pub async fn rollback(args: RollbackArgs) -> anyhow::Result<i32> {
    let client = args.conn.client()?;
    let body = json!({"to": args.to, "dry_run": args.dry_run, "applied_by": applied_by()});
    let applied = client
        .post_json(&format!("/shoal/v1/stacks/{}/rollback", args.stack), &body)
        .await?;
    match args.output {
        Output::Table => {
            print!("{}", render_plan(&applied["plan"], false));
            if let Some(r) = applied["revision"].as_u64() {
                println!("rolled back: stack {} is at revision {r}", args.stack);
            }
        }
        other => print!("{}", other.render(&applied)),
    }
    let (Some(deadline), Some(revision)) = (&args.wait, applied["revision"].as_u64()) else {
        return Ok(0);
    };
    let deadline: Duration = parse_deadline(deadline)?;
    let store_revision = applied["store_revision"].as_u64().unwrap_or(0);
    let outcome = wait::rollout(&client, &args.stack, revision, store_revision, deadline).await?;
    Ok(report(args.output, &args.stack, &outcome))
}

/// Runs `shoal history`.
pub async fn history(args: HistoryArgs) -> anyhow::Result<i32> {
    let client = args.conn.client()?;
    if let Some(pair) = &args.diff {
        let v: Value = client
            .get_json(&format!(
                "/shoal/v1/stacks/{}/history?diff={},{}",
                args.stack, pair[0], pair[1]
            ))
            .await?;
        match args.output {
            Output::Table => {
                let objects = v["objects"].as_array().cloned().unwrap_or_default();
                if objects.is_empty() {
                    println!(
                        "revisions {} and {} have the same objects",
                        pair[0], pair[1]
                    );
                }
                for o in objects {
                    println!("{}", o["object"].as_str().unwrap_or_default());
                    for f in o["fields"].as_array().into_iter().flatten() {
                        let show = |k: &str| {
                            f.get(k)
                                .map(|x| x.to_string())
                                .unwrap_or_else(|| "(none)".into())
                        };
                        println!(
                            "    {}: {} -> {}",
                            f["path"].as_str().unwrap_or(""),
                            show("old"),
                            show("new")
                        );
                    }
                }
            }
            other => print!("{}", other.render(&v)),
        }
        return Ok(0);
    }
    let revisions: Value = client
        .get_json(&format!("/shoal/v1/stacks/{}/history", args.stack))
        .await?;
    match args.output {
        Output::Table => {
            println!(
                "{:<9} {:<30} {:<22} {:<12} {:<20} RESULT",
                "REVISION", "APPLIED", "BY", "CAUSE", "SOURCE"
            );
            for r in revisions.as_array().into_iter().flatten() {
                let result = match r["result"]["Message"].as_str().filter(|m| !m.is_empty()) {
                    Some(m) => format!("{}: {m}", r["result"]["State"].as_str().unwrap_or("")),
                    None => r["result"]["State"].as_str().unwrap_or("").to_string(),
                };
                println!(
                    "{:<9} {:<30} {:<22} {:<12} {:<20} {}",
                    r["number"],
                    r["applied_at"].as_str().unwrap_or(""),
                    r["applied_by"].as_str().unwrap_or(""),
                    r["cause"].as_str().unwrap_or(""),
                    r["source_digest"]
                        .as_str()
                        .map(|d| &d[..d.len().min(12)])
                        .unwrap_or(""),
                    result
                );
            }
        }
        other => {
            for r in revisions.as_array().into_iter().flatten() {
                print!("{}", other.render(r));
            }
        }
    }
    Ok(0)
}

/// Conditions as one line: `Ready=true (TasksRunning), Progressing=false (...)`.
pub(crate) fn conditions(cs: &Value) -> String {
    cs.as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut s = format!("{}={}", c["Type"].as_str().unwrap_or(""), c["Status"]);
            if let Some(r) = c["Reason"].as_str().filter(|r| !r.is_empty()) {
                s.push_str(&format!(" ({r})"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reasons of the degraded conditions among `cs`.
fn degraded_messages(cs: &Value) -> impl Iterator<Item = &str> {
    cs.as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["Status"] == true && c["Type"] == "Degraded")
        .map(|c| c["Message"].as_str().unwrap_or(""))
}

/// One table row per service health: name, tasks, generation, conditions.
fn print_services<'a>(services: impl Iterator<Item = (&'a str, &'a Value)>) {
    println!(
        "{:<30} {:<10} {:<12} CONDITIONS",
        "SERVICE", "TASKS", "GENERATION"
    );
    for (name, h) in services {
        println!(
            "{:<30} {:<10} {:<12} {}",
            name,
            format!("{}/{}", h["Running"], h["Desired"]),
            h["ObservedGeneration"],
            conditions(&h["Conditions"])
        );
        for m in degraded_messages(&h["Conditions"]).filter(|m| !m.is_empty()) {
            println!("    degraded: {m}");
        }
    }
}

/// Runs `shoal status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let client = args.conn.client()?;
    let Some(stack_name) = &args.stack else {
        return super::overview::run(&client, args.output, args.watch).await;
    };
    if args.watch {
        anyhow::bail!("--watch redraws the swarm's screen (shoal status without a stack); for a stack, follow it with `shoal watch --stack {stack_name}`");
    }
    let stack: Value = client
        .get_json(&format!("/shoal/v1/stacks/{stack_name}"))
        .await?;
    if args.output != Output::Table {
        print!("{}", args.output.render(&stack));
        return Ok(0);
    }
    let status = &stack["Status"];
    println!(
        "stack {stack_name}: revision {} (status observed at revision {})",
        stack["Revision"], status["ObservedRevision"]
    );
    println!("conditions: {}", conditions(&status["Conditions"]));
    for m in degraded_messages(&status["Conditions"]) {
        println!("degraded: {m}");
    }
    print_services(
        status["Services"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(n, h)| (n.as_str(), h)),
    );
    Ok(0)
}
