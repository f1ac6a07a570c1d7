//! The in-process node the HTTP bad-input tests drive, and the oracles they check.
//!
//! One real node (sim executor, its own data dir, a one-manager swarm) serves the complete API
//! router in process: requests go through `tower::ServiceExt::oneshot` with the same version
//! layer the sockets put in front of it, so nothing but the socket is left out.
//!
//! Oracles, for every request:
//! - no panic: the handler's future is polled under `catch_unwind`, and a panic hook records
//!   panics on any thread (a spawned task that panics is swallowed by tokio otherwise);
//! - an answer: within a few seconds, except on the routes that legitimately wait or stream;
//! - a well-formed answer: no 1xx, and every 4xx/5xx has a JSON object body with a `message`
//!   (and a `code` on the native API), with `Content-Type: application/json`;
//! - a rejected request (4xx/5xx) changes nothing: the store's revision is the same after it.
//!   The controllers and the agent keep writing in the background (tasks, statuses, allocations)
//!   after an earlier request created something, so when the revision did move, what the API
//!   owns is compared instead: the set of objects of every kind but tasks, their specs, the
//!   cluster's tokens and keys, stacks' inventories and revisions. Writes that an accepted
//!   request sets off are also waited out before the next request (see [`Harness::settle`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response, StatusCode};
use futures::FutureExt;
use http_body_util::BodyExt;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};
use shoal::agent::{ExecutorChoice, ExecutorKind};
use shoal::api::ApiState;
use shoal::node::{NodeConfig, NodeRuntime, SwarmState};
use shoal_store::model::{Kind, Object};
use shoal_store::{Store, View};
use tower::util::BoxCloneService;
use tower::ServiceExt;

/// Panics seen since they were last taken, with the name of the thread each happened on.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// The name of the runtime threads the node and the router run on.
pub const THREADS: &str = "bad-input";

/// Records every panic (and still prints it as usual).
pub fn record_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed").to_string();
            PANICS.lock().unwrap().push((name, info.to_string()));
            previous(info);
        }));
    });
}

/// Takes the recorded panics of the threads `of` accepts (other tests in this process may
/// panic on purpose on theirs).
pub fn take_panics(of: impl Fn(&str) -> bool) -> Vec<String> {
    let mut all = PANICS.lock().unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = all.drain(..).partition(|(t, _)| of(t));
    *all = others;
    mine.into_iter()
        .map(|(t, p)| format!("thread {t}: {p}"))
        .collect()
}

/// Panics of the harness's runtime and of the calling thread (where requests are polled).
fn our_panics() -> Vec<String> {
    let me = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string();
    take_panics(|t| t == THREADS || t == me)
}

/// Cases per test: `SHOAL_FUZZ_CASES` or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("SHOAL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner with a fixed seed (`SHOAL_FUZZ_SEED` picks another), no failure files, and bounded
/// shrinking: the same cases on every run, so CI is deterministic; a longer or different search
/// is one variable away.
pub fn runner(cases: u32) -> TestRunner {
    let seed = std::env::var("SHOAL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 300,
        max_shrink_time: 60_000,
        ..Config::default()
    })
}

/// One request, ready to send.
#[derive(Clone, Debug)]
pub struct Call {
    /// Method (any token).
    pub method: String,
    /// Path and query, already encoded.
    pub uri: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The route may legitimately wait or stream for longer than a request should take
    /// (events, logs, watch, wait).
    pub may_wait: bool,
    /// Errors come in the native API's form (`{"code", "message"}`).
    pub native: bool,
    /// A gRPC call: errors are in `grpc-status`, not in the body.
    pub grpc: bool,
    /// The route, for the report.
    pub label: String,
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The body, if it ended soon (a 2xx stream does not).
    pub body: Option<Bytes>,
}

