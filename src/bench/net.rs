//! `shoal bench net`: the data plane on three hosts of this machine ([`super::hosts`]; one
//! manager, two workers), measured side by side in one run:
//!
//! - programming latency: a task on host 3 becomes RUNNING (its status timestamp) until its
//!   service's VIP answers from every host (`curl` from each host's namespace), over
//!   `--changes` scale-ups from 0 to 1 (names are pushed in the same reconcile, before the
//!   rules);
//! - HTTP requests/s and p99 (`wrk` from host 1) to a task on host 2 addressed directly on
//!   the overlay, through its VIP and through the routing mesh (host 1's published port);
//! - bulk TCP throughput (`curl` download of a file from busybox httpd) over the overlay
//!   against the same between the hosts' own veths, and over a hand-built VXLAN device pair
//!   at the same MTU (the kernel's own VXLAN cost on this machine), and over a network with
//!   direct routing (`--opt shoal.direct-routing`: the hosts share the harness's LAN, so its
//!   endpoints are routed to without VXLAN).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::hosts::{wait_for, Host, Hosts, IMAGE};
use super::stats::{round3, Latencies};

/// The benchmark's settings.
#[derive(Clone, Debug)]
pub struct NetBench {
    /// Tasks started for the programming latency.
    pub changes: usize,
    /// Seconds per `wrk` run.
    pub seconds: u64,
    /// MiB per throughput download.
    pub mib: u64,
    /// Rounds of measurement: each round measures every path once, in a rotated order.
    pub rounds: usize,
    /// Concurrent downloads per bulk throughput sample (besides the single download each
    /// path is measured with too).
    pub streams: usize,
}

/// The median of `samples` (the mean of the middle two for an even count); NaN when empty.
fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `measure` on every path `rounds` times: each round measures each path once, the
/// order rotated one place per round, so that neither a path's place in the round nor a slow
/// drift of the machine favours one of them. The samples, per path, in round order.
fn interleaved<P: Copy>(
    paths: &[P],
    rounds: usize,
    mut measure: impl FnMut(P) -> anyhow::Result<f64>,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut samples = vec![Vec::with_capacity(rounds); paths.len()];
    for round in 0..rounds {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            samples[i].push(measure(paths[i])?);
        }
    }
    Ok(samples)
}

/// The ratio of `a` to `b` per round (measured minutes apart at most), and its median: a noisy
/// machine moves both of a round's samples, which the ratio cancels.
fn paired_ratio(a: &[f64], b: &[f64]) -> (f64, Vec<f64>) {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| round3(a / b)).collect();
    (round3(median(&ratios)), ratios)
}

fn httpd(body: &str) -> String {
    format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www")
}

fn running_task(h: &Host, service: &str) -> Option<(String, String)> {
    let ids = h.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        service,
    ]);
    let id = ids.split_whitespace().next()?.to_string();
    let out = h.ok(&[
        "inspect",
        "--format",
        // JSON: the timestamp in RFC 3339 (the template's default is Go's own format).
        "{{.Status.State}} {{json .Status.Timestamp}}",
        &id,
    ]);
    let mut parts = out.split_whitespace();
    (parts.next()? == "running").then(|| {
        let at = parts
            .next()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        (id, at)
    })
}

