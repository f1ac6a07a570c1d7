//! Join tokens (`SWMTKN-1-<ca digest>-<secret>`) and unlock keys (`SWMKEY-1-<key>`).
//!
//! A join token does two jobs. Its **digest** part pins the swarm root CA: a joining node fetches
//! the CA certificate from a manager over an unauthenticated TLS connection and accepts it only if
//! its digest matches. Its **secret** part authorizes the join and selects the role: managers keep
//! one worker token and one manager token and compare the presented token to both in constant
//! time.

use std::fmt;

use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;

use super::error::{CaError, CaResult};
use super::node_cert::NodeRole;
use super::pem::ca_bundle_digest;
use super::root::RootCa;

/// First part of every join token.
pub const JOIN_TOKEN_PREFIX: &str = "SWMTKN";
/// The only join token version we produce and accept.
pub const JOIN_TOKEN_VERSION: &str = "1";
/// Length of the CA digest part: a SHA-256 in base 36, zero-padded.
pub const TOKEN_DIGEST_LEN: usize = 50;
/// Length of the secret part: 128 random bits in base 36, zero-padded.
pub const TOKEN_SECRET_LEN: usize = 25;
/// Prefix of unlock keys.
pub const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";

const SECRET_BYTES: usize = 16;
const BASE36_DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn random_bytes<const N: usize>() -> CaResult<[u8; N]> {
    let mut b = [0u8; N];
    OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| CaError::Tls(format!("system RNG: {e}")))?;
    Ok(b)
}

