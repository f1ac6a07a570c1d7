//! `GET /live`: server-sent events that tell the pages what became stale.
//!
//! Each SSE message is `event: change`, `id: <revision>`, `data: {"revision":R,"topics":[...]}`
//! where the topics name the fragments to fetch again (see [`super::events::topics`]). The
//! revision as the event id lets a browser's `EventSource` resume where it was after a
//! reconnect (it sends `Last-Event-ID`); a first connection passes `?after=R` with the revision
//! the page was rendered at, so nothing that changed in between is missed.
//!
//! Commits are coalesced: topics gather for at least [`MIN_GAP`] between two messages, so a
//! 10,000-task rollout costs the browser a few fragment fetches a second, not one per commit.
//! When the store can no longer replay from where the client was (history compacted, or the
//! client fell more than the watch buffer behind), a `reset` event tells the page to refresh
//! everything, and the stream goes on from the current revision.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shoal_store::{Store, WatchError, WatchMessage, WatchRequest, WatchStart};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::{events, Dashboard};
use crate::native::NativeState;

/// The shortest time between two messages to one client.
pub const MIN_GAP: Duration = Duration::from_millis(250);
/// Revisions a client's watch may fall behind before it is reset.
const BUFFER: usize = 1 << 14;

/// Query of `/live`.
#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    /// The revision the page shows (first connection).
    pub after: Option<u64>,
}

/// `GET /live`.
pub async fn live<S: NativeState>(
    State(d): State<Dashboard<S>>,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Response {
    let store = match d.source.store().await {
        Ok(s) => s,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.error.message).into_response(),
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after);
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(stream(store, resume, tx));
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn change(revision: u64, topics: &BTreeSet<String>) -> Event {
    Event::default()
        .event("change")
        .id(revision.to_string())
        .data(json!({"revision": revision, "topics": topics}).to_string())
}

fn reset(revision: u64) -> Event {
    Event::default()
        .event("reset")
        .id(revision.to_string())
        .data(json!({"revision": revision, "topics": ["*"]}).to_string())
}

/// Moves the store's commits, coalesced, to one client until it goes away or the store
/// closes (the browser then reconnects and resumes).
async fn stream(store: Store, resume: Option<u64>, tx: mpsc::Sender<Result<Event, Infallible>>) {
    let start = match resume {
        Some(r) if r <= store.current_revision() => WatchStart::After(r),
        // A revision this manager has not reached (the client came from another manager
        // further ahead): start from now, and tell the page to refresh.
        Some(_) | None => WatchStart::Now,
    };
    let mut must_reset = matches!((resume, start), (Some(_), WatchStart::Now));
    let mut start = start;
    loop {
        let req = WatchRequest::new(start)
            .buffer(BUFFER)
            .progress_interval(Duration::from_secs(10));
        let mut watch = match store.watch(req).await {
            Ok(w) => w,
            Err(WatchError::Compacted { .. }) => {
                must_reset = true;
                start = WatchStart::Now;
                continue;
            }
            Err(_) => return,
        };
        if std::mem::take(&mut must_reset)
            && tx.send(Ok(reset(store.current_revision()))).await.is_err()
        {
            return;
        }
        let mut pending = BTreeSet::new();
        let mut revision = 0;
        let mut last_sent = Instant::now()
            .checked_sub(MIN_GAP)
            .unwrap_or_else(Instant::now);
        let ended = loop {
            let due = last_sent + MIN_GAP;
            // Checked before waiting: under a steady stream of commits the watch is always
            // ready, and a timeout around it would never fire.
            if !pending.is_empty() && Instant::now() >= due {
                let msg = change(revision, &std::mem::take(&mut pending));
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
                continue;
            }
            let next = if pending.is_empty() {
                watch.next().await
            } else {
                // `Watch::next` is cancel-safe: a timeout loses no commit.
                match tokio::time::timeout_at(due, watch.next()).await {
                    Ok(m) => m,
                    Err(_) => continue,
                }
            };
            match next {
                Some(Ok(WatchMessage::Commit(c))) => {
                    revision = c.revision;
                    events::topics(&c, &mut pending);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Some(e),
                None => break None,
            }
            if tx.is_closed() {
                return;
            }
        };
        if !pending.is_empty() && tx.send(Ok(change(revision, &pending))).await.is_err() {
            return;
        }
        match ended {
            // Fell behind or history is gone: refresh everything, then go on from now.
            Some(WatchError::Overflow { .. }) | Some(WatchError::Compacted { .. }) => {
                must_reset = true;
                start = WatchStart::Now;
            }
            // The store is closing or this replica cannot serve: the browser reconnects.
            Some(WatchError::Unavailable(_)) | None => return,
        }
    }
}
