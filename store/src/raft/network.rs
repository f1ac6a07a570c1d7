//! openraft's network traits over a [`Transport`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::StreamAppendResult;
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::snapshot::SnapshotFile;
use super::types::*;
use crate::codec::{self, Encoding};
use crate::transport::{ReplyStream, Rpc, Transport, TransportError};
use base64::Engine as _;

/// Most AppendEntries requests sent to one follower and not yet answered.
const STREAM_WINDOW: usize = 32;

/// A follower that has not answered the oldest outstanding request of a replication stream
/// within this time (plus [`STREAM_TTL_PER_MIB`] for each MiB it carries) is treated as
/// unreachable: the stream ends with an error and openraft opens a new one (a dead peer's TCP
/// connection may otherwise stay silent for a long time).
const STREAM_PROGRESS_TTL: Duration = Duration::from_secs(1);

/// The extra time a follower gets per MiB of entries to receive, decode, seal and write them.
const STREAM_TTL_PER_MIB: Duration = Duration::from_millis(250);

/// Most bytes (roughly) of entries sent in one AppendEntries request. openraft batches up to a
/// count of entries; 300 configs of 400 KiB in one request took longer to encode, send and
/// store than any follower was given to answer, so a learner catching up on a log of large
/// objects was sent the same request over and over without ever storing it. Larger requests
/// go as several, each following the one before.
const REQUEST_BYTES: usize = 4 << 20;

/// How often a replication stream checks the age of its oldest outstanding request.
const STREAM_PROGRESS_CHECK: Duration = Duration::from_millis(100);

/// When each peer's connection last failed (refused, broken, or silent past its deadline), as
/// this member's own requests found it. The leader's view of which voters are reachable counts
/// one whose connection failed after its last answer as unreachable at once: a killed manager's
/// connection breaks within milliseconds, while its last answer only ages past the election
/// timeout much later, and a change of voters judged in between would count it as up.
#[derive(Debug, Default)]
pub struct PeerFailures(Mutex<HashMap<RaftId, Instant>>);

impl PeerFailures {
    fn note(&self, target: RaftId, e: &TransportError) {
        if matches!(
            e,
            TransportError::Unreachable { .. } | TransportError::Timeout { .. }
        ) {
            self.0
                .lock()
                .expect("peer failures lock")
                .insert(target, Instant::now());
        }
    }

    /// How long ago the connection to `target` last failed, if it ever did.
    pub fn since_last_failure(&self, target: RaftId) -> Option<Duration> {
        self.0
            .lock()
            .expect("peer failures lock")
            .get(&target)
            .map(Instant::elapsed)
    }
}

/// Creates per-peer connections for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    transport: Arc<dyn Transport>,
    encoding: Encoding,
    failures: Arc<PeerFailures>,
}

impl NetworkFactory {
    /// A factory over `transport` whose connections send their requests in `encoding` and
    /// note their peers' connection failures in `failures`.
    pub fn new(
        transport: Arc<dyn Transport>,
        encoding: Encoding,
        failures: Arc<PeerFailures>,
    ) -> Self {
        NetworkFactory {
            transport,
            encoding,
            failures,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: RaftId, node: &PeerNode) -> Connection {
        Connection {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            encoding: self.encoding,
            failures: self.failures.clone(),
        }
    }
}

/// A connection to one peer (stateless: the transport pools real connections).
pub struct Connection {
    target: RaftId,
    addr: String,
    transport: Arc<dyn Transport>,
    encoding: Encoding,
    failures: Arc<PeerFailures>,
}

fn to_rpc_error(e: TransportError) -> RPCError<TypeConfig> {
    match e {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::from_string(e)),
        _ => RPCError::Network(NetworkError::from_string(e)),
    }
}

impl Connection {
    /// Notes a failed request to this peer (see [`PeerFailures`]) and turns it into
    /// openraft's error.
    fn failed(&self, e: TransportError) -> RPCError<TypeConfig> {
        self.failures.note(self.target, &e);
        to_rpc_error(e)
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = codec::encode(self.encoding, req)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .call(&self.addr, rpc, body, timeout)
            .await
            .map_err(|e| self.failed(e))?;
        let result: Result<Resp, String> =
            codec::decode(&answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|msg| {
            RPCError::Network(NetworkError::from_string(format!("{}: {msg}", self.addr)))
        })
    }
}

