//! A private dockerd for benchmarks that compare shoal with Docker's own swarm side by side: in
//! network and mount namespaces of its own, with its own data root, exec root (and so its own
//! managed containerd), containerd namespaces, socket and pid file, no bridge and no iptables
//! rules, so it touches nothing of the machine's engine. Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::Docker;
use futures::StreamExt;

/// How long the daemon gets to answer, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private dockerd.
pub struct PrivateDockerd {
    child: Option<Child>,
    dir: PathBuf,
    /// Its API socket.
    pub socket: PathBuf,
    /// A client of its API.
    pub client: Docker,
    /// Its version.
    pub version: String,
}

impl PrivateDockerd {
    /// The dockerd program, if this machine has one.
    pub fn find() -> Option<PathBuf> {
        [
            "/usr/sbin/dockerd",
            "/usr/bin/dockerd",
            "/usr/local/bin/dockerd",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    }

    /// Starts `program` under a short directory in /tmp (unix socket paths are limited to 108
    /// bytes and containerd nests its own below the exec root) and waits until it answers.
    pub async fn start(program: &Path) -> anyhow::Result<PrivateDockerd> {
        let dir = PathBuf::from(format!("/tmp/sbd{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("d.sock");
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let namespace = format!("shoal-bench-{}", std::process::id());
        // An empty configuration: none of the machine's daemon.json applies.
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}")?;
        // Its own network and mount namespaces: a dockerd without a bridge deletes any
        // `docker0` it can see, swarm mode adds `docker_gwbridge`, and its overlay mounts stay
        // its own. Only the socket (a file) is shared.
        let dockerd = [
            program.display().to_string(),
            format!("--config-file={}", config.display()),
            format!("--data-root={}", dir.join("root").display()),
            format!("--exec-root={}", dir.join("x").display()),
            format!("--pidfile={}", dir.join("d.pid").display()),
            format!("--host=unix://{}", socket.display()),
            format!("--containerd-namespace={namespace}"),
            format!("--containerd-plugins-namespace={namespace}-plugins"),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip-masq=false".into(),
        ];
        let child = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
            ])
            .arg("ip link set lo up && exec \"$@\"")
            .arg("sh")
            .args(&dockerd)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut d = PrivateDockerd {
            child: Some(child),
            dir,
            socket: socket.clone(),
            client: Docker::connect_with_local_defaults()?,
            version: String::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answered = match Docker::connect_with_unix(
                &socket.display().to_string(),
                120,
                bollard::API_DEFAULT_VERSION,
            ) {
                Ok(client) => client.version().await.ok().map(|v| (client, v)),
                Err(_) => None, // no socket yet
            };
            if let Some((client, version)) = answered {
                d.version = version.version.unwrap_or_default();
                d.client = client.negotiate_version().await?;
                return Ok(d);
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                bail!(
                    "the private dockerd did not answer within {START_TIMEOUT:?} (log: {})",
                    d.dir.join("dockerd.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Copies `image` from `from` (the machine's engine) into this daemon.
    pub async fn load_image(&self, from: &Docker, image: &str) -> anyhow::Result<()> {
        let mut load = self.client.import_image_stream(
            bollard::query_parameters::ImportImageOptions::default(),
            from.export_image(image),
            None,
        );
        while let Some(progress) = load.next().await {
            progress.with_context(|| format!("copying {image} into the private dockerd"))?;
        }
        Ok(())
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
