//! Test harness: in-process store members, the controllers, object builders, polling helpers,
//! and a fake agent that moves tasks on fake nodes forward the way real agents will.

#![allow(dead_code)]

pub mod agent;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_controllers::runtime::Backoff;
use shoal_controllers::{Controllers, ControllersConfig, ControllersHandle, ControllersState};
use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{
    new_id, ContainerSpec, Meta, Node, NodeAvailability, NodeDescription, NodeRole, NodeSpec,
    NodeState, NodeStatus, Object, Platform, Resources, RestartCondition, RestartPolicy, Service,
    ServiceMode, ServiceSpec, Task, TaskSpec, TaskState, UpdateConfig, Version,
};
use shoal_store::{PeerNode, Store, StoreConfig, StoreError, Txn};

/// How long any condition may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Controllers tuned for tests: short debounces and retries.
pub fn test_config() -> ControllersConfig {
    ControllersConfig {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(500),
        },
        scheduler_debounce: Duration::from_millis(10),
        scheduler_max_latency: Duration::from_millis(100),
        reaper_debounce: Duration::from_millis(10),
        role_retry: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(2),
        ..ControllersConfig::default()
    }
}

fn member_config(dir: &Path, raft_id: u64) -> StoreConfig {
    let mut c = StoreConfig::new(raft_id, addr(raft_id), dir.join(format!("m{raft_id}")));
    c.heartbeat_interval = Duration::from_millis(50);
    c.election_timeout = (Duration::from_millis(250), Duration::from_millis(500));
    c.write_deadline = Duration::from_secs(3);
    c.attempt_timeout = Duration::from_millis(500);
    c
}

/// The address of a member.
pub fn addr(raft_id: u64) -> String {
    format!("member-{raft_id}")
}

/// In-process store members, each with its own controllers.
pub struct Harness {
    pub net: LocalNetwork,
    pub dir: tempfile::TempDir,
    pub members: Vec<Option<Store>>,
    pub controllers: Vec<Option<ControllersHandle>>,
}

impl Harness {
    /// One member (leading) with controllers using `config`.
    pub async fn single(config: ControllersConfig) -> Harness {
        Self::start(1, config).await
    }

    /// `n` members (1 initialises, the others join), each running controllers.
    pub async fn start(n: u64, config: ControllersConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let net = LocalNetwork::new();
        let mut h = Harness {
            net,
            dir,
            members: Vec::new(),
            controllers: Vec::new(),
        };
        for id in 1..=n {
            let cfg = member_config(h.dir.path(), id);
            let a = cfg.advertise_addr.clone();
            let s = Store::open(cfg, h.net.transport(&a)).await.unwrap();
            h.net.register(&a, s.clone());
            if id == 1 {
                s.initialize().await.unwrap();
                let first = s.clone();
                eventually("member 1 leads", || first.is_leader().then_some(())).await;
            }
            h.members.push(Some(s));
        }
        for id in 2..=n {
            h.store(1)
                .add_member(
                    id,
                    PeerNode {
                        addr: addr(id),
                        node_id: String::new(),
                    },
                )
                .await
                .unwrap();
        }
        for s in h.members.clone().into_iter().flatten() {
            h.controllers
                .push(Some(Controllers::start(s, config.clone())));
        }
        h.wait_leading().await;
        h
    }

    /// A running member.
    pub fn store(&self, raft_id: u64) -> &Store {
        self.members[(raft_id - 1) as usize]
            .as_ref()
            .expect("member is running")
    }

    /// Some running member that is not `except`.
    pub fn other_than(&self, except: u64) -> &Store {
        self.members
            .iter()
            .flatten()
            .find(|s| s.raft_id() != except)
            .expect("another member runs")
    }

    /// Waits until some member's controllers lead; returns its raft id.
    pub async fn wait_leading(&self) -> u64 {
        eventually("some member's controllers lead", || {
            self.controllers
                .iter()
                .enumerate()
                .find(|(_, c)| {
                    c.as_ref()
                        .is_some_and(|c| matches!(c.state(), ControllersState::Leading { .. }))
                })
                .map(|(i, _)| i as u64 + 1)
        })
        .await
    }

    /// Crashes a member: its controllers and store stop without a goodbye.
    pub async fn kill(&mut self, raft_id: u64) {
        let i = (raft_id - 1) as usize;
        self.net.unregister(&addr(raft_id));
        self.net.isolate(&addr(raft_id));
        let store = self.members[i].take();
        let controllers = self.controllers[i].take();
        if let Some(s) = &store {
            s.shutdown().await;
        }
        if let Some(c) = controllers {
            c.shutdown().await;
        }
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        for c in self.controllers.iter_mut() {
            if let Some(c) = c.take() {
                c.shutdown().await;
            }
        }
        for s in self.members.iter().flatten() {
            s.shutdown().await;
        }
    }
}

