//! The watch history's rows, without a second copy of large objects.
//!
//! Each revision's commit is kept (sealed) for watches that resume from an older revision.
//! Written whole, every large config or secret was on disk twice for as long as the history
//! kept it: once as the current object and once in the commit that created it (100 MB of
//! configs took 133 MB in each). Here a large object is named in its commit by kind, id and
//! version instead; a reader finds it in the state while that version is current, and in this
//! column family's displaced rows once an update or delete has replaced it (the apply that
//! replaces it writes the old version there before the state moves on). A displaced row is
//! dropped when the history floor passes the revision that displaced it: by then no kept commit
//! can name it.
//!
//! Keys in [`CF_HISTORY_OBJECTS`]: `b` + kind tag + version + id for a displaced object, and
//! `x` + displaced-at revision + kind tag + version + id, an empty row that lets pruning find
//! them in revision order without reading the objects.

use std::io;

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::db::Db;
use serde::{Deserialize, Serialize};

use super::db::{cf, io_err, key_u64, u64_key, CF_HISTORY_OBJECTS};
use super::seal::Sealer;
use crate::model::{Kind, Object};
use crate::state::State;
use crate::txn::{Action, Commit, Event};

/// Objects larger than this (roughly) are named in history rows rather than copied into them.
pub const LARGE_OBJECT_BYTES: usize = 64 << 10;

/// Whether `object` is named, not copied, in history rows.
pub fn is_large(object: &Object) -> bool {
    object.approx_len() > LARGE_OBJECT_BYTES
}

const DISPLACED: u8 = b'b';
const EXPIRY: u8 = b'x';

fn displaced_key(kind: Kind, id: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + id.len());
    k.push(DISPLACED);
    k.push(kind.tag());
    k.extend_from_slice(&u64_key(version));
    k.extend_from_slice(id.as_bytes());
    k
}

fn expiry_key(displaced_at: u64, kind: Kind, id: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(18 + id.len());
    k.push(EXPIRY);
    k.extend_from_slice(&u64_key(displaced_at));
    k.push(kind.tag());
    k.extend_from_slice(&u64_key(version));
    k.extend_from_slice(id.as_bytes());
    k
}

/// Keeps `object` (its JSON is `encoded`), which the apply at revision `displaced_at` replaces
/// or deletes, for the history rows that name it.
pub fn keep_displaced(
    wb: &mut WriteBatch,
    db: &Db,
    sealer: &Sealer,
    object: &Object,
    encoded: &[u8],
    displaced_at: u64,
) {
    let (kind, id, version) = (object.kind(), object.id(), object.version());
    let family = cf(db, CF_HISTORY_OBJECTS);
    wb.put_cf(
        family,
        displaced_key(kind, id, version),
        sealer.seal(encoded),
    );
    wb.put_cf(family, expiry_key(displaced_at, kind, id, version), []);
}

/// Drops the displaced objects that revisions up to `floor` replaced: no history row kept
/// from there on names them.
pub fn prune_displaced(wb: &mut WriteBatch, db: &Db, floor: u64) -> io::Result<()> {
    let family = cf(db, CF_HISTORY_OBJECTS);
    let mut start = vec![EXPIRY];
    start.extend_from_slice(&u64_key(0));
    for item in db.iterator_cf(family, IteratorMode::From(&start, Direction::Forward)) {
        let (k, _) = item.map_err(io_err)?;
        if k.first() != Some(&EXPIRY) || k.len() < 18 || key_u64(&k[1..9]) > floor {
            break;
        }
        let kind = Kind::from_tag(k[9])
            .ok_or_else(|| io_err(format!("unknown kind tag {} in history", k[9])))?;
        let version = key_u64(&k[10..18]);
        let id = std::str::from_utf8(&k[18..]).map_err(io_err)?;
        wb.delete_cf(family, displaced_key(kind, id, version));
        wb.delete_cf(family, &k);
    }
    Ok(())
}

