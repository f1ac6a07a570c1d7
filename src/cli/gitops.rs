//! `shoal gitops add|ls|inspect|rm|sync|suspend|resume`: GitOps sources, kept applied by the
//! leader (see [`crate::gitops`]).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{Connection, Output};

/// `shoal gitops ...`.
#[derive(clap::Subcommand, Debug)]
pub enum GitopsCommand {
    /// Keep the stacks in a git directory applied
    Add(Box<AddArgs>),
    /// List the sources with their commits and conditions
    Ls(ListArgs),
    /// One source: spec, per-stack results, health and drift, conditions
    Inspect(NameArgs),
    /// Remove a source (its stacks keep running)
    Rm(NameArgs),
    /// Fetch and apply now, and wait for the result
    Sync(SyncArgs),
    /// Stop fetching and applying (what runs stays as it is)
    Suspend(NameArgs),
    /// Fetch and apply again, at once
    Resume(NameArgs),
}

/// `shoal gitops add NAME --repo ... --ref ...`.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The source's name (also the stack's name, without --stack-per-dir)
    name: String,
    /// The repository: an absolute path on the managers, a file://, https:// or ssh:// URL, or
    /// user@host:path (a relative path is made absolute here)
    #[arg(long, value_name = "URL|PATH")]
    repo: String,
    /// A branch, a tag or a commit id
    #[arg(long = "ref", value_name = "BRANCH|TAG|SHA")]
    git_ref: String,
    /// The directory in the repository [default: its root]
    #[arg(long, value_name = "DIR", default_value = "")]
    path: String,
    /// How often to fetch (e.g. 30s, 1m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    interval: String,
    /// Remove objects and whole stacks the repository no longer has
    #[arg(long)]
    prune: bool,
    /// Revert changes made outside git (`docker service update`, `scale`)
    #[arg(long)]
    self_heal: bool,
    /// One stack per subdirectory of --path, named after it
    #[arg(long)]
    stack_per_dir: bool,
    /// A service field another writer owns: `replicas` or a dotted ServiceSpec path
    /// (repeatable); never applied, never reported as drift
    #[arg(long = "ignore", value_name = "FIELD")]
    ignore_fields: Vec<String>,
    /// The swarm secret holding the webhook secret (enables POST /shoal/v1/gitops/NAME/webhook)
    #[arg(long, value_name = "SECRET")]
    webhook_secret: Option<String>,
    /// The swarm secret holding the token sent to an https:// repository (a personal or
    /// deploy token)
    #[arg(long, value_name = "SECRET")]
    token_secret: Option<String>,
    /// The swarm secret holding the ssh private key (deploy key) for an ssh repository
    #[arg(long, value_name = "SECRET")]
    deploy_key_secret: Option<String>,
    /// A known_hosts file with the ssh server's host keys (e.g. `ssh-keyscan HOST`): the only
    /// keys accepted
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<std::path::PathBuf>,
    /// The swarm secret holding the age identities (AGE-SECRET-KEY-1..., as age-keygen
    /// writes them) that decrypt the repository's `.age` files
    #[arg(long, value_name = "SECRET")]
    age_identity_secret: Option<String>,
    /// Add it suspended
    #[arg(long)]
    suspended: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `shoal gitops ls`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// A command on one source.
