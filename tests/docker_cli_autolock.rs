//! Autolock with the real `docker` CLI: a restarted manager of an autolocked swarm is locked
//! until `docker swarm unlock` gives it the key; rotation retires the old key; turning autolock
//! off leaves managers unlocked; a manager that joins a locked swarm seals its own keys. And the
//! data stays sealed on disk throughout.

mod common;
mod disk_scan;

use std::time::Duration;

use common::{wait_for, Daemon};
use disk_scan::files_containing;

const LOCKED: &str =
    "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";

fn key_file(d: &Daemon) -> String {
    std::fs::read_to_string(d.dir().join("data/swarm/certificates/swarm-node.key"))
        .expect("the node's key file")
}

fn init_locked(d: &Daemon) -> String {
    let addr = format!("127.0.0.1:{}", d.swarm_port);
    let out = d.ok(&[
        "swarm",
        "init",
        "--autolock",
        "--listen-addr",
        &addr,
        "--advertise-addr",
        &addr,
    ]);
    assert!(out.contains("docker swarm unlock"), "{out}");
    let key = d.ok(&["swarm", "unlock-key", "-q"]).trim().to_string();
    assert!(key.starts_with("SWMKEY-1-") && out.contains(&key), "{out}");
    key
}

fn unlock(d: &Daemon, key: &str) -> common::Out {
    d.docker_stdin(&["swarm", "unlock"], Some(format!("{key}\n").as_bytes()))
}

fn state(d: &Daemon) -> String {
    d.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .trim()
        .to_string()
}

#[test]
fn a_restarted_manager_stays_locked_until_unlocked_and_rotation_retires_the_old_key() {
    let mut d = Daemon::start("locked");
    let key = init_locked(&d);
    let secret = format!("s3cr3t-{}", std::process::id());
    let file = d.write_file("pw", &secret);
    d.ok(&["secret", "create", "db_pw", file.to_str().unwrap()]);
    // Nothing of the node's keys is in clear on disk.
    let keys = key_file(&d);
    assert!(keys.contains("SHOAL LOCKED NODE KEY"), "{keys}");
    assert!(
        !keys.contains("PRIVATE KEY") && !keys.contains("DATA KEY"),
        "{keys}"
    );

    d.restart();
    assert_eq!(state(&d), "locked");
    let err = d.fails(&["node", "ls"]);
    assert!(err.contains(LOCKED), "{err}");
    let err = d.fails(&["swarm", "leave"]);
    assert!(err.contains("Swarm is encrypted and locked"), "{err}");
    let wrong = unlock(&d, "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert!(
        !wrong.ok && wrong.stderr.contains("invalid key provided"),
        "{}",
        wrong.stderr
    );
    let garbage = unlock(&d, "not-a-key");
    assert!(
        !garbage.ok && garbage.stderr.contains("invalid key string"),
        "{}",
        garbage.stderr
    );
    assert_eq!(state(&d), "locked", "a refused key changes nothing");
    let ok = unlock(&d, &key);
    assert!(ok.ok, "{}", ok.stderr);
    assert_eq!(state(&d), "active");
    assert_eq!(d.lines(&["secret", "ls", "-q"]).len(), 1);
    let again = d.fails(&["swarm", "unlock"]);
    assert!(again.contains("swarm is not locked"), "{again}");

    // Rotation: the old key no longer opens this manager.
    let sealed_before = key_file(&d);
    let new_key = d
        .ok(&["swarm", "unlock-key", "--rotate", "-q"])
        .trim()
        .to_string();
    assert_ne!(new_key, key);
    // The manager re-seals its keys as it follows the swarm's key.
    wait_for(Duration::from_secs(10), "the keys re-sealed", || {
        let now = key_file(&d);
        (now != sealed_before && now.contains("SHOAL LOCKED NODE KEY")).then_some(())
    });
    d.restart();
    wait_for(
        Duration::from_secs(10),
        "the node to come up locked",
        || (state(&d) == "locked").then_some(()),
    );
    let old = unlock(&d, &key);
    assert!(!old.ok, "the rotated-out key still unlocks");
    let ok = unlock(&d, &new_key);
    assert!(ok.ok, "{}", ok.stderr);

    // Off: a restarted manager is not locked any more, and its key file is in clear again.
    d.ok(&["swarm", "update", "--autolock=false"]);
    wait_for(Duration::from_secs(10), "the keys in clear", || {
        key_file(&d).contains("PRIVATE KEY").then_some(())
    });
    let none = d.fails(&["swarm", "unlock-key", "-q"]);
    assert!(none.contains("no unlock key is set"), "{none}");
    d.restart();
    assert_eq!(state(&d), "active");

    let raw = files_containing(&d.dir().join("data"), secret.as_bytes());
    assert!(raw.is_empty(), "the secret in clear in {raw:?}");
}

