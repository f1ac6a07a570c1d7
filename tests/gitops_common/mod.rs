//! What the GitOps tests share: git repositories made by the test with the `git` program
//! (isolated from the machine's git configuration), the `shoal` CLI against a daemon's socket,
//! and a source's conditions as the API shows them.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `git -C dir args...` with a fixed identity and no global configuration; its trimmed
/// standard output (fails the test if git fails).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs (the GitOps tests need the git program)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commits everything in `dir`; the commit id.
pub fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "--quiet", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Runs the `shoal` CLI against the daemon at `socket`: whether it succeeded, and its
/// standard output followed by its standard error.
pub fn shoal(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env("SHOAL_HOST", format!("unix://{}", socket.display()))
        .output()
        .expect("shoal runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Condition `kind` of a source (`Null` when it has none).
pub fn condition<'a>(source: &'a Value, kind: &str) -> &'a Value {
    source["Status"]["Conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["Type"] == kind))
        .unwrap_or(&Value::Null)
}

/// Whether condition `kind` of a source holds.
pub fn holds(source: &Value, kind: &str) -> bool {
    condition(source, kind)["Status"] == true
}
