//! Forwarding a follower's writes to the leader over one long-lived stream.
//!
//! A follower's proposer sends each batch of transactions to the leader and waits for the
//! results. A call per batch would cost HTTP/2 headers, trailers and a new stream every time,
//! and under load a follower forwards hundreds of batches a second; instead each follower keeps
//! one [`Transport::open_stream`] to the current leader, sends batches on it as they come and
//! takes the answers in order. The stream is replaced when the leader changes, and ended when it
//! breaks or stops answering (the batches in flight then fail and are retried: transactions are
//! deduplicated by id, so a retry never applies twice).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::transport::{Rpc, Transport, TransportError};

type Reply = oneshot::Sender<Result<Vec<u8>, TransportError>>;

/// Batches queued for one link before senders wait.
const LINK_QUEUE: usize = 256;

/// An open stream to one leader: its address and where to queue batches for it.
struct Link {
    addr: String,
    queue: mpsc::Sender<(Vec<u8>, Reply)>,
}

/// Sends forwarded batches to the leader (see the module docs).
pub(crate) struct Forwarder {
    transport: Arc<dyn Transport>,
    /// A link whose oldest unanswered batch is older than this is broken off.
    stall: Duration,
    link: Mutex<Option<Link>>,
}

impl Forwarder {
    /// A forwarder over `transport`; a leader that leaves a batch unanswered for `stall` is
    /// taken for unreachable.
    pub(crate) fn new(transport: Arc<dyn Transport>, stall: Duration) -> Self {
        Forwarder {
            transport,
            stall,
            link: Mutex::new(None),
        }
    }

    /// Sends `body` (an encoded batch) to the leader at `addr`; its encoded answer.
    pub(crate) async fn send(&self, addr: &str, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let queue = self.queue_to(addr);
        let (reply, answer) = oneshot::channel();
        if queue.send((body, reply)).await.is_err() {
            return Err(broken(addr));
        }
        answer.await.unwrap_or_else(|_| Err(broken(addr)))
    }

    /// The queue of the link to `addr`, opening a link if there is none (or only one to another
    /// address, or one that has ended).
    fn queue_to(&self, addr: &str) -> mpsc::Sender<(Vec<u8>, Reply)> {
        let mut link = self.link.lock().expect("forward link lock");
        if let Some(l) = link.as_ref() {
            if l.addr == addr && !l.queue.is_closed() {
                return l.queue.clone();
            }
        }
        let (queue, batches) = mpsc::channel(LINK_QUEUE);
        tokio::spawn(run_link(
            self.transport.clone(),
            addr.to_string(),
            batches,
            self.stall,
        ));
        *link = Some(Link {
            addr: addr.to_string(),
            queue: queue.clone(),
        });
        queue
    }
}

fn broken(addr: &str) -> TransportError {
    TransportError::Unreachable {
        addr: addr.to_string(),
        reason: "the stream forwarding writes to it ended".into(),
    }
}

/// One link: sends queued batches on a stream to `addr` and hands each answer to the batch it
/// answers (the first one still waiting). Ends when the stream breaks, ends or stalls, or when
/// the forwarder lets go of it; every batch still waiting then gets an error.
async fn run_link(
    transport: Arc<dyn Transport>,
    addr: String,
    mut batches: mpsc::Receiver<(Vec<u8>, Reply)>,
    stall: Duration,
) {
    let (requests, outbound) = mpsc::channel::<Vec<u8>>(LINK_QUEUE);
    let outbound = tokio_stream::wrappers::ReceiverStream::new(outbound).boxed();
    let mut answers = match transport.open_stream(&addr, Rpc::Forward, outbound).await {
        Ok(answers) => answers,
        Err(e) => {
            batches.close();
            while let Some((_, reply)) = batches.recv().await {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let mut waiting: VecDeque<(Instant, Reply)> = VecDeque::new();
    let mut check = tokio::time::interval(stall / 4);
    let mut accepting = true;
    let failure = loop {
        tokio::select! {
            batch = batches.recv(), if accepting => match batch {
                Some((body, reply)) => {
                    if requests.send(body).await.is_err() {
                        let _ = reply.send(Err(broken(&addr)));
                        break broken(&addr);
                    }
                    waiting.push_back((Instant::now(), reply));
                }
                None if waiting.is_empty() => return,
                // The forwarder moved on; wait for the answers in flight, then stop.
                None => accepting = false,
            },
            answer = answers.next() => match answer {
                Some(answer) => {
                    let failed = answer.as_ref().err().cloned();
                    if let Some((_, reply)) = waiting.pop_front() {
                        let _ = reply.send(answer);
                    }
                    if let Some(e) = failed {
                        break e;
                    }
                    if !accepting && waiting.is_empty() {
                        return;
                    }
                }
                None => break broken(&addr),
            },
            _ = check.tick() => {
                if waiting.front().is_some_and(|(sent, _)| sent.elapsed() > stall) {
                    break TransportError::Timeout { addr: addr.clone(), after: stall };
                }
            }
        }
    };
    batches.close();
    for (_, reply) in waiting {
        let _ = reply.send(Err(failure.clone()));
    }
    while let Some((_, reply)) = batches.recv().await {
        let _ = reply.send(Err(failure.clone()));
    }
}
