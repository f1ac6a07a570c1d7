//! Docker executor tests against this machine's engine and the project's test image
//! (`scripts/setup.sh` builds `shoal-test/busybox:1`). Every container a test creates carries a
//! per-test label, and a guard removes them all even when the test fails.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shoal_store::model::{
    ContainerSpec, HealthConfig as SpecHealth, ReferenceFileTarget, Task, TaskState,
};

use super::*;
use crate::exec::testutil::{
    all_logs, command, drive_until, eventually, has_line, task_with, ContainerCleanup, RUN_LABEL,
};
use crate::exec::{drive, Step};

const IMAGE: &str = "shoal-test/busybox:1";
const DEADLINE: Duration = Duration::from_secs(60);
/// Labels a test's containers (via their specs) and removes them all when dropped.
struct Cleanup(ContainerCleanup);

impl Cleanup {
    fn new() -> Self {
        Cleanup(ContainerCleanup::new())
    }

    fn run(&self) -> &str {
        &self.0.run
    }

    /// A task running `args` in the test image, labelled for cleanup.
    fn task(&self, service: &str, args: &[&str]) -> Task {
        self.task_with_spec(service, command(IMAGE, args))
    }

    fn task_with_spec(&self, service: &str, mut spec: ContainerSpec) -> Task {
        spec.labels.insert(RUN_LABEL.into(), self.run().to_owned());
        task_with(service, spec)
    }
}

async fn executor() -> DockerExecutor {
    DockerExecutor::connect(
        DEFAULT_DOCKER_HOST,
        Path::new("/run/shoal/docker-executor-tests"),
    )
    .await
    .expect("the local Docker engine (is /var/run/docker.sock there?)")
}

/// Containers carrying `task_id`'s label.
async fn containers_of(exec: &DockerExecutor, task_id: &str) -> Vec<String> {
    list_task_containers(exec.client(), Some(task_id))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test]
