//! Watch guarantees: order, exactly-once resume across a leader change, compaction, overflow,
//! snapshot + watch, progress.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use shoal_store::model::Kind;
use shoal_store::{Txn, WatchError, WatchFilter, WatchMessage, WatchRequest, WatchStart};

fn names_of(msg: &WatchMessage) -> Vec<String> {
    match msg {
        WatchMessage::Commit(c) => c
            .events
            .iter()
            .map(|e| e.object.name().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_across_a_leader_change_sees_every_event_once_in_order() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let watcher_member = (1..=3).find(|i| *i != leader).unwrap();
    let third = (1..=3)
        .find(|i| *i != leader && *i != watcher_member)
        .unwrap();

    let mut watch = c
        .store(watcher_member)
        .watch(WatchRequest::new(WatchStart::Now).filter(WatchFilter::kinds([Kind::Config])))
        .await
        .unwrap();
    let writer = c.store(third).clone();
    let mut expected = Vec::new();
    for i in 0..30 {
        let name = format!("w{i}");
        writer
            .submit(Txn::new().create(config_object(&name)))
            .await
            .unwrap();
        expected.push(name);
    }
    // Read part of the stream, remember the last revision, then lose the connection.
    let mut seen = Vec::new();
    let mut last_rev = 0;
    while seen.len() < 10 {
        let m = watch.next().await.unwrap().unwrap();
        if let WatchMessage::Commit(cm) = &m {
            assert!(cm.revision > last_rev, "revisions increase");
            last_rev = cm.revision;
        }
        seen.extend(names_of(&m));
    }
    drop(watch);

    c.kill(leader).await;
    c.leader().await;
    for i in 30..45 {
        let name = format!("w{i}");
        writer
            .submit(Txn::new().create(config_object(&name)))
            .await
            .unwrap();
        expected.push(name);
    }
    let committed_rev = writer.linearizable_view().await.unwrap().revision();

    // Reconnect to another manager, resuming after the last revision seen.
    let mut watch = c
        .store(third)
        .watch(
            WatchRequest::new(WatchStart::After(last_rev))
                .filter(WatchFilter::kinds([Kind::Config]))
                .min_revision(last_rev),
        )
        .await
        .unwrap();
    while seen.len() < expected.len() {
        let m = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        if let WatchMessage::Commit(cm) = &m {
            assert!(cm.revision > last_rev, "ordered, no duplicates");
            last_rev = cm.revision;
        }
        seen.extend(names_of(&m));
    }
    assert_eq!(seen, expected, "every event exactly once, in commit order");
    assert!(last_rev <= committed_rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_below_retained_history_is_an_explicit_compacted_error() {
    let c = Cluster::start_with(1, |cfg| cfg.history.revisions = 20).await;
    let s = c.store(1);
    let first = s
        .submit(Txn::new().create(config_object("first")))
        .await
        .unwrap()
        .revision;
    for i in 0..600 {
        s.submit(Txn::new().create(config_object(&format!("c{i}"))))
            .await
            .unwrap();
    }
    assert!(s.history_floor() > first, "history was pruned");
    let err = match s.watch(WatchRequest::new(WatchStart::After(first))).await {
        Err(e) => e,
        Ok(_) => panic!("resuming below the floor must fail"),
    };
    match err {
        WatchError::Compacted {
            requested,
            oldest,
            current,
        } => {
            assert_eq!(requested, first);
            assert_eq!(oldest, s.history_floor());
            assert!(current >= oldest);
        }
        other => panic!("expected Compacted, got {other}"),
    }
    // Resuming at the floor works and replays what followed it.
    let floor = s.history_floor();
    let mut w = s
        .watch(WatchRequest::new(WatchStart::After(floor)))
        .await
        .unwrap();
    match w.next().await.unwrap().unwrap() {
        WatchMessage::Commit(cm) => assert!(cm.revision > floor),
        other => panic!("expected a replayed commit, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_is_ended_with_overflow_while_others_keep_going() {
    let c = Cluster::start(1).await;
    let s = c.store(1);
    let mut slow = s
        .watch(WatchRequest::new(WatchStart::Now).buffer(4))
        .await
        .unwrap();
    let mut fast = s
        .watch(WatchRequest::new(WatchStart::Now).buffer(1024))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < 50 {
            if let WatchMessage::Commit(c) = fast.next().await.unwrap().unwrap() {
                n += c.events.len();
            }
        }
        n
    });
    for i in 0..50 {
        s.submit(Txn::new().create(config_object(&format!("o{i}"))))
            .await
            .unwrap();
    }
    assert_eq!(reader.await.unwrap(), 50, "the fast watcher got everything");
    let mut delivered = 0;
    let mut last = 0;
    loop {
        match slow.next().await {
            Some(Ok(WatchMessage::Commit(c))) => {
                delivered += 1;
                last = c.revision;
            }
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(WatchError::Overflow { last_delivered })) => {
                assert_eq!(last_delivered, last, "tells where to resume");
                break;
            }
            Some(Err(e)) => panic!("unexpected error {e}"),
            None => panic!("ended without saying why"),
        }
    }
    assert_eq!(
        delivered, 4,
        "it got what fit in its buffer, then the explicit error"
    );
    // Resuming from where it stopped delivers the rest.
    let mut resumed = s
        .watch(WatchRequest::new(WatchStart::After(last)))
        .await
        .unwrap();
    let mut rest = 0;
    while rest < 46 {
        if let WatchMessage::Commit(c) = resumed.next().await.unwrap().unwrap() {
            rest += c.events.len();
        }
    }
    assert_eq!(rest, 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_watch_is_consistent_and_tombstones_carry_the_object() {
    let c = Cluster::start(1).await;
    let s = c.store(1);
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = s
            .submit(Txn::new().create(config_object(&format!("x{i}"))))
            .await
            .unwrap();
        ids.push(r.objects[0].id().to_string());
    }
    let mut w = s
        .watch(WatchRequest::new(WatchStart::Snapshot))
        .await
        .unwrap();
    let WatchMessage::InitBegin { revision: begin } = w.next().await.unwrap().unwrap() else {
        panic!()
    };
    let mut objects = BTreeSet::new();
    let done = loop {
        match w.next().await.unwrap().unwrap() {
            WatchMessage::InitObjects(os) => objects.extend(os.iter().map(|o| o.id().to_string())),
            WatchMessage::InitDone { revision } => break revision,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(begin, done);
    assert_eq!(objects, ids.iter().cloned().collect());
    let del = s
        .submit(Txn::new().delete(Kind::Config, ids[0].clone(), None))
        .await
        .unwrap();
    match w.next().await.unwrap().unwrap() {
        WatchMessage::Commit(cm) => {
            assert_eq!(cm.revision, del.revision);
            assert!(cm.revision > done);
            assert_eq!(cm.events[0].action, shoal_store::Action::Delete);
            assert_eq!(
                cm.events[0].object.id(),
                ids[0],
                "tombstone carries the deleted object"
            );
            assert_eq!(cm.events[0].object.name(), Some("x0"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_filtered_watcher_still_gets_progress() {
    let c = Cluster::start(1).await;
    let s = c.store(1);
    let mut w = s
        .watch(
            WatchRequest::new(WatchStart::Now)
                .filter(WatchFilter::kinds([Kind::Service]))
                .progress_interval(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    let r = s
        .submit(Txn::new().create(config_object("not-a-service")))
        .await
        .unwrap();
    loop {
        match w.next().await.unwrap().unwrap() {
            WatchMessage::Progress { revision } if revision >= r.revision => break,
            WatchMessage::Progress { .. } => continue,
            other => panic!("filtered watcher got {other:?}"),
        }
    }
}

/// Large objects are named, not copied, in the history on disk: a watch resumed from an old
/// revision after a restart (so the history comes from disk, not memory) still gets each of
/// their versions whole, the created one, the updated one and the deleted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_disk_gives_every_version_of_large_objects() {
    use shoal_store::model::{Config, Object};
    let mut c = Cluster::start(1).await;
    let s = c.store(1).clone();
    let before = s.current_revision();
    let mut big = config_object("big");
    big.spec.data = vec![7u8; 300 << 10];
    let created = s.submit(Txn::new().create(big)).await.unwrap();
    let mut updated = s
        .view()
        .get::<Config>(created.objects[0].id())
        .unwrap()
        .to_owned_value();
    updated.spec.labels.insert("v".into(), "2".into());
    let updated = s.submit(Txn::new().update(updated)).await.unwrap();
    let id = updated.objects[0].id().to_string();
    s.submit(Txn::new().delete(Kind::Config, &id, Some(updated.revision)))
        .await
        .unwrap();
    drop(s);
    c.kill(1).await;
    c.restart(1).await;
    let mut watch = c
        .store(1)
        .watch(
            WatchRequest::new(WatchStart::After(before)).filter(WatchFilter::kinds([Kind::Config])),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        if let WatchMessage::Commit(cm) = watch.next().await.unwrap().unwrap() {
            for e in &cm.events {
                let Object::Config(cfg) = &*e.object else {
                    panic!("{e:?}")
                };
                got.push((
                    e.action.to_string(),
                    cfg.spec.data.len(),
                    cfg.spec.labels.get("v").cloned(),
                    cfg.meta.version.index,
                ));
            }
        }
    }
    assert_eq!(
        got,
        vec![
            ("create".to_string(), 300 << 10, None, created.revision),
            (
                "update".to_string(),
                300 << 10,
                Some("2".into()),
                updated.revision
            ),
            (
                "remove".to_string(),
                300 << 10,
                Some("2".into()),
                updated.revision
            ),
        ]
    );
}
