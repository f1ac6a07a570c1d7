//! Agent tests against the real dispatcher (one manager over mutual TLS), with the sim executor
//! and with a fake engine whose workloads outlive the agent (to test adoption).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shoal_store::model::{Kind, NodeDescription, Task, TaskState};
use shoal_store::Txn;
use tokio::sync::Notify;

use super::storage::{FileTaskStore, MemoryTaskStore, TaskStore};
use super::{Agent, AgentConfig};
use crate::dispatcher::testkit::{wait_until, TestSwarm};
use crate::dispatcher::DispatcherConfig;
use crate::exec::sim::{SimConfig, SimExecutor};
use crate::exec::{
    Adoptable, ExecError, Executor, ExitStatus, Health, LogLines, LogOptions, ObservedState,
    RunState, TaskController,
};

async fn swarm() -> TestSwarm {
    TestSwarm::start(Duration::from_secs(5), DispatcherConfig::default()).await
}

async fn agent(
    s: &TestSwarm,
    node_id: &str,
    creds: crate::ca::NodeCredentials,
    executor: Arc<dyn Executor>,
    store: Arc<dyn TaskStore>,
) -> Agent {
    Agent::start(AgentConfig {
        node_id: node_id.to_string(),
        managers: vec![s.addr.clone()],
        tls: crate::ca::LiveCredentials::new(&creds).unwrap().into(),
        executor,
        store,
        hostname: Some("agent-test".into()),
    })
    .await
    .unwrap()
}

fn sim() -> Arc<dyn Executor> {
    Arc::new(SimExecutor::new(
        NodeDescription::default(),
        SimConfig::default(),
    ))
}

async fn wait_state(s: &TestSwarm, task: &str, state: TaskState) {
    wait_until(&format!("task {task} is {state}"), || {
        s.task_state(task) == Some(state)
    })
    .await;
}

#[tokio::test]
async fn runs_its_tasks_holds_ready_and_stops_on_shutdown() {
    let s = swarm().await;
    let (node, creds) = s.add_node("w1").await;
    let a = agent(
        &s,
        &node,
        creds,
        sim(),
        Arc::new(MemoryTaskStore::default()),
    )
    .await;
    let running = s.assign(&node, TaskState::Running).await;
    let held = s.assign(&node, TaskState::Ready).await;
    wait_state(&s, &running, TaskState::Running).await;
    wait_state(&s, &held, TaskState::Ready).await;
    // The held task is still READY after the other task's whole run: it does not start.
    let later = s.assign(&node, TaskState::Running).await;
    wait_state(&s, &later, TaskState::Running).await;
    assert_eq!(s.task_state(&held), Some(TaskState::Ready));
    // Promoting it starts it.
    s.set_desired(&held, TaskState::Running).await;
    wait_state(&s, &held, TaskState::Running).await;
    // SHUTDOWN stops it.
    s.set_desired(&running, TaskState::Shutdown).await;
    wait_state(&s, &running, TaskState::Shutdown).await;
    // Deleting the task from the store removes it from the node.
    s.store
        .submit(Txn::new().delete(Kind::Task, running.clone(), None))
        .await
        .unwrap();
    wait_until("the agent drops the deleted task", || {
        !a.task_ids().contains(&running)
    })
    .await;
    let node_obj = s
        .store
        .view()
        .get::<shoal_store::model::Node>(&node)
        .unwrap();
    assert_eq!(node_obj.description.hostname, "agent-test");
    a.stop().await;
    s.stop().await;
}

