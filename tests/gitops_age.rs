//! A secret encrypted with age in a git repository reaches the container decrypted (the
//! leader decrypts it with the identity held as a swarm secret), and its cleartext is on no
//! file of the manager's data directory (store, git cache); a file encrypted for another key
//! fails its commit and leaves the running service alone. A real Docker Engine runs the task.

mod agents_common;
mod disk_scan;
mod gitops_common;

use std::path::Path;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use agents_common::{engine, require_engine, running_task_containers, wait_for, Swarm, IMAGE};
use base64::Engine as _;
use disk_scan::files_containing;
use gitops_common::{commit, git, shoal};
use serde_json::Value;

fn source(socket: &Path) -> Value {
    let (ok, out) = shoal(socket, &["gitops", "inspect", "sec", "-o", "json"]);
    assert!(ok, "{out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

const COMPOSE: &str = r#"
services:
  app:
    image: shoal-test/busybox:1
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    secrets: [db_password]
secrets:
  db_password:
    file: ./db_password.age
"#;

#[test]
fn an_age_encrypted_secret_reaches_the_container_decrypted_and_never_a_disk_in_clear() {
    require_engine();
    assert_eq!(
        IMAGE, "shoal-test/busybox:1",
        "the compose file names the test image"
    );
    let swarm = Swarm::start("gitage", 1, 0);
    let m = swarm.manager();
    let socket = m.socket();

    let key = age::x25519::Identity::generate();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("key.txt");
    std::fs::write(
        &key_file,
        format!(
            "# public key: {}\n{}\n",
            key.to_public(),
            key.to_string().expose_secret()
        ),
    )
    .unwrap();
    m.ok(&["secret", "create", "age-key", key_file.to_str().unwrap()]);

    let marker = format!("pw-{}-{}", std::process::id(), "y".repeat(10));
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.path().join("compose.yaml"), COMPOSE).unwrap();
    let sealed = age::encrypt(&key.to_public(), marker.as_bytes()).unwrap();
    std::fs::write(repo.path().join("db_password.age"), &sealed).unwrap();
    let c1 = commit(repo.path(), "app with an encrypted secret");
    let repo_arg = repo.path().to_str().unwrap();
    let (ok, out) = shoal(
        &socket,
        &[
            "gitops",
            "add",
            "sec",
            "--repo",
            repo_arg,
            "--ref",
            "main",
            "--interval",
            "1s",
            "--age-identity-secret",
            "age-key",
        ],
    );
    assert!(ok, "{out}");
    let mut last = Value::Null;
    wait_for(Duration::from_secs(60), "the commit applied", || {
        last = source(&socket);
        (last["Status"]["LastAppliedCommit"] == c1.as_str()).then_some(())
    });

    let id = swarm.service_id("sec_app");
    let (container, _) = wait_for(Duration::from_secs(60), "the app's container", || {
        running_task_containers(&id).into_iter().next()
    });
    let out = engine(&["exec", &container, "cat", "/run/secrets/db_password"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, marker);

    // In clear or base64, on no file of the manager (the store seals it; the git cache holds
    // the encrypted file).
    let encoded = base64::engine::general_purpose::STANDARD.encode(&marker);
    for needle in [marker.as_bytes(), encoded.as_bytes()] {
        let found = files_containing(&m.data_dir(), needle);
        assert!(found.is_empty(), "the cleartext is on disk: {found:?}");
    }
    let cached = files_containing(&m.data_dir(), &sealed[sealed.len() - 32..]);
    assert!(
        !cached.is_empty(),
        "the cache work tree holds the encrypted file"
    );

    // Encrypted for another key: the commit fails with the reason, the app keeps running.
    let other = age::x25519::Identity::generate();
    let wrong = age::encrypt(&other.to_public(), b"other").unwrap();
    std::fs::write(repo.path().join("db_password.age"), &wrong).unwrap();
    let c2 = commit(repo.path(), "encrypted for someone else");
    wait_for(Duration::from_secs(60), "the commit to fail", || {
        last = source(&socket);
        (last["Status"]["LastFetchedCommit"] == c2.as_str()).then_some(())
    });
    let stack = &last["Status"]["Stacks"]["sec"];
    assert_eq!(stack["Result"], "Failed", "{last:#}");
    let message = stack["Message"].as_str().unwrap();
    assert!(
        message.contains("cannot decrypt ./db_password.age"),
        "{message}"
    );
    assert_eq!(last["Status"]["LastAppliedCommit"], c1.as_str());
    assert_eq!(
        running_task_containers(&id).into_iter().next().map(|c| c.0),
        Some(container.clone()),
        "the same container still runs"
    );
}
