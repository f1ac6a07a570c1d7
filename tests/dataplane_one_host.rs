//! The data plane on one host, as a new user meets it: a published port answers on localhost and
//! spreads over the replicas, host-mode ports bind, services reach each other by name and VIP
//! on an overlay network (`tasks.<name>`, dnsrr), scaling down takes a task out of DNS, a stack
//! with a secret works end to end, and removing everything leaves no bridge, VXLAN device,
//! engine network or nftables table behind.

mod agents_common;
mod probe;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use agents_common::{engine, free_port, require_engine, wait_for, Swarm, IMAGE};
use probe::{httpd, nslookup_addresses, wget_args};

fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-m", "2", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The engine container of the service's only running task.
fn container_of(service_id: &str) -> String {
    wait_for(Duration::from_secs(60), "the service's container", || {
        agents_common::running_task_containers(service_id)
            .first()
            .map(|(id, _)| id.clone())
    })
}

/// `nslookup name` inside container `c`.
fn lookup(c: &str, name: &str) -> BTreeSet<String> {
    nslookup_addresses(&engine(&["exec", c, "nslookup", name]).stdout)
}

/// `http://target/` fetched from container `c`.
fn wget(c: &str, target: &str) -> Option<String> {
    let mut args = vec!["exec".to_string(), c.to_string()];
    args.extend(wget_args(target));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = engine(&args);
    out.ok.then(|| out.stdout.trim().to_string())
}

