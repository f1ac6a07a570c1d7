//! `shoal apply`, `plan`, `diff`, `rollback` and `history` against one daemon: a stack in one
//! revision, re-applies that change nothing, rolling only what changed, prune, adoption of what
//! `docker stack deploy` made, ownership, plan tokens, versioned secrets, bad files, and a
//! rollout that ends rolled back or failed (the real engine, an image that cannot be pulled),
//! retired secret revisions removed with the history that kept them, and every service's
//! health in `shoal status`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{wait_for, Daemon};
use serde_json::Value;

const STACK: &str = r#"
version: "3.8"
services:
  web:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    networks: [back]
    secrets: [token]
    configs:
      - source: conf
        target: /etc/app.conf
        mode: 0440
  api:
    image: shoal-test/busybox:${API_TAG:-1}
    command: ["sleep", "100000"]
    networks: [back]
    deploy:
      replicas: 2
  worker:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
networks:
  back: {}
secrets:
  token:
    file: ./token.txt
configs:
  conf:
    file: ./app.conf
"#;

/// A stack directory: the compose file and the files it names.
fn stack_dir(compose: &str, token: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), compose).unwrap();
    std::fs::write(dir.path().join("token.txt"), token).unwrap();
    std::fs::write(dir.path().join("app.conf"), "x=1\n").unwrap();
    dir
}

/// Runs `shoal <args>` against `d` with `env` set.
fn shoal(d: &Daemon, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args)
        .env("SHOAL_HOST", format!("unix://{}", d.socket.display()))
        .env_remove("API_TAG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("shoal runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `shoal apply -o json` of `dir` as stack `name`; the answer.
fn apply(d: &Daemon, dir: &Path, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let file = dir.join("docker-compose.yml");
    let mut args = vec![
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--stack",
        name,
        "--no-wait",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = shoal(d, &args, env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn actions(applied: &Value) -> Vec<(String, String)> {
    let plan = if applied.get("plan").is_some() {
        &applied["plan"]
    } else {
        applied
    };
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn action_of(applied: &Value, name: &str) -> String {
    actions(applied)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("{name} is not in the plan: {applied}"))
}

/// The health of `service` in a list of health objects, if its Ready condition holds.
fn ready_health<'a>(all: &'a Value, service: &str) -> Option<&'a Value> {
    let h = all
        .as_array()?
        .iter()
        .find(|h| h["ServiceName"] == service)?;
    h["Conditions"]
        .as_array()?
        .iter()
        .any(|c| c["Type"] == "Ready" && c["Status"] == true)
        .then_some(h)
}

fn version(d: &Daemon, path: &str) -> u64 {
    d.get_json(path)["Version"]["Index"].as_u64().unwrap()
}

/// Ids of the service's tasks that are meant to run.
fn running_task_ids(d: &Daemon, service: &str) -> Vec<String> {
    let mut ids = d.lines(&[
        "service",
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        service,
    ]);
    // `service ps --format {{.ID}}` shows short ids; compare those.
    ids.iter_mut().for_each(|id| id.truncate(12));
    ids.sort();
    ids
}

fn all_running(d: &Daemon, service: &str, n: usize) -> Vec<String> {
    wait_for(
        Duration::from_secs(30),
        &format!("{n} tasks of {service}"),
        || {
            let out = d.lines(&[
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.ID}} {{.CurrentState}}",
                service,
            ]);
            let running: Vec<String> = out
                .iter()
                .filter(|l| l.contains("Running"))
                .map(|l| l.split(' ').next().unwrap().to_string())
                .collect();
            (running.len() == n).then_some(running)
        },
    )
}

