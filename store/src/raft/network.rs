//! openraft's network traits over a [`Transport`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::snapshot::SnapshotFile;
use super::types::*;
use crate::transport::{Rpc, Transport, TransportError};

/// Creates per-peer connections for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    transport: Arc<dyn Transport>,
}

impl NetworkFactory {
    /// A factory over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        NetworkFactory { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, _target: RaftId, node: &PeerNode) -> Connection {
        Connection {
            addr: node.addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// A connection to one peer (stateless: the transport pools real connections).
pub struct Connection {
    addr: String,
    transport: Arc<dyn Transport>,
}

fn to_rpc_error(e: TransportError) -> RPCError<TypeConfig> {
    match e {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::from_string(e)),
        _ => RPCError::Network(NetworkError::from_string(e)),
    }
}

impl Connection {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .call(&self.addr, rpc, body, timeout)
            .await
            .map_err(to_rpc_error)?;
        let result: Result<Resp, String> = serde_json::from_slice(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|msg| {
            RPCError::Network(NetworkError::from_string(format!("{}: {msg}", self.addr)))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotFile;

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
        let header = serde_json::to_vec(&(vote, snapshot.meta.clone()))
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
        let result: Result<SnapshotResponse, String> = serde_json::from_slice(&answer)
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
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