fn task_addresses(m: &agents_common::Node, service: &str, network: &str) -> BTreeSet<String> {
    let ids = m.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        service,
    ]);
    ids.split_whitespace()
        .flat_map(|id| {
            let format = format!(
                "{{{{range .NetworksAttachments}}}}{{{{if eq .Network.Spec.Name \"{network}\"}}}}{{{{range .Addresses}}}}{{{{.}}}} {{{{end}}}}{{{{end}}}}{{{{end}}}}"
            );
            m.ok(&["inspect", "--format", &format, id])
                .split_whitespace()
                .map(|a| a.split('/').next().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn published_ports_names_and_vips_work_on_one_host_and_leave_nothing_behind() {
    require_engine();
    let swarm = Swarm::start("dp1", 1, 0);
    let m = swarm.manager();
    let node_id = m
        .ok(&["info", "--format", "{{.Swarm.NodeID}}"])
        .trim()
        .to_string();

    // Routing mesh: a published port answers on localhost and on the host's own address, and
    // the requests reach every replica.
    let port = free_port();
    m.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "-p",
        &format!("{port}:80"),
        IMAGE,
        "sh",
        "-c",
        &httpd("web"),
    ]);
    let seen = wait_for(
        Duration::from_secs(90),
        "3 replicas answering on the published port",
        || {
            let mut seen = BTreeSet::new();
            for _ in 0..40 {
                if let Some(body) = curl(&format!("http://127.0.0.1:{port}/")) {
                    seen.insert(body);
                }
            }
            (seen.len() == 3).then_some(seen)
        },
    );
    assert!(seen.iter().all(|b| b.starts_with("web-")), "{seen:?}");
    let vip = m.ok(&[
        "service",
        "inspect",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
        "web",
    ]);
    assert!(vip.trim().ends_with("/24"), "web has an ingress VIP: {vip}");

    // Host mode: the engine binds the port on the task's node.
    let host_port = free_port();
    m.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "hostmode",
        "--publish",
        &format!("mode=host,target=80,published={host_port}"),
        IMAGE,
        "sh",
        "-c",
        &httpd("host"),
    ]);
    let body = wait_for(Duration::from_secs(60), "the host-mode port", || {
        curl(&format!("http://127.0.0.1:{host_port}/"))
    });
    assert!(body.starts_with("host-"), "{body}");

    // Names and VIPs on an overlay network.
    m.ok(&["network", "create", "-d", "overlay", "appnet"]);
    m.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "--network",
        "appnet",
        "--replicas",
        "2",
        IMAGE,
        "sh",
        "-c",
        &httpd("api"),
    ]);
    m.ok(&[
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
        IMAGE,
        "sleep",
        "100000",
    ]);
    m.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "cli",
        "--network",
        "appnet",
        IMAGE,
        "sleep",
        "100000",
    ]);
    let cli = container_of(&swarm.service_id("cli"));
    let api_vip = m
        .ok(&[
            "service",
            "inspect",
            "--format",
            "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
            "api",
        ])
        .trim()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let api_tasks = wait_for(Duration::from_secs(60), "api's two tasks in DNS", || {
        let want = task_addresses(m, "api", "appnet");
        (want.len() == 2 && lookup(&cli, "tasks.api") == want).then_some(want)
    });
    assert_eq!(
        lookup(&cli, "api"),
        BTreeSet::from([api_vip.clone()]),
        "api resolves to its VIP"
    );
    // (The test image's static busybox crashes resolving names itself: names are checked
    // with nslookup above, connections go to the address it answered.)
    let bodies: BTreeSet<String> = (0..20).filter_map(|_| wget(&cli, &api_vip)).collect();
    assert!(
        bodies.len() == 2 && bodies.iter().all(|b| b.starts_with("api-")),
        "the VIP spreads over both tasks: {bodies:?}"
    );
    let by_vip = wget(&cli, &api_vip).expect("the VIP answers");
    assert!(by_vip.starts_with("api-"), "{by_vip}");
    wait_for(Duration::from_secs(60), "rr's two task addresses", || {
        let want = task_addresses(m, "rr", "appnet");
        (want.len() == 2 && lookup(&cli, "rr") == want).then_some(())
    });

    // Scaling down takes the task out of DNS.
    m.ok(&["service", "scale", "-d", "api=1"]);
    let left = wait_for(Duration::from_secs(60), "one api task in DNS", || {
        let now = lookup(&cli, "tasks.api");
        (now.len() == 1).then_some(now)
    });
    assert!(left.is_subset(&api_tasks), "{left:?} ⊄ {api_tasks:?}");

    // Everything goes: no bridge, VXLAN device or engine network of this node stays.
    // A stack: web publishes a port, reads a secret and asks api, by name, for the rest.
    let stack_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greeting.txt"), "hello-from-the-secret\n").unwrap();
    // A CGI script: the secret, then api's answer (found with nslookup: the test image's
    // static busybox cannot resolve names through libc).
    std::fs::write(
        dir.path().join("app.sh"),
        "#!/bin/sh\necho 'Content-type: text/plain'\necho\ncat /run/secrets/greeting\nip=$(nslookup api | awk '/^Address: /{print $2}' | tail -1)\nwget -O - http://$ip/ 2>/dev/null\n",
    )
    .unwrap();
    let compose = format!(
        r#"version: "3.8"
services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["{stack_port}:80"]
    secrets: [greeting]
    configs:
      - source: app
        target: /www/cgi-bin/app
        mode: 0755
    networks: [back]
  api:
    image: {IMAGE}
    command: ["sh", "-c", "{api}"]
    networks: [back]
secrets:
  greeting:
    file: ./greeting.txt
configs:
  app:
    file: ./app.sh
networks:
  back: {{}}
"#,
        api = httpd("stackapi").replace('$', "$$")
    );
    let file = dir.path().join("stack.yml");
    std::fs::write(&file, compose).unwrap();
    m.ok(&["stack", "deploy", "-c", file.to_str().unwrap(), "st"]);
    let answer = wait_for(
        Duration::from_secs(90),
        "the stack's web answering with the secret and api's reply",
        || {
            curl(&format!("http://127.0.0.1:{stack_port}/cgi-bin/app"))
                .filter(|b| b.contains("stackapi-"))
        },
    );
    assert!(answer.starts_with("hello-from-the-secret"), "{answer}");
    m.ok(&["stack", "rm", "st"]);

    m.ok(&["service", "rm", "web", "hostmode", "api", "rr", "cli"]);
    wait_for(
        Duration::from_secs(60),
        "the services' containers gone",
        || {
            let left = engine(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.swarm.node.id={node_id}"),
            ]);
            left.stdout.trim().is_empty().then_some(())
        },
    );
    m.ok(&["network", "rm", "appnet"]);
    wait_for(
        Duration::from_secs(60),
        "no engine network or link of this node",
        || {
            let nets = engine(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=io.shoal.node.id={node_id}"),
            ]);
            let links = Command::new("ip")
                .args(["-d", "link", "show"])
                .output()
                .unwrap();
            let links = String::from_utf8_lossy(&links.stdout).to_string();
            (nets.stdout.trim().is_empty() && !links.contains(&format!("shoal:{node_id}:")))
                .then_some(())
        },
    );
    m.ok(&["swarm", "leave", "--force"]);
    let table = format!("shoal_{}", &node_id[..12]);
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains(&table),
        "leaving the swarm removes the node's nftables table"
    );
}