/// Splits `req` into requests of about [`REQUEST_BYTES`] of entries each (at least one entry
/// each), every one following on from the one before; returns it whole when it is smaller.
fn split_by_size(req: AppendEntriesRequest) -> Vec<AppendEntriesRequest> {
    if super::entries_approx_len(&req.entries) <= REQUEST_BYTES || req.entries.len() <= 1 {
        return vec![req];
    }
    let AppendEntriesRequest {
        vote,
        mut prev_log_id,
        entries,
        leader_commit,
    } = req;
    let mut out = Vec::new();
    let mut chunk: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let len = entry_approx_len(&entry);
        if !chunk.is_empty() && bytes + len > REQUEST_BYTES {
            let last = chunk.last().map(|e| e.log_id());
            out.push(AppendEntriesRequest {
                vote,
                prev_log_id,
                entries: std::mem::take(&mut chunk),
                leader_commit,
            });
            prev_log_id = last;
            bytes = 0;
        }
        bytes += len;
        chunk.push(entry);
    }
    out.push(AppendEntriesRequest {
        vote,
        prev_log_id,
        entries: chunk,
        leader_commit,
    });
    out
}

/// One request openraft asked to send, as it went out.
struct Outstanding {
    sent: Instant,
    /// How many requests it was split into (as many answers make its answer).
    parts: usize,
    /// How long the follower has to answer it.
    ttl: Duration,
}

/// The answer side of a pipelined replication stream, with what it needs to time out.
struct Answers {
    replies: ReplyStream,
    /// The outstanding requests, oldest first.
    sent: Arc<Mutex<VecDeque<Outstanding>>>,
    /// Frees a send slot per answer.
    window: Arc<Semaphore>,
    addr: String,
    target: RaftId,
    failures: Arc<PeerFailures>,
    ended: bool,
}

impl Answers {
    /// The next answer to a request openraft sent (the answers to all its parts: the last
    /// part's, or the first rejection), or an error once the follower stops making progress.
    async fn next(mut self) -> Option<(StreamItem, Answers)> {
        if self.ended {
            return None;
        }
        let mut answered = 0;
        loop {
            match tokio::time::timeout(STREAM_PROGRESS_CHECK, self.replies.next()).await {
                Ok(Some(Ok(body))) => {
                    let item = match codec::decode::<Result<StreamAppendResult<TypeConfig>, String>>(
                        &body,
                    ) {
                        Ok(Ok(result)) => Ok(result),
                        Ok(Err(msg)) => Err(RPCError::Network(NetworkError::from_string(format!(
                            "{}: {msg}",
                            self.addr
                        )))),
                        Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
                    };
                    answered += 1;
                    // An error or a rejection (conflict, higher vote) ends this stream.
                    self.ended = !matches!(item, Ok(Ok(_)));
                    let parts = {
                        let sent = self.sent.lock().expect("sent lock");
                        sent.front().map_or(1, |o| o.parts)
                    };
                    if answered < parts && !self.ended {
                        continue;
                    }
                    self.sent.lock().expect("sent lock").pop_front();
                    self.window.add_permits(1);
                    return Some((item, self));
                }
                Ok(Some(Err(e))) => {
                    self.ended = true;
                    self.failures.note(self.target, &e);
                    return Some((Err(to_rpc_error(e)), self));
                }
                Ok(None) => return None,
                Err(_) => {
                    let late = self
                        .sent
                        .lock()
                        .expect("sent lock")
                        .front()
                        .filter(|o| o.sent.elapsed() > o.ttl)
                        .map(|o| o.ttl);
                    if let Some(after) = late {
                        self.ended = true;
                        let e = TransportError::Timeout {
                            addr: self.addr.clone(),
                            after,
                        };
                        self.failures.note(self.target, &e);
                        return Some((Err(to_rpc_error(e)), self));
                    }
                }
            }
        }
    }
}

