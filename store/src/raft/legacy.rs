//! Data directories written before the state lived only in snapshots kept every object (and
//! every remembered transaction) in a table of its own, beside the applied log id. Opening one
//! turns those tables into a snapshot at that log id, once, in one write: afterwards it is like
//! any other directory.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{IteratorMode, WriteBatch};

use super::db::Db;

use super::db::{cf, io_err, key_u64, CF_DEDUP, CF_OBJECTS, CF_SM};
use super::seal::{DataKey, Sealer};
use super::snapshot;
use super::state_machine::{
    get_json, remove_older_snapshots, snapshot_name, CurrentSnapshot, KEY_SNAPSHOT,
    KEY_SNAPSHOT_KEY,
};
use super::types::{LogId, SnapshotMeta, StoredMembership};
use crate::dedup::DedupTable;
use crate::model::Object;
use crate::state::State;
use crate::txn::TxnId;

/// The applied log id the old layout kept beside its objects.
const KEY_APPLIED: &[u8] = b"applied";
/// The membership in effect at that log id.
const KEY_MEMBERSHIP: &[u8] = b"membership";

/// Whether the directory still has the old layout's objects.
pub fn has_objects(db: &Db) -> bool {
    db.iterator_cf(cf(db, CF_OBJECTS), IteratorMode::Start)
        .next()
        .is_some()
}

/// The old layout's state, remembered transactions and where they stand.
pub fn load(db: &Db, sealer: &Sealer) -> io::Result<(SnapshotMeta, State, DedupTable)> {
    let applied: Option<LogId> = get_json::<Option<LogId>>(db, CF_SM, KEY_APPLIED)?.flatten();
    let membership: StoredMembership = get_json(db, CF_SM, KEY_MEMBERSHIP)?.unwrap_or_default();
    let mut state = State::default();
    for item in db.iterator_cf(cf(db, CF_OBJECTS), IteratorMode::Start) {
        let (_, v) = item.map_err(io_err)?;
        let o: Object = serde_json::from_slice(&sealer.open(&v)?).map_err(io_err)?;
        state.put(Arc::new(o));
    }
    state.revision = applied.map(|l| l.index).unwrap_or(0);
    let mut records = Vec::new();
    for item in db.iterator_cf(cf(db, CF_DEDUP), IteratorMode::Start) {
        let (k, v) = item.map_err(io_err)?;
        let id = TxnId {
            client: key_u64(&k[..8]),
            seq: key_u64(&k[8..16]),
        };
        records.push((
            id,
            serde_json::from_slice(&sealer.open(&v)?).map_err(io_err)?,
        ));
    }
    let meta = SnapshotMeta {
        last_log_id: applied,
        last_membership: membership,
    };
    Ok((meta, state, DedupTable::from_records(records)))
}

/// Writes the old layout's state as a snapshot and drops its tables, in one write.
pub fn convert(
    db: &Db,
    sealer: &Sealer,
    snapshot_dir: &Path,
    meta: &SnapshotMeta,
    state: &State,
    dedup: &DedupTable,
) -> io::Result<CurrentSnapshot> {
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    let name = snapshot_name(index);
    let key = sealer.seals().then(DataKey::generate);
    let path = snapshot::write(snapshot_dir, &name, meta, state, dedup, key.as_ref())?;
    let mut wb = WriteBatch::default();
    wb.delete_range_cf(cf(db, CF_OBJECTS), [0u8].as_slice(), [255u8].as_slice());
    wb.delete_range_cf(
        cf(db, CF_DEDUP),
        [0u8; 16].as_slice(),
        [255u8; 16].as_slice(),
    );
    let sm = cf(db, CF_SM);
    wb.delete_cf(sm, KEY_APPLIED);
    wb.delete_cf(sm, KEY_MEMBERSHIP);
    wb.put_cf(sm, KEY_SNAPSHOT, serde_json::to_vec(&name).map_err(io_err)?);
    match &key {
        Some(key) => wb.put_cf(sm, KEY_SNAPSHOT_KEY, sealer.seal(key.as_bytes())),
        None => wb.delete_cf(sm, KEY_SNAPSHOT_KEY),
    }
    db.write(wb).map_err(io_err)?;
    db.flush_wal(true).map_err(io_err)?;
    remove_older_snapshots(snapshot_dir, &path);
    tracing::info!(
        index,
        objects = state.len(),
        "converted the store's object table into a snapshot"
    );
    Ok(CurrentSnapshot {
        meta: meta.clone(),
        path,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Config, ConfigSpec, Kind, Meta};
    use crate::raft::state_machine::{HistoryRetention, StateMachine};

    #[test]
    fn a_directory_with_an_object_table_becomes_a_snapshot_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::db::open(&dir.path().join("db")).unwrap();
        let sealer = Arc::new(Sealer::new(&DataKey::generate()));
        let mut meta = Meta::with_id(crate::model::new_id());
        meta.version.index = 7;
        let config = Object::Config(Config {
            meta,
            spec: ConfigSpec {
                name: "kept".into(),
                data: b"payload".to_vec(),
                ..Default::default()
            },
        });
        let applied: LogId =
            serde_json::from_value(serde_json::json!({"leader_id": 1, "index": 7})).unwrap();
        let mut key = vec![Kind::Config.tag()];
        key.extend_from_slice(config.id().as_bytes());
        db.put_cf(
            cf(&db, CF_OBJECTS),
            key,
            sealer.seal(&serde_json::to_vec(&config).unwrap()),
        )
        .unwrap();
        db.put_cf(
            cf(&db, CF_SM),
            KEY_APPLIED,
            serde_json::to_vec(&Some(applied)).unwrap(),
        )
        .unwrap();
        let snapshots = dir.path().join("snapshots");

        let sm = StateMachine::open(
            db.clone(),
            sealer.clone(),
            snapshots.clone(),
            HistoryRetention::default(),
        )
        .unwrap();
        let shared = sm.shared();
        let state = shared.hub.state();
        assert_eq!(state.revision, 7);
        assert!(state.get(Kind::Config, config.id()).is_some());
        assert_eq!(shared.applied().0, Some(applied));
        assert!(!has_objects(&db), "the object table is gone");
        let current = shared.current_snapshot().expect("a snapshot");
        assert_eq!(current.meta.last_log_id, Some(applied));
        drop(sm);

        // Opened again, it starts from that snapshot.
        let sm = StateMachine::open(db, sealer, snapshots, HistoryRetention::default()).unwrap();
        let state = sm.shared().hub.state();
        assert_eq!(state.revision, 7);
        assert!(state.get(Kind::Config, config.id()).is_some());
    }
}