#[derive(clap::Args, Debug)]
pub struct NameArgs {
    /// The source
    name: String,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `shoal gitops sync NAME`.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// The source
    name: String,
    /// Wait at most this long for the sync to finish (0: do not wait)
    #[arg(long, value_name = "DEADLINE", default_value = "2m")]
    wait: String,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// Runs a `shoal gitops` command; the exit status (0, or 1 when a sync ended Degraded or
/// Stalled).
pub async fn run(cmd: GitopsCommand) -> anyhow::Result<i32> {
    match cmd {
        GitopsCommand::Add(a) => add(*a).await,
        GitopsCommand::Ls(a) => list(a).await,
        GitopsCommand::Inspect(a) => {
            let s: Value = a
                .conn
                .client()?
                .get_json(&format!("/shoal/v1/gitops/{}", a.name))
                .await?;
            match a.output {
                Output::Table => print!("{}", describe(&s)),
                other => print!("{}", other.render(&s)),
            }
            Ok(0)
        }
        GitopsCommand::Rm(a) => {
            let v = a
                .conn
                .client()?
                .delete_json(&format!("/shoal/v1/gitops/{}", a.name))
                .await?;
            match a.output {
                Output::Table => {
                    println!("removed gitops source {}", a.name);
                    let left: Vec<&str> = v["stacks_left_running"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if !left.is_empty() {
                        println!("its stacks keep running: {}", left.join(", "));
                    }
                }
                other => print!("{}", other.render(&v)),
            }
            Ok(0)
        }
        GitopsCommand::Sync(a) => sync(a).await,
        GitopsCommand::Suspend(a) => toggle(a, "suspend").await,
        GitopsCommand::Resume(a) => toggle(a, "resume").await,
    }
}

async fn add(a: AddArgs) -> anyhow::Result<i32> {
    // A relative path means this shell's directory; the leader needs it absolute.
    let repo = match std::path::Path::new(&a.repo) {
        p if p.is_relative()
            && !a.repo.contains("://")
            && !crate::gitops::spec::is_ssh(&a.repo)
            && p.exists() =>
        {
            p.canonicalize()
                .with_context(|| format!("--repo {}", a.repo))?
                .display()
                .to_string()
        }
        _ => a.repo.clone(),
    };
    let known_hosts = match &a.known_hosts {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("--known-hosts {}", p.display()))?
        }
        None => String::new(),
    };
    let body = json!({
        "name": a.name,
        "repo": repo,
        "ref": a.git_ref,
        "path": a.path,
        "interval": a.interval,
        "prune": a.prune,
        "self_heal": a.self_heal,
        "stack_per_dir": a.stack_per_dir,
        "ignore_fields": a.ignore_fields,
        "webhook_secret": a.webhook_secret.unwrap_or_default(),
        "age_identity_secret": a.age_identity_secret.unwrap_or_default(),
        "token_secret": a.token_secret.unwrap_or_default(),
        "deploy_key_secret": a.deploy_key_secret.unwrap_or_default(),
        "known_hosts": known_hosts,
        "suspended": a.suspended,
    });
    let s = a
        .conn
        .client()?
        .post_json("/shoal/v1/gitops", &body)
        .await?;
    match a.output {
        Output::Table => println!(
            "gitops source {} added: {} at {} ({}), every {}s",
            a.name,
            s["Spec"]["Repo"].as_str().unwrap_or(""),
            s["Spec"]["Ref"].as_str().unwrap_or(""),
            match s["Spec"]["Path"].as_str().unwrap_or("") {
                "" => "the repository's root",
                p => p,
            },
            s["Spec"]["IntervalSeconds"]
        ),
        other => print!("{}", other.render(&s)),
    }
    Ok(0)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The conditions that hold, as `Ready` or `Degraded(CommitFailed)`.
fn conditions(s: &Value) -> String {
    let held: Vec<String> = s["Status"]["Conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["Status"].as_bool() == Some(true))
        .map(|c| {
            let kind = c["Type"].as_str().unwrap_or("");
            match c["Reason"].as_str().filter(|r| !r.is_empty() && *r != kind) {
                Some(r) if kind != "Ready" => format!("{kind}({r})"),
                _ => kind.to_string(),
            }
        })
        .collect();
    if held.is_empty() {
        let reason = s["Status"]["Conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["Type"] == "Ready")
            .and_then(|c| c["Reason"].as_str())
            .unwrap_or("NotSynced");
        format!("NotReady({reason})")
    } else {
        held.join(",")
    }
}

async fn list(a: ListArgs) -> anyhow::Result<i32> {
    let all: Value = a.conn.client()?.get_json("/shoal/v1/gitops").await?;
    match a.output {
        Output::Table => {
            println!(
                "{:<20} {:<12} {:<12} {:<7} {:<30} CONDITIONS",
                "NAME", "FETCHED", "APPLIED", "STACKS", "REF"
            );
            for s in all.as_array().into_iter().flatten() {
                let st = &s["Status"];
                println!(
                    "{:<20} {:<12} {:<12} {:<7} {:<30} {}",
                    s["Spec"]["Name"].as_str().unwrap_or(""),
                    short(st["LastFetchedCommit"].as_str().unwrap_or("")),
                    short(st["LastAppliedCommit"].as_str().unwrap_or("")),
                    st["Stacks"].as_object().map(|m| m.len()).unwrap_or(0),
                    s["Spec"]["Ref"].as_str().unwrap_or(""),
                    conditions(s)
                );
            }
        }
        other => {
            for s in all.as_array().into_iter().flatten() {
                print!("{}", other.render(s));
            }
        }
    }
    Ok(0)
}

/// A source as text.
fn describe(s: &Value) -> String {
    let spec = &s["Spec"];
    let st = &s["Status"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!("Name:            {}", text(&spec["Name"])));
    line(format!(
        "Repository:      {} at {}",
        text(&spec["Repo"]),
        text(&spec["Ref"])
    ));
    line(format!(
        "Path:            {}{}",
        match spec["Path"].as_str().unwrap_or("") {
            "" => "/",
            p => p,
        },
        if spec["StackPerDir"] == true {
            " (one stack per subdirectory)"
        } else {
            ""
        }
    ));
    let flags: Vec<&str> = [
        ("Prune", "prune"),
        ("SelfHeal", "self-heal"),
        ("Suspended", "suspended"),
    ]
    .iter()
    .filter(|(k, _)| spec[*k] == true)
    .map(|(_, n)| *n)
    .collect();
    line(format!(
        "Interval:        {}s{}",
        spec["IntervalSeconds"]
            .as_u64()
            .filter(|n| *n > 0)
            .unwrap_or(60),
        if flags.is_empty() {
            String::new()
        } else {
            format!(" ({})", flags.join(", "))
        }
    ));
    line(format!(
        "Fetched commit:  {}",
        text(&st["LastFetchedCommit"])
    ));
    line(format!(
        "Applied commit:  {}",
        text(&st["LastAppliedCommit"])
    ));
    if let Some(e) = st["LastFetchError"].as_str() {
        line(format!("Fetch error:     {e}"));
    }
    if let Some(e) = st["LastSyncError"].as_str() {
        line(format!("Sync error:      {e}"));
    }
    line("Conditions:".into());
    for c in st["Conditions"].as_array().into_iter().flatten() {
        line(format!(
            "  {:<12} {:<6} {:<20} {}",
            text(&c["Type"]),
            c["Status"],
            text(&c["Reason"]),
            text(&c["Message"])
        ));
    }
    line("Stacks:".into());
    for (name, stack) in st["Stacks"].as_object().into_iter().flatten() {
        let health = stack["Health"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["Status"] == true)
            .filter_map(|c| c["Type"].as_str())
            .collect::<Vec<_>>()
            .join(",");
        line(format!(
            "  {name:<20} {:<10} rev {:<4} commit {} {}{}",
            text(&stack["Result"]),
            stack["Revision"],
            short(stack["Commit"].as_str().unwrap_or("")),
            health,
            match stack["Message"].as_str() {
                Some(m) => format!(": {m}"),
                None => String::new(),
            }
        ));
        for d in stack["Drift"].as_array().into_iter().flatten() {
            let show = |v: &Value| {
                if v.is_null() {
                    "(none)".to_string()
                } else {
                    v.to_string()
                }
            };
            line(format!(
                "    drift: {} {}: swarm {} git {}",
                text(&d["Object"]),
                text(&d["Path"]),
                show(&d["Live"]),
                show(&d["Git"])
            ));
        }
    }
    out
}

async fn sync(a: SyncArgs) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    let v = client
        .post_json(&format!("/shoal/v1/gitops/{}/sync", a.name), &json!({}))
        .await?;
    let wanted = v["sync_request"].as_u64().unwrap_or(0);
    let deadline =
        crate::native::parse_duration(&a.wait).map_err(|e| anyhow::anyhow!("--wait: {e}"))?;
    if deadline.is_zero() {
        if a.output == Output::Table {
            println!("sync of {} requested", a.name);
        } else {
            print!("{}", a.output.render(&v));
        }
        return Ok(0);
    }
    let start = Instant::now();
    let s = loop {
        let s: Value = client
            .get_json(&format!("/shoal/v1/gitops/{}", a.name))
            .await?;
        if s["Status"]["ObservedSyncRequest"].as_u64().unwrap_or(0) >= wanted {
            break s;
        }
        if start.elapsed() > deadline {
            bail!(
                "gitops source {}: the sync did not finish within {}; `shoal gitops inspect {}` shows where it is",
                a.name,
                a.wait,
                a.name
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    match a.output {
        Output::Table => print!("{}", describe(&s)),
        other => print!("{}", other.render(&s)),
    }
    let bad = s["Status"]["Conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| (c["Type"] == "Degraded" || c["Type"] == "Stalled") && c["Status"] == true);
    Ok(if bad { 1 } else { 0 })
}

async fn toggle(a: NameArgs, what: &str) -> anyhow::Result<i32> {
    let s = a
        .conn
        .client()?
        .post_json(&format!("/shoal/v1/gitops/{}/{what}", a.name), &json!({}))
        .await?;
    match a.output {
        Output::Table => println!("gitops source {}: {what}d", a.name),
        other => print!("{}", other.render(&s)),
    }
    Ok(0)
}
