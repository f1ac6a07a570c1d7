//! A small in-process cluster of store members for tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shoal_store::local_transport::LocalNetwork;
use shoal_store::model::{new_id, Config, ConfigSpec, Meta};
use shoal_store::{Store, StoreConfig};

pub struct Cluster {
    pub net: LocalNetwork,
    pub dir: tempfile::TempDir,
    pub members: Vec<Option<Store>>,
    pub next_raft_id: u64,
}

pub fn addr(raft_id: u64) -> String {
    format!("member-{raft_id}")
}

pub fn config(dir: &std::path::Path, raft_id: u64) -> StoreConfig {
    let mut c = StoreConfig::new(raft_id, addr(raft_id), member_dir(dir, raft_id));
    c.heartbeat_interval = Duration::from_millis(50);
    c.election_timeout = (Duration::from_millis(200), Duration::from_millis(400));
    c.write_deadline = Duration::from_secs(3);
    c.attempt_timeout = Duration::from_millis(500);
    c
}

pub fn member_dir(dir: &std::path::Path, raft_id: u64) -> PathBuf {
    dir.join(format!("m{raft_id}"))
}

impl Cluster {
    /// Starts `n` members with ids 1..=n, member 1 initialising the cluster, the others added.
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, |_| {}).await
    }

    pub async fn start_with(n: u64, tweak: impl Fn(&mut StoreConfig)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let net = LocalNetwork::new();
        let mut c = Cluster {
            net,
            dir,
            members: Vec::new(),
            next_raft_id: n + 1,
        };
        for id in 1..=n {
            let mut cfg = config(c.dir.path(), id);
            tweak(&mut cfg);
            let s = c.open(cfg).await;
            if id == 1 {
                s.initialize().await.unwrap();
                wait_until("member 1 leads", || s.is_leader()).await;
            }
            c.members.push(Some(s));
        }
        for id in 2..=n {
            c.store(1)
                .add_member(
                    id,
                    shoal_store::PeerNode {
                        addr: addr(id),
                        node_id: String::new(),
                    },
                )
                .await
                .unwrap();
        }
        c
    }

    pub async fn open(&self, cfg: StoreConfig) -> Store {
        let a = cfg.advertise_addr.clone();
        let s = Store::open(cfg, self.net.transport(&a)).await.unwrap();
        self.net.register(&a, s.clone());
        s
    }

    pub fn store(&self, raft_id: u64) -> &Store {
        self.members[(raft_id - 1) as usize]
            .as_ref()
            .expect("member is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &Store> {
        self.members.iter().flatten()
    }

    /// Waits for a leader among running members and returns its raft id.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.running().find(|s| s.is_leader()) {
                return s.raft_id();
            }
            assert!(Instant::now() < deadline, "no leader elected within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a leader and returns a running member that is not it.
    pub async fn follower(&self) -> u64 {
        let leader = self.leader().await;
        self.running()
            .map(|s| s.raft_id())
            .find(|id| *id != leader)
            .expect("a running member other than the leader")
    }

    /// Stops a member abruptly (it stops answering; its data stays).
    pub async fn kill(&mut self, raft_id: u64) {
        let a = addr(raft_id);
        self.net.unregister(&a);
        if let Some(s) = self.members[(raft_id - 1) as usize].take() {
            s.shutdown().await;
        }
    }

    /// Restarts a killed member from its directory. In one process a killed member's database
    /// stays locked until the last task that held a handle to it has wound down (a replication
    /// stream notices only at its next message), so opening is retried for a while.
    pub async fn restart(&mut self, raft_id: u64) {
        self.restart_with(raft_id, |_| {}).await
    }

    /// [`Cluster::restart`] with the member's configuration changed by `tweak`.
    pub async fn restart_with(&mut self, raft_id: u64, tweak: impl Fn(&mut StoreConfig)) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            let mut cfg = config(self.dir.path(), raft_id);
            tweak(&mut cfg);
            let a = cfg.advertise_addr.clone();
            match Store::open(cfg, self.net.transport(&a)).await {
                Ok(s) => {
                    self.net.register(&a, s.clone());
                    break s;
                }
                Err(e) if Instant::now() < deadline && e.to_string().contains("lock") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("restarting member {raft_id}: {e}"),
            }
        };
        self.members[(raft_id - 1) as usize] = Some(s);
    }
}

pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn config_object(name: &str) -> Config {
    Config {
        meta: Meta::with_id(new_id()),
        spec: ConfigSpec {
            name: name.to_string(),
            ..Default::default()
        },
    }
}
