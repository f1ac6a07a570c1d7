//! docker-py 7.1.0's own integration tests for swarms, services and nodes, run unchanged against
//! a `shoal daemon` that drives this machine's Docker Engine: the five files
//! `../shared/peer-tests/docker-py/` names. Against dockerd 20.10 they give 103 passed and one
//! skip (`test_init_swarm_force_new_cluster`, skipped by docker-py itself); shoal must do the
//! same: nothing failed, nothing else skipped.
//!
//! Needs what `scripts/setup.sh` installs (the venv with the pinned docker-py and pytest, the
//! test image tagged as the images the tests run) and the peer suite beside the checkout
//! (`$SHOAL_PEER_TESTS`, default `../shared/peer-tests`). Anything missing is a failure.

mod agents_common;

use std::path::PathBuf;
use std::process::Command;

use agents_common::{engine, require_engine, Node};
use sha2::{Digest, Sha256};

/// The archive and its digest, as `../shared/peer-tests/docker-py/README.md` gives them.
const ARCHIVE: &str = "docker-py/docker-py-7.1.0-tests.tar.gz";
const ARCHIVE_SHA256: &str = "1bfb17caab5c66c69d4869078b3ffb08e9f5c6cd90d149cc7d88eb13e24bc49c";
const FILES: &[&str] = &[
    "tests/integration/api_swarm_test.py",
    "tests/integration/api_service_test.py",
    "tests/integration/models_swarm_test.py",
    "tests/integration/models_nodes_test.py",
    "tests/integration/models_services_test.py",
];
/// What dockerd 20.10 passes of those files.
const DOCKERD_PASSED: u64 = 103;
/// The one test docker-py skips by itself ("Test stalls the engine on 1.12.0").
const EXPECTED_SKIP: &str = "tests/integration/api_swarm_test.py:32";

fn peer_tests() -> PathBuf {
    std::env::var_os("SHOAL_PEER_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peer-tests"))
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("SHOAL_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/shoal/docker-py-venv")
        });
    venv.join("bin/python")
}

/// The counts pytest's last line gives (`2 failed, 101 passed, 1 skipped, 3 xpassed in 9s`).
fn count(summary: &str, what: &str) -> u64 {
    summary
        .split([',', '='])
        .filter_map(|part| {
            let mut words = part.split_whitespace();
            let n: u64 = words.next()?.parse().ok()?;
            (words.next()? == what).then_some(n)
        })
        .sum()
}

#[test]
fn docker_py_swarm_service_and_node_tests_pass() {
    require_engine();
    let archive = peer_tests().join(ARCHIVE);
    let bytes = std::fs::read(&archive).unwrap_or_else(|e| {
        panic!(
            "docker-py's tests are not at {} ({e}); set SHOAL_PEER_TESTS to the peer-tests folder",
            archive.display()
        )
    });
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        ARCHIVE_SHA256,
        "{} is not the archive this test was written for",
        archive.display()
    );
    let python = venv_python();
    assert!(
        python.exists(),
        "no docker-py venv at {} (run scripts/setup.sh)",
        python.display()
    );
    for image in ["alpine:3.10", "busybox:latest"] {
        assert!(
            engine(&["image", "inspect", image]).ok,
            "{image} is not in the engine (run scripts/setup.sh)"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(work.path())
        .status()
        .expect("tar runs");
    assert!(untar.success(), "extracting {}", archive.display());

    // The tests leave and destroy whatever swarm they find: a daemon of their own.
    let node = Node::start("docker-py");
    let plugin_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peer");
    let out = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-p",
            "docker_py_loopback",
            "-q",
            "-rfEs",
            "--timeout",
            "300",
        ])
        .args(FILES)
        .current_dir(work.path())
        .env("DOCKER_HOST", format!("unix://{}", node.socket().display()))
        .env("PYTHONPATH", &plugin_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("DOCKER_TEST_API_VERSION")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("pytest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Their services' containers, should a test fail before its own clean-up.
    let leftovers = engine(&["ps", "-aq", "--filter", "name=dockerpytest_"]);
    for id in leftovers.stdout.split_whitespace() {
        engine(&["rm", "-f", id]);
    }
    // And the data planes of the swarms they made and left: each test inits its own (other
    // tests' swarms on this host would meet their subnets and VNIs).
    let nets = engine(&[
        "network",
        "ls",
        "--filter",
        "name=shoal_dockerpytest_",
        "--format",
        "{{.Label \"io.shoal.node.id\"}}",
    ]);
    for node_id in nets.stdout.split_whitespace() {
        agents_common::remove_data_plane_leftovers(node_id);
    }

    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
        .unwrap_or_else(|| panic!("no pytest summary:\n{stdout}\n{stderr}"));
    let (passed, failed, errors, skipped) = (
        count(summary, "passed"),
        count(summary, "failed"),
        count(summary, "error") + count(summary, "errors"),
        count(summary, "skipped"),
    );
    let skips: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("SKIPPED"))
        .collect();
    assert!(
        failed == 0 && errors == 0,
        "docker-py: {summary}\n{stdout}\n{stderr}"
    );
    assert!(
        passed >= DOCKERD_PASSED,
        "docker-py: {passed} passed, dockerd passes {DOCKERD_PASSED}: {summary}\n{stdout}"
    );
    assert!(
        skipped == 1 && skips.len() == 1 && skips[0].contains(EXPECTED_SKIP),
        "docker-py skips only {EXPECTED_SKIP}, as against dockerd: {skips:?}\n{summary}"
    );
}

#[test]
fn pytest_summaries_are_counted() {
    let line = "2 failed, 101 passed, 1 skipped, 3 xpassed, 2 warnings in 11.53s";
    assert_eq!(count(line, "passed"), 101);
    assert_eq!(count(line, "failed"), 2);
    assert_eq!(count(line, "skipped"), 1);
    assert_eq!(count(line, "error"), 0);
    assert_eq!(count("==== 1 error in 0.2s ====", "error"), 1);
}