/// Writes a big-endian unsigned number in lowercase base 36, left-padded with `0` to `width`.
/// `width` must be large enough for the number (true for 32 bytes/50 and 16 bytes/25).
fn to_base36(bytes: &[u8], width: usize) -> String {
    let mut num = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while num.iter().any(|&b| b != 0) {
        // num /= 36, collecting the remainder; long division in base 256.
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        digits.push(BASE36_DIGITS[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("base36 digits are ASCII")
}

/// Reads lowercase base 36 into a big-endian number of exactly `N` bytes. `None` if a character is
/// not in `[0-9a-z]` or the value does not fit.
fn from_base36<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut num = [0u8; N];
    for c in s.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        // num = num * 36 + d
        let mut carry = u32::from(d);
        for b in num.iter_mut().rev() {
            let cur = u32::from(*b) * 36 + carry;
            *b = cur as u8;
            carry = cur >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(num)
}

fn is_base36_lower(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed or generated join token: `SWMTKN-1-<50 base-36 chars of CA digest>-<25 base-36 chars
/// of secret>`. `Display` gives the token string. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JoinToken {
    ca_digest: [u8; 32],
    secret: String,
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{JOIN_TOKEN_PREFIX}-{JOIN_TOKEN_VERSION}-{}-{}",
            to_base36(&self.ca_digest, TOKEN_DIGEST_LEN),
            self.secret
        )
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &hex::encode(self.ca_digest))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl std::str::FromStr for JoinToken {
    type Err = CaError;
    fn from_str(s: &str) -> CaResult<Self> {
        Self::parse(s)
    }
}

impl JoinToken {
    /// A new token pinning the CA whose digest (SHA-256 of the DER certificate, see
    /// [`RootCa::digest_bytes`]) is `ca_digest`, with a fresh 128-bit secret.
    pub fn generate(ca_digest: [u8; 32]) -> CaResult<Self> {
        let secret = to_base36(&random_bytes::<SECRET_BYTES>()?, TOKEN_SECRET_LEN);
        Ok(Self { ca_digest, secret })
    }

    /// A new token for `ca`.
    pub fn for_ca(ca: &RootCa) -> CaResult<Self> {
        Self::generate(ca.digest_bytes())
    }

    /// The same CA digest with a fresh secret (what `docker swarm join-token --rotate` does).
    pub fn rotated(&self) -> CaResult<Self> {
        Self::generate(self.ca_digest)
    }

    /// Parses a token string (surrounding whitespace is ignored). Every malformation yields
    /// [`CaError::InvalidJoinToken`], whose message starts with Docker's `invalid join token`.
    pub fn parse(token: &str) -> CaResult<Self> {
        let bad = |why: String| CaError::InvalidJoinToken(why);
        let token = token.trim();
        let parts: Vec<&str> = token.split('-').collect();
        if parts[0] != JOIN_TOKEN_PREFIX {
            return Err(bad(format!("token must start with {JOIN_TOKEN_PREFIX}-")));
        }
        if parts.len() == 5 && parts[1] == "2" {
            return Err(bad(
                "FIPS join tokens (SWMTKN-2-...) are not supported".into()
            ));
        }
        if parts.len() != 4 {
            return Err(bad(format!(
                "expected 4 dash-separated parts (SWMTKN-1-<digest>-<secret>), got {}",
                parts.len()
            )));
        }
        if parts[1] != JOIN_TOKEN_VERSION {
            return Err(bad(format!(
                "unsupported token version {:?} (only {JOIN_TOKEN_VERSION:?})",
                parts[1]
            )));
        }
        let (digest, secret) = (parts[2], parts[3]);
        if digest.len() != TOKEN_DIGEST_LEN {
            return Err(bad(format!(
                "CA digest must be {TOKEN_DIGEST_LEN} base-36 characters, got {}",
                digest.len()
            )));
        }
        if !is_base36_lower(digest) {
            return Err(bad(
                "CA digest may only contain characters 0-9 and a-z".into()
            ));
        }
        let ca_digest = from_base36::<32>(digest)
            .ok_or_else(|| bad("CA digest is larger than a SHA-256".into()))?;
        if secret.len() != TOKEN_SECRET_LEN {
            return Err(bad(format!(
                "secret must be {TOKEN_SECRET_LEN} base-36 characters, got {}",
                secret.len()
            )));
        }
        if !is_base36_lower(secret) {
            return Err(bad("secret may only contain characters 0-9 and a-z".into()));
        }
        Ok(Self {
            ca_digest,
            secret: secret.to_string(),
        })
    }

    /// The pinned CA digest (SHA-256).
    pub fn ca_digest(&self) -> [u8; 32] {
        self.ca_digest
    }

    /// The pinned CA digest, lowercase hex.
    pub fn ca_digest_hex(&self) -> String {
        hex::encode(self.ca_digest)
    }

    /// The secret part (25 base-36 characters).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Checks that a CA certificate bundle (PEM) is the one this token pins: the SHA-256 over the
    /// DER of its certificates must equal the token's digest. Use it on the root CA a manager
    /// served over an unverified connection before trusting it. Mismatch gives
    /// [`CaError::CaDigestMismatch`].
    pub fn verify_ca_pem(&self, ca_pem: &str) -> CaResult<()> {
        let actual = ca_bundle_digest(ca_pem)?;
        if actual == self.ca_digest {
            Ok(())
        } else {
            Err(CaError::CaDigestMismatch {
                expected: self.ca_digest_hex(),
                actual: hex::encode(actual),
            })
        }
    }

    /// Constant-time check that `presented` (a token string from a joining node) is this token.
    /// Malformed input simply does not match.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(self.to_string().as_bytes(), presented.trim().as_bytes())
    }
}

/// The pair of join tokens a swarm keeps: one admits workers, the other managers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinTokens {
    /// Token that makes the joining node a worker.
    pub worker: JoinToken,
    /// Token that makes the joining node a manager.
    pub manager: JoinToken,
}

impl JoinTokens {
    /// Fresh worker and manager tokens for `ca`.
    pub fn generate(ca: &RootCa) -> CaResult<Self> {
        Ok(Self {
            worker: JoinToken::for_ca(ca)?,
            manager: JoinToken::for_ca(ca)?,
        })
    }

    /// The token for a role.
    pub fn for_role(&self, role: NodeRole) -> &JoinToken {
        match role {
            NodeRole::Worker => &self.worker,
            NodeRole::Manager => &self.manager,
        }
    }

    /// The role a presented token grants, or `None` if it is neither token. Both comparisons
    /// always run, in constant time.
    pub fn role_for(&self, presented: &str) -> Option<NodeRole> {
        let is_worker = self.worker.matches(presented);
        let is_manager = self.manager.matches(presented);
        match (is_worker, is_manager) {
            (_, true) => Some(NodeRole::Manager),
            (true, false) => Some(NodeRole::Worker),
            (false, false) => None,
        }
    }
}

/// The key that unlocks an autolocked swarm: 32 random bytes, shown as `SWMKEY-1-<base64>`
/// (standard alphabet without padding, like SwarmKit; padded input is accepted too).
/// `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockKey([u8; 32]);

impl fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockKey(<redacted>)")
    }
}

