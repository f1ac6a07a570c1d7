//! The public watch API (issue 19): HTTP streaming JSON and gRPC on the API socket, the client's
//! watcher, and `shoal watch`.
//!
//! Most tests drive a real `shoal daemon` (objects created through its Docker API); the ones
//! that need a short history (compaction) or many large writes at once (overflow) serve the
//! native router over a store of their own.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use shoal::client::{watcher, Client, ClientError, Event, Host, MessageStream, WatcherConfig};
use shoal::native::watch::{Start, WatchParams};
use shoal::native::wire::WireMessage;
use shoal_proto::watch as pb;
use shoal_proto::watch::watch_client::WatchClient;
use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{new_id, Config, ConfigSpec, Meta};
use shoal_store::{Store, StoreConfig, Txn};

const STEP: Duration = Duration::from_secs(20);

fn client(d: &Daemon) -> Client {
    Client::new(Host::Unix(d.socket.clone()))
}

fn params(f: impl FnOnce(&mut WatchParams)) -> WatchParams {
    let mut p = WatchParams::default();
    f(&mut p);
    p
}

/// Creates a config through the Docker API; returns its id.
fn create_config(d: &Daemon, name: &str, labels: Value) -> String {
    let body = json!({"Name": name, "Labels": labels, "Data": "eA=="}).to_string();
    let (status, answer) = d.curl("POST", "/configs/create", Some(body.as_bytes()));
    assert_eq!(status, 201, "config create {name}: {answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The next message of a watch connection (panics on an error or silence).
async fn next(s: &mut MessageStream) -> WireMessage {
    match tokio::time::timeout(STEP, s.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch message within {STEP:?}"),
    }
}

/// The names of the changes in the next `n` events (skipping progress), with their revisions,
/// checking that revisions increase.
async fn next_changes(s: &mut MessageStream, n: usize) -> Vec<(u64, String, String)> {
    let mut out: Vec<(u64, String, String)> = Vec::new();
    while out.len() < n {
        if let WireMessage::Commit {
            revision, events, ..
        } = next(s).await
        {
            if let Some(last) = out.last() {
                assert!(
                    revision > last.0,
                    "revisions increase: {out:?} then {revision}"
                );
            }
            for e in events {
                out.push((revision, e.action, e.name));
            }
        }
    }
    out
}

fn names(changes: &[(u64, String, String)]) -> Vec<String> {
    changes.iter().map(|c| c.2.clone()).collect()
}

/// `(kind, name)` of a snapshot, tasks named `service.slot` (their ids differ run to run).
async fn snapshot(c: &Client, p: WatchParams) -> BTreeSet<(String, String)> {
    let mut s = c.watch_once(&p).await.expect("the watch starts");
    assert!(matches!(next(&mut s).await, WireMessage::InitBegin { .. }));
    let mut out = BTreeSet::new();
    loop {
        match next(&mut s).await {
            WireMessage::InitObject(o) => {
                let name = match o.kind.as_str() {
                    "task" => o.name.rsplit_once('.').unwrap().0.to_string(),
                    _ => o.name,
                };
                out.insert((o.kind, name));
            }
            WireMessage::InitDone { .. } => return out,
            other => panic!("unexpected in a snapshot: {other:?}"),
        }
    }
}

/// The next message of a gRPC watch (panics on an error or silence).
async fn grpc_message(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> pb::watch_response::Message {
    tokio::time::timeout(STEP, stream.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream goes on")
        .message
        .expect("a message")
}

/// The next item of a watcher.
async fn pull<S>(w: &mut S) -> Result<Event, ClientError>
where
    S: futures::Stream<Item = Result<Event, ClientError>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(60), w.next())
        .await
        .expect("the watcher yields in time")
        .expect("the watcher goes on")
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_a_snapshot_then_each_revision_in_order() {
    let d = swarm("wa-snapshot");
    create_config(&d, "before", json!({}));
    let c = client(&d);
    let mut s = c
        .watch_once(&params(|p| p.kinds = vec!["config".into()]))
        .await
        .unwrap();
    let WireMessage::InitBegin { revision: begin } = next(&mut s).await else {
        panic!("a snapshot starts the stream")
    };
    let WireMessage::InitObject(o) = next(&mut s).await else {
        panic!("then the objects")
    };
    assert_eq!((o.kind.as_str(), o.name.as_str()), ("config", "before"));
    assert_eq!(
        o.object["Spec"]["Name"], "before",
        "the object as Docker shows it"
    );
    assert!(o.version <= begin);
    assert_eq!(
        next(&mut s).await,
        WireMessage::InitDone { revision: begin }
    );
    create_config(&d, "after1", json!({}));
    create_config(&d, "after2", json!({}));
    let changes = next_changes(&mut s, 2).await;
    assert_eq!(names(&changes), ["after1", "after2"]);
    assert!(changes.iter().all(|c| c.0 > begin && c.1 == "create"));
    // The current revision covers them, and waiting for it answers at once.
    let rev = c.current_revision().await.unwrap();
    assert!(
        rev.revision >= changes[1].0 && rev.applied >= changes[1].0,
        "{rev:?}"
    );
    let waited = c
        .wait_for(changes[1].0, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(waited.revision, changes[1].0);
    let e = c
        .wait_for(rev.revision + 1_000_000, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("timeout"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_disconnects_and_resumes_misses_nothing_and_sees_nothing_twice() {
    let mut d = swarm("wa-resume");
    let c = client(&d);
    let configs = |p: &mut WatchParams| {
        p.kinds = vec!["config".into()];
        p.progress_interval = Some(Duration::from_millis(300));
    };

    // The client goes away and comes back after the last revision it saw.
    let mut s = c
        .watch_once(&params(|p| {
            configs(p);
            p.start = Start::Now;
        }))
        .await
        .unwrap();
    let WireMessage::Progress { revision: start } = next(&mut s).await else {
        panic!("a watch from now starts with its revision")
    };
    create_config(&d, "a0", json!({}));
    create_config(&d, "a1", json!({}));
    let seen = next_changes(&mut s, 2).await;
    assert_eq!(names(&seen), ["a0", "a1"]);
    assert!(seen[0].0 > start);
    let last = seen[1].0;
    drop(s);
    for n in ["a2", "a3", "a4"] {
        create_config(&d, n, json!({}));
    }
    let mut s = c
        .watch_once(&params(|p| {
            configs(p);
            p.start = Start::After(last);
        }))
        .await
        .unwrap();
    let replayed = next_changes(&mut s, 3).await;
    assert_eq!(
        names(&replayed),
        ["a2", "a3", "a4"],
        "nothing missed, nothing twice"
    );
    assert!(replayed[0].0 > last);
    create_config(&d, "a5", json!({}));
    assert_eq!(names(&next_changes(&mut s, 1).await), ["a5"]);
    drop(s);

    // The watcher across a daemon restart: it reconnects by itself after the last revision it
    // delivered; what was created while it was cut off arrives once, in order.
    let mut config = WatcherConfig::new(params(|p| {
        configs(p);
        p.start = Start::Now;
    }));
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(500);
    let mut w = Box::pin(watcher(c.clone(), config));
    let mut delivered: Vec<String> = Vec::new();
    let mut revisions: Vec<u64> = Vec::new();
    let mut errors = 0;
    // A watch from now starts with a progress at its revision: from then on nothing is missed.
    assert!(matches!(pull(&mut w).await, Ok(Event::Progress { .. })));
    create_config(&d, "b0", json!({}));
    create_config(&d, "b1", json!({}));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while delivered.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "b0 and b1 in time");
        match pull(&mut w).await {
            Ok(Event::Commit {
                revision, events, ..
            }) => {
                revisions.push(revision);
                delivered.extend(events.into_iter().map(|e| e.name));
            }
            Ok(_) => {}
            Err(e) => panic!("no error before the restart: {e}"),
        }
    }
    d.restart();
    wait_for(STEP, "the manager serves again", || {
        let (status, _) = d.curl("GET", "/shoal/v1/revision", None);
        (status == 200).then_some(())
    });
    for n in ["b2", "b3", "b4"] {
        create_config(&d, n, json!({}));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while delivered.len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "b2 to b4 in time: {delivered:?}"
        );
        match pull(&mut w).await {
            Ok(Event::Commit {
                revision, events, ..
            }) => {
                assert!(revision > *revisions.last().unwrap(), "ordered, no repeat");
                revisions.push(revision);
                delivered.extend(events.into_iter().map(|e| e.name));
            }
            Ok(Event::Init { .. }) | Ok(Event::Compacted { .. }) => {
                panic!("a resume within history never starts over")
            }
            Ok(_) => {}
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                errors += 1;
            }
        }
    }
    assert_eq!(delivered, ["b0", "b1", "b2", "b3", "b4"]);
    assert!(errors >= 1, "the restart cut the watch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_by_kind_stack_label_name_prefix_and_node() {
    let d = swarm("wa-filters");
    create_config(
        &d,
        "st_conf",
        json!({"com.docker.stack.namespace": "st", "tier": "front"}),
    );
    create_config(&d, "plain", json!({}));
    let secret = json!({"Name": "other_secret", "Labels": {"tier": "front"}, "Data": "eA=="});
    let (status, body) = d.curl(
        "POST",
        "/secrets/create",
        Some(secret.to_string().as_bytes()),
    );
    assert_eq!(status, 201, "{body}");
    d.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--label",
        "com.docker.stack.namespace=st",
        "st_front",
    ]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "st_web",
        "--replicas",
        "2",
        "--label",
        "com.docker.stack.namespace=st",
        "--container-label",
        "com.docker.stack.namespace=st",
        "shoal-test/busybox:1",
        "sleep",
        "1000",
    ]);
    wait_for_tasks(&d, "st_web", 2);
    wait_for(STEP, "both tasks placed on the node", || {
        let nodes = d.ok(&["service", "ps", "--format", "{{.Node}}", "st_web"]);
        (nodes.lines().filter(|l| l.trim() == "wa-filters").count() == 2).then_some(())
    });
    // The service's health object belongs to the stack too (written once the health
    // controller has seen the service).
    wait_for(STEP, "st_web's health", || {
        let all = d.get_json("/shoal/v1/health?stack=st");
        (all.as_array()?.len() == 1).then_some(())
    });
    let c = client(&d);

    let configs = snapshot(&c, params(|p| p.kinds = vec!["config".into()])).await;
    assert_eq!(configs, set(&[("config", "plain"), ("config", "st_conf")]));

    let st = set(&[
        ("config", "st_conf"),
        ("health", "st_web"),
        ("network", "st_front"),
        ("service", "st_web"),
        ("task", "st_web.1"),
        ("task", "st_web.2"),
    ]);
    assert_eq!(
        snapshot(&c, params(|p| p.stack = Some("st".into()))).await,
        st
    );
    assert_eq!(
        snapshot(&c, params(|p| p.name_prefix = Some("st_".into()))).await,
        st
    );
    let front = set(&[("config", "st_conf"), ("secret", "other_secret")]);
    assert_eq!(
        snapshot(&c, params(|p| p.labels = vec!["tier=front".into()])).await,
        front
    );
    assert_eq!(
        snapshot(&c, params(|p| p.labels = vec!["tier".into()])).await,
        front
    );
    assert_eq!(
        snapshot(
            &c,
            params(|p| p.labels = vec!["tier=front".into(), "com.docker.stack.namespace".into()])
        )
        .await,
        set(&[("config", "st_conf")])
    );
    assert!(
        snapshot(&c, params(|p| p.labels = vec!["tier=back".into()]))
            .await
            .is_empty()
    );
    let tasks = set(&[("task", "st_web.1"), ("task", "st_web.2")]);
    assert_eq!(
        snapshot(&c, params(|p| p.node = Some("wa-filters".into()))).await,
        tasks,
        "a node by hostname: its tasks"
    );
    assert_eq!(
        snapshot(
            &c,
            params(|p| {
                p.stack = Some("st".into());
                p.kinds = vec!["task".into()];
            })
        )
        .await,
        tasks
    );
    match c
        .watch_once(&params(|p| p.node = Some("no-such-node".into())))
        .await
    {
        Err(ClientError::Api { status, error }) => {
            assert_eq!((status, error.code.as_str()), (400, "invalid_argument"));
            assert!(
                error.message.contains("docker node ls"),
                "{}",
                error.message
            );
        }
        other => panic!("an unknown node is refused, got {:?}", other.map(|_| ())),
    }

    // Live: only matching changes arrive, and an object leaving the filter is said to.
    let mut s = c
        .watch_once(&params(|p| {
            p.labels = vec!["tier=front".into()];
            p.start = Start::Now;
        }))
        .await
        .unwrap();
    assert!(matches!(next(&mut s).await, WireMessage::Progress { .. }));
    create_config(&d, "late_plain", json!({}));
    create_config(&d, "late_front", json!({"tier": "front"}));
    let conf = d.get_json("/configs/st_conf");
    let version = conf["Version"]["Index"].as_u64().unwrap();
    let spec = json!({"Name": "st_conf", "Labels": {"tier": "back"}, "Data": "eA=="});
    let (status, body) = d.curl(
        "POST",
        &format!("/configs/st_conf/update?version={version}"),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let WireMessage::Commit { events, .. } = next(&mut s).await {
            seen.extend(events.into_iter().map(|e| (e.name, e.left_filter)));
        }
    }
    assert_eq!(
        seen,
        [
            ("late_front".to_string(), false),
            ("st_conf".to_string(), true)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_watch_streams_the_same_events_on_the_api_socket() {
    let d = swarm("wa-grpc");
    create_config(&d, "g0", json!({"k": "v"}));
    let c = client(&d);
    let mut grpc = WatchClient::new(c.grpc_channel().await.expect("gRPC over the API socket"))
        .max_decoding_message_size(usize::MAX);
    let mut stream = grpc
        .watch(pb::WatchRequest {
            filter: Some(pb::Filter {
                kinds: vec!["config".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    use pb::watch_response::Message;
    let Message::InitBegin(begin) = grpc_message(&mut stream).await else {
        panic!("a snapshot first")
    };
    let Message::InitObject(o) = grpc_message(&mut stream).await else {
        panic!("the object")
    };
    assert_eq!((o.kind.as_str(), o.name.as_str()), ("config", "g0"));
    let object: Value = serde_json::from_str(&o.object_json).unwrap();
    assert_eq!(object["Spec"]["Labels"]["k"], "v");
    let Message::InitDone(done) = grpc_message(&mut stream).await else {
        panic!("the end of the snapshot")
    };
    assert_eq!(done.revision, begin.revision);

    // The HTTP form of the same watch, resumed from the same revision, carries the same JSON.
    let mut http = c
        .watch_once(&params(|p| {
            p.kinds = vec!["config".into()];
            p.start = Start::After(done.revision);
        }))
        .await
        .unwrap();
    create_config(&d, "g1", json!({}));
    let Message::Commit(commit) = grpc_message(&mut stream).await else {
        panic!("the change")
    };
    assert!(commit.revision > done.revision);
    let event = &commit.events[0];
    assert_eq!(
        (
            event.action.as_str(),
            event.kind.as_str(),
            event.name.as_str()
        ),
        ("create", "config", "g1")
    );
    assert_eq!(event.revision, commit.revision);
    let WireMessage::Commit {
        revision, events, ..
    } = next(&mut http).await
    else {
        panic!("the HTTP change")
    };
    assert_eq!(revision, commit.revision);
    assert_eq!(
        events[0].object,
        serde_json::from_str::<Value>(&event.object_json).unwrap()
    );

    let rev = grpc
        .current_revision(pb::CurrentRevisionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(rev.revision >= commit.revision && rev.applied >= commit.revision);
    let waited = grpc
        .wait_for(pb::WaitForRequest {
            revision: commit.revision,
            timeout_ms: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waited.revision, commit.revision);
    let late = grpc
        .wait_for(pb::WaitForRequest {
            revision: rev.revision + 1_000_000,
            timeout_ms: 200,
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), tonic::Code::DeadlineExceeded, "{late}");
    let bad = grpc
        .watch(pb::WatchRequest {
            filter: Some(pb::Filter {
                kinds: vec!["pods".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("a bad filter is refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("service"), "{}", bad.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_are_not_managers_say_the_watch_is_served_by_managers() {
    let manager = swarm("wa-mgr");
    let worker = Daemon::start("wa-worker");
    let c = client(&worker);
    match c.current_revision().await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!((status, error.code.as_str()), (503, "not_a_manager"));
            assert!(
                error.message.contains("not in a swarm"),
                "{}",
                error.message
            );
        }
        other => panic!("outside a swarm there is no watch: {other:?}"),
    }
    let token = manager
        .ok(&["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    let out = worker.join(&manager, &token);
    assert!(out.ok, "join: {}", out.stderr);
    match c.watch_once(&WatchParams::default()).await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!((status, error.code.as_str()), (503, "not_a_manager"));
            assert!(
                error.message.contains("served by managers"),
                "{}",
                error.message
            );
        }
        other => panic!("a worker serves no watch, got {:?}", other.map(|_| ())),
    }
    let mut grpc = WatchClient::new(c.grpc_channel().await.unwrap());
    let status = grpc
        .watch(pb::WatchRequest::default())
        .await
        .expect_err("a worker refuses the gRPC watch");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("served by managers"),
        "{}",
        status.message()
    );
}

/// A store of its own served by the native router on a unix socket.
struct LocalServer {
    store: Store,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    async fn start(history_revisions: u64) -> LocalServer {
        let dir = tempfile::tempdir().unwrap();
        let net = LocalNetwork::new();
        let mut cfg = StoreConfig::new(1, "member-1", dir.path().join("store"));
        cfg.heartbeat_interval = Duration::from_millis(50);
        cfg.election_timeout = (Duration::from_millis(200), Duration::from_millis(400));
        cfg.history.revisions = history_revisions;
        let store = Store::open(cfg, net.transport("member-1")).await.unwrap();
        net.register("member-1", store.clone());
        store.initialize().await.unwrap();
        for _ in 0..100 {
            if store.is_leader() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(store.is_leader(), "the store elects itself");
        let socket = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let app: axum::Router = shoal::native::router(store.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        LocalServer {
            store,
            socket,
            _dir: dir,
        }
    }

    fn client(&self) -> Client {
        Client::new(Host::Unix(self.socket.clone()))
    }

    /// Creates a config with `data_len` bytes of data; returns its revision.
    async fn config(&self, name: &str, data_len: usize) -> u64 {
        let config = Config {
            meta: Meta::with_id(new_id()),
            spec: ConfigSpec {
                name: name.to_string(),
                data: vec![b'x'; data_len],
                ..Default::default()
            },
        };
        self.store
            .submit(Txn::new().create(config))
            .await
            .unwrap()
            .revision
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_compacted_history_is_an_explicit_error_and_the_watcher_relists() {
    let server = LocalServer::start(20).await;
    let first = server.config("first", 1).await;
    for i in 0..600 {
        server.config(&format!("c{i}"), 1).await;
    }
    let floor = server.store.history_floor();
    assert!(floor > first, "history was pruned");
    let c = server.client();
    let from_first = params(|p| p.start = Start::After(first));

    // HTTP: 410 with what was asked, what is left and where the store is.
    match c.watch_once(&from_first).await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!((status, error.code.as_str()), (410, "compacted"));
            assert_eq!(error.requested, Some(first));
            assert_eq!(error.oldest, Some(floor));
            assert!(error.current.unwrap() >= floor);
            assert!(error.message.contains("list again"), "{}", error.message);
        }
        other => panic!("expected compacted, got {:?}", other.map(|_| ())),
    }
    // gRPC: the error as a message, then OUT_OF_RANGE.
    let mut grpc = WatchClient::new(c.grpc_channel().await.unwrap());
    let mut stream = grpc
        .watch(pb::WatchRequest {
            start: Some(pb::watch_request::Start::AfterRevision(first)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    match stream.message().await.unwrap().unwrap().message {
        Some(pb::watch_response::Message::Error(e)) => {
            assert_eq!(
                (e.code.as_str(), e.requested, e.oldest),
                ("compacted", first, floor)
            );
        }
        other => panic!("expected the compacted message, got {other:?}"),
    }
    assert_eq!(
        stream.message().await.unwrap_err().code(),
        tonic::Code::OutOfRange
    );
    // Resuming at the floor itself still works.
    let mut s = c
        .watch_once(&params(|p| p.start = Start::After(floor)))
        .await
        .unwrap();
    assert!(matches!(next(&mut s).await, WireMessage::Commit { revision, .. } if revision > floor));

    // The watcher says so and starts again with a snapshot of everything there is.
    let mut w = Box::pin(watcher(c.clone(), WatcherConfig::new(from_first)));
    match pull(&mut w).await.unwrap() {
        Event::Compacted {
            requested, oldest, ..
        } => assert_eq!((requested, oldest), (first, floor)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(matches!(pull(&mut w).await.unwrap(), Event::Init { .. }));
    let mut objects = 0;
    loop {
        match pull(&mut w).await.unwrap() {
            Event::InitApply(_) => objects += 1,
            Event::InitDone { .. } => break,
            other => panic!("unexpected in the snapshot: {other:?}"),
        }
    }
    assert_eq!(objects, 601, "every config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_ended_with_an_explicit_overflow_line_and_resumes_after_it() {
    let server = LocalServer::start(100_000).await;
    let c = server.client();
    let p = params(|p| {
        p.kinds = vec!["config".into()];
        p.start = Start::Now;
        p.buffer = Some(1);
    });
    // Open the stream and do not read it while the configs are written: the socket, the
    // server's queue and then the store's one-revision buffer fill up.
    let resp = c
        .get(&format!("/shoal/v1/watch?{}", p.to_query()))
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..60 {
        let name = format!("big{i}");
        let revision = server.config(&name, 100 << 10).await;
        written.push((revision, name));
    }
    let body = tokio::time::timeout(STEP, http_body_util::BodyExt::collect(resp.into_body()))
        .await
        .expect("the stream ends by itself")
        .expect("the stream is read")
        .to_bytes();
    let lines: Vec<WireMessage> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let Some(WireMessage::Error(error)) = lines.last() else {
        panic!(
            "the last line is an error, got {:?}",
            lines.last().map(|_| "...")
        )
    };
    assert_eq!(error.code, "overflow", "{}", error.message);
    let last_delivered = error.last_delivered.unwrap();
    let mut delivered = Vec::new();
    let mut highest = 0;
    for l in &lines[..lines.len() - 1] {
        match l {
            WireMessage::Commit {
                revision, events, ..
            } => {
                highest = *revision;
                delivered.push((*revision, events[0].name.clone()));
            }
            WireMessage::Progress { revision } => highest = highest.max(*revision),
            WireMessage::Error(_) => panic!("only the last line is an error"),
            _ => {}
        }
    }
    assert_eq!(last_delivered, highest, "resume after what was delivered");
    assert!(
        delivered.len() < written.len(),
        "the slow client was cut off ({} of {})",
        delivered.len(),
        written.len()
    );
    assert_eq!(
        delivered,
        written[..delivered.len()],
        "no gap before the end"
    );

    // Resuming after it delivers the rest, once each.
    let mut s = c
        .watch_once(&params(|q| {
            q.kinds = vec!["config".into()];
            q.start = Start::After(last_delivered);
        }))
        .await
        .unwrap();
    let rest = next_changes(&mut s, written.len() - delivered.len()).await;
    let rest: Vec<(u64, String)> = rest.into_iter().map(|(r, _, n)| (r, n)).collect();
    assert_eq!(rest, written[delivered.len()..]);
}

fn spawn_watch(
    d: &Daemon,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("watch")
        .args(args)
        .env("SHOAL_HOST", format!("unix://{}", d.socket.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("shoal watch starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn next_line(rx: &std::sync::mpsc::Receiver<String>) -> String {
    rx.recv_timeout(STEP)
        .expect("shoal watch prints a line in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_watch_prints_events_as_they_happen() {
    let d = swarm("wa-cli");
    let c = client(&d);
    let from = c.current_revision().await.unwrap().revision;
    let from_arg = from.to_string();
    let (mut json, json_lines) =
        spawn_watch(&d, &["-o", "json", "--kind", "config", "--from", &from_arg]);
    let (mut table, table_lines) = spawn_watch(&d, &["--kind", "config", "--from", &from_arg]);
    // One change at a time: each is printed while the command runs.
    for name in ["cli0", "cli1"] {
        let id = create_config(&d, name, json!({"tier": "front"}));
        let line: Value =
            serde_json::from_str(&next_line(&json_lines)).expect("a JSON object per line");
        assert_eq!(line["action"], "create");
        assert_eq!(line["kind"], "config");
        assert_eq!(line["name"], name);
        assert_eq!(line["id"], id.as_str());
        assert!(line["revision"].as_u64().unwrap() > from);
        assert_eq!(line["object"]["Spec"]["Labels"]["tier"], "front");
    }
    let header = next_line(&table_lines);
    assert!(
        header.contains("REVISION") && header.contains("ACTION"),
        "{header}"
    );
    for name in ["cli0", "cli1"] {
        let row = next_line(&table_lines);
        assert!(row.contains(&format!("create   config   {name}")), "{row}");
    }
    let _ = json.kill();
    let _ = json.wait();
    let _ = table.kill();
    let _ = table.wait();

    // Nothing answers there: an error that says what to do, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["watch", "-H", "unix:///nonexistent/shoal.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the shoal daemon") && err.contains("SHOAL_HOST"),
        "{err}"
    );
    // A bad filter is refused with the daemon's explanation.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["watch", "--kind", "pods"])
        .env("SHOAL_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown kind \"pods\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_its_openapi_document_beside_dockers_routes() {
    let d = Daemon::start("wa-openapi");
    let doc = d.get_json("/shoal/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/shoal/v1/watch", "/shoal/v1/revision", "/shoal/v1/wait"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} is described");
    }
    // Docker's routes, versioned or not, are untouched; unknown native paths are the native 404.
    assert_eq!(d.curl("GET", "/v1.41/_ping", None), (200, "OK".to_string()));
    assert_eq!(d.curl("GET", "/_ping", None), (200, "OK".to_string()));
    let (status, body) = d.curl("GET", "/shoal/v1/nope", None);
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("openapi.json"));
}
