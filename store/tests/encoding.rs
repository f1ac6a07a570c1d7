//! The binary encoding of log entries and peer messages (`shoal_store::codec`) next to JSON: a
//! log written as JSON (by an earlier version) opens and is replicated by members that write
//! binary, and members that write different encodings replicate to each other.

mod common;

use std::time::Duration;

use common::*;
use shoal_store::codec::Encoding;
use shoal_store::model::{Config, Kind};
use shoal_store::Txn;

fn json(cfg: &mut shoal_store::StoreConfig) {
    cfg.encoding = Encoding::Json;
}

fn binary(cfg: &mut shoal_store::StoreConfig) {
    cfg.encoding = Encoding::Binary;
}

/// A config with bytes that base64 and JSON escaping would both change.
fn with_data(name: &str) -> Config {
    let mut c = config_object(name);
    c.spec.data = (0..=255u8).cycle().take(700).collect();
    c
}

async fn write(c: &Cluster, names: std::ops::Range<usize>) {
    let leader = c.leader().await;
    for i in names {
        c.store(leader)
            .submit(Txn::new().create(with_data(&format!("c{i}"))))
            .await
            .unwrap();
    }
}

/// Every running member holds `n` configs, each with its bytes intact.
async fn all_hold(c: &Cluster, n: usize) {
    let leader = c.leader().await;
    let rev = c.store(leader).current_revision();
    for store in c.running() {
        store
            .wait_for_revision(rev, Duration::from_secs(10))
            .await
            .unwrap();
        let view = store.view();
        assert_eq!(view.count(Kind::Config), n);
        for config in view.list::<Config>() {
            assert_eq!(config.spec.data, with_data("x").spec.data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_as_json_is_read_and_replicated_by_members_that_write_binary() {
    let mut c = Cluster::start_with(3, json).await;
    write(&c, 0..20).await;
    // Member 3 misses the next writes: after the restart the leader sends them from its JSON
    // log on disk (its cache of recent entries went with the restart), in binary.
    let follower = c.follower().await;
    c.kill(follower).await;
    write(&c, 20..40).await;
    for id in 1..=3 {
        if id != follower {
            c.kill(id).await;
        }
    }
    for id in 1..=3 {
        c.restart_with(id, binary).await;
    }
    all_hold(&c, 40).await;
    write(&c, 40..50).await;
    all_hold(&c, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_writing_different_encodings_replicate_to_each_other() {
    let mut c = Cluster::start_with(3, binary).await;
    write(&c, 0..10).await;
    // One member answers and sends JSON, the others binary, whoever leads.
    let follower = c.follower().await;
    c.kill(follower).await;
    c.restart_with(follower, json).await;
    write(&c, 10..20).await;
    all_hold(&c, 20).await;
    let leader = c.leader().await;
    c.kill(leader).await;
    write(&c, 20..30).await;
    c.restart_with(leader, binary).await;
    all_hold(&c, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_the_limit_is_refused_and_changes_nothing() {
    let c = Cluster::start_with(1, |cfg| cfg.max_txn_bytes = 16 << 10).await;
    let store = c.store(1);
    let before = store.current_revision();
    let mut big = config_object("too-big");
    big.spec.data = vec![1u8; 20 << 10];
    let err = store
        .submit(Txn::new().create(big))
        .await
        .expect_err("a 20 KiB config is over a 16 KiB limit");
    let msg = err.to_string();
    assert!(
        msg.contains("exceeds the 16384 byte limit") && msg.contains("make the objects smaller"),
        "{msg}"
    );
    assert_eq!(store.current_revision(), before);
    assert_eq!(store.view().count(Kind::Config), 0);
    // 12 KiB of bytes fit: the binary encoding carries them as they are (base64 in JSON would
    // make them 16 KiB, over the limit).
    let mut fits = config_object("fits");
    fits.spec.data = vec![1u8; 12 << 10];
    store.submit(Txn::new().create(fits)).await.unwrap();
    assert_eq!(store.view().count(Kind::Config), 1);
}
