//! GitOps over https with a token from a swarm secret: a git repository served by an HTTPS
//! server in the test (git's "dumb" HTTP protocol: the repository's files, after `git
//! update-server-info`) that answers 401 to any request without the expected Authorization
//! header. The daemon trusts the test's certificate through `GIT_SSL_CAINFO` in its
//! environment, as an operator would for a private CA.

mod common;
mod gitops_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{wait_for, Daemon};
use gitops_common::{git, holds, shoal};
use serde_json::Value;

/// An HTTPS server for one repository's `.git` directory at `/repo.git/`; counts the
/// requests it refused.
struct Server {
    port: u16,
    ca_file: PathBuf,
    refused: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

fn serve(git_dir: PathBuf, authorization: String) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let _ = answer(&mut tls, &git_dir, &authorization, &counter);
        }
    });
    Server {
        port,
        ca_file,
        refused,
        _dir: dir,
    }
}

/// One request, then the connection is closed.
fn answer(
    tls: &mut (impl Read + Write),
    git_dir: &Path,
    authorization: &str,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut *tls);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorized = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") && v.trim() == authorization {
                authorized = true;
            }
        }
    }
    drop(reader);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = path.split('?').next().unwrap_or("");
    let (status, body): (&str, Vec<u8>) = if !authorized {
        refused.fetch_add(1, Ordering::SeqCst);
        ("401 Unauthorized", b"token required".to_vec())
    } else {
        match path
            .strip_prefix("/repo.git/")
            .filter(|p| !p.contains(".."))
            .and_then(|p| std::fs::read(git_dir.join(p)).ok())
        {
            Some(bytes) => ("200 OK", bytes),
            None => ("404 Not Found", Vec::new()),
        }
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nWWW-Authenticate: Basic realm=\"test\"\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    tls.write_all(&body)?;
    tls.flush()
}

fn source(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/shoal/v1/gitops/{name}"))
}

#[test]
fn an_https_repository_is_fetched_with_the_token_from_a_swarm_secret() {
    let token = format!("tok-{}", std::process::id());
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.path().join("compose.yaml"),
        "services:\n  app:\n    image: shoal-test/busybox:1\n    command: [\"sleep\", \"100000\"]\n",
    )
    .unwrap();
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "--quiet", "-m", "app"]);
    git(repo.path(), &["update-server-info"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let server = serve(repo.path().join(".git"), format!("Basic {basic}"));

    let ca = server.ca_file.to_str().unwrap().to_string();
    let d = Daemon::start_with_env(
        "gitops-https",
        &["--executor", "sim"],
        &[("GIT_SSL_CAINFO", &ca)],
    );
    d.init_swarm();
    let secret_file = d.write_file("token", &token);
    d.ok(&[
        "secret",
        "create",
        "gh-token",
        secret_file.to_str().unwrap(),
    ]);
    let url = format!("https://127.0.0.1:{}/repo.git", server.port);

    // Without the token: refused by the server, Stalled.
    let (ok, out) = shoal(
        &d.socket,
        &[
            "gitops",
            "add",
            "anon",
            "--repo",
            &url,
            "--ref",
            "main",
            "--interval",
            "1s",
        ],
    );
    assert!(ok, "{out}");
    let s = wait_for(Duration::from_secs(60), "anon Stalled", || {
        let s = source(&d, "anon");
        holds(&s, "Stalled").then_some(s)
    });
    assert!(server.refused.load(Ordering::SeqCst) > 0);
    assert_eq!(s["Status"]["LastAppliedCommit"], "", "{s:#}");
    shoal(&d.socket, &["gitops", "rm", "anon"]);

    // With it: fetched and applied.
    let (ok, out) = shoal(
        &d.socket,
        &[
            "gitops",
            "add",
            "app",
            "--repo",
            &url,
            "--ref",
            "main",
            "--interval",
            "1s",
            "--token-secret",
            "gh-token",
        ],
    );
    assert!(ok, "{out}");
    let mut last = Value::Null;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(60), "app applied over https", || {
            last = source(&d, "app");
            (last["Status"]["LastAppliedCommit"] == head.as_str()).then_some(())
        })
    }));
    assert!(found.is_ok(), "{last:#}");
    d.get_json("/services/app_app");
    // The token is in no answer of the API.
    assert!(!last.to_string().contains(&token), "{last}");

    // A missing token secret is said, not fetched anonymously.
    let (ok, out) = shoal(
        &d.socket,
        &[
            "gitops",
            "add",
            "x",
            "--repo",
            &url,
            "--ref",
            "main",
            "--token-secret",
            "missing",
        ],
    );
    assert!(!ok);
    assert!(out.contains("no such swarm secret"), "{out}");
}