/// The API router over a real one-manager swarm.
pub struct Harness {
    /// The runtime everything runs on (multi-threaded, so the node works between cases).
    pub rt: tokio::runtime::Runtime,
    node: NodeRuntime,
    app: BoxCloneService<Request<Body>, Response<Body>, Infallible>,
    statuses: Mutex<BTreeMap<u16, usize>>,
    by_route: Mutex<BTreeMap<String, BTreeMap<u16, usize>>>,
    server_errors: Mutex<std::collections::BTreeSet<String>>,
    background_moves: Mutex<usize>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a node and makes it a one-manager swarm.
    pub fn start() -> Harness {
        record_panics();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREADS)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let node = rt
            .block_on(NodeRuntime::start(NodeConfig {
                data_dir: dir.path().join("data"),
                hostname: Some("fuzz".into()),
                executor: ExecutorChoice {
                    kind: Some(ExecutorKind::Sim),
                    ..ExecutorChoice::default()
                },
                force_new_cluster: false,
            }))
            .expect("the node starts");
        let state = ApiState {
            node: node.clone(),
            engine: None,
        };
        let app = tower::Layer::layer(
            &axum::middleware::from_fn(shoal::api::version::versioned),
            shoal::api::app(state),
        );
        let h = Harness {
            rt,
            node,
            app: BoxCloneService::new(app),
            statuses: Mutex::new(BTreeMap::new()),
            by_route: Mutex::new(BTreeMap::new()),
            server_errors: Mutex::new(Default::default()),
            background_moves: Mutex::new(0),
            _dir: dir,
        };
        h.rt.block_on(h.manager_store());
        h
    }

    /// The store, after making this node a manager again if a request made it leave.
    pub async fn manager_store(&self) -> Store {
        if let SwarmState::Manager { manager, .. } = self.node.state().await {
            return manager.store.clone();
        }
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .to_string();
        let a = self
            .call_ok(
                "POST",
                "/v1.44/swarm/init",
                json!({"ListenAddr": addr, "AdvertiseAddr": addr}),
            )
            .await;
        assert!(a.status.is_success(), "swarm init: {a:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let SwarmState::Manager { manager, .. } = self.node.state().await {
                let store = manager.store.clone();
                while !store.is_leader() {
                    assert!(Instant::now() < deadline, "the new swarm elects no leader");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return store;
            }
            assert!(Instant::now() < deadline, "swarm init left no manager");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a valid JSON request the set-up needs.
    pub async fn call_ok(&self, method: &str, uri: &str, body: Value) -> Answer {
        let call = Call {
            method: method.into(),
            uri: uri.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap(),
            may_wait: false,
            native: false,
            grpc: false,
            label: format!("{method} {uri}"),
        };
        match self.send(&call).await {
            Ok(Some(a)) => a,
            other => panic!("{method} {uri}: {other:?}"),
        }
    }

    /// Sends `call`: `Ok(None)` if it got no answer in time, `Err` if it panicked.
    pub async fn send(&self, call: &Call) -> Result<Option<Answer>, String> {
        let mut builder = Request::builder()
            .method(Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?)
            .uri(&call.uri);
        for (k, v) in &call.headers {
            builder = builder.header(k, v);
        }
        let req = builder
            .body(Body::from(call.body.clone()))
            .map_err(|e| format!("the test built an invalid request: {e}"))?;
        let patience = if call.may_wait {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(20)
        };
        let answer = AssertUnwindSafe(self.app.clone().oneshot(req)).catch_unwind();
        let resp = match tokio::time::timeout(patience, answer).await {
            Err(_) => return Ok(None),
            Ok(Err(panic)) => return Err(panic_text(&*panic)),
            Ok(Ok(Ok(resp))) => resp,
            Ok(Ok(Err(never))) => match never {},
        };
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A 2xx may be a stream that never ends (events, logs, watch); an error must end.
        let wait = if status.is_success() {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        let body = match tokio::time::timeout(wait, resp.into_body().collect()).await {
            Ok(Ok(b)) => Some(b.to_bytes()),
            Ok(Err(e)) => return Err(format!("reading the body failed: {e}")),
            Err(_) if status.is_success() => None,
            Err(_) => return Err(format!("the {status} answer's body never ended")),
        };
        Ok(Some(Answer {
            status,
            content_type,
            body,
        }))
    }

    /// Sends `call` and checks every oracle (see the module docs).
    pub fn check(&self, call: &Call) -> Result<(), TestCaseError> {
        self.rt.block_on(self.check_async(call)).map_err(|e| {
            TestCaseError::fail(format!(
                "{e}\n  request: {} {}\n  headers: {:?}\n  body: {}",
                call.method,
                call.uri,
                call.headers,
                String::from_utf8_lossy(&call.body[..call.body.len().min(2000)])
            ))
        })
    }

    async fn check_async(&self, call: &Call) -> Result<(), String> {
        let store = self.manager_store().await;
        let before = store.view();
        our_panics();
        let sent = self.send(call).await;
        let panics = our_panics();
        if !panics.is_empty() {
            return Err(format!("panicked: {panics:#?}"));
        }
        let answer = match sent? {
            Some(a) => a,
            None if call.may_wait => return Ok(()),
            None => return Err("no answer within 20 s".into()),
        };
        *self
            .statuses
            .lock()
            .unwrap()
            .entry(answer.status.as_u16())
            .or_default() += 1;
        *self
            .by_route
            .lock()
            .unwrap()
            .entry(call.label.clone())
            .or_default()
            .entry(answer.status.as_u16())
            .or_default() += 1;
        check_answer(call, &answer)?;
        if answer.status.is_server_error() {
            let path = call.uri.split('?').next().unwrap_or_default();
            self.server_errors.lock().unwrap().insert(format!(
                "{} {} {path}: {}",
                answer.status.as_u16(),
                call.method,
                body_text(&answer)
            ));
        }
        if answer.status.is_client_error() || answer.status.is_server_error() {
            let after = store.view();
            if after.revision() != before.revision() {
                let (was, now) = (fingerprint(&before), fingerprint(&after));
                if was != now {
                    return Err(format!(
                        "a rejected request ({} {}) changed the store: {}",
                        answer.status,
                        body_text(&answer),
                        describe_change(&was, &now)
                    ));
                }
                *self.background_moves.lock().unwrap() += 1;
            }
        } else if call.method != "GET" && call.method != "HEAD" && !call.grpc {
            self.settle(&store).await;
        }
        Ok(())
    }

    /// Waits until the store has been quiet for a moment (at most a few seconds): an accepted
    /// request sets off controller writes (tasks, allocations), and those should land before
    /// the next request is judged. Not a correctness condition, so no failure if it never is.
    pub async fn settle(&self, store: &Store) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = store.current_revision();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = store.current_revision();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// Prints how the answers were spread, so a run shows what it reached.
    pub fn report(&self, what: &str) {
        let statuses = self.statuses.lock().unwrap();
        let total: usize = statuses.values().sum();
        eprintln!(
            "{what}: {total} requests answered, by status: {statuses:?}; \
             {} rejected ones saw background writes (API-owned state unchanged)",
            self.background_moves.lock().unwrap()
        );
        for (route, statuses) in self.by_route.lock().unwrap().iter() {
            eprintln!("  {route}: {statuses:?}");
        }
        for e in self.server_errors.lock().unwrap().iter() {
            eprintln!("  {}", &e[..e.len().min(300)]);
        }
    }

    /// Stops the node.
    pub fn stop(self) {
        self.rt.block_on(self.node.shutdown());
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into());
    format!("the handler panicked: {text}")
}

fn body_text(a: &Answer) -> String {
    a.body
        .as_ref()
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(500)]).into_owned())
        .unwrap_or_default()
}

