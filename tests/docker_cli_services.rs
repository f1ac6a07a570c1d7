//! The real `docker` CLI against one `shoal daemon`: services end to end, the documented error
//! cases, and bad input that must change nothing.

mod common;

use std::time::Duration;

use common::{message, swarm, wait_for, wait_for_tasks, Daemon};
use serde_json::{json, Value};

const IMAGE: &str = "shoal-test/busybox:1";

fn create(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sleep", "100000"]);
    let id = d.ok(&args).trim().to_string();
    assert_eq!(id.len(), 25, "service id: {id}");
    id
}

fn version_of(d: &Daemon, service: &str) -> u64 {
    d.get_json(&format!("/services/{service}"))["Version"]["Index"]
        .as_u64()
        .expect("a version")
}

fn service_names(d: &Daemon) -> Vec<String> {
    let mut names = d.lines(&["service", "ls", "--format", "{{.Name}}"]);
    names.sort();
    names
}

#[test]
fn service_create_ls_inspect_update_scale_rollback_rm() {
    let d = swarm("svc");
    let id = create(&d, "web", &["--replicas", "3", "--label", "tier=front"]);

    let ls = d.lines(&["service", "ls"]);
    assert_eq!(ls.len(), 2, "{ls:?}");
    for col in [&id[..12], "web", "replicated", "/3", IMAGE] {
        assert!(ls[1].contains(col), "{col} missing from {ls:?}");
    }
    let pretty = d.ok(&["service", "inspect", "--pretty", "web"]);
    for want in [
        &format!("ID:\t\t{id}") as &str,
        "Name:\t\tweb",
        "tier=front",
        "Replicated",
        "Replicas:\t3",
        &format!("Image:\t\t{IMAGE}"),
        "Args:\t\tsleep 100000",
    ] {
        assert!(pretty.contains(want), "missing {want:?} in:\n{pretty}");
    }
    // The spec comes back as dockerd shows it: defaults inserted on inspect, internal fields
    // never.
    let raw = d.get_json(&format!("/v1.51/services/{id}?insertDefaults=true"));
    assert_eq!(raw["Spec"]["TaskTemplate"]["Runtime"], "container");
    assert_eq!(
        raw["Spec"]["TaskTemplate"]["ContainerSpec"]["Isolation"],
        "default"
    );
    assert_eq!(
        raw["Spec"]["RollbackConfig"],
        json!({"Parallelism":1,"FailureAction":"pause","Monitor":5000000000u64,"MaxFailureRatio":0,"Order":"stop-first"})
    );
    assert!(raw.get("SpecVersion").is_none() && raw.get("ServiceStatus").is_none());
    let plain = d.get_json(&format!("/v1.51/services/{id}"));
    assert!(plain["Spec"].get("RollbackConfig").is_none(), "{plain}");
    let listed = d.get_json("/v1.51/services?status=true");
    assert_eq!(listed[0]["ServiceStatus"]["DesiredTasks"], 3);
    let old_api = d.get_json("/v1.40/services?status=true");
    assert!(old_api[0].get("ServiceStatus").is_none());

    let v1 = version_of(&d, "web");
    assert_eq!(
        d.ok(&[
            "service",
            "update",
            "-d",
            "--no-resolve-image",
            "--image",
            "shoal-test/busybox:2",
            "web"
        ])
        .trim(),
        "web"
    );
    let v2 = version_of(&d, "web");
    assert!(v2 > v1);
    let svc = d.get_json("/services/web");
    assert_eq!(
        svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"],
        "shoal-test/busybox:2"
    );
    assert_eq!(
        svc["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"],
        IMAGE
    );

    let scaled = d.ok(&["service", "scale", "-d", "web=5"]);
    assert!(scaled.contains("web scaled to 5"), "{scaled}");
    let replicas = d.ok(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ]);
    assert_eq!(replicas.trim(), "5");
    let ls = d.ok(&["service", "ls"]);
    assert!(ls.contains("/5"), "{ls}");

    // Rollback swaps back to the spec before the last update (the scale).
    let out = d.ok(&["service", "rollback", "-d", "web"]);
    assert!(out.contains("web"), "{out}");
    let after = d.get_json("/services/web");
    assert_eq!(after["Spec"]["Mode"]["Replicated"]["Replicas"], 3);
    assert_eq!(after["PreviousSpec"]["Mode"]["Replicated"]["Replicas"], 5);
    assert!(
        after["UpdateStatus"]["State"]
            .as_str()
            .is_some_and(|s| s.starts_with("rollback")),
        "{after}"
    );
    let msg = after["UpdateStatus"]["Message"].as_str().unwrap_or("");
    assert!(
        msg == "manually requested rollback" || msg == "rollback completed",
        "{msg}"
    );

    let rm = d.ok(&["service", "rm", "web"]);
    assert_eq!(rm.trim(), "web");
    assert!(service_names(&d).is_empty());
}

