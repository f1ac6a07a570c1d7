//! Who may open the dashboard.
//!
//! The dashboard shows the whole swarm (names, images, addresses, errors), so it is never open
//! to a network by accident:
//!
//! - on a **loopback** address it may be served without authentication (whoever can reach it
//!   already runs code on this host);
//! - on **any other** address it needs either TLS with client certificates (the same CA,
//!   certificate and key files as the API's `--tlsverify`) or a **login token** read from a file:
//!   a login form that sets an `HttpOnly`, `SameSite=Strict` session cookie. Without one of them
//!   the daemon refuses to start ([`Access::decide`]).
//!
//! Tokens are compared in constant time (over SHA-256 digests, so the length of the token is
//! not revealed either). Sessions live in this process's memory: a restart logs everyone out,
//! which is the safe direction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "shoal_dashboard_session";
/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The shortest token accepted: shorter ones can be guessed over the network.
pub const MIN_TOKEN_LEN: usize = 16;
/// How long a wrong token holds up the next login attempt: guesses are at most a few a second,
/// however many connections make them.
pub const WRONG_TOKEN_PAUSE: Duration = Duration::from_millis(250);
/// Most sessions kept at once; the oldest go first (a client logging in in a loop cannot grow
/// the daemon's memory).
const MAX_SESSIONS: usize = 1024;

/// How the dashboard's listener is protected.
#[derive(Clone)]
pub struct Access {
    /// TLS with client certificates (the connection itself is the authentication).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The login token, when the dashboard asks for one.
    pub token: Option<Token>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl Access {
    /// Decides how the dashboard bound at `addr` is protected, or why it may not be served:
    /// `tls` from `--dashboard-tlsverify`, `token_file` from `--dashboard-token-file`.
    pub fn decide(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        token_file: Option<&Path>,
    ) -> Result<Access, String> {
        let token = token_file.map(Token::from_file).transpose()?;
        if tls.is_none() && token.is_none() && !addr.ip().is_loopback() {
            return Err(format!(
                "refusing to serve the dashboard on {addr} without authentication: anyone who reaches it would see the whole swarm. \
                 Serve it on a loopback address (--dashboard-addr 127.0.0.1:PORT), or give --dashboard-token-file FILE (a login form), \
                 or --dashboard-tlsverify with --tlscacert CA --tlscert CERT --tlskey KEY (browsers then need a client certificate signed by CA)"
            ));
        }
        Ok(Access { tls, token })
    }

    /// How the listener is protected, for the start-up line.
    pub fn describe(&self) -> &'static str {
        match (&self.tls, &self.token) {
            (Some(_), Some(_)) => "TLS with client certificates and a login token",
            (Some(_), None) => "TLS with client certificates",
            (None, Some(_)) => "plain HTTP with a login token",
            (None, None) => "plain HTTP on loopback, no login",
        }
    }
}

/// The login token and the sessions it opened.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
    sessions: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
    /// Login attempts take turns (see [`Token::check`]).
    attempts: Arc<tokio::sync::Mutex<()>>,
}

impl Token {
    /// Reads the token from `path` (surrounding white space ignored).
    pub fn from_file(path: &Path) -> Result<Token, String> {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("--dashboard-token-file {}: {e}", path.display()))?;
        Token::new(raw.trim())
            .map_err(|e| format!("--dashboard-token-file {}: {e}", path.display()))
    }

    /// A token with this value.
    pub fn new(value: &str) -> Result<Token, String> {
        if value.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token has {} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 24 > FILE`)",
                value.len()
            ));
        }
        Ok(Token {
            digest: Sha256::digest(value.as_bytes()).into(),
            sessions: Arc::default(),
            attempts: Arc::default(),
        })
    }

    /// Whether `candidate` is the token, in time that depends on neither.
    pub fn matches(&self, candidate: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        constant_time_eq(&self.digest, &other)
    }

    /// A login attempt: whether `candidate` is the token. Attempts take turns and a wrong one
    /// keeps the turn for [`WRONG_TOKEN_PAUSE`], so guessing is slow even over many connections
    /// (a right token waits at most behind the guesses queued before it).
    pub async fn check(&self, candidate: &str) -> bool {
        let _turn = self.attempts.lock().await;
        let ok = self.matches(candidate);
        if !ok {
            tokio::time::sleep(WRONG_TOKEN_PAUSE).await;
        }
        ok
    }

    /// Opens a session: the cookie value to give the browser.
    pub fn open_session(&self) -> String {
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, expires| *expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                sessions.remove(&oldest);
            }
        }
        // Kept by digest: a memory dump shows no usable cookie.
        sessions.insert(Sha256::digest(id).into(), now + SESSION_TTL);
        hex::encode(id)
    }

    /// Whether `cookie` is the value of an open session.
    pub fn session_valid(&self, cookie: &str) -> bool {
        let Ok(raw) = hex::decode(cookie) else {
            return false;
        };
        let key: [u8; 32] = Sha256::digest(&raw).into();
        let sessions = self.sessions.lock().expect("sessions lock");
        // A lookup by digest: timing can only tell how a digest compares, not the cookie.
        sessions.get(&key).is_some_and(|e| *e > Instant::now())
    }

    /// Ends a session (logout).
    pub fn close_session(&self, cookie: &str) {
        if let Ok(raw) = hex::decode(cookie) {
            let key: [u8; 32] = Sha256::digest(&raw).into();
            self.sessions.lock().expect("sessions lock").remove(&key);
        }
    }
}

/// `a == b` for equal-length inputs, looking at every byte whatever differs.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box: keep the compiler from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value of a new session (`Secure` when served over TLS).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_open_dashboard_is_only_allowed_on_loopback() {
        assert!(Access::decide(addr("127.0.0.1:8080"), None, None).is_ok());
        assert!(Access::decide(addr("[::1]:8080"), None, None).is_ok());
        for a in ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080"] {
            let err = Access::decide(addr(a), None, None).unwrap_err();
            assert!(err.contains("--dashboard-token-file"), "{err}");
        }
    }

    #[test]
    fn a_token_file_protects_any_address_and_short_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "short\n").unwrap();
        let err = Access::decide(addr("0.0.0.0:1"), None, Some(&file)).unwrap_err();
        assert!(err.contains("at least 16"), "{err}");
        std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
        let access = Access::decide(addr("0.0.0.0:1"), None, Some(&file)).unwrap();
        let token = access.token.expect("a token");
        assert!(token.matches("0123456789abcdef0123"));
        assert!(!token.matches("0123456789abcdef0124"));
        assert!(!token.matches(""));
        let missing = Access::decide(addr("0.0.0.0:1"), None, Some(&dir.path().join("nope")));
        assert!(missing.unwrap_err().contains("--dashboard-token-file"));
    }

    #[test]
    fn sessions_are_valid_until_closed_and_unknown_cookies_are_not() {
        let token = Token::new("a-long-enough-token").unwrap();
        let cookie = token.open_session();
        assert!(token.session_valid(&cookie));
        assert!(!token.session_valid("00"));
        assert!(!token.session_valid("not hex"));
        assert!(!token.session_valid(&hex::encode([7u8; 32])));
        token.close_session(&cookie);
        assert!(!token.session_valid(&cookie));
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let c = set_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie("abc", false).contains("Secure"));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("a=b; {SESSION_COOKIE}=abc; c=d").parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
    }
}
