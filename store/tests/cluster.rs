//! Replication, failover, restart and membership of the store, in one process.

mod common;

use std::time::Duration;

use common::*;
use shoal_store::model::{new_id, Config, Kind, Meta, Node, NodeAvailability, NodeRole, NodeSpec};
use shoal_store::{Assessment, Store, StoreError, Txn, TxnError, VoterChange};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_member_is_readable_on_all() {
    let c = Cluster::start(3).await;
    let follower = c.follower().await;
    let committed = c
        .store(follower)
        .submit(Txn::new().create(config_object("from-follower")))
        .await
        .expect("a write submitted to a follower is forwarded and committed");
    let rev = committed.revision;
    for s in c.running() {
        let v = s
            .wait_for_revision(rev, Duration::from_secs(5))
            .await
            .unwrap();
        let got = v
            .get_by_name::<Config>("from-follower")
            .expect("replicated");
        assert_eq!(got.meta.version.index, rev);
        assert!(v.revision() >= rev);
    }
    // Linearizable reads from a follower see it too.
    let v = c.store(follower).linearizable_view().await.unwrap();
    assert!(
        v.get_by_name::<Config>("FROM-FOLLOWER").is_some(),
        "names are case-insensitive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_updates_exactly_one_wins() {
    let c = Cluster::start(3).await;
    let created = c
        .store(1)
        .submit(Txn::new().create(config_object("contended")))
        .await
        .unwrap();
    let obj = created.objects[0].clone();
    let shoal_store::model::Object::Config(cfg) = obj.as_ref().clone() else {
        panic!()
    };
    let mut handles = Vec::new();
    for i in 0..12u64 {
        let store = c.store(1 + i % 3).clone();
        let mut update = cfg.clone();
        update.spec.labels.insert("writer".into(), i.to_string());
        handles.push(tokio::spawn(async move {
            store.submit(Txn::new().update(update)).await
        }));
    }
    let mut ok = 0;
    let mut out_of_sequence = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.is_out_of_sequence() => {
                assert_eq!(e.to_string(), "update out of sequence");
                out_of_sequence += 1
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one update wins");
    assert_eq!(out_of_sequence, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_names_are_refused_case_insensitively() {
    let c = Cluster::start(1).await;
    c.store(1)
        .submit(Txn::new().create(config_object("web")))
        .await
        .unwrap();
    let err = c
        .store(1)
        .submit(Txn::new().create(config_object("WEB")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(TxnError::NameConflict { .. })),
        "{err}"
    );
    // The whole transaction is rejected: a valid create next to the bad one is not applied.
    let err = c
        .store(1)
        .submit(
            Txn::new()
                .create(config_object("fresh"))
                .create(config_object("Web")),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Rejected(TxnError::NameConflict { .. })
    ));
    assert!(c.store(1).view().get_by_name::<Config>("fresh").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_new_leader_takes_writes_and_nothing_acknowledged_is_lost() {
    let mut c = Cluster::start(3).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let s = c.store(1 + i % 3).clone();
        s.submit(Txn::new().create(config_object(&format!("before-{i}"))))
            .await
            .unwrap();
        acked.push(format!("before-{i}"));
    }
    let old = c.leader().await;
    c.kill(old).await;
    let survivor = (1..=3).find(|i| *i != old).unwrap();
    let new_leader = c.leader().await;
    assert_ne!(new_leader, old);
    for i in 0..20 {
        let name = format!("after-{i}");
        c.store(survivor)
            .submit(Txn::new().create(config_object(&name)))
            .await
            .unwrap();
        acked.push(name);
    }
    let view = c.store(survivor).linearizable_view().await.unwrap();
    for name in &acked {
        assert!(
            view.get_by_name::<Config>(name).is_some(),
            "acknowledged write {name} lost"
        );
    }
    // The old leader comes back and catches up.
    c.restart(old).await;
    let rev = view.revision();
    let v = c
        .store(old)
        .wait_for_revision(rev, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(v.count(Kind::Config), acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_every_member_restores_state_and_revision() {
    let mut c = Cluster::start(3).await;
    for i in 0..30 {
        c.store(1 + i % 3)
            .submit(Txn::new().create(config_object(&format!("o{i}"))))
            .await
            .unwrap();
    }
    let leader = c.leader().await;
    let rev = c
        .store(leader)
        .linearizable_view()
        .await
        .unwrap()
        .revision();
    for id in 1..=3 {
        c.store(id)
            .wait_for_revision(rev, Duration::from_secs(5))
            .await
            .unwrap();
    }
    for id in 1..=3 {
        c.kill(id).await;
    }
    for id in 1..=3 {
        c.restart(id).await;
    }
    for id in 1..=3 {
        let v = c.store(id).view();
        assert!(
            v.revision() >= rev,
            "member {id} restored revision {} < {rev}",
            v.revision()
        );
        assert_eq!(v.count(Kind::Config), 30);
    }
    c.leader().await;
    c.store(2)
        .submit(Txn::new().create(config_object("after-restart")))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_without_quorum_fails_with_a_clear_error() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    for o in &others {
        c.kill(*o).await;
    }
    let started = std::time::Instant::now();
    let err = c
        .store(leader)
        .submit(Txn::new().create(config_object("no-quorum")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("quorum"),
        "error names the cause: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fails instead of hanging"
    );
}

/// `member`'s view once it holds everything the leader has committed.
async fn caught_up(leader: &Store, member: &Store, within: Duration) -> shoal_store::View {
    let rev = leader.linearizable_view().await.unwrap().revision();
    member.wait_for_revision(rev, within).await.unwrap()
}

/// A cluster that snapshots every 50 entries and keeps 10 behind each snapshot, so a member
/// that misses a few hundred writes can only catch up by snapshot.
async fn snapshotting_often(members: u64) -> Cluster {
    Cluster::start_with(members, |cfg| {
        cfg.snapshot_every = 50;
        cfg.logs_kept_after_snapshot = 10;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_rejoins_and_gets_the_state_by_snapshot() {
    let mut c = snapshotting_often(3).await;
    for i in 0..200 {
        c.store(1 + i % 3)
            .submit(Txn::new().create(config_object(&format!("s{i}"))))
            .await
            .unwrap();
    }
    let leader = c.leader().await;
    let wiped = (1..=3).find(|i| *i != leader).unwrap();
    c.kill(wiped).await;
    std::fs::remove_dir_all(member_dir(c.dir.path(), wiped)).unwrap();
    // A wiped member comes back under a new Raft id (its old vote is gone, so its old identity
    // must never vote again): remove the old member, add the new one.
    c.store(leader).remove_member(wiped).await.unwrap();
    let new_id = c.next_raft_id;
    c.next_raft_id += 1;
    let cfg = config(c.dir.path(), new_id);
    let s = c.open(cfg).await;
    c.members.push(Some(s.clone()));
    c.store(leader)
        .add_member(
            new_id,
            shoal_store::PeerNode {
                addr: addr(new_id),
                node_id: String::new(),
            },
        )
        .await
        .unwrap();
    let v = caught_up(c.store(leader), &s, Duration::from_secs(10)).await;
    assert_eq!(v.count(Kind::Config), 200);
    // openraft publishes the installed snapshot in its metrics a little after the state is
    // visible in the store: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let installed = |m: &openraft::RaftMetrics<_>| m.snapshot.is_some() && m.purged.is_some();
    while !installed(&s.raft_metrics()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = s.raft_metrics();
    assert!(
        installed(&metrics),
        "the new member was brought up by a snapshot, not by replaying the whole log: {metrics:?}"
    );
    let members = c.store(leader).members();
    assert!(members.iter().any(|m| m.raft_id == new_id && m.voter));
    assert!(!members.iter().any(|m| m.raft_id == wiped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_far_behind_catches_up_by_snapshot_while_writes_go_on() {
    let mut c = snapshotting_often(3).await;
    let leader = c.leader().await;
    let behind = (1..=3).find(|i| *i != leader).unwrap();
    c.kill(behind).await;
    // Far more entries than the leader keeps behind its snapshots.
    for i in 0..300 {
        c.store(leader)
            .submit(Txn::new().create(config_object(&format!("while-down-{i}"))))
            .await
            .unwrap();
    }
    let purged = c.store(leader).raft_metrics().purged.map(|l| l.index);
    assert!(
        purged.is_some_and(|p| p > 100),
        "the leader purged the log the stopped member lacks: {purged:?}"
    );
    // Writes go on all along the follower's restart and catch-up, and none fails.
    let writer = {
        let s = c.store(leader).clone();
        tokio::spawn(async move {
            for i in 0..200 {
                s.submit(Txn::new().create(config_object(&format!("during-{i}"))))
                    .await
                    .unwrap_or_else(|e| panic!("write {i} during the catch-up failed: {e}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    c.restart(behind).await;
    writer.await.unwrap();
    let v = caught_up(c.store(leader), c.store(behind), Duration::from_secs(20)).await;
    assert_eq!(v.count(Kind::Config), 500);
    let m = c.store(behind).raft_metrics();
    assert!(
        m.snapshot.is_some_and(|s| s.index > 100),
        "the restarted member caught up by a snapshot: {m:?}"
    );
}

/// Kills member `dead` and waits until `leader` counts it unreachable.
async fn kill_until_unreachable(c: &mut Cluster, leader: u64, dead: u64) {
    c.kill(dead).await;
    let leader_store = c.store(leader).clone();
    wait_until("the leader counts the killed member unreachable", || {
        leader_store
            .members()
            .iter()
            .any(|m| m.raft_id == dead && m.reachable == Some(false))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_that_would_lose_quorum_is_refused() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    kill_until_unreachable(&mut c, leader, others[0]).await;
    // 3 voters, one down: removing the other live one would leave 1 of 2 reachable.
    let err = c.store(leader).remove_member(others[1]).await.unwrap_err();
    assert!(matches!(err, StoreError::QuorumAtRisk(_)), "{err}");
    assert!(err.to_string().contains("loss of quorum"));
    assert_eq!(c.store(leader).members().len(), 3, "membership unchanged");
    // Removing the dead one is fine: 2 remaining, both reachable.
    c.store(leader).remove_member(others[0]).await.unwrap();
    assert_eq!(c.store(leader).members().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_the_swarm_accepted_counts_before_its_member_is_removed() {
    let mut c = Cluster::start(4).await;
    let leader = c.leader().await;
    let others: Vec<u64> = (1..=4).filter(|i| *i != leader).collect();
    let (dead, leaving, asked) = (others[0], others[1], others[2]);
    kill_until_unreachable(&mut c, leader, dead).await;
    let leader_store = c.store(leader).clone();
    // Four voters, one down: one more may go and three remain, two of them up.
    let alone = leader_store
        .assess_voter_change(VoterChange::Remove(asked))
        .await
        .unwrap();
    assert_eq!(alone, Assessment::Safe);
    // The swarm has accepted the demotion of `leaving` (its node wants to be a worker), and
    // the role manager has not removed its member yet: it counts as gone, so removing `asked`
    // too would leave one of two up.
    let node = Node {
        meta: Meta::with_id(new_id()),
        spec: NodeSpec::new(NodeRole::Worker, NodeAvailability::Active),
        role: NodeRole::Manager,
        raft_id: leaving,
        ..Default::default()
    };
    leader_store.submit(Txn::new().create(node)).await.unwrap();
    let both = leader_store
        .assess_voter_change(VoterChange::Remove(asked))
        .await
        .unwrap();
    assert!(
        matches!(&both, Assessment::Refused(why) if why.contains("loss of quorum")),
        "{both:?}"
    );
    // Asked on a follower, the leader judges the same way.
    let forwarded = c
        .store(asked)
        .assess_voter_change(VoterChange::Remove(asked))
        .await
        .unwrap();
    assert_eq!(forwarded, both);
    // The store's own removal of `leaving` still goes by the members as they are.
    leader_store.remove_member(leaving).await.unwrap();
    assert_eq!(leader_store.members().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_connection_failed_counts_as_unreachable_before_its_heartbeats_age() {
    // An election timeout far beyond `wait_until`'s 10 s: a member whose last answer merely
    // ages never counts as unreachable within the test, one whose connection failed does.
    let mut c = Cluster::start_with(3, |cfg| {
        cfg.election_timeout = (Duration::from_secs(60), Duration::from_secs(120));
    })
    .await;
    let leader = c.leader().await;
    let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    kill_until_unreachable(&mut c, leader, others[0]).await;
    // Refused as losing the quorum, not left to fail to commit.
    let err = c.store(leader).remove_member(others[1]).await.unwrap_err();
    assert!(matches!(err, StoreError::QuorumAtRisk(_)), "{err}");
    assert_eq!(c.store(leader).members().len(), 3, "membership unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_removed_itself_refuses_further_membership_changes() {
    let c = Cluster::start(4).await;
    let leader = c.leader().await;
    let old = c.store(leader).clone();
    old.remove_member(leader).await.unwrap();
    // openraft keeps the removed leader leading for a moment to tell the followers; a change
    // proposed then would come from outside the membership it is committed under (openraft
    // asserts against it in debug builds and its core stops).
    let other = (1..=4).find(|i| *i != leader).unwrap();
    let err = old.remove_member(other).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("no longer leads"), "{err}");
    // The other three elect a leader of their own, which makes the change.
    let new_leader = |s: &&Store| s.raft_id() != leader && s.is_leader();
    wait_until("a new leader", || c.running().any(|s| new_leader(&s))).await;
    let next = c.running().find(new_leader).expect("a new leader").clone();
    // A leader just elected counts a member reachable only once it has answered (as SwarmKit
    // does); before that it would refuse the removal as a risk to the quorum.
    wait_until("the new leader hears from every member", || {
        next.members().iter().all(|m| m.reachable == Some(true))
    })
    .await;
    next.remove_member(other).await.unwrap();
    assert_eq!(next.voter_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_refuses_writes_and_a_weak_handle_lets_it_reopen() {
    let mut c = Cluster::start(3).await;
    let member = c.follower().await;
    let written = c
        .store(member)
        .submit(Txn::new().create(config_object("before-stop")))
        .await
        .unwrap()
        .revision;
    let held = c.store(member).clone();
    let weak = held.downgrade();
    c.kill(member).await;
    // A caller still holding the stopped member gets `Shutdown`: the member neither commits
    // nor forwards the write to the leader it still knows of.
    let err = held
        .submit(Txn::new().create(config_object("after-stop")))
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::Shutdown);
    assert!(weak.upgrade().is_some(), "a strong handle is still held");
    drop(held);
    // Tasks of the stopped member may still be winding down for a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while weak.upgrade().is_some() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        weak.upgrade().is_none(),
        "a weak handle must not keep the member"
    );
    // Nothing else holds the member's database: it reopens from its directory.
    c.restart(member).await;
    let v = c
        .store(member)
        .wait_for_revision(written, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(v.get_by_name::<Config>("before-stop").is_some());
}

/// A leader just elected holds a membership that commits with its first entry; a member added
/// at once (as `swarm init` followed by a join, or the store bench, does) waits for that
/// instead of being refused with openraft's "already undergoing a configuration change".
/// The window is a few milliseconds, so it is opened many times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_the_moment_the_first_leader_is_elected_is_admitted() {
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster {
            net: shoal_store::local_transport::LocalNetwork::new(),
            dir,
            members: Vec::new(),
            next_raft_id: 3,
        };
        let first = c.open(config(c.dir.path(), 1)).await;
        let second = c.open(config(c.dir.path(), 2)).await;
        first.initialize().await.unwrap();
        wait_until("member 1 leads", || first.is_leader()).await;
        let node = shoal_store::PeerNode {
            addr: addr(2),
            node_id: String::new(),
        };
        if let Err(e) = first.add_member(2, node).await {
            panic!("round {round}: adding member 2 right after the election: {e}");
        }
        assert_eq!(first.voter_count(), 2, "round {round}");
        first.shutdown().await;
        second.shutdown().await;
    }
}