/// An agent that only knows a follower is redirected to the leader, runs its tasks there, and
/// keeps no connection to the follower: with thousands of agents, idle connections to every
/// follower would be held for nothing.
#[tokio::test]
async fn a_redirected_agent_keeps_no_connection_to_the_follower() {
    let s = swarm().await;
    let follower = s.add_follower(DispatcherConfig::default()).await;
    let (node, creds) = s.add_node("w1").await;
    let a = Agent::start(AgentConfig {
        node_id: node.clone(),
        managers: vec![follower.addr.clone()],
        tls: crate::ca::LiveCredentials::new(&creds).unwrap().into(),
        executor: sim(),
        store: Arc::new(MemoryTaskStore::default()),
        hostname: None,
    })
    .await
    .unwrap();
    let mut connection = a.connection();
    tokio::time::timeout(
        Duration::from_secs(20),
        connection.wait_for(|c| c.manager.as_deref() == Some(s.addr.as_str())),
    )
    .await
    .expect("the agent reaches the leader")
    .unwrap();
    let task = s.assign(&node, TaskState::Running).await;
    wait_state(&s, &task, TaskState::Running).await;
    assert_eq!(a.connected_managers(), vec![s.addr.clone()]);
    a.stop().await;
    follower.stop().await;
    s.stop().await;
}

/// A fake engine: workloads live here, across agents, like containers in a real engine.
#[derive(Default)]
struct Engine {
    workloads: Mutex<HashMap<String, (String, RunState)>>,
    creates: Mutex<u32>,
    changed: Notify,
}

struct FakeExecutor {
    engine: Arc<Engine>,
}

struct FakeController {
    engine: Arc<Engine>,
    task_id: String,
    node_id: String,
}

#[async_trait]
impl Executor for FakeExecutor {
    async fn describe(&self) -> Result<NodeDescription, ExecError> {
        Ok(NodeDescription::default())
    }
    fn controller(
        &self,
        task: &Task,
        _deps: Arc<dyn crate::exec::Dependencies>,
    ) -> Result<Box<dyn TaskController>, ExecError> {
        Ok(Box::new(FakeController {
            engine: self.engine.clone(),
            task_id: task.meta.id.clone(),
            node_id: task.node_id.clone(),
        }))
    }
    async fn adoptable(&self) -> Result<Vec<Adoptable>, ExecError> {
        let w = self.engine.workloads.lock().unwrap();
        Ok(w.iter()
            .map(|(id, (node, state))| Adoptable {
                task_id: id.clone(),
                service_id: String::new(),
                node_id: node.clone(),
                state: observed(id, *state),
            })
            .collect())
    }
}

fn observed(id: &str, run_state: RunState) -> ObservedState {
    ObservedState {
        container_id: id.to_string(),
        pid: 0,
        run_state,
        exit_code: None,
        health: Health::None,
    }
}

impl FakeController {
    fn state(&self) -> Option<RunState> {
        self.engine
            .workloads
            .lock()
            .unwrap()
            .get(&self.task_id)
            .map(|w| w.1)
    }
    fn set(&self, s: RunState) {
        if let Some(w) = self.engine.workloads.lock().unwrap().get_mut(&self.task_id) {
            w.1 = s;
        }
        self.engine.changed.notify_waiters();
    }
}

#[async_trait]
impl TaskController for FakeController {
    async fn prepare(&self) -> Result<(), ExecError> {
        let mut w = self.engine.workloads.lock().unwrap();
        if !w.contains_key(&self.task_id) {
            w.insert(
                self.task_id.clone(),
                (self.node_id.clone(), RunState::Created),
            );
            *self.engine.creates.lock().unwrap() += 1;
        }
        Ok(())
    }
    async fn start(&self) -> Result<(), ExecError> {
        if self.state() == Some(RunState::Created) {
            self.set(RunState::Running);
        }
        Ok(())
    }
    async fn wait(&self) -> Result<ExitStatus, ExecError> {
        loop {
            let notified = self.engine.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state() != Some(RunState::Running) {
                return Ok(ExitStatus { code: 0 });
            }
            notified.await;
        }
    }
    async fn shutdown(&self, _: Option<&str>, _: Duration) -> Result<(), ExecError> {
        if self.state().is_some() {
            self.set(RunState::Exited);
        }
        Ok(())
    }
    async fn terminate(&self) -> Result<(), ExecError> {
        self.shutdown(None, Duration::ZERO).await
    }
    async fn remove(&self) -> Result<(), ExecError> {
        self.engine.workloads.lock().unwrap().remove(&self.task_id);
        self.engine.changed.notify_waiters();
        Ok(())
    }
    async fn inspect(&self) -> Result<Option<ObservedState>, ExecError> {
        Ok(self.state().map(|s| observed(&self.task_id, s)))
    }
    fn logs(&self, _: LogOptions) -> LogLines {
        Box::pin(futures::stream::empty())
    }
}

