//! `shoal backup` and `shoal restore`: a backup taken from a running manager, checked by its
//! checksum, restored into a fresh data dir, starts a manager with the same state and revision;
//! a damaged backup is refused and restores nothing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{wait_for, Daemon};

fn shoal(args: &[&str], host: Option<&Daemon>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args);
    if let Some(d) = host {
        cmd.env("SHOAL_HOST", format!("unix://{}", d.socket.display()));
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn version(d: &Daemon, path: &str) -> u64 {
    d.get_json(path)["Version"]["Index"].as_u64().unwrap()
}

fn restore(file: &Path, into: &Daemon) -> Output {
    let addr = format!("127.0.0.1:{}", into.swarm_port);
    let data = into.dir().join("data");
    shoal(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen-addr",
            &addr,
            "--advertise-addr",
            &addr,
        ],
        None,
    )
}

#[test]
fn a_backup_restored_into_a_fresh_data_dir_starts_a_manager_with_the_same_state() {
    let mut a = common::swarm("br-a");
    let a_id = a.node_id();
    a.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    a.docker_stdin(&["secret", "create", "token", "-"], Some(b"s3cret"));
    a.docker_stdin(&["config", "create", "conf", "-"], Some(b"x=1"));
    let web_version = version(&a, "/services/web");
    let revision = a.get_json("/shoal/v1/revision")["revision"]
        .as_u64()
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("swarm.backup");
    let out = shoal(&["backup", "--out", file.to_str().unwrap()], Some(&a));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("keep it"), "{}", text(&out));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // `-o json` says the same as one object.
    let again = tmp.path().join("again.backup");
    let out = shoal(
        &["backup", "--out", again.to_str().unwrap(), "-o", "json"],
        Some(&a),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["NodeID"], a_id.as_str(), "{said}");
    assert!(said["Revision"].as_u64().unwrap() > 0, "{said}");

    // A damaged backup is refused and leaves the data dir empty.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = tmp.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    let mut b = Daemon::start("br-b");
    b.kill9();
    let out = restore(&damaged, &b);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("checksum"), "{}", text(&out));
    assert!(!b.dir().join("data").join("swarm").join("raft").exists());

    // The good one: the old swarm is gone, its backup becomes a new manager.
    let out = restore(&file, &b);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    a.kill9();
    b.restart();
    wait_for(
        Duration::from_secs(30),
        "the restored manager serving",
        || b.docker(&["service", "ls"]).ok.then_some(()),
    );
    assert_eq!(b.node_id(), a_id, "the restored manager is the backup's");
    // Its node records the Raft id it has now, and the Raft group agrees.
    wait_for(Duration::from_secs(30), "one reachable leader", || {
        let status = b.ok(&[
            "node",
            "inspect",
            &a_id,
            "--format",
            "{{.ManagerStatus.Leader}}",
        ]);
        (status.trim() == "true").then_some(())
    });
    assert_eq!(version(&b, "/services/web"), web_version);
    assert_eq!(
        b.lines(&["secret", "ls", "--format", "{{.Name}}"]),
        ["token"]
    );
    assert_eq!(
        b.lines(&["config", "ls", "--format", "{{.Name}}"]),
        ["conf"]
    );
    let restored = b.get_json("/shoal/v1/revision")["revision"]
        .as_u64()
        .unwrap();
    assert!(restored >= revision, "{restored} < {revision}");
    // It takes writes, and schedules.
    b.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "after",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    wait_for(Duration::from_secs(30), "the new service running", || {
        let s = b.lines(&["service", "ps", "--format", "{{.CurrentState}}", "after"]);
        s.iter().any(|l| l.starts_with("Running")).then_some(())
    });
    // A data dir that holds a swarm is not overwritten.
    b.kill9();
    let out = restore(&file, &b);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("already holds a swarm"),
        "{}",
        text(&out)
    );
}
