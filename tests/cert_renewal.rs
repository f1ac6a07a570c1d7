//! Certificate lifecycle: node certificates are valid for the swarm's `NodeCertExpiry` and
//! renewed before they expire, on every node, without a node going down or a task restarting;
//! CA settings this swarm cannot honour are refused with a clear error.
//!
//! The daemons run with `SHOAL_TEST_MIN_CERT_EXPIRY` (debug builds only) so a swarm can ask for
//! certificates that live seconds instead of the 1 h minimum.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use common::{wait_for, Daemon};
use shoal::ca::NodeCredentials;

const SHORT_CERTS: &[(&str, &str)] = &[("SHOAL_TEST_MIN_CERT_EXPIRY", "2")];

fn credentials(d: &Daemon) -> NodeCredentials {
    NodeCredentials::load(&d.dir().join("data").join("swarm")).expect("node credentials")
}

/// Joins `manager` and `worker` to `a`'s swarm and waits until the three are ready; returns
/// the worker join token.
fn join_manager_and_worker(a: &Daemon, manager: &Daemon, worker: &Daemon) -> String {
    let manager_token = a.ok(&["swarm", "join-token", "-q", "manager"]);
    let worker_token = a.ok(&["swarm", "join-token", "-q", "worker"]);
    assert!(manager.join(a, manager_token.trim()).ok);
    assert!(worker.join(a, worker_token.trim()).ok);
    wait_for(Duration::from_secs(30), "three ready nodes", || {
        let s = states(a);
        (s.len() == 3 && s.iter().all(|l| l.ends_with(" Ready"))).then_some(())
    });
    worker_token.trim().to_string()
}

