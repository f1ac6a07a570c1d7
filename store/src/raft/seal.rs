//! Encryption at rest: every value the store writes that holds user data (Raft log entries,
//! objects, watch history, retry records, snapshot records) is sealed with the member's data key
//! (XChaCha20-Poly1305, a fresh random nonce per value), as swarmkit encrypts its Raft log and
//! snapshots with its DEK. Raft bookkeeping (vote, applied log id, membership) stays in clear.
//!
//! Who protects the data key is the node's business: with autolock it is sealed by the unlock
//! key and a restarted manager cannot open its store until unlocked; without autolock it lies
//! beside the data (`<data dir>/data.key`, or in the node's key file), as swarmkit keeps its DEK
//! in clear in the same case.
//!
//! The data key can be rotated in place (swarmkit rotates its DEK when autolock is turned on,
//! since the old one lay on disk in clear): the store seals with the new key at once, seals
//! every stored value again, and only then forgets the old one ([`Sealer::rotate`],
//! `Store::rotate_data_key`).
//!
//! A sealed value starts with a version byte that no JSON document starts with, so values
//! written before the store sealed anything are still read.
//!
//! [`Sealer::clear`] seals nothing: it exists only so that `shoal bench store` can measure what
//! sealing costs against the same store writing in clear (`StoreConfig::seal_at_rest`).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The first byte of a sealed value.
pub(crate) const SEALED_V1: u8 = 0x01;
const NONCE_LEN: usize = 24;

/// A 32-byte data encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A new random key.
    pub fn generate() -> Self {
        DataKey(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(DataKey(bytes.try_into().ok()?))
    }

    /// The key's bytes (to be stored sealed by whoever owns it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key kept in clear in `path` (mode 0600), created on first use: for stores whose
    /// owner does not keep the key itself.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_bytes(&bytes).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a 32-byte key", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let key = Self::generate();
                let tmp = path.with_extension("tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(key.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }
}

/// Seals and opens values with the member's data key, or (benchmarks only) keeps them in clear.
///
/// While the data key is rotated ([`Sealer::rotate`]) it seals with the new key and still opens
/// values sealed with the retiring one, until every stored value has been sealed again and the
/// retiring key is dropped ([`Sealer::retire`]).
pub struct Sealer {
    /// `None`: values are written in clear ([`Sealer::clear`]).
    keys: Option<RwLock<KeyRing>>,
    /// Held shared by every writer from the moment it seals a value until the value is handed
    /// to the database (or to the log's IO thread), and exclusively by a rotation while it
    /// switches keys or seals stored values again: so no value sealed with the retiring key
    /// can reach the disk after the sweep has passed it, and the sweep never writes back a
    /// value a writer replaced meanwhile.
    gate: RwLock<()>,
}

/// The keys of a sealing [`Sealer`].
struct KeyRing {
    current: XChaCha20Poly1305,
    /// The key being rotated out: it opens values, never seals them.
    retiring: Option<XChaCha20Poly1305>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.seals() {
            "Sealer"
        } else {
            "Sealer(clear)"
        })
    }
}

fn cipher(key: &DataKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.as_bytes().into())
}

impl Sealer {
    /// A sealer for `key`.
    pub fn new(key: &DataKey) -> Self {
        Self::rotating(key, None)
    }

    /// A sealer that seals with `key` and also opens values sealed with `retiring`: a store
    /// reopened in the middle of a key rotation.
    pub fn rotating(key: &DataKey, retiring: Option<&DataKey>) -> Self {
        Sealer {
            keys: Some(RwLock::new(KeyRing {
                current: cipher(key),
                retiring: retiring.map(cipher),
            })),
            gate: RwLock::new(()),
        }
    }

    /// A sealer that writes values as they are and refuses to open sealed ones: the store of a
    /// benchmark that measures what sealing costs. Never for a store that holds real data.
    pub fn clear() -> Self {
        Sealer {
            keys: None,
            gate: RwLock::new(()),
        }
    }

    /// Whether values are sealed (false only for [`Sealer::clear`]).
    pub fn seals(&self) -> bool {
        self.keys.is_some()
    }

