//! The data plane across three hosts (network namespaces with their own engine and shoal
//! daemon, `tests/hosts`): the routing mesh answers on a host that runs no task, a service on
//! host 1 reaches a service on hosts 2-3 by its VIP and `tasks.<name>`, dnsrr lists the tasks,
//! scaling down leaves no failing request once settled, an agent restart does not interrupt
//! traffic, and removing everything leaves nothing behind on any host. A network with direct
//! routing reaches the other host's endpoints by plain routing, without NAT, and masquerades
//! only what leaves the network.

mod hosts;
mod probe;

use std::collections::BTreeSet;
use std::time::Duration;

use hosts::{wait_for, Host, IMAGE};
use probe::{httpd, nslookup_addresses, wget_args};

/// `curl url` from host `h`'s namespace.
fn curl_on(h: &Host, url: &str) -> Option<String> {
    let out = h.exec("curl", &["-s", "-m", "2", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The engine container of `service`'s task on host `h`.
fn container_on(h: &Host, service: &str) -> String {
    wait_for(Duration::from_secs(60), "the task's container", || {
        let out = h.engine(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .map(str::to_string)
    })
}

/// `nslookup name` in container `c` on host `h`.
fn lookup(h: &Host, c: &str, name: &str) -> BTreeSet<String> {
    let out = h.engine(&["exec", c, "nslookup", name]);
    nslookup_addresses(&String::from_utf8_lossy(&out.stdout))
}

/// `http://target/` fetched from container `c` on host `h`.
fn wget(h: &Host, c: &str, target: &str) -> Option<String> {
    let mut args = vec!["exec".to_string(), c.to_string()];
    args.extend(wget_args(target));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = h.engine(&args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn nodes_of(h: &Host, service: &str) -> BTreeSet<String> {
    h.ok(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
        service,
    ])
    .lines()
    .filter(|l| l.contains("Running"))
    .filter_map(|l| l.split_whitespace().next().map(str::to_string))
    .collect()
}

fn vip_of(h: &Host, service: &str) -> String {
    h.ok(&[
        "service",
        "inspect",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}",
        service,
    ])
    .split_whitespace()
    .last()
    .expect("a VIP")
    .split('/')
    .next()
    .unwrap()
    .to_string()
}

#[test]
fn three_hosts_share_the_routing_mesh_names_and_vips() {
    // One manager and two workers: the workers' data plane follows the leader's stream.
    let mut hosts = hosts::start("mh", 3);
    hosts.start_swarm(1);
    let h1 = hosts.host(1);

    // Routing mesh: two replicas on hosts 2 and 3 answer on host 1's published port.
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--constraint",
        "node.hostname!=mh1",
        "-p",
        "8080:80",
        IMAGE,
        "sh",
        "-c",
        &httpd("web"),
    ]);
    wait_for(Duration::from_secs(90), "web on mh2 and mh3", || {
        (nodes_of(h1, "web") == BTreeSet::from(["mh2".to_string(), "mh3".to_string()]))
            .then_some(())
    });
    let url = format!("http://{}:8080/", h1.ip);
    let seen = wait_for(
        Duration::from_secs(60),
        "both web tasks through host 1",
        || {
            let seen: BTreeSet<String> = (0..30).filter_map(|_| curl_on(h1, &url)).collect();
            (seen.len() == 2).then_some(seen)
        },
    );
    assert!(seen.iter().all(|b| b.starts_with("web-")), "{seen:?}");
    let local = curl_on(h1, "http://127.0.0.1:8080/").expect("127.0.0.1 on host 1 answers too");
    assert!(local.starts_with("web-"), "{local}");

    // Names and VIPs across hosts.
    h1.ok(&["network", "create", "-d", "overlay", "appnet"]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "--network",
        "appnet",
        "--replicas",
        "2",
        "--constraint",
        "node.hostname!=mh1",
        IMAGE,
        "sh",
        "-c",
        &httpd("api"),
    ]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "rr",
        "--network",
        "appnet",
        "--endpoint-mode",
        "dnsrr",
        "--replicas",
        "2",
        "--constraint",
        "node.hostname!=mh1",
        IMAGE,
        "sleep",
        "100000",
    ]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "cli",
        "--network",
        "appnet",
        "--constraint",
        "node.hostname==mh1",
        IMAGE,
        "sleep",
        "100000",
    ]);
    let cli = container_on(h1, "cli");
    wait_for(Duration::from_secs(90), "api on mh2 and mh3", || {
        (nodes_of(h1, "api") == BTreeSet::from(["mh2".to_string(), "mh3".to_string()]))
            .then_some(())
    });
    let vip = vip_of(h1, "api");
    assert_eq!(lookup(h1, &cli, "api"), BTreeSet::from([vip.clone()]));
    let tasks = wait_for(
        Duration::from_secs(60),
        "tasks.api lists both tasks",
        || {
            let t = lookup(h1, &cli, "tasks.api");
            (t.len() == 2).then_some(t)
        },
    );
    for ip in &tasks {
        let body =
            wget(h1, &cli, ip).unwrap_or_else(|| panic!("task {ip} on another host answers"));
        assert!(body.starts_with("api-"), "{body}");
    }
    let bodies = wait_for(
        Duration::from_secs(30),
        "the VIP spreading over both hosts",
        || {
            let b: BTreeSet<String> = (0..20).filter_map(|_| wget(h1, &cli, &vip)).collect();
            (b.len() == 2).then_some(b)
        },
    );
    assert!(bodies.iter().all(|b| b.starts_with("api-")), "{bodies:?}");
    wait_for(Duration::from_secs(60), "rr lists its two tasks", || {
        (lookup(h1, &cli, "rr").len() == 2).then_some(())
    });

    // A killed task leaves DNS and the VIP (and its replacement joins them).
    let victim_host = hosts.hosts.iter().find(|h| h.name == "mh2").expect("mh2");
    let victim = container_on(victim_host, "api");
    let victim_ip = String::from_utf8_lossy(
        &victim_host
            .engine(&[
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                &victim,
            ])
            .stdout,
    )
    .split_whitespace()
    .find(|ip| tasks.contains(*ip))
    .expect("the killed task's address")
    .to_string();
    victim_host.engine(&["kill", &victim]);
    wait_for(
        Duration::from_secs(60),
        "the killed task out of DNS",
        || (!lookup(h1, &cli, "tasks.api").contains(&victim_ip)).then_some(()),
    );
    wait_for(Duration::from_secs(90), "its replacement in DNS", || {
        (lookup(h1, &cli, "tasks.api").len() == 2).then_some(())
    });
    let failed = (0..20).filter(|_| wget(h1, &cli, &vip).is_none()).count();
    assert_eq!(
        failed, 0,
        "requests through the VIP failed after a task was killed"
    );

    // Scaling down: once settled, DNS lists one task and no request through the VIP fails.
    h1.ok(&["service", "scale", "-d", "api=1"]);
    wait_for(Duration::from_secs(60), "one api task in DNS", || {
        (lookup(h1, &cli, "tasks.api").len() == 1).then_some(())
    });
    let failed = (0..20).filter(|_| wget(h1, &cli, &vip).is_none()).count();
    assert_eq!(
        failed, 0,
        "requests through the VIP failed after scaling down"
    );

    // An agent restart does not interrupt traffic: the kernel keeps forwarding meanwhile.
    let api_host = nodes_of(h1, "api").into_iter().next().expect("api runs");
    let k: usize = api_host.trim_start_matches("mh").parse().unwrap();
    hosts.host_mut(k).kill_shoal();
    let h1 = hosts.host(1);
    let failed = (0..10).filter(|_| wget(h1, &cli, &vip).is_none()).count();
    assert_eq!(failed, 0, "traffic stopped while mh{k}'s shoal was down");
    hosts.host_mut(k).start_shoal();
    let h1 = hosts.host(1);
    let failed = (0..10).filter(|_| wget(h1, &cli, &vip).is_none()).count();
    assert_eq!(failed, 0, "traffic stopped after mh{k}'s shoal restarted");

    // Removing everything leaves nothing on any host.
    remove_everything(&hosts, &["web", "api", "rr", "cli"], "appnet");
}

