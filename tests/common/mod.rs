//! Test harness: `shoal daemon` processes on temporary sockets and data dirs, driven by the real
//! `docker` CLI (and `curl` for raw HTTP), with polling helpers that wait on conditions with
//! deadlines instead of sleeping.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// What a command printed and how it ended.
#[derive(Clone, Debug)]
pub struct Out {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Whether it exited with status 0.
    pub ok: bool,
}

impl Out {
    fn from(o: std::process::Output) -> Out {
        Out {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            ok: o.status.success(),
        }
    }
}

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_port;

/// Polls `cond` until it returns `Some`, panicking with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `shoal daemon` with its own data dir, API socket, host name and swarm port.
pub struct Daemon {
    /// The host name it reports.
    pub hostname: String,
    /// Its API socket.
    pub socket: PathBuf,
    /// The port its swarm listener uses once it is in a swarm.
    pub swarm_port: u16,
    /// How its tasks run: the `--executor` and `--docker-host` arguments.
    executor_args: Vec<String>,
    /// Extra environment of the daemon process.
    env: Vec<(String, String)>,
    /// Extra arguments of the next start only (see [`Daemon::restart_with_extra_args`]).
    extra_args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon reporting `hostname` and waits until `/_ping` answers. Its tasks "run"
    /// on the sim executor: these tests are about the control plane, and a killed daemon must
    /// not leave containers behind on the host's engine.
    pub fn start(hostname: &str) -> Daemon {
        Self::start_with_executor(hostname, "sim")
    }

    /// Like [`Daemon::start`] with another executor (`process` runs task commands as host
    /// processes).
    pub fn start_with_executor(hostname: &str, executor: &str) -> Daemon {
        Self::start_with_args(hostname, &["--executor", executor])
    }

    /// Like [`Daemon::start`] with these executor arguments instead of `--executor sim` (none:
    /// the default executor).
    pub fn start_with_args(hostname: &str, executor_args: &[&str]) -> Daemon {
        Self::start_with_env(hostname, executor_args, &[])
    }

    /// Like [`Daemon::start_with_args`], with extra environment variables for the daemon.
    pub fn start_with_env(hostname: &str, executor_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("shoal-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("docker-config")).expect("config dir");
        let mut d = Daemon {
            hostname: hostname.to_string(),
            socket: dir.path().join("api.sock"),
            swarm_port: free_port(),
            executor_args: executor_args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extra_args: Vec::new(),
            dir,
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .arg("daemon")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--api-socket")
            .arg(&self.socket)
            .arg("--hostname")
            .arg(&self.hostname)
            .args(&self.executor_args)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("shoal daemon starts");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_for(Duration::from_secs(20), "the daemon's /_ping", || {
            let out = curl_raw(&socket, "GET", "/_ping", None, None);
            (out.0 == 200).then_some(())
        });
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the daemon with SIGKILL (a crash) and reaps it; its data dir stays.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again with `args` added to its command line (this start only).
    pub fn restart_with_extra_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        self.restart();
        self.extra_args.clear();
    }

    /// Starts the daemon again on the same data dir and socket.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs the `docker` CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Out {
        self.docker_stdin(args, None)
    }

    /// Runs the `docker` CLI with `stdin` as its standard input.
    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_API_VERSION")
            .current_dir(self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the docker CLI runs");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input).expect("write stdin");
        }
        Out::from(child.wait_with_output().expect("docker finishes"))
    }

