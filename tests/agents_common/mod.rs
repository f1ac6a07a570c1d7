//! Harness of the agent integration tests: `shoal daemon` processes with the docker executor on
//! this machine's engine, swarms of them on loopback, the `docker` CLI against a daemon or
//! against the engine itself, and clean-up of the containers the tests' nodes created.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The test image (`scripts/setup.sh` builds it).
pub const IMAGE: &str = "shoal-test/busybox:1";
/// A second tag of it, for rolling updates.
pub const IMAGE2: &str = "shoal-test/busybox:2";
/// The heartbeat period the test swarms use (DOWN after three of them).
pub const HEARTBEAT: &str = "2s";

/// What a command printed.
#[derive(Clone, Debug)]
pub struct Out {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status 0.
    pub ok: bool,
}

fn run(cmd: &mut Command) -> Out {
    let o = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("command runs");
    Out {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        ok: o.status.success(),
    }
}

/// Fails the test unless this machine has a Docker Engine with the test image: the machines
/// shoal is tested on always have one, so a missing engine is a broken set-up, never a skip.
pub fn require_engine() {
    let out = run(Command::new("docker").args(["image", "inspect", IMAGE]));
    assert!(
        out.ok,
        "no Docker Engine with {IMAGE} here (run scripts/setup.sh): {}",
        out.stderr
    );
}

/// The `docker` CLI against the machine's engine itself.
pub fn engine(args: &[&str]) -> Out {
    run(Command::new("docker")
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT"))
}

/// Polls `cond` every 200 ms until it returns `Some`, panicking with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_port;

/// A `shoal daemon` with the docker executor.
pub struct Node {
    /// Host name it reports.
    pub hostname: String,
    /// Swarm listener port.
    pub port: u16,
    /// Node id once in a swarm.
    pub id: String,
    dir: TempDir,
    child: Option<Child>,
}

impl Node {
    /// Starts a daemon and waits until its API answers.
    pub fn start(hostname: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("shoal-agents-")
            .tempdir()
            .expect("temp dir");
        let mut n = Node {
            hostname: hostname.to_string(),
            port: free_port(),
            id: String::new(),
            dir,
            child: None,
        };
        n.spawn();
        n
    }

    /// The daemon's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// The node's data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The swarm address.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args([
                "daemon",
                "--executor",
                "docker",
                "--hostname",
                &self.hostname,
            ])
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api-socket")
            .arg(self.socket())
            .env("SHOAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("shoal daemon starts");
        self.child = Some(child);
        wait_for(Duration::from_secs(30), "the daemon's API", || {
            self.docker(&["version", "--format", "{{.Server.Version}}"])
                .ok
                .then_some(())
        });
    }

    /// SIGKILL, as a crash; the data dir stays.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as `systemctl stop` or `docker stop` would; waits (up to 60 s) for the process
    /// to exit and returns how it exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the daemon runs");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "sending SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the daemon") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the daemon did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on its data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Whether the process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The `docker` CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Out {
        run(Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION"))
    }

    /// `docker <args>` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.ok,
            "docker {args:?} on {} failed:\n{}{}",
            self.hostname, out.stdout, out.stderr
        );
        out.stdout
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.hostname, self.log_tail(40));
        }
        self.kill9();
    }
}

/// A swarm of daemons on loopback: `managers` managers then `workers` workers, heart-beating
/// every [`HEARTBEAT`]. Removes every container its nodes created when dropped.
pub struct Swarm {
    /// The nodes, managers first.
    pub nodes: Vec<Node>,
}

impl Swarm {
    /// Starts and joins the nodes; waits until every node is Ready.
    pub fn start(prefix: &str, managers: usize, workers: usize) -> Swarm {
        assert!(managers >= 1);
        let mut nodes = Vec::new();
        for i in 0..managers + workers {
            let name = if i < managers {
                format!("{prefix}-m{}", i + 1)
            } else {
                format!("{prefix}-w{}", i - managers + 1)
            };
            nodes.push(Node::start(&name));
        }
        let first = &nodes[0];
        let [pool, data_path_port] = own_address_space(&first.addr());
        first.ok(&[
            "swarm",
            "init",
            "--listen-addr",
            &first.addr(),
            "--advertise-addr",
            &first.addr(),
            "--dispatcher-heartbeat",
            HEARTBEAT,
            "--default-addr-pool",
            &pool,
            "--data-path-port",
            &data_path_port,
        ]);
        let manager_token = first
            .ok(&["swarm", "join-token", "-q", "manager"])
            .trim()
            .to_string();
        let worker_token = first
            .ok(&["swarm", "join-token", "-q", "worker"])
            .trim()
            .to_string();
        let remote = first.addr();
        for (i, n) in nodes.iter().enumerate().skip(1) {
            let token = if i < managers {
                &manager_token
            } else {
                &worker_token
            };
            n.ok(&[
                "swarm",
                "join",
                "--token",
                token,
                "--listen-addr",
                &n.addr(),
                "--advertise-addr",
                &n.addr(),
                &remote,
            ]);
        }
        for n in &mut nodes {
            n.id = n
                .ok(&["info", "--format", "{{.Swarm.NodeID}}"])
                .trim()
                .to_string();
        }
        let s = Swarm { nodes };
        let total = s.nodes.len();
        wait_for(Duration::from_secs(30), "every node Ready", || {
            (s.node_states()
                .iter()
                .filter(|(_, st)| st == "Ready")
                .count()
                == total)
                .then_some(())
        });
        s
    }