/// Polls `f` until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Submits until the store takes it (elections make writes fail for a moment).
pub async fn submit(store: &Store, txn: Txn) -> shoal_store::Committed {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match store.submit(txn.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline && e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// A ready, active worker node with 4 CPUs and 8 GiB.
pub fn node(hostname: &str) -> Node {
    Node {
        meta: Meta::with_id(new_id()),
        spec: NodeSpec::new(NodeRole::Worker, NodeAvailability::Active),
        description: NodeDescription {
            hostname: hostname.into(),
            platform: Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            },
            resources: Resources {
                nano_cpus: 4_000_000_000,
                memory_bytes: 8 << 30,
                generic_resources: Vec::new(),
            },
            ..Default::default()
        },
        status: NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: "10.0.0.1".into(),
        },
        role: NodeRole::Worker,
        ..Default::default()
    }
}

/// Creates a node; returns its id.
pub async fn add_node(store: &Store, n: Node) -> String {
    let id = n.meta.id.clone();
    submit(store, Txn::new().create(n)).await;
    id
}

/// Changes a node (retrying on conflicts with the controllers' own writes).
pub async fn change_node(store: &Store, id: &str, f: impl Fn(&mut Node)) {
    loop {
        let mut n = store
            .view()
            .get::<Node>(id)
            .expect("node exists")
            .to_owned_value();
        f(&mut n);
        match store.submit(Txn::new().update(n)).await {
            Ok(_) => return,
            Err(e) if e.is_out_of_sequence() || e.is_retryable() => continue,
            Err(e) => panic!("node update failed: {e}"),
        }
    }
}

/// A service spec running `image` in `mode`, restarting on failure without delay.
pub fn spec(name: &str, image: &str, mode: ServiceMode) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        task_template: TaskSpec {
            container_spec: Some(ContainerSpec {
                image: image.into(),
                ..Default::default()
            }),
            restart_policy: Some(RestartPolicy {
                condition: Some(RestartCondition::Any),
                delay: Some(0),
                max_attempts: Some(0),
                window: None,
            }),
            ..Default::default()
        },
        mode,
        ..Default::default()
    }
}

/// An update config with the given parallelism and a short monitor.
pub fn update_config(parallelism: u64) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        monitor: 200_000_000,
        ..UpdateConfig::swarm_default()
    }
}

/// Creates a service as the API does; returns its id.
pub async fn create_service(store: &Store, spec: ServiceSpec) -> String {
    let job_status = spec.is_job().then(|| shoal_store::model::JobStatus {
        job_iteration: Version::at(0),
        last_execution: shoal_store::model::Timestamp::now(),
    });
    let s = Service {
        meta: Meta::with_id(new_id()),
        spec,
        job_status,
        spec_version: Version::at(0),
        ..Default::default()
    };
    let id = s.meta.id.clone();
    submit(store, Txn::new().create(s)).await;
    id
}

/// Updates a service's spec as the API does (previous spec kept, update status cleared).
pub async fn update_service(store: &Store, id: &str, f: impl Fn(&mut ServiceSpec)) {
    loop {
        let current = store.view().get::<Service>(id).expect("service exists");
        let mut svc = current.to_owned_value();
        let mut spec = svc.spec.clone();
        f(&mut spec);
        if let Some(job) = svc.job_status.as_mut() {
            job.job_iteration.index += 1;
        }
        svc.take_new_spec(spec);
        svc.update_status = None;
        match store.submit(Txn::new().update(svc)).await {
            Ok(_) => return,
            Err(e) if e.is_out_of_sequence() || e.is_retryable() => continue,
            Err(e) => panic!("service update failed: {e}"),
        }
    }
}

/// Deletes a service and marks its tasks for removal, as the API does.
pub async fn remove_service(store: &Store, id: &str) {
    let view = store.view();
    let mut txn = Txn::new().delete(shoal_store::model::Kind::Service, id, None);
    for t in view.tasks_of_service(id) {
        if t.desired_state < TaskState::Remove {
            let mut u = t.to_owned_value();
            u.desired_state = TaskState::Remove;
            txn = txn.update(u);
        }
    }
    match store.submit(txn).await {
        Ok(_) => {}
        Err(StoreError::Rejected(_)) => Box::pin(remove_service(store, id)).await,
        Err(e) => panic!("service removal failed: {e}"),
    }
}