/// Removes `services` and then `network` through host 1, makes every host leave the swarm, and
/// checks that no host keeps anything of the data plane.
fn remove_everything(hosts: &hosts::Hosts, services: &[&str], network: &str) {
    let h1 = hosts.host(1);
    let mut rm = vec!["service", "rm"];
    rm.extend_from_slice(services);
    h1.ok(&rm);
    wait_for(Duration::from_secs(90), "every task container gone", || {
        hosts
            .hosts
            .iter()
            .all(|h| {
                let out = h.engine(&["ps", "-aq", "--filter", "label=com.docker.swarm.task"]);
                String::from_utf8_lossy(&out.stdout).trim().is_empty()
            })
            .then_some(())
    });
    h1.ok(&["network", "rm", network]);
    for h in hosts.hosts.iter().rev() {
        h.ok(&["swarm", "leave", "--force"]);
    }
    let left = wait_for(Duration::from_secs(60), "no leftovers on any host", || {
        let left = hosts.leftovers();
        left.is_empty().then_some(left)
    });
    assert!(left.is_empty());
}

/// The address busybox httpd's CGI saw the request come from (`REMOTE_ADDR`, without the
/// brackets and IPv4-mapped prefix of its IPv6 socket).
fn remote_addr(answer: &str) -> String {
    let a = answer.trim().trim_start_matches('[').trim_end_matches(']');
    a.trim_start_matches("::ffff:").to_string()
}

/// A busybox httpd CGI script that answers the caller's address.
const CALLER_SCRIPT: &str = "#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n";