#[test]
fn service_defaults_modes_and_filters() {
    let d = swarm("modes");
    // No name: a random docker-like one; no mode: one replica.
    let (status, body) = d.curl(
        "POST",
        "/v1.51/services/create",
        Some(br#"{"TaskTemplate":{"ContainerSpec":{"Image":"alpine:3.10","Command":["echo","hello"],"Args":null}}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["Warnings"], Value::Null);
    let svc = d.get_json(&format!("/services/{}", created["ID"].as_str().unwrap()));
    let name = svc["Spec"]["Name"].as_str().unwrap();
    assert!(
        name.contains('_') && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "{name}"
    );
    assert_eq!(svc["Spec"]["Mode"], json!({"Replicated":{"Replicas":1}}));
    // The random name could start with any prefix the filters below test ("glad_..." matches
    // `name=gl`), so it leaves before they run.
    d.ok(&["service", "rm", name]);

    create(&d, "glob", &["--mode", "global"]);
    // The CLI sends MaxConcurrent = replicas for jobs; the server defaults MaxConcurrent to 1
    // when only TotalCompletions is given.
    create(&d, "job", &["--mode", "replicated-job", "--replicas", "5"]);
    let (status, body) = d.curl(
        "POST",
        "/v1.51/services/create",
        Some(br#"{"Name":"job2","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"ReplicatedJob":{"TotalCompletions":5}}}"#),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        d.get_json("/services/job2")["Spec"]["Mode"],
        json!({"ReplicatedJob":{"MaxConcurrent":1,"TotalCompletions":5}})
    );
    let job = d.get_json("/services/job");
    assert_eq!(
        job["Spec"]["Mode"],
        json!({"ReplicatedJob":{"MaxConcurrent":5,"TotalCompletions":5}})
    );
    assert!(job.get("JobStatus").is_some(), "{job}");

    let q = |f: &str| -> Vec<String> {
        let mut v = d.lines(&["service", "ls", "--format", "{{.Name}}", "--filter", f]);
        v.sort();
        v
    };
    assert_eq!(q("mode=global"), vec!["glob"]);
    assert_eq!(q("mode=replicated-job"), vec!["job", "job2"]);
    assert_eq!(q("name=gl"), vec!["glob"]);
    let gid = d.ok(&["service", "inspect", "glob", "--format", "{{.ID}}"]);
    assert_eq!(q(&format!("id={}", &gid[..5])), vec!["glob"]);
    create(&d, "lab", &["--label", "team=a"]);
    assert_eq!(q("label=team"), vec!["lab"]);
    assert_eq!(q("label=team=a"), vec!["lab"]);
    assert!(q("label=team=b").is_empty());

    // A mode change or a rename is refused.
    let v = version_of(&d, "glob");
    let mut spec = d.get_json("/services/glob")["Spec"].clone();
    spec["Mode"] = json!({"Replicated":{"Replicas":2}});
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/services/glob/update?version={v}"),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 501, "{body}");
    assert_eq!(
        message(&body),
        "rpc error: code = Unimplemented desc = service mode change is not allowed"
    );
    let mut spec = d.get_json("/services/glob")["Spec"].clone();
    spec["Name"] = json!("renamed");
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/services/glob/update?version={v}"),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 501);
    assert_eq!(
        message(&body),
        "rpc error: code = Unimplemented desc = renaming services is not supported"
    );
    let gid = gid.trim();
    let spec = d.get_json("/services/glob")["Spec"].clone();
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/services/{gid}/update?version={v}&rollback=previous"),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        format!("rpc error: code = FailedPrecondition desc = service {gid} does not have a previous spec")
    );
}

/// The version guards the spec: an update that read the current spec goes through after the
/// update supervisor wrote the rollout's status (swarmkit would call it out of sequence, and
/// docker-py's network-change test hit that), one that missed a spec change does not.
#[test]
fn an_update_that_read_the_current_spec_is_not_refused_for_rollout_status_writes() {
    let d = swarm("specver");
    create(&d, "web", &["--update-monitor", "1s"]);
    wait_for_tasks(&d, "web", 1);
    let before = version_of(&d, "web");
    d.ok(&["service", "update", "-d", "--env-add", "A=1", "web"]);
    let read = version_of(&d, "web");
    // The supervisor writes the rollout's status (updating, then completed after the monitor
    // period), each write a new version of the service.
    let spec = d.get_json("/services/web")["Spec"].clone();
    wait_for(Duration::from_secs(60), "the update to complete", || {
        let svc = d.get_json("/services/web");
        (svc["UpdateStatus"]["State"] == "completed" && version_of(&d, "web") > read).then_some(())
    });
    assert_eq!(d.get_json("/services/web")["Spec"], spec);
    // The bookkeeping behind it stays out of the Docker API's answer.
    assert!(d.get_json("/services/web").get("SpecRevision").is_none());

    let mut newer = spec.clone();
    newer["Labels"] = json!({"read": "after the spec change"});
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/services/web/update?version={read}"),
        Some(newer.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        d.get_json("/services/web")["Spec"]["Labels"]["read"],
        "after the spec change"
    );

    // A client that read before either spec change is refused, and nothing changes.
    let mut stale = spec.clone();
    stale["Labels"] = json!({"read": "before"});
    for version in [before, read] {
        let (status, body) = d.curl(
            "POST",
            &format!("/v1.51/services/web/update?version={version}"),
            Some(stale.to_string().as_bytes()),
        );
        assert_eq!(status, 500, "version {version}: {body}");
        assert_eq!(
            message(&body),
            "rpc error: code = Unknown desc = update out of sequence"
        );
    }
    assert_eq!(
        d.get_json("/services/web")["Spec"]["Labels"]["read"],
        "after the spec change"
    );
    // A version the service never had yet is refused too.
    let ahead = version_of(&d, "web") + 1000;
    let (status, _) = d.curl(
        "POST",
        &format!("/v1.51/services/web/update?version={ahead}"),
        Some(stale.to_string().as_bytes()),
    );
    assert_ne!(status, 200);
}

#[test]
fn documented_errors_for_names_versions_constraints_ids_and_prefixes() {
    let d = swarm("errs");
    create(&d, "web", &[]);
    let err = d.fails(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "WEB",
        IMAGE,
    ]);
    assert!(
        err.contains("Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service WEB already exists"),
        "{err}"
    );
    // Lookup is case-sensitive even though names are unique case-insensitively.
    let err = d.fails(&["service", "update", "-d", "--replicas", "2", "WEB"]);
    assert!(err.contains("service WEB not found"), "{err}");

    // A stale version: the update is refused and nothing changes.
    let v = version_of(&d, "web");
    d.ok(&[
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--env-add",
        "A=1",
        "web",
    ]);
    let current = version_of(&d, "web");
    assert!(current > v);
    let spec = d.get_json("/services/web")["Spec"].clone();
    let (status, body) = d.curl(
        "POST",
        &format!("/v1.51/services/web/update?version={v}"),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        message(&body),
        "rpc error: code = Unknown desc = update out of sequence"
    );
    let (status, body) = d.curl(
        "POST",
        "/v1.51/services/web/update?version=abc",
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        "invalid service version 'abc': strconv.ParseUint: parsing \"abc\": invalid syntax"
    );
    // Nothing changed (the updater may write the status meanwhile, so compare the spec).
    assert_eq!(d.get_json("/services/web")["Spec"], spec);

    let err = d.fails(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "bad",
        "--constraint",
        "node.role=manager",
        IMAGE,
    ]);
    assert!(
        err.contains("Error response from daemon: rpc error: code = Unknown desc = constraint expected one operator from ==, !="),
        "{err}"
    );
    let err = d.fails(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "bad_",
        IMAGE,
    ]);
    assert!(
        err.contains(
            "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"
        ),
        "{err}"
    );
    assert_eq!(service_names(&d), vec!["web"]);

    // Published ports: ingress ports without a published port get one from 30000-32767, and
    // another service may not publish a port in use.
    let pid = create(&d, "ports", &["--publish", "8080:80", "--publish", "9090"]);
    let ls = d.ok(&["service", "ls", "--filter", "name=ports"]);
    assert!(
        ls.contains("*:8080->80/tcp") && ls.contains("*:30000->9090/tcp"),
        "{ls}"
    );
    let err = d.fails(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "clash",
        "--publish",
        "8080:81",
        IMAGE,
    ]);
    assert!(
        err.contains(&format!(
            "rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'ports' ({pid}) as an ingress port"
        )),
        "{err}"
    );
    d.ok(&["service", "rm", "ports"]);

    let err = d.fails(&["service", "update", "-d", "--replicas", "2", "nosuch"]);
    assert!(
        err.contains("Error response from daemon: service nosuch not found"),
        "{err}"
    );
    let err = d.fails(&["service", "rm", "nosuch"]);
    assert!(err.contains("service nosuch not found"), "{err}");
    let err = d.fails(&["service", "inspect", "nosuch"]);
    assert!(err.contains("no such service: nosuch"), "{err}");
    let (status, body) = d.curl("GET", "/v1.51/tasks/nosuch", None);
    assert_eq!(
        (status, message(&body)),
        (404, "task nosuch not found".into())
    );

    // Create services until two ids share a first character, then use it as a prefix.
    let mut ids = vec![d
        .ok(&["service", "inspect", "web", "--format", "{{.ID}}"])
        .trim()
        .to_string()];
    let prefix = loop {
        let shared = ids.iter().find_map(|a| {
            let c = &a[..1];
            (ids.iter().filter(|b| b.starts_with(c)).count() >= 2).then(|| c.to_string())
        });
        if let Some(p) = shared {
            break p;
        }
        ids.push(create(&d, &format!("p{}", ids.len()), &[]));
    };
    let n = ids.iter().filter(|i| i.starts_with(&prefix)).count();
    let err = d.fails(&["service", "update", "-d", "--replicas", "2", &prefix]);
    assert!(
        err.contains(&format!(
            "Error response from daemon: service {prefix} is ambiguous ({n} matches found)"
        )),
        "{err}"
    );
    // A unique prefix works.
    let unique = ids.iter().find_map(|id| {
        (1..25)
            .map(|len| &id[..len])
            .find(|p| ids.iter().filter(|o| o.starts_with(p)).count() == 1)
    });
    let unique = unique.expect("a unique prefix");
    let name = d.ok(&["service", "inspect", unique, "--format", "{{.Spec.Name}}"]);
    assert!(!name.trim().is_empty());
}

