//! The gRPC form of the native watch (`proto/watch.proto`), served next to the HTTP routes on
//! the API sockets (see the module docs of [`super`] for why there). It shares the parameters,
//! the store's watch and the pump with the HTTP form ([`super::watch`]); only the encoding
//! differs, and objects are the same JSON.

use std::pin::Pin;
use std::time::Duration;

use axum::http::StatusCode;
use futures::Stream;
use futures::StreamExt;
use shoal_proto::watch as pb;
use shoal_proto::watch::watch_server::{Watch, WatchServer};
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status};

use super::watch::{Start, WatchParams};
use super::wire::{code, WireError, WireEvent, WireMessage};
use super::{NativeError, NativeState};

type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The gRPC watch service over a [`NativeState`].
#[derive(Clone)]
pub struct WatchService<S> {
    state: S,
}

/// The tonic server for `state`.
pub fn server<S: NativeState>(state: S) -> WatchServer<WatchService<S>> {
    WatchServer::new(WatchService { state })
        // A commit is one message however many objects it carries.
        .max_encoding_message_size(usize::MAX)
}

/// The path the service's methods live under (`/shoal.watch.v1.Watch/{*rpc}`).
pub fn route_path() -> String {
    format!(
        "/{}/{{*rpc}}",
        WatchServer::<WatchService<shoal_store::Store>>::NAME
    )
}

/// The gRPC code for an error code.
fn grpc_code(error_code: &str) -> Code {
    match error_code {
        code::COMPACTED => Code::OutOfRange,
        code::OVERFLOW => Code::ResourceExhausted,
        code::INVALID_ARGUMENT => Code::InvalidArgument,
        code::NOT_A_MANAGER => Code::FailedPrecondition,
        code::TIMEOUT => Code::DeadlineExceeded,
        code::NOT_FOUND => Code::NotFound,
        _ => Code::Unavailable,
    }
}

fn status(e: &NativeError) -> Status {
    Status::new(grpc_code(&e.error.code), e.error.message.clone())
}

/// The watch parameters of a gRPC request.
pub fn params(req: &pb::WatchRequest) -> WatchParams {
    let filter = req.filter.clone().unwrap_or_default();
    let opt = |s: String| (!s.is_empty()).then_some(s);
    WatchParams {
        kinds: filter.kinds,
        actions: filter.actions,
        labels: filter.labels,
        stack: opt(filter.stack),
        name_prefix: opt(filter.name_prefix),
        node: opt(filter.node),
        start: match req.start {
            None => Start::Snapshot,
            Some(pb::watch_request::Start::Now(_)) => Start::Now,
            Some(pb::watch_request::Start::AfterRevision(r)) => Start::After(r),
        },
        min_revision: (req.min_revision > 0).then_some(req.min_revision),
        progress_interval: (req.progress_interval_ms > 0)
            .then(|| Duration::from_millis(req.progress_interval_ms.into())),
        buffer: (req.buffer > 0).then_some(req.buffer as usize),
    }
}

fn pb_error(e: WireError) -> pb::WatchError {
    pb::WatchError {
        code: e.code,
        message: e.message,
        requested: e.requested.unwrap_or_default(),
        oldest: e.oldest.unwrap_or_default(),
        current: e.current.unwrap_or_default(),
        last_delivered: e.last_delivered.unwrap_or_default(),
    }
}

fn pb_event(e: WireEvent) -> pb::Event {
    pb::Event {
        revision: e.revision,
        action: e.action,
        kind: e.kind,
        id: e.id,
        name: e.name,
        object_json: e.object.to_string(),
        left_filter: e.left_filter,
    }
}

/// The gRPC message for a wire message.
pub fn pb_message(m: WireMessage) -> pb::WatchResponse {
    use pb::watch_response::Message;
    let message = match m {
        WireMessage::InitBegin { revision } => Message::InitBegin(pb::InitBegin { revision }),
        WireMessage::InitObject(o) => Message::InitObject(pb::InitObject {
            kind: o.kind,
            id: o.id,
            name: o.name,
            version: o.version,
            object_json: o.object.to_string(),
        }),
        WireMessage::InitDone { revision } => Message::InitDone(pb::InitDone { revision }),
        WireMessage::Commit {
            revision,
            at,
            events,
        } => Message::Commit(pb::Commit {
            revision,
            at,
            events: events.into_iter().map(pb_event).collect(),
        }),
        WireMessage::Progress { revision } => Message::Progress(pb::Progress { revision }),
        WireMessage::Error(e) => Message::Error(pb_error(e)),
    };
    pb::WatchResponse {
        message: Some(message),
    }
}

/// The stream items for one wire message: an error is its message, then the matching status.
fn items(m: WireMessage) -> Vec<Result<pb::WatchResponse, Status>> {
    match m {
        WireMessage::Error(e) => {
            let status = Status::new(grpc_code(&e.code), e.message.clone());
            vec![Ok(pb_message(WireMessage::Error(e))), Err(status)]
        }
        other => vec![Ok(pb_message(other))],
    }
}

#[tonic::async_trait]
impl<S: NativeState> Watch for WatchService<S> {
    type WatchStream = RpcStream<pb::WatchResponse>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let params = params(request.get_ref());
        let store = self.state.store().await.map_err(|e| status(&e))?;
        let rx = match super::watch::open(&store, &params).await {
            Ok(rx) => rx,
            // A watch the store refused (compacted, not caught up) still ends explicitly:
            // its error message, then its status.
            Err(e) if e.status == StatusCode::GONE || e.error.code == code::UNAVAILABLE => {
                let stream = futures::stream::iter(items(WireMessage::Error(e.error)));
                return Ok(Response::new(Box::pin(stream)));
            }
            Err(e) => return Err(status(&e)),
        };
        let stream = ReceiverStream::new(rx).flat_map(|m| futures::stream::iter(items(m)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn current_revision(
        &self,
        _request: Request<pb::CurrentRevisionRequest>,
    ) -> Result<Response<pb::RevisionResponse>, Status> {
        let store = self.state.store().await.map_err(|e| status(&e))?;
        let revision = store
            .read_index()
            .await
            .map_err(|e| status(&NativeError::from_store(&e)))?;
        Ok(Response::new(pb::RevisionResponse {
            revision,
            applied: store.current_revision(),
        }))
    }

    async fn wait_for(
        &self,
        request: Request<pb::WaitForRequest>,
    ) -> Result<Response<pb::RevisionResponse>, Status> {
        let req = request.into_inner();
        let timeout = match req.timeout_ms {
            0 => super::DEFAULT_WAIT,
            ms => Duration::from_millis(ms.into()),
        };
        let timeout = super::check_wait(timeout).map_err(|e| status(&e))?;
        let store = self.state.store().await.map_err(|e| status(&e))?;
        super::wait_for(&store, req.revision, timeout)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::RevisionResponse {
            revision: req.revision,
            applied: store.current_revision(),
        }))
    }
}
