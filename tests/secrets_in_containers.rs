//! Secrets and configs reach the containers that reference them, on the node that runs them,
//! and never its disk: a manager and a worker driving this machine's Docker Engine, a service
//! constrained to the worker.

mod agents_common;
mod disk_scan;

use std::time::Duration;

use agents_common::{engine, require_engine, running_task_containers, wait_for, Swarm, IMAGE};
use base64::Engine as _;
use disk_scan::files_containing;

#[test]
fn a_service_reads_its_secret_and_config_and_neither_touches_a_disk() {
    require_engine();
    let swarm = Swarm::start("files", 1, 1);
    let m = swarm.manager();
    let worker = &swarm.nodes[1];
    let marker = format!("pw-{}", std::process::id()) + &"x".repeat(8);
    let secret_value = format!("{marker}-secret");
    let config_value = "listen 8080\n";
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    let config_file = dir.path().join("config");
    std::fs::write(&secret_file, &secret_value).unwrap();
    std::fs::write(&config_file, config_value).unwrap();
    m.ok(&[
        "secret",
        "create",
        "db_password",
        secret_file.to_str().unwrap(),
    ]);
    m.ok(&[
        "config",
        "create",
        "app_conf",
        config_file.to_str().unwrap(),
    ]);
    m.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "reader",
        "--constraint",
        "node.role==worker",
        "--stop-grace-period",
        "1s",
        "--secret",
        "source=db_password,uid=1000,gid=1000,mode=0400",
        "--secret",
        "source=db_password,target=/etc/db/pw",
        "--config",
        "source=app_conf,target=/etc/app.conf,mode=0444",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let id = swarm.service_id("reader");
    let (container, task) = wait_for(Duration::from_secs(60), "the reader's container", || {
        running_task_containers(&id).into_iter().next()
    });
    let tasks = swarm.running_tasks("reader");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].node, worker.hostname,
        "the task runs on the worker"
    );

    let read = |path: &str| {
        let out = engine(&[
            "exec",
            &container,
            "sh",
            "-c",
            &format!("stat -c '%u %g %a' {path}; cat {path}"),
        ]);
        assert!(out.ok, "reading {path}: {}", out.stderr);
        out.stdout
    };
    assert_eq!(
        read("/run/secrets/db_password"),
        format!("1000 1000 400\n{secret_value}")
    );
    assert_eq!(read("/etc/db/pw"), format!("0 0 444\n{secret_value}"));
    assert_eq!(read("/etc/app.conf"), format!("0 0 444\n{config_value}"));

    // Nowhere on disk: not in either node's data directory, in clear or base64 (the worker
    // holds it in memory and on the task's tmpfs; the manager's store seals it at rest).
    let encoded = base64::engine::general_purpose::STANDARD.encode(&secret_value);
    for node in &swarm.nodes {
        for needle in [marker.as_bytes(), encoded.as_bytes()] {
            let found = files_containing(&node.data_dir(), needle);
            assert!(
                found.is_empty(),
                "{} holds the secret: {found:?}",
                node.hostname
            );
        }
    }
    // On the worker they sit on the task's own tmpfs.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let tmpfs: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&format!("/tasks/{task}")))
        .collect();
    assert_eq!(tmpfs.len(), 1, "one tmpfs for the task: {tmpfs:?}");
    assert!(tmpfs[0].contains(" - tmpfs "), "{}", tmpfs[0]);

    // Gone with the task.
    m.ok(&["service", "rm", "reader"]);
    wait_for(Duration::from_secs(60), "the container to go", || {
        running_task_containers(&id).is_empty().then_some(())
    });
    wait_for(Duration::from_secs(30), "the task's tmpfs to go", || {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        (!mounts.contains(&format!("/tasks/{task}"))).then_some(())
    });
}

/// A task's secrets are on a tmpfs from before its container is created until after it is
/// removed. An agent that crashed in between and lost the task (its record is written in the
/// background; the store may have forgotten the task by the time the node is back) must not
/// leave them mounted for good: when it starts again, it releases the files of every task it
/// does not have, and keeps those of the tasks it does.
#[test]
fn a_restarted_worker_releases_the_files_of_tasks_it_does_not_have_and_keeps_the_others() {
    require_engine();
    let mut swarm = Swarm::start("stray-files", 1, 1);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "kept-secret").unwrap();
    let m = swarm.manager();
    m.ok(&["secret", "create", "kept_pw", secret_file.to_str().unwrap()]);
    m.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "holder",
        "--constraint",
        "node.role==worker",
        "--secret",
        "kept_pw",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let id = swarm.service_id("holder");
    let (_, task) = wait_for(Duration::from_secs(60), "the holder's container", || {
        running_task_containers(&id).into_iter().next()
    });
    let mounted = |task: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&format!("/tasks/{task} ")))
    };
    assert!(mounted(&task), "the task's tmpfs is mounted");

    // The worker crashes, and leaves the files of a task it has no record of.
    swarm.nodes[1].kill9();
    let run_dir = shoal::agent::executor::default_run_dir(&swarm.nodes[1].data_dir().join("exec"));
    let stray = run_dir.join("tasks").join("stray0task0of0a0crash");
    std::fs::create_dir_all(&stray).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&stray)
        .status()
        .expect("mount runs");
    assert!(mount.success(), "mounting a tmpfs at {}", stray.display());
    std::fs::write(stray.join("pw"), "stray-secret").unwrap();
    assert!(mounted("stray0task0of0a0crash"));

    swarm.nodes[1].restart();
    wait_for(
        Duration::from_secs(60),
        "the stray task's tmpfs to go",
        || (!mounted("stray0task0of0a0crash")).then_some(()),
    );
    wait_for(
        Duration::from_secs(10),
        "the stray task's directory to go",
        || (!stray.exists()).then_some(()),
    );
    // The task the worker still runs keeps its files, and its container reads them.
    assert!(mounted(&task), "the running task's tmpfs is kept");
    let (container, _) = running_task_containers(&id)
        .into_iter()
        .next()
        .expect("the holder still runs");
    let out = engine(&["exec", &container, "cat", "/run/secrets/kept_pw"]);
    assert_eq!(out.stdout, "kept-secret", "{}", out.stderr);
}
