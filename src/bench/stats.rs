//! Small measurement helpers shared by the benchmarks.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// A set of latency samples.
#[derive(Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
}

impl Latencies {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        self.samples.push(d);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    /// The samples, in the order recorded (until a quantile sorts them).
    pub fn samples(&self) -> &[Duration] {
        &self.samples
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `q` quantile (0..=1) in milliseconds (0 when empty).
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.sort_unstable();
        let idx = ((self.samples.len() as f64 - 1.0) * q).round() as usize;
        ms(self.samples[idx.min(self.samples.len() - 1)])
    }

    /// The largest sample in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.samples.iter().max().map(|d| ms(*d)).unwrap_or(0.0)
    }
}

/// Milliseconds with microsecond precision.
pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// Rounds to 3 decimals for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a process about to listen on it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How many ports each process picks from in [`restartable_port`].
const PORT_BLOCK: u32 = 24;
/// How many ports above its `base` [`restartable_port`] may use (blocks of [`PORT_BLOCK`]).
const PORT_SPAN: u32 = 12_000;

/// A free TCP port on 127.0.0.1 for a listener that is bound again each time its process
/// restarts, from a block of ports this process picks from (by its pid) at `base` and up.
///
/// A port from [`free_port`] lies in the kernel's ephemeral range (32768 and up): while the
/// process that listens on it is down, any outgoing connection on the machine may be given it
/// as its local port, and the restarted listener then fails with "address in use". Below that
/// range only listeners are given ports; blocks by pid keep concurrent processes apart. Use a
/// `base` of its own per kind of caller ([`PORT_SPAN`] ports above it are used at most).
pub fn restartable_port(base: u16) -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let first = u32::from(base) + (std::process::id() % (PORT_SPAN / PORT_BLOCK)) * PORT_BLOCK;
    for _ in 0..2 * PORT_BLOCK {
        let port = (first + NEXT.fetch_add(1, Ordering::Relaxed) % PORT_BLOCK) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // Every port of the block is taken: any the kernel has free.
    free_port()
}

/// Measures `write(4 KiB) + fdatasync` on a file in `dir` (the disk the benchmark uses), like
/// etcd's fio guidance; returns the p50 in milliseconds.
pub fn fsync_p50_ms(dir: &Path, iterations: usize) -> std::io::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let buf = vec![0x5au8; 4096];
    let mut lat = Latencies::default();
    for _ in 0..iterations {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        lat.record(t.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(lat.quantile_ms(0.5))
}

/// CPU seconds (user + system) this process has used so far.
pub fn process_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU seconds (user + system) used so far by this process's live threads whose name starts
/// with `prefix` (threads that have exited are not counted, so name long-lived threads).
pub fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .map(|t| stat_cpu_seconds(t.path().join("stat")))
        .sum()
}

/// CPU seconds (user + system) used so far by this process's children that have ended and been
/// waited for (programs it ran, such as `git`).
pub fn children_cpu_seconds() -> f64 {
    stat_ticks("/proc/self/stat", &[13, 14])
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
fn stat_cpu_seconds(path: impl AsRef<Path>) -> f64 {
    stat_ticks(path, &[11, 12])
}

/// The sum of fields `at` (counted after the command name and the state) of a `/proc/.../stat`
/// file, in seconds.
fn stat_ticks(path: impl AsRef<Path>, at: &[usize]) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, i.e. 11 and 12 after ')' and state;
    // cutime and cstime follow.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = 100.0; // Linux USER_HZ
    at.iter().map(|i| ticks(*i)).sum::<f64>() / hz
}
