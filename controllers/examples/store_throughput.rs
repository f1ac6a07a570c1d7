//! Measures the store's raw task-update throughput (no controllers), to separate store costs
//! from scheduler costs: `cargo run -p shoal-controllers --release --example store_throughput -- TASKS`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{
    new_id, ContainerSpec, Meta, Object, Task, TaskSpec, TaskState, TaskStatus, Timestamp,
};
use shoal_store::{Store, StoreConfig, Txn};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let net = LocalNetwork::new();
    let store = Store::open(StoreConfig::new(1, "m1", dir.path()), net.transport("m1"))
        .await
        .unwrap();
    net.register("m1", store.clone());
    store.initialize().await.unwrap();
    while !store.is_leader() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tasks: Vec<Task> = (0..n)
        .map(|i| Task {
            meta: Meta::with_id(new_id()),
            spec: TaskSpec {
                container_spec: Some(ContainerSpec {
                    image: "busybox:latest".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            service_id: "svc".into(),
            slot: i as u64 + 1,
            status: TaskStatus::new(TaskState::New, Timestamp::now(), "created"),
            desired_state: TaskState::Running,
            ..Default::default()
        })
        .collect();
    let t0 = Instant::now();
    let created: Vec<Vec<Task>> = futures::stream::iter(tasks.chunks(500).map(|c| c.to_vec()))
        .map(|chunk| {
            let store = store.clone();
            async move {
                let txn = chunk.iter().cloned().fold(Txn::new(), |t, x| t.create(x));
                let c = store.submit(txn).await.unwrap();
                c.objects
                    .iter()
                    .map(|o| match o.as_ref() {
                        Object::Task(t) => t.clone(),
                        _ => unreachable!(),
                    })
                    .collect::<Vec<Task>>()
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let create_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    futures::stream::iter(created)
        .map(|chunk| {
            let store = store.clone();
            async move {
                let txn = chunk.into_iter().fold(Txn::new(), |t, mut x| {
                    x.node_id = "node".into();
                    x.status = TaskStatus::new(TaskState::Assigned, Timestamp::now(), "assigned");
                    t.update(x)
                });
                store.submit(txn).await.unwrap();
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    let update_s = t1.elapsed().as_secs_f64();
    println!(
        "{n} creates: {:.0}/s; {n} updates: {:.0}/s",
        n as f64 / create_s,
        n as f64 / update_s
    );
    store.shutdown().await;
}
