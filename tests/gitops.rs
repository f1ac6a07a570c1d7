//! GitOps against one daemon and real git repositories made in the test: a commit applied and
//! recorded with its id, a change rolled out, a broken commit reported without touching what
//! runs, an unreachable repository (Stalled, last applied state kept), drift reported and
//! reverted with self-heal (and ignored fields left alone), a deleted directory pruned,
//! webhooks refused unless signed and syncing at once when they are, suspend and resume, bad
//! input refused with nothing written, idle syncs that write nothing, and a new leader taking
//! over without applying a commit twice.

mod common;
mod gitops_common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{wait_for, Daemon};
use gitops_common::{condition, holds};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// A git repository in a temp dir, committed to with the `git` program.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("shoal-gitops-repo-")
            .tempdir()
            .unwrap();
        let r = Repo { dir };
        r.git(&["init", "--quiet", "--initial-branch=main"]);
        r
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        gitops_common::git(self.path(), args)
    }

    fn write(&self, path: &str, content: &str) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Commits everything; the commit id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn compose(replicas: u32, env: &str) -> String {
    format!(
        r#"
services:
  app:
    image: shoal-test/busybox:1
    command: ["sleep", "100000"]
    environment:
      MODE: "{env}"
    deploy:
      replicas: {replicas}
"#
    )
}

fn shoal(d: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env("SHOAL_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .expect("shoal runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shoal_ok(d: &Daemon, args: &[&str]) -> String {
    let out = shoal(d, args);
    assert_eq!(out.status.code(), Some(0), "shoal {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn source(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/shoal/v1/gitops/{name}"))
}

/// Waits until the source's status satisfies `ok`; the source.
fn wait_source(d: &Daemon, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(WAIT, what, || {
            last = source(d, name);
            ok(&last).then(|| last.clone())
        })
    }));
    found.unwrap_or_else(|_| panic!("{what}: the source is {last:#}"))
}

fn applied(d: &Daemon, name: &str, commit: &str) -> Value {
    wait_source(d, name, &format!("{name} at commit {commit}"), |s| {
        s["Status"]["LastAppliedCommit"] == commit
    })
}

fn service(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/services/{name}"))
}

fn replicas(svc: &Value) -> u64 {
    svc["Spec"]["Mode"]["Replicated"]["Replicas"]
        .as_u64()
        .unwrap()
}

