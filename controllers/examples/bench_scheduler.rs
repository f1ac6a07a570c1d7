//! Runs the scheduler benchmark: `cargo run -p shoal-controllers --release --example bench_scheduler -- NODES TASKS [constraints]`.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nodes = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let tasks = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let constraints = args.get(3).is_some_and(|a| a == "constraints");
    let report = shoal_controllers::bench::scheduler(nodes, tasks, constraints)
        .await
        .expect("benchmark runs");
    println!(
        "{}",
        serde_json::to_string(&report).expect("report encodes")
    );
}
