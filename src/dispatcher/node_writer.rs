//! Node status writes (READY on registration, DOWN on heartbeat expiry), serialised per node.
//!
//! One writer task takes every queued request, keeps the latest per node (a DOWN queued just
//! before the node re-registered is superseded by its READY), writes each as its own
//! version-checked update fenced to the term, and re-reads and retries on a version conflict (a
//! user may be editing the node's spec at the same moment). Rounds run one after the other, so
//! requests for one node are applied in the order they were made.

use std::collections::HashMap;

use futures::future::join_all;
use shoal_store::model::{Node, NodeDescription, NodeState};
use shoal_store::{Store, Txn};
use tokio::sync::{mpsc, oneshot};

/// Attempts per write on version conflicts.
const ATTEMPTS: usize = 5;

/// What to set on a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUpdate {
    /// New liveness.
    pub state: NodeState,
    /// Why (`heartbeat failure`), empty for READY.
    pub message: String,
    /// New address, or keep.
    pub addr: Option<String>,
    /// New description, or keep.
    pub description: Option<NodeDescription>,
}

impl NodeUpdate {
    /// The node as it would be after this update, or `None` when it changes nothing.
    pub fn applied_to(&self, node: &Node) -> Option<Node> {
        let mut next = node.clone();
        next.status.state = self.state;
        next.status.message = self.message.clone();
        if let Some(addr) = &self.addr {
            next.status.addr = addr.clone();
        }
        if let Some(d) = &self.description {
            // The certificate's issuer is recorded by the CA as it signs (see
            // `swarm_service`); what an agent says of it is not taken over that.
            let tls_info = next.description.tls_info.clone();
            next.description = d.clone();
            if !tls_info.trust_root.is_empty() {
                next.description.tls_info = tls_info;
            }
        }
        (next != *node).then_some(next)
    }
}

type Done = oneshot::Sender<Result<(), String>>;

struct Request {
    node_id: String,
    update: NodeUpdate,
    done: Option<Done>,
}

/// The queue of node writes. Cheap to clone.
#[derive(Clone)]
pub struct NodeWriter {
    tx: mpsc::UnboundedSender<Request>,
}

impl NodeWriter {
    /// Starts the writer for `store`, fencing writes to `term`.
    pub fn start(store: Store, term: u64) -> (NodeWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, term, rx));
        (NodeWriter { tx }, task)
    }

    /// Writes `update` and waits until it is committed (or known to change nothing).
    pub async fn write(&self, node_id: &str, update: NodeUpdate) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request {
                node_id: node_id.to_string(),
                update,
                done: Some(done),
            })
            .map_err(|_| "the dispatcher is stopping".to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("the dispatcher is stopping".into()))
    }

    /// Queues `update` without waiting.
    pub fn queue(&self, node_id: &str, update: NodeUpdate) {
        let _ = self.tx.send(Request {
            node_id: node_id.to_string(),
            update,
            done: None,
        });
    }
}

async fn run(store: Store, term: u64, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut round: HashMap<String, (NodeUpdate, Vec<Done>)> = HashMap::new();
        let mut add = |r: Request| {
            let slot = round
                .entry(r.node_id)
                .or_insert_with(|| (r.update.clone(), Vec::new()));
            slot.0 = r.update;
            slot.1.extend(r.done);
        };
        add(first);
        while let Ok(r) = rx.try_recv() {
            add(r);
        }
        let writes = round.into_iter().map(|(node_id, (update, done))| {
            let store = store.clone();
            async move {
                let result = write_one(&store, term, &node_id, &update).await;
                if let Err(e) = &result {
                    tracing::warn!(node = %node_id, "could not set node status: {e}");
                }
                for d in done {
                    let _ = d.send(result.clone());
                }
            }
        });
        join_all(writes).await;
    }
}

async fn write_one(
    store: &Store,
    term: u64,
    node_id: &str,
    update: &NodeUpdate,
) -> Result<(), String> {
    for _ in 0..ATTEMPTS {
        let Some(node) = store.view().get::<Node>(node_id) else {
            return Ok(());
        };
        let Some(next) = update.applied_to(&node) else {
            return Ok(());
        };
        match store.submit(Txn::new().update(next).fenced(term)).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_out_of_sequence() => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "node {node_id} kept changing; gave up after {ATTEMPTS} attempts"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_that_changes_nothing_is_not_written() {
        let mut node = Node::default();
        node.status.state = NodeState::Ready;
        node.status.addr = "10.0.0.1".into();
        let ready = NodeUpdate {
            state: NodeState::Ready,
            message: String::new(),
            addr: Some("10.0.0.1".into()),
            description: None,
        };
        assert!(ready.applied_to(&node).is_none());
        let down = NodeUpdate {
            state: NodeState::Down,
            message: "heartbeat failure".into(),
            addr: None,
            description: None,
        };
        let next = down.applied_to(&node).unwrap();
        assert_eq!(next.status.state, NodeState::Down);
        assert_eq!(next.status.message, "heartbeat failure");
        assert_eq!(next.status.addr, "10.0.0.1");
    }
}
