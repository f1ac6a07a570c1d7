//! End-to-end tests of [`super::load`] and [`super::references`] on small files.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn input(files: &[(&str, &str)]) -> ComposeInput {
    ComposeInput {
        stack: "st".into(),
        files: files
            .iter()
            .map(|(name, content)| SourceFile {
                name: name.to_string(),
                content: content.to_string(),
            })
            .collect(),
        working_dir: "/home/u/app".into(),
        ..Default::default()
    }
}

fn load1(text: &str) -> Result<LoadedStack> {
    load(&input(&[("stack.yml", text)]))
}

#[test]
fn a_minimal_service_gets_docker_stack_deploy_defaults() {
    let stack = load1("services:\n  web:\n    image: nginx\n").unwrap();
    assert_eq!(
        stack.services["st_web"],
        json!({
            "Name": "st_web",
            "Labels": {"com.docker.stack.image": "nginx", "com.docker.stack.namespace": "st"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "nginx:latest",
                    "Labels": {"com.docker.stack.namespace": "st"},
                    "Privileges": {"CredentialSpec": null, "SELinuxContext": null},
                },
                "Resources": {},
                "Placement": {},
                "Networks": [{"Target": "st_default", "Aliases": ["web"]}],
                "ForceUpdate": 0,
            },
            "Mode": {"Replicated": {}},
            "EndpointSpec": {},
        })
    );
    assert_eq!(stack.networks.keys().collect::<Vec<_>>(), ["st_default"]);
    assert_eq!(stack.networks["st_default"]["Driver"], "overlay");
}

