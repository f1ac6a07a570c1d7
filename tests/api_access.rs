//! Who may reach the API: the unix socket is owner-only (or a named group's), a TCP listener
//! requires TLS and a client certificate signed by the configured CA, and plain TCP is refused
//! unless asked for explicitly; TLS listeners speak TLS 1.2+ with forward-secret AEAD suites only.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, Daemon};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `shoal daemon` with `args` (and its own data dir and socket) that must refuse to
/// start: returns its stderr, and checks that it left no socket behind.
fn refused_daemon(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("daemon")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--api-socket")
        .arg(&socket)
        .args(["--executor", "sim"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shoal daemon {args:?} did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!status.success(), "daemon {args:?} started: {stderr}");
    assert!(!socket.exists(), "a refused daemon left its socket behind");
    assert!(
        !dir.path().join("data").exists(),
        "a refused daemon created its data dir"
    );
    stderr
}

#[test]
fn the_api_socket_is_owner_only_unless_a_group_is_named() {
    let d = Daemon::start("acc-owner");
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("Debian has a nogroup group");
    let g = Daemon::start_with_args(
        "acc-group",
        &["--executor", "sim", "--api-socket-group", "nogroup"],
    );
    let meta = std::fs::metadata(&g.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    assert_eq!(g.curl("GET", "/_ping", None).0, 200);

    let err = refused_daemon(&["--api-socket-group", "no-such-group-here"]);
    assert!(err.contains("no-such-group-here"), "{err}");
}

#[test]
fn plain_tcp_is_refused_unless_asked_for() {
    let addr = format!("127.0.0.1:{}", free_port());
    let err = refused_daemon(&["--api-tcp", &addr]);
    assert!(
        err.contains("--tlsverify") && err.contains("--insecure-tcp"),
        "{err}"
    );
    let err = refused_daemon(&["--api-tcp", &addr, "--tlsverify"]);
    assert!(err.contains("--tlscacert"), "{err}");
    let err = refused_daemon(&["--tlsverify"]);
    assert!(err.contains("--api-tcp"), "{err}");

    let _d = Daemon::start_with_args(
        "acc-insecure",
        &["--executor", "sim", "--api-tcp", &addr, "--insecure-tcp"],
    );
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{addr}/_ping"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

/// A CA and the certificates it signs, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    /// Signs a certificate `name` for `names` with `usage`; returns (cert, key) paths.
    fn sign(
        &self,
        name: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// `curl https://addr/_ping` with the CA and an optional client certificate: the HTTP code, or
/// curl's error.
fn curl_tls(addr: &str, ca: &Path, client: Option<&(PathBuf, PathBuf)>) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .arg("--cacert")
    .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd.arg(format!("https://{addr}/_ping")).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn the_tcp_api_requires_a_client_certificate_signed_by_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "api-ca");
    let server = pki.sign(
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = pki.sign("client", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let rogue_pki = Pki::new(tmp.path(), "rogue-ca");
    let rogue = rogue_pki.sign("rogue", &[], ExtendedKeyUsagePurpose::ClientAuth);

    let addr = format!("127.0.0.1:{}", free_port());
    let (ca, cert, key) = (
        pki.ca().display().to_string(),
        server.0.display().to_string(),
        server.1.display().to_string(),
    );
    let _d = Daemon::start_with_args(
        "acc-tls",
        &[
            "--executor",
            "sim",
            "--api-tcp",
            &addr,
            "--tlsverify",
            "--tlscacert",
            &ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
        ],
    );

    // A client with a certificate the CA signed gets in: curl and the docker CLI.
    let ok = wait_for(Duration::from_secs(10), "the TLS listener", || {
        curl_tls(&addr, &pki.ca(), Some(&client)).ok()
    });
    assert_eq!(ok, "200");
    let docker = Command::new("docker")
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(pki.ca())
        .arg("--tlscert")
        .arg(&client.0)
        .arg("--tlskey")
        .arg(&client.1)
        .args(["-H", &format!("tcp://{addr}")])
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .env("DOCKER_CONFIG", tmp.path())
        .output()
        .unwrap();
    assert!(
        docker.status.success(),
        "docker --tlsverify: {}",
        String::from_utf8_lossy(&docker.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&docker.stdout).trim(), "inactive");

    // No certificate, a certificate from another CA, or plain HTTP: refused.
    assert!(curl_tls(&addr, &pki.ca(), None).is_err());
    assert!(curl_tls(&addr, &pki.ca(), Some(&rogue)).is_err());
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{addr}/_ping"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    let no_cert = Command::new("docker")
        .arg("--tls")
        .arg("--tlscacert")
        .arg(pki.ca())
        .args(["-H", &format!("tcp://{addr}")])
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .env("DOCKER_CONFIG", tmp.path())
        .output()
        .unwrap();
    assert!(!no_cert.status.success());
}

/// `openssl s_client` against `addr` with `args`: whether the handshake completed.
fn handshake(addr: &str, args: &[&str]) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !text.contains("Cipher is (NONE)")
}

#[test]
fn tls_listeners_speak_tls_1_2_or_newer_with_forward_secret_aead_suites_only() {
    let d = common::swarm("acc-tls-versions");
    let swarm = format!("127.0.0.1:{}", d.swarm_port);
    // The swarm listener takes clients without a certificate at the TLS level (joining nodes):
    // a handshake is possible at all, with TLS 1.3 and with TLS 1.2 and an AEAD suite.
    assert!(handshake(&swarm, &["-tls1_3"]));
    assert!(handshake(
        &swarm,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    ));
    // Older protocols and CBC or static-key suites are refused.
    assert!(!handshake(
        &swarm,
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]
    ));
    for cipher in ["ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA"] {
        assert!(
            !handshake(&swarm, &["-tls1_2", "-cipher", cipher]),
            "{cipher} accepted"
        );
    }
}
