//! Snapshot files: the whole state at one revision, as a header line (JSON: format, metadata,
//! revision) followed by records (one per object, per rejected transaction, and per block of
//! committed transaction ids). Since format 3 each record is a frame, a big-endian `u32` length
//! and the record's JSON sealed with the snapshot's own file key ([`super::seal`]); the file key
//! travels with the snapshot (kept sealed by the member's data key at rest, sent with the
//! snapshot to a peer over its mutually authenticated link), so a snapshot is streamed to
//! another member as it lies on disk. Formats 1 and 2 (JSON lines in clear) are still read.
//! A store that does not seal at rest (benchmarks only) writes format 3 frames in clear, says
//! so in the header, and has no file key; a sealing member refuses such a snapshot.
//!
//! Written to a temporary file, synced, then renamed, so a snapshot on disk is always complete;
//! streamed in chunks, so there is no size ceiling.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::db::io_err;
use super::seal::{DataKey, Sealer};
use super::types::SnapshotMeta;
use crate::dedup::{DedupRecord, DedupTable};
use crate::model::Object;
use crate::state::State;
use crate::txn::TxnId;

/// A snapshot's data: a file on disk and the key its records are sealed with (`None` for files
/// written in clear by older versions).
#[derive(Debug)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its file key.
    pub key: Option<DataKey>,
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
    /// Frames in clear: written by a store that does not seal at rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    clear: bool,
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

/// Format 3 seals every record in a frame; format 2 (committed transactions as [`Record::C`])
/// and format 1 (only [`Record::D`]) are JSON lines in clear, still read.
const FORMAT: u32 = 3;
/// The first format that seals its records.
const SEALED_FORMAT: u32 = 3;

/// A snapshot file being written or received is synced every this many bytes: one sync of a
/// whole large snapshot at the end holds the disk long enough to delay every Raft log sync
/// queued behind it (RocksDB's `bytes_per_sync` does the same for its own files).
pub const SYNC_EVERY_BYTES: usize = 8 << 20;

/// Writes records as sealed frames to a file, syncing it as it grows.
struct FrameWriter {
    out: BufWriter<File>,
    sealer: Sealer,
    unsynced: usize,
}

impl FrameWriter {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        let plain = serde_json::to_vec(record).map_err(io_err)?;
        let sealed = self.sealer.seal(&plain);
        let len = u32::try_from(sealed.len())
            .map_err(|_| io::Error::other("a snapshot record over 4 GiB"))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&sealed)?;
        self.unsynced += 4 + sealed.len();
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.out.flush()?;
            self.out.get_ref().sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }
}

/// Writes `state` and `dedup` (taken at `meta.last_log_id`) to `dir/name`, atomically, sealed
/// with `key` (`None`: in clear, for a store that does not seal at rest).
pub fn write(
    dir: &Path,
    name: &str,
    meta: &SnapshotMeta,
    state: &State,
    dedup: &DedupTable,
    key: Option<&DataKey>,
) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let final_path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let header = Header {
            format: FORMAT,
            meta: meta.clone(),
            revision: state.revision,
            clear: key.is_none(),
        };
        serde_json::to_writer(&mut out, &header).map_err(io_err)?;
        out.write_all(b"\n")?;
        let mut w = FrameWriter {
            out,
            sealer: key.map_or_else(Sealer::clear, Sealer::new),
            unsynced: 0,
        };
        for o in state.all_objects() {
            w.record(&Record::O(o.clone()))?;
        }
        let mut committed = Vec::with_capacity(COMMITTED_PER_LINE);
        for (id, rec) in dedup.entries() {
            if rec.error.is_some() {
                w.record(&Record::D(*id, rec.clone()))?;
                continue;
            }
            committed.push((id.client, id.seq, rec.revision));
            if committed.len() == COMMITTED_PER_LINE {
                w.record(&Record::C(std::mem::take(&mut committed)))?;
            }
        }
        if !committed.is_empty() {
            w.record(&Record::C(committed))?;
        }
        let f = w.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &final_path)?;
    File::open(dir)?.sync_all()?;
    Ok(final_path)
}

/// The store revision of the state in the snapshot file at `path`.
pub fn revision_of(path: &Path) -> io::Result<u64> {
    Ok(read_header(&mut BufReader::new(File::open(path)?))?.revision)
}

fn read_header(r: &mut impl BufRead) -> io::Result<Header> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "empty snapshot file",
        ));
    }
    let header: Header = serde_json::from_str(&first).map_err(io_err)?;
    if !(1..=FORMAT).contains(&header.format) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot format {} is not supported (this version reads 1 to {FORMAT})",
                header.format
            ),
        ));
    }
    Ok(header)
}