#[test]
fn octal_modes_anchors_and_merge_keys() {
    let text = r#"
version: "3.8"
x-defaults: &defaults
  image: redis:7
  deploy:
    replicas: 2
secrets:
  pw:
    file: ./pw.txt
services:
  cache:
    <<: *defaults
    secrets:
      - source: pw
        mode: 0440
"#;
    let mut inp = input(&[("stack.yml", text)]);
    inp.attachments
        .insert("./pw.txt".into(), b"s3cr3t".to_vec());
    let stack = load(&inp).unwrap();
    let svc = &stack.services["st_cache"];
    assert_eq!(svc["Mode"], json!({"Replicated": {"Replicas": 2}}));
    assert_eq!(svc["TaskTemplate"]["ContainerSpec"]["Image"], "redis:7");
    assert_eq!(
        svc["TaskTemplate"]["ContainerSpec"]["Secrets"],
        json!([{"File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 288}, "SecretID": "", "SecretName": "st_pw"}])
    );
    assert_eq!(stack.secrets["st_pw"]["Data"], "czNjcjN0");
}

#[test]
fn interpolation_uses_the_callers_environment() {
    let mut inp = input(&[(
        "stack.yml",
        "services:\n  web:\n    image: ${IMAGE:-nginx}:${TAG}\n    deploy:\n      replicas: ${REPLICAS}\n    environment:\n      - FROM_CALLER\n      - LITERAL=$$HOME\n",
    )]);
    inp.env = [
        ("TAG".to_string(), "1.25".to_string()),
        ("REPLICAS".into(), "3".into()),
        ("FROM_CALLER".into(), "yes".into()),
    ]
    .into();
    let stack = load(&inp).unwrap();
    let svc = &stack.services["st_web"];
    assert_eq!(svc["TaskTemplate"]["ContainerSpec"]["Image"], "nginx:1.25");
    assert_eq!(svc["Mode"]["Replicated"]["Replicas"], 3);
    assert_eq!(
        svc["TaskTemplate"]["ContainerSpec"]["Env"],
        json!(["FROM_CALLER=yes", "LITERAL=$HOME"])
    );
    let refs = references(&inp.files, &BTreeMap::new()).unwrap();
    assert_eq!(
        refs.variables.into_iter().collect::<Vec<_>>(),
        ["FROM_CALLER", "IMAGE", "REPLICAS", "TAG"]
    );
}

#[test]
fn several_files_merge_in_order() {
    let base = "services:\n  web:\n    image: nginx:1\n    ports: [\"80:80\"]\n    environment: {A: \"1\"}\n  db:\n    image: postgres\n";
    let over = "services:\n  web:\n    image: nginx:2\n    ports: [\"80:8080\", \"443:443\"]\n    environment: {B: \"2\"}\n";
    let stack = load(&input(&[("a.yml", base), ("b.yml", over)])).unwrap();
    let web = &stack.services["st_web"];
    assert_eq!(web["TaskTemplate"]["ContainerSpec"]["Image"], "nginx:2");
    assert_eq!(web["Labels"]["com.docker.stack.image"], "nginx:2");
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["Env"],
        json!(["A=1", "B=2"])
    );
    assert_eq!(
        web["EndpointSpec"]["Ports"],
        json!([
            {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 80, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 443, "PublishedPort": 443, "PublishMode": "ingress"},
        ])
    );
    assert!(stack.services.contains_key("st_db"));
    let e = load(&input(&[
        ("a.yml", base),
        ("b.yml", "version: \"3.8\"\nservices: {}\n"),
    ]))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.yml: version: version mismatched between two composefiles : 3.13 and 3.8"
    );
}

#[test]
fn forbidden_keys_get_docker_clis_fix_it_message() {
    let e = load1("services:\n  web:\n    image: nginx\n    cpu_shares: 512\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:4: services.web.cpu_shares: not supported by docker stack deploy: Set resource limits using deploy.resources"
    );
    let e = load1("services:\n  web:\n    extends: base\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("Support for `extends` is not implemented yet."),
        "{e}"
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let e = load1("services:\n  web:\n    image: nginx\n    deploy:\n      replicas: three\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:5: services.web.deploy.replicas: must be an integer, got \"three\""
    );
    let e =
        load1("services:\n  web:\n    image: nginx\n    deploy:\n      replica: 3\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:5: services.web.deploy: additional property replica is not allowed"
    );
    let e = load1("services:\n  web:\n    image: nginx\n    environment:\n      DEBUG: true\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:5: services.web.environment.DEBUG: must be a string, number or null, got true"
    );
    let e = load1("services:\n  web:\n    image: nginx\n    healthcheck:\n      interval: 10\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:5: services.web.healthcheck.interval: must be a string, got 10"
    );
    let e = load1("services:\n  web:\n    image: nginx\n    healthcheck:\n      interval: 10x\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("stack.yml:5: services.web.healthcheck.interval: must be a duration"),
        "{e}"
    );
    let e = load1("services:\n  web:\n    image: nginx\n    networks: [back]\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:4: services.web.networks: undefined network \"back\""
    );
    let e = load1("version: 3.8\nservices: {}\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("stack.yml:1: version: must be a string"),
        "{e}"
    );
    let e = load1("services:\n  web:\n    deploy: {}\n").unwrap_err();
    assert!(e.to_string().contains("no image specified"), "{e}");
}

#[test]
fn extensions_are_ignored_and_unsupported_keys_warned() {
    let stack = load1(
        "x-top: {any: thing}\nservices:\n  web:\n    image: nginx\n    x-mine: 1\n    build: .\n    container_name: web1\n    depends_on: [db]\n  db:\n    image: postgres\n",
    )
    .unwrap();
    let joined = stack.warnings.join("\n");
    assert!(
        joined.contains("stack.yml:6: services.web.build: ignored"),
        "{joined}"
    );
    assert!(
        joined.contains("stack.yml:7: services.web.container_name: ignored"),
        "{joined}"
    );
    assert!(
        joined.contains("stack.yml:8: services.web.depends_on: ignored"),
        "{joined}"
    );
    assert!(!joined.contains("x-"), "{joined}");
    let e = load1("services:\n  web:\n    image: nginx\n    deploy:\n      x-no: 1\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("additional property x-no is not allowed"),
        "{e}"
    );
}

#[test]
fn a_rich_service_converts_like_docker_cli() {
    let text = r#"
services:
  api:
    image: docker.io/library/python:3.12
    command: python -m http.server "8000"
    entrypoint: ["/bin/sh", "-c"]
    hostname: api-host
    user: "1000:1000"
    working_dir: /srv
    env_file: ./api.env
    environment:
      PORT: 8000
      RATIO: 1.0
    labels: [com.example=api]
    extra_hosts: ["db.local:10.0.0.5"]
    dns: 8.8.8.8
    cap_add: [net_admin]
    sysctls: {net.core.somaxconn: 1024}
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    stop_grace_period: 1m30s
    init: true
    read_only: true
    healthcheck:
      test: curl -f http://localhost:8000
      interval: 30s
      retries: 3
    ports:
      - "8000:8000"
      - target: 9000
        published: 9001
        protocol: udp
        mode: host
    volumes:
      - data:/data:ro
      - ./conf:/etc/conf
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 1000000}
    logging:
      driver: json-file
      options: {max-size: 10m}
    deploy:
      mode: replicated
      replicas: 2
      endpoint_mode: VIP
      labels: {tier: back}
      resources:
        limits: {cpus: "0.5", memory: 256M, pids: 100}
        reservations: {cpus: "0.25", memory: 128M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, max_failure_ratio: 0.1, order: start-first}
      rollback_config: {monitor: 5s}
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
volumes:
  data:
    driver_opts: {type: none}
"#;
    let mut inp = input(&[("stack.yml", text)]);
    inp.attachments
        .insert("./api.env".into(), b"FROM_FILE=1\nPORT=1\n".to_vec());
    let stack = load(&inp).unwrap();
    let svc = &stack.services["st_api"];
    let c = &svc["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Image"], "python:3.12");
    assert_eq!(
        svc["Labels"]["com.docker.stack.image"],
        "docker.io/library/python:3.12"
    );
    assert_eq!(svc["Labels"]["tier"], "back");
    assert_eq!(c["Command"], json!(["/bin/sh", "-c"]));
    assert_eq!(c["Args"], json!(["python", "-m", "http.server", "8000"]));
    assert_eq!(c["Env"], json!(["FROM_FILE=1", "PORT=8000", "RATIO=1"]));
    assert_eq!(c["Labels"]["com.example"], "api");
    assert_eq!(c["Hosts"], json!(["10.0.0.5 db.local"]));
    assert_eq!(c["DNSConfig"], json!({"Nameservers": ["8.8.8.8"]}));
    assert_eq!(c["CapabilityAdd"], json!(["CAP_NET_ADMIN"]));
    assert_eq!(c["Sysctls"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(
        c["Ulimits"],
        json!([{"Name": "nofile", "Hard": 2048, "Soft": 1024}, {"Name": "nproc", "Hard": 512, "Soft": 512}])
    );
    assert_eq!(c["StopGracePeriod"], 90_000_000_000i64);
    assert_eq!(c["Init"], true);
    assert_eq!(c["ReadOnly"], true);
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "curl -f http://localhost:8000"], "Interval": 30_000_000_000i64, "Retries": 3})
    );
    assert_eq!(
        c["Mounts"],
        json!([
            {"Type": "volume", "Source": "st_data", "Target": "/data", "ReadOnly": true,
             "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "st"}, "DriverConfig": {"Options": {"type": "none"}}}},
            {"Type": "bind", "Source": "/home/u/app/conf", "Target": "/etc/conf"},
            {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 1000000}},
        ])
    );
    let t = &svc["TaskTemplate"];
    assert_eq!(
        t["LogDriver"],
        json!({"Name": "json-file", "Options": {"max-size": "10m"}})
    );
    assert_eq!(
        t["Resources"],
        json!({"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 268_435_456, "Pids": 100},
               "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 134_217_728}})
    );
    assert_eq!(
        t["RestartPolicy"],
        json!({"Condition": "on-failure", "Delay": 5_000_000_000i64, "MaxAttempts": 3, "Window": 120_000_000_000i64})
    );
    assert_eq!(
        t["Placement"],
        json!({"Constraints": ["node.role == worker"], "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}], "MaxReplicas": 1})
    );
    assert_eq!(
        svc["UpdateConfig"],
        json!({"Parallelism": 2, "Delay": 10_000_000_000i64, "FailureAction": "rollback", "MaxFailureRatio": 0.1, "Order": "start-first"})
    );
    assert_eq!(
        svc["RollbackConfig"],
        json!({"Parallelism": 1, "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0, "Order": ""})
    );
    assert_eq!(
        svc["EndpointSpec"],
        json!({"Mode": "vip", "Ports": [
            {"Protocol": "tcp", "TargetPort": 8000, "PublishedPort": 8000, "PublishMode": "ingress"},
            {"Protocol": "udp", "TargetPort": 9000, "PublishedPort": 9001, "PublishMode": "host"},
        ]})
    );
}

#[test]
fn references_list_variables_and_files() {
    let files = [SourceFile {
        name: "stack.yml".into(),
        content: "services:\n  web:\n    image: nginx:${TAG:-1}\n    env_file: [\"./${ENV}.env\"]\n    environment: {TOKEN: , SET: x}\n    volumes: [\"~/data:/data\"]\nsecrets:\n  pw: {file: ./pw.txt}\nconfigs:\n  c: {external: true}\n".into(),
    }];
    let refs = references(&files, &[("ENV".to_string(), "prod".to_string())].into()).unwrap();
    assert_eq!(
        refs.variables.into_iter().collect::<Vec<_>>(),
        ["ENV", "HOME", "TAG", "TOKEN"]
    );
    assert_eq!(
        refs.files.into_iter().collect::<Vec<_>>(),
        ["./prod.env", "./pw.txt"]
    );
    assert_eq!(env_file_variables(b"A=1\nB\n"), ["B"]);
}

#[test]
fn keys_newer_than_the_files_version_are_refused() {
    let e = load1("version: \"3.6\"\nservices:\n  web:\n    image: nginx\n    init: true\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "stack.yml:5: services.web: additional property init is not allowed in version 3.6 (it needs 3.7 or later)"
    );
    let e = load1(
        "version: \"3.1\"\nservices:\n  web:\n    image: nginx\n    ports:\n      - target: 80\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("additional property target is not allowed in version 3.1"),
        "{e}"
    );
    let e = load1("version: \"3.3\"\nx-common: {}\nservices: {}\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("x-common is not allowed in version 3.3"),
        "{e}"
    );
    let e = load1("version: \"3.9\"\nservices: {}\nvolumes:\n  v:\n    x-cluster-spec: {}\n")
        .unwrap_err();
    assert!(e.to_string().contains("needs 3.10"), "{e}");
    assert!(
        load1("version: \"3.10\"\nservices: {}\nvolumes:\n  v:\n    x-cluster-spec: {}\n").is_ok()
    );
    assert!(load1("version: \"3.7\"\nx-a: 1\nservices:\n  web:\n    image: nginx\n    init: true\n    x-b: 2\n").is_ok());
}
