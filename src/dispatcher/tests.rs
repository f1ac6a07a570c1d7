//! Component tests: the dispatcher served over mutual TLS by a real one-manager store, driven by
//! a hand-written agent.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::dispatcher::assignment_change::{Action as ChangeAction, Kind as ChangeKind};
use shoal_proto::dispatcher::assignments_message::Type as MessageType;
use shoal_proto::dispatcher::session_message::Kind as SessionKind;
use shoal_proto::dispatcher::{
    AssignmentsMessage, AssignmentsRequest, HeartbeatRequest, LogEntry, PublishLogsMessage,
    SessionRequest, TaskStatusUpdate, UpdateTaskStatusRequest,
};
use shoal_store::model::{Node, NodeState, TaskState, TaskStatus, Timestamp};
use shoal_store::Txn;
use tokio::time::Instant;
use tonic::Streaming;

use super::term::Term;
use super::testkit::{wait_until, TestSwarm};
use super::{DispatcherConfig, HEARTBEAT_FAILURE};
use crate::exec::LogOptions;

const PERIOD: Duration = Duration::from_secs(5);

async fn swarm() -> TestSwarm {
    TestSwarm::start(PERIOD, DispatcherConfig::default()).await
}

fn term(s: &TestSwarm) -> Arc<Term> {
    s.dispatcher.shared.term.borrow().clone().expect("a term")
}

async fn next_assignment(stream: &mut Streaming<AssignmentsMessage>) -> AssignmentsMessage {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an assignments message in time")
        .expect("no stream error")
        .expect("the stream goes on")
}

fn task_ids(m: &AssignmentsMessage, action: ChangeAction) -> Vec<String> {
    let mut ids: Vec<String> = m
        .changes
        .iter()
        .filter(|c| c.action == action as i32 && c.kind == ChangeKind::Task as i32)
        .map(|c| c.id.clone())
        .collect();
    ids.sort();
    ids
}

fn status_update(task_id: &str, state: TaskState) -> TaskStatusUpdate {
    TaskStatusUpdate {
        task_id: task_id.into(),
        status_json: serde_json::to_vec(&TaskStatus::new(state, Timestamp::now(), state.as_str()))
            .unwrap(),
    }
}

