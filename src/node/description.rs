//! What this host looks like to the scheduler: hostname, platform, resources, engine.

use shoal_store::model::NodeDescription;

/// The host's name (`/proc/sys/kernel/hostname`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Total memory in bytes (`/proc/meminfo`).
pub fn memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Logical CPUs.
pub fn cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// Docker's architecture name for this build (`x86_64`, `aarch64`).
pub fn architecture() -> &'static str {
    std::env::consts::ARCH
}

/// A description of this host, with `hostname` overriding the real one when given (several
/// shoal nodes on one machine need distinct names).
pub fn describe(hostname_override: Option<&str>) -> NodeDescription {
    let json = serde_json::json!({
        "Hostname": hostname_override.map(str::to_string).unwrap_or_else(hostname),
        "Platform": {"Architecture": architecture(), "OS": std::env::consts::OS},
        "Resources": {"NanoCPUs": cpus() * 1_000_000_000, "MemoryBytes": memory_bytes()},
        "Engine": {"EngineVersion": crate::VERSION},
    });
    serde_json::from_value(json).expect("a well-formed node description")
}
