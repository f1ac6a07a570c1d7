//! Several "hosts" on this machine for the multi-host tests and `shoal bench net`: each host is a network namespace
//! joined by a veth pair to a bridge in the root namespace (the "LAN"), with a private mount
//! namespace (its own /run) holding its own containerd, dockerd and `shoal daemon`
//! (`reference/networking.md` §6.2 b). Namespaces are entered with `nsenter`, never `ip netns
//! exec` (which remounts /sys). Everything is started by the tests and removed on drop: the
//! daemons, the namespaces, the bridge, the engines' data and their cgroups.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The test image every host's engine gets (loaded from this machine's engine).
pub const IMAGE: &str = "shoal-test/busybox:1";

/// Polls `cond` every 200 ms until it returns `Some`, panicking with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// One host: its namespace, engine and shoal daemon.
pub struct Host {
    /// Host name (also the shoal node's hostname).
    pub name: String,
    /// Its address on the LAN.
    pub ip: Ipv4Addr,
    netns: String,
    dir: TempDir,
    /// The process holding the host's mount namespace (others enter it through its pid).
    init: Child,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    shoal: Option<Child>,
    shoal_bin: PathBuf,
}

impl Host {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The host's engine socket.
    pub fn engine_socket(&self) -> PathBuf {
        self.path("docker.sock")
    }

    /// The host's shoal API socket.
    pub fn shoal_socket(&self) -> PathBuf {
        self.path("shoal.sock")
    }

    /// A command run inside the host's network and mount namespaces.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("--target")
            .arg(self.init.id().to_string())
            .args(["--net", "--mount", program]);
        c
    }

    /// Runs `program args` on the host; its output.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        run(self.command(program).args(args))
    }

    fn spawn(&self, program: &str, args: &[&str], log: &str) -> Child {
        let log = std::fs::File::create(self.path(log)).expect("log file");
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} on {}: {e}", self.name))
    }

    /// The `docker` CLI against this host's engine.
    pub fn engine(&self, args: &[&str]) -> Output {
        run(Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.engine_socket().display()))
            .args(args))
    }

    /// The `docker` CLI against this host's shoal daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        run(Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.shoal_socket().display()))
            .args(args))
    }

    /// [`Host::docker`] that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} on {} failed: {}\n--- shoal log ---\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(30)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The last lines of the host's shoal log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.path("shoal.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn start_engine(&mut self) {
        std::fs::write(self.path("daemon.json"), "{}").unwrap();
        let root = self.path("containerd");
        self.containerd = Some(self.spawn(
            "containerd",
            &[
                "--root",
                root.to_str().unwrap(),
                "--state",
                "/run/containerd",
                "--address",
                "/run/containerd/containerd.sock",
            ],
            "containerd.log",
        ));
        wait_for(Duration::from_secs(20), "containerd's socket", || {
            self.exec("test", &["-S", "/run/containerd/containerd.sock"])
                .status
                .success()
                .then_some(())
        });
        let data = self.path("docker");
        let sock = format!("unix://{}", self.engine_socket().display());
        let config = self.path("daemon.json");
        let cgroup = format!("/shoal-{}", self.netns);
        self.dockerd = Some(self.spawn(
            "dockerd",
            &[
                "--containerd",
                "/run/containerd/containerd.sock",
                "--data-root",
                data.to_str().unwrap(),
                "--exec-root",
                "/run/docker",
                "--pidfile",
                "/run/docker.pid",
                "-H",
                &sock,
                "--storage-driver",
                "vfs",
                "--cgroup-parent",
                &cgroup,
                "--config-file",
                config.to_str().unwrap(),
            ],
            "dockerd.log",
        ));
        wait_for(Duration::from_secs(30), "the host's dockerd", || {
            self.engine(&["version"]).status.success().then_some(())
        });
        // The test image, from this machine's engine (there is no registry to pull from).
        let mut save = Command::new("docker")
            .args(["save", IMAGE])
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.engine_socket().display()))
            .arg("load")
            .stdin(save.stdout.take().expect("piped"))
            .output()
            .expect("docker load");
        let saved = save.wait().expect("docker save ends");
        assert!(
            saved.success(),
            "docker save {IMAGE} failed: is the test image built?"
        );
        assert!(
            load.status.success(),
            "loading {IMAGE} on {}: {}",
            self.name,
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// Starts (or restarts) the host's shoal daemon and waits for its API.
    pub fn start_shoal(&mut self) {
        let data = self.path("shoal");
        let sock = self.shoal_socket();
        let _ = std::fs::remove_file(&sock);
        let engine = format!("unix://{}", self.engine_socket().display());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("shoal.log"))
            .expect("log");
        let child = self
            .command(self.shoal_bin.to_str().expect("a UTF-8 path"))
            .args([
                "daemon",
                "--data-dir",
                data.to_str().unwrap(),
                "--api-socket",
                sock.to_str().unwrap(),
                "--hostname",
                &self.name,
                "--docker-host",
                &engine,
            ])
            .env("SHOAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("shoal daemon starts");
        self.shoal = Some(child);
        wait_for(Duration::from_secs(30), "the host's shoal API", || {
            self.docker(&["version"]).status.success().then_some(())
        });
    }

    /// Kills the host's shoal daemon (SIGKILL: its containers and kernel state stay).
    pub fn kill_shoal(&mut self) {
        if let Some(mut c) = self.shoal.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stop(&mut self) {
        self.kill_shoal();
        // Containers first, so the engine stops cleanly and nothing holds the data root.
        let ids = self.engine(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).to_string();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            self.engine(&args);
        }
        for child in [self.dockerd.take(), self.containerd.take()]
            .into_iter()
            .flatten()
        {
            terminate(child);
        }
        let _ = self.init.kill();
        let _ = self.init.wait();
        remove_cgroups(&format!("shoal-{}", self.netns));
    }
}

