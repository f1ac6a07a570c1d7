//! An in-process [`Transport`]: members registered in one [`LocalNetwork`] call each other
//! directly. For tests and simulations; links can be cut to model partitions and crashes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;

use crate::replica::Store;
use crate::transport::{ReplyStream, RequestStream, Rpc, Transport, TransportError};

#[derive(Default)]
struct Net {
    members: HashMap<String, Store>,
    /// Addresses that neither send nor receive (crashed or isolated).
    isolated: HashSet<String>,
    /// Directed links that drop everything (`from`, `to`).
    cut: HashSet<(String, String)>,
}

/// A set of in-process members that can reach each other.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    net: Arc<Mutex<Net>>,
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport a member at `addr` uses to send.
    pub fn transport(&self, addr: &str) -> Arc<dyn Transport> {
        Arc::new(LocalTransport {
            from: addr.to_string(),
            net: self.net.clone(),
        })
    }

    /// Makes a member reachable at `addr`.
    pub fn register(&self, addr: &str, store: Store) {
        self.net
            .lock()
            .unwrap()
            .members
            .insert(addr.to_string(), store);
    }

    /// Removes a member (as if its process died).
    pub fn unregister(&self, addr: &str) {
        self.net.lock().unwrap().members.remove(addr);
    }

    /// Cuts `addr` off from everyone, both ways.
    pub fn isolate(&self, addr: &str) {
        self.net.lock().unwrap().isolated.insert(addr.to_string());
    }

    /// Undoes every cut and isolation.
    pub fn heal(&self) {
        let mut n = self.net.lock().unwrap();
        n.isolated.clear();
        n.cut.clear();
    }

    /// Drops messages from `from` to `to` (one way).
    pub fn cut(&self, from: &str, to: &str) {
        self.net
            .lock()
            .unwrap()
            .cut
            .insert((from.to_string(), to.to_string()));
    }
}

struct LocalTransport {
    from: String,
    net: Arc<Mutex<Net>>,
}

impl LocalTransport {
    fn target(&self, addr: &str) -> Result<Store, TransportError> {
        target(&self.net, &self.from, addr)
    }
}

/// The member at `addr`, if `from` can reach it now.
fn target(net: &Mutex<Net>, from: &str, addr: &str) -> Result<Store, TransportError> {
    let n = net.lock().unwrap();
    let unreachable = || TransportError::Unreachable {
        addr: addr.to_string(),
        reason: "connection refused".into(),
    };
    if n.isolated.contains(addr) || n.isolated.contains(from) {
        return Err(unreachable());
    }
    if n.cut.contains(&(from.to_string(), addr.to_string())) {
        return Err(unreachable());
    }
    n.members.get(addr).cloned().ok_or_else(unreachable)
}

impl Transport for LocalTransport {
    fn call(
        &self,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let target = self.target(addr);
        let addr = addr.to_string();
        Box::pin(async move {
            let store = target?;
            tokio::time::timeout(timeout, async move { store.handle(rpc, &body).await })
                .await
                .map_err(|_| TransportError::Timeout {
                    addr,
                    after: timeout,
                })
        })
    }

    fn open_stream(
        &self,
        addr: &str,
        rpc: Rpc,
        requests: RequestStream,
    ) -> BoxFuture<'static, Result<ReplyStream, TransportError>> {
        let reached = self.target(addr);
        let (net, from, addr) = (self.net.clone(), self.from.clone(), addr.to_string());
        Box::pin(async move {
            let store = reached?;
            // Every message, either way, crosses the link only while it is up; a cut breaks
            // the stream as a broken connection would.
            let up = {
                let (net, from, addr) = (net.clone(), from.clone(), addr.clone());
                move || target(&net, &from, &addr).is_ok()
            };
            let requests = requests
                .take_while(move |_| std::future::ready(up()))
                .boxed();
            let replies = store
                .handle_stream(rpc, requests)
                .map(move |body| {
                    target(&net, &from, &addr)?;
                    Ok(body)
                })
                .scan(false, |broken, reply| {
                    let next = if *broken {
                        None
                    } else {
                        *broken = reply.is_err();
                        Some(reply)
                    };
                    std::future::ready(next)
                })
                .boxed();
            Ok(replies)
        })
    }

    fn send_snapshot(
        &self,
        addr: &str,
        header: Vec<u8>,
        file: PathBuf,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let target = self.target(addr);
        let addr = addr.to_string();
        Box::pin(async move {
            let store = target?;
            let dest = store.snapshot_receive_path();
            tokio::fs::copy(&file, &dest)
                .await
                .map_err(|e| TransportError::Remote {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            tokio::time::timeout(timeout, store.install_received_snapshot(&header, dest))
                .await
                .map_err(|_| TransportError::Timeout {
                    addr,
                    after: timeout,
                })
        })
    }
}
