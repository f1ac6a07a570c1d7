//! A node started without `--executor` uses the Docker Engine, and never runs tasks some other
//! way: while no engine answers at `--docker-host` it still starts and runs its swarm, but
//! rejects tasks with an error saying what to do; once an engine answers there, tasks run as
//! its containers without a restart of shoal.

mod common;

use std::time::Duration;

use common::{wait_for, Daemon};

const IMAGE: &str = "shoal-test/busybox:1";

/// Removes the containers a node's tasks left in the engine (the daemon is killed first).
struct Containers<'a> {
    daemon: &'a mut Daemon,
    node_id: String,
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        self.daemon.kill9();
        let engine = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .env_remove("DOCKER_HOST")
                .env_remove("DOCKER_CONTEXT")
                .output()
                .expect("the docker CLI runs")
        };
        let label = format!("label=com.docker.swarm.node.id={}", self.node_id);
        let left = engine(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&left.stdout).split_whitespace() {
            engine(&["rm", "-f", id]);
        }
    }
}

#[test]
fn without_an_engine_tasks_are_rejected_until_one_answers() {
    // The engine's address: nothing there yet; later a link to the machine's engine.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("engine.sock");
    let host = format!("unix://{}", socket.display());
    let mut daemon = Daemon::start_with_args("no-engine", &["--docker-host", &host]);
    let node_id = daemon.init_swarm();
    let guard = Containers {
        daemon: &mut daemon,
        node_id,
    };
    let d = &*guard.daemon;
    let status = d.ok(&["node", "ls", "--format", "{{.Status}}"]);
    assert_eq!(status.trim(), "Ready");

    d.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "refused",
        "--restart-delay",
        "1s",
        IMAGE,
        "sleep",
        "100000",
    ]);
    let rows = || {
        let out = d.ok(&[
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{.DesiredState}}|{{.CurrentState}}|{{.Error}}",
            "refused",
        ]);
        out.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let rejected = wait_for(Duration::from_secs(30), "the task rejected", || {
        rows().into_iter().find(|r| r.contains("|Rejected"))
    });
    // The CLI quotes errors.
    let error = rejected.rsplit('|').next().unwrap().trim_matches('"');
    assert_eq!(
        error,
        format!(
            "no Docker Engine answers at {host}: start dockerd, or run shoal daemon --executor process to run tasks as host processes"
        ),
        "{rejected}"
    );
    assert!(
        !rows().iter().any(|r| r.contains("|Running")),
        "a task ran without an engine: {:?}",
        rows()
    );

    // An engine appears at the address: the next task runs in it.
    let engine = std::path::Path::new("/var/run/docker.sock");
    assert!(
        engine.exists(),
        "this test needs the machine's Docker Engine"
    );
    std::os::unix::fs::symlink(engine, &socket).unwrap();
    wait_for(
        Duration::from_secs(60),
        "a task running in the engine",
        || {
            rows()
                .iter()
                .any(|r| r.starts_with("Running|Running"))
                .then_some(())
        },
    );
}
