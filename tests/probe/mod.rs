//! What the data plane tests run in their containers (the test image's static busybox) and how
//! they read the answers.

use std::collections::BTreeSet;

/// A task's shell command: busybox httpd answering `<prefix>-<its hostname>` on port 80.
pub fn httpd(prefix: &str) -> String {
    format!("mkdir -p /www && echo {prefix}-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www")
}

/// The addresses `nslookup` answered (not the server's own).
pub fn nslookup_addresses(stdout: &str) -> BTreeSet<String> {
    stdout
        .split("Name:")
        .skip(1)
        .flat_map(|block| block.lines())
        .filter_map(|l| l.strip_prefix("Address: "))
        .map(|a| a.trim().to_string())
        .collect()
}

/// `docker exec <container>` arguments that fetch `http://<target>/`. busybox's own `wget -T`
/// and its resolving of names through libc crash the image's static build: `timeout` bounds
/// it, and targets are addresses (names are checked with nslookup).
pub fn wget_args(target: &str) -> Vec<String> {
    ["timeout", "3", "wget", "-O", "-"]
        .into_iter()
        .map(str::to_string)
        .chain([format!("http://{target}/")])
        .collect()
}