#[test]
fn a_stack_is_applied_in_one_revision_and_an_unchanged_reapply_changes_nothing() {
    let d = common::swarm("apply-1");
    let dir = stack_dir(STACK, "s3cret\n");
    let applied = apply(&d, dir.path(), "st", &[], &[]);
    assert_eq!(applied["revision"], 1, "{applied}");
    assert!(
        actions(&applied).iter().all(|(_, a)| a == "create"),
        "{applied}"
    );
    // One transaction: every object was created by the commit the apply reported (later
    // writes, like the allocator's VIPs, move versions on, not creation times).
    let rev = applied["store_revision"].as_u64().unwrap();
    let created = |path: &str| {
        let v = d.get_json(path);
        v.get("CreatedAt")
            .or_else(|| v.get("Created"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{path}: no creation time: {v}"))
            .to_string()
    };
    let first = created("/services/st_web");
    for path in [
        "/services/st_api",
        "/services/st_worker",
        "/secrets/st_token",
        "/configs/st_conf",
    ] {
        assert_eq!(
            created(path),
            first,
            "{path} was created by another transaction"
        );
        assert!(version(&d, path) >= rev);
    }
    let web = all_running(&d, "st_web", 1);
    let api = all_running(&d, "st_api", 2);
    let versions: Vec<u64> = ["st_web", "st_api", "st_worker"]
        .iter()
        .map(|s| version(&d, &format!("/services/{s}")))
        .collect();

    let again = apply(&d, dir.path(), "st", &[], &[]);
    assert!(
        again.get("revision").is_none(),
        "a no-op wrote a revision: {again}"
    );
    assert!(
        actions(&again).iter().all(|(_, a)| a == "unchanged"),
        "{again}"
    );
    let after: Vec<u64> = ["st_web", "st_api", "st_worker"]
        .iter()
        .map(|s| version(&d, &format!("/services/{s}")))
        .collect();
    assert_eq!(versions, after, "an unchanged apply touched a service");
    assert_eq!(running_task_ids(&d, "st_web"), {
        let mut w = web.clone();
        w.sort();
        w
    });
    let mut api_sorted = api.clone();
    api_sorted.sort();
    assert_eq!(running_task_ids(&d, "st_api"), api_sorted);

    // plan of the unchanged file: exit 0; of a changed one: exit 1, naming the change.
    let file = dir.path().join("docker-compose.yml");
    let file = file.to_str().unwrap();
    let out = shoal(&d, &["plan", "-f", file, "--stack", "st"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = shoal(
        &d,
        &["diff", "-f", file, "--stack", "st"],
        &[("API_TAG", "latest")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("st_api") && shown.contains("TaskTemplate.ContainerSpec.Image"),
        "{shown}"
    );

    // Changing one image rolls only that service.
    let changed = apply(&d, dir.path(), "st", &[], &[("API_TAG", "latest")]);
    assert_eq!(changed["revision"], 2, "{changed}");
    assert_eq!(action_of(&changed, "st_api"), "update");
    assert_eq!(action_of(&changed, "st_web"), "unchanged");
    assert_eq!(action_of(&changed, "st_worker"), "unchanged");
    let new_api = wait_for(Duration::from_secs(30), "st_api's new tasks", || {
        let ids = all_running(&d, "st_api", 2);
        ids.iter().all(|id| !api.contains(id)).then_some(ids)
    });
    assert_eq!(new_api.len(), 2);
    assert_eq!(running_task_ids(&d, "st_web"), {
        let mut w = web.clone();
        w.sort();
        w
    });
    assert_eq!(
        version(&d, "/services/st_web"),
        versions[0],
        "the unchanged web service was written"
    );

    // The history has both revisions; rollback to 1 restores the image as revision 3.
    let out = shoal(&d, &["history", "st", "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out)
    );
    let out = shoal(&d, &["history", "st", "--diff", "1", "2"], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("shoal-test/busybox:latest"),
        "{}",
        text(&out)
    );
    let out = shoal(&d, &["rollback", "st", "--to", "1", "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rolled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rolled["revision"], 3, "{rolled}");
    let image = d.ok(&[
        "service",
        "inspect",
        "st_api",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]);
    assert_eq!(image.trim(), "shoal-test/busybox:1");

    // Prune: a service removed from the file goes with --prune, and only then.
    let smaller = STACK.replace(
        "  worker:\n    image: shoal-test/busybox:1\n    command: [\"sleep\", \"100000\"]\n",
        "",
    );
    std::fs::write(dir.path().join("docker-compose.yml"), smaller).unwrap();
    let kept = apply(&d, dir.path(), "st", &[], &[]);
    assert_eq!(action_of(&kept, "st_worker"), "orphaned", "{kept}");
    assert!(d.docker(&["service", "inspect", "st_worker"]).ok);
    let pruned = apply(&d, dir.path(), "st", &["--prune"], &[]);
    assert_eq!(action_of(&pruned, "st_worker"), "delete", "{pruned}");
    assert!(
        !d.docker(&["service", "inspect", "st_worker"]).ok,
        "st_worker was not pruned"
    );
    assert!(d.docker(&["service", "inspect", "st_web"]).ok);
}

#[test]
fn a_bad_file_is_refused_with_its_file_line_and_key_and_nothing_is_written() {
    let d = common::swarm("apply-bad");
    let bad = STACK.replace("replicas: 2", "replicas: two");
    let dir = stack_dir(&bad, "x");
    let file = dir.path().join("docker-compose.yml");
    for cmd in ["plan", "apply"] {
        let out = shoal(
            &d,
            &[cmd, "-f", file.to_str().unwrap(), "--stack", "bad"],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("docker-compose.yml"), "no file in: {err}");
        assert!(err.contains("replicas"), "no key in: {err}");
        let line = bad
            .lines()
            .position(|l| l.contains("replicas: two"))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!(":{line}")),
            "no line {line} in: {err}"
        );
    }
    assert!(d.lines(&["service", "ls", "-q"]).is_empty());
    assert!(d.lines(&["secret", "ls", "-q"]).is_empty());
    let (status, _) = d.curl("GET", "/shoal/v1/stacks/bad", None);
    assert_eq!(status, 404);
}

#[test]
fn docker_stack_deploy_objects_are_adopted_and_other_stacks_objects_are_refused() {
    let d = common::swarm("apply-adopt");
    let dir = stack_dir(STACK, "tok\n");
    let file = dir.path().join("docker-compose.yml");
    let file = file.to_str().unwrap();
    let out = Command::new("docker")
        .args(["-H", &format!("unix://{}", d.socket.display())])
        .args([
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            file,
            "ad",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let services_before = d.lines(&["service", "ls", "-q"]).len();
    let web_version = version(&d, "/services/ad_web");

    let adopted = apply(&d, dir.path(), "ad", &[], &[]);
    assert_eq!(adopted["revision"], 1, "{adopted}");
    for (name, action) in actions(&adopted) {
        assert_eq!(
            action, "unchanged",
            "{name} differs from docker stack deploy's: {adopted}"
        );
    }
    assert!(
        adopted["plan"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("adopting")),
        "{adopted}"
    );
    assert_eq!(
        d.lines(&["service", "ls", "-q"]).len(),
        services_before,
        "duplicated"
    );
    assert_eq!(
        version(&d, "/services/ad_web"),
        web_version,
        "adoption rewrote a service"
    );

    // Stack "other" may not take stack "ad"'s objects, whatever its file says.
    let stolen = STACK.replace("  back: {}", "  back:\n    name: ad_back");
    let dir2 = stack_dir(&stolen, "tok\n");
    let file2 = dir2.path().join("docker-compose.yml");
    let out = shoal(
        &d,
        &[
            "apply",
            "-f",
            file2.to_str().unwrap(),
            "--stack",
            "other",
            "--no-wait",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ad_back") && err.contains("belongs to stack ad"),
        "{err}"
    );
    assert!(
        !d.docker(&["service", "inspect", "other_web"]).ok,
        "partly applied"
    );
}

#[test]
fn a_plan_token_is_honoured_only_while_nothing_changed_and_secret_changes_make_revisions() {
    let d = common::swarm("apply-token");
    let dir = stack_dir(STACK, "one\n");
    apply(&d, dir.path(), "tk", &[], &[]);
    std::fs::write(dir.path().join("token.txt"), "two\n").unwrap();
    let file = dir.path().join("docker-compose.yml");
    let file = file.to_str().unwrap();
    let out = shoal(
        &d,
        &["plan", "-f", file, "--stack", "tk", "-o", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = plan["token"].as_str().unwrap().to_string();
    assert_eq!(action_of(&plan, "tk_token"), "replace", "{plan}");

    // Something changes in between: the token no longer applies.
    d.ok(&["service", "scale", "-d", "tk_worker=2"]);
    let out = shoal(
        &d,
        &[
            "apply",
            "-f",
            file,
            "--stack",
            "tk",
            "--no-wait",
            "--plan-token",
            &token,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plan"),
        "{}",
        text(&out)
    );
    assert_eq!(
        d.lines(&["secret", "ls", "-q"]).len(),
        1,
        "written despite a stale token"
    );

    // A fresh token applies; the secret's new data is a new revision the service moves to.
    let out = shoal(
        &d,
        &["plan", "-f", file, "--stack", "tk", "-o", "json"],
        &[],
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = plan["token"].as_str().unwrap().to_string();
    let applied = apply(&d, dir.path(), "tk", &["--plan-token", &token], &[]);
    assert_eq!(applied["revision"], 2, "{applied}");
    let secrets = d.lines(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(secrets.contains(&"tk_token.v2".to_string()), "{secrets:?}");
    let refs = d.ok(&[
        "service",
        "inspect",
        "tk_web",
        "--format",
        "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}}{{end}}",
    ]);
    assert_eq!(refs.trim(), "tk_token.v2");

    // Revision 1 is retained (the default keeps 10), so the first secret revision stays even
    // once no task uses it.
    wait_for(Duration::from_secs(30), "tk_web on tk_token.v2", || {
        let h = d.get_json("/shoal/v1/health?stack=tk");
        let web = ready_health(&h, "tk_web")?;
        (web["ObservedGeneration"].as_u64()? >= version(&d, "/services/tk_web")).then_some(())
    });
    let secrets = d.lines(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(secrets.contains(&"tk_token".to_string()), "{secrets:?}");

    // A history limit out of range is refused and changes nothing.
    std::fs::write(dir.path().join("token.txt"), "three\n").unwrap();
    let out = shoal(
        &d,
        &[
            "apply",
            "-f",
            file,
            "--stack",
            "tk",
            "--no-wait",
            "--history-limit",
            "0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("history_limit"), "{}", text(&out));

    // Keeping one revision drops revisions 1 and 2, and with them the secret revisions only
    // they had: each is removed once no task uses it.
    let applied = apply(&d, dir.path(), "tk", &["--history-limit", "1"], &[]);
    assert_eq!(applied["revision"], 3, "{applied}");
    wait_for(
        Duration::from_secs(30),
        "the retired secret revisions removed",
        || {
            let secrets = d.lines(&["secret", "ls", "--format", "{{.Name}}"]);
            (secrets == ["tk_token.v3"]).then_some(())
        },
    );
    let out = shoal(&d, &["history", "tk", "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let numbers: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["number"].as_u64())
        .collect();
    assert_eq!(numbers, [3], "{}", text(&out));
}

#[test]
fn a_rollout_whose_image_cannot_start_ends_rolled_back_or_failed_with_its_exit_code() {
    let d = Daemon::start_with_args("apply-rollback", &[]);
    // Its own address pool: other tests' swarms share the engine, and engine networks with the
    // same subnet refuse each other ("Pool overlaps").
    let addr = format!("127.0.0.1:{}", d.swarm_port);
    d.ok(&[
        "swarm",
        "init",
        "--listen-addr",
        &addr,
        "--advertise-addr",
        &addr,
        "--default-addr-pool",
        "10.231.0.0/16",
    ]);
    let compose = |image: &str| {
        format!(
            r#"
services:
  app:
    image: {image}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    deploy:
      replicas: 1
      update_config:
        failure_action: rollback
        monitor: 2s
      rollback_config:
        monitor: 1s
"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, compose("shoal-test/busybox:1")).unwrap();
    let f = file.to_str().unwrap();
    let out = shoal(&d, &["apply", "-f", f, "--stack", "rb", "--wait=60s"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Succeeded"),
        "{}",
        text(&out)
    );

    std::fs::write(&file, compose("shoal-test/never-built:1")).unwrap();
    let out = shoal(&d, &["apply", "-f", f, "--stack", "rb", "--wait=90s"], &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(4), "{shown}");
    assert!(shown.contains("RolledBack"), "{shown}");
    let image = d.ok(&[
        "service",
        "inspect",
        "rb_app",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]);
    assert_eq!(image.trim(), "shoal-test/busybox:1");

    // With failure_action pause the same rollout ends Failed, with the reason, and the stack
    // and the service say they are degraded.
    let paused = compose("shoal-test/never-built:1")
        .replace("failure_action: rollback", "failure_action: pause");
    std::fs::write(&file, paused).unwrap();
    let out = shoal(&d, &["apply", "-f", f, "--stack", "rb", "--wait=90s"], &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(
        shown.contains("Failed") && shown.contains("UpdatePaused"),
        "{shown}"
    );
    let out = shoal(&d, &["status", "rb"], &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("Degraded=true (ServiceDegraded)"), "{shown}");
    assert!(
        shown.contains("rb_app") && shown.contains("Degraded=true (UpdatePaused)"),
        "{shown}"
    );
    // Every service has its health, in a stack or not.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "loose",
        "--replicas",
        "2",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    wait_for(
        Duration::from_secs(60),
        "loose ready in shoal status",
        || {
            let out = shoal(&d, &["status", "-o", "json"], &[]);
            let all: Value = serde_json::from_slice(&out.stdout).ok()?;
            let loose = ready_health(&all["services"], "loose")?;
            (loose["Running"] == 2 && loose["Desired"] == 2 && loose.get("Stack").is_none())
                .then_some(())
        },
    );
    let out = shoal(&d, &["status"], &[]);
    let shown = text(&out);
    assert!(
        shown.contains("loose") && shown.contains("2/2") && shown.contains("rb_app"),
        "{shown}"
    );
    // Kept as the README's capture of `shoal status`, taken by this run.
    std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/screenshots/shoal-status.txt"
        ),
        &out.stdout,
    )
    .expect("writing the capture of shoal status");
    // The swarm's screen: its manager as leader, its node, and the services' events.
    assert!(
        shown.contains("1 managers (leader ")
            && shown.contains("NODES")
            && shown.contains("Leader"),
        "{shown}"
    );
    assert!(
        shown.contains("RECENT EVENTS") && shown.contains("service   create"),
        "{shown}"
    );
    // Removed with its service.
    d.ok(&["service", "rm", "loose"]);
    wait_for(Duration::from_secs(30), "loose's health removed", || {
        let all = d.get_json("/shoal/v1/health");
        (!all.to_string().contains("\"loose\"")).then_some(())
    });
    // The engine's containers go too (the daemon leaves them running when it stops).
    wait_for(Duration::from_secs(30), "loose's containers gone", || {
        no_containers_of("loose").then_some(())
    });
    d.ok(&["service", "rm", "rb_app"]);
    wait_for(Duration::from_secs(30), "rb_app's containers gone", || {
        no_containers_of("rb_app").then_some(())
    });
}

/// Whether the machine's engine holds no container of swarm service `service`.
fn no_containers_of(service: &str) -> bool {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ])
        .output()
        .expect("docker ps runs");
    out.status.success() && out.stdout.is_empty()
}

#[test]
fn plan_reports_services_that_would_not_find_a_node_and_why() {
    let d = common::swarm("apply-feasible");
    // Another service holds host port 8089 on the only node.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "holder",
        "--publish",
        "mode=host,published=8089,target=80",
        "shoal-test/busybox:1",
        "sleep",
        "100000",
    ]);
    all_running(&d, "holder", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        r#"
services:
  fits:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
  port:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    ports:
      - mode: host
        published: 8089
        target: 80
  huge:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    deploy:
      resources:
        reservations:
          memory: 100000G
  nowhere:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    deploy:
      placement:
        constraints: ["node.labels.zone==mars"]
"#,
    )
    .unwrap();
    let out = shoal(
        &d,
        &[
            "plan",
            "-f",
            file.to_str().unwrap(),
            "--stack",
            "fz",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unschedulable = |name: &str| -> Option<String> {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {plan}"))["unschedulable"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(unschedulable("fz_fits"), None, "{plan}");
    for (name, why) in [
        ("fz_port", "port"),
        ("fz_huge", "resources"),
        ("fz_nowhere", "constraint"),
    ] {
        let reason = unschedulable(name).unwrap_or_else(|| panic!("{name} fits: {plan}"));
        assert!(reason.contains(why), "{name}: {reason}");
    }
    // The table says so too.
    let out = shoal(
        &d,
        &["plan", "-f", file.to_str().unwrap(), "--stack", "fz"],
        &[],
    );
    assert!(text(&out).contains("fz_port"), "{}", text(&out));
}
