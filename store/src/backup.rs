//! Backups of a store (etcd's `snapshot save` and `snapshot restore`): a snapshot of the state
//! at one revision, in a file that says what it holds and ends with its own checksum.
//!
//! ```text
//! SHOAL-BACKUP 1\n
//! {"revision": R, "last_log_index": I, "created_at": "...", "snapshot": <the snapshot's
//!  transfer header>, "snapshot_len": N}\n
//! <N bytes: the snapshot file as the store keeps it>
//! \nSHA256 <hex of everything before this line>\n
//! ```
//!
//! The snapshot file is the one openraft would send a new member, with the key its records
//! are sealed with in the header: the backup holds every secret and the root CA key, and
//! whoever reads it can open them. Keep it as you would keep the swarm's unlock key.
//!
//! Restoring ([`restore`]) creates a new data dir whose replica has installed the snapshot and
//! is the only member of its group (see [`crate::recovery`]): it starts at the backup's
//! revision with its state.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, Encoding};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::local_transport::LocalNetwork;
use crate::raft::types::{SnapshotMeta, Vote};
use crate::replica::Store;

/// The first line of a backup file.
pub const MAGIC: &str = "SHOAL-BACKUP 1";

/// How long a backup waits for the snapshot that covers the revision it was asked at.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The swarm node id of the manager that made it (the restored manager is that node).
    pub node_id: String,
    /// The store revision of the state.
    pub revision: u64,
    /// The last Raft log index the snapshot covers.
    pub last_log_index: u64,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// The snapshot's transfer header (vote, metadata, file key), JSON.
    pub snapshot: String,
    /// The snapshot's length in bytes.
    pub snapshot_len: u64,
}

fn storage(what: impl std::fmt::Display) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::Storage(format!("{what}: {e}"))
}

impl Store {
    /// Writes a backup of the state as of now (everything committed when it is called) to
    /// `out`; returns its header.
    pub async fn backup(&self, out: &mut (impl Write + Send)) -> Result<BackupHeader, StoreError> {
        let applied = self.read_index().await?;
        let (header, snapshot, revision) = self.snapshot_at_least(applied).await?;
        // A hard link keeps the file for the copy even if a newer snapshot replaces it.
        let copy = snapshot.with_extension(format!("backup-{}", std::process::id()));
        let _ = std::fs::remove_file(&copy);
        std::fs::hard_link(&snapshot, &copy)
            .or_else(|_| std::fs::copy(&snapshot, &copy).map(|_| ()))
            .map_err(storage("keeping the snapshot for the backup"))?;
        let result = write_backup(&copy, header, revision, &self.config().node_id, out);
        let _ = std::fs::remove_file(&copy);
        result
    }
}

fn write_backup(
    snapshot: &Path,
    transfer_header: Vec<u8>,
    revision: u64,
    node_id: &str,
    out: &mut impl Write,
) -> Result<BackupHeader, StoreError> {
    let mut file = std::fs::File::open(snapshot).map_err(storage("opening the snapshot"))?;
    let snapshot_len = file
        .metadata()
        .map_err(storage("reading the snapshot"))?
        .len();
    // The transfer header is in the member's encoding (`crate::codec`); a backup file keeps
    // it as JSON, which any member reads back.
    let (vote, meta, key): (Vote, SnapshotMeta, Option<String>) =
        codec::decode(&transfer_header)
            .map_err(|e| StoreError::Storage(format!("the snapshot header: {e}")))?;
    let last_log_index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    let transfer_header = codec::encode(Encoding::Json, &(vote, meta, key))
        .map_err(|e| StoreError::Storage(format!("the snapshot header: {e}")))?;
    let header = BackupHeader {
        node_id: node_id.to_string(),
        revision,
        last_log_index,
        created_at: crate::model::Timestamp::now().to_string(),
        snapshot: String::from_utf8_lossy(&transfer_header).into_owned(),
        snapshot_len,
    };
    let mut hashed = HashingWriter {
        inner: out,
        hash: Sha256::new(),
    };
    let io = storage("writing the backup");
    writeln!(hashed, "{MAGIC}").map_err(&io)?;
    serde_json::to_writer(&mut hashed, &header)
        .map_err(|e| StoreError::Storage(format!("writing the backup: {e}")))?;
    writeln!(hashed).map_err(&io)?;
    std::io::copy(&mut file, &mut hashed).map_err(&io)?;
    let digest = hex::encode(hashed.hash.finalize());
    write!(hashed.inner, "\nSHA256 {digest}\n").map_err(&io)?;
    hashed.inner.flush().map_err(&io)?;
    Ok(header)
}