#[test]
fn bad_input_gets_a_4xx_and_changes_nothing() {
    let d = swarm("bad");
    create(&d, "keep", &[]);
    // Compare what users own: the controllers may write status fields meanwhile.
    let specs = || -> Vec<(Value, Value)> {
        let list = d.get_json("/services");
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| (s["ID"].clone(), s["Spec"].clone()))
            .collect()
    };
    let before = specs();
    let post = |body: &[u8]| d.curl("POST", "/v1.51/services/create", Some(body));

    let (status, body) = post(b"{\"Name\": bad json");
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("invalid JSON: "), "{body}");

    let (status, body) = d.curl_typed(
        "POST",
        "/v1.51/services/create",
        Some(br#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}"#),
        Some("text/plain"),
    );
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        "unsupported Content-Type header (text/plain): must be 'application/json'"
    );

    let (status, body) = d.curl(
        "GET",
        "/v1.51/services?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(
        (status, message(&body)),
        (400, "invalid filter 'bogus'".into())
    );

    let cases: &[(&str, &str)] = &[
        (
            r#"{"Name":"neg","TaskTemplate":{"ContainerSpec":{"Image":"busybox"},"RestartPolicy":{"Delay":-1}}}"#,
            "rpc error: code = InvalidArgument desc = TaskSpec: restart-delay cannot be negative",
        ),
        (
            r#"{"Name":"neg","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"UpdateConfig":{"Delay":-5}}"#,
            "rpc error: code = InvalidArgument desc = TaskSpec: update-delay cannot be negative",
        ),
        (
            r#"{"Name":"neg","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"RollbackConfig":{"Monitor":-5}}"#,
            "rpc error: code = InvalidArgument desc = TaskSpec: update-monitor cannot be negative",
        ),
        (
            r#"{"Name":"ratio","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"UpdateConfig":{"MaxFailureRatio":2}}"#,
            "rpc error: code = InvalidArgument desc = TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1",
        ),
        (
            r#"{"Name":"noimage","TaskTemplate":{"ContainerSpec":{}}}"#,
            "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided",
        ),
        (
            r#"{"Name":"badimage","TaskTemplate":{"ContainerSpec":{"Image":"Bad Image"}}}"#,
            "rpc error: code = InvalidArgument desc = ContainerSpec: \"Bad Image\" is not a valid repository/tag",
        ),
        (
            r#"{"Name":"nospec","TaskTemplate":{}}"#,
            "mismatched Runtime and *Spec fields",
        ),
        (
            r#"{"Name":"two","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"Replicated":{},"Global":{}}}"#,
            "must specify only one service mode",
        ),
        (
            r#"{"Name":"mounts","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Mounts":[{"Type":"tmpfs","Target":"/x"},{"Type":"tmpfs","Target":"/x"}]}}}"#,
            "rpc error: code = InvalidArgument desc = ContainerSpec: duplicate mount point: /x",
        ),
        (
            r#"{"Name":"ports","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"EndpointSpec":{"Ports":[{"TargetPort":80,"PublishedPort":8080},{"TargetPort":81,"PublishedPort":8080}]}}"#,
            "rpc error: code = InvalidArgument desc = EndpointSpec: duplicate published ports provided",
        ),
        (
            r#"{"Name":"sec","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Secrets":[{"File":{"Name":"s","UID":"0","GID":"0","Mode":292},"SecretName":"nosuch"}]}}}"#,
            "rpc error: code = InvalidArgument desc = secret not found: nosuch",
        ),
        (
            r#"{"Name":"net","TaskTemplate":{"ContainerSpec":{"Image":"busybox"},"Networks":[{"Target":"nosuchnet"}]}}"#,
            "network nosuchnet not found",
        ),
        (
            r#"{"Name":"mem","TaskTemplate":{"ContainerSpec":{"Image":"busybox"},"Resources":{"Reservations":{"MemoryBytes":100}}}}"#,
            "rpc error: code = InvalidArgument desc = invalid memory value 100: Must be at least 4MiB",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = post(body.as_bytes());
        assert!((400..500).contains(&status), "{body} -> {status} {answer}");
        assert_eq!(&message(&answer), want, "for {body}");
    }

    // An oversized request body, and a spec under the body limit but over the spec limit.
    let huge = format!(
        r#"{{"Name":"huge","TaskTemplate":{{"ContainerSpec":{{"Image":"busybox","Env":["X={}"]}}}}}}"#,
        "x".repeat(5 << 20)
    );
    let (status, _) = post(huge.as_bytes());
    assert_eq!(status, 413);
    let big = format!(
        r#"{{"Name":"big","TaskTemplate":{{"ContainerSpec":{{"Image":"busybox","Env":["X={}"]}}}}}}"#,
        "x".repeat(1 << 20)
    );
    let (status, body) = post(big.as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("byte limit"), "{body}");

    // A stale update of `keep` changes nothing either.
    let (status, _) = d.curl(
        "POST",
        "/v1.51/services/keep/update?version=1",
        Some(br#"{"Name":"keep","TaskTemplate":{"ContainerSpec":{"Image":"busybox:2"}}}"#),
    );
    assert_eq!(status, 500);
    assert_eq!(specs(), before);
}

/// Needs the controllers: a service gets one task per replica and `service ps` lists them.
#[test]
fn service_ps_lists_tasks_and_task_filters_work() {
    let d = swarm("tasks");
    create(&d, "web", &["--replicas", "2"]);
    let ids = wait_for_tasks(&d, "web", 2);
    let ps = d.ok(&["service", "ps", "web"]);
    assert!(ps.contains("web.1") && ps.contains("web.2"), "{ps}");
    // The tasks exist before the scheduler places them: `node ps` lists them once placed.
    wait_for(
        Duration::from_secs(30),
        "both tasks placed on this node",
        || {
            let node_ps = d.ok(&["node", "ps", "self"]);
            (node_ps.contains("web.1") && node_ps.contains("web.2")).then_some(())
        },
    );

    let task = d.get_json(&format!("/tasks/{}", ids[0]));
    assert!(task.get("SpecVersion").is_none(), "{task}");
    assert!(task.get("ServiceName").is_none(), "{task}");
    // `Volumes` (cluster volumes) came with API 1.42: dockerd 20.10 (1.41) has no such field.
    assert!(task.as_object().unwrap().contains_key("Volumes"), "{task}");
    let at_141 = d.get_json(&format!("/v1.41/tasks/{}", ids[0]));
    assert!(at_141.get("Volumes").is_none(), "{at_141}");
    let listed = d.get_json("/v1.41/tasks");
    assert!(listed[0].get("Volumes").is_none(), "{listed}");
    let sid = task["ServiceID"].as_str().unwrap().to_string();
    let slot = task["Slot"].as_u64().unwrap();
    let full = format!("web.{slot}.{}", ids[0]);
    assert_eq!(d.get_json(&format!("/tasks/{full}"))["ID"], task["ID"]);

    let filtered = |f: Value| -> Vec<Value> {
        let q = urlencode(&f.to_string());
        d.get_json(&format!("/v1.51/tasks?filters={q}"))
            .as_array()
            .cloned()
            .unwrap()
    };
    assert_eq!(filtered(json!({"service":{"web":true}})).len(), 2);
    assert_eq!(filtered(json!({"service":{&sid[..6]:true}})).len(), 2);
    assert_eq!(filtered(json!({"name":{"web.":true}})).len(), 2);
    assert_eq!(filtered(json!({"name":{&full:true}})).len(), 1);
    assert_eq!(filtered(json!({"id":{&ids[0][..8]:true}})).len(), 1);
    assert_eq!(filtered(json!({"desired-state":{"running":true}})).len(), 2);
    assert_eq!(
        filtered(json!({"_up-to-date":{"true":true},"service":{&sid:true}})).len(),
        2
    );
    assert_eq!(
        filtered(json!({"node":{"tasks":true},"service":{"web":true}})).len(),
        2
    );

    // After an update the old tasks are no longer up to date.
    d.ok(&[
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--env-add",
        "X=1",
        "web",
    ]);
    wait_for(Duration::from_secs(30), "replacement tasks", || {
        let fresh = filtered(json!({"_up-to-date":{"true":true},"service":{&sid:true}}));
        fresh
            .iter()
            .all(|t| t["Spec"]["ContainerSpec"]["Env"] == json!(["X=1"]))
            .then_some(())
    });
}

/// Needs the controllers and agents: without `-d` the CLI follows the service's tasks until
/// they run (polling `_up-to-date` tasks and nodes) and reports convergence.
#[test]
fn create_and_update_without_detach_wait_for_convergence() {
    let d = swarm("progress");
    let out = d.docker(&[
        "service",
        "create",
        "--no-resolve-image",
        "--name",
        "conv",
        "--replicas",
        "2",
        "--update-monitor",
        "1s",
        IMAGE,
        "sleep",
        "100000",
    ]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verify: Service"), "{}", out.stdout);
    assert!(out.stdout.contains("converged"), "{}", out.stdout);
    let ls = d.ok(&["service", "ls", "--filter", "name=conv"]);
    assert!(ls.contains("2/2"), "{ls}");
    let out = d.docker(&[
        "service",
        "update",
        "--no-resolve-image",
        "--env-add",
        "X=1",
        "conv",
    ]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("converged"), "{}", out.stdout);
    // The updater marks the update completed after its own monitor period.
    wait_for(Duration::from_secs(30), "the update to complete", || {
        let state = d.ok(&[
            "service",
            "inspect",
            "conv",
            "--format",
            "{{.UpdateStatus.State}}",
        ]);
        (state.trim() == "completed").then_some(())
    });
}

/// Needs the agents: `docker service logs` shows what the tasks wrote, from both streams, with
/// the CLI's task context (it asks for details and resolves them).
#[test]
fn service_logs_show_task_output() {
    let d = Daemon::start_with_executor("logs", "process");
    d.init_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "lg",
        "--restart-condition",
        "none",
        IMAGE,
        "sh",
        "-c",
        "echo hello-from-shoal; echo oops >&2",
    ]);
    let out = wait_for(Duration::from_secs(30), "both log lines", || {
        let out = d.docker(&["service", "logs", "lg"]);
        (out.ok && out.stdout.contains("hello-from-shoal") && out.stderr.contains("oops"))
            .then_some(out)
    });
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("hello-from-shoal"))
        .unwrap();
    assert!(
        line.starts_with("lg.1.") && line.contains("@logs"),
        "{line}"
    );
    let raw = d.ok(&["service", "logs", "--raw", "-t", "lg"]);
    assert!(
        raw.lines()
            .any(|l| l.ends_with(" hello-from-shoal") && l.contains('T')),
        "{raw}"
    );
    let task = d.ok(&["service", "ps", "-q", "lg"]);
    let out = d.docker(&["service", "logs", task.trim()]);
    assert!(out.stdout.contains("hello-from-shoal"), "{}", out.stdout);
    let (status, body) = d.curl("GET", "/v1.51/services/lg/logs", None);
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "Bad parameters: you must choose at least one stream".into()
        )
    );
    let err = d.fails(&["service", "logs", "nosuch"]);
    assert!(err.contains("no such task or service: nosuch"), "{err}");
}

#[test]
fn task_filter_errors() {
    let d = swarm("tferr");
    let q = |f: &str| {
        d.curl(
            "GET",
            &format!("/v1.51/tasks?filters={}", urlencode(f)),
            None,
        )
    };
    let (status, body) = q(r#"{"service":{"nosuch":true}}"#);
    assert_eq!(
        (status, message(&body)),
        (404, "service nosuch not found".into())
    );
    let (status, body) = q(r#"{"node":{"nosuch":true}}"#);
    assert_eq!(
        (status, message(&body)),
        (404, "node nosuch not found".into())
    );
    let (status, body) = q(r#"{"desired-state":{"bogus":true}}"#);
    assert_eq!(
        (status, message(&body)),
        (500, "Invalid desired-state filter: 'bogus'".into())
    );
    let (status, body) = q(r#"{"bogus":{"x":true}}"#);
    assert_eq!(
        (status, message(&body)),
        (400, "invalid filter 'bogus'".into())
    );
    let (status, body) = d.curl("GET", "/v1.51/tasks", None);
    assert_eq!((status, body.trim()), (200, "[]"));
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
