//! Structured logs and request ids: every API call gets an id (the client's `X-Request-Id`
//! when it sends one), returned in the header and in error bodies, and the daemon's log line
//! for the call carries it; `--log-format json` writes one JSON object per line.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{wait_for, Daemon};

/// `GET path` on the daemon's socket, with `id` as `X-Request-Id` if given: the headers
/// (lower-cased names) and the body.
fn get(d: &Daemon, path: &str, id: Option<&str>) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.arg("-sS")
        .arg("-D")
        .arg("-")
        .arg("--unix-socket")
        .arg(d.dir().join("api.sock"));
    if let Some(id) = id {
        cmd.args(["-H", &format!("X-Request-Id: {id}")]);
    }
    let out = cmd
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    (head.to_ascii_lowercase(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn an_error_names_its_request_id_and_the_json_log_line_carries_it() {
    let d = Daemon::start_with_args(
        "reqid",
        &[
            "--executor",
            "sim",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ],
    );
    d.init_swarm();
    let (head, body) = get(&d, "/v1.41/services/no-such-service", None);
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let id = header(&head, "x-request-id").expect("an X-Request-Id header");
    assert_eq!(id.len(), 16, "{id}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(err["request_id"], id, "{body}");
    assert!(err["message"].as_str().unwrap().contains("no-such-service"));

    // The daemon's log line for that call: JSON, with the id in its span.
    let line = wait_for(Duration::from_secs(10), "the call's log line", || {
        let log = std::fs::read_to_string(d.log_path()).ok()?;
        log.lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["span"]["request_id"] == id)
    });
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["status"], 404, "{line}");
    assert_eq!(
        line["span"]["path"], "/v1.41/services/no-such-service",
        "{line}"
    );

    // A client's own id is kept; a successful call carries one too.
    let (head, _) = get(&d, "/v1.41/services/nope", Some("trace-42.a"));
    assert_eq!(header(&head, "x-request-id"), Some("trace-42.a"));
    let (head, _) = get(&d, "/_ping", Some("bad id with spaces"));
    let id = header(&head, "x-request-id").expect("an id");
    assert_ne!(id, "bad id with spaces");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[test]
fn a_log_level_that_means_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["daemon", "--executor", "sim", "--log-level", "loud=="])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--api-socket")
        .arg(dir.path().join("api.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-level"), "{err}");
    assert!(!dir.path().join("data").exists());
}
