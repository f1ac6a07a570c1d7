//! Process executor tests: real host processes under a temporary state directory.

use std::time::Duration;

use futures::StreamExt;
use shoal_store::model::{ContainerSpec, TaskState};

use super::*;
use crate::exec::testutil::{all_logs, command, drive_until, eventually, has_line, task_with};
use crate::exec::LogLine;

const DEADLINE: Duration = Duration::from_secs(30);

fn sh(script: &str) -> ContainerSpec {
    command("ignored:1", &["sh", "-c", script])
}

#[tokio::test]
async fn runs_a_command_and_reports_its_exit_code_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();

    let mut task = task_with("proc", sh("echo hello; echo oops >&2; exit 3"));
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    let seen = drive_until(&mut task, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
    assert_eq!(
        seen.last(),
        Some(&TaskState::Failed),
        "passed through {seen:?}"
    );
    assert_eq!(task.status.err, "task: non-zero exit (3)");
    assert_eq!(task.status.container_status.as_ref().unwrap().exit_code, 3);
    // The exit is announced only after the output is in the log.
    let lines = all_logs(ctl.as_ref()).await;
    assert!(has_line(&lines, LogStream::Stdout, "hello"), "{lines:?}");
    assert!(has_line(&lines, LogStream::Stderr, "oops"), "{lines:?}");
    let state = ctl.inspect().await.unwrap().unwrap();
    assert!(state.exited());
    assert_eq!(state.exit_code, Some(3));

    let mut ok = task_with("proc", sh("echo fine"));
    let ctl = exec
        .controller(&ok, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut ok, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
    assert_eq!(ok.status.state, TaskState::Complete);
    assert_eq!(ok.status.message, "finished");

    ctl.remove().await.unwrap();
    assert!(ctl.inspect().await.unwrap().is_none());
    assert!(!dir.path().join(&ok.meta.id).exists());
}

#[tokio::test]
async fn a_missing_program_is_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let mut task = task_with("proc", command("x", &["shoal-no-such-program"]));
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Rejected);
    assert_eq!(
        task.status.err,
        "exec: \"shoal-no-such-program\": executable file not found in $PATH"
    );
    assert!(ctl.inspect().await.unwrap().is_none());
}

#[tokio::test]
async fn logs_follow_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let mut task = task_with(
        "proc",
        sh("echo one; echo two; echo three >&2; sleep 1; echo four"),
    );
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    let mut follow = ctl.logs(LogOptions {
        follow: true,
        stderr: false,
        ..Default::default()
    });
    let mut got = Vec::new();
    while got.len() < 3 {
        let line = tokio::time::timeout(DEADLINE, follow.next())
            .await
            .expect("a followed line")
            .expect("stream open")
            .unwrap();
        assert_eq!(line.stream, LogStream::Stdout);
        got.push(String::from_utf8_lossy(&line.line).into_owned());
    }
    assert_eq!(got, ["one\n", "two\n", "four\n"]);
    // The follow ends once the process has exited and its output is read.
    assert!(tokio::time::timeout(DEADLINE, follow.next())
        .await
        .unwrap()
        .is_none());

    let tail: Vec<LogLine> = futures::TryStreamExt::try_collect(ctl.logs(LogOptions {
        tail: Some(2),
        ..Default::default()
    }))
    .await
    .unwrap();
    let text: Vec<_> = tail
        .iter()
        .map(|l| String::from_utf8_lossy(&l.line).into_owned())
        .collect();
    assert_eq!(text, ["three\n", "four\n"]);
    ctl.remove().await.unwrap();
}