#[tokio::test]
async fn a_restarted_agent_adopts_its_workloads_instead_of_duplicating_them() {
    let s = swarm().await;
    let (node, creds) = s.add_node("w1").await;
    let engine = Arc::new(Engine::default());
    let dir = tempfile::tempdir().unwrap();
    let db = || -> Arc<dyn TaskStore> { Arc::new(FileTaskStore::open(dir.path()).unwrap()) };
    let exec = || -> Arc<dyn Executor> {
        Arc::new(FakeExecutor {
            engine: engine.clone(),
        })
    };
    let first = agent(&s, &node, creds.clone(), exec(), db()).await;
    let t1 = s.assign(&node, TaskState::Running).await;
    let t2 = s.assign(&node, TaskState::Running).await;
    wait_state(&s, &t1, TaskState::Running).await;
    wait_state(&s, &t2, TaskState::Running).await;
    first.stop().await;
    drop(first);
    assert_eq!(*engine.creates.lock().unwrap(), 2);

    // While the agent is away, a workload of this node appears that no task accounts for
    // (say its record was lost): the next agent removes it.
    engine
        .workloads
        .lock()
        .unwrap()
        .insert("stray".into(), (node.clone(), RunState::Running));
    // And t2 is removed from the swarm.
    s.store
        .submit(Txn::new().delete(Kind::Task, t2.clone(), None))
        .await
        .unwrap();

    let second = agent(&s, &node, creds, exec(), db()).await;
    wait_until("the second agent registers", || {
        second.connection().borrow().manager.is_some()
    })
    .await;
    wait_until(
        "the stray workload and the removed task's one are gone",
        || {
            let w = engine.workloads.lock().unwrap();
            !w.contains_key("stray") && !w.contains_key(&t2)
        },
    )
    .await;
    // t1 was adopted: still the one workload, and the new agent controls it.
    assert_eq!(
        *engine.creates.lock().unwrap(),
        2,
        "no duplicate was created"
    );
    assert_eq!(
        engine.workloads.lock().unwrap().get(&t1).map(|w| w.1),
        Some(RunState::Running)
    );
    s.set_desired(&t1, TaskState::Shutdown).await;
    wait_state(&s, &t1, TaskState::Shutdown).await;
    assert_eq!(
        engine.workloads.lock().unwrap().get(&t1).map(|w| w.1),
        Some(RunState::Exited)
    );
    second.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn statuses_reach_a_manager_that_missed_them() {
    // An agent re-sends every status on a new session: a task the manager still thinks is
    // ASSIGNED catches up (e.g. a leader change lost a batch), and its workload is adopted.
    let s = swarm().await;
    let (node, creds) = s.add_node("w1").await;
    let db: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::default());
    let t = s.assign(&node, TaskState::Running).await;
    let mut recorded = s.store.view().get::<Task>(&t).unwrap().to_owned_value();
    recorded.status.state = TaskState::Running;
    recorded.status.message = "started".into();
    db.save(&recorded).unwrap();
    let engine = Arc::new(Engine::default());
    engine
        .workloads
        .lock()
        .unwrap()
        .insert(t.clone(), (node.clone(), RunState::Running));
    let exec = Arc::new(FakeExecutor {
        engine: engine.clone(),
    });
    let a = agent(&s, &node, creds, exec, db).await;
    wait_state(&s, &t, TaskState::Running).await;
    assert_eq!(*engine.creates.lock().unwrap(), 0);
    a.stop().await;
    s.stop().await;
}
