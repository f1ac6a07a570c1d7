//! etcd side by side with `bench join`: three etcd members on loopback take the same data
//! (values of 400 KiB of random bytes, one per key), then a fourth member is added and started,
//! and the time from `member add` to the new member's Raft index reaching the leader's is
//! measured. Uses the `etcd` and `etcdctl` on the PATH (Debian's etcd-server and etcd-client,
//! which `scripts/setup.sh` installs).

use super::stats::free_port;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What the etcd run measured.
pub struct EtcdJoin {
    /// Seconds from `member add` to the new member holding the leader's Raft index.
    pub join_s: f64,
}

/// One etcd process; killed when dropped.
pub(super) struct Etcd {
    child: Child,
    /// Where its output goes.
    log: PathBuf,
    /// Its client URL.
    pub(super) client: String,
}

impl Etcd {
    /// If the process has exited: how, with the end of its log.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        Some(format!("etcd at {} exited ({status}): {tail}", self.client))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL of a port on loopback.
pub(super) fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Starts etcd member `name` with its data in `dir`, serving clients on `client` and peers on
/// `peer`, in `cluster` (etcd's `--initial-cluster`) as a `new` or `existing` member.
pub(super) fn start(
    name: &str,
    dir: &Path,
    client: u16,
    peer: u16,
    cluster: &str,
    state: &str,
) -> anyhow::Result<Etcd> {
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new("etcd")
        .args(["--name", name])
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(["--listen-client-urls", &url(client)])
        .args(["--advertise-client-urls", &url(client)])
        .args(["--listen-peer-urls", &url(peer)])
        .args(["--initial-advertise-peer-urls", &url(peer)])
        .args(["--initial-cluster", cluster])
        .args(["--initial-cluster-state", state])
        .args(["--quota-backend-bytes", &(8u64 << 30).to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting etcd (Debian's etcd-server; scripts/setup.sh installs it)")?;
    Ok(Etcd {
        child,
        log: log_path,
        client: url(client),
    })
}

/// How many times [`start_three`] starts the members on fresh ports.
const START_ATTEMPTS: usize = 3;

/// Starts three etcd members `e1`..`e3` in `dir` on free loopback ports as one new cluster and
/// waits until every member answers; the members and the cluster (`--initial-cluster`).
///
/// A port is free when it is picked, not necessarily when etcd binds it (other processes on
/// this host pick ports too): a member that exits while the cluster forms is started again,
/// with every member on fresh ports and a fresh data directory.
pub(super) fn start_three(dir: &Path) -> anyhow::Result<(Vec<Etcd>, String)> {
    let mut exits = Vec::new();
    for attempt in 1..=START_ATTEMPTS {
        let dir = dir.join(format!("cluster-{attempt}"));
        std::fs::create_dir_all(&dir)?;
        match try_start_three(&dir)? {
            Ok(started) => return Ok(started),
            Err(exit) => exits.push(exit),
        }
    }
    bail!(
        "etcd: a member exited while the cluster formed, {START_ATTEMPTS} times: {}",
        exits.join("; ")
    )
}

/// One try of [`start_three`]: the cluster, or why a member exited.
fn try_start_three(dir: &Path) -> anyhow::Result<Result<(Vec<Etcd>, String), String>> {
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{}={}", i + 1, url(*peer)))
        .collect();
    let cluster = initial.join(",");
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        members.push(start(
            &format!("e{}", i + 1),
            dir,
            *client,
            *peer,
            &cluster,
            "new",
        )?);
    }
    let endpoints: Vec<String> = members.iter().map(|m| m.client.clone()).collect();
    let all = endpoints.join(",");
    let mut exit = None;
    wait_until(
        "a healthy three-member cluster",
        Duration::from_secs(30),
        || {
            exit = members.iter_mut().find_map(Etcd::exited);
            exit.is_some() || etcdctl(&all, &["endpoint", "health"], None).is_ok()
        },
    )?;
    Ok(match exit {
        Some(why) => Err(why),
        None => Ok((members, cluster)),
    })
}

/// Runs `etcdctl` (API v3) against `endpoint`, `stdin` piped in; what it printed.
pub(super) fn etcdctl(
    endpoint: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> anyhow::Result<String> {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout", "30s"])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running etcdctl (Debian's etcd-client; scripts/setup.sh installs it)")?;
    if let Some(bytes) = stdin {
        child.stdin.take().expect("piped").write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Raft index an etcd member has applied.
fn raft_index(endpoint: &str) -> anyhow::Result<u64> {
    let out = etcdctl(endpoint, &["endpoint", "status", "-w", "json"], None)?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["Status"]["raftAppliedIndex"]
        .as_u64()
        .context("no raftAppliedIndex in etcdctl endpoint status")
}

/// Polls `ok` every 20 ms until it holds, for at most `limit`.
pub(super) fn wait_until(
    what: &str,
    limit: Duration,
    mut ok: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            bail!("etcd: {what} not within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs the etcd side of `bench join` for `count` values of `value_bytes` each, in `dir`.
pub fn run(count: usize, value_bytes: usize, dir: &Path) -> anyhow::Result<EtcdJoin> {
    let dir: PathBuf = dir.join("etcd");
    std::fs::create_dir_all(&dir)?;
    let (members, cluster) = start_three(&dir)?;
    let first = members[0].client.clone();
    for i in 0..count {
        let mut value = vec![0u8; value_bytes];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut value);
        etcdctl(&first, &["put", &format!("bench-join-{i}")], Some(&value))
            .with_context(|| format!("etcd: writing value {i}"))?;
    }
    let (client, peer) = (free_port()?, free_port()?);
    // etcd refuses a member while it thinks its cluster unhealthy (a peer it has not heard
    // from lately, right after the writes): the time counts from the add it accepts.
    let add = ["member", "add", "e4", &format!("--peer-urls={}", url(peer))];
    let mut refused = None;
    wait_until(
        "a member add accepted",
        Duration::from_secs(60),
        || match etcdctl(&first, &add, None) {
            Ok(_) => true,
            Err(e) => {
                refused = Some(e);
                false
            }
        },
    )
    .map_err(|e| match refused.take() {
        Some(why) => e.context(why),
        None => e,
    })?;
    let joining = Instant::now();
    let all = format!("{cluster},e4={}", url(peer));
    let newcomer = start("e4", &dir, client, peer, &all, "existing")?;
    let target = raft_index(&first)?;
    wait_until(
        "the fourth member caught up",
        Duration::from_secs(600),
        || raft_index(&newcomer.client).is_ok_and(|i| i >= target),
    )?;
    let join_s = joining.elapsed().as_secs_f64();
    drop(newcomer);
    drop(members);
    Ok(EtcdJoin { join_s })
}