#[tokio::test]
async fn shutdown_signals_then_kills_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();

    // Exits on the stop signal within the grace period.
    let mut polite = task_with(
        "proc",
        sh("trap 'echo bye; exit 0' USR1; echo ready; while true; do sleep 0.1; done"),
    );
    let ctl = exec
        .controller(&polite, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut polite, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    eventually("the trap to be set", DEADLINE, || async {
        has_line(&all_logs(ctl.as_ref()).await, LogStream::Stdout, "ready").then_some(())
    })
    .await;
    let pid = ctl.inspect().await.unwrap().unwrap().pid;
    assert!(pid > 0);
    ctl.shutdown(Some("SIGUSR1"), Duration::from_secs(20))
        .await
        .unwrap();
    let state = ctl.inspect().await.unwrap().unwrap();
    assert_eq!(
        state.exit_code,
        Some(0),
        "exited by its own trap, not killed"
    );
    assert!(has_line(
        &all_logs(ctl.as_ref()).await,
        LogStream::Stdout,
        "bye"
    ));
    ctl.remove().await.unwrap();

    // Ignores SIGTERM: killed once the grace period is over.
    let mut stubborn = task_with("proc", sh("trap '' TERM; echo ready; sleep 60"));
    let ctl = exec
        .controller(&stubborn, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut stubborn, ctl.as_ref(), TaskState::Running, DEADLINE).await;
    eventually("the trap to be set", DEADLINE, || async {
        has_line(&all_logs(ctl.as_ref()).await, LogStream::Stdout, "ready").then_some(())
    })
    .await;
    stubborn.desired_state = TaskState::Shutdown;
    stubborn
        .spec
        .container_spec
        .as_mut()
        .unwrap()
        .stop_grace_period = Some(300_000_000);
    drive_until(&mut stubborn, ctl.as_ref(), TaskState::Shutdown, DEADLINE).await;
    assert_eq!(stubborn.status.state, TaskState::Shutdown);
    let state = ctl.inspect().await.unwrap().unwrap();
    assert!(state.exited());
    assert_eq!(state.exit_code, Some(128 + 9), "SIGKILLed");
    ctl.remove().await.unwrap();
}

#[tokio::test]
async fn a_restarted_agent_adopts_the_running_process_through_its_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = task_with("proc", sh("echo before; sleep 60"));
    let first_pid = {
        let exec = ProcessExecutor::new(dir.path()).unwrap();
        let ctl = exec
            .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
            .unwrap();
        drive_until(&mut task, ctl.as_ref(), TaskState::Running, DEADLINE).await;
        eventually("output to be logged", DEADLINE, || async {
            has_line(&all_logs(ctl.as_ref()).await, LogStream::Stdout, "before").then_some(())
        })
        .await;
        ctl.inspect().await.unwrap().unwrap().pid
        // The executor and controller are dropped here, as when the agent dies.
    };

    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let found = exec.adoptable().await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].task_id, task.meta.id);
    assert_eq!(found[0].service_id, task.service_id);
    assert!(found[0].state.running());
    assert_eq!(found[0].state.pid, first_pid);

    // Driving the task again (even from an earlier state) starts nothing new.
    let ctl: std::sync::Arc<dyn TaskController> = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap()
        .into();
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    let state = ctl.inspect().await.unwrap().unwrap();
    assert!(state.running());
    assert_eq!(state.pid, first_pid, "no second process");
    assert!(has_line(
        &all_logs(ctl.as_ref()).await,
        LogStream::Stdout,
        "before"
    ));

    // The adopted process can be stopped; its exit code is unknown to the new agent.
    let waiter = tokio::spawn({
        let ctl = ctl.clone();
        async move { ctl.wait().await }
    });
    ctl.shutdown(None, Duration::from_secs(10)).await.unwrap();
    assert!(
        proc_stat(first_pid as i32).is_none_or(|(state, _)| state == 'Z'),
        "the process is gone"
    );
    let state = ctl.inspect().await.unwrap().unwrap();
    assert!(state.exited());
    let waited = tokio::time::timeout(DEADLINE, waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            waited,
            Err(ExecError::Failed {
                exit_code: None,
                ..
            })
        ),
        "{waited:?}"
    );
    ctl.remove().await.unwrap();
    assert!(exec.adoptable().await.unwrap().is_empty());
}