impl fmt::Display for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{UNLOCK_KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0)
        )
    }
}

impl std::str::FromStr for UnlockKey {
    type Err = CaError;
    fn from_str(s: &str) -> CaResult<Self> {
        Self::parse(s)
    }
}

impl UnlockKey {
    /// A new random key.
    pub fn generate() -> CaResult<Self> {
        Ok(Self(random_bytes::<32>()?))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `SWMKEY-1-<base64 of 32 bytes>` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> CaResult<Self> {
        let s = s.trim();
        let b64 = s.strip_prefix(UNLOCK_KEY_PREFIX).ok_or_else(|| {
            CaError::InvalidUnlockKey(format!("key must start with {UNLOCK_KEY_PREFIX}"))
        })?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|e| CaError::InvalidUnlockKey(format!("bad base64: {e}")))?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            CaError::InvalidUnlockKey(format!("key must be 32 bytes, got {}", bytes.len()))
        })?;
        Ok(Self(key))
    }

    /// Constant-time comparison with another key.
    pub fn ct_eq(&self, other: &UnlockKey) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_known_values() {
        assert_eq!(to_base36(&[0], 3), "000");
        assert_eq!(to_base36(&[35], 1), "z");
        assert_eq!(to_base36(&[36], 2), "10");
        assert_eq!(to_base36(&[0x01, 0x00], 0), "74"); // 256 = 7*36 + 4
        assert_eq!(from_base36::<2>("74"), Some([0x01, 0x00]));
        // 2^256 - 1 is the largest digest and still fits in 50 digits.
        let max = to_base36(&[0xff; 32], TOKEN_DIGEST_LEN);
        assert_eq!(max.len(), 50);
        assert_eq!(from_base36::<32>(&max), Some([0xff; 32]));
        // One more does not fit 32 bytes.
        assert_eq!(from_base36::<32>(&"z".repeat(50)), None);
        // 2^128 - 1 fits 25 digits.
        assert_eq!(to_base36(&[0xff; 16], TOKEN_SECRET_LEN).len(), 25);
        assert_eq!(from_base36::<1>("A"), None);
    }

    #[test]
    fn base36_round_trip_random() {
        for _ in 0..200 {
            let b = random_bytes::<32>().unwrap();
            let s = to_base36(&b, 50);
            assert_eq!(s.len(), 50);
            assert_eq!(from_base36::<32>(&s), Some(b));
        }
    }

    #[test]
    fn token_round_trip() {
        let ca = RootCa::generate().unwrap();
        let t = JoinToken::for_ca(&ca).unwrap();
        let s = t.to_string();
        assert!(s.starts_with("SWMTKN-1-"));
        let parts: Vec<_> = s.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[2].len(), 50);
        assert_eq!(parts[3].len(), 25);
        assert!(is_base36_lower(parts[2]) && is_base36_lower(parts[3]));
        let parsed = JoinToken::parse(&format!("  {s}\n")).unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.ca_digest_hex(), ca.digest());
        assert!(t.matches(&s));
        assert!(!t.matches(&t.rotated().unwrap().to_string()));
        assert!(!format!("{t:?}").contains(t.secret()));
    }

    #[test]
    fn digest_pinning() {
        let ca_a = RootCa::generate().unwrap();
        let ca_b = RootCa::generate().unwrap();
        let token_a = JoinToken::parse(&JoinToken::for_ca(&ca_a).unwrap().to_string()).unwrap();
        token_a.verify_ca_pem(ca_a.cert_pem()).unwrap();
        let err = token_a.verify_ca_pem(ca_b.cert_pem()).unwrap_err();
        assert!(matches!(err, CaError::CaDigestMismatch { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("remote CA does not match fingerprint"));
        // A bundle that appends another root to the right one does not match either.
        let bundle = format!("{}{}", ca_a.cert_pem(), ca_b.cert_pem());
        assert!(token_a.verify_ca_pem(&bundle).is_err());
        // Rotation keeps the pin.
        token_a
            .rotated()
            .unwrap()
            .verify_ca_pem(ca_a.cert_pem())
            .unwrap();
    }

    #[test]
    fn malformed_tokens() {
        let good = JoinToken::generate([7; 32]).unwrap().to_string();
        let parts: Vec<&str> = good.split('-').collect();
        let (d, s) = (parts[2], parts[3]);
        let cases = [
            ("", "must start with SWMTKN-"),
            ("hello", "must start with SWMTKN-"),
            (&format!("SWMTKX-1-{d}-{s}"), "must start with SWMTKN-"),
            (&format!("SWMTKN-2-1-{d}-{s}"), "FIPS"),
            (&format!("SWMTKN-1-{d}"), "expected 4 dash-separated parts"),
            (
                &format!("SWMTKN-1-{d}-{s}-x"),
                "expected 4 dash-separated parts",
            ),
            (&format!("SWMTKN-3-{d}-{s}"), "unsupported token version"),
            (&format!("SWMTKN-1-{}-{s}", &d[1..]), "CA digest must be 50"),
            (&format!("SWMTKN-1-{}-{s}", d.to_uppercase()), "0-9 and a-z"),
            (
                &format!("SWMTKN-1-{}-{s}", "z".repeat(50)),
                "larger than a SHA-256",
            ),
            (&format!("SWMTKN-1-{d}-{s}0"), "secret must be 25"),
            (
                &format!("SWMTKN-1-{d}-{}", "_".repeat(25)),
                "secret may only",
            ),
        ];
        for (token, why) in cases {
            let err = JoinToken::parse(token).unwrap_err();
            assert!(err.is_invalid_join_token(), "{token}: {err}");
            let msg = err.to_string();
            assert!(msg.starts_with("invalid join token"), "{msg}");
            assert!(msg.contains(why), "{token}: {msg} lacks {why}");
        }
    }

    #[test]
    fn token_pair_roles() {
        let ca = RootCa::generate().unwrap();
        let tokens = JoinTokens::generate(&ca).unwrap();
        assert_ne!(tokens.worker, tokens.manager);
        assert_eq!(
            tokens.role_for(&tokens.worker.to_string()),
            Some(NodeRole::Worker)
        );
        assert_eq!(
            tokens.role_for(&tokens.manager.to_string()),
            Some(NodeRole::Manager)
        );
        assert_eq!(tokens.role_for("SWMTKN-1-nope"), None);
        assert_eq!(tokens.for_role(NodeRole::Manager), &tokens.manager);
    }

    #[test]
    fn unlock_keys() {
        let k = UnlockKey::generate().unwrap();
        let s = k.to_string();
        assert!(s.starts_with("SWMKEY-1-"));
        assert_eq!(s.len(), "SWMKEY-1-".len() + 43);
        assert_eq!(UnlockKey::parse(&s).unwrap(), k);
        // Padded standard base64 is accepted too.
        let padded = format!(
            "SWMKEY-1-{}",
            base64::engine::general_purpose::STANDARD.encode(k.as_bytes())
        );
        assert!(UnlockKey::parse(&padded).unwrap().ct_eq(&k));
        assert!(matches!(
            UnlockKey::parse("SWMKEY-2-abc"),
            Err(CaError::InvalidUnlockKey(_))
        ));
        assert!(UnlockKey::parse("SWMKEY-1-!!!").is_err());
        assert!(UnlockKey::parse("SWMKEY-1-AAAA").is_err());
        assert!(!format!("{k:?}").contains(&s[9..]));
    }
}
