//! The real `docker` CLI against one `shoal daemon`: networks, secrets, configs, stacks and
//! events.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{message, swarm, wait_for_tasks, Daemon};
use serde_json::{json, Value};

const IMAGE: &str = "shoal-test/busybox:1";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn networks_create_ls_inspect_rm() {
    let d = swarm("nets");
    let id = d.ok(&[
        "network", "create", "-d", "overlay", "--label", "team=a", "appnet",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 25, "{id}");
    let ls = d.ok(&["network", "ls", "--filter", "name=appnet"]);
    assert!(
        ls.contains(&id[..12])
            && ls.contains("appnet")
            && ls.contains("overlay")
            && ls.contains("swarm"),
        "{ls}"
    );
    assert_eq!(
        d.lines(&["network", "ls", "-q", "--filter", "label=team=a"]),
        vec![id[..12].to_string()]
    );
    let inspect = d.ok(&[
        "network",
        "inspect",
        "appnet",
        "--format",
        "{{.Id}} {{.Scope}} {{.Driver}} {{.Labels.team}}",
    ]);
    assert_eq!(inspect.trim(), format!("{id} swarm overlay a"));
    // Allocated as dockerd shows it: the next /24 of the default pool after ingress's, a VXLAN id.
    let ipam = d.ok(&[
        "network",
        "inspect",
        "appnet",
        "--format",
        "{{json .IPAM.Config}} {{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
    ]);
    assert_eq!(
        ipam.trim(),
        r#"[{"Subnet":"10.0.1.0/24","Gateway":"10.0.1.1"}] 4097"#
    );
    let err = d.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.0.0/16",
        "wide",
    ]);
    assert!(
        err.contains("Pool overlaps with other one on this address space"),
        "{err}"
    );
    let err = d.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--ingress",
        "ingress2",
    ]);
    assert!(
        err.contains("ingress network") && err.contains("is already present"),
        "{err}"
    );
    let err = d.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "sec",
    ]);
    assert!(
        err.contains("encrypted overlay networks are not supported"),
        "{err}"
    );
    let custom = d.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.99.0.0/24",
        "--gateway",
        "10.99.0.254",
        "custom",
    ]);
    let custom_ipam = d.ok(&[
        "network",
        "inspect",
        "custom",
        "--format",
        "{{json .IPAM.Config}}",
    ]);
    assert_eq!(
        custom_ipam.trim(),
        r#"[{"Subnet":"10.99.0.0/24","Gateway":"10.99.0.254"}]"#
    );
    d.ok(&["network", "rm", custom.trim()]);
    let (status, body) = d.curl(
        "GET",
        &format!("/v1.51/networks/{}?scope=swarm", &id[..8]),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // Fields newer than the client's API version are not shown (EnableIPv4 came in 1.48).
    let old = d.get_json(&format!("/v1.41/networks/{id}"));
    assert!(old.get("EnableIPv4").is_none(), "{old}");
    assert!(old.get("EnableIPv6").is_some(), "{old}");
    let new = d.get_json(&format!("/v1.48/networks/{id}"));
    assert_eq!(new["EnableIPv4"], true, "{new}");
    let listed = d.get_json("/v1.41/networks");
    assert!(listed[0].get("EnableIPv4").is_none(), "{listed}");

    let err = d.fails(&["network", "create", "-d", "overlay", "appnet"]);
    assert!(
        err.contains("network with name appnet already exists"),
        "{err}"
    );
    // The CLI's default driver is bridge, a node-local network shoal does not keep.
    let err = d.fails(&["network", "create", "localnet"]);
    assert!(err.contains("driver \"bridge\" is not supported"), "{err}");

    // A service refers to the network by name; the server stores its id.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "netsvc",
        "--network",
        "appnet",
        IMAGE,
    ]);
    let target = &d.get_json("/services/netsvc")["Spec"]["TaskTemplate"]["Networks"][0]["Target"];
    assert_eq!(target, &json!(id));
    let (status, body) = d.curl(
        "POST",
        "/v1.51/services/create",
        Some(br#"{"Name":"byname","TaskTemplate":{"ContainerSpec":{"Image":"busybox"},"Networks":[{"Target":"appnet","Aliases":["x"]}]}}"#),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        d.get_json("/services/byname")["Spec"]["TaskTemplate"]["Networks"],
        json!([{"Target": id, "Aliases": ["x"]}])
    );
    let err = d.fails(&["network", "rm", "appnet"]);
    assert!(
        err.contains(&format!("network {id} is in use by service")),
        "{err}"
    );
    d.ok(&["service", "rm", "netsvc", "byname"]);
    assert_eq!(d.ok(&["network", "rm", "appnet"]).trim(), "appnet");
    // What swarm init made stays: the routing-mesh network.
    assert_eq!(
        d.lines(&["network", "ls", "--format", "{{.Name}}"]),
        ["ingress"]
    );
    let err = d.fails(&["network", "inspect", "appnet"]);
    assert!(err.contains("network appnet not found"), "{err}");
}

