//! The node's key file (`certificates/swarm-node.key`): its TLS private key and, on managers,
//! the data key its store seals everything with. One file, written atomically, so a key
//! rotation never leaves the two under different keys.
//!
//! A copy of the node certificate is kept in it too (`SHOAL NODE CERTIFICATE`): key and
//! certificate change together at every renewal, and one atomic write keeps them a pair.
//!
//! In clear (no autolock) it is the PKCS#8 PEM of the TLS key, followed on managers by a
//! `SHOAL DATA KEY` block, as swarmkit keeps its DEK in clear in the key's PEM headers when the
//! swarm is not locked. While the data key is rotated the retiring one is kept too
//! (`SHOAL RETIRING DATA KEY`): a manager stopped in the middle of the rotation opens its store
//! with both and finishes it. Under autolock both are sealed with the unlock key (XChaCha20-Poly1305)
//! in one `SHOAL LOCKED NODE KEY` block: a manager restarted from its disk then has neither its
//! identity nor its data until someone gives it the key (`docker swarm unlock`).

use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use shoal_store::DataKey;

use super::error::{CaError, CaResult};
use super::token::UnlockKey;

const DATA_KEY_LABEL: &str = "SHOAL DATA KEY";
const RETIRING_DATA_KEY_LABEL: &str = "SHOAL RETIRING DATA KEY";
const CERT_LABEL: &str = "SHOAL NODE CERTIFICATE";
const LOCKED_LABEL: &str = "SHOAL LOCKED NODE KEY";
const NONCE_LEN: usize = 24;

/// A manager's store keys (none on a worker).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreKeys {
    /// What the store seals with.
    pub current: Option<DataKey>,
    /// The key a rotation in progress is replacing (it only opens values).
    pub retiring: Option<DataKey>,
}

impl StoreKeys {
    /// Just `key`, no rotation under way.
    pub fn current(key: DataKey) -> Self {
        StoreKeys {
            current: Some(key),
            retiring: None,
        }
    }
}

/// What the key file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKeys {
    /// The node's TLS private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The store's data keys (managers).
    pub data: StoreKeys,
    /// The certificate of `key_pem` (PEM), written with it in one file so a renewal that
    /// changes both can never leave a key beside another key's certificate (files written
    /// before it was kept here have none).
    pub cert_pem: Option<String>,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("key_pem", &"<redacted>")
            .field("data", &self.data)
            .finish()
    }
}

