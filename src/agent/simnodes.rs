//! `shoal simnodes`: many simulated nodes in one process for scale tests. Each joins the swarm
//! with the worker token like a real node (its own key, certificate and identity) and runs an
//! agent with the sim executor and in-memory task records, so a node costs little more than its
//! TLS connection and a few tasks.
//!
//! With a data directory, each node keeps its credentials in `<dir>/node-<i>/` and a restarted
//! `simnodes` reuses them: the same nodes come back instead of new ones joining.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::executor::sim_description;
use super::storage::MemoryTaskStore;
use super::{Agent, AgentConfig};
use crate::ca::{JoinToken, NodeCredentials};
use crate::exec::sim::{SimConfig, SimExecutor};
use crate::node::join::{request_join, JoinFailure};

/// Joins in flight at once.
const JOIN_CONCURRENCY: usize = 32;
/// Attempts per node (each tries every manager).
const JOIN_ATTEMPTS: usize = 5;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimNodesConfig {
    /// Managers to join through and dial.
    pub managers: Vec<String>,
    /// How many nodes.
    pub count: usize,
    /// The worker (or manager) join token.
    pub join_token: String,
    /// Where to keep each node's credentials (optional).
    pub data_dir: Option<PathBuf>,
    /// Host names are `<prefix>-<i>`.
    pub hostname_prefix: String,
    /// Timings of simulated tasks.
    pub sim: SimConfig,
}

#[derive(Serialize, Deserialize)]
struct SavedNode {
    node_id: String,
    managers: Vec<String>,
}

/// Running simulated nodes.
pub struct SimNodes {
    /// The agents, one per node.
    pub agents: Vec<Agent>,
    /// Their node ids, in the same order.
    pub node_ids: Vec<String>,
}

impl SimNodes {
    /// Joins (or rejoins) every node and starts its agent.
    pub async fn start(config: SimNodesConfig) -> anyhow::Result<SimNodes> {
        crate::ca::install_crypto_provider();
        anyhow::ensure!(!config.managers.is_empty(), "--managers is empty");
        let token = JoinToken::parse(&config.join_token)?;
        let cfg = Arc::new(config);
        let joined: Vec<anyhow::Result<(String, Agent)>> = futures::stream::iter(0..cfg.count)
            .map(|i| {
                let cfg = cfg.clone();
                let token = token.clone();
                async move { start_node(&cfg, &token, i).await }
            })
            .buffered(JOIN_CONCURRENCY)
            .collect()
            .await;
        let mut nodes = SimNodes {
            agents: Vec::with_capacity(cfg.count),
            node_ids: Vec::with_capacity(cfg.count),
        };
        for r in joined {
            let (id, agent) = r?;
            nodes.node_ids.push(id);
            nodes.agents.push(agent);
        }
        Ok(nodes)
    }

    /// How many agents have a session now.
    pub fn connected(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| a.connection().borrow().manager.is_some())
            .count()
    }

    /// Stops every agent.
    pub async fn stop(&self) {
        futures::future::join_all(self.agents.iter().map(|a| a.stop())).await;
    }
}

async fn start_node(
    cfg: &SimNodesConfig,
    token: &JoinToken,
    i: usize,
) -> anyhow::Result<(String, Agent)> {
    let hostname = format!("{}-{i}", cfg.hostname_prefix);
    let description = sim_description(&hostname);
    let dir = cfg.data_dir.as_ref().map(|d| d.join(format!("node-{i}")));
    let saved = dir.as_ref().and_then(|d| {
        let node: SavedNode =
            serde_json::from_slice(&std::fs::read(d.join("node.json")).ok()?).ok()?;
        let creds = NodeCredentials::load(d).ok()?;
        Some((node, creds))
    });
    let (node_id, managers, creds) = match saved {
        Some((node, creds)) => (node.node_id, node.managers, creds),
        None => {
            let joined = join_any(cfg, token, &description).await?;
            if let Some(d) = &dir {
                std::fs::create_dir_all(d)?;
                joined.creds.save(d)?;
                let saved = SavedNode {
                    node_id: joined.node_id.clone(),
                    managers: joined.managers.clone(),
                };
                std::fs::write(d.join("node.json"), serde_json::to_vec(&saved)?)?;
            }
            (joined.node_id, joined.managers, joined.creds)
        }
    };
    let mut dial = cfg.managers.clone();
    dial.extend(managers.into_iter().filter(|m| !cfg.managers.contains(m)));
    let agent = Agent::start(AgentConfig {
        node_id: node_id.clone(),
        managers: dial,
        tls: crate::ca::LiveCredentials::new(&creds)?.into(),
        executor: Arc::new(SimExecutor::new(description, cfg.sim)),
        store: Arc::new(MemoryTaskStore::default()),
        hostname: None,
    })
    .await?;
    Ok((node_id, agent))
}

async fn join_any(
    cfg: &SimNodesConfig,
    token: &JoinToken,
    description: &shoal_store::model::NodeDescription,
) -> anyhow::Result<crate::node::join::Joined> {
    let mut last = String::new();
    for attempt in 0..JOIN_ATTEMPTS {
        for remote in &cfg.managers {
            match request_join(remote, token, "127.0.0.1:0", description, "active").await {
                Ok(j) => return Ok(j),
                Err(JoinFailure::Refused(e)) => anyhow::bail!("joining through {remote}: {e}"),
                Err(JoinFailure::Retry(m)) => last = format!("{remote}: {m}"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
    }
    anyhow::bail!("no manager let the node join: {last}")
}