/// A writer that hashes what passes through it.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Checks a backup file's checksum and reads its header; returns the header and the offset
/// and length of its snapshot.
pub fn verify(path: &Path) -> Result<(BackupHeader, u64), StoreError> {
    let bad = |why: String| StoreError::Invalid(format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let total = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut reader = BufReader::new(file);
    let mut magic = String::new();
    reader
        .read_line(&mut magic)
        .map_err(|e| bad(e.to_string()))?;
    if magic.trim_end() != MAGIC {
        return Err(bad(format!(
            "not a shoal backup (it should start with {MAGIC:?})"
        )));
    }
    let mut header_line = String::new();
    reader
        .read_line(&mut header_line)
        .map_err(|e| bad(e.to_string()))?;
    let header: BackupHeader =
        serde_json::from_str(&header_line).map_err(|e| bad(format!("malformed header: {e}")))?;
    let offset = (magic.len() + header_line.len()) as u64;
    let body_end = offset + header.snapshot_len;
    let trailer_len = total
        .checked_sub(body_end)
        .ok_or_else(|| bad("truncated: the snapshot is shorter than its header says".into()))?;
    // Hash everything before the trailer, then compare with the trailer.
    let mut hash = Sha256::new();
    hash.update(magic.as_bytes());
    hash.update(header_line.as_bytes());
    let mut left = header.snapshot_len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = reader
            .read(&mut buf[..want])
            .map_err(|e| bad(e.to_string()))?;
        if n == 0 {
            return Err(bad("truncated snapshot".into()));
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    let mut trailer = String::new();
    reader
        .take(trailer_len)
        .read_to_string(&mut trailer)
        .map_err(|e| bad(e.to_string()))?;
    let expected = trailer
        .trim()
        .strip_prefix("SHA256 ")
        .ok_or_else(|| bad("no checksum at the end: the file is truncated".into()))?;
    if expected != hex::encode(hash.finalize()) {
        return Err(bad(
            "checksum mismatch: the backup is damaged and cannot be restored".into(),
        ));
    }
    Ok((header, offset))
}

/// Creates the store of `config` (a data dir that must not hold one yet) from the backup at
/// `path`: the snapshot installed, this member the only one of its group. `inspect` reads the
/// restored state (what the caller needs to make a node of it); returns the header and what
/// `inspect` returned.
pub async fn restore<T>(
    path: &Path,
    config: &StoreConfig,
    inspect: impl FnOnce(&crate::view::View) -> T,
) -> Result<(BackupHeader, T), StoreError> {
    if config.data_dir.join("db").exists() {
        return Err(StoreError::Invalid(format!(
            "{} already holds a store: restore into an empty data dir",
            config.data_dir.display()
        )));
    }
    let (header, offset) = verify(path)?;
    // The member alone, on a network of its own: it only installs the snapshot.
    let net = LocalNetwork::new();
    let store = Store::open(config.clone(), net.transport(&config.advertise_addr)).await?;
    let incoming: PathBuf = store.snapshot_receive_path();
    let copied = (|| -> std::io::Result<()> {
        let mut src = std::fs::File::open(path)?;
        std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(offset))?;
        let mut dst = std::fs::File::create(&incoming)?;
        std::io::copy(&mut src.take(header.snapshot_len), &mut dst)?;
        dst.sync_all()
    })();
    if let Err(e) = copied {
        store.shutdown().await;
        return Err(StoreError::Storage(format!("copying the snapshot: {e}")));
    }
    let answer = store
        .install_received_snapshot(header.snapshot.as_bytes(), incoming)
        .await;
    let installed: Result<serde_json::Value, String> =
        codec::decode(&answer).unwrap_or_else(|e| Err(e.to_string()));
    let inspected = installed.as_ref().ok().map(|_| inspect(&store.view()));
    store.shutdown().await;
    let (Ok(_), Some(inspected)) = (installed.as_ref(), inspected) else {
        return Err(StoreError::Storage(format!(
            "installing the snapshot: {}",
            installed.err().unwrap_or_default()
        )));
    };
    crate::recovery::force_new_cluster(config).await?;
    Ok((header, inspected))
}

impl Store {
    /// The newest snapshot, once it covers log index `index` (building one if needed): its
    /// transfer header, its file and its revision.
    async fn snapshot_at_least(&self, index: u64) -> Result<(Vec<u8>, PathBuf, u64), StoreError> {
        let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
        let mut asked = false;
        loop {
            if let Some(found) = self.current_snapshot(index).await? {
                return Ok(found);
            }
            if !asked {
                self.trigger_snapshot().await?;
                asked = true;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(StoreError::Unavailable(
                    "no snapshot of the current state was built in time for the backup; try again"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
