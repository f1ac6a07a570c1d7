//! Which manager to dial: the weighted managers list, the retry backoff, and the connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use tonic::transport::{Channel, Endpoint};

use crate::ca::ClientTls;

/// Connect timeout for a manager.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// SwarmKit's session backoff: the bound grows as `min(100 ms + 2 x previous, 8 s)` and each
/// wait is drawn uniformly below it, so agents that lost the same manager spread out.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    bound: Duration,
}

impl Backoff {
    /// First bound.
    pub const INITIAL: Duration = Duration::from_millis(100);
    /// Largest bound.
    pub const MAX: Duration = Duration::from_secs(8);

    /// The next wait (and grows the bound).
    pub fn next_delay(&mut self) -> Duration {
        self.bound = (Self::INITIAL + self.bound * 2).min(Self::MAX);
        self.bound.mul_f64(rand::rng().random_range(0.0..1.0))
    }

    /// The current bound.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Back to the start (a session was established).
    pub fn reset(&mut self) {
        self.bound = Duration::ZERO;
    }
}

/// Managers the agent may dial, with weights (the leader's is higher: sessions end there).
#[derive(Default)]
pub struct Managers {
    list: Mutex<Vec<(String, u32)>>,
    last_failed: Mutex<Option<String>>,
}

impl Managers {
    /// Starts from `addrs`, equally weighted.
    pub fn new(addrs: &[String]) -> Self {
        let m = Managers::default();
        m.set(addrs.iter().map(|a| (a.clone(), 1)).collect());
        m
    }

    /// Replaces the list (from a session state). An empty list keeps the old one.
    pub fn set(&self, mut list: Vec<(String, u32)>) {
        list.retain(|(a, _)| !a.is_empty());
        if list.is_empty() {
            return;
        }
        list.sort();
        list.dedup_by(|a, b| a.0 == b.0);
        *self.list.lock().unwrap() = list;
    }

    /// The addresses known.
    pub fn addrs(&self) -> Vec<String> {
        self.list
            .lock()
            .unwrap()
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Remembers that `addr` failed: the next pick avoids it when there is another.
    pub fn failed(&self, addr: &str) {
        *self.last_failed.lock().unwrap() = Some(addr.to_string());
    }

    /// A weighted random pick.
    pub fn pick(&self) -> Option<String> {
        let list = self.list.lock().unwrap().clone();
        let failed = self.last_failed.lock().unwrap().clone();
        let candidates: Vec<&(String, u32)> = if list.len() > 1 {
            list.iter()
                .filter(|(a, _)| Some(a) != failed.as_ref())
                .collect()
        } else {
            list.iter().collect()
        };
        let total: u32 = candidates.iter().map(|(_, w)| (*w).max(1)).sum();
        if total == 0 {
            return None;
        }
        let mut x = rand::rng().random_range(0..total);
        for (addr, w) in candidates {
            let w = (*w).max(1);
            if x < w {
                return Some(addr.clone());
            }
            x -= w;
        }
        None
    }
}

/// Connections to managers, reused across sessions until one fails or the node's certificate
/// is renewed (then new sessions dial anew; a session already open carries on).
pub struct Connections {
    tls: ClientTls,
    channels: Mutex<HashMap<String, (u64, Channel)>>,
}

impl Connections {
    /// Connections authenticated with `tls` (the node's certificate; servers must be managers).
    pub fn new(tls: impl Into<ClientTls>) -> Self {
        Connections {
            tls: tls.into(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client for `addr`, connecting if needed.
    pub async fn client(&self, addr: &str) -> Result<DispatcherClient<Channel>, String> {
        let generation = self.tls.generation();
        let cached = self
            .channels
            .lock()
            .unwrap()
            .get(addr)
            .filter(|(g, _)| *g == generation)
            .map(|(_, c)| c.clone());
        let channel = match cached {
            Some(c) => c,
            None => {
                let (generation, tls) = self.tls.current().map_err(|e| e.to_string())?;
                let c = Endpoint::from_shared(format!("https://{addr}"))
                    .map_err(|e| format!("bad manager address {addr}: {e}"))?
                    .tls_config(tls)
                    .map_err(|e| e.to_string())?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    // Small windows: thousands of simulated agents share one process.
                    .initial_stream_window_size(Some(256 * 1024))
                    .initial_connection_window_size(Some(512 * 1024))
                    .connect()
                    .await
                    .map_err(|e| format!("connecting to {addr}: {e}"))?;
                self.channels
                    .lock()
                    .unwrap()
                    .insert(addr.to_string(), (generation, c.clone()));
                c
            }
        };
        Ok(DispatcherClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(16 << 20))
    }

    /// Drops the connection to `addr` (it failed; the next session dials anew).
    pub fn forget(&self, addr: &str) {
        self.channels.lock().unwrap().remove(addr);
    }

    /// The managers a connection is held to, sorted.
    #[cfg(test)]
    pub fn addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.channels.lock().unwrap().keys().cloned().collect();
        addrs.sort();
        addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_like_swarmkit_and_stays_below_its_bound() {
        let mut b = Backoff::default();
        let mut bounds = Vec::new();
        for _ in 0..8 {
            let d = b.next_delay();
            assert!(d < b.bound());
            bounds.push(b.bound().as_millis());
        }
        assert_eq!(bounds, [100, 300, 700, 1500, 3100, 6300, 8000, 8000]);
        b.reset();
        b.next_delay();
        assert_eq!(b.bound(), Backoff::INITIAL);
    }

    #[test]
    fn picks_follow_weights_and_avoid_the_last_failure() {
        let m = Managers::new(&["a:1".into(), "b:1".into()]);
        m.set(vec![
            ("a:1".into(), 10),
            ("b:1".into(), 1),
            (String::new(), 5),
        ]);
        assert_eq!(m.addrs(), ["a:1", "b:1"]);
        let picks: Vec<String> = (0..2000).filter_map(|_| m.pick()).collect();
        let a = picks.iter().filter(|p| *p == "a:1").count();
        assert!(a > 1500, "the heavier manager should dominate: {a}/2000");
        m.failed("a:1");
        assert!((0..50).all(|_| m.pick().as_deref() == Some("b:1")));
        let single = Managers::new(&["only:1".into()]);
        single.failed("only:1");
        assert_eq!(single.pick().as_deref(), Some("only:1"));
    }
}
