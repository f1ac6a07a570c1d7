//! Push notifications: GitHub and Gitea sign the body with HMAC-SHA256 (`X-Hub-Signature-256:
//! sha256=<hex>`, Gitea also `X-Gitea-Signature: <hex>`); GitLab sends the secret itself
//! (`X-Gitlab-Token`). A request is accepted only if one of them checks out against the
//! source's webhook secret; comparisons take the same time whatever the input.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Equal bytes, in a time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a webhook request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No header this endpoint knows.
    #[error("no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header: the request is not signed")]
    Unsigned,
    /// A signature or token that does not match.
    #[error("the signature does not match the source's webhook secret")]
    BadSignature,
}

/// Checks the request's signature or token against `secret`.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), Refused> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let hex_sig = header("x-hub-signature-256")
        .map(|v| v.strip_prefix("sha256=").unwrap_or(""))
        .or_else(|| header("x-gitea-signature"));
    if let Some(sig) = hex_sig {
        let expected = hex::encode(hmac_sha256(secret, body));
        return if same(expected.as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
            Ok(())
        } else {
            Err(Refused::BadSignature)
        };
    }
    if let Some(token) = header("x-gitlab-token") {
        return if same(token.as_bytes(), secret) {
            Ok(())
        } else {
            Err(Refused::BadSignature)
        };
    }
    Err(Refused::Unsigned)
}

/// Whether a push payload is about `git_ref` (a payload without a `ref` is taken to be:
/// other events, or a provider that does not say).
pub fn concerns(body: &[u8], git_ref: &str) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return true;
    };
    let Some(pushed) = v.get("ref").and_then(|r| r.as_str()) else {
        return true;
    };
    pushed == git_ref
        || pushed.strip_prefix("refs/heads/") == Some(git_ref)
        || pushed.strip_prefix("refs/tags/") == Some(git_ref)
        // A source pinned to a commit id is synced by any push (the commit may be on any branch).
        || super::git::looks_like_sha(git_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn long_keys_are_hashed_first_rfc_4231_test_case_6() {
        let key = [0xaau8; 131];
        let mac = hmac_sha256(
            &key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_and_tokens_are_checked() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = format!("sha256={}", hex::encode(hmac_sha256(b"s3cret", body)));
        let mut h = HeaderMap::new();
        assert_eq!(verify(&h, body, b"s3cret"), Err(Refused::Unsigned));
        h.insert("x-hub-signature-256", good.parse().unwrap());
        assert_eq!(verify(&h, body, b"s3cret"), Ok(()));
        assert_eq!(verify(&h, body, b"other"), Err(Refused::BadSignature));
        assert_eq!(
            verify(&h, b"tampered", b"s3cret"),
            Err(Refused::BadSignature)
        );
        let mut g = HeaderMap::new();
        g.insert("x-gitlab-token", "s3cret".parse().unwrap());
        assert_eq!(verify(&g, body, b"s3cret"), Ok(()));
        assert_eq!(verify(&g, body, b"s3cre"), Err(Refused::BadSignature));
        assert!(concerns(body, "main"));
        assert!(!concerns(body, "dev"));
        assert!(concerns(b"not json", "dev"));
    }
}