/// The answer is well formed: a real status; errors are JSON objects with a message.
fn check_answer(call: &Call, a: &Answer) -> Result<(), String> {
    if a.status.is_informational() {
        return Err(format!("answered {}", a.status));
    }
    let error = a.status.is_client_error() || a.status.is_server_error();
    if !error || call.method == "HEAD" || call.grpc {
        return Ok(());
    }
    let mime = a
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(str::trim);
    if mime != Some("application/json") {
        return Err(format!(
            "a {} answer with Content-Type {:?} (not application/json): {}",
            a.status,
            a.content_type,
            body_text(a)
        ));
    }
    let body: Value = a
        .body
        .as_ref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| {
            format!(
                "a {} answer whose body is not JSON: {}",
                a.status,
                body_text(a)
            )
        })?;
    let message = body["message"].as_str().unwrap_or_default();
    if message.is_empty() {
        return Err(format!(
            "a {} answer without a message: {}",
            a.status,
            body_text(a)
        ));
    }
    if call.native && body["code"].as_str().unwrap_or_default().is_empty() {
        return Err(format!(
            "a native {} answer without a code: {}",
            a.status,
            body_text(a)
        ));
    }
    Ok(())
}

/// What the API owns in the store: every object but tasks, by kind and id, with the parts only
/// API requests write (specs; the cluster's tokens and keys; stacks' inventories and revisions).
pub fn fingerprint(view: &View) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for object in view.state().all_objects() {
        let owned = match &**object {
            Object::Cluster(c) => json!([
                c.spec,
                c.join_tokens,
                c.root_ca,
                c.unlock_key,
                c.removed_nodes
            ]),
            Object::Node(n) => json!(n.spec),
            Object::Service(s) => json!([s.spec, s.previous_spec]),
            Object::Network(n) => json!(n.spec),
            Object::Secret(s) => json!(s.spec),
            Object::Config(c) => json!(c.spec),
            Object::Stack(s) => json!([s.spec, s.inventory, s.revision]),
            // A GitOps source's status is the GitOps controller's.
            Object::GitSource(g) => json!(g.spec),
            // Tasks and health are the controllers' and the agents'; stack revisions are pruned
            // by the stack controller (a new one shows in its stack's revision).
            Object::Task(_) | Object::Health(_) | Object::StackRevision(_) => continue,
        };
        out.insert(format!("{:?} {}", object.kind(), object.id()), owned);
    }
    out
}

fn describe_change(was: &BTreeMap<String, Value>, now: &BTreeMap<String, Value>) -> String {
    let mut lines = Vec::new();
    for (k, v) in now {
        match was.get(k) {
            None => lines.push(format!("created {k}: {v}")),
            Some(old) if old != v => lines.push(format!("changed {k}: {old} -> {v}")),
            _ => {}
        }
    }
    for k in was.keys().filter(|k| !now.contains_key(*k)) {
        lines.push(format!("removed {k}"));
    }
    lines.join("; ")
}

/// The kinds a path segment can name, for [`crate::gen::ObjRef`].
pub fn objects_of(view: &View, kind: Kind) -> Vec<(String, String, u64)> {
    view.state()
        .objects(kind)
        .values()
        .map(|o| {
            (
                o.id().to_string(),
                o.display_name().into_owned(),
                o.version(),
            )
        })
        .collect()
}