fn env_of(svc: &Value) -> Vec<String> {
    svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn add(d: &Daemon, name: &str, repo: &Path, extra: &[&str]) {
    let repo = repo.to_str().unwrap();
    let mut args = vec!["gitops", "add", name, "--repo", repo, "--ref", "main"];
    args.extend_from_slice(extra);
    shoal_ok(d, &args);
}

#[test]
fn commits_are_applied_and_recorded_and_a_broken_or_unreachable_repo_leaves_services_running() {
    let d = common::swarm("gitops-1");
    let repo = Repo::new();
    repo.write("web/compose.yaml", &compose(1, "one"));
    repo.write("README.md", "not a stack\n");
    let c1 = repo.commit("first");
    let url = format!("file://{}", repo.path().display());
    shoal_ok(
        &d,
        &[
            "gitops",
            "add",
            "web",
            "--repo",
            &url,
            "--ref",
            "main",
            "--path",
            "web",
            "--interval",
            "1s",
        ],
    );

    // The commit is applied as revision 1, recorded with the commit id.
    let s = applied(&d, "web", &c1);
    assert_eq!(s["Status"]["Stacks"]["web"]["Result"], "Applied", "{s:#}");
    assert_eq!(s["Status"]["Stacks"]["web"]["Revision"], 1, "{s:#}");
    let rev = d.get_json("/shoal/v1/stacks/web/revisions/1");
    assert_eq!(rev["GitCommit"], c1.as_str(), "{rev:#}");
    assert_eq!(rev["GitSource"], "web", "{rev:#}");
    assert_eq!(replicas(&service(&d, "web_app")), 1);
    let history = shoal_ok(&d, &["history", "web", "-o", "json"]);
    assert!(history.contains(&c1), "{history}");
    wait_source(&d, "web", "web Ready", |s| holds(s, "Ready"));
    let ls = shoal_ok(&d, &["gitops", "ls"]);
    assert!(ls.contains("web") && ls.contains(&c1[..12]), "{ls}");

    // A change rolls out as revision 2 of the new commit.
    repo.write("web/compose.yaml", &compose(2, "two"));
    let c2 = repo.commit("two replicas");
    let s = applied(&d, "web", &c2);
    assert_eq!(s["Status"]["Stacks"]["web"]["Revision"], 2, "{s:#}");
    assert_eq!(
        d.get_json("/shoal/v1/stacks/web/revisions/2")["GitCommit"],
        c2.as_str()
    );
    let svc = service(&d, "web_app");
    assert_eq!(replicas(&svc), 2);
    assert!(env_of(&svc).contains(&"MODE=two".to_string()), "{svc:#}");

    // A commit that only touches other files changes nothing: no new revision.
    repo.write("README.md", "still not a stack\n");
    let c2b = repo.commit("docs");
    let s = applied(&d, "web", &c2b);
    assert_eq!(s["Status"]["Stacks"]["web"]["Result"], "Unchanged", "{s:#}");
    assert_eq!(d.get_json("/shoal/v1/stacks/web")["Revision"], 2);

    // Idle: syncs keep fetching (FETCH_HEAD in the cache repository changes) and write nothing.
    let s = wait_source(&d, "web", "web Ready at the docs commit", |s| {
        holds(s, "Ready")
    });
    let version = s["Version"]["Index"].as_u64().unwrap();
    let fetch_head = d
        .dir()
        .join("data/swarm/gitops")
        .join(s["ID"].as_str().unwrap())
        .join(".git/FETCH_HEAD");
    let mtime = || {
        std::fs::metadata(&fetch_head)
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen = vec![mtime().expect("the cache repository has fetched")];
    wait_for(WAIT, "three more fetches", || {
        let now = mtime()?;
        if !seen.contains(&now) {
            seen.push(now);
        }
        (seen.len() >= 4).then_some(())
    });
    let s = source(&d, "web");
    assert_eq!(
        s["Version"]["Index"].as_u64().unwrap(),
        version,
        "idle syncs wrote: {s:#}"
    );
    assert_eq!(d.get_json("/shoal/v1/stacks/web")["Revision"], 2);

    // A broken file: Degraded with the commit and the reason; the service is untouched (its
    // version read after the rollout ended: the update supervisor writes its status to it).
    let version = service(&d, "web_app")["Version"]["Index"].as_u64().unwrap();
    repo.write(
        "web/compose.yaml",
        "services:\n  app:\n    image: [unclosed\n",
    );
    let c3 = repo.commit("broken");
    let s = wait_source(&d, "web", "Degraded on the broken commit", |s| {
        s["Status"]["LastFetchedCommit"] == c3.as_str() && holds(s, "Degraded")
    });
    let degraded = condition(&s, "Degraded");
    assert_eq!(degraded["Reason"], "CommitFailed", "{s:#}");
    let message = degraded["Message"].as_str().unwrap();
    assert!(message.contains(&c3[..12]), "{message}");
    assert!(message.contains("compose.yaml"), "{message}");
    assert_eq!(s["Status"]["LastAppliedCommit"], c2b.as_str(), "{s:#}");
    assert!(!holds(&s, "Ready"), "{s:#}");
    let inspect = shoal_ok(&d, &["gitops", "inspect", "web"]);
    assert!(inspect.contains("Failed"), "{inspect}");
    let svc = service(&d, "web_app");
    assert_eq!(
        svc["Version"]["Index"].as_u64().unwrap(),
        version,
        "{svc:#}"
    );
    assert_eq!(d.get_json("/shoal/v1/stacks/web")["Revision"], 2);

    // A commit whose service would find no node: Failed with the reason, nothing applied.
    let placed = compose(2, "two")
        + "      placement:\n        constraints: [\"node.labels.zone==nowhere\"]\n";
    repo.write("web/compose.yaml", &placed);
    let c3b = repo.commit("unschedulable");
    let s = wait_source(&d, "web", "Degraded on the unschedulable commit", |s| {
        s["Status"]["LastFetchedCommit"] == c3b.as_str() && holds(s, "Degraded")
    });
    let message = condition(&s, "Degraded")["Message"].as_str().unwrap();
    assert!(message.contains("would not be scheduled"), "{message}");
    assert!(message.contains(&c3b[..12]), "{message}");
    let svc = service(&d, "web_app");
    assert_eq!(
        svc["Version"]["Index"].as_u64().unwrap(),
        version,
        "{svc:#}"
    );

    // The next good commit recovers.
    repo.write("web/compose.yaml", &compose(3, "three"));
    let c4 = repo.commit("fixed");
    let s = applied(&d, "web", &c4);
    assert!(!holds(&s, "Degraded"), "{s:#}");
    assert_eq!(replicas(&service(&d, "web_app")), 3);

    // The repository goes away: Stalled, the last applied commit and the stack stay.
    let moved = repo.path().with_extension("moved");
    std::fs::rename(repo.path(), &moved).unwrap();
    let s = wait_source(&d, "web", "Stalled", |s| holds(s, "Stalled"));
    let stalled = condition(&s, "Stalled");
    assert_eq!(stalled["Reason"], "FetchFailed", "{s:#}");
    assert!(
        stalled["Message"].as_str().unwrap().contains(&c4[..12]),
        "{s:#}"
    );
    assert_eq!(s["Status"]["LastAppliedCommit"], c4.as_str());
    assert_eq!(replicas(&service(&d, "web_app")), 3);
    std::fs::rename(&moved, repo.path()).unwrap();
    wait_source(&d, "web", "no longer Stalled", |s| {
        !holds(s, "Stalled") && holds(s, "Ready")
    });
}

#[test]
fn drift_is_reported_and_reverted_with_self_heal_and_ignored_fields_are_left_alone() {
    let d = common::swarm("gitops-2");
    let repo = Repo::new();
    repo.write("watch/compose.yaml", &compose(1, "git"));
    repo.write("heal/compose.yaml", &compose(1, "git"));
    let c1 = repo.commit("two stacks");
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // An hour between polls: drift must be seen when the change is made, not at a poll.
    add(
        &d,
        "watch",
        repo.path(),
        &["--path", "watch", "--interval", "1h"],
    );
    add(
        &d,
        "heal",
        repo.path(),
        &[
            "--path",
            "heal",
            "--interval",
            "1h",
            "--self-heal",
            "--ignore",
            "replicas",
        ],
    );
    applied(&d, "watch", &c1);
    applied(&d, "heal", &c1);

    // Without self-heal: reported per field, left as it is.
    d.ok(&["service", "scale", "watch_app=3", "--detach"]);
    let s = wait_source(&d, "watch", "drift on watch", |s| holds(s, "Drifted"));
    let drift = &s["Status"]["Stacks"]["watch"]["Drift"];
    let row = drift
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["Path"] == "Mode.Replicated.Replicas")
        })
        .unwrap_or_else(|| panic!("no replicas drift: {s:#}"));
    assert_eq!(row["Object"], "service watch_app");
    assert_eq!(row["Live"], 3);
    assert_eq!(row["Git"], 1);
    assert_eq!(condition(&s, "Drifted")["Reason"], "ChangedOutsideGit");
    assert_eq!(replicas(&service(&d, "watch_app")), 3);
    let inspect = shoal_ok(&d, &["gitops", "inspect", "watch"]);
    assert!(
        inspect.contains("drift: service watch_app Mode.Replicated.Replicas"),
        "{inspect}"
    );
    // The same steps as `docker events`: the commit applied, then the drift.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = d.ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=gitsource",
        "--format",
        "{{json .}}",
    ]);
    let events: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of_watch = |action: &str| {
        events.iter().find(|e| {
            e["Type"] == "gitsource"
                && e["Action"] == action
                && e["Actor"]["Attributes"]["name"] == "watch"
        })
    };
    let apply = of_watch("apply").unwrap_or_else(|| panic!("no apply event: {events:#?}"));
    assert_eq!(apply["Actor"]["Attributes"]["commit"], c1.as_str());
    let drifted = of_watch("drift").unwrap_or_else(|| panic!("no drift event: {events:#?}"));
    assert!(
        drifted["Actor"]["Attributes"]["fields"]
            .as_str()
            .unwrap()
            .contains("service watch_app Mode.Replicated.Replicas"),
        "{drifted:#}"
    );

    // With self-heal: a hand-made env change is put back to what git says ...
    d.ok(&[
        "service",
        "update",
        "--env-add",
        "MODE=hand",
        "--detach",
        "heal_app",
    ]);
    wait_for(WAIT, "heal_app back to MODE=git", || {
        let env = env_of(&service(&d, "heal_app"));
        env.contains(&"MODE=git".to_string()).then_some(())
    });
    let history = d.get_json("/shoal/v1/stacks/heal/history");
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["cause"], "gitops heal self-heal", "{history:#}");
    // ... but replicas, which the source ignores, stay as scaled and are no drift.
    d.ok(&["service", "scale", "heal_app=4", "--detach"]);
    let before = d.get_json("/shoal/v1/stacks/heal")["Revision"].clone();
    // Two syncs later (the sync request is handled after the scale was committed).
    shoal_ok(&d, &["gitops", "sync", "heal"]);
    let s = source(&d, "heal");
    assert!(!holds(&s, "Drifted"), "{s:#}");
    assert_eq!(replicas(&service(&d, "heal_app")), 4);
    assert_eq!(d.get_json("/shoal/v1/stacks/heal")["Revision"], before);
}