/// SIGTERM, then SIGKILL after 10 s.
fn terminate(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes the (empty) cgroups an engine made under `name` in every hierarchy, deepest first.
fn remove_cgroups(name: &str) {
    let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for root in roots.flatten() {
        let dir = root.path().join(name);
        if dir.is_dir() {
            remove_tree(&dir);
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The hosts of one test and the LAN joining them.
pub struct Hosts {
    /// The hosts, in order (`<prefix>1`, `<prefix>2`, ...).
    pub hosts: Vec<Host>,
    bridge: String,
    /// The root namespace's address on the LAN (to reach the hosts from the test).
    pub gateway: Ipv4Addr,
}

impl Hosts {
    /// `n` hosts named `<prefix>1..n`, each with a running engine (no shoal daemon yet; they
    /// run `shoal_bin` when started).
    pub fn start(prefix: &str, n: usize, shoal_bin: &Path) -> Hosts {
        for tool in ["nsenter", "unshare", "containerd", "dockerd", "ip"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "the multi-host harness needs {tool} (scripts/setup.sh installs it)"
            );
        }
        let tag = std::process::id() % 10000;
        // A /24 per test process, away from the engines' and swarms' default pools.
        let net = 100 + (std::process::id() % 150) as u8;
        let bridge = format!("shlan{tag}");
        let gateway = Ipv4Addr::new(192, 168, net, 254);
        let _ = run(Command::new("ip").args(["link", "del", &bridge]));
        must(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]));
        must(Command::new("ip").args(["addr", "add", &format!("{gateway}/24"), "dev", &bridge]));
        must(Command::new("ip").args(["link", "set", &bridge, "up"]));
        // This machine's engine set the FORWARD policy to DROP, and br_netfilter sends bridged
        // frames through it: let the LAN's own traffic pass.
        must(Command::new("iptables").args(forward_rule("-I", &bridge)));
        let mut hosts = Hosts {
            hosts: Vec::new(),
            bridge,
            gateway,
        };
        for k in 1..=n {
            let name = format!("{prefix}{k}");
            let netns = format!("shoal-{tag}-{k}");
            let veth = format!("shv{tag}x{k}");
            let ip = Ipv4Addr::new(192, 168, net, k as u8);
            let _ = run(Command::new("ip").args(["netns", "del", &netns]));
            must(Command::new("ip").args(["netns", "add", &netns]));
            must(Command::new("ip").args([
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ]));
            must(Command::new("ip").args(["link", "set", &veth, "master", &hosts.bridge, "up"]));
            must(Command::new("ip").args([
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]));
            must(Command::new("ip").args(["-n", &netns, "link", "set", "eth0", "up"]));
            must(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]));
            // GRO on, as on a real NIC (a veth has it off): without it every VXLAN datagram
            // is decapsulated alone and the overlay looks slower than it would on hardware.
            let _ = run(Command::new("nsenter")
                .arg(format!("--net=/run/netns/{netns}"))
                .args(["ethtool", "-K", "eth0", "gro", "on"]));
            must(Command::new("ip").args([
                "-n",
                &netns,
                "route",
                "add",
                "default",
                "via",
                &gateway.to_string(),
            ]));
            let dir = tempfile::Builder::new()
                .prefix(&format!("shoal-host-{name}-"))
                .tempdir()
                .expect("temp dir");
            // The host's own /run (engine sockets, pid files, shoal's run dir): a private mount
            // namespace with a tmpfs there, held by a sleeping process the others join.
            let init = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{netns}"))
                .args([
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "mount -t tmpfs tmpfs /run && exec sleep 1000000",
                ])
                .stdin(Stdio::null())
                .spawn()
                .expect("the host's namespace holder");
            let mut host = Host {
                name,
                ip,
                netns,
                dir,
                init,
                containerd: None,
                dockerd: None,
                shoal: None,
                shoal_bin: shoal_bin.to_path_buf(),
            };
            wait_for(Duration::from_secs(10), "the host's private /run", || {
                let out = host.exec(
                    "sh",
                    &[
                        "-c",
                        "mount | grep -q ' /run type tmpfs' && test ! -e /run/docker.sock",
                    ],
                );
                out.status.success().then_some(())
            });
            host.start_engine();
            hosts.hosts.push(host);
        }
        hosts
    }

    /// Host `k` (1-based).
    pub fn host(&self, k: usize) -> &Host {
        &self.hosts[k - 1]
    }

    /// Host `k` (1-based), mutably.
    pub fn host_mut(&mut self, k: usize) -> &mut Host {
        &mut self.hosts[k - 1]
    }

    /// Starts shoal on every host, makes host 1 init a swarm and the others join it: hosts
    /// 2..=`managers` as managers, the rest as workers.
    pub fn start_swarm(&mut self, managers: usize) {
        for h in &mut self.hosts {
            h.start_shoal();
        }
        let first = &self.hosts[0];
        let addr = format!("{}:2377", first.ip);
        first.ok(&[
            "swarm",
            "init",
            "--listen-addr",
            &addr,
            "--advertise-addr",
            &addr,
            "--dispatcher-heartbeat",
            "2s",
        ]);
        let token_of = |role: &str| {
            first
                .ok(&["swarm", "join-token", "-q", role])
                .trim()
                .to_string()
        };
        let (manager_token, worker_token) = (token_of("manager"), token_of("worker"));
        for (i, h) in self.hosts.iter().enumerate().skip(1) {
            let token = if i < managers {
                &manager_token
            } else {
                &worker_token
            };
            let own = format!("{}:2377", h.ip);
            h.ok(&[
                "swarm",
                "join",
                "--token",
                token,
                "--listen-addr",
                &own,
                "--advertise-addr",
                &own,
                &addr,
            ]);
        }
        let want = self.hosts.len();
        wait_for(Duration::from_secs(60), "every node ready", || {
            let out = self.hosts[0].ok(&["node", "ls", "--format", "{{.Status}}"]);
            (out.lines().filter(|l| l.trim() == "Ready").count() == want).then_some(())
        });
    }

    /// The kernel and engine objects the data plane may have left on any host: bridges and
    /// VXLAN devices with a shoal alias, direct routes, nftables tables named `shoal_*`, engine
    /// networks with shoal's label. Empty when everything was cleaned up.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in &self.hosts {
            let links = h.exec("ip", &["-o", "-d", "link", "show"]);
            for l in String::from_utf8_lossy(&links.stdout).lines() {
                if l.contains("alias shoal:") {
                    out.push(format!(
                        "{}: link {}",
                        h.name,
                        l.split(": ").nth(1).unwrap_or(l)
                    ));
                }
            }
            let routes = h.exec(
                "ip",
                &[
                    "route",
                    "show",
                    "proto",
                    crate::dataplane::links::ROUTE_PROTO,
                ],
            );
            for r in String::from_utf8_lossy(&routes.stdout).lines() {
                out.push(format!("{}: route {r}", h.name));
            }
            let tables = h.exec("nft", &["list", "tables"]);
            for t in String::from_utf8_lossy(&tables.stdout).lines() {
                if t.contains(" shoal_") {
                    out.push(format!("{}: {t}", h.name));
                }
            }
            let nets = h.engine(&[
                "network",
                "ls",
                "-q",
                "--filter",
                "label=io.shoal.network.id",
            ]);
            for n in String::from_utf8_lossy(&nets.stdout).split_whitespace() {
                out.push(format!("{}: engine network {n}", h.name));
            }
        }
        out
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.stop();
            let _ = run(Command::new("ip").args(["netns", "del", &h.netns]));
        }
        let _ = run(Command::new("iptables").args(forward_rule("-D", &self.bridge)));
        let _ = run(Command::new("ip").args(["link", "del", &self.bridge]));
    }
}

/// The root namespace's FORWARD rule that lets frames between the hosts pass (`-I` or `-D`).
fn forward_rule<'a>(op: &'a str, bridge: &'a str) -> [&'a str; 9] {
    [
        "-w", op, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT",
    ]
}