#[tokio::test]
async fn runs_as_the_tasks_user_when_the_agent_is_root() {
    if !is_root() {
        return; // only root can switch users; the agent then ignores `User`
    }
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let mut spec = sh("id -u; id -g; echo $GREETING; pwd");
    spec.user = "65534:65533".into();
    spec.env = vec!["GREETING=hi there".into()];
    spec.dir = "/tmp".into();
    let mut task = task_with("proc", spec);
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
    assert_eq!(
        task.status.state,
        TaskState::Complete,
        "{}",
        task.status.err
    );
    let lines = all_logs(ctl.as_ref()).await;
    for want in ["65534", "65533", "hi there", "/tmp"] {
        assert!(
            has_line(&lines, LogStream::Stdout, want),
            "{want}: {lines:?}"
        );
    }
    ctl.remove().await.unwrap();
}

#[tokio::test]
async fn describes_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let d = exec.describe().await.unwrap();
    assert_eq!(d.platform.os, "linux");
    assert!(!d.platform.architecture.is_empty());
    assert!(d.resources.nano_cpus >= 1_000_000_000);
    assert!(d.resources.memory_bytes > 0);
    assert!(!d.hostname.is_empty());
}

#[tokio::test]
async fn the_pump_splits_long_lines_and_resumes_after_a_restart() {
    use futures::TryStreamExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "x".repeat(MAX_RECORD + 10);
    std::fs::write(d.join("stdout.raw"), "a\n\nbb").unwrap();
    std::fs::write(d.join("stderr.raw"), &long).unwrap();
    let lines = || async {
        let all: Vec<LogLine> = logfile::read(d.join("log"), LogOptions::default(), |_| false)
            .try_collect()
            .await
            .unwrap();
        all.into_iter()
            .map(|l| (l.stream, String::from_utf8(l.line.to_vec()).unwrap()))
            .collect::<Vec<_>>()
    };

    let mut pump = Pump::load(d);
    pump.run(d, false);
    // Complete lines (the empty one too) and a full-size fragment; the rest waits.
    assert_eq!(
        lines().await,
        [
            (LogStream::Stdout, "a\n".to_string()),
            (LogStream::Stdout, "\n".to_string()),
            (LogStream::Stderr, "x".repeat(MAX_RECORD)),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(d.join("offsets")).unwrap(),
        format!("3 {MAX_RECORD}\n")
    );

    // A new agent's pump re-reads the unfinished line, so nothing is lost or repeated.
    drop(pump);
    let mut raw = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("stdout.raw"))
        .unwrap();
    std::io::Write::write_all(&mut raw, b"b\n").unwrap();
    let mut pump = Pump::load(d);
    pump.run(d, false);
    pump.run(d, true); // the process is gone: flush what is left as a partial line
    let got = lines().await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[3], (LogStream::Stdout, "bbb\n".to_string()));
    assert_eq!(got[4], (LogStream::Stderr, "x".repeat(10)));
}

#[tokio::test]
async fn background_children_end_with_the_main_process() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let mut task = task_with("proc", sh("sleep 60 & echo $!"));
    let ctl = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .unwrap();
    drive_until(&mut task, ctl.as_ref(), TaskState::Complete, DEADLINE).await;
    assert_eq!(task.status.state, TaskState::Complete);
    let lines = all_logs(ctl.as_ref()).await;
    let child: i32 = String::from_utf8_lossy(&lines[0].line)
        .trim()
        .parse()
        .unwrap();
    eventually("the background sleep to be gone", DEADLINE, || async {
        proc_stat(child)
            .is_none_or(|(state, _)| state == 'Z')
            .then_some(())
    })
    .await;
    ctl.remove().await.unwrap();
}

#[tokio::test]
async fn a_task_with_a_secret_is_refused_rather_than_run_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let exec = ProcessExecutor::new(dir.path()).unwrap();
    let mut spec = sh("cat /run/secrets/token");
    spec.secrets = vec![shoal_store::model::SecretReference {
        secret_id: "s1".into(),
        secret_name: "token".into(),
        ..Default::default()
    }];
    let task = task_with("proc", spec);
    let err = exec
        .controller(&task, std::sync::Arc::new(crate::exec::NoDependencies))
        .err()
        .expect("refused");
    assert!(
        matches!(&err, ExecError::Rejected(m) if m.contains("--executor docker")),
        "{err}"
    );
}