#[test]
fn secrets_and_configs_create_ls_inspect_update_rm() {
    let d = swarm("secrets");
    let sid = d.docker_stdin(
        &["secret", "create", "--label", "a=1", "mysecret", "-"],
        Some(b"s3cr3t"),
    );
    assert!(sid.ok, "{}", sid.stderr);
    let sid = sid.stdout.trim().to_string();
    let ls = d.ok(&["secret", "ls"]);
    assert!(ls.contains("mysecret") && ls.contains(&sid[..12]), "{ls}");
    let raw = d.get_json(&format!("/v1.51/secrets/{sid}"));
    assert_eq!(raw["Spec"]["Name"], "mysecret");
    assert!(
        raw["Spec"].get("Data").is_none(),
        "secret data leaked: {raw}"
    );
    assert_eq!(
        d.get_json("/secrets?filters=%7B%22names%22%3A%5B%22mysecret%22%5D%7D")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let dup = d.docker_stdin(&["secret", "create", "mysecret", "-"], Some(b"x"));
    assert!(!dup.ok);
    assert!(
        dup.stderr
            .contains("rpc error: code = AlreadyExists desc = secret mysecret already exists"),
        "{}",
        dup.stderr
    );

    // Only labels may change.
    let version = raw["Version"]["Index"].as_u64().unwrap();
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/secrets/{sid}/update?version={version}"),
        Some(br#"{"Name":"mysecret","Labels":{"a":"2"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        d.get_json("/secrets/mysecret")["Spec"]["Labels"],
        json!({"a":"2"})
    );
    let version = d.get_json("/secrets/mysecret")["Version"]["Index"]
        .as_u64()
        .unwrap();
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/secrets/{sid}/update?version={version}"),
        Some(br#"{"Name":"mysecret","Labels":{},"Data":"b3RoZXI="}"#),
    );
    assert_eq!(
        (status, message(&body)),
        (
            400,
            "rpc error: code = InvalidArgument desc = only updates to Labels are allowed".into()
        )
    );

    let cid = d.docker_stdin(&["config", "create", "myconfig", "-"], Some(b"key=value\n"));
    assert!(cid.ok, "{}", cid.stderr);
    let data = d.ok(&[
        "config",
        "inspect",
        "myconfig",
        "--format",
        "{{json .Spec.Data}}",
    ]);
    assert_eq!(data.trim(), "\"a2V5PXZhbHVlCg==\"");
    assert!(d.ok(&["config", "ls"]).contains("myconfig"));

    d.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "user",
        "--secret",
        "mysecret",
        "--config",
        "myconfig",
        IMAGE,
    ]);
    let c = &d.get_json("/services/user")["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Secrets"][0]["SecretID"], json!(sid));
    let err = d.fails(&["secret", "rm", "mysecret"]);
    assert!(
        err.contains("rpc error: code = InvalidArgument desc = secret 'mysecret' is in use by the following service: user"),
        "{err}"
    );
    let err = d.fails(&["config", "rm", "myconfig"]);
    assert!(
        err.contains("config 'myconfig' is in use by the following service: user"),
        "{err}"
    );
    d.ok(&["service", "rm", "user"]);
    assert_eq!(d.ok(&["secret", "rm", "mysecret"]).trim(), "mysecret");
    assert_eq!(d.ok(&["config", "rm", "myconfig"]).trim(), "myconfig");
    assert!(d.lines(&["secret", "ls", "-q"]).is_empty());
    assert!(d.lines(&["config", "ls", "-q"]).is_empty());
    let err = d.fails(&["secret", "inspect", "mysecret"]);
    assert!(err.contains("secret mysecret not found"), "{err}");
}