/// The next sealed frame's plain bytes, or `None` at the end of the file.
fn next_frame(r: &mut impl Read, sealer: &Sealer) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut sealed = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut sealed)?;
    Ok(Some(sealer.open(&sealed)?.into_owned()))
}

/// Reads a snapshot file back into its metadata, state and deduplication table; `key` is the
/// file key it was sealed with (files of formats 1 and 2 need none). `member_seals` says
/// whether the reading member seals at rest: a snapshot written in clear by a store that does
/// not is refused by one that does, and the other way round.
pub fn read(
    path: &Path,
    key: Option<&DataKey>,
    member_seals: bool,
) -> io::Result<(SnapshotMeta, State, DedupTable)> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let header = read_header(&mut r)?;
    let mut records: Vec<Record> = Vec::new();
    let mut state = State::default();
    let mut dedup_records = Vec::new();
    state.revision = header.revision;
    let mut take = |record: Record| match record {
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
    };
    if header.format >= SEALED_FORMAT {
        let sealer = match (header.clear, member_seals) {
            (true, true) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot {} was written in clear by a store that does not seal at rest (a benchmark's); this member seals and refuses it",
                        path.display()
                    ),
                ))
            }
            (false, false) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot {} is sealed and this member does not seal at rest (a benchmark's setting); open it with sealing on",
                        path.display()
                    ),
                ))
            }
            (true, false) => Sealer::clear(),
            (false, true) => Sealer::new(key.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot {} is sealed and no key came with it",
                        path.display()
                    ),
                )
            })?),
        };
        while let Some(plain) = next_frame(&mut r, &sealer)? {
            take(serde_json::from_slice(&plain).map_err(io_err)?);
        }
    } else {
        for line in r.lines() {
            let line = line?;
            if !line.is_empty() {
                records.push(serde_json::from_str(&line).map_err(io_err)?);
            }
        }
        records.into_iter().for_each(&mut take);
    }
    Ok((header.meta, state, DedupTable::from_records(dedup_records)))
}

/// Reads only the metadata of a snapshot file.
pub fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    Ok(read_header(&mut BufReader::new(File::open(path)?))?.meta)
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
        let key = DataKey::generate();
        let path = write(
            dir.path(),
            "snapshot-9000.jsonl",
            &meta,
            &state,
            &dedup,
            Some(&key),
        )
        .unwrap();
        // Sealed: neither the object's name nor its id is on disk in clear.
        let on_disk = std::fs::read(&path).unwrap();
        let id = state.all_objects().next().unwrap().id().to_string();
        assert!(!on_disk.windows(id.len()).any(|w| w == id.as_bytes()));
        assert!(
            read(&path, None, true).is_err(),
            "a sealed snapshot needs its key"
        );
        assert!(read(&path, Some(&DataKey::generate()), true).is_err());
        assert!(
            read(&path, Some(&key), false).is_err(),
            "a member that does not seal refuses a sealed snapshot"
        );

        let (_, back, back_dedup) = read(&path, Some(&key), true).unwrap();
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

    #[test]
    fn snapshots_written_in_clear_by_older_versions_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot-5.jsonl");
        let config = Object::Config(Config {
            meta: Meta::with_id(crate::model::new_id()),
            ..Default::default()
        });
        let legacy = format!(
            "{}\n{}\n{}\n",
            serde_json::json!({"format": 2, "meta": SnapshotMeta::default(), "revision": 5}),
            serde_json::to_string(&Record::O(Arc::new(config))).unwrap(),
            serde_json::to_string(&Record::C(vec![(1, 2, 5)])).unwrap(),
        );
        std::fs::write(&path, legacy).unwrap();
        let (_, state, dedup) = read(&path, None, true).unwrap();
        assert_eq!(state.revision, 5);
        assert_eq!(state.len(), 1);
        assert_eq!(dedup.len(), 1);
    }

    #[test]
    fn a_snapshot_written_in_clear_is_read_only_by_a_member_that_does_not_seal() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::default();
        state.revision = 12;
        state.put(Arc::new(Object::Config(Config {
            meta: Meta::with_id(crate::model::new_id()),
            spec: ConfigSpec {
                name: "in-clear".into(),
                ..Default::default()
            },
        })));
        let meta = SnapshotMeta::default();
        let dedup = DedupTable::default();
        let path = write(dir.path(), "snapshot-12.jsonl", &meta, &state, &dedup, None).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.windows(8).any(|w| w == b"in-clear"));
        let err = read(&path, None, true).unwrap_err();
        assert!(err.to_string().contains("written in clear"), "{err}");
        let (_, back, _) = read(&path, None, false).unwrap();
        assert_eq!(back.revision, 12);
        assert_eq!(back.len(), 1);
    }
}