/// The sealed form's plain text.
#[derive(Serialize, Deserialize)]
struct Sealed {
    key_pem: String,
    data_key: Option<String>,
    #[serde(default)]
    retiring_data_key: Option<String>,
    #[serde(default)]
    cert_pem: Option<String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A PEM block around `body` (wrapped at 64 columns).
fn pem_block(label: &str, body: &[u8]) -> String {
    let encoded = b64().encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The body of the first `label` block in `text`, if any.
fn pem_body(text: &str, label: &str) -> CaResult<Option<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = text.find(&begin) else {
        return Ok(None);
    };
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(&end)
        .ok_or_else(|| CaError::InvalidKey(format!("unterminated {label} block")))?;
    let body: String = rest[..stop].split_whitespace().collect();
    b64()
        .decode(body)
        .map(Some)
        .map_err(|e| CaError::InvalidKey(format!("{label} block: {e}")))
}

/// The key file's text for `keys`, sealed with `unlock` when given.
pub fn encode(keys: &NodeKeys, unlock: Option<&UnlockKey>) -> String {
    match unlock {
        None => {
            let mut text = keys.key_pem.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            if let Some(dk) = &keys.data.current {
                text.push_str(&pem_block(DATA_KEY_LABEL, dk.as_bytes()));
            }
            if let Some(dk) = &keys.data.retiring {
                text.push_str(&pem_block(RETIRING_DATA_KEY_LABEL, dk.as_bytes()));
            }
            if let Some(cert) = &keys.cert_pem {
                text.push_str(&pem_block(CERT_LABEL, cert.as_bytes()));
            }
            text
        }
        Some(unlock) => {
            let plain = serde_json::to_vec(&Sealed {
                key_pem: keys.key_pem.clone(),
                data_key: keys
                    .data
                    .current
                    .as_ref()
                    .map(|k| b64().encode(k.as_bytes())),
                retiring_data_key: keys
                    .data
                    .retiring
                    .as_ref()
                    .map(|k| b64().encode(k.as_bytes())),
                cert_pem: keys.cert_pem.clone(),
            })
            .expect("key material encodes");
            let cipher = XChaCha20Poly1305::new(unlock.as_bytes().into());
            let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
            let sealed = cipher
                .encrypt(&nonce, plain.as_slice())
                .expect("sealing a few hundred bytes cannot fail");
            let mut body = nonce.to_vec();
            body.extend_from_slice(&sealed);
            pem_block(LOCKED_LABEL, &body)
        }
    }
}

/// Whether a key file's text is sealed with an unlock key.
pub fn is_locked(text: &str) -> bool {
    text.contains(&format!("-----BEGIN {LOCKED_LABEL}-----"))
}

/// The keys in a key file's text. A sealed file needs `unlock`: without one the error is
/// [`CaError::Locked`], with the wrong one [`CaError::WrongUnlockKey`].
pub fn decode(text: &str, unlock: Option<&UnlockKey>) -> CaResult<NodeKeys> {
    if let Some(body) = pem_body(text, LOCKED_LABEL)? {
        let unlock = unlock.ok_or(CaError::Locked)?;
        if body.len() < NONCE_LEN {
            return Err(CaError::InvalidKey("truncated locked key block".into()));
        }
        let cipher = XChaCha20Poly1305::new(unlock.as_bytes().into());
        let plain = cipher
            .decrypt(XNonce::from_slice(&body[..NONCE_LEN]), &body[NONCE_LEN..])
            .map_err(|_| CaError::WrongUnlockKey)?;
        let sealed: Sealed = serde_json::from_slice(&plain)
            .map_err(|e| CaError::InvalidKey(format!("locked key block: {e}")))?;
        let decoded = |k: Option<String>| -> CaResult<Option<DataKey>> {
            k.map(|k| {
                data_key(
                    &b64()
                        .decode(k)
                        .map_err(|e| CaError::InvalidKey(format!("data key: {e}")))?,
                )
            })
            .transpose()
        };
        return Ok(NodeKeys {
            key_pem: sealed.key_pem,
            data: StoreKeys {
                current: decoded(sealed.data_key)?,
                retiring: decoded(sealed.retiring_data_key)?,
            },
            cert_pem: sealed.cert_pem,
        });
    }
    let current = pem_body(text, DATA_KEY_LABEL)?
        .map(|b| data_key(&b))
        .transpose()?;
    let retiring = pem_body(text, RETIRING_DATA_KEY_LABEL)?
        .map(|b| data_key(&b))
        .transpose()?;
    let cert_pem = pem_body(text, CERT_LABEL)?
        .map(|b| {
            String::from_utf8(b).map_err(|_| {
                CaError::InvalidCertificate("the key file's certificate is not text".into())
            })
        })
        .transpose()?;
    let key_end = [DATA_KEY_LABEL, RETIRING_DATA_KEY_LABEL, CERT_LABEL]
        .iter()
        .filter_map(|l| text.find(&format!("-----BEGIN {l}-----")))
        .min();
    let key_pem = match key_end {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    };
    Ok(NodeKeys {
        key_pem,
        data: StoreKeys { current, retiring },
        cert_pem,
    })
}

fn data_key(bytes: &[u8]) -> CaResult<DataKey> {
    DataKey::from_bytes(bytes).ok_or_else(|| CaError::InvalidKey("a data key is 32 bytes".into()))
}

/// Reads the key file at `path` (see [`decode`]).
pub fn read(path: &Path, unlock: Option<&UnlockKey>) -> CaResult<NodeKeys> {
    let text = std::fs::read_to_string(path).map_err(|source| CaError::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    decode(&text, unlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(with_data_key: bool) -> NodeKeys {
        NodeKeys {
            key_pem: "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n".into(),
            data: StoreKeys {
                current: with_data_key.then(DataKey::generate),
                retiring: None,
            },
            cert_pem: None,
        }
    }

    #[test]
    fn a_retiring_data_key_is_kept_in_clear_and_locked() {
        let mut k = keys(true);
        k.data.retiring = Some(DataKey::generate());
        k.cert_pem = Some("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into());
        assert_eq!(decode(&encode(&k, None), None).unwrap(), k);
        let unlock = UnlockKey::generate().unwrap();
        let locked = encode(&k, Some(&unlock));
        assert!(!locked.contains(RETIRING_DATA_KEY_LABEL));
        assert_eq!(decode(&locked, Some(&unlock)).unwrap(), k);
    }

    #[test]
    fn in_clear_the_tls_key_comes_first_and_the_data_key_after() {
        let k = keys(true);
        let text = encode(&k, None);
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!is_locked(&text));
        assert_eq!(decode(&text, None).unwrap(), k);
        let worker = keys(false);
        assert_eq!(encode(&worker, None), worker.key_pem);
        assert_eq!(decode(&worker.key_pem, None).unwrap(), worker);
    }

    #[test]
    fn locked_it_shows_nothing_and_opens_only_with_its_key() {
        let k = keys(true);
        let unlock = UnlockKey::generate().unwrap();
        let text = encode(&k, Some(&unlock));
        assert!(is_locked(&text));
        assert!(!text.contains("PRIVATE KEY") && !text.contains(DATA_KEY_LABEL));
        assert!(matches!(decode(&text, None), Err(CaError::Locked)));
        let wrong = UnlockKey::generate().unwrap();
        assert!(matches!(
            decode(&text, Some(&wrong)),
            Err(CaError::WrongUnlockKey)
        ));
        assert_eq!(decode(&text, Some(&unlock)).unwrap(), k);
    }
}