fn states(d: &Daemon) -> Vec<String> {
    d.lines(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
}

#[test]
fn certificates_renew_before_they_expire_and_nothing_notices() {
    let a = Daemon::start_with_env("cr-a", &["--executor", "sim"], SHORT_CERTS);
    let addr = format!("127.0.0.1:{}", a.swarm_port);
    a.ok(&[
        "swarm",
        "init",
        "--listen-addr",
        &addr,
        "--advertise-addr",
        &addr,
        "--cert-expiry",
        "6s",
    ]);
    let b = Daemon::start_with_env("cr-b", &["--executor", "sim"], SHORT_CERTS);
    let w = Daemon::start_with_env("cr-w", &["--executor", "sim"], SHORT_CERTS);
    let worker_token = join_manager_and_worker(&a, &b, &w);
    a.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "6",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    let tasks = |d: &Daemon| -> BTreeSet<String> {
        d.lines(&[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            "web",
        ])
        .into_iter()
        .collect()
    };
    wait_for(Duration::from_secs(30), "six running tasks", || {
        let running = a.lines(&["service", "ps", "--format", "{{.CurrentState}}", "web"]);
        (running.iter().filter(|s| s.starts_with("Running")).count() == 6).then_some(())
    });
    let before = tasks(&a);

    // Certificates live 6 s: watch every node renew at least twice, and nothing else change.
    let nodes = [&a, &b, &w];
    let mut serials: Vec<BTreeSet<String>> = nodes
        .iter()
        .map(|d| BTreeSet::from([credentials(d).info().unwrap().serial_hex]))
        .collect();
    let first = credentials(&w).info().unwrap();
    let life = first.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(life <= Duration::from_secs(6), "issued for {life:?}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while serials.iter().any(|s| s.len() < 3) {
        assert!(
            Instant::now() < deadline,
            "not every node renewed twice: {serials:?}"
        );
        for (d, seen) in nodes.iter().zip(serials.iter_mut()) {
            let info = credentials(d).info().unwrap();
            assert!(
                info.not_after > SystemTime::now(),
                "{}'s certificate expired",
                d.hostname
            );
            seen.insert(info.serial_hex);
        }
        let s = states(&a);
        assert!(
            s.iter().all(|l| l.ends_with(" Ready")),
            "a node is not ready: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(tasks(&a), before, "tasks were replaced");
    // The managers still agree (the Raft peers reconnected with new certificates as needed).
    assert_eq!(b.lines(&["node", "ls", "-q"]).len(), 3);

    // The renewed certificate on disk is the one a restart uses.
    let mut w = w;
    w.restart();
    let w_id = w.node_id();
    wait_for(
        Duration::from_secs(30),
        "the restarted worker ready",
        || {
            let s = a.ok(&["node", "inspect", &w_id, "--format", "{{.Status.State}}"]);
            (s.trim() == "ready").then_some(())
        },
    );

    // Offline past its certificate's expiry, a worker cannot come back as itself; a fresh join
    // token lets it in again, without touching the rest of the swarm.
    w.kill9();
    let held = credentials(&w).info().unwrap();
    wait_for(
        Duration::from_secs(15),
        "the stopped worker's certificate expired",
        // Certificates keep whole seconds: two seconds past, it has surely expired.
        || {
            held.is_expired_at(SystemTime::now() - Duration::from_secs(2))
                .then_some(())
        },
    );
    w.restart();
    assert!(credentials(&w)
        .info()
        .unwrap()
        .is_expired_at(SystemTime::now()));
    let out = w.join(&a, worker_token.trim());
    assert!(out.ok, "rejoin: {}", out.stderr);
    let new_id = w.node_id();
    assert_ne!(new_id, w_id);
    wait_for(Duration::from_secs(30), "the rejoined worker ready", || {
        let s = a.ok(&["node", "inspect", &new_id, "--format", "{{.Status.State}}"]);
        (s.trim() == "ready").then_some(())
    });
}

#[test]
fn ca_settings_the_swarm_cannot_honour_are_refused() {
    let d = common::swarm("cr-refuse");
    let err = d.fails(&["swarm", "update", "--cert-expiry", "30m"]);
    assert!(
        err.contains("minimum certificate expiry time is: 1h0m0s"),
        "{err}"
    );
    let err = d.fails(&[
        "swarm",
        "update",
        "--external-ca",
        "protocol=cfssl,url=https://ca.example:8888",
    ]);
    assert!(err.contains("external CAs are not supported"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("ca.pem");
    std::fs::write(&cert, d.ok(&["swarm", "ca"])).unwrap();
    // A root certificate with a key that is not its own is refused.
    let key = dir.path().join("ca-key.pem");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = d.fails(&[
        "swarm",
        "ca",
        "--rotate",
        "--detach",
        "--ca-cert",
        cert.to_str().unwrap(),
        "--ca-key",
        key.to_str().unwrap(),
    ]);
    assert!(err.contains("the new root CA"), "{err}");
    assert_eq!(d.get_json("/swarm")["RootRotationInProgress"], false);
    // Nothing changed.
    let spec = d.get_json("/swarm")["Spec"]["CAConfig"].clone();
    assert!(spec.get("ExternalCAs").is_none(), "{spec}");
    // A valid expiry is taken, and certificates issued from then on get it.
    d.ok(&["swarm", "update", "--cert-expiry", "2h"]);
    let spec = d.get_json("/swarm")["Spec"]["CAConfig"].clone();
    assert_eq!(
        spec["NodeCertExpiry"],
        2 * 3600 * 1_000_000_000u64,
        "{spec}"
    );
    let w = Daemon::start("cr-refuse-w");
    let token = d.ok(&["swarm", "join-token", "-q", "worker"]);
    assert!(w.join(&d, token.trim()).ok);
    let info = credentials(&w).info().unwrap();
    let left = info.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(7000) && left <= Duration::from_secs(7200),
        "a worker joining now got a certificate for {left:?}"
    );
}

#[test]
fn tls_info_shows_the_root_ca_and_the_issuer_of_each_node() {
    let d = common::swarm("cr-tlsinfo");
    let swarm = d.get_json("/swarm");
    let info = &swarm["TLSInfo"];
    let root = info["TrustRoot"].as_str().unwrap();
    assert!(root.contains("BEGIN CERTIFICATE"), "{info}");
    assert!(
        !info["CertIssuerSubject"].as_str().unwrap_or("").is_empty(),
        "{info}"
    );
    assert!(
        !info["CertIssuerPublicKey"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{info}"
    );
    assert_eq!(swarm["RootRotationInProgress"], false);
    // The node reports the same root and issuer (its certificate comes from that root).
    let id = d.node_id();
    let node = wait_for(Duration::from_secs(20), "the node's TLSInfo", || {
        let n = d.get_json(&format!("/nodes/{id}"));
        (n["Description"]["TLSInfo"]["TrustRoot"].as_str() == Some(root)).then_some(n)
    });
    assert_eq!(node["Description"]["TLSInfo"], *info);
}

#[test]
fn a_root_ca_rotation_completes_without_a_node_going_down_or_a_task_restarting() {
    let a = common::swarm("rot-a");
    let b = Daemon::start("rot-b");
    let w = Daemon::start("rot-w");
    let worker_token = join_manager_and_worker(&a, &b, &w);
    a.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "4",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    let running = |d: &Daemon| -> BTreeSet<String> {
        d.lines(&[
            "service",
            "ps",
            "--format",
            "{{.ID}} {{.CurrentState}}",
            "web",
        ])
        .into_iter()
        .filter(|l| l.contains("Running"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
    };
    let before = wait_for(Duration::from_secs(30), "four running tasks", || {
        let r = running(&a);
        (r.len() == 4).then_some(r)
    });
    let old_root = a.ok(&["swarm", "ca"]);
    let old_info = a.get_json("/swarm")["TLSInfo"].clone();

    a.ok(&["swarm", "ca", "--rotate", "--detach"]);
    let swarm = wait_for(Duration::from_secs(60), "the rotation complete", || {
        let s = states(&a);
        assert!(
            s.iter().all(|l| l.ends_with(" Ready")),
            "a node is not ready during the rotation: {s:?}"
        );
        let swarm = a.get_json("/swarm");
        (swarm["RootRotationInProgress"] == false && swarm["TLSInfo"] != old_info).then_some(swarm)
    });
    let new_root = a.ok(&["swarm", "ca"]);
    assert_ne!(new_root, old_root);
    assert_eq!(
        swarm["TLSInfo"]["TrustRoot"].as_str().unwrap().trim(),
        new_root.trim()
    );
    // Every node ends up trusting only the new root, with a certificate it signed.
    for d in [&a, &b, &w] {
        wait_for(Duration::from_secs(30), "the node on the new root", || {
            let creds = credentials(d);
            (creds.ca_pem.trim() == new_root.trim()
                && shoal::ca::verify_node_certificate(&creds.cert_pem, &new_root).is_ok())
            .then_some(())
        });
    }
    let s = states(&a);
    assert!(s.iter().all(|l| l.ends_with(" Ready")), "{s:?}");
    assert_eq!(running(&a), before, "tasks were replaced");
    // The join tokens pin the new root: a node joins with the new token.
    let token = a.ok(&["swarm", "join-token", "-q", "worker"]);
    assert_ne!(token.trim(), worker_token.trim());
    let late = Daemon::start("rot-late");
    let out = late.join(&a, token.trim());
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(credentials(&late).ca_pem.trim(), new_root.trim());
}

#[test]
fn a_down_node_holds_up_a_rotation_until_it_is_removed() {
    let a = common::swarm("rot-down-a");
    let mut w = Daemon::start("rot-down-w");
    let token = a.ok(&["swarm", "join-token", "-q", "worker"]);
    assert!(w.join(&a, token.trim()).ok);
    let w_id = w.node_id();
    w.kill9();
    wait_for(Duration::from_secs(30), "the worker down", || {
        let st = a.ok(&["node", "inspect", &w_id, "--format", "{{.Status.State}}"]);
        (st.trim() == "down").then_some(())
    });
    a.ok(&["swarm", "ca", "--rotate", "--detach"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.get_json("/swarm")["RootRotationInProgress"], true);
    // A node joins in the middle of the rotation, with the token of the day.
    let token_now = a.ok(&["swarm", "join-token", "-q", "worker"]);
    let late = Daemon::start("rot-down-late");
    let out = late.join(&a, token_now.trim());
    assert!(out.ok, "joining during a rotation: {}", out.stderr);
    let late_id = late.node_id();
    wait_for(Duration::from_secs(30), "the new node ready", || {
        let st = a.ok(&["node", "inspect", &late_id, "--format", "{{.Status.State}}"]);
        (st.trim() == "ready").then_some(())
    });
    assert_eq!(a.get_json("/swarm")["RootRotationInProgress"], true);
    a.ok(&["node", "rm", "--force", &w_id]);
    wait_for(Duration::from_secs(30), "the rotation complete", || {
        (a.get_json("/swarm")["RootRotationInProgress"] == false).then_some(())
    });
    // The node that joined during the rotation ends on the new root with the others.
    let new_root = a.ok(&["swarm", "ca"]);
    wait_for(
        Duration::from_secs(30),
        "the late node on the new root",
        || {
            let creds = credentials(&late);
            (creds.ca_pem.trim() == new_root.trim()
                && shoal::ca::verify_node_certificate(&creds.cert_pem, &new_root).is_ok())
            .then_some(())
        },
    );
    let st = a.ok(&["node", "inspect", &late_id, "--format", "{{.Status.State}}"]);
    assert_eq!(st.trim(), "ready");
}
