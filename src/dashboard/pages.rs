//! The pages and their fragments (maud templates).
//!
//! A page is a layout around one or more fragments; a fragment is a function of a store view
//! that the page calls when it renders and `/fragments/...` calls when the live stream says
//! it is stale, so both always show the same thing.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use shoal_store::model::{Service, TaskState, Timestamp};
use shoal_store::{Store, View};

use super::model::{self, age, bytes, cpus, ConditionRow, ServiceRow};
use super::{store_or_page, Dashboard};
use crate::native::NativeState;

/// Most task rows the service page shows (a 10,000-replica service would otherwise be a page
/// of megabytes); the state counts above the table cover all of them.
pub const MAX_TASK_ROWS: usize = 1_000;
/// Feed lines on the Overview.
const OVERVIEW_EVENTS: usize = 12;

fn time(t: &Timestamp) -> String {
    if t.is_zero() {
        "-".into()
    } else {
        t.0.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// An id or commit as people read it: its first 12 characters.
pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The page around `body`.
fn layout(title: &str, active: &str, revision: u64, logout: bool, body: Markup) -> Markup {
    let nav = [
        ("/", "Overview"),
        ("/nodes", "Nodes"),
        ("/services", "Services"),
        ("/stacks", "Stacks"),
        ("/gitops", "GitOps"),
        ("/events", "Events"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · shoal" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body data-revision=(revision) {
                header.top {
                    a.brand href="/" { span.logo { "◆" } " shoal" }
                    nav {
                        @for (href, name) in nav {
                            a href=(href) class=(if name == active { "on" } else { "" }) { (name) }
                        }
                    }
                    span #live .live title="Live updates from the store's watch" { "connecting" }
                    @if logout {
                        form.logout method="post" action="/logout" { button type="submit" { "Log out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says something (errors, the worker page).
pub fn message_page(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · shoal" }
                link rel="stylesheet" href="/assets/dashboard.css";
            }
            body {
                header.top { a.brand href="/" { span.logo { "◆" } " shoal" } }
                main.narrow {
                    section.card.message {
                        h1 { (title) }
                        p { (text) }
                    }
                }
            }
        }
    }
}

/// The login form (`error`: why the last attempt failed).
pub fn login_page(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Log in · shoal" }
                link rel="stylesheet" href="/assets/dashboard.css";
            }
            body {
                header.top { a.brand href="/" { span.logo { "◆" } " shoal" } }
                main.narrow {
                    form.card.login method="post" action="/login" {
                        h1 { "Log in to the dashboard" }
                        p.muted { "Paste the token from the file given to " code { "--dashboard-token-file" } "." }
                        @if let Some(e) = error { p.error { (e) } }
                        input type="hidden" name="next" value=(next);
                        label for="token" { "Token" }
                        input #token type="password" name="token" autocomplete="current-password" autofocus required;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A live part of a page: refreshed from `src` when one of `topics` goes stale.
fn live_section(src: &str, topics: &str, body: Markup) -> Markup {
    html! {
        section.fragment data-src=(src) data-topics=(topics) { (body) }
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "running" | "ready" | "active" | "complete" | "leader" | "reachable" | "completed"
        | "rollback_completed" => "good",
        "failed" | "rejected" | "orphaned" | "down" | "unreachable" | "disconnected" | "paused"
        | "rollback_paused" => "bad",
        "shutdown" | "remove" | "drain" | "unknown" => "idle",
        "pause" => "warn",
        _ => "busy",
    }
}

fn chip(text: &str) -> Markup {
    html! { span class=(format!("chip {}", state_class(text))) { (text) } }
}

fn meter(used: f64, total: f64, label: String) -> Markup {
    let pct = if total > 0.0 {
        (used / total * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    let tone = if pct >= 90.0 {
        "bad"
    } else if pct >= 70.0 {
        "warn"
    } else {
        "good"
    };
    html! {
        div.meter title=(format!("{pct:.0}%")) {
            // The bar's width is data, not style: the CSP allows no inline styles, so the
            // script sets it from data-pct (without the script, the label says it all).
            div class=(format!("bar {tone}")) data-pct=(format!("{pct:.1}")) {}
            span { (label) }
        }
    }
}

fn conditions(cs: &[ConditionRow]) -> Markup {
    html! {
        @for c in cs {
            // Ready is good when true; Degraded is bad when true; Progressing is work under way.
            @let tone = match (c.kind.as_str(), c.status) {
                ("Ready", true) => "good",
                ("Ready", false) | ("Degraded", true) | ("Stalled", true) => "bad",
                ("Progressing", true) => "busy",
                ("Drifted", true) => "warn",
                _ => "idle",
            };
            @if c.status || c.kind == "Ready" {
                span class=(format!("chip {tone}")) title=(format!("{}: {}", c.reason, c.message)) {
                    @if c.status { (c.kind) } @else { "Not " (c.kind) }
                }
            }
        }
    }
}

fn replicas(s: &ServiceRow) -> Markup {
    let tone = if s.running >= s.desired {
        "good"
    } else if s.running == 0 && s.desired > 0 {
        "bad"
    } else {
        "busy"
    };
    html! {
        span class=(format!("replicas {tone}")) data-service=(s.name) {
            span.running { (s.running) } "/" span.desired { (s.desired) }
        }
    }
}

fn update(s: &ServiceRow) -> Markup {
    html! {
        @if let Some((state, message)) = &s.update {
            span class=(format!("chip {}", state_class(state))) title=(message) { (state.replace('_', " ")) }
            @if let Some((done, of)) = s.updated {
                " " span.muted { (done) " of " (of) " updated" }
            }
        } @else {
            span.muted { "—" }
        }
    }
}

fn event_rows(rows: &[super::events::EventRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { "No events yet: changes appear here as they are committed." }
        } @else {
            ol.feed {
                @for r in rows {
                    li class=(r.tone) {
                        span.rev title=(time(&r.at)) { "#" (r.revision) }
                        span.kind { (r.kind.as_str()) }
                        @if let Some(id) = &r.service_id {
                            a.name href=(format!("/services/{id}")) { (r.name) }
                        } @else {
                            span.name { (r.name) }
                        }
                        span.detail { (r.detail) }
                        span.when { (r.at.0.format("%H:%M:%S").to_string()) }
                    }
                }
            }
        }
    }
}

/// The Overview's live part.
pub fn overview_fragment(store: &Store, view: &View, recent: &[super::events::EventRow]) -> Markup {
    let o = model::overview(view, model::RaftInfo::of(store));
    let meant: usize = o.tasks_by_state.values().sum();
    let running = o
        .tasks_by_state
        .get(&TaskState::Running)
        .copied()
        .unwrap_or(0);
    let leader = o.managers.iter().find(|m| m.leader);
    html! {
        div.cards {
            div.card {
                h3 { "Swarm" }
                p.big.mono title=(o.swarm_id) { (short(&o.swarm_id)) }
                p.muted { "created " (o.created.as_ref().map(time).unwrap_or_default()) }
            }
            div.card {
                h3 { "Raft" }
                p.big {
                    @if o.raft.healthy() { span.chip.good { "healthy" } } @else { span.chip.bad { "degraded" } }
                    " " span.muted { "term " (o.raft.term) }
                }
                p.muted {
                    "leader " strong { (leader.map(|m| m.hostname.as_str()).unwrap_or("none")) }
                    " · commit " (o.raft.committed) " · applied " (o.raft.applied)
                    @if let Some(ms) = o.raft.quorum_ack_ms { " · quorum ack " (ms) " ms ago" }
                }
                p.muted {
                    @if let Some(r) = o.raft.reachable_voters { (r) " of " }
                    (o.raft.voters) " voters" @if o.raft.reachable_voters.is_some() { " answering" }
                    @if o.raft.learners > 0 { ", " (o.raft.learners) " catching up" } " · this manager: " (o.raft.role.to_lowercase()) }
            }
            div.card {
                h3 { "Nodes" }
                p.big { (o.nodes) }
                p { @for (state, n) in &o.nodes_by_state { span class=(format!("chip {}", state_class(state))) { (n) " " (state) } " " } }
                p { @for (a, n) in &o.nodes_by_availability { @if a != "active" { span class=(format!("chip {}", state_class(a))) { (n) " " (a) } " " } } }
            }
            div.card {
                h3 { "Services" }
                p.big { (o.converged) span.muted { " / " (o.services) } }
                p.muted { "converged" @if !o.not_converged.is_empty() { " · " span.chip.busy { (o.not_converged.len()) " not yet" } } }
                p.muted {
                    (o.stacks) " stacks"
                    @if o.git_sources > 0 {
                        " · " a href="/gitops" { (o.git_sources) " GitOps sources" }
                        @if o.git_sources_ready < o.git_sources { " " span.chip.bad { (o.git_sources - o.git_sources_ready) " not ready" } }
                    }
                }
            }
            div.card {
                h3 { "Tasks" }
                p.big { (running) span.muted { " / " (meant) } }
                p.muted { "running of those meant to run" }
                p { @for (state, n) in &o.tasks_by_state { @if *state != TaskState::Running { span class=(format!("chip {}", state_class(state.as_str()))) { (n) " " (state.as_str()) } " " } } }
            }
        }
        div.columns {
            div.card {
                h2 { "Managers" }
                table {
                    thead { tr { th { "Host" } th { "Address" } th { "Status" } } }
                    tbody {
                        @for m in &o.managers {
                            tr { td { (m.hostname) } td.mono { (m.addr) } td { @if m.leader { (chip("leader")) } @else { (chip(&m.reachability)) } } }
                        }
                    }
                }
                h2 { "Not converged" }
                @if o.not_converged.is_empty() {
                    p.muted { "Every service runs what it should." }
                } @else {
                    table {
                        thead { tr { th { "Service" } th { "Replicas" } th { "Why" } } }
                        tbody {
                            @for s in o.not_converged.iter().take(20) {
                                tr {
                                    td { a href=(format!("/services/{}", s.id)) { (s.name) } }
                                    td { (replicas(s)) }
                                    td { (conditions(&s.conditions)) " " (update(s)) }
                                }
                            }
                        }
                    }
                }
            }
            div.card {
                h2 { "Recent events" a.more href="/events" { "all" } }
                (event_rows(recent))
            }
        }
        p.revision.muted { "at revision " (o.revision) }
    }
}

/// The Nodes table.
pub fn nodes_fragment(view: &View) -> Markup {
    let rows = model::nodes(view);
    html! {
        h1 { "Nodes " span.muted { (rows.len()) } }
        div.scroll {
            table.wide {
                thead { tr {
                    th { "Host" } th { "Role" } th { "Availability" } th { "State" } th { "Manager" }
                    th { "CPU reserved" } th { "Memory reserved" } th.num { "Tasks" } th { "Engine" } th { "Address" }
                } }
                tbody {
                    @for n in &rows {
                        tr {
                            td { strong { (n.hostname) } br; span.mono.muted { (short(&n.id)) } }
                            td { (n.role) }
                            td { (chip(&n.availability)) }
                            td { (chip(&n.state)) @if !n.message.is_empty() && n.state != "ready" { br; span.muted { (n.message) } } }
                            td { @if let Some(m) = &n.manager { (chip(m)) } @else { span.muted { "—" } } }
                            td { (meter(n.cpus_reserved as f64, n.cpus_total as f64, format!("{} / {}", cpus(n.cpus_reserved), cpus(n.cpus_total)))) }
                            td { (meter(n.memory_reserved as f64, n.memory_total as f64, format!("{} / {}", bytes(n.memory_reserved), bytes(n.memory_total)))) }
                            td.num { (n.running) @if n.running != n.tasks { span.muted { " / " (n.tasks) } } }
                            td.muted { (n.engine) }
                            td.mono { (n.addr) }
                        }
                    }
                }
            }
        }
    }
}

/// The Services table.
pub fn services_fragment(view: &View) -> Markup {
    let rows = model::services(view);
    html! {
        h1 { "Services " span.muted { (rows.len()) } }
        @if rows.is_empty() {
            p.muted { "No services yet: " code { "docker service create" } " or " code { "shoal apply" } " make some." }
        } @else {
            div.scroll {
                table.wide #services {
                    thead { tr {
                        th { "Name" } th { "Stack" } th { "Mode" } th { "Replicas" } th { "Image" } th { "Ports" } th { "Update" } th { "Health" }
                    } }
                    tbody {
                        @for s in &rows {
                            tr data-name=(s.name) {
                                td { a href=(format!("/services/{}", s.id)) { strong { (s.name) } } }
                                td { @if s.stack.is_empty() { span.muted { "—" } } @else { a href=(format!("/stacks/{}", s.stack)) { (s.stack) } } }
                                td { (s.mode) }
                                td { (replicas(s)) }
                                td.mono { (s.image) }
                                td.mono { @for p in &s.ports { (p) br; } }
                                td { (update(s)) }
                                td { (conditions(&s.conditions)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One service: its summary, conditions and tasks (with history).
pub fn service_fragment_of(view: &View, service: &shoal_store::Obj<Service>) -> Markup {
    let s = model::service_row(view, service);
    let tasks = model::tasks(view, &s.id);
    let now = Timestamp::now();
    let mut by_state: std::collections::BTreeMap<TaskState, usize> = Default::default();
    for t in tasks.iter().filter(|t| t.desired <= TaskState::Running) {
        *by_state.entry(t.state).or_default() += 1;
    }
    html! {
        div.titlebar {
            h1 { (s.name) " " (replicas(&s)) }
            span.mono.muted { (s.id) }
        }
        div.cards {
            div.card { h3 { "Image" } p.mono { (s.image) } }
            div.card { h3 { "Mode" } p { (s.mode) } @if !s.stack.is_empty() { p.muted { "stack " a href=(format!("/stacks/{}", s.stack)) { (s.stack) } } } }
            div.card { h3 { "Ports" } p.mono { @if s.ports.is_empty() { span.muted { "none" } } @for p in &s.ports { (p) " " } } }
            div.card { h3 { "Update" } p { (update(&s)) } @if let Some((_, m)) = &s.update { @if !m.is_empty() { p.muted { (m) } } } }
            div.card { h3 { "Health" } p { (conditions(&s.conditions)) } @for c in &s.conditions { @if !c.message.is_empty() && (c.status || c.kind == "Ready") { p.muted { (c.kind) ": " (c.message) } } } }
        }
        div.card {
            h2 { "Tasks "
                @for (state, n) in &by_state { span class=(format!("chip {}", state_class(state.as_str()))) { (n) " " (state.as_str()) } " " }
            }
            @if tasks.len() > MAX_TASK_ROWS {
                p.muted { "Showing the first " (MAX_TASK_ROWS) " of " (tasks.len()) " tasks (by slot)." }
            }
            div.scroll {
                table.wide #tasks {
                    thead { tr { th { "Task" } th { "Node" } th { "Desired" } th { "State" } th { "Since" } th { "Error / message" } th { "Image" } } }
                    tbody {
                        @for t in tasks.iter().take(MAX_TASK_ROWS) {
                            tr class=(if t.history { "history" } else { "current" }) data-task=(t.id) {
                                td { @if t.history { span.muted { "\\_ " } } (t.name) br; span.mono.muted { (short(&t.id)) } }
                                td { @if t.node.is_empty() { span.muted { "unassigned" } } @else { (t.node) } }
                                td { (t.desired.as_str()) }
                                td { (chip(t.state.as_str())) }
                                td title=(time(&t.since)) { (age(&t.since, &now)) }
                                td { @if !t.err.is_empty() { span.error { (t.err) } } @else { span.muted { (t.message) } } }
                                td.mono.muted { (t.image) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The Stacks table.
pub fn stacks_fragment(view: &View) -> Markup {
    let rows = model::stacks(view);
    html! {
        h1 { "Stacks " span.muted { (rows.len()) } }
        @if rows.is_empty() {
            p.muted { "No stacks: " code { "shoal apply -f compose.yaml --stack NAME" } " makes one." }
        } @else {
            table.wide {
                thead { tr { th { "Name" } th { "Revision" } th.num { "Services" } th.num { "Other objects" } th { "Health" } } }
                tbody {
                    @for s in &rows {
                        tr {
                            td { a href=(format!("/stacks/{}", s.name)) { strong { (s.name) } } }
                            td { "#" (s.revision) }
                            td.num { (s.services) }
                            td.num { (s.others) }
                            td { (conditions(&s.conditions)) }
                        }
                    }
                }
            }
        }
    }
}

/// A commit id as people read it: its first 12 characters, the whole id in the tooltip.
fn commit(id: &str) -> Markup {
    html! {
        @if id.is_empty() { span.muted { "—" } } @else { code title=(id) { (short(id)) } }
    }
}

fn json_value(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "(none)".into())
}

/// The GitOps sources: for each, where it reads from, its conditions, the commits it fetched
/// and applied, and each stack's result, health and drift.
pub fn gitops_fragment(view: &View) -> Markup {
    let sources = model::git_sources(view);
    let now = Timestamp::now();
    html! {
        h1 { "GitOps " span.muted { (sources.len()) } }
        @if sources.is_empty() {
            p.muted { "No GitOps sources: " code { "shoal gitops add NAME --repo URL --path DIR" } " makes one." }
        }
        @for g in &sources {
            @let spec = &g.spec;
            @let st = &g.status;
            div.card.gitsource data-source=(spec.name) {
                div.titlebar {
                    h2 { (spec.name) }
                    span { (conditions(&model::condition_rows(&st.conditions))) }
                }
                p.mono.muted { (spec.repo) " @ " (spec.git_ref) " : " (if spec.path.is_empty() { "." } else { spec.path.as_str() }) }
                p {
                    @if spec.suspended { span.chip.warn { "suspended" } " " }
                    @if spec.prune { span.chip.idle { "prune" } " " }
                    @if spec.self_heal { span.chip.idle { "self-heal" } " " }
                    @if spec.stack_per_dir { span.chip.idle { "stack per directory" } " " }
                    span.muted { "every " (spec.interval_secs()) "s" }
                    @if !spec.ignore_fields.is_empty() { span.muted { " · ignores " (spec.ignore_fields.join(", ")) } }
                }
                table {
                    tbody {
                        tr { th { "Fetched" } td { (commit(&st.last_fetched_commit)) } }
                        tr {
                            th { "Applied" }
                            td {
                                (commit(&st.last_applied_commit))
                                @if let Some(at) = &st.last_applied_at { " " span.muted title=(time(at)) { (age(at, &now)) " ago" } }
                            }
                        }
                        @if !st.last_fetch_error.is_empty() { tr.bad { th { "Fetch error" } td { (st.last_fetch_error) } } }
                        @if !st.last_sync_error.is_empty() { tr.bad { th { "Sync error" } td { (st.last_sync_error) } } }
                    }
                }
                @for c in st.conditions.iter().filter(|c| c.status && !c.message.is_empty() && c.kind != "Ready") {
                    p class=(if c.kind == "Progressing" { "note busy" } else { "note bad" }) { strong { (c.kind) ": " } (c.message) }
                }
                @if st.stacks.is_empty() {
                    p.muted { "No stacks synced yet." }
                } @else {
                    table.wide {
                        thead { tr { th { "Stack" } th { "Directory" } th { "Result" } th { "Commit" } th { "Revision" } th { "Health" } } }
                        tbody {
                            @for (name, s) in &st.stacks {
                                tr {
                                    td { a href=(format!("/stacks/{name}")) { strong { (name) } } }
                                    td.mono { (s.path) }
                                    td { (chip(&s.result.to_lowercase())) @if !s.message.is_empty() { " " span.muted { (s.message) } } }
                                    td { (commit(&s.commit)) }
                                    td { @if s.revision > 0 { "#" (s.revision) } @else { span.muted { "—" } } }
                                    td { (conditions(&model::condition_rows(&s.health))) }
                                }
                                @if !s.drift.is_empty() {
                                    tr.drift {
                                        td colspan="6" {
                                            table.diff {
                                                tbody {
                                                    @for d in &s.drift {
                                                        tr {
                                                            td.mono { (d.object) }
                                                            td.mono { (d.path) }
                                                            td.old.mono title="in the swarm" { (json_value(&d.live)) }
                                                            td.mono { "≠" }
                                                            td.new.mono title="in git" { (json_value(&d.git)) }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A stack: its services, revisions and, when asked, the diff between two revisions.
fn stack_body(view: &View, name: &str, diff: Option<(u64, u64)>) -> Result<Markup, String> {
    let stack = crate::stack::apply::stack(view, name).map_err(|e| e.to_string())?;
    let history = crate::stack::apply::history(view, name).map_err(|e| e.to_string())?;
    let services: Vec<ServiceRow> = stack
        .inventory
        .iter()
        .filter(|i| i.kind == shoal_store::model::Kind::Service)
        .filter_map(|i| view.get::<Service>(&i.id))
        .map(|s| model::service_row(view, &s))
        .collect();
    let (from, to) = diff.unwrap_or_else(|| {
        let n = history.len();
        match n {
            0 | 1 => (0, 0),
            _ => (history[n - 2].number, history[n - 1].number),
        }
    });
    let a = history.iter().find(|r| r.number == from);
    let b = history.iter().find(|r| r.number == to);
    let changes = match (a, b) {
        (Some(a), Some(b)) => Some(crate::stack::apply::revision_diff(a, b)),
        _ => None,
    };
    Ok(html! {
        div.titlebar { h1 { "Stack " (stack.spec.name) } span.muted { "revision #" (stack.revision) } }
        div.card {
            h2 { "Services" }
            table.wide {
                thead { tr { th { "Name" } th { "Replicas" } th { "Image" } th { "Update" } th { "Health" } } }
                tbody {
                    @for s in &services {
                        tr {
                            td { a href=(format!("/services/{}", s.id)) { (s.name) } }
                            td { (replicas(s)) }
                            td.mono { (s.image) }
                            td { (update(s)) }
                            td { (conditions(&s.conditions)) }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Revisions" }
            table.wide {
                thead { tr { th { "#" } th { "Applied" } th { "By" } th { "Cause" } th { "Result" } } }
                tbody {
                    @for r in history.iter().rev() {
                        tr {
                            td { "#" (r.number) }
                            td { (time(&r.applied_at)) }
                            td { (r.applied_by) }
                            td { (r.cause) }
                            td { (chip(&r.result.state.to_lowercase())) @if !r.result.message.is_empty() { " " span.muted { (r.result.message) } } }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Diff" }
            form.diff method="get" action=(format!("/stacks/{name}")) {
                label { "from " select name="from" { @for r in &history { option value=(r.number) selected[r.number == from] { "#" (r.number) } } } }
                label { " to " select name="to" { @for r in &history { option value=(r.number) selected[r.number == to] { "#" (r.number) } } } }
                " " button type="submit" { "Compare" }
            }
            @match &changes {
                None => p.muted { "A diff needs two retained revisions." },
                Some(c) if c.is_empty() => p.muted { "Revisions #" (from) " and #" (to) " have the same objects." },
                Some(c) => {
                    @for (object, fields) in c {
                        h3.mono { (object) }
                        table.diff {
                            tbody {
                                @for f in fields {
                                    tr {
                                        td.mono { (f.path) }
                                        td.old.mono { (f.old.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "(none)".into())) }
                                        td.mono { "→" }
                                        td.new.mono { (f.new.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "(none)".into())) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn html_page(m: Markup) -> Response {
    Html(m.into_string()).into_response()
}

fn logout<S>(d: &Dashboard<S>) -> bool {
    d.access.token.is_some()
}

/// A top-level page: fragment `name` (see [`named_fragment`]) as its live part, refreshed
/// when one of `topics` goes stale, under the nav entry `title`.
async fn top_page<S: NativeState>(
    d: &Dashboard<S>,
    name: &str,
    title: &str,
    topics: &str,
) -> Response {
    let store = match store_or_page(d).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let view = store.view();
    let Some(fragment) = named_fragment(d, name, &store, &view) else {
        return not_a_fragment();
    };
    let body = live_section(&format!("/fragments/{name}"), topics, fragment);
    html_page(layout(title, title, view.revision(), logout(d), body))
}

/// The fragment of a top-level page by name (`None`: no such fragment), rendered from one
/// view: what the page shows and what `/fragments/{name}` serves are the same function.
fn named_fragment<S>(d: &Dashboard<S>, name: &str, store: &Store, view: &View) -> Option<Markup> {
    Some(match name {
        "overview" => overview_fragment(store, view, &d.recent.latest(OVERVIEW_EVENTS)),
        "nodes" => nodes_fragment(view),
        "services" => services_fragment(view),
        "stacks" => stacks_fragment(view),
        "gitops" => gitops_fragment(view),
        "events" => events_fragment(d),
        _ => return None,
    })
}

fn not_a_fragment() -> Response {
    (StatusCode::NOT_FOUND, "no such fragment").into_response()
}

/// `GET /`.
pub async fn overview<S: NativeState>(State(d): State<Dashboard<S>>) -> Response {
    top_page(&d, "overview", "Overview", "overview events").await
}

/// `GET /nodes`.
pub async fn nodes<S: NativeState>(State(d): State<Dashboard<S>>) -> Response {
    top_page(&d, "nodes", "Nodes", "nodes").await
}

/// `GET /services`.
pub async fn services<S: NativeState>(State(d): State<Dashboard<S>>) -> Response {
    top_page(&d, "services", "Services", "services").await
}

/// `GET /services/{id}` (an id or a name).
pub async fn service<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Path(id): Path<String>,
) -> Response {
    let store = match store_or_page(&d).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let view = store.view();
    let Some(s) = view.service_by_id_or_name(&id) else {
        return (
            StatusCode::NOT_FOUND,
            html_page(message_page(
                "No such service",
                &format!("There is no service {id} (it may have been removed)."),
            )),
        )
            .into_response();
    };
    let body = live_section(
        &format!("/fragments/service/{}", s.meta.id),
        &format!("service:{}", s.meta.id),
        service_fragment_of(&view, &s),
    );
    html_page(layout(
        &s.spec.name,
        "Services",
        view.revision(),
        logout(&d),
        body,
    ))
}

/// `GET /stacks`.
pub async fn stacks<S: NativeState>(State(d): State<Dashboard<S>>) -> Response {
    top_page(&d, "stacks", "Stacks", "stacks").await
}

/// `GET /gitops`.
pub async fn gitops<S: NativeState>(State(d): State<Dashboard<S>>) -> Response {
    top_page(&d, "gitops", "GitOps", "gitops").await
}

/// Query of a stack page: the two revisions to compare.
#[derive(Debug, Default, Deserialize)]
pub struct DiffQuery {
    /// The older revision.
    pub from: Option<u64>,
    /// The newer revision.
    pub to: Option<u64>,
}

/// `GET /stacks/{name}[?from=A&to=B]`.
pub async fn stack<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Path(name): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let store = match store_or_page(&d).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let view = store.view();
    let diff = q.from.zip(q.to);
    match stack_body(&view, &name, diff) {
        Ok(body) => {
            let mut src = format!(
                "/fragments/stack/{}",
                form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
            );
            if let Some((from, to)) = diff {
                src.push_str(&format!("?from={from}&to={to}"));
            }
            let body = live_section(&src, "stacks services", body);
            html_page(layout(&name, "Stacks", view.revision(), logout(&d), body))
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            html_page(message_page("No such stack", &e)),
        )
            .into_response(),
    }
}

/// `GET /events`.
pub async fn events<S: NativeState>(State(d): State<Dashboard<S>>) -> Response {
    top_page(&d, "events", "Events", "events").await
}

fn events_fragment<S>(d: &Dashboard<S>) -> Markup {
    html! {
        h1 { "Events" }
        p.muted { "The store's commits as they happen, newest first (task changes of one commit grouped by service)." }
        div.card { (event_rows(&d.recent.latest(super::events::KEPT))) }
    }
}

/// `GET /fragments/{name}`: `overview`, `nodes`, `services`, `stacks`, `gitops`, `events`.
pub async fn fragment<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Path(name): Path<String>,
) -> Response {
    let store = match store_or_page(&d).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match named_fragment(&d, &name, &store, &store.view()) {
        Some(m) => html_page(m),
        None => not_a_fragment(),
    }
}

/// `GET /fragments/stack/{name}[?from=A&to=B]`.
pub async fn stack_fragment<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Path(name): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let store = match store_or_page(&d).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match stack_body(&store.view(), &name, q.from.zip(q.to)) {
        Ok(body) => html_page(body),
        Err(e) => html_page(html! {
            div.card.message { h1 { "This stack is gone" } p { (e) } }
        }),
    }
}

/// `GET /fragments/service/{id}`.
pub async fn service_fragment<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Path(id): Path<String>,
) -> Response {
    let store = match store_or_page(&d).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let view = store.view();
    match view.get::<Service>(&id) {
        Some(s) => html_page(service_fragment_of(&view, &s)),
        None => html_page(html! {
            div.card.message { h1 { "This service was removed" } p { a href="/services" { "Back to the services" } } }
        }),
    }
}