    fn ring(&self) -> Option<RwLockReadGuard<'_, KeyRing>> {
        self.keys.as_ref().map(|k| k.read().expect("key ring lock"))
    }

    /// Held by a writer from sealing values until they are handed to the database (see
    /// [`Sealer::gate`]'s comment). Writers share it.
    pub fn writing(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().expect("seal gate")
    }

    /// Held by a key rotation while no writer may be between sealing and writing.
    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().expect("seal gate")
    }

    /// Starts a rotation to `new`: values are sealed with it from now on, and the current key
    /// only opens them. Refused while an earlier rotation has not finished ([`Sealer::retire`]),
    /// since values may still be sealed with its retiring key.
    pub fn rotate(&self, new: &DataKey) -> io::Result<()> {
        let Some(keys) = &self.keys else {
            return Err(io::Error::other(
                "this store does not seal at rest (a benchmark's store): it has no data key to rotate",
            ));
        };
        let _no_writer_between_seal_and_write = self.exclusive();
        let mut ring = keys.write().expect("key ring lock");
        if ring.retiring.is_some() {
            return Err(io::Error::other(
                "a data key rotation is still under way; it must finish before another starts",
            ));
        }
        let old = std::mem::replace(&mut ring.current, cipher(new));
        ring.retiring = Some(old);
        Ok(())
    }

    /// Whether a rotation has a retiring key.
    pub fn is_rotating(&self) -> bool {
        self.ring().is_some_and(|r| r.retiring.is_some())
    }

    /// Drops the retiring key: once no stored value is sealed with it.
    pub fn retire(&self) {
        if let Some(keys) = &self.keys {
            keys.write().expect("key ring lock").retiring = None;
        }
    }

    /// `plain`, sealed: version byte, nonce, ciphertext with its tag. The 192-bit nonce comes
    /// from the thread's CSPRNG (seeded from the OS): random nonces of that size never repeat
    /// in practice, and a system call per value showed in the store's write throughput.
    /// A [`Sealer::clear`] returns `plain` as it is.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let Some(ring) = self.ring() else {
            return plain.to_vec();
        };
        seal_with(&ring.current, plain)
    }

    /// The plain bytes of a stored value: opened if sealed, as they are if written in clear
    /// before the store sealed anything (JSON). A value sealed with another key, or altered, is
    /// an error, and so is any sealed value for a [`Sealer::clear`].
    pub fn open<'a>(&self, stored: &'a [u8]) -> io::Result<Cow<'a, [u8]>> {
        match classify(stored)? {
            Stored::Clear => Ok(Cow::Borrowed(stored)),
            Stored::Sealed { nonce, sealed } => {
                let Some(ring) = self.ring() else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a stored value is sealed but this store was opened without sealing at rest (a benchmark's setting); open it with sealing on",
                    ));
                };
                open_with(&ring, nonce, sealed).map(|(plain, _)| Cow::Owned(plain))
            }
        }
    }

    /// `stored` sealed again with the current key if it is sealed with the retiring one;
    /// `None` if it needs nothing (in clear, or already sealed with the current key).
    pub fn reseal(&self, stored: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let Stored::Sealed { nonce, sealed } = classify(stored)? else {
            return Ok(None);
        };
        let Some(ring) = self.ring() else {
            return Ok(None);
        };
        if ring.retiring.is_none() {
            return Ok(None);
        }
        match open_with(&ring, nonce, sealed)? {
            (_, KeyUsed::Current) => Ok(None),
            (plain, KeyUsed::Retiring) => Ok(Some(seal_with(&ring.current, &plain))),
        }
    }
}

/// What a stored value is.
enum Stored<'a> {
    /// JSON or the binary encoding (`crate::codec`) written in clear (before sealing
    /// existed, or by a benchmark's store).
    Clear,
    Sealed {
        nonce: &'a XNonce,
        sealed: &'a [u8],
    },
}