/// Opens a session and returns its id and stream.
async fn open_session(
    client: &mut shoal_proto::dispatcher::dispatcher_client::DispatcherClient<
        tonic::transport::Channel,
    >,
) -> (String, Streaming<shoal_proto::dispatcher::SessionMessage>) {
    let mut stream = client
        .session(SessionRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(SessionKind::State(state)) = first.kind else {
        panic!("the first session message is the state")
    };
    (state.session_id, stream)
}

#[tokio::test]
async fn a_session_marks_the_node_ready_and_streams_its_assignments() {
    let s = swarm().await;
    let (node_id, creds) = s.add_node("w1").await;
    // The node was DOWN; registering brings it back.
    let mut node = s
        .store
        .view()
        .get::<Node>(&node_id)
        .unwrap()
        .to_owned_value();
    node.status.state = NodeState::Down;
    node.status.addr = "10.9.9.9".into();
    s.store.submit(Txn::new().update(node)).await.unwrap();
    let t1 = s.assign(&node_id, TaskState::Running).await;
    let (other, _) = s.add_node("w2").await;
    s.assign(&other, TaskState::Running).await;

    let mut client = s.client(&creds).await;
    let mut session = client
        .session(SessionRequest::default())
        .await
        .unwrap()
        .into_inner();
    let Some(SessionKind::State(state)) = session.message().await.unwrap().unwrap().kind else {
        panic!("expected the session state")
    };
    assert!(!state.session_id.is_empty());
    assert!(state.root_ca_pem.contains("BEGIN CERTIFICATE"));
    let stored: Node = serde_json::from_slice(&state.node_json).unwrap();
    assert_eq!(stored.meta.id, node_id);
    assert_eq!(s.node_state(&node_id), Some(NodeState::Ready));
    let addr = s
        .store
        .view()
        .get::<Node>(&node_id)
        .unwrap()
        .status
        .addr
        .clone();
    assert_eq!(addr, "127.0.0.1", "address from the TLS peer");

    let period = client
        .heartbeat(HeartbeatRequest {
            session_id: state.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .period_ms;
    assert!((4500..=5500).contains(&period), "period {period} ms");

    let mut assignments = client
        .assignments(AssignmentsRequest {
            session_id: state.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let complete = next_assignment(&mut assignments).await;
    assert_eq!(complete.r#type, MessageType::Complete as i32);
    assert_eq!(task_ids(&complete, ChangeAction::Update), vec![t1.clone()]);

    let t2 = s.assign(&node_id, TaskState::Running).await;
    let inc = next_assignment(&mut assignments).await;
    assert_eq!(inc.r#type, MessageType::Incremental as i32);
    assert_eq!(inc.applies_to, complete.results_in);
    assert_eq!(task_ids(&inc, ChangeAction::Update), vec![t2.clone()]);

    // Status reports: batched, applied, and not echoed back.
    client
        .update_task_status(UpdateTaskStatusRequest {
            session_id: state.session_id.clone(),
            updates: vec![
                status_update(&t1, TaskState::Running),
                status_update(&t2, TaskState::Preparing),
            ],
        })
        .await
        .unwrap();
    assert_eq!(s.task_state(&t1), Some(TaskState::Running));
    assert_eq!(s.task_state(&t2), Some(TaskState::Preparing));
    // A stale report is dropped; a newer one for the other task still lands.
    client
        .update_task_status(UpdateTaskStatusRequest {
            session_id: state.session_id.clone(),
            updates: vec![
                status_update(&t1, TaskState::Starting),
                status_update(&t2, TaskState::Ready),
            ],
        })
        .await
        .unwrap();
    assert_eq!(s.task_state(&t1), Some(TaskState::Running));
    assert_eq!(s.task_state(&t2), Some(TaskState::Ready));

    // A desired-state change is the next assignment message: the status writes were not echoed.
    s.set_desired(&t1, TaskState::Shutdown).await;
    let inc2 = next_assignment(&mut assignments).await;
    assert_eq!(inc2.applies_to, inc.results_in);
    assert_eq!(task_ids(&inc2, ChangeAction::Update), vec![t1.clone()]);

    // Deleting the task removes it.
    s.store
        .submit(Txn::new().delete(shoal_store::model::Kind::Task, t1.clone(), None))
        .await
        .unwrap();
    let inc3 = next_assignment(&mut assignments).await;
    assert_eq!(inc3.applies_to, inc2.results_in);
    assert_eq!(task_ids(&inc3, ChangeAction::Remove), [t1]);

    // Calls with a stale session id are refused so the agent re-registers.
    let err = client
        .heartbeat(HeartbeatRequest {
            session_id: "bogus".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test]
async fn status_reports_for_other_nodes_tasks_are_ignored() {
    let s = swarm().await;
    let (n1, c1) = s.add_node("w1").await;
    let (n2, _) = s.add_node("w2").await;
    let mine = s.assign(&n1, TaskState::Running).await;
    let theirs = s.assign(&n2, TaskState::Running).await;
    let mut client = s.client(&c1).await;
    let (sid, _session) = open_session(&mut client).await;
    client
        .update_task_status(UpdateTaskStatusRequest {
            session_id: sid,
            updates: vec![
                status_update(&mine, TaskState::Running),
                status_update(&theirs, TaskState::Failed),
                status_update("no-such-task", TaskState::Running),
            ],
        })
        .await
        .unwrap();
    assert_eq!(s.task_state(&mine), Some(TaskState::Running));
    assert_eq!(s.task_state(&theirs), Some(TaskState::Assigned));
    s.stop().await;
}

#[tokio::test]
async fn a_node_that_stops_heartbeating_is_marked_down() {
    let s = swarm().await;
    let (silent, c1) = s.add_node("silent").await;
    let (alive, c2) = s.add_node("alive").await;
    let mut c1 = s.client(&c1).await;
    let mut c2 = s.client(&c2).await;
    let (_sid1, mut session1) = open_session(&mut c1).await;
    let (sid2, _session2) = open_session(&mut c2).await;
    let t = term(&s);
    let registered = Instant::now();

    // The clock is injected: just before period x 3 nothing happens.
    t.expire_now(registered + PERIOD * 3 - Duration::from_millis(500));
    assert_eq!(s.node_state(&silent), Some(NodeState::Ready));

    // `alive` heartbeats (its deadline moves past the next check); `silent` does not.
    tokio::time::sleep(Duration::from_millis(20)).await;
    c2.heartbeat(HeartbeatRequest { session_id: sid2 })
        .await
        .unwrap();
    t.expire_now(registered + PERIOD * 3 + Duration::from_millis(5));
    wait_until("the silent node is DOWN", || {
        s.node_state(&silent) == Some(NodeState::Down)
    })
    .await;
    let node = s.store.view().get::<Node>(&silent).unwrap();
    assert_eq!(node.status.message, HEARTBEAT_FAILURE);
    assert_eq!(s.node_state(&alive), Some(NodeState::Ready));
    // Its session stream ended with an error.
    let ended = loop {
        match session1.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(ended.is_err(), "the session should end with an error");

    // Coming back marks it READY again.
    let (_sid, _session) = open_session(&mut c1).await;
    assert_eq!(s.node_state(&silent), Some(NodeState::Ready));
    s.stop().await;
}

#[tokio::test]
async fn a_real_heartbeat_timeout_marks_a_silent_node_down() {
    // The same through the sweeper and real time, with a short period.
    let s = TestSwarm::start(Duration::from_millis(200), DispatcherConfig::default()).await;
    let (node, creds) = s.add_node("w1").await;
    let mut client = s.client(&creds).await;
    let (_sid, _session) = open_session(&mut client).await;
    wait_until("the node is DOWN", || {
        s.node_state(&node) == Some(NodeState::Down)
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn after_a_leader_change_nodes_get_a_grace_period() {
    let s = swarm().await;
    let (back, _) = s.add_node("comes-back").await;
    let (gone, _) = s.add_node("never-returns").await;
    // A new term begins: nodes are READY in the store but nobody has a session with it yet.
    let shoal_store::Leadership::Leader { term: n } = *s.store.leadership().borrow() else {
        panic!("the manager leads")
    };
    let t = Term::start(s.store.clone(), n, &DispatcherConfig::default());
    t.wait_ready(Duration::from_secs(10)).await.unwrap();
    let start = Instant::now();
    // Past the heartbeat timeout but within the grace: nobody is marked DOWN.
    t.expire_now(start + PERIOD * 4);
    // One node registers with the new term; the grace then runs out for the other.
    let registered = t.register(&back, None, None).await.unwrap();
    t.heartbeat_at(&back, &registered.session_id, start + PERIOD * 5)
        .unwrap();
    assert_eq!(s.node_state(&gone), Some(NodeState::Ready));
    t.expire_now(start + PERIOD * 6 + Duration::from_millis(1));
    wait_until("the node that never returned is DOWN", || {
        s.node_state(&gone) == Some(NodeState::Down)
    })
    .await;
    assert_eq!(s.node_state(&back), Some(NodeState::Ready));
    drop(registered);
    t.shutdown();
    s.stop().await;
}

#[tokio::test]
async fn calls_without_a_node_certificate_are_refused() {
    let s = swarm().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", s.addr))
        .unwrap()
        .tls_config(crate::ca::pinned_ca_client_tls_config(s.ca.cert_pem()).unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = shoal_proto::dispatcher::dispatcher_client::DispatcherClient::new(channel);
    let err = client.session(SessionRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    s.stop().await;
}

#[tokio::test]
async fn log_subscriptions_reach_the_agent_and_its_lines_come_back() {
    let s = swarm().await;
    let (node, creds) = s.add_node("w1").await;
    let task = s.assign(&node, TaskState::Running).await;
    let mut client = s.client(&creds).await;
    let (sid, mut session) = open_session(&mut client).await;

    let broker = s.dispatcher.log_broker();
    let mut lines = broker
        .subscribe(vec![task.clone()], LogOptions::default())
        .await
        .unwrap();
    // The agent receives the subscription on its session stream.
    let sub = loop {
        let msg = session.message().await.unwrap().unwrap();
        if let Some(SessionKind::SubscribeLogs(sub)) = msg.kind {
            break sub;
        }
    };
    assert_eq!(sub.task_ids, vec![task.clone()]);
    assert!(!sub.close);
    let entry = |line: &str| LogEntry {
        task_id: task.clone(),
        stream: "stdout".into(),
        timestamp_unix_nanos: 1_000,
        line: line.as_bytes().to_vec(),
    };
    let messages = vec![
        PublishLogsMessage {
            session_id: sid.clone(),
            subscription_id: sub.id.clone(),
            entries: vec![entry("one\n"), entry("two\n")],
            close: false,
            error: String::new(),
        },
        PublishLogsMessage {
            session_id: sid.clone(),
            subscription_id: sub.id.clone(),
            entries: vec![],
            close: true,
            error: String::new(),
        },
    ];
    client
        .publish_logs(futures::stream::iter(messages))
        .await
        .unwrap();
    use futures::StreamExt;
    let mut got = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), lines.next())
        .await
        .unwrap()
    {
        let l = item.unwrap();
        assert_eq!(l.task_id, task);
        got.push(String::from_utf8(l.line.line.to_vec()).unwrap());
    }
    assert_eq!(
        got,
        ["one\n", "two\n"],
        "the stream ends after the node closes"
    );
    s.stop().await;
}
