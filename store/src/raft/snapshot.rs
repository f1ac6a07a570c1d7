//! Snapshot files: the whole state at one revision, as JSON lines (a header, then one record per
//! object and per deduplication entry). Written to a temporary file, synced, then renamed, so a
//! snapshot on disk is always complete; streamed in chunks, so there is no size ceiling.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::db::io_err;
use super::types::SnapshotMeta;
use crate::dedup::{DedupRecord, DedupTable};
use crate::model::Object;
use crate::state::State;
use crate::txn::TxnId;

/// A snapshot's data: a file on disk.
#[derive(Debug)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
}

impl SnapshotFile {
    /// Size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(fs::metadata(&self.path)?.len())
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    meta: SnapshotMeta,
    revision: u64,
}

#[derive(Serialize, Deserialize)]
enum Record {
    O(Arc<Object>),
    D(TxnId, DedupRecord),
}

const FORMAT: u32 = 1;

/// Writes `state` and `dedup` (taken at `meta.last_log_id`) to `dir/name`, atomically.
pub fn write(
    dir: &Path,
    name: &str,
    meta: &SnapshotMeta,
    state: &State,
    dedup: &DedupTable,
) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let final_path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let header = Header {
            format: FORMAT,
            meta: meta.clone(),
            revision: state.revision,
        };
        serde_json::to_writer(&mut w, &header).map_err(io_err)?;
        w.write_all(b"\n")?;
        for o in state.all_objects() {
            serde_json::to_writer(&mut w, &Record::O(o.clone())).map_err(io_err)?;
            w.write_all(b"\n")?;
        }
        for (id, rec) in dedup.entries() {
            serde_json::to_writer(&mut w, &Record::D(*id, rec.clone())).map_err(io_err)?;
            w.write_all(b"\n")?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &final_path)?;
    File::open(dir)?.sync_all()?;
    Ok(final_path)
}

/// Reads a snapshot file back into its metadata, state and deduplication table.
pub fn read(path: &Path) -> io::Result<(SnapshotMeta, State, DedupTable)> {
    let mut lines = BufReader::with_capacity(1 << 20, File::open(path)?).lines();
    let header: Header = match lines.next() {
        Some(l) => serde_json::from_str(&l?).map_err(io_err)?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "empty snapshot file",
            ))
        }
    };
    if header.format != FORMAT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot format {} is not supported (expected {FORMAT})",
                header.format
            ),
        ));
    }
    let mut state = State::default();
    let mut dedup = DedupTable::default();
    state.revision = header.revision;
    for line in lines {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line).map_err(io_err)? {
            Record::O(o) => state.put(o),
            Record::D(id, rec) => dedup.remember(id, rec),
        }
    }
    Ok((header.meta, state, dedup))
}

/// Reads only the metadata of a snapshot file.
pub fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    let mut first = String::new();
    BufReader::new(File::open(path)?).read_line(&mut first)?;
    let header: Header = serde_json::from_str(&first).map_err(io_err)?;
    Ok(header.meta)
}