fn classify(stored: &[u8]) -> io::Result<Stored<'_>> {
    match stored.first() {
        Some(&SEALED_V1) if stored.len() > NONCE_LEN => Ok(Stored::Sealed {
            nonce: XNonce::from_slice(&stored[1..1 + NONCE_LEN]),
            sealed: &stored[1 + NONCE_LEN..],
        }),
        Some(
            b'{'
            | b'['
            | b'"'
            | b'n'
            | b't'
            | b'f'
            | b'-'
            | b'0'..=b'9'
            | &crate::codec::BINARY_TAG,
        )
        | None => Ok(Stored::Clear),
        Some(other) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a stored value has an unknown format (first byte {other:#04x})"),
        )),
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, plain: &[u8]) -> Vec<u8> {
    let mut nonce = XNonce::default();
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let sealed = cipher
        .encrypt(&nonce, plain)
        .expect("XChaCha20-Poly1305 encrypts any length that fits in memory");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(SEALED_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Which key of a ring opened a value.
enum KeyUsed {
    Current,
    Retiring,
}

fn open_with(ring: &KeyRing, nonce: &XNonce, sealed: &[u8]) -> io::Result<(Vec<u8>, KeyUsed)> {
    if let Ok(plain) = ring.current.decrypt(nonce, sealed) {
        return Ok((plain, KeyUsed::Current));
    }
    if let Some(retiring) = &ring.retiring {
        if let Ok(plain) = retiring.decrypt(nonce, sealed) {
            return Ok((plain, KeyUsed::Retiring));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "a stored value does not open with this member's data key (wrong key, or the data was altered)",
    ))
}

/// The file that marks a data directory as written without sealing at rest.
const CLEAR_MARKER: &str = "UNSEALED";

/// Checks, before a store opens its database in `data_dir`, that the directory was written in
/// the mode it is opened in: a sealed store never opens a directory written in clear (it would
/// read the clear values as if written before sealing existed, and go on mixing the two), and
/// a store with sealing off never opens a sealed one. A directory written in clear carries a
/// marker file, created before its database; `fresh` says the database does not exist yet.
pub fn check_mode(data_dir: &Path, seal_at_rest: bool, fresh: bool) -> io::Result<()> {
    let marker = data_dir.join(CLEAR_MARKER);
    let marked = marker.try_exists()?;
    match (seal_at_rest, marked) {
        (true, false) | (false, true) => Ok(()),
        (true, true) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} was written without sealing at rest (a benchmark's store, see {}); a store that seals cannot open it: use another data directory",
                data_dir.display(),
                marker.display()
            ),
        )),
        (false, false) if !fresh => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds a store sealed at rest; sealing cannot be turned off for it: use a new data directory",
                data_dir.display()
            ),
        )),
        (false, false) => {
            use std::io::Write;
            let mut f = std::fs::File::create(&marker)?;
            f.write_all(
                b"This store writes its data in clear (sealing at rest off, a benchmark's setting).\n",
            )?;
            f.sync_all()?;
            std::fs::File::open(data_dir)?.sync_all()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_never_show_their_bytes() {
        let key = DataKey::generate();
        let sealer = Sealer::new(&key);
        let plain = br#"{"Spec":{"Data":"c2VjcmV0"}}"#;
        let sealed = sealer.seal(plain);
        assert!(!sealed.windows(6).any(|w| w == b"c2Vjcm"));
        assert_eq!(&*sealer.open(&sealed).unwrap(), plain);
        assert_ne!(sealer.seal(plain), sealed, "a fresh nonce every time");
    }

    #[test]
    fn another_key_or_a_flipped_bit_fails_and_clear_json_is_still_read() {
        let sealer = Sealer::new(&DataKey::generate());
        let sealed = sealer.seal(b"{}");
        let other = Sealer::new(&DataKey::generate());
        assert!(other.open(&sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&altered).is_err());
        assert_eq!(
            &*sealer.open(br#"{"legacy":1}"#).unwrap(),
            br#"{"legacy":1}"#
        );
        assert!(sealer.open(&[0x7f, 1, 2]).is_err());
    }

    #[test]
    fn a_rotation_opens_both_keys_until_the_old_one_retires() {
        let old = DataKey::generate();
        let new = DataKey::generate();
        let sealer = Sealer::new(&old);
        let before = sealer.seal(b"{\"a\":1}");
        assert!(
            sealer.reseal(&before).unwrap().is_none(),
            "nothing to do yet"
        );
        sealer.rotate(&new).unwrap();
        assert!(sealer.is_rotating());
        let err = sealer.rotate(&DataKey::generate()).unwrap_err();
        assert!(err.to_string().contains("still under way"), "{err}");
        let after = sealer.seal(b"{\"b\":2}");
        assert_eq!(&*sealer.open(&before).unwrap(), b"{\"a\":1}");
        assert!(
            sealer.reseal(&after).unwrap().is_none(),
            "already sealed with the new key"
        );
        assert!(sealer.reseal(b"{\"clear\":1}").unwrap().is_none());
        let resealed = sealer.reseal(&before).unwrap().expect("sealed again");
        sealer.retire();
        assert!(!sealer.is_rotating());
        assert_eq!(&*sealer.open(&resealed).unwrap(), b"{\"a\":1}");
        assert!(
            sealer.open(&before).is_err(),
            "the retired key opens nothing"
        );
        assert!(Sealer::new(&old).open(&resealed).is_err());
        assert!(Sealer::new(&old).open(&after).is_err());
        let reopened = Sealer::rotating(&new, Some(&old));
        assert_eq!(&*reopened.open(&before).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn a_clear_sealer_writes_as_is_and_refuses_sealed_values() {
        let clear = Sealer::clear();
        assert!(!clear.seals());
        let plain = br#"{"Spec":{"Data":"c2VjcmV0"}}"#;
        assert_eq!(clear.seal(plain), plain);
        assert_eq!(&*clear.open(plain).unwrap(), plain);
        let sealed = Sealer::new(&DataKey::generate()).seal(plain);
        let err = clear.open(&sealed).unwrap_err();
        assert!(err.to_string().contains("sealed"), "{err}");
    }

    #[test]
    fn a_data_directory_opens_only_in_the_mode_it_was_written_in() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = dir.path().join("sealed");
        std::fs::create_dir_all(&sealed).unwrap();
        check_mode(&sealed, true, true).unwrap();
        check_mode(&sealed, true, false).unwrap();
        let err = check_mode(&sealed, false, false).unwrap_err();
        assert!(
            err.to_string().contains("sealing cannot be turned off"),
            "{err}"
        );

        let clear = dir.path().join("clear");
        std::fs::create_dir_all(&clear).unwrap();
        check_mode(&clear, false, true).unwrap();
        assert!(clear.join(CLEAR_MARKER).exists());
        check_mode(&clear, false, false).unwrap();
        let err = check_mode(&clear, true, false).unwrap_err();
        assert!(err.to_string().contains("without sealing at rest"), "{err}");
    }

    #[test]
    fn a_kept_key_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let first = DataKey::load_or_create(&path).unwrap();
        let again = DataKey::load_or_create(&path).unwrap();
        assert_eq!(first, again);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
