//! A swarm of managers as separate `shoal daemon` processes on loopback, for the chaos suite:
//! each with its own data dir, API socket and swarm port, tasks on the sim executor. The faults
//! are done to the processes themselves: SIGKILL, SIGSTOP/SIGCONT, restart on the same data,
//! and wiping a stopped member's data. With a [`Lan`] each manager runs in a network namespace
//! of its own instead, so that links between them can be cut ([`net`](super::net)). Every
//! process is killed when the cluster is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::net::Lan;
use crate::bench::one_node::Client;
use crate::bench::stats::restartable_port;

/// Where the members' swarm ports start ([`restartable_port`]; the test suite's daemons use
/// 20000 and up).
const SWARM_PORT_BASE: u16 = 8000;

/// Set (to anything), the members' data dirs and logs are kept after the run.
pub const KEEP_ENV: &str = "SHOAL_CHAOS_KEEP";

/// How long an API call of the harness itself (not the workload) may take.
const CALL: Duration = Duration::from_secs(5);

/// Where a member keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// A directory on the machine's own filesystem.
    Shared,
    /// A tmpfs of this many MiB of its own, so that it can be filled
    /// ([`Member::fill_disk`]).
    Tmpfs(u64),
    /// An ext4 filesystem of this many MiB of its own, on a loop device, so that the power
    /// can be cut ([`Member::stop_disk`]).
    Ext4(u64),
}

/// `EXT4_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`, the same number as XFS's `GOINGDOWN`): the
/// filesystem stops at once, as the machine under it would lose power.
const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587d;
/// Its flag for "flush neither the journal nor data": whatever was not synced is gone.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

/// One manager process.
pub struct Member {
    /// Its host name (also its node's).
    pub name: String,
    /// Its Docker API socket.
    pub socket: PathBuf,
    /// Its swarm listener's address (127.0.0.1, or its namespace's address on a [`Lan`]).
    pub swarm_ip: String,
    /// Its swarm listener port.
    pub swarm_port: u16,
    /// The `nsenter` argument for its network namespace, on a [`Lan`].
    netns: Option<String>,
    data: PathBuf,
    log: PathBuf,
    exe: PathBuf,
    child: Option<tokio::process::Child>,
    paused: bool,
    /// Whether its data dir is a filesystem of its own (unmounted on drop).
    mounted: bool,
    /// The image of its ext4 filesystem ([`Disk::Ext4`]).
    image: Option<PathBuf>,
    /// Whether the swarm has it as a manager (the scenarios that promote and demote keep it
    /// up to date); workers hold no replica and are left out of the store's oracles.
    pub manager: bool,
    /// Extra environment (a mutation, see [`shoal_store::mutation`]).
    env: Vec<(String, String)>,
}

/// One API call to `socket` with a deadline: status and body.
pub async fn call(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
    deadline: Duration,
) -> anyhow::Result<(u16, Value)> {
    tokio::time::timeout(deadline, async {
        let mut c = Client::connect(socket).await?;
        c.call_with_headers(
            method,
            path,
            headers,
            body.map(|b| bytes::Bytes::from(b.to_string())),
        )
        .await
    })
    .await
    .map_err(|_| anyhow::anyhow!("{method} {path}: no answer within {deadline:?}"))?
}

async fn ok(socket: &Path, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let (status, v) = call(socket, method, path, &[], body, CALL).await?;
    if !(200..300).contains(&status) {
        bail!("{method} {path}: {status} {v}");
    }
    Ok(v)
}

