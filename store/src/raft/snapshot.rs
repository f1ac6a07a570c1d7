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
    /// An object.
    O(Arc<Object>),
    /// A remembered transaction that was rejected (rare: it carries its error).
    D(TxnId, DedupRecord),
    /// Remembered transactions that committed, as `[client, seq, revision]`: a busy store
    /// remembers hundreds of thousands, and numbers are quick to write and read.
    C(Vec<(u64, u64, u64)>),
}

/// Committed transactions per [`Record::C`] line.
const COMMITTED_PER_LINE: usize = 4096;

/// Format 2 writes committed transactions as [`Record::C`]; format 1 files (only
/// [`Record::D`]) are still read.
const FORMAT: u32 = 2;

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
        let mut committed = Vec::with_capacity(COMMITTED_PER_LINE);
        for (id, rec) in dedup.entries() {
            if rec.error.is_some() {
                serde_json::to_writer(&mut w, &Record::D(*id, rec.clone())).map_err(io_err)?;
                w.write_all(b"\n")?;
                continue;
            }
            committed.push((id.client, id.seq, rec.revision));
            if committed.len() == COMMITTED_PER_LINE {
                let line = Record::C(std::mem::take(&mut committed));
                serde_json::to_writer(&mut w, &line).map_err(io_err)?;
                w.write_all(b"\n")?;
            }
        }
        if !committed.is_empty() {
            serde_json::to_writer(&mut w, &Record::C(committed)).map_err(io_err)?;
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
    if !(1..=FORMAT).contains(&header.format) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot format {} is not supported (this version reads 1 to {FORMAT})",
                header.format
            ),
        ));
    }
    let mut state = State::default();
    let mut dedup_records = Vec::new();
    state.revision = header.revision;
    for line in lines {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line).map_err(io_err)? {
            Record::O(o) => state.put(o),
            Record::D(id, rec) => dedup_records.push((id, rec)),
            Record::C(committed) => {
                dedup_records.extend(committed.into_iter().map(|(client, seq, revision)| {
                    (
                        TxnId { client, seq },
                        DedupRecord {
                            revision,
                            error: None,
                        },
                    )
                }))
            }
        }
    }
    Ok((header.meta, state, DedupTable::from_records(dedup_records)))
}

/// Reads only the metadata of a snapshot file.
pub fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    let mut first = String::new();
    BufReader::new(File::open(path)?).read_line(&mut first)?;
    let header: Header = serde_json::from_str(&first).map_err(io_err)?;
    Ok(header.meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Config, ConfigSpec, Kind, Meta};
    use crate::txn::TxnError;

    #[test]
    fn objects_and_remembered_transactions_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::default();
        state.revision = 9_000;
        state.put(Arc::new(Object::Config(Config {
            meta: Meta::with_id(crate::model::new_id()),
            spec: ConfigSpec {
                name: "c".into(),
                ..Default::default()
            },
        })));
        let rejected = DedupRecord {
            revision: 7,
            error: Some(TxnError::OutOfSequence {
                kind: Kind::Config,
                id: "x".into(),
                expected: 1,
                actual: 2,
            }),
        };
        // More committed ones than fit one line, and one rejection among them.
        let mut records: Vec<(TxnId, DedupRecord)> = (0..COMMITTED_PER_LINE as u64 + 10)
            .map(|seq| {
                let rec = DedupRecord {
                    revision: 100 + seq,
                    error: None,
                };
                (TxnId { client: 3, seq }, rec)
            })
            .collect();
        records.push((TxnId { client: 4, seq: 1 }, rejected.clone()));
        let dedup = DedupTable::from_records(records);
        let meta = SnapshotMeta::default();
        let path = write(dir.path(), "snapshot-9000.jsonl", &meta, &state, &dedup).unwrap();

        let (_, back, back_dedup) = read(&path).unwrap();
        assert_eq!(back.revision, 9_000);
        assert_eq!(back.len(), 1);
        assert_eq!(back_dedup.len(), dedup.len());
        assert_eq!(
            back_dedup.recall(&TxnId { client: 4, seq: 1 }),
            Some(&rejected)
        );
        assert_eq!(
            back_dedup
                .recall(&TxnId { client: 3, seq: 5 })
                .map(|r| r.revision),
            Some(105)
        );
    }
}