/// A task's shell command that serves [`CALLER_SCRIPT`] as `/cgi-bin/ip` on port 80.
fn echo_caller() -> String {
    format!("mkdir -p /www/cgi-bin && printf '%s' '{CALLER_SCRIPT}' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www")
}

/// The address of `container` on host `h` on the engine network of swarm network `network`.
fn container_address(h: &Host, container: &str, network: &str) -> String {
    let format = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}";
    let out = h.engine(&["inspect", "--format", format, container]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.starts_with(&format!("shoal_{network}_"))
                .then(|| v.to_string())
        })
        .unwrap_or_else(|| panic!("{container} has no address on {network}"))
}

#[test]
fn direct_routing_reaches_the_other_host_without_vxlan_or_nat() {
    let mut hosts = hosts::start("dr", 2);
    hosts.start_swarm(1);
    let (h1, h2) = (hosts.host(1), hosts.host(2));

    let refused = h1.docker(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "shoal.direct-routing=maybe",
        "badnet",
    ]);
    assert!(
        !refused.status.success(),
        "a bad direct-routing value was accepted"
    );
    let refused = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        refused.contains("shoal.direct-routing") && refused.contains("neither true nor false"),
        "{refused}"
    );

    h1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "shoal.direct-routing=true",
        "routed",
    ]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "echo",
        "--network",
        "routed",
        "--constraint",
        "node.hostname==dr2",
        IMAGE,
        "sh",
        "-c",
        &echo_caller(),
    ]);
    h1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "cli",
        "--network",
        "routed",
        "--constraint",
        "node.hostname==dr1",
        IMAGE,
        "sleep",
        "100000",
    ]);
    let cli = container_on(h1, "cli");
    let echo = container_on(h2, "echo");
    let cli_ip = container_address(h1, &cli, "routed");
    let echo_ip = container_address(h2, &echo, "routed");
    let fetch = |h: &Host, c: &str, url: &str| -> Option<String> {
        let out = h.engine(&["exec", c, "timeout", "3", "wget", "-q", "-O", "-", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };

    // The task on host 2 by its address and through its VIP: it sees the caller's own address.
    let seen = wait_for(
        Duration::from_secs(60),
        "the echo task answering the client directly",
        || fetch(h1, &cli, &format!("http://{echo_ip}/cgi-bin/ip")),
    );
    assert_eq!(remote_addr(&seen), cli_ip, "the routed request was NATed");
    let vip = vip_of(h1, "echo");
    assert_eq!(lookup(h1, &cli, "echo"), BTreeSet::from([vip.clone()]));
    let seen = wait_for(
        Duration::from_secs(30),
        "the echo task through its VIP",
        || fetch(h1, &cli, &format!("http://{vip}/cgi-bin/ip")),
    );
    // As over VXLAN, a load-balanced connection is SNATed to the client node's own address
    // on the network, so the reply comes back through that node's conntrack entry.
    let via_vip = remote_addr(&seen);
    assert!(
        via_vip != cli_ip
            && via_vip.rsplit_once('.').map(|p| p.0) == cli_ip.rsplit_once('.').map(|p| p.0),
        "the VIP's backend saw {via_vip}, not host 1's address on the network"
    );

    // Routed, not tunnelled: a route to the task via host 2, and no VXLAN entry for it.
    let routes = String::from_utf8_lossy(
        &h1.exec(
            "ip",
            &[
                "route",
                "show",
                "proto",
                shoal::dataplane::links::ROUTE_PROTO,
            ],
        )
        .stdout,
    )
    .to_string();
    assert!(
        routes.contains(&format!("{echo_ip} via {}", h2.ip)),
        "no direct route to {echo_ip} via {}: {routes}",
        h2.ip
    );
    let fdb = String::from_utf8_lossy(&h1.exec("bridge", &["fdb", "show"]).stdout).to_string();
    let echo_mac = shoal::dataplane::links::mac_of(echo_ip.parse().unwrap());
    assert!(
        !fdb.contains(&echo_mac),
        "the routed endpoint is still on the VXLAN device: {fdb}"
    );

    // What leaves the network is masqueraded as before: host 2 itself sees host 1's address.
    let served = tempfile::tempdir().unwrap();
    std::fs::create_dir(served.path().join("cgi-bin")).unwrap();
    let script = served.path().join("cgi-bin/ip");
    std::fs::write(&script, CALLER_SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut host_httpd = h2
        .command("busybox")
        .args(["httpd", "-f", "-p", "8097", "-h"])
        .arg(served.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = wait_for(
        Duration::from_secs(30),
        "host 2 answering the client",
        || fetch(h1, &cli, &format!("http://{}:8097/cgi-bin/ip", h2.ip)),
    );
    let _ = host_httpd.kill();
    let _ = host_httpd.wait();
    assert_eq!(
        remote_addr(&seen),
        h1.ip.to_string(),
        "traffic leaving the network was not masqueraded"
    );

    // Removing everything leaves no route (nor anything else) behind.
    remove_everything(&hosts, &["echo", "cli"], "routed");
}