const COMPOSE: &str = r#"
version: "3.8"
services:
  web:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    environment:
      FOO: bar
    deploy:
      replicas: 2
      labels:
        tier: front
    networks:
      front:
        aliases: [web]
    secrets: [mysecret]
    configs: [myconfig]
  worker:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    deploy:
      mode: global
networks:
  front: {}
secrets:
  mysecret:
    file: ./secret.txt
configs:
  myconfig:
    file: ./config.txt
"#;

fn deploy_stack(d: &Daemon) -> String {
    d.write_file("secret.txt", "s3cr3t\n");
    d.write_file("config.txt", "key=value\n");
    let compose = d.write_file("compose.yml", COMPOSE);
    let compose = compose.to_str().unwrap();
    let out = d.docker(&["stack", "deploy", "-c", compose, "st"]);
    assert!(
        out.ok,
        "stack deploy failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    out.stdout
}

#[test]
fn stack_deploy_ls_services_rm() {
    let d = swarm("stack");
    let out = deploy_stack(&d);
    for want in [
        "Creating network st_front",
        "Creating network st_default",
        "Creating secret st_mysecret",
        "Creating config st_myconfig",
        "Creating service st_web",
        "Creating service st_worker",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let ls = d.lines(&["stack", "ls"]);
    assert_eq!(ls.len(), 2, "{ls:?}");
    assert!(ls[1].starts_with("st") && ls[1].contains('2'), "{ls:?}");
    let services = d.ok(&["stack", "services", "st"]);
    assert!(
        services.contains("st_web") && services.contains("/2"),
        "{services}"
    );
    assert!(
        services.contains("st_worker") && services.contains("global"),
        "{services}"
    );

    // Names in the compose file became ids on the server.
    let web = d.get_json("/services/st_web");
    let front = d.get_json("/networks/st_front");
    let nets = &web["Spec"]["TaskTemplate"]["Networks"];
    assert_eq!(nets[0]["Target"], front["Id"], "{nets}");
    assert!(
        nets[0]["Aliases"]
            .as_array()
            .unwrap()
            .contains(&json!("web")),
        "{nets}"
    );
    assert_eq!(web["Spec"]["Labels"]["com.docker.stack.namespace"], "st");

    // Deploying again updates in place (secrets and configs are "updated" with the same spec).
    let again = deploy_stack(&d);
    assert!(again.contains("Updating service st_web"), "{again}");
    let web2 = d.get_json("/services/st_web");
    assert!(web2["Version"]["Index"].as_u64() > web["Version"]["Index"].as_u64());

    let rm = d.ok(&["stack", "rm", "st"]);
    for want in [
        "Removing service st_web",
        "Removing service st_worker",
        "Removing secret st_mysecret",
        "Removing config st_myconfig",
        "Removing network st_front",
        "Removing network st_default",
    ] {
        assert!(rm.contains(want), "missing {want:?} in:\n{rm}");
    }
    assert!(d.lines(&["service", "ls", "-q"]).is_empty());
    assert_eq!(
        d.lines(&["network", "ls", "--format", "{{.Name}}"]),
        ["ingress"]
    );
    assert!(d.lines(&["secret", "ls", "-q"]).is_empty());
    let ls = d.ok(&["stack", "ls"]);
    assert_eq!(ls.lines().count(), 1, "{ls}");
}

/// Needs the controllers: `docker stack ps` lists the stack's tasks.
#[test]
fn stack_ps_lists_tasks() {
    let d = swarm("stackps");
    deploy_stack(&d);
    wait_for_tasks(&d, "st_web", 2);
    let ps = d.ok(&["stack", "ps", "st"]);
    assert!(ps.contains("st_web.1") && ps.contains("st_web.2"), "{ps}");
    assert!(ps.contains("st_worker."), "{ps}");
}

fn events_between(d: &Daemon, since: f64, until: f64, filters: &[&str]) -> Vec<Value> {
    let since = format!("{since:.9}");
    let until = format!("{until:.9}");
    let mut args = vec![
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{json .}}",
    ];
    for f in filters {
        args.push("--filter");
        args.push(f);
    }
    d.lines(&args)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn events_replay_filter_and_stream() {
    let d = swarm("events");
    let t0 = now_secs() - 1.0;
    d.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "ev",
        IMAGE,
    ]);
    d.ok(&[
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--image",
        "shoal-test/busybox:2",
        "ev",
    ]);
    d.ok(&["service", "scale", "-d", "ev=3"]);
    d.ok(&["service", "rm", "ev"]);
    d.ok(&["network", "create", "-d", "overlay", "evnet"]);
    d.ok(&["node", "update", "--availability", "pause", "events"]);
    let t1 = now_secs() + 0.5;

    let all = events_between(&d, t0, t1, &["scope=swarm"]);
    let find = |kind: &str, action: &str| -> Vec<&Value> {
        all.iter()
            .filter(|e| e["Type"] == kind && e["Action"] == action)
            .collect()
    };
    let created = find("service", "create");
    assert_eq!(created.len(), 1, "{all:?}");
    assert_eq!(created[0]["Actor"]["Attributes"]["name"], "ev");
    assert_eq!(created[0]["scope"], "swarm");
    let updates = find("service", "update");
    assert!(
        updates
            .iter()
            .any(|e| e["Actor"]["Attributes"]["image.old"] == IMAGE
                && e["Actor"]["Attributes"]["image.new"] == "shoal-test/busybox:2"),
        "{updates:?}"
    );
    assert!(
        updates
            .iter()
            .any(|e| e["Actor"]["Attributes"]["replicas.old"] == "1"
                && e["Actor"]["Attributes"]["replicas.new"] == "3"),
        "{updates:?}"
    );
    assert_eq!(find("service", "remove").len(), 1, "{all:?}");
    // (The first network event is the ingress network swarm init creates.)
    assert!(
        find("network", "create")
            .iter()
            .any(|e| e["Actor"]["Attributes"]["name"] == "evnet"),
        "{all:?}"
    );
    assert!(
        find("node", "update")
            .iter()
            .any(|e| e["Actor"]["Attributes"]["availability.old"] == "active"
                && e["Actor"]["Attributes"]["availability.new"] == "pause"),
        "{all:?}"
    );

    let nets = events_between(&d, t0, t1, &["type=network"]);
    assert!(
        !nets.is_empty() && nets.iter().all(|e| e["Type"] == "network"),
        "{nets:?}"
    );
    let removes = events_between(&d, t0, t1, &["type=service", "event=remove"]);
    assert_eq!(removes.len(), 1, "{removes:?}");
    assert!(events_between(&d, t0, t1, &["type=container"]).is_empty());

    // Live: a watcher started now sees a service created after it.
    let mut child = Command::new("docker")
        .args([
            "events",
            "--filter",
            "type=service",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker events");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watcher is connected once the CLI's request reached the server; give it a moment by
    // retrying the create until its event arrives.
    let mut seen = false;
    for i in 0..20 {
        let name = format!("live{i}");
        d.ok(&[
            "service",
            "create",
            "-d",
            "--no-resolve-image",
            "--name",
            &name,
            IMAGE,
        ]);
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
            assert!(line.starts_with("create live"), "{line}");
            seen = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "no live event arrived");
}
