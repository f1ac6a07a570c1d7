//! Files encrypted for an age recipient (`age -r age1... -o db_password.age`), decrypted on
//! the leader with the identities held in a swarm secret, so a repository can carry its
//! secrets. The cleartext exists only in memory on its way into the store (which seals it at
//! rest, as every secret); the cache repository holds the encrypted file.

use std::io::Read as _;
use std::str::FromStr;

use age::x25519::Identity;

/// The identities of a source (X25519: `AGE-SECRET-KEY-1...`).
pub struct Identities(Vec<Identity>);

impl std::fmt::Debug for Identities {
    /// Never the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} X25519 keys)", self.0.len())
    }
}

/// The identities in swarm secret `secret`'s data: one per line, blank lines and `#` comments
/// allowed (the format `age-keygen` writes).
pub fn parse_identities(secret: &str, data: &[u8]) -> Result<Identities, String> {
    let text = std::str::from_utf8(data)
        .map_err(|_| format!("swarm secret {secret} is not an age identity file (not UTF-8)"))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = Identity::from_str(line).map_err(|_| {
            format!(
                "swarm secret {secret}, line {}: not an age X25519 identity (AGE-SECRET-KEY-1...); only those are supported",
                n + 1
            )
        })?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(format!("swarm secret {secret} holds no age identity"));
    }
    Ok(Identities(ids))
}

/// The cleartext of an age file, or why it cannot be had.
pub fn decrypt(ids: &Identities, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| e.to_string())?;
    let mut reader = decryptor
        .decrypt(ids.0.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn files_for_the_identity_decrypt_and_others_do_not() {
        let key = Identity::generate();
        let other = Identity::generate();
        let file = format!(
            "# created by a test\n# public key: {}\n{}\n",
            key.to_public(),
            key.to_string().expose_secret()
        );
        let ids = parse_identities("age-key", file.as_bytes()).unwrap();
        let ciphertext = age::encrypt(&key.to_public(), b"hunter2").unwrap();
        assert_eq!(decrypt(&ids, &ciphertext).unwrap(), b"hunter2");
        let for_other = age::encrypt(&other.to_public(), b"x").unwrap();
        assert!(decrypt(&ids, &for_other).is_err());
        assert!(decrypt(&ids, b"age-encryption.org/v1\n").is_err());
        assert!(parse_identities("k", b"# nothing\n")
            .unwrap_err()
            .contains("no age identity"));
        assert!(parse_identities("k", b"AGE-SECRET-KEY-1NOPE\n")
            .unwrap_err()
            .contains("line 1"));
    }
}
