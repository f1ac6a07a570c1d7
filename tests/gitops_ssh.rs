//! GitOps over ssh with a deploy key from a swarm secret and the server's host key pinned: an
//! sshd started by the test (its own port, host key and authorized keys) serves a repository;
//! the source with the key and the right host key applies it, one with another host key is
//! refused by ssh (Stalled), and nothing is learned into a known_hosts file.

mod common;
mod gitops_common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_for, Daemon};
use gitops_common::{git, shoal};
use serde_json::Value;

const SSHD: &str = "/usr/sbin/sshd";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

/// An sshd on loopback, killed when dropped.
struct Sshd {
    port: u16,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd(dir: &Path, authorized: &Path) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "no {SSHD} here: the ssh GitOps test needs openssh-server (run scripts/setup.sh)"
    );
    // sshd's privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    keygen(&dir.join("host_key"));
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {}\n",
            dir.join("host_key").display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    let d = Sshd { port, child };
    wait_for(Duration::from_secs(10), "sshd listening", || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    d
}

fn source(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/shoal/v1/gitops/{name}"))
}

#[test]
fn an_ssh_repository_is_fetched_with_a_deploy_key_and_a_pinned_host_key() {
    let keys = tempfile::tempdir().unwrap();
    keygen(&keys.path().join("deploy"));
    let server = sshd(keys.path(), &keys.path().join("deploy.pub"));
    let host_key = std::fs::read_to_string(keys.path().join("host_key.pub")).unwrap();
    let pinned = keys.path().join("known_hosts");
    std::fs::write(&pinned, format!("[127.0.0.1]:{} {host_key}", server.port)).unwrap();
    keygen(&keys.path().join("other_host"));
    let other = std::fs::read_to_string(keys.path().join("other_host.pub")).unwrap();
    let wrong = keys.path().join("wrong_known_hosts");
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {other}", server.port)).unwrap();

    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.path().join("compose.yaml"),
        "services:\n  app:\n    image: shoal-test/busybox:1\n    command: [\"sleep\", \"100000\"]\n",
    )
    .unwrap();
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "--quiet", "-m", "app"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let user = run(Command::new("id").arg("-un"));
    let url = format!(
        "ssh://{user}@127.0.0.1:{}{}",
        server.port,
        repo.path().display()
    );

    let d = common::swarm("gitops-ssh");
    let key_file = keys.path().join("deploy");
    d.ok(&["secret", "create", "deploy-key", key_file.to_str().unwrap()]);
    let add = |name: &str, hosts: &Path| {
        shoal(
            &d.socket,
            &[
                "gitops",
                "add",
                name,
                "--repo",
                &url,
                "--ref",
                "main",
                "--interval",
                "1s",
                "--deploy-key-secret",
                "deploy-key",
                "--known-hosts",
                hosts.to_str().unwrap(),
            ],
        )
    };

    // Another host key pinned: ssh refuses the server, nothing is applied.
    let (ok, out) = add("spoofed", &wrong);
    assert!(ok, "{out}");
    let s = wait_for(Duration::from_secs(60), "spoofed Stalled", || {
        let s = source(&d, "spoofed");
        let stalled = s["Status"]["Conditions"]
            .as_array()?
            .iter()
            .find(|c| c["Type"] == "Stalled" && c["Status"] == true)?
            .clone();
        Some((s, stalled))
    });
    let message = s.1["Message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("host key"), "{message}");
    assert_eq!(s.0["Status"]["LastAppliedCommit"], "", "{:#}", s.0);

    // The right host key: fetched with the deploy key and applied.
    let (ok, out) = add("app", &pinned);
    assert!(ok, "{out}");
    let mut last = Value::Null;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(60), "app applied over ssh", || {
            last = source(&d, "app");
            (last["Status"]["LastAppliedCommit"] == head.as_str()).then_some(())
        })
    }));
    assert!(found.is_ok(), "{last:#}");
    d.get_json("/services/app_app");
    // The key is on disk only for a fetch: no key file is left in the data directory once
    // the fetch that may be running now (the source polls) has ended.
    let gitops = d.dir().join("data/swarm/gitops");
    let key_dirs = || -> Vec<String> {
        std::fs::read_dir(&gitops)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".ssh-"))
            .collect()
    };
    let mut left = Vec::new();
    let gone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(15), "the ssh key removed", || {
            left = key_dirs();
            left.is_empty().then_some(())
        })
    }));
    assert!(gone.is_ok(), "key directories left: {left:?}");
}