async fn runs_a_labelled_container_with_logs_then_stops_and_removes_it() {
    let cleanup = Cleanup::new();
    let exec = executor().await;
    let mut task = cleanup.task(
        "exectest",
        &["sh", "-c", "echo hello; echo oops >&2; sleep 30"],
    );
    // docker-init as PID 1 passes SIGTERM on to the shell (PID 1 itself would ignore it).
    task.spec.container_spec.as_mut().unwrap().init = Some(true);
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();

    let seen = drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    assert_eq!(
        seen,
        [
            TaskState::Accepted,
            TaskState::Preparing,
            TaskState::Ready,
            TaskState::Starting,
            TaskState::Running
        ]
    );
    let id = task
        .status
        .container_status
        .as_ref()
        .unwrap()
        .container_id
        .clone();
    assert!(!id.is_empty());
    assert!(task.status.container_status.as_ref().unwrap().pid > 0);

    // The container is named and labelled like a Docker swarm task.
    let c = exec.client().inspect_container(&id, None).await.unwrap();
    assert_eq!(
        c.name.as_deref(),
        Some(format!("/exectest.1.{}", task.meta.id).as_str())
    );
    let labels = c.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels[LABEL_TASK_ID], task.meta.id);
    assert_eq!(labels[LABEL_SERVICE_ID], task.service_id);
    assert_eq!(labels[LABEL_NODE_ID], "node1");
    assert_eq!(labels[crate::exec::LABEL_SERVICE_NAME], "exectest");
    assert_eq!(
        labels[crate::exec::LABEL_TASK_NAME],
        format!("exectest.1.{}", task.meta.id)
    );
    let restart = c
        .host_config
        .as_ref()
        .unwrap()
        .restart_policy
        .clone()
        .unwrap();
    assert_eq!(
        restart.name,
        Some(bollard::models::RestartPolicyNameEnum::NO)
    );

    // Logs, demultiplexed, with timestamps.
    let lines = eventually("both log lines", DEADLINE, || async {
        let lines = all_logs(ctl.as_ref()).await;
        (has_line(&lines, LogStream::Stdout, "hello")
            && has_line(&lines, LogStream::Stderr, "oops"))
        .then_some(lines)
    })
    .await;
    assert!(lines.iter().all(|l| !l.timestamp.is_zero()));
    let stderr_only: Vec<LogLine> = futures::TryStreamExt::try_collect(ctl.logs(LogOptions {
        stdout: false,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(stderr_only.len(), 1);
    assert_eq!(&stderr_only[0].line[..], b"oops\n");

    // Shutdown: SIGTERM stops it well within the grace period (143, not SIGKILL's 137).
    task.desired_state = TaskState::Shutdown;
    task.spec.container_spec.as_mut().unwrap().stop_grace_period = Some(20_000_000_000);
    drive_until(&mut task, ctl.as_ref(), TaskState::Shutdown, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Shutdown);
    let state = ctl.inspect().await.unwrap().unwrap();
    assert!(state.exited());
    assert_eq!(state.exit_code, Some(143));

    ctl.remove().await.unwrap();
    let gone = exec
        .client()
        .inspect_container(&id, None)
        .await
        .unwrap_err();
    assert_eq!(status(&gone), Some(404));
    assert!(ctl.inspect().await.unwrap().is_none());
    ctl.remove().await.unwrap(); // removing again is fine
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_task_with_its_code() {
    let cleanup = Cleanup::new();
    let exec = executor().await;
    let mut task = cleanup.task("exectest", &["sh", "-c", "exit 3"]);
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Failed);
    assert_eq!(task.status.err, "task: non-zero exit (3)");
    assert_eq!(task.status.message, "started");
    assert_eq!(task.status.container_status.as_ref().unwrap().exit_code, 3);

    let mut ok = cleanup.task("exectest", &["true"]);
    let ctl = exec
        .controller(&ok, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut ok, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
    assert_eq!(ok.status.state, TaskState::Complete);
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_rejected_without_creating_a_container() {
    let exec = executor().await;
    let cleanup = Cleanup::new();
    // Nothing listens on port 1: the pull fails at once, in the engine's words.
    let unreachable = "127.0.0.1:1/shoal-test/nope:1";
    // An image id names no repository: nothing to pull.
    let by_id = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    for image in [unreachable, by_id] {
        let mut spec = command(image, &["true"]);
        spec.labels
            .insert(RUN_LABEL.into(), cleanup.run().to_owned());
        let mut task = task_with("exectest", spec);
        let ctl = exec
            .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
            .unwrap();
        drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
        assert_eq!(task.status.state, TaskState::Rejected);
        assert_eq!(task.status.message, "preparing");
        if image == by_id {
            assert_eq!(task.status.err, format!("No such image: {by_id}"));
        } else {
            let err = &task.status.err;
            assert!(
                err.starts_with(&format!("pulling {unreachable}: "))
                    && err.contains("connection refused"),
                "{err}"
            );
        }
        assert!(containers_of(&exec, &task.meta.id).await.is_empty());
    }
}

fn health_spec(script: &str, test: &str, retries: i64) -> ContainerSpec {
    let mut spec = command(IMAGE, &["sh", "-c", script]);
    spec.healthcheck = Some(SpecHealth {
        test: vec!["CMD-SHELL".into(), test.into()],
        interval: 100_000_000,
        timeout: 2_000_000_000,
        retries,
        ..Default::default()
    });
    spec
}

#[tokio::test]
async fn a_task_with_a_healthcheck_is_not_running_until_healthy() {
    let cleanup = Cleanup::new();
    let exec = executor().await;
    // Ready only once the test says so (by creating /tmp/go), so "not yet healthy" is certain.
    let spec = health_spec(
        "while [ ! -f /tmp/go ]; do sleep 0.1; done; touch /tmp/ready; sleep 30",
        "test -f /tmp/ready",
        1000,
    );
    let mut task = cleanup.task_with_spec("exectest", spec);
    let ctl: Arc<dyn TaskController> = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap()
        .into();
    drive_until(&mut task, ctl.as_ref(), TaskState::Starting, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Starting);

    let starting = tokio::spawn({
        let (task, ctl) = (task.clone(), ctl.clone());
        async move { drive(&task, ctl.as_ref()).await }
    });
    let state = eventually(
        "the container to run, unhealthy so far",
        DEADLINE,
        || async {
            ctl.inspect()
                .await
                .unwrap()
                .filter(|s| s.running() && s.health == Health::Starting)
        },
    )
    .await;
    assert!(!starting.is_finished(), "reported started before healthy");
    let out = tokio::process::Command::new("docker")
        .args(["exec", &state.container_id, "touch", "/tmp/go"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let step = tokio::time::timeout(DEADLINE, starting)
        .await
        .unwrap()
        .unwrap();
    let Step::Changed(status) = step else {
        panic!("expected RUNNING, got {step:?}")
    };
    assert_eq!(status.state, TaskState::Running);
    assert_eq!(
        ctl.inspect().await.unwrap().unwrap().health,
        Health::Healthy
    );
}

#[tokio::test]
async fn an_unhealthy_container_fails_the_task() {
    let cleanup = Cleanup::new();
    let exec = executor().await;
    let spec = health_spec("sleep 30", "test -f /tmp/never", 1);
    let mut task = cleanup.task_with_spec("exectest", spec);
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Failed);
    assert_eq!(task.status.err, "unhealthy container");
}

#[tokio::test]
async fn a_second_executor_adopts_the_running_container() {
    let cleanup = Cleanup::new();
    let first = executor().await;
    let mut task = cleanup.task("exectest", &["sleep", "30"]);
    let ctl = first
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    let id = ctl.inspect().await.unwrap().unwrap().container_id;
    drop(ctl);
    drop(first);

    // As after an agent restart: a new executor, the task as the agent's local store had it.
    let second = executor().await;
    let found = second.adoptable().await.unwrap();
    let mine = found
        .iter()
        .find(|a| a.task_id == task.meta.id)
        .expect("the task's container is adoptable");
    assert_eq!(mine.state.container_id, id);
    assert_eq!(mine.service_id, task.service_id);
    assert_eq!(mine.node_id, "node1");
    assert!(mine.state.running());

    let ctl = second
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    // Even re-driving from the start creates and starts nothing new.
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    assert_eq!(
        containers_of(&second, &task.meta.id).await,
        vec![id.clone()]
    );
    let state = ctl.inspect().await.unwrap().unwrap();
    assert_eq!(state.container_id, id);
    assert!(state.running());
    ctl.terminate().await.unwrap();
    assert_eq!(ctl.inspect().await.unwrap().unwrap().exit_code, Some(137));
}

#[tokio::test]
async fn describes_the_engine_node() {
    let exec = executor().await;
    let d = exec.describe().await.unwrap();
    assert!(!d.hostname.is_empty());
    assert_eq!(d.platform.os, "linux");
    assert!(!d.platform.architecture.is_empty());
    assert!(d.resources.nano_cpus >= 1_000_000_000);
    assert!(d.resources.memory_bytes > 0);
    assert!(!d.engine.engine_version.is_empty());
    assert!(d
        .engine
        .plugins
        .iter()
        .any(|p| p.kind == "Volume" && p.name == "local"));
}

#[tokio::test]
async fn follows_and_tails_container_logs() {
    let cleanup = Cleanup::new();
    let exec = executor().await;
    let mut task = cleanup.task(
        "exectest",
        &["sh", "-c", "echo one; echo two; sleep 1; echo three"],
    );
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    let follow = ctl.logs(LogOptions {
        follow: true,
        ..Default::default()
    });
    // The follow ends when the container exits.
    let lines: Vec<LogLine> =
        tokio::time::timeout(DEADLINE, futures::TryStreamExt::try_collect(follow))
            .await
            .unwrap()
            .unwrap();
    let text: Vec<_> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.line).into_owned())
        .collect();
    assert_eq!(text, ["one\n", "two\n", "three\n"]);
    let tail: Vec<LogLine> = futures::TryStreamExt::try_collect(ctl.logs(LogOptions {
        tail: Some(1),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(&tail[0].line[..], b"three\n");
    let since: Vec<LogLine> = futures::TryStreamExt::try_collect(ctl.logs(LogOptions {
        since: Some(lines[2].timestamp),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(since.len(), 1, "only the line at or after the timestamp");
}

#[tokio::test]
async fn the_engine_takes_every_option_the_executor_sends() {
    use shoal_store::model::{
        DNSConfig, Limit, Mount, MountType, ResourceRequirements, Resources, TmpfsOptions, Ulimit,
    };
    let cleanup = Cleanup::new();
    let exec = executor().await;
    let script = "cat /etc/hosts /etc/resolv.conf; ulimit -n; hostname; echo $FOO; pwd; \
                  touch /data/x && echo vol-ok; touch /tmp/x && echo tmp-ok; \
                  (touch /x 2>/dev/null && echo rw) || echo ro-ok; sleep 30";
    let mut spec = command(IMAGE, &["sh", "-c", script]);
    spec.env = vec!["FOO=bar".into()];
    spec.dir = "/data".into();
    spec.hostname = "h1".into();
    spec.init = Some(true);
    spec.read_only = true;
    spec.stop_signal = "SIGINT".into();
    spec.hosts = vec!["10.1.2.3 db".into()];
    spec.dns_config = Some(DNSConfig {
        nameservers: vec!["10.0.0.53".into()],
        search: vec!["example.com".into()],
        options: vec!["ndots:2".into()],
    });
    spec.ulimits = vec![Ulimit {
        name: "nofile".into(),
        soft: 1000,
        hard: 2000,
    }];
    spec.capability_drop = vec!["CAP_MKNOD".into()];
    spec.mounts = vec![
        // Anonymous volume: removed with the container.
        Mount {
            kind: Some(MountType::Volume),
            target: "/data".into(),
            ..Default::default()
        },
        Mount {
            kind: Some(MountType::Tmpfs),
            target: "/tmp".into(),
            tmpfs_options: Some(TmpfsOptions {
                size_bytes: 1 << 20,
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let mut task = cleanup.task_with_spec("exectest", spec);
    task.spec.resources = Some(ResourceRequirements {
        limits: Some(Limit {
            nano_cpus: 500_000_000,
            memory_bytes: 64 << 20,
            pids: 100,
        }),
        reservations: Some(Resources {
            memory_bytes: 32 << 20,
            ..Default::default()
        }),
    });
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Running, "{}", task.status.err);

    let lines = eventually("the script's output", DEADLINE, || async {
        let lines = all_logs(ctl.as_ref()).await;
        lines
            .iter()
            .any(|l| l.line.starts_with(b"ro-ok"))
            .then_some(lines)
    })
    .await;
    let out: String = lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.line).into_owned())
        .collect();
    for want in [
        "10.1.2.3\tdb",
        "nameserver 10.0.0.53",
        "search example.com",
        "options ndots:2",
        "\n1000\n",
        "\nh1\n",
        "\nbar\n/data\n",
        "vol-ok",
        "tmp-ok",
        "ro-ok",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    let id = ctl.inspect().await.unwrap().unwrap().container_id;
    let c = exec.client().inspect_container(&id, None).await.unwrap();
    let hc = c.host_config.unwrap();
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(hc.memory_reservation, Some(32 << 20));
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.pids_limit, Some(100));
    assert_eq!(hc.init, Some(true));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.cap_drop.unwrap(), ["CAP_MKNOD"]);
    assert_eq!(c.config.unwrap().stop_signal.as_deref(), Some("SIGINT"));

    // The container's own stop signal (SIGINT) is used when none is given.
    ctl.shutdown(None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ctl.inspect().await.unwrap().unwrap().exit_code, Some(130));
    ctl.remove().await.unwrap();
}

/// Secrets and configs held "in memory", as an agent's worker holds them.
struct Held {
    secrets: Vec<shoal_store::model::Secret>,
    configs: Vec<shoal_store::model::Config>,
}

impl Dependencies for Held {
    fn secret(&self, id: &str) -> Option<shoal_store::model::Secret> {
        self.secrets.iter().find(|s| s.meta.id == id).cloned()
    }
    fn config(&self, id: &str) -> Option<shoal_store::model::Config> {
        self.configs.iter().find(|c| c.meta.id == id).cloned()
    }
}

/// What `cmd` prints inside container `id` (stdout and stderr).
async fn exec_output(exec: &DockerExecutor, id: &str, cmd: &[&str]) -> String {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let created = exec
        .client()
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        exec.client().start_exec(&created.id, None).await.unwrap()
    {
        while let Some(Ok(chunk)) = output.next().await {
            out.push_str(&chunk.to_string());
        }
    }
    out
}

fn file_target(name: &str, uid: &str, gid: &str, mode: u32) -> Option<ReferenceFileTarget> {
    Some(ReferenceFileTarget {
        name: name.into(),
        uid: uid.into(),
        gid: gid.into(),
        mode,
    })
}

#[tokio::test]
async fn secrets_and_configs_are_files_on_a_tmpfs_that_goes_with_the_task() {
    use shoal_store::model::{Config, ConfigReference, Meta, Secret, SecretReference};
    let cleanup = Cleanup::new();
    let exec = executor().await;
    let secret_bytes = format!("s3cr3t-{}", shoal_store::model::new_id());
    let mut secret = Secret {
        meta: Meta::with_id("sec1"),
        ..Default::default()
    };
    secret.spec.name = "token".into();
    secret.spec.data = secret_bytes.clone().into_bytes();
    let mut config = Config {
        meta: Meta::with_id("cfg1"),
        ..Default::default()
    };
    config.spec.name = "app".into();
    config.spec.data = "\u{2708} listen 8080\n".as_bytes().to_vec();
    let mut spec = command(IMAGE, &["sleep", "30"]);
    spec.secrets = vec![SecretReference {
        file: file_target("token", "1000", "1001", 0o440),
        secret_id: "sec1".into(),
        secret_name: "token".into(),
    }];
    spec.configs = vec![ConfigReference {
        file: file_target("/etc/app/app.conf", "0", "0", 0o444),
        config_id: "cfg1".into(),
        config_name: "app".into(),
        ..Default::default()
    }];
    let mut task = cleanup.task_with_spec("secrettest", spec);

    // Until the node holds the secret, preparing is a temporary error (nothing is created).
    let empty: Arc<dyn Dependencies> = Arc::new(Held {
        secrets: vec![],
        configs: vec![config.clone()],
    });
    let early = exec.controller(&task, empty).unwrap();
    let err = early.prepare().await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(
        err.to_string()
            .contains("secret token (sec1) is not on this node yet"),
        "{err}"
    );
    assert!(containers_of(&exec, &task.meta.id).await.is_empty());

    let held: Arc<dyn Dependencies> = Arc::new(Held {
        secrets: vec![secret],
        configs: vec![config],
    });
    let ctl = exec.controller(&task, held).unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    let id = containers_of(&exec, &task.meta.id).await.remove(0);
    let read = exec_output(
        &exec,
        &id,
        &[
            "sh",
            "-c",
            "stat -c '%u %g %a' /run/secrets/token; cat /run/secrets/token",
        ],
    )
    .await;
    assert_eq!(read, format!("1000 1001 440\n{secret_bytes}"));
    let read = exec_output(
        &exec,
        &id,
        &[
            "sh",
            "-c",
            "stat -c '%u %g %a' /etc/app/app.conf; cat /etc/app/app.conf",
        ],
    )
    .await;
    assert_eq!(read, "0 0 444\n\u{2708} listen 8080\n");
    // Read-only in the container.
    let write = exec_output(&exec, &id, &["sh", "-c", "echo x > /run/secrets/token"]).await;
    assert!(write.contains("Read-only file system"), "{write}");

    // On the host they live on the task's own tmpfs, which goes with the task.
    let dir = files::task_dir(Path::new("/run/shoal/docker-executor-tests"), &task.meta.id);
    let fs = nix::sys::statfs::statfs(&dir).unwrap();
    assert_eq!(fs.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
    ctl.remove().await.unwrap();
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&task.meta.id),
        "the tmpfs is still mounted"
    );
}