    /// A manager whose API answers (the first running one).
    pub fn manager(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.running() && n.docker(&["node", "ls", "-q"]).ok)
            .expect("a manager answers")
    }

    /// `(hostname, status)` of every node, from a manager.
    pub fn node_states(&self) -> Vec<(String, String)> {
        let out = self
            .nodes
            .iter()
            .filter(|n| n.running())
            .map(|n| n.docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]))
            .find(|o| o.ok);
        out.map(|o| {
            o.stdout
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(h, s)| (h.to_string(), s.to_string()))
                .collect()
        })
        .unwrap_or_default()
    }

    /// The node with this host name.
    pub fn node(&self, hostname: &str) -> &Node {
        self.nodes.iter().find(|n| n.hostname == hostname).unwrap()
    }

    /// Index of a node by id.
    pub fn index_of(&self, id: &str) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// Task rows of a service: `(task id, node hostname, desired, current state word)`.
    pub fn tasks(&self, service: &str) -> Vec<Task> {
        let out = self.manager().docker(&[
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Image}}",
            service,
        ]);
        if !out.ok {
            return Vec::new();
        }
        out.stdout
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.len() == 5).then(|| Task {
                    id: f[0].to_string(),
                    node: f[1].to_string(),
                    desired: f[2].to_string(),
                    state: f[3].split_whitespace().next().unwrap_or("").to_string(),
                    image: f[4].to_string(),
                })
            })
            .collect()
    }

    /// Running tasks of a service (desired and observed Running).
    pub fn running_tasks(&self, service: &str) -> Vec<Task> {
        self.tasks(service)
            .into_iter()
            .filter(|t| t.desired == "Running" && t.state == "Running")
            .collect()
    }

    /// The service's id.
    pub fn service_id(&self, service: &str) -> String {
        self.manager()
            .ok(&["service", "inspect", "--format", "{{.ID}}", service])
            .trim()
            .to_string()
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        for n in &self.nodes {
            remove_task_file_mounts(&n.data_dir());
            if n.id.is_empty() {
                continue;
            }
            let ids = engine(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.swarm.node.id={}", n.id),
            ]);
            let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                engine(&args);
            }
            remove_data_plane_leftovers(&n.id);
        }
    }
}

/// One row of `docker service ps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Node host name.
    pub node: String,
    /// Desired state.
    pub desired: String,
    /// Current state word.
    pub state: String,
    /// Image.
    pub image: String,
}

/// Containers of a service in the engine: `(container id, image, state)`.
pub fn containers(service_id: &str, all: bool) -> Vec<(String, String, String)> {
    let filter = format!("label=com.docker.swarm.service.id={service_id}");
    let mut args = vec!["ps", "--no-trunc", "--filter", &filter];
    if all {
        args.push("-a");
    }
    args.extend(["--format", "{{.ID}}|{{.Image}}|{{.State}}"]);
    engine(&args)
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

/// Running containers of a service, by task id label.
pub fn running_task_containers(service_id: &str) -> Vec<(String, String)> {
    let filter = format!("label=com.docker.swarm.service.id={service_id}");
    engine(&[
        "ps",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        "{{.ID}}|{{.Label \"com.docker.swarm.task.id\"}}",
    ])
    .stdout
    .lines()
    .filter_map(|l| l.split_once('|'))
    .map(|(c, t)| (c.to_string(), t.to_string()))
    .collect()
}

/// An address pool and VXLAN port of the swarm's own, derived from its first node's port:
/// test swarms share this host's engine and network namespace, where two swarms' networks
/// with the same subnet or VXLAN port would collide.
pub fn own_address_space(addr: &str) -> [String; 2] {
    let port: u32 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    [
        format!("10.{}.0.0/16", 100 + port % 150),
        (20000 + port % 20000).to_string(),
    ]
}
#[path = "../leftovers/mod.rs"]
mod leftovers;
pub use leftovers::{remove_data_plane_leftovers, remove_task_file_mounts};
