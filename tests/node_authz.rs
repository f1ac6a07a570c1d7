//! Authorization of inter-node RPCs from the store, not only the certificate: a removed node
//! and a demoted manager keep certificates that still verify, and are refused at once by every
//! RPC they used before (the dispatcher, certificate renewal, the Raft peer RPCs, joining the
//! Raft group).

mod common;

use std::time::Duration;

use common::{wait_for, Daemon};
use shoal::ca::{install_crypto_provider, manager_client_tls_config, NodeCredentials};
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::HeartbeatRequest;
use shoal_proto::raft::store_peer_client::StorePeerClient;
use shoal_proto::raft::PeerRequest;
use shoal_proto::swarm::swarm_client::SwarmClient;
use shoal_proto::swarm::{JoinRaftRequest, RenewRequest};
use tonic::transport::Channel;
use tonic::Code;

/// The node certificate and key `d` holds now (a copy: they stay valid after any change).
fn credentials(d: &Daemon) -> NodeCredentials {
    NodeCredentials::load(&d.dir().join("data").join("swarm")).expect("node credentials")
}

/// A channel to `manager`'s swarm listener presenting `creds`.
async fn channel(manager: &Daemon, creds: &NodeCredentials) -> Channel {
    install_crypto_provider();
    tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", manager.swarm_port))
        .unwrap()
        .tls_config(manager_client_tls_config(creds).unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The codes of the RPCs a node uses, called with `creds` on `manager`: each is either
/// refused (`PermissionDenied`) or gets past authorization and fails on its bogus arguments.
async fn codes(manager: &Daemon, creds: &NodeCredentials) -> Vec<(&'static str, Code, String)> {
    let ch = channel(manager, creds).await;
    let mut out = Vec::new();
    let status = DispatcherClient::new(ch.clone())
        .heartbeat(HeartbeatRequest {
            session_id: "no-such-session".into(),
        })
        .await
        .unwrap_err();
    out.push(("heartbeat", status.code(), status.message().to_string()));
    let status = SwarmClient::new(ch.clone())
        .renew_certificate(RenewRequest {
            csr_pem: "not a CSR".into(),
        })
        .await
        .unwrap_err();
    out.push(("renew", status.code(), status.message().to_string()));
    let status = StorePeerClient::new(ch.clone())
        .call(PeerRequest {
            rpc: "no-such-rpc".into(),
            body: Vec::new(),
        })
        .await
        .unwrap_err();
    out.push(("store-peer", status.code(), status.message().to_string()));
    out
}

fn refused(codes: &[(&str, Code, String)], rpc: &str) -> bool {
    codes
        .iter()
        .find(|(r, _, _)| *r == rpc)
        .is_some_and(|(_, c, _)| *c == Code::PermissionDenied)
}

fn stop(d: &mut Daemon) {
    d.kill9();
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_nodes_and_demoted_managers_are_refused_at_once() {
    let a = common::swarm("authz-a");
    let b = Daemon::start("authz-b");
    let mut w = Daemon::start("authz-w");
    let manager_token = a.ok(&["swarm", "join-token", "-q", "manager"]);
    let worker_token = a.ok(&["swarm", "join-token", "-q", "worker"]);
    assert!(b.join(&a, manager_token.trim()).ok);
    assert!(w.join(&a, worker_token.trim()).ok);
    let b_id = b.node_id();
    let w_id = w.node_id();
    wait_for(Duration::from_secs(30), "both nodes ready", || {
        let ready = a.lines(&["node", "ls", "--format", "{{.Status}}"]);
        (ready.iter().filter(|s| *s == "Ready").count() == 3).then_some(())
    });

    // Before: a manager's certificate gets past authorization everywhere, a worker's
    // everywhere but the store.
    let b_creds = credentials(&b);
    let w_creds = credentials(&w);
    let before = codes(&a, &b_creds).await;
    assert!(
        before.iter().all(|(_, c, _)| *c != Code::PermissionDenied),
        "{before:?}"
    );
    let before = codes(&a, &w_creds).await;
    assert!(!refused(&before, "heartbeat"), "{before:?}");
    assert!(!refused(&before, "renew"), "{before:?}");
    assert!(refused(&before, "store-peer"), "{before:?}");

    // A demoted manager keeps its manager certificate: the manager-only RPCs refuse it.
    a.ok(&["node", "demote", &b_id]);
    wait_for(Duration::from_secs(30), "b out of the Raft group", || {
        let role = a.ok(&["node", "inspect", &b_id, "--format", "{{.ManagerStatus}}"]);
        (role.trim() == "<nil>").then_some(())
    });
    // The demotion is committed before `node inspect` shows it; the store refuses from then on.
    let after = codes(&a, &b_creds).await;
    assert!(refused(&after, "store-peer"), "{after:?}");
    // Still a node of the swarm: the dispatcher and renewal (to a worker certificate) serve it.
    assert!(!refused(&after, "heartbeat"), "{after:?}");
    assert!(
        after
            .iter()
            .any(|(r, _, m)| *r == "store-peer" && m.contains("demoted")),
        "{after:?}"
    );
    let join_raft = SwarmClient::new(channel(&a, &b_creds).await)
        .join_raft(JoinRaftRequest {
            raft_id: 99,
            addr: "127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(join_raft.code(), Code::PermissionDenied, "{join_raft:?}");

    // A removed worker is refused by every RPC from the removal on.
    stop(&mut w);
    a.ok(&["node", "rm", "--force", &w_id]);
    let after = codes(&a, &w_creds).await;
    for rpc in ["heartbeat", "renew", "store-peer"] {
        assert!(refused(&after, rpc), "{rpc}: {after:?}");
    }
    assert!(
        after
            .iter()
            .any(|(r, _, m)| *r == "heartbeat" && m.contains("removed")),
        "{after:?}"
    );
    // The list of removed nodes is internal: `GET /swarm` does not show it.
    let swarm = a.get_json("/swarm");
    assert!(swarm.get("RemovedNodes").is_none(), "{swarm}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_joins_the_raft_group_only_with_the_raft_id_it_was_given() {
    let a = common::swarm("authz-raftid-a");
    let b = Daemon::start("authz-raftid-b");
    let token = a.ok(&["swarm", "join-token", "-q", "manager"]);
    assert!(b.join(&a, token.trim()).ok);
    let members = || {
        a.lines(&["node", "ls", "--filter", "role=manager", "-q"])
            .len()
    };
    wait_for(Duration::from_secs(30), "two managers", || {
        (members() == 2).then_some(())
    });
    let err = SwarmClient::new(channel(&a, &credentials(&b)).await)
        .join_raft(JoinRaftRequest {
            raft_id: 4242,
            addr: "127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("Raft id"), "{err:?}");
}
