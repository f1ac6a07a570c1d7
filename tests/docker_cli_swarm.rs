//! The real `docker` CLI against one `shoal daemon`: swarm lifecycle, `info`, nodes.

mod common;

use common::{message, swarm, Daemon};

#[test]
fn swarm_init_info_and_the_503_gate() {
    let d = Daemon::start("solo");
    // Outside a swarm, manager routes answer Docker's 503 text.
    let err = d.fails(&["node", "ls"]);
    assert!(
        err.contains("This node is not a swarm manager. Use \"docker swarm init\""),
        "{err}"
    );
    let info = d.ok(&["info"]);
    assert!(info.contains("Swarm: inactive"), "{info}");

    let addr = format!("127.0.0.1:{}", d.swarm_port);
    let out = d.ok(&[
        "swarm",
        "init",
        "--listen-addr",
        &addr,
        "--advertise-addr",
        &addr,
    ]);
    assert!(out.contains("Swarm initialized: current node ("), "{out}");
    // The join command needs GET /nodes/<id> and GET /swarm.
    assert!(
        out.contains("docker swarm join --token SWMTKN-1-") && out.contains(&addr),
        "{out}"
    );
    let info = d.ok(&["info"]);
    for want in [
        "Swarm: active",
        "Is Manager: true",
        "Managers: 1",
        "Nodes: 1",
    ] {
        assert!(info.contains(want), "missing {want:?} in:\n{info}");
    }
    let again = d.fails(&["swarm", "init", "--listen-addr", &addr]);
    assert!(
        again.contains("This node is already part of a swarm."),
        "{again}"
    );
}

#[test]
fn node_ls_inspect_and_update() {
    let d = swarm("alpha");
    let id = d.node_id();
    let ls = d.lines(&["node", "ls"]);
    assert_eq!(ls.len(), 2, "{ls:?}");
    assert!(ls[1].starts_with(&format!("{id} *")), "{ls:?}");
    for col in ["alpha", "Ready", "Active", "Leader"] {
        assert!(ls[1].contains(col), "{col} missing from {ls:?}");
    }

    let host = d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Hostname}} {{.Spec.Role}} {{.ManagerStatus.Leader}} {{.ManagerStatus.Reachability}}",
    ]);
    assert_eq!(host.trim(), "alpha manager true reachable");
    // Internal bookkeeping never leaks.
    let raw = d.get_json(&format!("/v1.51/nodes/{id}"));
    assert!(
        raw.get("Role").is_none() && raw.get("RaftID").is_none(),
        "{raw}"
    );
    assert_eq!(
        raw["ManagerStatus"]["Addr"],
        format!("127.0.0.1:{}", d.swarm_port)
    );

    // `self` is resolved by the CLI for inspect and ps only; update takes a name or id.
    d.ok(&["node", "update", "--label-add", "zone=a", "alpha"]);
    d.ok(&["node", "update", "--label-add", "disk=ssd", &id]);
    let labels = d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert_eq!(labels.trim(), r#"{"disk":"ssd","zone":"a"}"#);
    let filtered = d.lines(&["node", "ls", "-q", "--filter", "node.label=zone=a"]);
    assert_eq!(filtered, vec![id.clone()]);
    assert!(d
        .lines(&["node", "ls", "-q", "--filter", "node.label=zone=b"])
        .is_empty());
    assert_eq!(
        d.lines(&["node", "ls", "-q", "--filter", "role=manager"]),
        vec![id.clone()]
    );
    assert!(d
        .lines(&["node", "ls", "-q", "--filter", "role=worker"])
        .is_empty());

    d.ok(&["node", "update", "--availability", "drain", "alpha"]);
    let ls = d.ok(&["node", "ls"]);
    assert!(ls.contains("Drain"), "{ls}");
    d.ok(&["node", "update", "--availability", "active", &id[..6]]);

    let promoted = d.ok(&["node", "promote", "alpha"]);
    assert!(promoted.contains("is already a manager"), "{promoted}");
    let err = d.fails(&["node", "demote", "alpha"]);
    assert!(
        err.contains("rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm"),
        "{err}"
    );
    let err = d.fails(&["node", "rm", "--force", &id]);
    assert!(
        err.contains("is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"),
        "{err}"
    );
    let err = d.fails(&["node", "inspect", "nosuch"]);
    assert!(err.contains("node nosuch not found"), "{err}");

    // A node spec without a role is refused and changes nothing.
    let version = raw["Version"]["Index"].as_u64().unwrap();
    let current = d.get_json(&format!("/nodes/{id}"))["Version"]["Index"]
        .as_u64()
        .unwrap();
    assert!(current > version);
    let spec_before = d.get_json(&format!("/nodes/{id}"))["Spec"].clone();
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/nodes/{id}/update?version={current}"),
        Some(br#"{"Labels":{"a":"b"}}"#),
    );
    assert_eq!((status, message(&body)), (400, "invalid Role: \"\"".into()));
    let (status, body) = d.curl(
        "GET",
        "/v1.51/nodes?filters=%7B%22role%22%3A%7B%22boss%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(
        (status, message(&body)),
        (500, "Invalid role filter: 'boss'".into())
    );
    // The spec is unchanged (the dispatcher may record the node's status meanwhile).
    let after = d.get_json(&format!("/nodes/{id}"));
    assert_eq!(after["Spec"], spec_before);
}

