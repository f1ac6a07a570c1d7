//! Forwarding the queries we do not answer to the host's resolvers.
//!
//! The client's query goes out as it came (EDNS options included), under an id of ours so that a
//! guessed id from the client cannot be used to slip a forged answer in, over the protocol it came
//! in on: a client that retries a truncated answer over TCP gets the full answer over TCP.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// How long one upstream gets before the next is tried. Docker's resolver waits 4 s in total for
/// us, so with 2 s a second upstream still gets its chance when the first is down.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwards in flight at once, as Docker's resolver (`maxConcurrent`): past it a query fails at
/// once rather than queueing behind upstreams that may be down.
pub(super) const MAX_CONCURRENT_FORWARDS: usize = 1024;
/// The smallest buffer for a UDP answer: what an upstream may send a client without EDNS.
const MIN_UDP_BUFFER: usize = 4096;

/// Why a query could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub(super) enum ForwardError {
    #[error("no upstream DNS server is configured")]
    NoUpstreams,
    #[error("more than {MAX_CONCURRENT_FORWARDS} queries are being forwarded already")]
    Busy,
    #[error("the query is too short to be forwarded")]
    Malformed,
    #[error("no upstream DNS server answered")]
    NoAnswer,
}

/// Sends queries to the upstreams in order until one answers.
pub(super) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    permits: Semaphore,
}

impl Forwarder {
    pub(super) fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self {
            upstreams,
            permits: Semaphore::new(MAX_CONCURRENT_FORWARDS),
        }
    }

    /// Forwards `query` (the client's raw message, asking `question`) and returns the first answer
    /// for it from an upstream that is not SERVFAIL or REFUSED (those mean "ask someone else", as
    /// Docker's resolver reads them). `max_udp` is the largest UDP answer the client accepts.
    pub(super) async fn forward(
        &self,
        query: &[u8],
        question: &Query,
        datagram: bool,
        max_udp: usize,
    ) -> Result<Message, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        if query.len() < 12 {
            return Err(ForwardError::Malformed);
        }
        let _permit = self.permits.try_acquire().map_err(|_| ForwardError::Busy)?;
        let id: u16 = rand::random();
        let mut query = query.to_vec();
        query[..2].copy_from_slice(&id.to_be_bytes());
        let expected = Expected { id, question };
        for upstream in &self.upstreams {
            let exchange = async {
                if datagram {
                    exchange_udp(*upstream, &query, &expected, max_udp).await
                } else {
                    exchange_tcp(*upstream, &query, &expected).await
                }
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
                Ok(Ok(answer))
                    if !matches!(
                        answer.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    return Ok(answer);
                }
                Ok(Ok(answer)) => tracing::debug!(
                    %upstream, rcode = %answer.metadata.response_code, "upstream refused a query"
                ),
                Ok(Err(error)) => tracing::debug!(%upstream, %error, "upstream DNS server failed"),
                Err(_) => tracing::debug!(%upstream, "upstream DNS server timed out"),
            }
        }
        Err(ForwardError::NoAnswer)
    }
}

/// What an upstream's answer must carry to be the answer to our query.
struct Expected<'a> {
    id: u16,
    question: &'a Query,
}

impl Expected<'_> {
    fn matches(&self, answer: &Message) -> bool {
        answer.metadata.id == self.id
            && answer.metadata.message_type == MessageType::Response
            && answer.queries.len() == 1
            && answer.queries[0].name() == self.question.name()
            && answer.queries[0].query_type() == self.question.query_type()
            && answer.queries[0].query_class() == self.question.query_class()
    }
}

async fn exchange_udp(
    upstream: SocketAddr,
    query: &[u8],
    expected: &Expected<'_>,
    max_udp: usize,
) -> io::Result<Message> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    // A connected socket on a fresh port: the kernel drops datagrams from anyone else, and an
    // upstream that is down shows as "connection refused" at once instead of a timeout.
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0; max_udp.max(MIN_UDP_BUFFER)];
    loop {
        let len = socket.recv(&mut buf).await?;
        // Anything that is not our answer (late answers to someone else, garbage) is skipped;
        // the caller's timeout bounds the wait.
        if let Ok(answer) = Message::from_vec(&buf[..len]) {
            if expected.matches(&answer) {
                return Ok(answer);
            }
        }
    }
}

async fn exchange_tcp(
    upstream: SocketAddr,
    query: &[u8],
    expected: &Expected<'_>,
) -> io::Result<Message> {
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query longer than 64 KiB"))?;
    let mut stream = TcpStream::connect(upstream).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    let answer = Message::from_vec(&buf)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    if !expected.matches(&answer) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer does not match the query",
        ));
    }
    Ok(answer)
}