#[test]
fn a_manager_joining_a_locked_swarm_seals_its_keys_too() {
    let first = Daemon::start("first");
    let key = init_locked(&first);
    let token = first
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let mut second = Daemon::start("second");
    let out = second.join(&first, &token);
    assert!(out.ok, "{}", out.stderr);
    wait_for(
        Duration::from_secs(20),
        "the new manager's keys sealed",
        || {
            key_file(&second)
                .contains("SHOAL LOCKED NODE KEY")
                .then_some(())
        },
    );
    second.restart();
    assert_eq!(state(&second), "locked");
    let ok = unlock(&second, &key);
    assert!(ok.ok, "{}", ok.stderr);
    wait_for(Duration::from_secs(20), "both managers listed", || {
        let ls = second.docker(&["node", "ls", "-q"]);
        (ls.ok && ls.stdout.lines().count() == 2).then_some(())
    });
}

#[test]
fn turning_autolock_on_rotates_the_data_key_and_the_old_one_opens_nothing() {
    use shoal::ca::{key_file, UnlockKey};
    let mut d = Daemon::start("rekey");
    let addr = format!("127.0.0.1:{}", d.swarm_port);
    d.ok(&[
        "swarm",
        "init",
        "--listen-addr",
        &addr,
        "--advertise-addr",
        &addr,
    ]);
    let file = d.write_file("pw", "rotated-secret");
    d.ok(&["secret", "create", "db_pw", file.to_str().unwrap()]);
    let before = key_file::decode(&key_file(&d), None).expect("a key file in clear");
    let old = before.data.current.clone().expect("a manager's data key");

    d.ok(&["swarm", "update", "--autolock=true"]);
    let key = d.ok(&["swarm", "unlock-key", "-q"]).trim().to_string();
    let unlock_key = UnlockKey::parse(&key).unwrap();
    let after = wait_for(Duration::from_secs(30), "the data key rotated", || {
        let keys = key_file::decode(&key_file(&d), Some(&unlock_key)).ok()?;
        (keys.data.current.as_ref() != Some(&old)
            && keys.data.retiring.is_none()
            && keys.key_pem != before.key_pem)
            .then_some(keys)
    });
    assert_eq!(d.lines(&["secret", "ls", "-q"]).len(), 1);
    d.ok(&["secret", "create", "after", file.to_str().unwrap()]);

    d.kill9();
    let raft = d.dir().join("data/swarm/raft");
    let (old_opens, sealed) = shoal_store::raft::db::values_opened_by(&raft, &old).unwrap();
    assert!(sealed > 0, "the store has sealed values");
    assert_eq!(old_opens, 0, "the old data key still opens stored values");
    let new = after.data.current.expect("the new data key");
    let (new_opens, _) = shoal_store::raft::db::values_opened_by(&raft, &new).unwrap();
    assert_eq!(new_opens, sealed, "the new data key opens every value");

    d.restart();
    assert_eq!(state(&d), "locked");
    let ok = unlock(&d, &key);
    assert!(ok.ok, "{}", ok.stderr);
    assert_eq!(d.lines(&["secret", "ls", "-q"]).len(), 2);
}
