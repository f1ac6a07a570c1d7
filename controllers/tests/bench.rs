//! Scheduler benchmarks (run in release mode: `cargo test -p shoal-controllers --release -- --ignored bench`).
//! They print the report as one JSON line; they assert completeness, never speed.

use shoal_controllers::bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_scheduler_1000_nodes_100k_tasks() {
    let r = bench::scheduler(1000, 100_000, false).await.unwrap();
    println!("{}", serde_json::to_string(&r).unwrap());
    assert_eq!(r.tasks, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_scheduler_5000_nodes_100k_tasks_constraints() {
    let r = bench::scheduler(5000, 100_000, true).await.unwrap();
    println!("{}", serde_json::to_string(&r).unwrap());
    assert_eq!(r.tasks, 100_000);
}
