//! `shoal apply`, `shoal plan` and `shoal diff`: a stack from compose files, in one transaction
//! on the server; what it would change; and how its rollout ends (`--wait`).
//!
//! Exit status: `plan`/`diff` 0 = no changes, 1 = changes, 2 = error (as `kubectl diff`);
//! `apply` 0 = applied (and, with `--wait`, Succeeded), 2 = error, 3 = Failed, 4 = RolledBack,
//! 5 = TimedOut.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{json, Value};

use super::stack_input::StackInput;
use super::wait::{self, Outcome};
use super::{Connection, Output};

/// Exit status of a plan with changes.
pub const EXIT_CHANGES: i32 = 1;
/// Exit status of an error.
pub const EXIT_ERROR: i32 = 2;

/// `shoal apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    input: StackInput,
    /// Remove the stack's objects that the files no longer have (every kind)
    #[arg(long)]
    prune: bool,
    /// Show what would change; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Follow the rollout until it ends, at most this long (e.g. 90s, 5m) [default on a
    /// terminal: 5m]
    #[arg(long, value_name = "DEADLINE", num_args = 0..=1, default_missing_value = "5m")]
    wait: Option<String>,
    /// Do not wait for the rollout, even on a terminal
    #[arg(long, conflicts_with = "wait")]
    no_wait: bool,
    /// Apply only if the plan is still the one `shoal plan` printed with this token
    #[arg(long, value_name = "TOKEN")]
    plan_token: Option<String>,
    /// How many revisions the stack keeps (1-100, default 10); recorded with the revision
    /// this apply makes (an apply that changes nothing changes nothing)
    #[arg(long, value_name = "N")]
    history_limit: Option<u32>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `shoal plan` and `shoal diff`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    input: StackInput,
    /// Plan with pruning: show what `apply --prune` would remove
    #[arg(long)]
    prune: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `--wait`'s deadline: the native API's duration syntax (`90s`, `5m`, `250ms`, seconds).
pub fn parse_deadline(s: &str) -> anyhow::Result<Duration> {
    crate::native::parse_duration(s).map_err(|e| anyhow::anyhow!("--wait: {e}"))
}

fn symbol(action: &str) -> &'static str {
    match action {
        "create" => "+",
        "update" => "~",
        "replace" => "±",
        "delete" => "-",
        "orphaned" => "!",
        _ => "=",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}

/// A plan as text: one line per object, field rows when `fields`.
pub fn render_plan(plan: &Value, fields: bool) -> String {
    let mut out = String::new();
    let stack = plan["stack"].as_str().unwrap_or_default();
    let current = plan["current_revision"].as_u64().unwrap_or(0);
    match plan["next_revision"].as_u64() {
        Some(next) => out.push_str(&format!("stack {stack}: revision {current} -> {next}\n")),
        None => out.push_str(&format!("stack {stack}: no changes (revision {current})\n")),
    }
    for c in plan["changes"].as_array().into_iter().flatten() {
        let action = c["action"].as_str().unwrap_or_default();
        let kind = c["kind"].as_str().unwrap_or_default().to_lowercase();
        let mut line = format!(
            "{} {:<9} {:<8} {}",
            symbol(action),
            action,
            kind,
            c["name"].as_str().unwrap_or_default()
        );
        if c["adopted"].as_bool() == Some(true) {
            line.push_str("  (adopted from docker stack deploy)");
        }
        if c["rolls_tasks"].as_bool() == Some(true) && action != "create" {
            line.push_str("  [tasks roll]");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if let Some(why) = c["why"].as_str().filter(|w| !w.is_empty()) {
            out.push_str(&format!("      {why}\n"));
        }
        if let Some(u) = c["unschedulable"].as_str() {
            out.push_str(&format!("      would not schedule every task: {u}\n"));
        }
        if fields {
            for f in c["fields"].as_array().into_iter().flatten() {
                let old = f.get("old").map(short).unwrap_or_else(|| "(none)".into());
                let new = f.get("new").map(short).unwrap_or_else(|| "(none)".into());
                out.push_str(&format!(
                    "      {}: {old} -> {new}\n",
                    f["path"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    for m in plan["messages"].as_array().into_iter().flatten() {
        out.push_str(&format!("note: {}\n", m.as_str().unwrap_or_default()));
    }
    for w in plan["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("warning: {}\n", w.as_str().unwrap_or_default()));
    }
    out
}

fn print(output: Output, value: &Value, text: impl FnOnce() -> String) {
    match output {
        Output::Table => print!("{}", text()),
        other => print!("{}", other.render(value)),
    }
}

/// Runs `shoal plan` (`fields`: `shoal diff`); returns the exit status.
pub async fn plan(args: PlanArgs, fields: bool) -> anyhow::Result<i32> {
    let (stack, mut body) = args.input.load()?;
    body.prune = args.prune;
    let client = args.conn.client()?;
    let plan = client
        .post_json(&format!("/shoal/v1/stacks/{stack}/plan"), &json!(body))
        .await?;
    print(args.output, &plan, || {
        let mut s = render_plan(&plan, fields);
        if !fields && plan["next_revision"].is_u64() {
            s.push_str(&format!(
                "plan token: {} (shoal apply --plan-token {} applies exactly this plan)\n",
                plan["token"].as_str().unwrap_or_default(),
                plan["token"].as_str().unwrap_or_default()
            ));
        }
        s
    });
    Ok(if plan["next_revision"].is_u64() {
        EXIT_CHANGES
    } else {
        0
    })
}

/// Runs `shoal apply`; returns the exit status.
pub async fn apply(args: ApplyArgs) -> anyhow::Result<i32> {
    let (stack, mut body) = args.input.load()?;
    body.prune = args.prune;
    body.dry_run = args.dry_run;
    body.plan_token = args.plan_token.clone();
    body.history_limit = args.history_limit;
    let deadline = match (&args.wait, args.no_wait || args.dry_run) {
        (_, true) => None,
        (Some(d), false) => Some(parse_deadline(d)?),
        (None, false) if std::io::stdout().is_terminal() => Some(Duration::from_secs(300)),
        (None, false) => None,
    };
    let client = args.conn.client()?;
    let applied = client
        .post_json(&format!("/shoal/v1/stacks/{stack}/apply"), &json!(body))
        .await?;
    print(args.output, &applied, || {
        let mut s = render_plan(&applied["plan"], false);
        match applied["revision"].as_u64() {
            Some(r) => s.push_str(&format!("applied: stack {stack} is at revision {r}\n")),
            None if args.dry_run => s.push_str("dry run: nothing was changed\n"),
            None => {}
        }
        s
    });
    let (Some(deadline), Some(revision)) = (deadline, applied["revision"].as_u64()) else {
        return Ok(0);
    };
    let store_revision = applied["store_revision"].as_u64().unwrap_or(0);
    let outcome = wait::rollout(&client, &stack, revision, store_revision, deadline).await?;
    Ok(report(args.output, &stack, &outcome))
}

/// Prints how a rollout ended; its exit status.
pub fn report(output: Output, stack: &str, outcome: &Outcome) -> i32 {
    let value = json!({"stack": stack, "result": outcome.state(), "message": outcome.message()});
    print(output, &value, || {
        let msg = outcome.message();
        if msg.is_empty() {
            format!("{}\n", outcome.state())
        } else {
            format!("{}: {msg}\n", outcome.state())
        }
    });
    outcome.exit_code()
}