/// Runs a system tool (mount, mkfs, losetup): what it printed, trimmed; an error with what
/// it printed on stderr when it fails.
fn run_tool(command: &mut std::process::Command) -> anyhow::Result<String> {
    let out = command.output().context("running a system tool")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Member {
    fn new(
        root: &Path,
        name: &str,
        exe: &Path,
        lan: Option<(&Lan, usize)>,
    ) -> anyhow::Result<Member> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let (swarm_ip, swarm_port, netns) = match lan {
            Some((lan, k)) => (lan.ip(k).to_string(), 2377, Some(lan.enter(k))),
            None => (
                "127.0.0.1".to_string(),
                restartable_port(SWARM_PORT_BASE)?,
                None,
            ),
        };
        Ok(Member {
            name: name.to_string(),
            socket: dir.join("api.sock"),
            swarm_ip,
            swarm_port,
            netns,
            data: dir.join("data"),
            log: dir.join("daemon.log"),
            exe: exe.to_path_buf(),
            child: None,
            paused: false,
            mounted: false,
            image: None,
            manager: true,
            env: Vec::new(),
        })
    }

    /// Whether its process runs (paused or not).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Whether it is stopped with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts the process and waits until its API answers.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = call(&self.socket, "GET", "/_ping", &[], None, CALL).await {
                return Ok(());
            }
            // A daemon that refused to start says why in its log: no point waiting for it.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                bail!(
                    "{} exited ({status}) before it answered /_ping; the end of its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(25)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer /_ping within 30 s; the end of its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(25)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the process without waiting for it.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        // `nsenter` without `--fork` execs the daemon: the child's pid is the daemon's, so
        // signals reach it.
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = tokio::process::Command::new("nsenter");
                c.arg(netns).arg(&self.exe);
                c
            }
            None => tokio::process::Command::new(&self.exe),
        };
        let child = command
            .arg("daemon")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--api-socket")
            .arg(&self.socket)
            .args(["--hostname", &self.name, "--executor", "sim"])
            .args(["--log-level", &member_log_filter()])
            .env_remove(shoal_store::mutation::ENV)
            .env_remove(shoal_store::mutation::FAILPOINT_ENV)
            .env_remove(shoal_store::mutation::SNAPSHOT_EVERY_ENV)
            .env(shoal_store::clock::OFFSET_FILE_ENV, self.clock_file())
            // An error that stops the daemon ends its log, not a backtrace of where anyhow
            // made it (the harness reports the log's last lines); panics keep theirs.
            .env("RUST_LIB_BACKTRACE", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Flips one bit in the middle of the newest file of its database whose name ends in
    /// `suffix` (`.log`: the WAL; `.sst`: a table), as a disk that rots would (it must be
    /// stopped); that file's name.
    pub fn flip_a_bit(&self, suffix: &str) -> anyhow::Result<String> {
        if self.child.is_some() {
            bail!("{} still runs: stop it before damaging its data", self.name);
        }
        let db = self.data.join("swarm/raft/db");
        let mut files: Vec<(String, u64)> = std::fs::read_dir(&db)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let len = e.metadata().ok()?.len();
                (name.ends_with(suffix) && len > 1024).then_some((name, len))
            })
            .collect();
        files.sort();
        let (name, len) = files
            .pop()
            .with_context(|| format!("no {suffix} file of over 1 KiB in {}", db.display()))?;
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(db.join(&name))?;
        let at = len / 2;
        let mut b = [0u8];
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut b)?;
        f.seek(SeekFrom::Start(at))?;
        f.write_all(&[b[0] ^ 0x10])?;
        f.sync_all()?;
        Ok(name)
    }

    /// SIGKILL (a crash); the data stays.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
        self.paused = false;
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGSTOP: the process stops without knowing it (a long GC pause, a frozen VM).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGSTOP, and waits until every thread of the process has stopped (or sits in the
    /// kernel, which it leaves only to stop): from then on it does nothing at all, the way a
    /// machine that lost power does nothing. (A SIGSTOP is taken by one thread first, which
    /// then stops the others: right after `kill(2)` another thread may still run a moment.)
    pub async fn freeze(&mut self) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .with_context(|| format!("{} does not run", self.name))?;
        self.pause();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let states = thread_states(pid)?;
            if states
                .iter()
                .all(|s| matches!(s, 'T' | 't' | 'D' | 'Z' | 'X'))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not stop within 2 s of SIGSTOP: thread states {states:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Kill -9, then start again on the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9().await;
        self.start().await
    }

    /// Kill -9, then start again on the same data with `env` added for this start only.
    pub async fn restart_with(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        self.kill9().await;
        let kept = self.env.clone();
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let started = self.start().await;
        self.env = kept;
        started
    }

    /// Whether its process still runs (it has not exited on its own).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Gives it a filesystem of its own at its data dir (before it first starts).
    fn own_disk(&mut self, disk: Disk) -> anyhow::Result<()> {
        if disk == Disk::Shared {
            return Ok(());
        }
        std::fs::create_dir_all(&self.data)?;
        match disk {
            Disk::Shared => {}
            Disk::Tmpfs(mb) => {
                run_tool(
                    std::process::Command::new("mount")
                        .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "shoal-chaos"])
                        .arg(&self.data),
                )
                .with_context(|| format!("mounting a {mb} MiB tmpfs at {}", self.data.display()))?;
            }
            Disk::Ext4(mb) => {
                let image = self.data.with_extension("img");
                std::fs::File::create(&image)?.set_len(mb << 20)?;
                run_tool(
                    std::process::Command::new("mkfs.ext4")
                        .args(["-q", "-F"])
                        .arg(&image),
                )?;
                self.image = Some(image);
                self.mount_image()?;
            }
        }
        self.mounted = true;
        Ok(())
    }

    /// Mounts its ext4 image at its data dir (which replays the journal, as a boot would).
    ///
    /// Always through a loop device of its own: `mount -o loop` reuses a device the image is
    /// still attached to, and a filesystem whose power was cut stays attached while any mount
    /// namespace made in the meantime (another test's host, an engine) holds a copy of the
    /// mount. Mounted through that device again, the filesystem is the one that was shut down,
    /// and every write fails with EIO. A new device gives a new filesystem, read from the
    /// image as it was synced. Detached at once, the device goes with the last unmount.
    fn mount_image(&self) -> anyhow::Result<()> {
        let image = self.image.as_ref().context("no ext4 image")?;
        let device = run_tool(
            std::process::Command::new("losetup")
                .args(["--find", "--show"])
                .arg(image),
        )
        .with_context(|| format!("attaching {} to a loop device", image.display()))?;
        let mounted = run_tool(
            std::process::Command::new("mount")
                .args(["-t", "ext4", &device])
                .arg(&self.data),
        );
        // Mounted, it is only marked to go with the last unmount; not mounted, it goes now.
        let _ = std::process::Command::new("losetup")
            .args(["-d", &device])
            .output();
        mounted.map(drop).with_context(|| {
            format!(
                "mounting {} ({device}) at {}",
                image.display(),
                self.data.display()
            )
        })
    }

    /// Cuts its power, after [`Member::freeze`] and with [`Member::kill9`] right after: its
    /// filesystem stops at once without writing back anything that was not synced
    /// (`EXT4_IOC_SHUTDOWN` without flushing, as xfstests simulate a crash). Only what it
    /// synced is there when [`Member::power_on`] mounts the filesystem again. Several members
    /// frozen, then stopped in a row, then killed, lose power "at once".
    ///
    /// The process must be frozen first, as a machine's power takes the disk and the CPU at
    /// once. One that ran on past the shutdown acknowledged entries its disk did not have
    /// afterwards (seen once: a follower's two acknowledged entries gone after the cut, the
    /// write they carried lost), most likely because an `fdatasync` racing with the shutdown
    /// returned success for a journal transaction the abort discarded (our reading of jbd2:
    /// its wait skips a transaction that is no longer running or committing, without
    /// checking for the abort).
    pub fn stop_disk(&self) -> anyhow::Result<()> {
        if self.image.is_none() {
            bail!("{} has no ext4 filesystem of its own to cut", self.name);
        }
        let dir = std::fs::File::open(&self.data)?;
        let flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
        use std::os::fd::AsRawFd;
        // SAFETY: ioctl(2) on a descriptor we own, with a pointer to a u32 that outlives
        // the call, as EXT4_IOC_SHUTDOWN expects.
        let r = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_SHUTDOWN as _, &flags) };
        if r != 0 {
            bail!(
                "shutting down the filesystem at {}: {}",
                self.data.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// After [`Member::stop_disk`] and [`Member::kill9`]: unmounts and mounts its filesystem again and starts it.
    pub async fn power_on(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!(
                "{} still runs: kill it before its power comes back",
                self.name
            );
        }
        run_tool(std::process::Command::new("umount").arg(&self.data))
            .with_context(|| format!("unmounting {}", self.data.display()))?;
        self.mount_image()?;
        self.start().await
    }

    /// Fills its data dir's filesystem to the last byte with a file, whose path it returns
    /// (remove it to free the space).
    pub fn fill_disk(&self) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        if !self.mounted {
            bail!("{} has no filesystem of its own to fill", self.name);
        }
        let path = self.data.join("chaos-filler");
        let mut f = std::fs::File::create(&path)?;
        let block = vec![0u8; 1 << 20];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // The last partial block too.
        let small = [0u8; 4096];
        while let Ok(n) = f.write(&small) {
            if n == 0 {
                break;
            }
        }
        Ok(path)
    }

    /// The file its wall clock's offset is read from (debug builds only,
    /// [`shoal_store::clock`]).
    fn clock_file(&self) -> PathBuf {
        self.log.with_file_name("clock-offset")
    }

    /// Sets its wall clock `seconds` off the machine's, while it runs (it reads the offset
    /// again within [`shoal_store::clock::REREAD`]): a jump, forward or back.
    pub fn set_clock(&self, seconds: i64) -> anyhow::Result<()> {
        let file = self.clock_file();
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, seconds.to_string())?;
        std::fs::rename(&tmp, &file)?;
        Ok(())
    }

    /// Removes its data (it must be stopped): it starts again as a new node that has never
    /// been in the swarm.
    pub fn wipe(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} still runs: stop it before wiping its data", self.name);
        }
        if self.data.exists() {
            std::fs::remove_dir_all(&self.data)?;
        }
        Ok(())
    }

    /// Its swarm address, `ip:port`.
    pub fn swarm_addr(&self) -> String {
        format!("{}:{}", self.swarm_ip, self.swarm_port)
    }

    /// Waits up to `timeout` for the process to exit on its own (a failpoint's crash);
    /// whether it did.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(_))) | None => {
                    self.child = None;
                    return true;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        false
    }

    /// Its store's revision and the revision it has applied (`/shoal/v1/revision`), when it
    /// answers within 2 s.
    pub async fn revision(&self) -> Option<(u64, u64)> {
        let timeout = Duration::from_secs(2);
        match call(
            &self.socket,
            "GET",
            "/shoal/v1/revision",
            &[],
            None,
            timeout,
        )
        .await
        {
            Ok((200, v)) => Some((v["revision"].as_u64()?, v["applied"].as_u64()?)),
            _ => None,
        }
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its log (for failure reports).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// The managers (and workers) of one swarm.
pub struct Cluster {
    /// The members, in the order they joined (the first made the swarm).
    pub members: Vec<Member>,
    /// The members' network, when they run in namespaces of their own.
    pub lan: Option<Lan>,
    _root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` managers of one swarm with `exe` (this build's `shoal`), with `mutation` on
    /// (`diverge` on the second member only, `skip-watch-event` on the third, the others on
    /// every member) and `env` on every member; each in a network namespace of its own when
    /// `networked`. `workers` more members join as workers. Each member keeps its data on
    /// `disk`.
    pub async fn start(
        n: usize,
        workers: usize,
        exe: &Path,
        mutation: Option<&str>,
        env: &[(&str, String)],
        networked: bool,
        disk: Disk,
    ) -> anyhow::Result<Cluster> {
        let mut root = tempfile::Builder::new().prefix("shoal-chaos-").tempdir()?;
        if std::env::var_os(KEEP_ENV).is_some() {
            // For a post-mortem: the members' data and logs stay.
            root.disable_cleanup(true);
            eprintln!("chaos: keeping {}", root.path().display());
        }
        let lan = if networked {
            Some(Lan::create(n + workers)?)
        } else {
            None
        };
        let mut members = Vec::new();
        for i in 1..=n + workers {
            let mut m = Member::new(
                root.path(),
                &format!("chaos-m{i}"),
                exe,
                lan.as_ref().map(|l| (l, i - 1)),
            )?;
            m.env
                .extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            m.own_disk(disk)?;
            if let Some(name) = mutation {
                // Mutations of one replica break one member; the others break every member.
                let only = match name {
                    "diverge" => Some(2),
                    "skip-watch-event" => Some(3),
                    _ => None,
                };
                if i <= n && only.is_none_or(|only| only == i) {
                    m.env
                        .push((shoal_store::mutation::ENV.to_string(), name.to_string()));
                }
            }
            m.start().await?;
            members.push(m);
        }
        let first = &members[0];
        let addr = first.swarm_addr();
        ok(
            &first.socket,
            "POST",
            "/swarm/init",
            Some(json!({"ListenAddr": addr, "AdvertiseAddr": addr})),
        )
        .await
        .context("swarm init")?;
        let mut cluster = Cluster {
            members,
            lan,
            _root: root,
        };
        for i in 1..n + workers {
            cluster.join(i, i < n).await?;
        }
        cluster.wait_healthy(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// The socket of a running manager (the first one), for the harness's own calls.
    pub fn a_manager(&self) -> &Path {
        self.members
            .iter()
            .find(|m| m.manager && m.is_up() && !m.is_paused())
            .map_or(self.members[0].socket.as_path(), |m| m.socket.as_path())
    }

    /// Makes member `i` (running, in no swarm) join as a manager or a worker, through a
    /// running manager.
    pub async fn join(&mut self, i: usize, manager: bool) -> anyhow::Result<()> {
        let via = self
            .members
            .iter()
            .position(|m| m.manager && m.is_up() && !m.is_paused())
            .context("no manager runs to join through")?;
        let swarm = ok(&self.members[via].socket, "GET", "/swarm", None).await?;
        let role = if manager { "Manager" } else { "Worker" };
        let token = swarm["JoinTokens"][role]
            .as_str()
            .with_context(|| format!("no {role} join token"))?
            .to_string();
        let remote = self.members[via].swarm_addr();
        let m = &mut self.members[i];
        let own = m.swarm_addr();
        ok(
            &m.socket,
            "POST",
            "/swarm/join",
            Some(json!({"ListenAddr": own, "AdvertiseAddr": own, "RemoteAddrs": [remote], "JoinToken": token})),
        )
        .await
        .with_context(|| format!("{} joining", m.name))?;
        m.manager = manager;
        Ok(())
    }

    /// Node `name`'s id, version and spec, as the manager at `via` has them.
    async fn node(&self, via: &Path, name: &str) -> anyhow::Result<(String, u64, Value)> {
        let nodes = ok(via, "GET", "/nodes", None).await?;
        let node = nodes
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["Description"]["Hostname"] == name)
            .with_context(|| format!("no node {name}"))?;
        Ok((
            node["ID"].as_str().unwrap_or_default().to_string(),
            node["Version"]["Index"].as_u64().unwrap_or(0),
            node["Spec"].clone(),
        ))
    }

    /// Asks a running manager to make member `i` a manager or a worker: the answer's status
    /// and body (a refusal is an answer, not an error). The member's role is updated when the
    /// change is accepted.
    pub async fn set_role(&mut self, i: usize, manager: bool) -> anyhow::Result<(u16, Value)> {
        let via = self.a_manager().to_path_buf();
        let name = self.members[i].name.clone();
        let (id, version, mut spec) = self.node(&via, &name).await?;
        spec["Role"] = if manager { "manager" } else { "worker" }.into();
        let (status, body) = call(
            &via,
            "POST",
            &format!("/nodes/{id}/update?version={version}"),
            &[],
            Some(spec),
            CALL,
        )
        .await?;
        if (200..300).contains(&status) {
            self.members[i].manager = manager;
        }
        Ok((status, body))
    }

    /// Removes member `i`'s node from the swarm (`docker node rm --force`), through a
    /// running manager.
    pub async fn remove_node(&mut self, i: usize) -> anyhow::Result<()> {
        let via = self.a_manager().to_path_buf();
        let (id, _, _) = self.node(&via, &self.members[i].name).await?;
        ok(&via, "DELETE", &format!("/nodes/{id}?force=true"), None).await?;
        Ok(())
    }

    /// The index of the member that leads, as the running members see it (`None`: no leader
    /// known to any of them).
    pub async fn leader(&self) -> Option<usize> {
        for m in self
            .members
            .iter()
            .filter(|m| m.manager && m.is_up() && !m.is_paused())
        {
            let Ok((200, nodes)) = call(&m.socket, "GET", "/nodes", &[], None, CALL).await else {
                continue;
            };
            let leader = nodes.as_array().into_iter().flatten().find_map(|n| {
                (n["ManagerStatus"]["Leader"] == true).then(|| {
                    n["Description"]["Hostname"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
            });
            if let Some(name) = leader {
                return self.members.iter().position(|m| m.name == name);
            }
        }
        None
    }

    /// Waits until the leader shows member `i` as an unreachable manager (`docker node ls`'s
    /// MANAGER STATUS): from then on a change of voters is judged with it down.
    pub async fn wait_unreachable(&self, i: usize, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let name = self.members[i].name.as_str();
        loop {
            if let Some(l) = self.leader().await {
                if let Ok((200, nodes)) =
                    call(&self.members[l].socket, "GET", "/nodes", &[], None, CALL).await
                {
                    let down = nodes.as_array().into_iter().flatten().any(|n| {
                        n["Description"]["Hostname"] == name
                            && n["ManagerStatus"]["Reachability"] == "unreachable"
                    });
                    if down {
                        return Ok(started.elapsed());
                    }
                }
            }
            if started.elapsed() > timeout {
                bail!("no leader showed {name} as unreachable within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running member is a manager that has applied what the swarm
    /// committed, and a linearizable read answers on each.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let mut all = true;
            for m in self.members.iter().filter(|m| m.manager && m.is_up()) {
                match m.revision().await {
                    Some((revision, applied)) if applied >= revision => {}
                    _ => all = false,
                }
            }
            if all {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                let tails: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("--- {}:\n{}", m.name, m.log_tail(15)))
                    .collect();
                bail!(
                    "the managers did not converge within {timeout:?}\n{}",
                    tails.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Each running member's applied revision and a digest of every secret as its own replica
    /// has it (id, version, labels). After convergence they must all be equal (etcd's
    /// `KV_HASH` check).
    pub async fn replica_digests(&self) -> anyhow::Result<Vec<(String, u64, String)>> {
        let mut out = Vec::new();
        for m in self.members.iter().filter(|m| m.manager && m.is_up()) {
            let rev = ok(&m.socket, "GET", "/shoal/v1/revision", None).await?;
            let secrets = ok(&m.socket, "GET", "/secrets", None).await?;
            let mut rows: Vec<String> = secrets
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "{} {} {}",
                        s["ID"].as_str().unwrap_or(""),
                        s["Version"]["Index"],
                        s["Spec"]["Labels"]
                    )
                })
                .collect();
            rows.sort();
            let digest = hex::encode(Sha256::digest(rows.join("\n").as_bytes()));
            out.push((m.name.clone(), rev["applied"].as_u64().unwrap_or(0), digest));
        }
        Ok(out)
    }

    /// Where a member's process panicked, from its log: `member: panicked at ...` with the
    /// message that follows.
    pub fn panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for m in &self.members {
            let log = m.log();
            let lines: Vec<&str> = log.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.contains("panicked at") {
                    let message = lines[i..(i + 3).min(lines.len())].join(" ");
                    found.push(format!("{}: {}", m.name, message.trim()));
                }
            }
        }
        found
    }

    /// Copies every member's log into a directory of its own under the system's temp dir
    /// (`shoal-chaos-logs-<label>`), which outlives the cluster; its path.
    pub fn save_logs(&self, label: &str) -> Option<PathBuf> {
        let dir = std::env::temp_dir().join(format!("shoal-chaos-logs-{label}"));
        std::fs::create_dir_all(&dir).ok()?;
        for m in &self.members {
            let _ = std::fs::copy(&m.log, dir.join(format!("{}.log", m.name)));
        }
        Some(dir)
    }

    /// The sockets of every manager (workload clients pick among them; a stopped member's
    /// calls fail fast).
    pub fn sockets(&self) -> Vec<PathBuf> {
        self.members
            .iter()
            .filter(|m| m.manager)
            .map(|m| m.socket.clone())
            .collect()
    }

    /// Makes sure every member runs, none is paused and no link is cut (the end of a
    /// scenario).
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(lan) = &mut self.lan {
            lan.heal()?;
        }
        for m in &mut self.members {
            if m.is_paused() {
                m.resume();
            }
            if !m.is_running() {
                // Exited on its own (a crash the scenario reports): started again.
                m.child = None;
            }
            if !m.is_up() {
                m.start().await?;
            }
        }
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        if self.mounted {
            // Lazily: the process may still be on its way out. A loop device goes with the
            // last unmount of its filesystem (detached once mounted: see `mount_image`).
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.data)
                .status();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if m.is_paused() {
                m.resume();
            }
            if let Some(c) = m.child.as_mut() {
                let _ = c.start_kill();
            }
        }
        // Wait (briefly) for them to be gone, so their namespaces, mounts and ports are free
        // for the next scenario.
        let deadline = Instant::now() + Duration::from_secs(5);
        for m in &mut self.members {
            while let Some(c) = m.child.as_mut() {
                if !matches!(c.try_wait(), Ok(None)) || Instant::now() > deadline {
                    m.child = None;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The log filter of the members: warnings, and the state openraft reads back at each start
/// (vote, purged, applied, committed and last log ids: what a failure after a crash or a power
/// cut needs first). `SHOAL_CHAOS_LOG` replaces it.
fn member_log_filter() -> String {
    std::env::var("SHOAL_CHAOS_LOG")
        .unwrap_or_else(|_| "warn,openraft::storage::helper=info".to_string())
}

/// The scheduler state (`R`, `S`, `D`, `T`, ...) of every thread of process `pid`.
fn thread_states(pid: u32) -> anyhow::Result<Vec<char>> {
    let mut states = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ...`: the command may hold spaces and parentheses.
        if let Some(state) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
        {
            states.push(state);
        }
    }
    Ok(states)
}