/// `sha256=<hex HMAC-SHA256 of body under key>`, computed by openssl.
fn github_signature(key: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(hex.len(), 64, "openssl's HMAC: {hex}");
    format!("sha256={hex}")
}

fn webhook(d: &Daemon, name: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    use std::io::Write;
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "30", "--unix-socket"])
        .arg(&d.socket)
        .args(["-X", "POST", "-w", "\n%{http_code}", "--data-binary", "@-"])
        .args(["-H", "Content-Type: application/json"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("http://localhost/shoal/v1/gitops/{name}/webhook"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("curl runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_string())
}

#[test]
fn a_deleted_directory_is_pruned_and_webhooks_sync_at_once_only_when_signed() {
    let d = common::swarm("gitops-3");
    let repo = Repo::new();
    repo.write("stacks/a/compose.yaml", &compose(1, "a"));
    repo.write("stacks/b/docker-compose.yml", &compose(1, "b"));
    let c1 = repo.commit("a and b");
    let out = Command::new("docker")
        .args(["-H", &format!("unix://{}", d.socket.display())])
        .args(["secret", "create", "hook", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"s3cret")?;
            c.wait_with_output()
        })
        .expect("docker secret create");
    assert!(out.status.success(), "docker secret create hook");
    // An hour between polls: only the first sync, webhooks and `gitops sync` apply anything.
    add(
        &d,
        "many",
        repo.path(),
        &[
            "--path",
            "stacks",
            "--stack-per-dir",
            "--prune",
            "--interval",
            "1h",
            "--webhook-secret",
            "hook",
        ],
    );
    let s = applied(&d, "many", &c1);
    let stacks = s["Status"]["Stacks"].as_object().unwrap();
    assert_eq!(stacks.keys().collect::<Vec<_>>(), ["a", "b"], "{s:#}");
    service(&d, "b_app");

    repo.git(&["rm", "-r", "--quiet", "stacks/b"]);
    let c2 = repo.commit("b is gone");
    let push = format!(r#"{{"ref":"refs/heads/main","after":"{c2}"}}"#);
    let request = source(&d, "many")["Spec"]["SyncRequest"].clone();

    // Unsigned, signed with another key, or a body that is not the one signed: 401, nothing
    // triggered.
    let (status, body) = webhook(&d, "many", &[], push.as_bytes());
    assert_eq!(status, 401, "{body}");
    let wrong = github_signature("other", push.as_bytes());
    let (status, body) = webhook(
        &d,
        "many",
        &[("X-Hub-Signature-256", &wrong)],
        push.as_bytes(),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signature does not match"), "{body}");
    let good = github_signature("s3cret", push.as_bytes());
    let (status, _) = webhook(&d, "many", &[("X-Hub-Signature-256", &good)], b"{}");
    assert_eq!(status, 401);
    let (status, _) = webhook(&d, "many", &[("X-Gitlab-Token", "nope")], push.as_bytes());
    assert_eq!(status, 401);
    let s = source(&d, "many");
    assert_eq!(s["Spec"]["SyncRequest"], request, "{s:#}");
    assert_eq!(s["Status"]["LastFetchedCommit"], c1.as_str());

    // Signed: a sync at once; b's directory is gone and prune is on, so b is removed.
    let (status, body) = webhook(
        &d,
        "many",
        &[("X-Hub-Signature-256", &good)],
        push.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"triggered\":true"), "{body}");
    let s = applied(&d, "many", &c2);
    assert!(s["Status"]["Stacks"].get("b").is_none(), "{s:#}");
    let (status, body) = d.curl("GET", "/shoal/v1/stacks/b", None);
    assert_eq!(status, 404, "{body}");
    let (status, _) = d.curl("GET", "/services/b_app", None);
    assert_eq!(status, 404);
    service(&d, "a_app");

    // GitLab's token header works too.
    repo.write("stacks/c/compose.yaml", &compose(1, "c"));
    let c3 = repo.commit("c");
    let (status, body) = webhook(&d, "many", &[("X-Gitlab-Token", "s3cret")], push.as_bytes());
    assert_eq!(status, 200, "{body}");
    applied(&d, "many", &c3);
    service(&d, "c_app");

    // Suspended: no sync; `gitops sync` says why; resume syncs at once.
    shoal_ok(&d, &["gitops", "suspend", "many"]);
    wait_source(&d, "many", "suspended", |s| {
        condition(s, "Ready")["Reason"] == "Suspended"
    });
    repo.write("stacks/a/compose.yaml", &compose(2, "a"));
    let c4 = repo.commit("a twice");
    let out = shoal(&d, &["gitops", "sync", "many"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("suspended"), "{}", text(&out));
    assert_eq!(replicas(&service(&d, "a_app")), 1);
    shoal_ok(&d, &["gitops", "resume", "many"]);
    applied(&d, "many", &c4);
    assert_eq!(replicas(&service(&d, "a_app")), 2);

    // `gitops sync` waits for the sync and shows the result.
    repo.write("stacks/a/compose.yaml", &compose(1, "a"));
    let c5 = repo.commit("a once");
    let out = shoal_ok(&d, &["gitops", "sync", "many", "-o", "json"]);
    let synced: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        synced["Status"]["LastAppliedCommit"],
        c5.as_str(),
        "{synced:#}"
    );
    assert_eq!(replicas(&service(&d, "a_app")), 1);

    // Removing the source leaves its stacks running, and drops its fetched repository.
    let id = source(&d, "many")["ID"].as_str().unwrap().to_string();
    let cache = d.dir().join("data/swarm/gitops").join(&id);
    assert!(
        cache.is_dir(),
        "{} holds the fetched repository",
        cache.display()
    );
    let out = shoal_ok(&d, &["gitops", "rm", "many"]);
    assert!(out.contains("keep running"), "{out}");
    service(&d, "a_app");
    let (status, _) = d.curl("GET", "/shoal/v1/gitops/many", None);
    assert_eq!(status, 404);
    wait_for(WAIT, "the removed source's repository is gone", || {
        (!cache.exists()).then_some(())
    });
}

#[test]
fn bad_input_is_refused_with_nothing_written_and_undecryptable_files_fail_their_commit() {
    let d = common::swarm("gitops-4");
    let repo = Repo::new();
    repo.write("compose.yaml", &compose(1, "x"));
    repo.commit("one");
    let path = repo.path().to_str().unwrap().to_string();
    let refused = |args: &[&str], says: &str| {
        let out = shoal(&d, args);
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains(says), "{args:?}: wanted {says:?} in {err}");
    };
    let base = |url: &'static str| ["gitops", "add", "s", "--repo", url, "--ref", "main"];
    refused(
        &base("ssh://git@github.com/o/r.git"),
        "an ssh repository needs --deploy-key-secret",
    );
    refused(&base("git@github.com:o/r.git"), "host keys are pinned");
    refused(&base("git://github.com/o/r.git"), "use a local path");
    refused(&base("http://example.com/r.git"), "plain http is refused");
    refused(
        &base("https://me:pw@example.com/r.git"),
        "put the token in a swarm secret",
    );
    refused(
        &[
            "gitops",
            "add",
            "s",
            "--repo",
            &path,
            "--ref",
            "--upload-pack=x",
        ],
        "--ref",
    );
    refused(
        &[
            "gitops", "add", "s", "--repo", &path, "--ref", "main", "--path", "../x",
        ],
        "'..'",
    );
    refused(
        &[
            "gitops",
            "add",
            "s",
            "--repo",
            &path,
            "--ref",
            "main",
            "--interval",
            "0s",
        ],
        "--interval",
    );
    refused(
        &[
            "gitops",
            "add",
            "s",
            "--repo",
            &path,
            "--ref",
            "main",
            "--webhook-secret",
            "missing",
        ],
        "no such swarm secret",
    );
    refused(
        &[
            "gitops", "add", "s", "--repo", &path, "--ref", "main", "--ignore", "env[X]",
        ],
        "--ignore",
    );
    let all = d.get_json("/shoal/v1/gitops");
    assert_eq!(all, Value::Array(vec![]), "nothing was written: {all}");
    refused(
        &["gitops", "inspect", "nope"],
        "gitops source nope not found",
    );

    add(&d, "s", repo.path(), &["--interval", "1s"]);
    refused(
        &["gitops", "add", "s", "--repo", &path, "--ref", "main"],
        "already exists",
    );

    // A ref that is not in the repository is an error of the fetch (Stalled).
    let out = shoal(
        &d,
        &["gitops", "add", "noref", "--repo", &path, "--ref", "nope"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = wait_source(&d, "noref", "Stalled on a missing ref", |s| {
        holds(s, "Stalled")
    });
    assert!(
        condition(&s, "Stalled")["Message"]
            .as_str()
            .unwrap()
            .contains("ref nope"),
        "{s:#}"
    );

    // An age-encrypted file and no identity to decrypt it: the commit fails with that reason,
    // nothing of it is applied.
    repo.write(
        "compose.yaml",
        "services:\n  app:\n    image: shoal-test/busybox:1\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.age\n",
    );
    repo.write("pw.age", "age-encryption.org/v1\n");
    let c2 = repo.commit("age");
    let s = wait_source(&d, "s", "the age commit failed", |s| {
        s["Status"]["LastFetchedCommit"] == c2.as_str() && holds(s, "Degraded")
    });
    let msg = s["Status"]["Stacks"]["s"]["Message"].as_str().unwrap();
    assert!(msg.contains("age-encrypted"), "{msg}");
    let (status, _) = d.curl("GET", "/services/s_app", None);
    assert_eq!(status, 200);
    assert!(env_of(&service(&d, "s_app")).contains(&"MODE=x".to_string()));
}

#[test]
fn a_new_leader_takes_over_the_sources_without_repeating_an_apply() {
    let mut m1 = common::swarm("gitops-l1");
    let token = m1
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let m2 = Daemon::start("gitops-l2");
    let m3 = Daemon::start("gitops-l3");
    for m in [&m2, &m3] {
        let out = m.join(&m1, &token);
        assert!(out.ok, "{} could not join: {}", m.hostname, out.stderr);
        wait_for(WAIT, &format!("{} is a manager", m.hostname), || {
            (m.ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"])
                .trim()
                == "true")
                .then_some(())
        });
    }
    let repo = Repo::new();
    repo.write("compose.yaml", &compose(1, "one"));
    let c1 = repo.commit("one");
    // An hour between polls: only a new leader's first pass or a sync request syncs.
    add(&m1, "lead", repo.path(), &["--interval", "1h"]);
    applied(&m1, "lead", &c1);

    repo.write("compose.yaml", &compose(2, "two"));
    let c2 = repo.commit("two");
    m1.kill9();
    // A surviving manager's controllers take over and sync every source once.
    let s = applied(&m2, "lead", &c2);
    assert_eq!(s["Status"]["Stacks"]["lead"]["Revision"], 2, "{s:#}");
    // A sync request answered by the new leader finds nothing to do: no revision repeated.
    shoal_ok(&m3, &["gitops", "sync", "lead"]);
    let s = source(&m3, "lead");
    assert_eq!(
        s["Status"]["Stacks"]["lead"]["Result"], "Unchanged",
        "{s:#}"
    );
    let history = m3.get_json("/shoal/v1/stacks/lead/history");
    let commits: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["git_commit"].as_str().unwrap())
        .collect();
    assert_eq!(commits, [c1.as_str(), c2.as_str()], "{history:#}");
    assert_eq!(replicas(&service(&m3, "lead_app")), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_and_their_status_are_on_the_watch_api_as_kind_gitsource() {
    use futures::StreamExt;
    use shoal::client::{Client, Host};
    use shoal::native::watch::WatchParams;
    use shoal::native::wire::WireMessage;

    let d = common::swarm("gitops-5");
    let client = Client::new(Host::Unix(d.socket.clone()));
    let params = WatchParams {
        kinds: vec!["gitsource".into()],
        ..Default::default()
    };
    let mut s = client.watch_once(&params).await.expect("the watch starts");
    async fn next(s: &mut shoal::client::MessageStream) -> WireMessage {
        match tokio::time::timeout(Duration::from_secs(30), s.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("no watch message: {other:?}"),
        }
    }
    assert!(matches!(next(&mut s).await, WireMessage::InitBegin { .. }));
    assert!(matches!(next(&mut s).await, WireMessage::InitDone { .. }));

    let repo = Repo::new();
    repo.write("compose.yaml", &compose(1, "w"));
    let c1 = repo.commit("one");
    add(&d, "w", repo.path(), &["--interval", "1s"]);
    let mut actions = Vec::new();
    loop {
        let WireMessage::Commit { events, .. } = next(&mut s).await else {
            continue;
        };
        for e in events {
            assert_eq!(e.kind, "gitsource", "{e:?}");
            assert_eq!(e.name, "w");
            actions.push(e.action.clone());
            if e.object["Status"]["LastAppliedCommit"] == c1.as_str() {
                assert_eq!(actions[0], "create", "{actions:?}");
                return;
            }
        }
    }
}