/// Removes every displaced object (a snapshot replaced the state and its history).
pub fn clear_displaced(wb: &mut WriteBatch, db: &Db) {
    wb.delete_range_cf(
        cf(db, CF_HISTORY_OBJECTS),
        [0u8].as_slice(),
        [255u8].as_slice(),
    );
}

/// How a history row names a large object.
#[derive(Serialize, Deserialize)]
struct StoredRef {
    kind: Kind,
    id: String,
    version: u64,
}

/// One event of a history row as read back: the object itself, or its name.
#[derive(Deserialize)]
struct RowEvent {
    action: Action,
    #[serde(default)]
    object: Option<Object>,
    #[serde(default)]
    stored: Option<StoredRef>,
}

#[derive(Deserialize)]
struct Row {
    revision: u64,
    at: crate::model::Timestamp,
    events: Vec<RowEvent>,
}

/// The history row of `commit` (`objects[i]` is the JSON of `commit.events[i].object`):
/// the JSON of `commit.without_prev()`, assembled around the encoded objects, except that
/// large objects are named (`"stored": {kind, id, version}`) instead of copied.
pub fn encode_row(commit: &Commit, objects: &[Vec<u8>]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(
        64 + objects
            .iter()
            .map(|o| o.len().min(LARGE_OBJECT_BYTES) + 32)
            .sum::<usize>(),
    );
    out.extend_from_slice(b"{\"revision\":");
    serde_json::to_writer(&mut out, &commit.revision).map_err(io_err)?;
    out.extend_from_slice(b",\"at\":");
    serde_json::to_writer(&mut out, &commit.at).map_err(io_err)?;
    out.extend_from_slice(b",\"events\":[");
    for (i, (event, object)) in commit.events.iter().zip(objects).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"action\":");
        serde_json::to_writer(&mut out, &event.action).map_err(io_err)?;
        if is_large(&event.object) {
            out.extend_from_slice(b",\"stored\":");
            let o = &event.object;
            let named = StoredRef {
                kind: o.kind(),
                id: o.id().to_string(),
                version: o.version(),
            };
            serde_json::to_writer(&mut out, &named).map_err(io_err)?;
        } else {
            out.extend_from_slice(b",\"object\":");
            out.extend_from_slice(object);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Reads a history row back into its commit, finding the objects it names in `current` (the
/// published state) or among the displaced ones.
pub fn decode_row(plain: &[u8], db: &Db, sealer: &Sealer, current: &State) -> io::Result<Commit> {
    let row: Row = serde_json::from_slice(plain).map_err(io_err)?;
    let mut events = Vec::with_capacity(row.events.len());
    for e in row.events {
        let object = match (e.object, e.stored) {
            (Some(o), _) => std::sync::Arc::new(o),
            (None, Some(named)) => find(db, sealer, current, &named)?,
            (None, None) => return Err(io_err("a history row event without its object")),
        };
        events.push(Event {
            action: e.action,
            object,
            prev: None,
        });
    }
    Ok(Commit {
        revision: row.revision,
        at: row.at,
        events,
    })
}

fn decode_object(sealer: &Sealer, sealed: &[u8]) -> io::Result<Object> {
    serde_json::from_slice(&sealer.open(sealed)?).map_err(io_err)
}

/// The object a history row names: the current one if it still is that version, else the
/// displaced copy.
fn find(
    db: &Db,
    sealer: &Sealer,
    current: &State,
    named: &StoredRef,
) -> io::Result<std::sync::Arc<Object>> {
    if let Some(o) = current.get(named.kind, &named.id) {
        if o.version() == named.version {
            return Ok(o.clone());
        }
    }
    // Written in the same batch that replaced the current one: present whenever the current
    // one has moved on, until the floor passes the row that names it.
    let displaced = db
        .get_cf(
            cf(db, CF_HISTORY_OBJECTS),
            displaced_key(named.kind, &named.id, named.version),
        )
        .map_err(io_err)?
        .ok_or_else(|| {
            io_err(format!(
                "the history names {} {} at version {}, which is no longer stored",
                named.kind.as_str(),
                named.id,
                named.version
            ))
        })?;
    decode_object(sealer, &displaced).map(std::sync::Arc::new)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Config, ConfigSpec, Meta, Timestamp};
    use crate::raft::seal::DataKey;

    fn config(name: &str, bytes: usize, version: u64) -> Arc<Object> {
        let mut meta = Meta::with_id(crate::model::new_id());
        meta.version.index = version;
        Arc::new(Object::Config(Config {
            meta,
            spec: ConfigSpec {
                name: name.into(),
                data: vec![b'"'; bytes],
                ..Default::default()
            },
        }))
    }

    fn commit(revision: u64, events: Vec<(Action, Arc<Object>)>) -> Commit {
        Commit {
            revision,
            at: Timestamp::now(),
            events: events
                .into_iter()
                .map(|(action, object)| Event {
                    action,
                    object: object.clone(),
                    prev: Some(object),
                })
                .collect(),
        }
    }

    fn row(c: &Commit) -> Vec<u8> {
        let objects: Vec<Vec<u8>> = c
            .events
            .iter()
            .map(|e| serde_json::to_vec(&*e.object).unwrap())
            .collect();
        encode_row(c, &objects).unwrap()
    }

    #[test]
    fn a_row_of_small_objects_is_the_commit_without_prev() {
        let c = commit(
            42,
            vec![
                (Action::Update, config("a", 10, 42)),
                (Action::Delete, config("b", 10, 7)),
            ],
        );
        let record = row(&c);
        assert_eq!(record, serde_json::to_vec(&c.without_prev()).unwrap());
        let back: Commit = serde_json::from_slice(&record).unwrap();
        assert_eq!(back, c.without_prev());
    }

    #[test]
    fn large_objects_are_named_and_found_current_then_displaced_then_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::db::open(dir.path()).unwrap();
        let sealer = Sealer::new(&DataKey::generate());
        let big = config("big", 200 << 10, 5);
        let small = config("small", 10, 5);
        let created = commit(
            5,
            vec![(Action::Create, big.clone()), (Action::Create, small)],
        );
        let record = row(&created);
        assert!(
            record.len() < 4096,
            "the large object is named, not copied: {} bytes",
            record.len()
        );
        // Current: found in the state.
        let mut state = State::default();
        state.put(big.clone());
        assert_eq!(
            decode_row(&record, &db, &sealer, &state).unwrap(),
            created.without_prev()
        );

        // Replaced at revision 9: the old version is kept for the row that names it.
        let mut newer = (*big).clone();
        if let Object::Config(c) = &mut newer {
            c.meta.version.index = 9;
        }
        let encoded = serde_json::to_vec(&*big).unwrap();
        let mut wb = WriteBatch::default();
        keep_displaced(&mut wb, &db, &sealer, &big, &encoded, 9);
        db.write(wb).unwrap();
        state.put(Arc::new(newer));
        assert_eq!(
            decode_row(&record, &db, &sealer, &state).unwrap(),
            created.without_prev()
        );

        // A floor below the displacing revision keeps it; one at it drops it.
        let mut wb = WriteBatch::default();
        prune_displaced(&mut wb, &db, 8).unwrap();
        db.write(wb).unwrap();
        assert!(decode_row(&record, &db, &sealer, &state).is_ok());
        let mut wb = WriteBatch::default();
        prune_displaced(&mut wb, &db, 9).unwrap();
        db.write(wb).unwrap();
        let err = decode_row(&record, &db, &sealer, &state).unwrap_err();
        assert!(err.to_string().contains("no longer stored"), "{err}");
        let left = db
            .iterator_cf(cf(&db, CF_HISTORY_OBJECTS), IteratorMode::Start)
            .count();
        assert_eq!(left, 0, "both rows of the displaced object are gone");
    }
}