type StreamItem = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotFile;

    /// Pipelined replication: requests go out as openraft produces them, up to
    /// [`STREAM_WINDOW`] unanswered, over one long-lived transport stream; answers come back in
    /// order. A stream of exactly one request (openraft's heartbeats) is sent as a plain call.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, StreamItem>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = AppendEntriesRequest> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let mut input = input.peekable();
            if input.size_hint() == (1, Some(1)) {
                let small = match std::pin::Pin::new(&mut input).peek().await {
                    None => return Ok(futures::stream::empty().boxed()),
                    Some(req) => super::entries_approx_len(&req.entries) <= REQUEST_BYTES,
                };
                if small {
                    let req = input.next().await.expect("peeked");
                    let prev = req.prev_log_id;
                    let last = req.entries.last().map(|e| e.log_id()).or(prev);
                    let resp = self.append_entries(req, option).await?;
                    let result = resp.into_stream_result(prev, last);
                    return Ok(futures::stream::once(std::future::ready(Ok(result))).boxed());
                }
            }
            let window = Arc::new(Semaphore::new(STREAM_WINDOW));
            let sent: Arc<Mutex<VecDeque<Outstanding>>> = Arc::default();
            let encoding = self.encoding;
            let requests = futures::stream::unfold(
                (input, window.clone(), sent.clone()),
                move |(mut input, window, sent)| async move {
                    window.acquire().await.ok()?.forget();
                    let req = input.next().await?;
                    let large = super::entries_are_large(&req.entries);
                    let parts = split_by_size(req);
                    let bodies = super::off_runtime_if(large, || {
                        parts
                            .iter()
                            .map(|part| codec::encode(encoding, part))
                            .collect::<Result<Vec<Vec<u8>>, _>>()
                    });
                    let bodies = match bodies {
                        Ok(bodies) => bodies,
                        Err(e) => {
                            tracing::error!("encoding an AppendEntries request: {e}");
                            return None;
                        }
                    };
                    let bytes: usize = bodies.iter().map(Vec::len).sum();
                    sent.lock().expect("sent lock").push_back(Outstanding {
                        sent: Instant::now(),
                        parts: bodies.len(),
                        ttl: STREAM_PROGRESS_TTL + STREAM_TTL_PER_MIB * (bytes >> 20) as u32,
                    });
                    Some((futures::stream::iter(bodies), (input, window, sent)))
                },
            )
            .flatten()
            .boxed();
            let replies = self
                .transport
                .open_stream(&self.addr, Rpc::AppendEntries, requests)
                .await
                .map_err(|e| self.failed(e))?;
            let answers = Answers {
                replies,
                sent,
                window,
                addr: self.addr.clone(),
                target: self.target,
                failures: self.failures.clone(),
                ended: false,
            };
            Ok(futures::stream::unfold(answers, Answers::next).boxed())
        })
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError<TypeConfig>> {
        self.call(Rpc::AppendEntries, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        self.call(Rpc::PreVote, &rpc, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse, StreamingError<TypeConfig>> {
        // The snapshot's file key goes with it (the link is mutually authenticated TLS): the
        // receiver seals it with its own data key.
        let key = snapshot
            .snapshot
            .key
            .as_ref()
            .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_bytes()));
        let header = codec::encode(self.encoding, &(vote, snapshot.meta.clone(), key))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        // Large snapshots take time: allow at least 10 s plus 1 s per 10 MB.
        let len = snapshot.snapshot.len().unwrap_or(0);
        let timeout = option
            .hard_ttl()
            .max(Duration::from_secs(10) + Duration::from_millis(len / 10_000));
        let send = self.transport.send_snapshot(
            &self.addr,
            header,
            snapshot.snapshot.path.clone(),
            timeout,
        );
        let answer = tokio::select! {
            r = send => r.map_err(|e| match to_rpc_error(e) {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::from_string(other)),
            })?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let result: Result<SnapshotResponse, String> =
            codec::decode(&answer).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        result.map_err(|msg| StreamingError::Network(NetworkError::from_string(msg)))
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest,
        option: RPCOption,
    ) -> Result<openraft::raft::TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Rpc::TransferLeader, &req, option.hard_ttl())
            .await
    }

    fn backoff(&self) -> Option<Backoff> {
        // Retry an unreachable peer quickly at first (it may just be restarting), then settle.
        Some(Backoff::new(
            [50u64, 100, 200, 400]
                .into_iter()
                .chain(std::iter::repeat(500))
                .map(Duration::from_millis),
        ))
    }
}
