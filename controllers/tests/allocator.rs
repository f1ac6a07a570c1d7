//! The network allocator: VIPs, task addresses before scheduling, node addresses, release, and
//! a full network explained on the task instead of a silent hang.

mod common;

use std::collections::BTreeSet;

use common::agent::{always, FakeAgent, Fate};
use common::*;
use shoal_store::model::{
    new_id, Meta, Network, NetworkAllocation, NetworkAttachmentConfig, NetworkSpec, ServiceMode,
    TaskState,
};
use shoal_store::Txn;

async fn add_network(store: &shoal_store::Store, name: &str, subnet: &str, vni: u32) -> String {
    let gateway = subnet.replace(".0/", ".1/");
    let n = Network {
        meta: Meta::with_id(new_id()),
        spec: NetworkSpec {
            name: name.into(),
            driver: "overlay".into(),
            ..Default::default()
        },
        allocation: Some(NetworkAllocation {
            subnet: subnet.into(),
            gateway: gateway.split('/').next().unwrap().into(),
            vni,
            ..Default::default()
        }),
    };
    let id = n.meta.id.clone();
    submit(store, Txn::new().create(n)).await;
    id
}

fn on(network: &str) -> Vec<NetworkAttachmentConfig> {
    vec![NetworkAttachmentConfig {
        target: network.into(),
        ..Default::default()
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_get_addresses_before_they_run_and_give_them_back() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let n1 = add_node(&s, node("n1")).await;
    let agent = FakeAgent::start(s.clone(), vec![n1.clone()], always(Fate::Run));
    let net = add_network(&s, "appnet", "10.9.1.0/24", 4097).await;
    let mut sp = spec("api", "api:1", ServiceMode::replicated(3));
    sp.task_template.networks = on(&net);
    let id = create_service(&s, sp).await;

    let running = eventually("3 running tasks", || {
        let r = running(&s, &id);
        (r.len() == 3).then_some(r)
    })
    .await;
    let addrs: BTreeSet<String> = running
        .iter()
        .map(|t| {
            assert_eq!(t.networks_attachments.len(), 1, "{t:?}");
            let a = &t.networks_attachments[0];
            assert_eq!(a.network.id, net);
            assert_eq!(a.network.spec.name, "appnet");
            a.addresses[0].clone()
        })
        .collect();
    assert_eq!(addrs.len(), 3, "distinct addresses: {addrs:?}");
    assert!(addrs
        .iter()
        .all(|a| a.starts_with("10.9.1.") && a.ends_with("/24")));
    let svc = service(&s, &id);
    assert_eq!(svc.endpoint.virtual_ips.len(), 1);
    let vip = &svc.endpoint.virtual_ips[0];
    assert_eq!(vip.network_id, net);
    assert!(
        !addrs.contains(&vip.addr),
        "the VIP is not a task's address"
    );
    assert!(
        !addrs.contains("10.9.1.1/24"),
        "the gateway is never handed out"
    );
    // The node running them gets its own address on the network.
    let own = eventually("the node's address on the network", || {
        let n = s.view().get::<Network>(&net)?;
        n.allocation.as_ref()?.node_addresses.get(&n1).cloned()
    })
    .await;
    assert!(!addrs.contains(&format!("{own}/24")) && vip.addr != format!("{own}/24"));

    // Scaled down to 1: two addresses are released and the node keeps its own.
    update_service(&s, &id, |sp| sp.mode = ServiceMode::replicated(1)).await;
    eventually("one task left", || (live(&s, &id).len() == 1).then_some(())).await;
    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_network_is_explained_on_the_task_and_it_is_not_scheduled() {
    let h = Harness::single(test_config()).await;
    let s = h.store(1).clone();
    let n1 = add_node(&s, node("n1")).await;
    let agent = FakeAgent::start(s.clone(), vec![n1.clone()], always(Fate::Run));
    // A /30 has two host addresses: the gateway and one more (the VIP takes it).
    let net = add_network(&s, "tiny", "10.9.2.0/30", 4098).await;
    let mut sp = spec("big", "big:1", ServiceMode::replicated(1));
    sp.task_template.networks = on(&net);
    let id = create_service(&s, sp).await;
    let t = eventually("the task explains why it waits", || {
        tasks(&s, &id)
            .into_iter()
            .find(|t| t.status.err.starts_with("allocation failed"))
    })
    .await;
    assert!(t.status.err.contains("tiny"), "{}", t.status.err);
    assert!(t.status.err.contains("10.9.2.0/30"), "{}", t.status.err);
    assert_eq!(t.status.state, TaskState::New);
    assert!(t.node_id.is_empty(), "an unallocated task is not scheduled");
    agent.stop().await;
    h.stop().await;
}