fn address_on(h: &Host, task: &str, network: &str) -> String {
    let format = format!(
        "{{{{range .NetworksAttachments}}}}{{{{if eq .Network.Spec.Name \"{network}\"}}}}{{{{range .Addresses}}}}{{{{.}}}}{{{{end}}}}{{{{end}}}}{{{{end}}}}"
    );
    h.ok(&["inspect", "--format", &format, task])
        .trim()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn vip_on(h: &Host, service: &str, network_id: &str) -> String {
    let format = format!(
        "{{{{range .Endpoint.VirtualIPs}}}}{{{{if eq .NetworkID \"{network_id}\"}}}}{{{{.Addr}}}}{{{{end}}}}{{{{end}}}}"
    );
    h.ok(&["service", "inspect", "--format", &format, service])
        .trim()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn curl_ok(h: &Host, url: &str, timeout: &str) -> bool {
    h.exec("curl", &["-sf", "-o", "/dev/null", "-m", timeout, url])
        .status
        .success()
}

/// `wrk` from host `h`: (requests/s, p99 ms).
fn wrk(h: &Host, url: &str, seconds: u64) -> (f64, f64) {
    let out = h.exec(
        "wrk",
        &["-t1", "-c4", &format!("-d{seconds}s"), "--latency", url],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk {url} failed: {text}");
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| duration_ms(v.trim()))
        .unwrap_or(f64::NAN);
    (rps, p99)
}

/// wrk's `1.23ms` / `456.00us` / `1.02s` in milliseconds.
fn duration_ms(v: &str) -> f64 {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().map(|n| n * factor).unwrap_or(f64::NAN)
}

/// Download speed of `url` from host `h`, MB/s: `streams` downloads at once, all the bytes
/// they received over the time from the first one's start to the last one's end.
///
/// One download leaves this 2-vCPU machine mostly idle (a profile shows the vCPUs halted
/// about 60 % of the time): its speed is set by how fast the client, the server and the
/// softirqs between them wake each other, which varies by a third from one run to the next.
/// Several at once keep the CPUs busy, so the figure is what each path costs per byte.
fn download_mb_s(h: &Host, url: &str, streams: usize) -> f64 {
    let started = Instant::now();
    let children: Vec<_> = (0..streams.max(1))
        .map(|_| {
            h.command("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{size_download}", url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting curl on {}: {e}", h.name))
        })
        .collect();
    let mut bytes = 0.0;
    for child in children {
        let out = child.wait_with_output().expect("waiting for curl");
        assert!(out.status.success(), "downloading {url} failed");
        bytes += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .unwrap_or(0.0);
    }
    bytes / 1e6 / started.elapsed().as_secs_f64()
}

/// Links hosts `a` and `b` by a bare VXLAN device each (id 4242, port 4790, MTU 1450,
/// static neighbour and FDB entries); the URL of host `b`'s busybox httpd over it.
fn raw_vxlan(a: &Host, b: &Host) -> anyhow::Result<String> {
    let ends = [(a, "10.250.0.1", b.ip), (b, "10.250.0.2", a.ip)];
    for (h, addr, _) in ends {
        for args in [
            vec![
                "link",
                "add",
                "vxraw",
                "type",
                "vxlan",
                "id",
                "4242",
                "dstport",
                "4790",
                "nolearning",
            ],
            vec!["link", "set", "vxraw", "mtu", "1450", "up"],
            vec!["addr", "add", &format!("{addr}/24"), "dev", "vxraw"],
        ] {
            let out = h.exec("ip", &args);
            anyhow::ensure!(
                out.status.success(),
                "ip {args:?} on {}: {}",
                h.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // (Not from /sys: the hosts share the machine's sysfs, which shows the root namespace.)
    let mac = |h: &Host| -> String {
        let out = h.exec("ip", &["-j", "link", "show", "vxraw"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v[0]["address"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let macs = [mac(b), mac(a)];
    for (i, (h, _, peer)) in ends.into_iter().enumerate() {
        let peer_addr = if i == 0 { "10.250.0.2" } else { "10.250.0.1" };
        let peer_ip = peer.to_string();
        for (program, args) in [
            (
                "ip",
                vec![
                    "neigh",
                    "add",
                    peer_addr,
                    "lladdr",
                    &macs[i],
                    "dev",
                    "vxraw",
                    "nud",
                    "permanent",
                ],
            ),
            (
                "bridge",
                vec![
                    "fdb",
                    "append",
                    &macs[i],
                    "dev",
                    "vxraw",
                    "dst",
                    &peer_ip,
                    "self",
                    "permanent",
                ],
            ),
        ] {
            let out = h.exec(program, &args);
            anyhow::ensure!(
                out.status.success(),
                "{program} {args:?} on {}: {}",
                h.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok("http://10.250.0.2:8099/big".to_string())
}

/// A helper process that goes when the benchmark does, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_nanos(u64::try_from(t.timestamp_nanos_opt()?).ok()?),
    )
}

/// Runs the benchmark; the report as JSON.
pub fn run(b: NetBench) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let mut hosts = Hosts::start("bn", 3, &exe);
    hosts.start_swarm(1);
    let (h1, h2) = (hosts.host(1), hosts.host(2));
    let net = h1
        .ok(&["network", "create", "-d", "overlay", "benchnet"])
        .trim()
        .to_string();
    h1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "shoal.direct-routing=true",
        "routednet",
    ]);
    let big = format!(
        "mkdir -p /www && echo target > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count={} 2>/dev/null && exec httpd -f -p 80 -h /www",
        b.mib
    );
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "target",
        "--network",
        "benchnet",
        "--constraint",
        "node.hostname==bn2",
        "-p",
        "8080:80",
        IMAGE,
        "sh",
        "-c",
        &big,
    ]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "routed",
        "--network",
        "routednet",
        "--constraint",
        "node.hostname==bn2",
        IMAGE,
        "sh",
        "-c",
        &big,
    ]);
    // On both networks: it gives host 1 its own address on each, as the source of what the
    // host sends into them.
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "benchnet",
        "--network",
        "routednet",
        "--constraint",
        "node.hostname==bn1",
        IMAGE,
        "sleep",
        "1000000",
    ]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "probe",
        "--network",
        "benchnet",
        "--constraint",
        "node.hostname==bn3",
        "--replicas",
        "0",
        IMAGE,
        "sh",
        "-c",
        &httpd("probe"),
    ]);
    let (target, _) = wait_for(Duration::from_secs(120), "the target task", || {
        running_task(h1, "target")
    });
    wait_for(Duration::from_secs(120), "the client task", || {
        running_task(h1, "client")
    });
    let (routed, _) = wait_for(Duration::from_secs(120), "the routed task", || {
        running_task(h1, "routed")
    });
    let direct = format!("http://{}/", address_on(h1, &target, "benchnet"));
    let routed_url = format!("http://{}/big", address_on(h1, &routed, "routednet"));
    wait_for(
        Duration::from_secs(60),
        &format!("the routed task answering at {routed_url}"),
        || curl_ok(h1, &routed_url, "30").then_some(()),
    );
    let vip = format!("http://{}/", vip_on(h1, "target", &net));
    let mesh = format!("http://{}:8080/", h1.ip);
    for url in [&direct, &vip, &mesh] {
        wait_for(
            Duration::from_secs(60),
            &format!("the target answering at {url}"),
            || curl_ok(h1, url, "2").then_some(()),
        );
    }

    // busybox httpd closes every connection, so wrk opens thousands a second: host 1 is
    // tuned as for any load generator (its own namespace only), or its ports and their
    // TIME_WAIT entries run out within seconds and whichever path runs later looks slower.
    let tuned = h1.exec(
        "sysctl",
        &[
            "-w",
            "net.ipv4.tcp_tw_reuse=1",
            "net.ipv4.ip_local_port_range=1024 65000",
        ],
    );
    anyhow::ensure!(
        tuned.status.success(),
        "tuning host 1 as a load generator failed"
    );
    // Requests through each path, `rounds` times, interleaved (this machine is noisy, and the
    // server forks per request): the median of each, and of the per-round ratios.
    let urls = [&direct, &vip, &mesh];
    let mut p99s = vec![Vec::new(); urls.len()];
    // Each path gets ports of its own on host 1. The server closes every connection, so it
    // keeps each one in TIME_WAIT for 60 s; a new connection from the same address and port
    // that comes another way (directly after through the VIP: DNAT gives it the same tuple at
    // the server) carries another path's sequence numbers and timestamps (the kernel derives
    // them from the addresses the client sees), and the server drops its SYN as an old
    // duplicate until the client retries a second later. Real clients do not alternate paths
    // a thousand times a second; the benchmark must not either.
    let port_ranges = ["1024 22000", "22001 43000", "43001 65000"];
    let rps = interleaved(&[0usize, 1, 2], b.rounds, |i| {
        let range = format!("net.ipv4.ip_local_port_range={}", port_ranges[i]);
        let set = h1.exec("sysctl", &["-w", &range]);
        anyhow::ensure!(set.status.success(), "setting {range} on host 1 failed");
        let (rps, p99) = wrk(h1, urls[i], b.seconds);
        p99s[i].push(p99);
        Ok(rps)
    })?;
    let (vip_ratio, vip_ratios) = paired_ratio(&rps[1], &rps[0]);
    let (mesh_ratio, mesh_ratios) = paired_ratio(&rps[2], &rps[0]);

    // Bulk throughput: the overlay against the hosts' own veths, same client and server.
    let served = tempfile::tempdir()?;
    std::fs::File::create(served.path().join("big"))?.set_len(b.mib << 20)?;
    let _httpd_on_host = KillOnDrop(
        h2.command("busybox")
            .args(["httpd", "-f", "-p", "8099", "-h"])
            .arg(served.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let veth_url = format!("http://{}:8099/big", h2.ip);
    wait_for(Duration::from_secs(10), "busybox httpd on host 2", || {
        curl_ok(h1, &veth_url, "30").then_some(())
    });
    let overlay_url = format!("{direct}big");
    // A hand-built VXLAN between the same two hosts at the same MTU, with nothing else on the
    // path (no bridge, no container, no firewall): what the kernel's VXLAN costs here by itself.
    let raw_url = raw_vxlan(h1, h2)?;
    let downloads = [&overlay_url, &veth_url, &raw_url, &routed_url];
    let mb = interleaved(&[0usize, 1, 2, 3], b.rounds, |i| {
        Ok(download_mb_s(h1, downloads[i], b.streams))
    })?;
    let (overlay_ratio, overlay_ratios) = paired_ratio(&mb[0], &mb[1]);
    let (raw_ratio, _) = paired_ratio(&mb[0], &mb[2]);
    let (routed_ratio, routed_ratios) = paired_ratio(&mb[3], &mb[1]);
    // The same with one download at a time (overlay, veth): see [`download_mb_s`].
    let single = interleaved(&[0usize, 1], b.rounds, |i| {
        Ok(download_mb_s(h1, downloads[i], 1))
    })?;
    let (single_ratio, single_ratios) = paired_ratio(&single[0], &single[1]);

    // Programming latency: a new task's RUNNING timestamp to its VIP answering on every host.
    let probe_vip = format!("http://{}/", vip_on(h1, "probe", &net));
    let mut latencies = Latencies::default();
    for _ in 0..b.changes {
        h1.ok(&["service", "scale", "-d", "probe=1"]);
        let answered: Arc<Mutex<Vec<SystemTime>>> = Arc::default();
        std::thread::scope(|scope| {
            for h in &hosts.hosts {
                let answered = answered.clone();
                let url = probe_vip.clone();
                scope.spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while Instant::now() < deadline {
                        if curl_ok(h, &url, "0.5") {
                            answered.lock().unwrap().push(SystemTime::now());
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                });
            }
        });
        let (_, at) = wait_for(Duration::from_secs(60), "the probe task", || {
            running_task(h1, "probe")
        });
        let running = parse_time(&at)
            .ok_or_else(|| anyhow::anyhow!("the probe task's timestamp {at:?} is not RFC 3339"))?;
        let answered = answered.lock().unwrap().clone();
        anyhow::ensure!(
            answered.len() == 3,
            "the probe's VIP did not answer on every host"
        );
        let last = answered.iter().max().copied().unwrap_or(running);
        latencies.record(last.duration_since(running).unwrap_or_default());
        h1.ok(&["service", "scale", "-d", "probe=0"]);
        wait_for(
            Duration::from_secs(60),
            "the probe gone from every host",
            || {
                hosts
                    .hosts
                    .iter()
                    .all(|h| !curl_ok(h, &probe_vip, "0.5"))
                    .then_some(())
            },
        );
    }
    let report = json!({
        "bench": "net",
        "hosts": 3,
        "changes": b.changes,
        "programming_p50_ms": round3(latencies.quantile_ms(0.5)),
        "programming_p99_ms": round3(latencies.quantile_ms(0.99)),
        "programming_max_ms": round3(latencies.max_ms()),
        "rounds": b.rounds,
        "direct_rps": round3(median(&rps[0])),
        "vip_rps": round3(median(&rps[1])),
        "mesh_rps": round3(median(&rps[2])),
        "direct_p99_ms": round3(median(&p99s[0])),
        "vip_p99_ms": round3(median(&p99s[1])),
        "mesh_p99_ms": round3(median(&p99s[2])),
        "vip_vs_direct_rps_ratio": vip_ratio,
        "vip_vs_direct_rps_ratios": vip_ratios,
        "mesh_vs_direct_rps_ratio": mesh_ratio,
        "mesh_vs_direct_rps_ratios": mesh_ratios,
        "streams": b.streams,
        "overlay_mb_per_s": round3(median(&mb[0])),
        "veth_mb_per_s": round3(median(&mb[1])),
        "overlay_vs_veth_ratio": overlay_ratio,
        "overlay_vs_veth_ratios": overlay_ratios,
        "raw_vxlan_mb_per_s": round3(median(&mb[2])),
        "overlay_vs_raw_vxlan_ratio": raw_ratio,
        "direct_routing_mb_per_s": round3(median(&mb[3])),
        "direct_routing_vs_veth_ratio": routed_ratio,
        "direct_routing_vs_veth_ratios": routed_ratios,
        "single_stream_overlay_mb_per_s": round3(median(&single[0])),
        "single_stream_veth_mb_per_s": round3(median(&single[1])),
        "single_stream_overlay_vs_veth_ratio": single_ratio,
        "single_stream_overlay_vs_veth_ratios": single_ratios,
        "overlay_mtu": crate::dataplane::DEFAULT_MTU,
    });
    drop(hosts);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn each_round_rotates_the_order_of_the_paths() {
        let mut order = Vec::new();
        let samples = interleaved(&['a', 'b', 'c'], 3, |p| {
            order.push(p);
            Ok(order.len() as f64)
        })
        .unwrap();
        assert_eq!(order, ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']);
        assert_eq!(
            samples,
            [
                vec![1.0, 6.0, 8.0],
                vec![2.0, 4.0, 9.0],
                vec![3.0, 5.0, 7.0]
            ]
        );
    }

    #[test]
    fn ratios_are_paired_by_round() {
        let (median, each) = paired_ratio(&[2.0, 9.0, 3.0], &[4.0, 10.0, 3.0]);
        assert_eq!(each, [0.5, 0.9, 1.0]);
        assert_eq!(median, 0.9);
    }
}