#[test]
fn join_token_rotation_and_swarm_update() {
    let d = swarm("rot");
    let worker = d.ok(&["swarm", "join-token", "-q", "worker"]);
    let manager = d.ok(&["swarm", "join-token", "-q", "manager"]);
    let out = d.ok(&["swarm", "join-token", "--rotate", "worker"]);
    assert!(
        out.contains("Successfully rotated worker join token."),
        "{out}"
    );
    let worker2 = d.ok(&["swarm", "join-token", "-q", "worker"]);
    let manager2 = d.ok(&["swarm", "join-token", "-q", "manager"]);
    assert_ne!(worker.trim(), worker2.trim());
    assert_eq!(manager.trim(), manager2.trim());
    assert!(worker2.starts_with("SWMTKN-1-"), "{worker2}");

    let out = d.ok(&["swarm", "update", "--task-history-limit", "3"]);
    assert!(out.contains("Swarm updated."), "{out}");
    let info = d.ok(&["info"]);
    assert!(info.contains("Task History Retention Limit: 3"), "{info}");
    let spec = d.ok(&["swarm", "update", "--dispatcher-heartbeat", "7s"]);
    assert!(spec.contains("Swarm updated."), "{spec}");
    let hb = d.get_json("/swarm")["Spec"]["Dispatcher"]["HeartbeatPeriod"].as_i64();
    assert_eq!(hb, Some(7_000_000_000));
}

#[test]
fn a_node_read_right_after_init_can_be_updated_with_its_version() {
    // docker-py's test_update_node: init, list the nodes, update the node with the version
    // just read. The node's registration by its own agent must be done before init answers,
    // or the version read is about to move and the update is "out of sequence".
    let d = Daemon::start("settled");
    let addr = format!("127.0.0.1:{}", d.swarm_port);
    let init = format!(r#"{{"ListenAddr":"{addr}","AdvertiseAddr":"127.0.0.1"}}"#);
    let (status, body) = d.curl("POST", "/v1.51/swarm/init", Some(init.as_bytes()));
    assert_eq!(status, 200, "{body}");
    let nodes = d.get_json("/v1.51/nodes");
    let node = &nodes[0];
    let version = node["Version"]["Index"].as_u64().expect("a version");
    let mut spec = node["Spec"].clone();
    spec["Labels"] = serde_json::json!({"new.label": "new value"});
    let path = format!(
        "/v1.51/nodes/{}/update?version={version}",
        node["ID"].as_str().unwrap()
    );
    let (status, body) = d.curl("POST", &path, Some(spec.to_string().as_bytes()));
    assert_eq!(
        status, 200,
        "update with the version read after init: {body}"
    );
    let updated = d.get_json(&format!("/v1.51/nodes/{}", node["ID"].as_str().unwrap()));
    assert_eq!(updated["Spec"], spec);
}
