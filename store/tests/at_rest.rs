//! Encryption at rest: what users write (a secret's bytes, object names) and the swarm's root CA
//! key never lie in clear in a member's directory, through the Raft log, the state machine,
//! watch history and snapshots, and the members read it all back after restarts. A store opened
//! with sealing off (only `shoal bench store` does, to measure what sealing costs) writes in
//! clear, and a data directory never opens in the other mode.

mod common;
#[path = "../../tests/disk_scan/mod.rs"]
mod disk_scan;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use disk_scan::files_containing;
use shoal_store::model::{Kind, Meta, Secret, SecretSpec};
use shoal_store::{DataKey, Store, Txn};

/// Waits until every member has what `leader` committed, then stops them all (their files
/// are then complete for a scan).
async fn stop_when_caught_up(c: &mut Cluster, leader: u64) {
    let rev = c.store(leader).current_revision();
    for id in 1..=3 {
        c.store(id)
            .wait_for_revision(rev, Duration::from_secs(5))
            .await
            .unwrap();
    }
    for id in 1..=3 {
        c.kill(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_and_the_root_ca_key_are_sealed_in_the_log_the_state_history_and_snapshots() {
    // Snapshots every 20 entries, so the secret ends up in snapshot files too.
    let mut c = Cluster::start_with(3, |cfg| {
        cfg.snapshot_every = 20;
        cfg.logs_kept_after_snapshot = 5;
    })
    .await;
    let marker = format!("hunter2-{}", shoal_store::model::new_id());
    let secret = Secret {
        meta: Meta::with_id(shoal_store::model::new_id()),
        spec: SecretSpec {
            name: format!("db-password-{marker}"),
            data: marker.clone().into_bytes(),
            ..Default::default()
        },
    };
    // The cluster object keeps the root CA's key, as managers keep it.
    let ca_marker = format!("root-ca-key-{}", shoal_store::model::new_id());
    let cluster = shoal_store::model::Cluster {
        meta: Meta::with_id(shoal_store::model::new_id()),
        root_ca: shoal_store::model::RootCa {
            cert_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            key_pem: format!(
                "-----BEGIN PRIVATE KEY-----\n{ca_marker}\n-----END PRIVATE KEY-----\n"
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    let leader = c.leader().await;
    c.store(leader)
        .submit(Txn::new().create(secret.clone()).create(cluster))
        .await
        .unwrap();
    for i in 0..60 {
        c.store(leader)
            .submit(Txn::new().create(config_object(&format!("c{i}"))))
            .await
            .unwrap();
    }
    stop_when_caught_up(&mut c, leader).await;
    let snapshots = files_containing(c.dir.path(), b"\"revision\"");
    assert!(!snapshots.is_empty(), "no snapshot was written");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&marker);
    let ca_encoded = base64::engine::general_purpose::STANDARD.encode(&ca_marker);
    for needle in [
        marker.as_bytes(),
        encoded.as_bytes(),
        ca_marker.as_bytes(),
        ca_encoded.as_bytes(),
    ] {
        let found = files_containing(c.dir.path(), needle);
        assert!(
            found.is_empty(),
            "{:?} found in clear in {found:?}",
            String::from_utf8_lossy(needle)
        );
    }
    for id in 1..=3 {
        c.restart(id).await;
    }
    c.leader().await;
    for id in 1..=3 {
        let v = c.store(id).view();
        let back = v
            .get::<Secret>(&secret.meta.id)
            .expect("the secret after a restart");
        assert_eq!(back.spec.data, marker.as_bytes());
        assert_eq!(v.count(Kind::Config), 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_does_not_open_with_another_data_key() {
    let mut c = Cluster::start(1).await;
    c.store(1)
        .submit(Txn::new().create(config_object("sealed")))
        .await
        .unwrap();
    c.kill(1).await;
    let mut cfg = config(c.dir.path(), 1);
    cfg.data_key = Some(DataKey::generate());
    let err = Store::open(cfg, c.net.transport(&addr(1)))
        .await
        .err()
        .expect("the store must not open with another key");
    assert!(
        err.to_string().contains("data key"),
        "the error says what is wrong: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_sealing_writes_in_clear_and_its_directory_never_opens_sealed() {
    let unsealed = |cfg: &mut shoal_store::StoreConfig| {
        cfg.seal_at_rest = false;
        cfg.snapshot_every = 20;
        cfg.logs_kept_after_snapshot = 5;
    };
    let mut c = Cluster::start_with(3, unsealed).await;
    let marker = format!("in-clear-{}", shoal_store::model::new_id());
    let leader = c.leader().await;
    for i in 0..60 {
        c.store(leader)
            .submit(Txn::new().create(config_object(&format!("{marker}-{i}"))))
            .await
            .unwrap();
    }
    stop_when_caught_up(&mut c, leader).await;
    assert!(
        !files_containing(c.dir.path(), marker.as_bytes()).is_empty(),
        "with sealing off the names are written as they are"
    );
    for id in 1..=3 {
        let snapshots = member_dir(c.dir.path(), id).join("snapshots");
        assert!(
            !files_containing(&snapshots, marker.as_bytes()).is_empty(),
            "member {id} wrote a snapshot in clear"
        );
    }

    let err = Store::open(config(c.dir.path(), 1), c.net.transport(&addr(1)))
        .await
        .err()
        .expect("a sealing store must not open a directory written in clear");
    assert!(
        err.to_string().contains("without sealing at rest"),
        "the error says what is wrong: {err}"
    );

    for id in 1..=3 {
        c.restart_with(id, unsealed).await;
    }
    c.leader().await;
    for id in 1..=3 {
        assert_eq!(c.store(id).view().count(Kind::Config), 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_cannot_be_turned_off_for_a_sealed_directory() {
    let mut c = Cluster::start(1).await;
    c.store(1)
        .submit(Txn::new().create(config_object("sealed")))
        .await
        .unwrap();
    c.kill(1).await;
    let mut cfg = config(c.dir.path(), 1);
    cfg.seal_at_rest = false;
    let err = Store::open(cfg, c.net.transport(&addr(1)))
        .await
        .err()
        .expect("a sealed directory must not open in clear");
    assert!(
        err.to_string().contains("sealing cannot be turned off"),
        "the error says what is wrong: {err}"
    );
    c.restart(1).await;
    assert_eq!(c.store(1).view().count(Kind::Config), 1);
}

/// A fixed data key per member and generation, so a test can reopen members with either.
fn key(member: u64, generation: u8) -> DataKey {
    DataKey::from_bytes(&[member as u8 + generation * 16; 32]).unwrap()
}

/// How many values under member `id`'s directory `key` opens, and how many are sealed.
fn opened_by(c: &Cluster, id: u64, key: &DataKey) -> (u64, u64) {
    shoal_store::raft::db::values_opened_by(&member_dir(c.dir.path(), id), key).unwrap()
}

/// Every sealed value in member `id`'s database, read-only.
fn sealed_values(c: &Cluster, id: u64) -> Vec<Vec<u8>> {
    let path = member_dir(c.dir.path(), id).join("db");
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        path,
        shoal_store::raft::db::ALL,
        false,
    )
    .unwrap();
    let mut out = Vec::new();
    for name in shoal_store::raft::db::ALL {
        let family = db.cf_handle(name).unwrap();
        for item in db.iterator_cf(family, rocksdb::IteratorMode::Start) {
            let (_, v) = item.unwrap();
            if v.first() == Some(&1) && v.len() > 40 {
                out.push(v.to_vec());
            }
        }
    }
    out
}

/// The files under member `id`'s directory that still hold one of `values` (by its nonce and
/// the start of its ciphertext). RocksDB's write-ahead log files (`*.log`) are left out: they
/// are recycled, and a recycled file's stale tail is never read again but stays on disk until
/// overwritten, as the blocks of a deleted file do.
fn old_values_on_disk(c: &Cluster, id: u64, values: &[Vec<u8>]) -> Vec<String> {
    let needles: std::collections::HashSet<&[u8]> = values.iter().map(|v| &v[1..41]).collect();
    let mut found = Vec::new();
    let mut stack = vec![member_dir(c.dir.path(), id)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_some_and(|x| x == "log") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(40).any(|w| needles.contains(w)) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_data_key_rotation_under_writes_the_old_key_opens_nothing() {
    let mut c = Cluster::start_with(3, |cfg| {
        cfg.data_key = Some(key(cfg.raft_id, 0));
        cfg.snapshot_every = 20;
        cfg.logs_kept_after_snapshot = 5;
    })
    .await;
    let secret = Secret {
        meta: Meta::with_id(shoal_store::model::new_id()),
        spec: SecretSpec {
            name: "rotated".into(),
            data: b"kept across the rotation".to_vec(),
            ..Default::default()
        },
    };
    let leader = c.leader().await;
    c.store(leader)
        .submit(Txn::new().create(secret.clone()))
        .await
        .unwrap();
    for i in 0..60 {
        c.store(leader)
            .submit(Txn::new().create(config_object(&format!("before-{i}"))))
            .await
            .unwrap();
    }
    // Everything so far into table files, to see the rotation rewrite them; what the old key
    // sealed, read from a running member's database (read-only opens take no lock).
    let mut old_sealed = Vec::new();
    for id in 1..=3 {
        c.store(id).compact().await.unwrap();
        old_sealed.push(sealed_values(&c, id));
        assert!(!old_sealed[id as usize - 1].is_empty());
    }
    // Writes go on while every member rotates.
    let writer = {
        let store = c.store(leader).clone();
        tokio::spawn(async move {
            for i in 0..100 {
                store
                    .submit(Txn::new().create(config_object(&format!("during-{i}"))))
                    .await
                    .unwrap();
            }
        })
    };
    let rotations: Vec<_> = (1..=3)
        .map(|id| {
            let store = c.store(id).clone();
            tokio::spawn(async move { store.rotate_data_key(key(id, 1)).await })
        })
        .collect();
    for r in rotations {
        r.await.unwrap().expect("the rotation completes");
    }
    writer.await.unwrap();
    for id in 1..=3 {
        assert!(!c.store(id).rotating_data_key());
    }
    stop_when_caught_up(&mut c, leader).await;

    for id in 1..=3 {
        let (old_opens, sealed) = opened_by(&c, id, &key(id, 0));
        assert!(sealed > 0, "member {id} has sealed values");
        assert_eq!(
            old_opens, 0,
            "member {id}: the old data key still opens values"
        );
        let (new_opens, _) = opened_by(&c, id, &key(id, 1));
        assert_eq!(
            new_opens, sealed,
            "member {id}: the new key opens every value"
        );
    }
    for id in 1..=3 {
        let left = old_values_on_disk(&c, id, &old_sealed[id as usize - 1]);
        assert!(
            left.is_empty(),
            "member {id}: values sealed with the old key remain in {left:?}"
        );
    }
    let err = Store::open(
        {
            let mut cfg = config(c.dir.path(), 1);
            cfg.data_key = Some(key(1, 0));
            cfg
        },
        c.net.transport(&addr(1)),
    )
    .await
    .err()
    .expect("the old key must not open the store");
    assert!(err.to_string().contains("data key"), "{err}");

    for id in 1..=3 {
        c.restart_with(id, |cfg| cfg.data_key = Some(key(id, 1)))
            .await;
    }
    c.leader().await;
    for id in 1..=3 {
        let v = c.store(id).view();
        let back = v.get::<Secret>(&secret.meta.id).expect("the secret");
        assert_eq!(back.spec.data, b"kept across the rotation");
        assert_eq!(v.count(Kind::Config), 160);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_during_a_rotation_opens_with_both_keys_and_finishes_it() {
    let mut c = Cluster::start_with(1, |cfg| {
        cfg.data_key = Some(key(1, 0));
        cfg.snapshot_every = 20;
    })
    .await;
    for i in 0..30 {
        c.store(1)
            .submit(Txn::new().create(config_object(&format!("old-{i}"))))
            .await
            .unwrap();
    }
    c.kill(1).await;
    // As a node reopens it when it stopped after switching keys, before the rotation ended.
    c.restart_with(1, |cfg| {
        cfg.data_key = Some(key(1, 1));
        cfg.retiring_data_key = Some(key(1, 0));
    })
    .await;
    c.leader().await;
    assert!(c.store(1).rotating_data_key());
    assert_eq!(c.store(1).view().count(Kind::Config), 30);
    for i in 0..10 {
        c.store(1)
            .submit(Txn::new().create(config_object(&format!("new-{i}"))))
            .await
            .unwrap();
    }
    c.store(1).finish_data_key_rotation().await.unwrap();
    assert!(!c.store(1).rotating_data_key());
    c.kill(1).await;
    let (old_opens, sealed) = opened_by(&c, 1, &key(1, 0));
    assert!(sealed > 0);
    assert_eq!(old_opens, 0, "the retired key still opens values");
    c.restart_with(1, |cfg| cfg.data_key = Some(key(1, 1)))
        .await;
    c.leader().await;
    assert_eq!(c.store(1).view().count(Kind::Config), 40);
}
