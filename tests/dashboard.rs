//! The web dashboard in a real browser: a daemon serves it, headless Chromium (Debian's
//! `chromium` package; `scripts/setup.sh` installs it) loads it, and the test drives the page
//! over the DevTools protocol (`--remote-debugging-pipe`: JSON messages on file descriptors 3
//! and 4, no websocket needed). Scaling a service with the docker CLI must show the new replica
//! count and the new tasks on the open page without a reload; a GitOps source applied from a
//! repository made in the test must show a hand-made scale as drift, live. The test saves
//! screenshots to `docs/screenshots/dashboard-*.png`, and one of `shoal status` as a terminal
//! shows it to `docs/screenshots/shoal-status.png` (the README shows them).
//!
//! Also: a daemon refuses to serve the dashboard off loopback without authentication, before it
//! touches its data dir; a worker's dashboard says the dashboard is on managers.

mod common;
mod gitops_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{free_port, wait_for, Daemon};
use serde_json::{json, Value};

/// Headless Chromium driven over `--remote-debugging-pipe`.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: BufReader<std::fs::File>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array; we own them from here on.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are not owned by anything else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts Chromium with one page at `url`. Fails (never skips) when Chromium is missing.
    fn open(url: &str) -> Browser {
        let exe = ["chromium", "chromium-browser"]
            .into_iter()
            .find(|c| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {c}"))
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect(
                "the dashboard browser test needs Chromium: run scripts/setup.sh (it installs Debian's `chromium` package)",
            );
        let profile = tempfile::tempdir().expect("profile dir");
        let (cmd_read, cmd_write) = pipe();
        let (out_read, out_write) = pipe();
        let (cr, ow) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut command = Command::new(exe);
        command
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1400,900",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only fcntl and dup2 (async-signal-safe) run. Chromium
        // reads DevTools commands on fd 3 and writes answers on fd 4. The pipe ends are first
        // copied above 10: a pipe end that already is fd 3 or 4 would otherwise be clobbered
        // by the other's dup2, or keep its close-on-exec flag (dup2 onto itself changes
        // nothing) and be closed at exec.
        unsafe {
            command.pre_exec(move || {
                let high_cmd = libc::fcntl(cr, libc::F_DUPFD_CLOEXEC, 10);
                let high_out = libc::fcntl(ow, libc::F_DUPFD_CLOEXEC, 10);
                if high_cmd < 0
                    || high_out < 0
                    || libc::dup2(high_cmd, 3) < 0
                    || libc::dup2(high_out, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        drop(cmd_read);
        drop(out_write);
        let mut b = Browser {
            child,
            to: std::fs::File::from(cmd_write),
            from: BufReader::new(std::fs::File::from(out_read)),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        b.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        b.page("Page.enable", json!({}));
        b.goto(url);
        b
    }

    fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            let mut buf = Vec::new();
            let n = self
                .from
                .read_until(0, &mut buf)
                .expect("read from chromium");
            assert!(n > 0, "chromium closed its DevTools pipe");
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).expect("DevTools JSON");
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// A browser-level command.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// A command to the page.
    fn page(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.send(method, params, Some(s))
    }

    /// Evaluates `expr` in the page; its JSON value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.page(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Loads `url` and waits until the page is live (its event stream connected).
    fn goto(&mut self, url: &str) {
        self.page("Page.navigate", json!({"url": url}));
        self.wait(
            "the page to load and its event stream to connect",
            "document.readyState === 'complete' && document.getElementById('live') !== null && document.getElementById('live').textContent === 'live'",
        );
    }

    /// Opens a page that is not the dashboard's (no event stream to wait for).
    fn goto_static(&mut self, url: &str) {
        self.page("Page.navigate", json!({"url": url}));
        self.wait("the page to load", "document.readyState === 'complete'");
    }

    /// Polls `expr` until it is `true`.
    fn wait(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if self.eval(expr) == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "timed out waiting for {what}; the page shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a screenshot of the page to `docs/screenshots/dashboard-<name>.png`.
    fn screenshot(&mut self, name: &str) {
        self.screenshot_to(&format!("dashboard-{name}.png"));
    }

    /// Saves a screenshot of the page to `docs/screenshots/<file>`.
    fn screenshot_to(&mut self, file: &str) {
        let shot = self.page("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(file), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shoal simnodes`: simulated workers joined to the swarm, stopped on drop.
struct SimNodes(Child);

impl Drop for SimNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replicas_of(b: &mut Browser, service: &str) -> String {
    b.eval(&format!(
        "(function() {{ var r = document.querySelector('tr[data-name=\"{service}\"] .replicas'); return r ? r.textContent : ''; }})()"
    ))
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn the_dashboard_shows_the_swarm_and_follows_a_scale_without_reloading() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let d = Daemon::start_with_args(
        "manager-1",
        &[
            "--executor",
            "sim",
            "--dashboard-addr",
            &format!("127.0.0.1:{port}"),
        ],
    );
    d.init_swarm();
    let token = d
        .ok(&["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    let worker_port = free_port();
    let worker = Daemon::start_with_args(
        "worker-1",
        &[
            "--executor",
            "sim",
            "--dashboard-addr",
            &format!("127.0.0.1:{worker_port}"),
        ],
    );
    let joined = worker.join(&d, &token);
    assert!(joined.ok, "{joined:?}");
    let _sim = SimNodes(
        Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args([
                "simnodes",
                "--count",
                "3",
                "--hostname-prefix",
                "sim-worker",
            ])
            .arg("--managers")
            .arg(format!("127.0.0.1:{}", d.swarm_port))
            .arg("--join-token")
            .arg(&token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shoal simnodes starts"),
    );
    wait_for(Duration::from_secs(60), "5 ready nodes", || {
        let ready = d
            .lines(&["node", "ls", "--format", "{{.Status}}"])
            .iter()
            .filter(|s| *s == "Ready")
            .count();
        (ready == 5).then_some(())
    });
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "-p",
        "8080:80",
        "--reserve-cpu",
        "0.25",
        "--reserve-memory",
        "512M",
        "nginx:1.27",
    ]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "--replicas",
        "3",
        "busybox:1",
        "sleep",
        "1d",
    ]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "agent",
        "--mode",
        "global",
        "busybox:1",
        "sleep",
        "1d",
    ]);
    wait_for(Duration::from_secs(60), "web 2/2 and api 3/3", || {
        let ls = d.lines(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
        (ls.contains(&"web 2/2".to_string()) && ls.contains(&"api 3/3".to_string())).then_some(())
    });

    // A worker holds no copy of the store: its dashboard says where to look.
    let (status, body) = http_get(worker_port, "/");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("The dashboard is served by managers"),
        "{body}"
    );

    let mut b = Browser::open(&format!("{url}/services"));
    b.wait(
        "web at 2/2",
        "document.querySelector('tr[data-name=\"web\"] .replicas') !== null",
    );
    assert_eq!(replicas_of(&mut b, "web"), "2/2");
    assert_eq!(replicas_of(&mut b, "api"), "3/3");
    // A value that only lives as long as this page: a reload would lose it.
    b.eval("window.shoalMarker = 'same page'; true");

    d.ok(&["service", "scale", "-d", "web=6"]);
    b.wait(
        "web at 6/6 on the open page",
        "(function() { var r = document.querySelector('tr[data-name=\"web\"] .replicas'); return r !== null && r.textContent === '6/6'; })()",
    );
    assert_eq!(
        b.eval("window.shoalMarker"),
        json!("same page"),
        "the page was not reloaded"
    );
    assert!(
        b.eval("window.shoalSwaps").as_u64().unwrap_or(0) >= 1,
        "a fragment was swapped in"
    );
    b.screenshot("services");

    // The service's page: its tasks, and new ones appearing live.
    b.goto(&format!("{url}/services/web"));
    b.wait(
        "6 current tasks of web",
        "document.querySelectorAll('#tasks tr.current').length === 6",
    );
    b.eval("window.shoalMarker = 'service page'; true");
    d.ok(&["service", "scale", "-d", "web=9"]);
    b.wait(
        "9 running tasks of web on the open page",
        "Array.prototype.filter.call(document.querySelectorAll('#tasks tr.current'), function (r) { return r.textContent.indexOf('running') >= 0; }).length === 9",
    );
    assert_eq!(
        b.eval("window.shoalMarker"),
        json!("service page"),
        "the page was not reloaded"
    );
    let names = b.eval(
        "Array.prototype.map.call(document.querySelectorAll('#tasks tr.current td:first-child'), function (c) { return c.textContent; }).join(' ')",
    );
    for slot in 1..=9 {
        assert!(
            names
                .as_str()
                .unwrap_or("")
                .contains(&format!("web.{slot}")),
            "task web.{slot} is listed: {names}"
        );
    }
    b.screenshot("service");

    b.goto(&format!("{url}/nodes"));
    let nodes = b.eval("document.body.innerText");
    for host in ["manager-1", "worker-1", "sim-worker-0", "sim-worker-2"] {
        assert!(
            nodes.as_str().unwrap_or("").contains(host),
            "{host} is listed: {nodes}"
        );
    }
    b.screenshot("nodes");

    b.goto(&format!("{url}/"));
    b.wait(
        "the overview's feed to show the scale",
        "document.body.innerText.indexOf('scaled 6 → 9') >= 0",
    );
    let overview = b.eval("document.body.innerText");
    let text = overview.as_str().unwrap_or("");
    assert!(
        text.contains("manager-1") && text.contains("leader"),
        "{text}"
    );
    assert!(text.contains("5 ready"), "{text}");
    b.screenshot("overview");

    // GitOps: a source applied from a repository made here, then drift appearing on the open
    // page when a service it owns is scaled by hand.
    let repo = tempfile::Builder::new()
        .prefix("shoal-dashboard-repo-")
        .tempdir()
        .expect("repo dir");
    gitops_common::git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.path().join("compose.yaml"),
        "services:\n  site:\n    image: busybox:1\n    command: [\"sleep\", \"1d\"]\n    deploy:\n      replicas: 2\n",
    )
    .expect("compose file");
    gitops_common::commit(repo.path(), "the site");
    shoal(
        &d,
        &[
            "gitops",
            "add",
            "demo",
            "--repo",
            repo.path().to_str().unwrap(),
            "--ref",
            "main",
            "--interval",
            "1h",
        ],
    );
    b.goto(&format!("{url}/gitops"));
    b.wait(
        "the demo source Ready",
        "document.querySelector('[data-source=\"demo\"] .chip.good') !== null",
    );
    b.eval("window.shoalMarker = 'gitops page'; true");
    d.ok(&["service", "scale", "-d", "demo_site=3"]);
    b.wait(
        "the scale shown as drift on the open page",
        "document.body.innerText.indexOf('Mode.Replicated.Replicas') >= 0",
    );
    assert_eq!(
        b.eval("window.shoalMarker"),
        json!("gitops page"),
        "the page was not reloaded"
    );
    b.screenshot("gitops");

    // `shoal status`, shown as a terminal would (dark, monospace), for the README.
    let status = shoal(&d, &["status"]);
    assert!(
        status.contains("NODES") && status.contains("web"),
        "{status}"
    );
    let page = tempfile::Builder::new()
        .prefix("shoal-status-")
        .suffix(".html")
        .tempfile()
        .expect("page file");
    let escaped = status
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    std::fs::write(
        page.path(),
        format!(
            "<!doctype html><meta charset=utf-8><body style=\"margin:0;background:#12151c\">\
             <pre style=\"margin:0;padding:16px 20px;color:#e6e9ef;font:14px/1.35 'DejaVu Sans Mono',monospace\">\
             <span style=\"color:#7c9bff\">$ shoal status</span>\n{escaped}</pre>"
        ),
    )
    .expect("write page");
    b.goto_static(&format!("file://{}", page.path().display()));
    b.wait(
        "the status page",
        "document.body.innerText.indexOf('NODES') >= 0",
    );
    b.screenshot_to("shoal-status.png");
}

/// Runs the `shoal` CLI against `d`; its standard output (fails the test if it fails).
fn shoal(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env("SHOAL_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .expect("shoal runs");
    assert!(
        out.status.success(),
        "shoal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP GET on loopback: status and body (curl).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs `shoal daemon` with `args` and expects it to refuse to start: its error, and its data
/// dir untouched.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("daemon")
        .arg("--data-dir")
        .arg(&data)
        .arg("--api-socket")
        .arg(dir.path().join("api.sock"))
        .args(["--executor", "sim"])
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal daemon runs");
    let status = wait_for(Duration::from_secs(20), "the daemon to exit", || {
        child.try_wait().expect("wait")
    });
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(!status.success(), "the daemon must refuse: {args:?}");
    assert!(!data.exists(), "the data dir is untouched: {args:?}");
    err
}

#[test]
fn a_dashboard_off_loopback_needs_tls_or_a_token_and_the_daemon_refuses_to_start_otherwise() {
    let port = free_port().to_string();
    let err = refused(&["--dashboard-addr", &format!("0.0.0.0:{port}")]);
    assert!(err.contains("refusing to serve the dashboard"), "{err}");
    assert!(err.contains("--dashboard-token-file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "tiny\n").unwrap();
    let err = refused(&[
        "--dashboard-addr",
        &format!("0.0.0.0:{port}"),
        "--dashboard-token-file",
        short.to_str().unwrap(),
    ]);
    assert!(err.contains("at least 16"), "{err}");

    let err = refused(&[
        "--dashboard-addr",
        &format!("0.0.0.0:{port}"),
        "--dashboard-tlsverify",
    ]);
    assert!(
        err.contains("--dashboard-tlsverify needs --tlscacert"),
        "{err}"
    );

    // With a token, the same address is served: a login form, and pages only after it.
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-long-enough-0123\n").unwrap();
    let port = free_port();
    let d = Daemon::start_with_args(
        "manager-1",
        &[
            "--executor",
            "sim",
            "--dashboard-addr",
            &format!("0.0.0.0:{port}"),
            "--dashboard-token-file",
            token.to_str().unwrap(),
        ],
    );
    d.init_swarm();
    let (status, _) = http_get(port, "/fragments/services");
    assert_eq!(status, 401);
    let (status, body) = http_get(port, "/login");
    assert_eq!(status, 200);
    assert!(body.contains("Log in to the dashboard"), "{body}");
}

/// A CA in `dir`, and certificates it signs: `(ca.pem, [(cert, key) per name])`.
fn pki(
    dir: &std::path::Path,
    ca_name: &str,
    leaves: &[(&str, bool)],
) -> (PathBuf, Vec<(PathBuf, PathBuf)>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_path = dir.join(format!("{ca_name}.pem"));
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaves = leaves
        .iter()
        .map(|(name, server)| {
            let key = KeyPair::generate().unwrap();
            let names = if *server {
                vec!["127.0.0.1".to_string(), "localhost".to_string()]
            } else {
                Vec::new()
            };
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, *name);
            params.extended_key_usages = vec![if *server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let cert = params.signed_by(&key, &issuer).unwrap();
            let (c, k) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}-key.pem")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        })
        .collect();
    (ca_path, leaves)
}

/// `curl https://127.0.0.1:port/path` trusting `ca`, with an optional client certificate: the
/// status and body, or curl's error.
fn curl_tls(
    port: u16,
    path: &str,
    ca: &std::path::Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<(u16, String), String> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((status.trim().parse().unwrap_or(0), body.to_string()))
}

#[test]
fn over_tls_the_dashboard_admits_only_client_certificates_signed_by_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, certs) = pki(
        tmp.path(),
        "dash-ca",
        &[("server", true), ("browser", false)],
    );
    let (_, strangers) = pki(tmp.path(), "other-ca", &[("stranger", false)]);
    let port = free_port();
    let d = Daemon::start_with_args(
        "manager-1",
        &[
            "--executor",
            "sim",
            "--dashboard-addr",
            &format!("0.0.0.0:{port}"),
            "--dashboard-tlsverify",
            "--tlscacert",
            ca.to_str().unwrap(),
            "--tlscert",
            certs[0].0.to_str().unwrap(),
            "--tlskey",
            certs[0].1.to_str().unwrap(),
        ],
    );
    d.init_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "nginx:1.27",
    ]);
    let (status, body) = curl_tls(port, "/services", &ca, Some(&certs[1])).expect("admitted");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("data-name=\"web\""), "{body}");
    let err = curl_tls(port, "/services", &ca, None).expect_err("no certificate, no page");
    assert!(!err.is_empty());
    curl_tls(port, "/services", &ca, Some(&strangers[0]))
        .expect_err("a certificate from another CA opens nothing");
}