    /// Runs `docker` and returns its stdout, panicking (with its stderr) if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.ok,
            "docker {args:?} failed:\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Runs `docker` expecting it to fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.ok,
            "docker {args:?} should have failed but printed:\n{}",
            out.stdout
        );
        out.stderr
    }

    /// A raw HTTP request over the API socket: `(status, body)`.
    pub fn curl(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        curl_raw(&self.socket, method, path, body, Some("application/json"))
    }

    /// A raw HTTP request with an explicit content type (`None`: no header).
    pub fn curl_typed(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: Option<&str>,
    ) -> (u16, String) {
        curl_raw(&self.socket, method, path, body, content_type)
    }

    /// A GET returning parsed JSON, asserting a 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.curl("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// `docker swarm init` on loopback; returns this node's id.
    pub fn init_swarm(&self) -> String {
        let addr = format!("127.0.0.1:{}", self.swarm_port);
        let out = self.ok(&[
            "swarm",
            "init",
            "--listen-addr",
            &addr,
            "--advertise-addr",
            &addr,
        ]);
        assert!(out.contains("Swarm initialized"), "{out}");
        self.node_id()
    }

    /// `docker swarm join` to `manager` with `token`.
    pub fn join(&self, manager: &Daemon, token: &str) -> Out {
        let addr = format!("127.0.0.1:{}", self.swarm_port);
        let remote = format!("127.0.0.1:{}", manager.swarm_port);
        self.docker(&[
            "swarm",
            "join",
            "--token",
            token,
            "--listen-addr",
            &addr,
            "--advertise-addr",
            &addr,
            &remote,
        ])
    }

    /// This node's id, from `docker info`.
    pub fn node_id(&self) -> String {
        self.ok(&["info", "--format", "{{.Swarm.NodeID}}"])
            .trim()
            .to_string()
    }

    /// The lines of `docker <args>` output, trimmed, without empty ones.
    pub fn lines(&self, args: &[&str]) -> Vec<String> {
        self.ok(args)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Writes `contents` to `name` in the daemon's temp dir (the CLI's working directory).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// The temp dir (the CLI's working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.log_path()) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- last lines of {}'s log ---", self.hostname);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        // A daemon with the docker executor leaves its data plane behind when killed.
        let docker_executor = !self
            .executor_args
            .iter()
            .any(|a| a == "sim" || a == "process");
        let node_id = (docker_executor && self.child.is_some())
            .then(|| curl_raw(&self.socket, "GET", "/info", None, None))
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|v| v["Swarm"]["NodeID"].as_str().map(str::to_string))
            .filter(|id| !id.is_empty());
        self.kill9();
        if let Some(id) = node_id {
            remove_data_plane_leftovers(&id);
        }
        remove_task_file_mounts(&self.dir.path().join("data"));
    }
}

#[path = "../leftovers/mod.rs"]
mod leftovers;
pub use leftovers::{remove_data_plane_leftovers, remove_task_file_mounts};

/// `curl --unix-socket`: `(status, body)`; status 0 when curl could not connect.
pub fn curl_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    content_type: Option<&str>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.arg("-s")
        .arg("--max-time")
        .arg("30")
        .arg("--unix-socket")
        .arg(socket)
        .arg("-X")
        .arg(method)
        .arg("-w")
        .arg("\n%{http_code}")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(ct) = content_type {
        cmd.arg("-H").arg(format!("Content-Type: {ct}"));
    }
    if body.is_some() {
        cmd.arg("--data-binary").arg("@-").stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    cmd.arg(format!("http://localhost{path}"));
    let mut child = cmd.spawn().expect("curl runs");
    if let Some(b) = body {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(b).expect("write body");
    }
    let out = child.wait_with_output().expect("curl finishes");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// The message of a Docker JSON error body.
pub fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("not a Docker error body: {body}"))
}

/// A single-node swarm, initialised.
pub fn swarm(hostname: &str) -> Daemon {
    let d = Daemon::start(hostname);
    d.init_swarm();
    d
}

/// Whether the controllers run on managers yet: a replicated service gets task records.
/// Tests that need tasks call this to fail with a clear message while they are not wired in.
pub fn wait_for_tasks(d: &Daemon, service: &str, at_least: usize) -> Vec<String> {
    wait_for(
        Duration::from_secs(30),
        &format!("{at_least} task(s) of service {service} (needs the controllers wired in)"),
        || {
            let out = d.docker(&["service", "ps", "-q", "--no-trunc", service]);
            let ids: Vec<String> = out.stdout.lines().map(str::to_string).collect();
            (out.ok && ids.len() >= at_least).then_some(ids)
        },
    )
}