/// The service's tasks.
pub fn tasks(store: &Store, service_id: &str) -> Vec<Task> {
    let mut v: Vec<Task> = store
        .view()
        .tasks_of_service(service_id)
        .map(|t| t.to_owned_value())
        .collect();
    v.sort_by(|a, b| (a.meta.created_at, &a.meta.id).cmp(&(b.meta.created_at, &b.meta.id)));
    v
}

/// The service's tasks that are meant to run (desired RUNNING or READY).
pub fn live(store: &Store, service_id: &str) -> Vec<Task> {
    tasks(store, service_id)
        .into_iter()
        .filter(|t| t.desired_state <= TaskState::Running)
        .collect()
}

/// The service's tasks observed RUNNING with desired RUNNING.
pub fn running(store: &Store, service_id: &str) -> Vec<Task> {
    tasks(store, service_id)
        .into_iter()
        .filter(|t| t.desired_state == TaskState::Running && t.status.state == TaskState::Running)
        .collect()
}

/// The stored service.
pub fn service(store: &Store, id: &str) -> Service {
    store
        .view()
        .get::<Service>(id)
        .expect("service exists")
        .to_owned_value()
}

/// The image of a task.
pub fn image(t: &Task) -> &str {
    t.spec.container().map_or("", |c| c.image.as_str())
}

/// Shared handle to an object list, for closures.
pub type Shared<T> = Arc<std::sync::Mutex<T>>;

/// Every object in the store of a kind (for debugging failed tests).
pub fn dump(store: &Store, service_id: &str) -> String {
    tasks(store, service_id)
        .iter()
        .map(|t| {
            format!(
                "slot {} node {} desired {} state {} image {} err {:?}",
                t.slot,
                &t.node_id.get(..6).unwrap_or(""),
                t.desired_state,
                t.status.state,
                image(t),
                t.status.err
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Objects created in a commit, for watch-based assertions.
pub fn task_of(o: &Object) -> Option<&Task> {
    match o {
        Object::Task(t) => Some(t),
        _ => None,
    }
}

/// Records every commit touching a service's tasks, for assertions on the order of changes.
pub struct Recorder {
    pub commits: Shared<Vec<std::sync::Arc<shoal_store::Commit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts recording the changes to `service_id` and its tasks from now on.
    pub async fn start(store: &Store, service_id: &str) -> Recorder {
        let filter = shoal_store::WatchFilter::kinds([
            shoal_store::model::Kind::Task,
            shoal_store::model::Kind::Service,
        ]);
        let service_id = service_id.to_string();
        let mut w = store
            .watch(
                shoal_store::WatchRequest::new(shoal_store::WatchStart::Now)
                    .filter(filter)
                    .buffer(1 << 16),
            )
            .await
            .unwrap();
        let commits: Shared<Vec<std::sync::Arc<shoal_store::Commit>>> = Default::default();
        let c = commits.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(m)) = w.next().await {
                if let shoal_store::WatchMessage::Commit(commit) = m {
                    let ours = commit.events.iter().any(|e| match e.object.as_ref() {
                        Object::Task(t) => t.service_id == service_id,
                        Object::Service(s) => s.meta.id == service_id,
                        _ => false,
                    });
                    if ours {
                        c.lock().unwrap().push(commit);
                    }
                }
            }
        });
        Recorder { commits, task }
    }

    /// The commits recorded so far.
    pub fn take(&self) -> Vec<std::sync::Arc<shoal_store::Commit>> {
        self.commits.lock().unwrap().clone()
    }

    /// Stops recording.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Rolls a service back to its previous spec as the API's `rollback` does.
pub async fn rollback_service(store: &Store, id: &str) {
    loop {
        let mut svc = store
            .view()
            .get::<Service>(id)
            .expect("service exists")
            .to_owned_value();
        assert!(svc.previous_spec.is_some(), "a previous spec");
        svc.roll_back_spec();
        svc.update_status = Some(shoal_store::model::UpdateStatus {
            state: Some(shoal_store::model::UpdateState::RollbackStarted),
            started_at: Some(shoal_store::model::Timestamp::now()),
            completed_at: None,
            message: "manually requested rollback".into(),
        });
        match store.submit(Txn::new().update(svc)).await {
            Ok(_) => return,
            Err(e) if e.is_out_of_sequence() || e.is_retryable() => continue,
            Err(e) => panic!("rollback failed: {e}"),
        }
    }
}
