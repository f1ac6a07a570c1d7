//! Images are pulled when the node's engine lacks them: a registry of the test's own (Debian's
//! `docker-registry` on loopback, which the engine trusts over plain HTTP), an image pushed there
//! and removed from the engine, then a service of it through shoal with the real `docker` CLI.
//! The task is PREPARING while it pulls, a failed pull rejects it with the registry's error, and
//! `--with-registry-auth` credentials reach the registry (kept across updates, never shown).
//!
//! Needs the machine's Docker Engine with the test image and `docker-registry`
//! (`scripts/setup.sh` installs both); either missing fails the tests.

mod common;

use std::ffi::{c_char, CStr, CString};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_for, Daemon, Out};
use tempfile::TempDir;

/// The test image (`scripts/setup.sh` builds it); it is pushed under other names.
const IMAGE: &str = "shoal-test/busybox:1";
/// The private registry's user and password. The `?` makes the CLI's base64url encoding of the
/// credentials differ from standard base64: they must reach the engine as the CLI sent them.
const USER: &str = "shoal";
const PASSWORD: &str = "s?cret-pw~";
/// How long a task may take to get where a test waits for it.
const TASK_WAIT: Duration = Duration::from_secs(60);

/// The `docker` CLI against `socket` (the machine's engine when `None`) with the CLI
/// configuration (logins) in `config`.
fn docker(socket: Option<&Path>, config: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(socket) = socket {
        cmd.env("DOCKER_HOST", format!("unix://{}", socket.display()));
    }
    let mut child = cmd.spawn().expect("the docker CLI runs");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("docker finishes");
    Out {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// Like [`docker`], failing the test unless it succeeds; its stdout.
fn docker_ok(socket: Option<&Path>, config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = docker(socket, config, args, stdin);
    assert!(
        out.ok,
        "docker {args:?} failed:\n{}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

#[link(name = "crypt")]
extern "C" {
    fn crypt(phrase: *const c_char, setting: *const c_char) -> *mut c_char;
}

/// A bcrypt hash of `password` (what `htpasswd -B` writes; the registry accepts no other kind),
/// made by the system's libcrypt.
fn bcrypt(password: &str) -> String {
    // Cost 5, and a fixed salt of 22 characters of bcrypt's alphabet: good enough for a test.
    let setting = CString::new("$2b$05$shoaltestsaltshoaltest").unwrap();
    let phrase = CString::new(password).unwrap();
    // SAFETY: both arguments are NUL-terminated strings; crypt returns NULL or a pointer to a
    // NUL-terminated string in its static buffer, copied out at once (one caller per process).
    let hashed = unsafe { crypt(phrase.as_ptr(), setting.as_ptr()) };
    assert!(!hashed.is_null(), "libcrypt cannot make bcrypt hashes");
    let hashed = unsafe { CStr::from_ptr(hashed) }
        .to_string_lossy()
        .into_owned();
    assert!(hashed.starts_with("$2b$05$"), "not a bcrypt hash: {hashed}");
    hashed
}

/// A `docker-registry serve` on 127.0.0.1, with its storage in a temporary directory; killed
/// (and its storage removed) when dropped, whatever state it was left in.
struct Registry {
    addr: String,
    dir: TempDir,
    child: Child,
}

impl Registry {
    /// Starts a registry, asking for `user`'s password (htpasswd, over plain HTTP) when given.
    fn start(user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("shoal-registry-")
            .tempdir()
            .expect("temp dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n  secret: shoal-test\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = user {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{}\n", bcrypt(password))).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run docker-registry ({e}): install it with scripts/setup.sh")
            });
        let mut registry = Registry { addr, dir, child };
        wait_for(Duration::from_secs(20), "the registry to listen", || {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", registry.log());
            }
            TcpStream::connect(&registry.addr).ok().map(|_| ())
        });
        registry
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the registry: while stopped, connections to it are
    /// accepted by the kernel and never answered, so pulls wait.
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "signalling the registry");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- registry log ---\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A single-node swarm of a `shoal daemon` with the docker executor. When dropped, the daemon
/// is killed, then the containers its tasks left and the image names the test made are
/// removed from the engine.
struct Node {
    daemon: Daemon,
    id: String,
    tags: Vec<String>,
}

impl Node {
    fn start(hostname: &str) -> Node {
        let out = Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .env_remove("DOCKER_HOST")
            .output()
            .expect("the docker CLI runs");
        assert!(
            out.status.success(),
            "no Docker Engine with {IMAGE} here (run scripts/setup.sh)"
        );
        let daemon = Daemon::start_with_executor(hostname, "docker");
        let id = daemon.init_swarm();
        Node {
            daemon,
            id,
            tags: Vec::new(),
        }
    }

    /// The CLI configuration the daemon's `docker` commands use (where `docker login` writes).
    fn config(&self) -> PathBuf {
        self.daemon.dir().join("docker-config")
    }

    /// The `docker` CLI against the daemon, with the CLI configuration in `config`.
    fn cli(&self, config: &Path, args: &[&str]) -> Out {
        docker(Some(&self.daemon.socket), config, args, None)
    }

    /// The `docker` CLI against the daemon, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        docker_ok(Some(&self.daemon.socket), &self.config(), args, None)
    }

    /// `docker service create` of `image` named `name`, with `extra` flags, the CLI
    /// configuration in `config`: a task that sleeps, stops at once and is soon restarted.
    fn create(&self, config: &Path, name: &str, image: &str, extra: &[&str]) -> Out {
        let mut args = vec![
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--restart-delay",
            "1s",
            "--stop-grace-period",
            "1s",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image, "sleep", "100000"]);
        self.cli(config, &args)
    }

    /// Pushes the test image to `registry` as `shoal-test/busybox:<tag>` (logged in with the
    /// daemon's CLI configuration when the registry wants it), removes that name from the
    /// engine, and returns it.
    fn push(&mut self, registry: &Registry, tag: &str) -> String {
        let image = format!("{}/shoal-test/busybox:{tag}", registry.addr);
        self.tags.push(image.clone());
        let config = self.config();
        docker_ok(None, &config, &["tag", IMAGE, &image], None);
        docker_ok(None, &config, &["push", &image], None);
        docker_ok(None, &config, &["rmi", &image], None);
        assert!(!self.engine_has(&image), "{image} is still in the engine");
        image
    }

    fn engine_has(&self, image: &str) -> bool {
        docker(None, &self.config(), &["image", "inspect", image], None).ok
    }

    /// Every task of `service`, as `docker service ps --no-trunc` shows them.
    fn tasks(&self, service: &str) -> Vec<TaskRow> {
        let out = self.cli(
            &self.config(),
            &[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.Image}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}",
                service,
            ],
        );
        if !out.ok {
            return Vec::new();
        }
        out.stdout
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(4, '|');
                Some(TaskRow {
                    image: f.next()?.to_owned(),
                    desired: f.next()?.to_owned(),
                    current: f.next()?.to_owned(),
                    // The CLI quotes errors.
                    error: f.next()?.trim().trim_matches('"').to_owned(),
                })
            })
            .collect()
    }

    /// Waits until a task of `service` of `image` is in `state` (`Running`, `Preparing`,
    /// `Rejected`...); returns its error text.
    fn wait_task(&self, service: &str, image: &str, state: &str) -> String {
        wait_for(
            TASK_WAIT,
            &format!("a task of {service} ({image}) {state}"),
            || {
                self.tasks(service)
                    .into_iter()
                    .find(|t| t.image == image && t.current.starts_with(state))
                    .map(|t| t.error)
            },
        )
    }
}

