//! The node-local DNS server for service discovery (`reference/networking.md` §1.6, §4.3, §8 item 4).
//!
//! Docker's embedded resolver (127.0.0.11 in every container) answers only the names of local
//! containers and forwards the rest to the container's `--dns` servers; shoal points those at this
//! server, so queries arrive here from container addresses. The server answers service names,
//! `tasks.<service>` and task names from the networks of the container that asks, with a TTL short
//! enough that scaling and rescheduling show up at once, and forwards everything else to the host's
//! resolvers.
//!
//! The wire protocol, the UDP/TCP listeners and malformed-packet handling are `hickory-server`'s;
//! what to answer (`lookup`), how (`handler`) and forwarding (`forward`) are ours.

mod forward;
mod handler;
mod lookup;
mod resolv_conf;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::Server;
use tokio::sync::watch;

pub use resolv_conf::{host_search_domains, host_upstreams};

use forward::Forwarder;
use handler::Handler;

/// What the server answers, rebuilt by the data-plane reconciler from the store and swapped in whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    /// For each container address on this node: the networks (ids) that container is attached to.
    /// A query is answered only from the networks of the container that asks (scoping, as Docker's
    /// resolver does).
    pub networks_of: HashMap<Ipv4Addr, Vec<String>>,
    /// Per network id: lower-case name -> addresses (service name -> VIP, or task addresses for
    /// dnsrr; `tasks.<service>` -> every running task address; task names and aliases -> the task
    /// address). A name present with no address is known but has none: its queries get an empty
    /// answer instead of being forwarded.
    pub names: HashMap<String, HashMap<String, Vec<Ipv4Addr>>>,
}

impl Records {
    /// Adds `addrs` to `name` on `network`, normalising the name as the lookup expects (lower case,
    /// no trailing dot), so callers need not remember the convention.
    pub fn add_name(
        &mut self,
        network: &str,
        name: &str,
        addrs: impl IntoIterator<Item = Ipv4Addr>,
    ) {
        let entry = self
            .names
            .entry(network.to_owned())
            .or_default()
            .entry(lookup::normalise(name))
            .or_default();
        for addr in addrs {
            if !entry.contains(&addr) {
                entry.push(addr);
            }
        }
    }
}

/// Query counts since the server was created (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Answered from [`Records`], including the empty answers for other types of a known name.
    pub answered: u64,
    /// Forwarded to an upstream whose answer was relayed.
    pub forwarded: u64,
    /// Answered with an error of ours: SERVFAIL (no upstream answered, too many forwards in flight),
    /// FORMERR or NOTIMP. Packets dropped before a handler sees them are not counted.
    pub failed: u64,
}

/// How long an idle TCP client may keep a connection open between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection; a client pipelining more waits.
const TCP_RESPONSE_BUFFER: usize = 32;
/// How many times `listen` on port 0 looks for a port free for both UDP and TCP.
const FREE_PORT_ATTEMPTS: usize = 16;

/// The node's DNS server: answers from the current [`Records`], forwards the rest.
pub struct DnsServer {
    shared: Arc<Shared>,
    /// One hickory server per bound address; dropping one aborts its socket tasks.
    listeners: Mutex<HashMap<SocketAddr, Server<Handler>>>,
}

/// State every listener's handler shares.
struct Shared {
    records: watch::Receiver<Arc<Records>>,
    search_domains: Vec<String>,
    forwarder: Forwarder,
    answered: AtomicU64,
    forwarded: AtomicU64,
    failed: AtomicU64,
}

impl DnsServer {
    /// A server answering from `records` (the receiver always holds the current table) and
    /// forwarding everything else to `upstreams`.
    pub fn new(records: watch::Receiver<Arc<Records>>, upstreams: Vec<SocketAddr>) -> Self {
        Self::with_search_domains(records, upstreams, Vec::new())
    }

    /// Like [`DnsServer::new`], and a name unknown as asked is looked up again without one of
    /// `search_domains` (the host's, see [`host_search_domains`]) if it ends with it: a client whose
    /// resolver appends search domains before trying the bare name still finds services.
    pub fn with_search_domains(
        records: watch::Receiver<Arc<Records>>,
        upstreams: Vec<SocketAddr>,
        search_domains: Vec<String>,
    ) -> Self {
        let search_domains = search_domains
            .iter()
            .map(|domain| lookup::normalise(domain))
            .filter(|domain| !domain.is_empty())
            .collect();
        Self {
            shared: Arc::new(Shared {
                records,
                search_domains,
                forwarder: Forwarder::new(upstreams),
                answered: AtomicU64::new(0),
                forwarded: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
            listeners: Mutex::new(HashMap::new()),
        }
    }

    /// Starts answering on `addr` (UDP and TCP). Idempotent: listening again on the same address is
    /// a no-op. Port 0 picks a port free for both protocols (see [`DnsServer::listening`] for which);
    /// it is a no-op if the server already listens on some port of that IP.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<()> {
        // The lock is held while binding (no await inside), so two concurrent calls for one
        // address cannot both bind.
        let mut listeners = self.lock_listeners();
        let already = if addr.port() == 0 {
            listeners.keys().any(|bound| bound.ip() == addr.ip())
        } else {
            listeners.contains_key(&addr)
        };
        if already {
            return Ok(());
        }
        let (udp, tcp) = bind_pair(addr)?;
        let bound = udp.local_addr()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp = tokio::net::UdpSocket::from_std(udp)?;
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let mut server = Server::new(Handler::new(self.shared.clone()));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        listeners.insert(bound, server);
        tracing::debug!(%bound, "dns server listening");
        Ok(())
    }

    /// Stops answering on `addr` (no-op if not listening). Port 0 stops every port of that IP.
    /// The sockets close asynchronously, shortly after this returns.
    pub fn stop(&self, addr: SocketAddr) {
        let mut listeners = self.lock_listeners();
        let stopping: Vec<SocketAddr> = listeners
            .keys()
            .filter(|bound| **bound == addr || (addr.port() == 0 && bound.ip() == addr.ip()))
            .copied()
            .collect();
        for bound in stopping {
            if let Some(server) = listeners.remove(&bound) {
                // Cancelling ends the accept loops; dropping the server aborts what still runs
                // (open TCP connections, queries in flight), which releases the sockets.
                server.shutdown_token().cancel();
                drop(server);
                tracing::debug!(%bound, "dns server stopped");
            }
        }
    }

    /// The addresses it listens on now (with the ports actually bound).
    pub fn listening(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self.lock_listeners().keys().copied().collect();
        addrs.sort();
        addrs
    }

    /// Queries answered from records / forwarded / failed since start (for metrics later).
    pub fn counters(&self) -> DnsCounters {
        DnsCounters {
            answered: self.shared.answered.load(Ordering::Relaxed),
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Server<Handler>>> {
        // A panic while holding the lock cannot leave the map half-updated (each change is one
        // insert or remove), so a poisoned lock is still usable.
        self.listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Binds UDP and TCP on the same address. For port 0, retries until the port the kernel picked for
/// UDP is also free for TCP, so clients can retry a truncated answer on the same address.
fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((UdpSocket::bind(addr)?, TcpListener::bind(addr)?));
    }
    let mut last_error = None;
    for _ in 0..FREE_PORT_ATTEMPTS {
        let udp = UdpSocket::bind(addr)?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}
