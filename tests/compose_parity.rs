//! `shoal::compose` against the real `docker stack deploy`: for real compose files from public
//! projects (and shoal's own kitchen-sink file, merged with an override), one daemon gets the
//! stack from `docker stack deploy`, another gets the objects `compose::load` produces, created
//! through the Docker API as the apply step will (secret and config ids looked up by name), and
//! every service, network, secret and config spec must come back the same from both.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{swarm, Daemon, Out};
use serde_json::{json, Value};
use shoal::compose::{self, ComposeInput, SourceFile};

const STACK: &str = "st";

/// One deployment to compare.
struct Case<'a> {
    /// Files under tests/compose, merged in order.
    files: &'a [&'a str],
    /// The environment `docker stack deploy` runs with (besides PATH and HOME).
    env: &'a [(&'a str, &'a str)],
    /// Overlay networks the file declares external (created first on both daemons).
    external_networks: &'a [&'a str],
    /// Secrets the file declares external (created first on both daemons).
    external_secrets: &'a [&'a str],
    /// Subnets the files declare (compared; the ones the allocator picks are not).
    declared_subnets: &'a [&'a str],
}

fn docker_with_env(d: &Daemon, args: &[&str], env: &BTreeMap<String, String>) -> Out {
    let out = Command::new("docker")
        .args(args)
        .env_clear()
        .envs(env)
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .current_dir(d.dir())
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI runs (it is required: install docker-ce-cli)");
    Out {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

fn post(d: &Daemon, path: &str, body: &Value) -> Value {
    let (status, text) = d.curl("POST", path, Some(body.to_string().as_bytes()));
    assert!(
        (200..300).contains(&status),
        "POST {path} -> {status}: {text}\nbody: {body:#}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The environment both sides see: the case's variables, PATH, and HOME (the daemon's dir).
fn environment(d: &Daemon, case: &Case) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = case
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env.insert("HOME".into(), d.dir().display().to_string());
    env
}

/// Writes the compose files and the files they name (made-up contents) into the daemon's dir.
fn write_files(d: &Daemon, case: &Case, env: &BTreeMap<String, String>) -> Vec<SourceFile> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose");
    let files: Vec<SourceFile> = case
        .files
        .iter()
        .map(|f| SourceFile {
            name: f.to_string(),
            content: std::fs::read_to_string(here.join(f)).expect("test compose file"),
        })
        .collect();
    for f in &files {
        d.write_file(&f.name, &f.content);
    }
    let refs = compose::references(&files, env).expect("references");
    for path in &refs.files {
        let full = d.dir().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        let content = if path.ends_with(".env") {
            "# made up for the test\nFROM_FILE=1\nPORT=1\nBARE\n".to_string()
        } else {
            format!("contents of {path}\n")
        };
        std::fs::write(full, content).unwrap();
    }
    files
}

/// Creates the case's external networks and secrets.
fn externals(d: &Daemon, case: &Case) {
    for n in case.external_networks {
        d.ok(&["network", "create", "-d", "overlay", n]);
    }
    for s in case.external_secrets {
        let path = d.write_file(&format!("external-{s}"), s);
        d.ok(&["secret", "create", s, path.to_str().unwrap()]);
    }
}

/// Side A: `docker stack deploy`.
fn deploy_with_docker(case: &Case) -> Daemon {
    let d = swarm("compose-cli");
    externals(&d, case);
    let env = environment(&d, case);
    write_files(&d, case, &env);
    let mut args = vec!["stack", "deploy", "--resolve-image", "never"];
    for f in case.files {
        args.extend(["-c", f]);
    }
    args.push(STACK);
    let out = docker_with_env(&d, &args, &env);
    assert!(
        out.ok,
        "docker stack deploy failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    d
}

/// Side B: `compose::load`, then the objects created through the Docker API.
fn deploy_with_loader(case: &Case) -> (Daemon, compose::LoadedStack) {
    let d = swarm("compose-api");
    externals(&d, case);
    let env = environment(&d, case);
    let files = write_files(&d, case, &env);
    let refs = compose::references(&files, &env).expect("references");
    let attachments: BTreeMap<String, Vec<u8>> = refs
        .files
        .iter()
        .map(|p| (p.clone(), std::fs::read(d.dir().join(p)).unwrap()))
        .collect();
    // What the CLI would send: the variables the files use, those env files name bare.
    let mut wanted = refs.variables.clone();
    for (path, content) in &attachments {
        if path.ends_with(".env") {
            wanted.extend(compose::env_file_variables(content));
        }
    }
    let stack = compose::load(&ComposeInput {
        stack: STACK.into(),
        files,
        env: env
            .into_iter()
            .filter(|(k, _)| wanted.contains(k))
            .collect(),
        attachments,
        working_dir: d.dir().display().to_string(),
    })
    .unwrap_or_else(|e| panic!("compose::load refused what docker stack deploy took: {e}"));

    for body in stack.networks.values() {
        post(&d, "/networks/create", body);
    }
    let mut ids = BTreeMap::new();
    for (name, body) in &stack.secrets {
        ids.insert(
            name.clone(),
            post(&d, "/secrets/create", body)["ID"].clone(),
        );
    }
    for (name, body) in &stack.configs {
        ids.insert(
            name.clone(),
            post(&d, "/configs/create", body)["ID"].clone(),
        );
    }
    for kind in ["secrets", "configs"] {
        for obj in d.get_json(&format!("/{kind}")).as_array().unwrap() {
            ids.insert(
                obj["Spec"]["Name"].as_str().unwrap().to_string(),
                obj["ID"].clone(),
            );
        }
    }
    for body in stack.services.values() {
        let mut body = body.clone();
        let container = &mut body["TaskTemplate"]["ContainerSpec"];
        for (list, id, name) in [
            ("Secrets", "SecretID", "SecretName"),
            ("Configs", "ConfigID", "ConfigName"),
        ] {
            if let Some(refs) = container[list].as_array_mut() {
                for r in refs {
                    let n = r[name].as_str().unwrap().to_string();
                    r[id] = ids
                        .get(&n)
                        .cloned()
                        .unwrap_or_else(|| panic!("no id for {n}"));
                }
            }
        }
        post(&d, "/services/create", &body);
    }
    (d, stack)
}

/// The stack's objects of one kind, by name, as the daemon shows them (ids replaced by names,
/// volatile fields dropped).
fn objects(d: &Daemon, kind: &str, declared_subnets: &[&str]) -> BTreeMap<String, Value> {
    let filter = format!("{{\"label\":[\"com.docker.stack.namespace={STACK}\"]}}");
    let list = d.get_json(&format!("/{kind}?filters={}", urlencode(&filter)));
    let mut names_by_id = BTreeMap::new();
    for kind in ["networks", "secrets", "configs"] {
        for o in d.get_json(&format!("/{kind}")).as_array().unwrap() {
            let id = o.get("Id").or_else(|| o.get("ID")).unwrap().clone();
            let name = o
                .get("Name")
                .or_else(|| o["Spec"].get("Name"))
                .unwrap()
                .clone();
            names_by_id.insert(id.as_str().unwrap().to_string(), name);
        }
    }
    let mut out = BTreeMap::new();
    for o in list.as_array().unwrap() {
        let (name, mut v) = match kind {
            "networks" => {
                let mut n = o.clone();
                let m = n.as_object_mut().unwrap();
                for volatile in ["Id", "Created", "Containers", "Peers", "Services"] {
                    m.remove(volatile);
                }
                if let Some(opts) = m.get_mut("Options").and_then(Value::as_object_mut) {
                    opts.remove("com.docker.network.driver.overlay.vxlanid_list");
                }
                if let Some(ipam) = m.get_mut("IPAM").and_then(Value::as_object_mut) {
                    // Subnets the allocator picks differ between daemons; declared ones match.
                    if let Some(cfgs) = ipam.get_mut("Config").and_then(Value::as_array_mut) {
                        for c in cfgs.iter_mut().filter_map(Value::as_object_mut) {
                            let subnet = c.get("Subnet").and_then(Value::as_str).unwrap_or("");
                            if !declared_subnets.contains(&subnet) {
                                c.remove("Subnet");
                                c.remove("Gateway");
                            }
                        }
                    }
                }
                (o["Name"].as_str().unwrap().to_string(), n)
            }
            _ => (
                o["Spec"]["Name"].as_str().unwrap().to_string(),
                o["Spec"].clone(),
            ),
        };
        replace_ids(&mut v, &names_by_id);
        replace_dir(&mut v, &d.dir().display().to_string());
        out.insert(name, v);
    }
    out
}

fn replace_ids(v: &mut Value, names_by_id: &BTreeMap<String, Value>) {
    match v {
        Value::String(s) => {
            if let Some(name) = names_by_id.get(s.as_str()) {
                *v = json!(format!("<id of {}>", name.as_str().unwrap_or_default()));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| replace_ids(x, names_by_id)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_ids(x, names_by_id)),
        _ => {}
    }
}

/// Bind mounts are relative to each daemon's own directory.
fn replace_dir(v: &mut Value, dir: &str) {
    match v {
        Value::String(s) if s.starts_with(dir) => *s = s.replacen(dir, "<dir>", 1),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_dir(x, dir)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_dir(x, dir)),
        _ => {}
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every difference between two JSON values, as `path: a != b` lines.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(&format!("{path}.{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: docker stack deploy {a} != shoal {b}")),
        _ => {}
    }
}

fn compare(case: &Case) -> compose::LoadedStack {
    let cli = deploy_with_docker(case);
    let (api, stack) = deploy_with_loader(case);
    assert!(!stack.services.is_empty(), "the loader produced no service");
    let mut differences = Vec::new();
    let mut counts = Vec::new();
    for kind in ["services", "networks", "secrets", "configs"] {
        let a = objects(&cli, kind, case.declared_subnets);
        let b = objects(&api, kind, case.declared_subnets);
        counts.push(format!("{} {kind}", a.len()));
        let names_a: Vec<&String> = a.keys().collect();
        let names_b: Vec<&String> = b.keys().collect();
        if names_a != names_b {
            differences.push(format!(
                "{kind}: docker stack deploy made {names_a:?}, shoal {names_b:?}"
            ));
            continue;
        }
        for (name, va) in &a {
            diff(&format!("{kind}/{name}"), va, &b[name], &mut differences);
        }
    }
    assert!(
        differences.is_empty(),
        "{} differ ({}):\n{}",
        case.files.join(" + "),
        counts.join(", "),
        differences.join("\n")
    );
    let a_services = objects(&cli, "services", &[]);
    assert_eq!(
        a_services.len(),
        stack.services.len(),
        "the comparison saw every service"
    );
    stack
}

#[test]
fn voting_app() {
    let _ = compare(&Case {
        files: &["voting-app.yml"],
        env: &[],
        external_networks: &[],
        external_secrets: &[],
        declared_subnets: &[],
    });
}

#[test]
fn atsea_shop_with_a_secret() {
    let _ = compare(&Case {
        files: &["atsea-shop.yml"],
        env: &[],
        external_networks: &[],
        external_secrets: &[],
        declared_subnets: &[],
    });
}

#[test]
fn swarmprom_behind_traefik() {
    let _ = compare(&Case {
        files: &["swarmprom-traefik.yml"],
        env: &[
            ("DOMAIN", "example.com"),
            ("ADMIN_USER", "admin"),
            ("HASHED_PASSWORD", "$apr1$x$y"),
        ],
        external_networks: &["traefik-public"],
        external_secrets: &[],
        declared_subnets: &[],
    });
}

#[test]
fn dogvscat_ghost_with_secret_and_anchors() {
    let _ = compare(&Case {
        files: &["dogvscat-ghost.yml"],
        env: &[],
        external_networks: &["proxy"],
        external_secrets: &[],
        declared_subnets: &[],
    });
}

#[test]
fn dogvscat_elk_with_configs() {
    let _ = compare(&Case {
        files: &["dogvscat-elk.yml"],
        env: &[("KIBANA_USER", "kibana")],
        external_networks: &["proxy"],
        external_secrets: &[],
        declared_subnets: &[],
    });
}

#[test]
fn dogvscat_traefik_proxy() {
    let _ = compare(&Case {
        files: &["dogvscat-proxy.yml"],
        env: &[],
        external_networks: &[],
        external_secrets: &[],
        declared_subnets: &[],
    });
}

#[test]
fn kitchen_sink_with_override() {
    let _ = compare(&Case {
        files: &["kitchen-sink.yml", "kitchen-sink.override.yml"],
        env: &[
            ("PY_TAG", "3.12"),
            ("FROM_CALLER", "from-env"),
            ("BARE", "bare"),
        ],
        external_networks: &[],
        external_secrets: &["shared-ca-bundle"],
        declared_subnets: &["10.200.0.0/24"],
    });
}

#[test]
fn loader_corners() {
    let stack = compare(&Case {
        files: &["quirks.yml"],
        env: &[("SET", "set-value"), ("FROM_CALLER", "from-env")],
        external_networks: &[],
        external_secrets: &[],
        declared_subnets: &[],
    });
    // docker stack deploy agreed with all of these (the comparison above passed).
    let env = &stack.services["st_quirks"]["TaskTemplate"]["ContainerSpec"]["Env"];
    for want in [
        "OCTAL=288",
        "QUOTED=0440",
        "YES_IS_A_STRING=yes",
        "FLOAT=1",
        "EXP=1000",
        "BIG=1e+06",
        "SMALL=1e-05",
        "UNSET_DEFAULT_SEARCH=way",
        "UNBRACED_DEFAULT=fallback",
        "NESTED=${SET}",
        "ESCAPED=$SET and ${SET}",
        "FROM_CALLER=from-env",
        "NOT_IN_CALLER",
    ] {
        assert!(
            env.as_array().unwrap().contains(&json!(want)),
            "{want} missing from {env}"
        );
    }
}

/// Files `docker stack deploy` refuses: the loader refuses them too, naming file, line and key.
#[test]
fn refuses_what_docker_stack_deploy_refuses() {
    let d = swarm("compose-refuse");
    let env = BTreeMap::from([(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_default(),
    )]);
    let cases: &[(&str, &str)] = &[
        (
            "services:\n  web:\n    image: nginx\n    replica: 2\n",
            "bad.yml:4: services.web: additional property replica is not allowed",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: \"2\"\n",
            "bad.yml:5: services.web.deploy.replicas: must be an integer",
        ),
        (
            "services:\n  web:\n    image: nginx\n    environment:\n      DEBUG: true\n",
            "bad.yml:5: services.web.environment.DEBUG: must be a string, number or null",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          cpus: 0.5\n",
            "bad.yml:7: services.web.deploy.resources.limits.cpus: must be a string",
        ),
        (
            "services:\n  web:\n    image: nginx\n    stop_grace_period: 10\n",
            "bad.yml:4: services.web.stop_grace_period: must be a string",
        ),
        (
            "services:\n  web:\n    image: nginx\n    healthcheck:\n      interval: 10 seconds\n",
            "bad.yml:5: services.web.healthcheck.interval: must be a duration",
        ),
        (
            "services:\n  web:\n    image: nginx\n    cpu_shares: 512\n",
            "bad.yml:4: services.web.cpu_shares: not supported by docker stack deploy",
        ),
        (
            "services:\n  web:\n    image: nginx\n    ports:\n      - \"80:80/icmp\"\n",
            "bad.yml:5: services.web.ports[0]: invalid proto",
        ),
        (
            "services:\n  web:\n    image: nginx\n    networks: [back]\n",
            "bad.yml:4: services.web.networks: undefined network \"back\"",
        ),
        (
            "services:\n  web:\n    image: nginx\n    secrets: [pw]\n",
            "bad.yml:4: services.web.secrets: undefined secret \"pw\"",
        ),
        (
            "services:\n  web:\n    image: ${IMAGE?IMAGE must be set}\n",
            "bad.yml:3: services.web.image: required variable IMAGE is missing a value",
        ),
        (
            "services:\n  web:\n    image: nginx\n    command: echo 5$\n",
            "bad.yml:4: services.web.command: invalid interpolation format",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      mode: global\n      replicas: 2\n",
            "bad.yml:6: services.web.deploy.replicas: replicas can only be used",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      mode: daemon\n",
            "bad.yml:5: services.web.deploy.mode: Unknown mode: daemon",
        ),
        (
            "services:\n  web:\n    image: Nginx\n",
            "bad.yml:3: services.web.image: invalid image reference",
        ),
        (
            "services:\n  web:\n    deploy:\n      replicas: 1\n",
            "bad.yml:2: services.web.image: invalid image reference for service web: no image specified",
        ),
        (
            "services:\n  web:\n    image: nginx\n  web:\n    image: redis\n",
            "bad.yml:4: invalid YAML: duplicate mapping key",
        ),
        ("version: \"2.4\"\nservices: {}\n", "bad.yml:1: version: unsupported Compose file version: 2.4"),
        ("services:\nnetworks: {}\n", "bad.yml:1: services: must be a mapping, got null"),
        ("services: {}\nname: app\n", "bad.yml:2: additional property name is not allowed"),
        (
            "version: \"3.6\"\nservices:\n  web:\n    image: nginx\n    init: true\n",
            "bad.yml:5: services.web: additional property init is not allowed in version 3.6",
        ),
        (
            "version: \"3.1\"\nservices:\n  web:\n    image: nginx\n    ports:\n      - target: 80\n",
            "bad.yml:6: services.web.ports[0]: additional property target is not allowed in version 3.1",
        ),
    ];
    let mut problems = Vec::new();
    for (text, want) in cases {
        d.write_file("bad.yml", text);
        let out = docker_with_env(
            &d,
            &[
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "-c",
                "bad.yml",
                STACK,
            ],
            &env,
        );
        if out.ok {
            problems.push(format!("docker stack deploy took:\n{text}"));
        }
        let loaded = compose::load(&ComposeInput {
            stack: STACK.into(),
            files: vec![SourceFile {
                name: "bad.yml".into(),
                content: text.to_string(),
            }],
            working_dir: d.dir().display().to_string(),
            ..Default::default()
        });
        match loaded {
            Ok(_) => problems.push(format!("compose::load took:\n{text}")),
            Err(e) if !e.to_string().starts_with(want) => problems.push(format!(
                "compose::load said {e}\nwanted {want}...\nfor:\n{text}"
            )),
            Err(_) => {}
        }
        // What the CLI created before failing (networks) must not leak into the next case.
        let _ = docker_with_env(&d, &["stack", "rm", STACK], &env);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