/// A line of `docker service ps`.
struct TaskRow {
    image: String,
    desired: String,
    /// `Running 3 seconds ago`.
    current: String,
    error: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.daemon.kill9();
        let config = self.config();
        let label = format!("label=com.docker.swarm.node.id={}", self.id);
        let left = docker(None, &config, &["ps", "-aq", "--filter", &label], None);
        for id in left.stdout.split_whitespace() {
            docker(None, &config, &["rm", "-f", id], None);
        }
        for tag in &self.tags {
            docker(None, &config, &["rmi", tag], None);
        }
    }
}

#[test]
fn a_missing_image_is_pulled_while_the_task_is_preparing_and_never_again() {
    let registry = Registry::start(None);
    let mut node = Node::start("pull");
    let image = node.push(&registry, "public");

    // A stopped registry holds the pull: the task shows PREPARING meanwhile.
    registry.signal(libc::SIGSTOP);
    let out = node.create(&node.config(), "pulled", &image, &[]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    node.wait_task("pulled", &image, "Preparing");
    registry.signal(libc::SIGCONT);
    node.wait_task("pulled", &image, "Running");
    assert!(node.engine_has(&image), "{image} was not pulled");

    // A repository the registry does not have: rejected with the registry's answer.
    let missing = format!("{}/shoal-test/nope:1", registry.addr);
    let out = node.create(&node.config(), "missing", &missing, &[]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let error = node.wait_task("missing", &missing, "Rejected");
    assert!(
        error.starts_with(&format!("pulling {missing}: ")) && error.len() > missing.len() + 10,
        "{error}"
    );

    // With the registry gone, the image already there runs a new task: it is not pulled again.
    drop(registry);
    node.ok(&["service", "update", "-d", "--force", "pulled"]);
    wait_for(TASK_WAIT, "a second task of pulled running", || {
        let tasks = node.tasks("pulled");
        let running = |t: &TaskRow| t.desired == "Running" && t.current.starts_with("Running");
        (tasks.iter().any(running) && tasks.iter().any(|t| t.desired == "Shutdown")).then_some(())
    });
}

#[test]
fn with_registry_auth_credentials_pull_from_a_private_registry() {
    let registry = Registry::start(Some((USER, PASSWORD)));
    let mut node = Node::start("pull-auth");
    let good = node.config();
    docker_ok(
        None,
        &good,
        &[
            "login",
            "--username",
            USER,
            "--password-stdin",
            &registry.addr,
        ],
        Some(PASSWORD),
    );
    let image = node.push(&registry, "private");

    // Without --with-registry-auth the registry refuses the pull.
    let out = node.create(&good, "anonymous", &image, &[]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let error = node.wait_task("anonymous", &image, "Rejected");
    assert!(
        error.starts_with(&format!("pulling {image}: ")) && error.contains("no basic auth"),
        "{error}"
    );
    node.ok(&["service", "rm", "anonymous"]);

    // A wrong password: rejected with the registry's answer.
    let wrong = tempfile::tempdir().unwrap();
    let auth = format!("{USER}:wrong-password");
    let config = serde_json::json!({"auths": {registry.addr.clone(): {"auth": base64(&auth)}}});
    std::fs::write(wrong.path().join("config.json"), config.to_string()).unwrap();
    let out = node.create(wrong.path(), "private", &image, &["--with-registry-auth"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let error = node.wait_task("private", &image, "Rejected");
    assert!(
        error.starts_with(&format!("pulling {image}: ")) && error.contains("unauthorized"),
        "{error}"
    );

    // The right credentials, sent with an update, are the ones the next tasks pull with.
    node.ok(&["service", "update", "-d", "--with-registry-auth", "private"]);
    node.wait_task("private", &image, "Running");
    assert!(node.engine_has(&image), "{image} was not pulled");

    // An update without --with-registry-auth keeps them: a new image pulls as well.
    let image2 = node.push(&registry, "private2");
    node.ok(&["service", "update", "-d", "--image", &image2, "private"]);
    node.wait_task("private", &image2, "Running");
    assert!(node.engine_has(&image2), "{image2} was not pulled");

    // The credentials are never shown.
    for path in ["/services/private", "/services", "/tasks"] {
        let shown = node.daemon.get_json(path).to_string();
        assert!(
            !shown.contains("RegistryAuth") && !shown.contains(PASSWORD),
            "{path}: {shown}"
        );
    }
    let inspected = node.ok(&["service", "inspect", "private"]);
    assert!(!inspected.contains("RegistryAuth"), "{inspected}");
}

/// Standard base64, as the CLI's config file keeps `user:password`.
fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
