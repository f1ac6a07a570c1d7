//! `shoal completions bash|zsh|fish`: a completion script for each shell that knows shoal's
//! commands; bash reads its script without a syntax error. An unknown shell is refused.

use std::process::Command;

fn completions(shell: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["completions", shell])
        .output()
        .expect("shoal runs")
}

#[test]
fn each_shell_gets_a_script_that_knows_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = completions(shell);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["apply", "status", "rollback", "completions", "daemon"] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shoal.completion");
        std::fs::write(&path, &script).unwrap();
        // bash is on every machine of this kind; it reads its script without an error.
        if shell == "bash" {
            let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(
                syntax.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&syntax.stderr)
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_refused() {
    let out = completions("tcsh");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
}
