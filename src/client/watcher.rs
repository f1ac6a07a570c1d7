//! A watch that survives disconnects, in the style of kube-runtime's `watcher`: a [`Stream`] of
//! [`Event`]s that follows the client contract of the native watch
//! (`reference/watch-apply-gitops.md` §2.7):
//!
//! - it remembers the last revision delivered (of a commit, a progress or the end of a
//!   snapshot) and, when the connection is cut, the daemon restarts or the watch falls behind
//!   (`overflow`), reconnects asking for the changes after it, with `min_revision` so that
//!   another manager never answers from further back: nothing is missed or delivered twice;
//! - when history no longer reaches back that far it says so ([`Event::Compacted`]) and starts
//!   again with a snapshot ([`Event::Init`] ... [`Event::InitDone`]); a snapshot cut in the
//!   middle is started again too, so apply snapshot objects to a cache only at `InitDone`;
//! - a watch from now learns its revision from the first message (a progress at it); only a
//!   connection cut before that message starts from now again, with whatever happened in
//!   between unseen (ask for a snapshot, or `Start::After` a known revision, to rule that out);
//! - a watch silent for three progress intervals is taken as cut (an idle load balancer);
//! - errors are yielded as they happen; after a retryable one the stream goes on, reconnecting
//!   with exponential backoff (0.8 s doubling to 30 s, with jitter, reset by the first message
//!   that gets through); after any other (a bad filter, a node that is not a manager) it ends.

use std::time::Duration;

use futures::{Stream, StreamExt};
use rand::Rng;

use super::{Client, ClientError, MessageStream};
use crate::native::watch::{Start, WatchParams};
use crate::native::wire::{code, WireEvent, WireMessage, WireObject};

/// What the watcher yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A snapshot starts at `revision` (the first one, or a new one after [`Event::Compacted`]
    /// or a snapshot cut short).
    Init {
        /// The snapshot's revision.
        revision: u64,
    },
    /// One object of the snapshot.
    InitApply(WireObject),
    /// The snapshot is complete: it is the store at `revision`. Objects a cache had but this
    /// snapshot did not are gone.
    InitDone {
        /// The snapshot's revision.
        revision: u64,
    },
    /// The matching changes of one revision.
    Commit {
        /// The revision.
        revision: u64,
        /// When it was proposed (RFC 3339).
        at: String,
        /// The changes.
        events: Vec<WireEvent>,
    },
    /// Every matching change up to `revision` has been delivered.
    Progress {
        /// The revision.
        revision: u64,
    },
    /// History is compacted past the revision the watcher had to resume from: the changes
    /// after `requested` up to `oldest` are lost. A snapshot follows.
    Compacted {
        /// The revision the watcher asked to resume after.
        requested: u64,
        /// The oldest revision one can resume after.
        oldest: u64,
        /// The current revision.
        current: u64,
    },
}

/// How a watcher watches.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    /// The filter and where to start (`min_revision`, `progress_interval` and `buffer` are
    /// passed through; the watcher sets `start` and `min_revision` itself when it resumes).
    pub params: WatchParams,
    /// First delay before reconnecting after an error.
    pub backoff_initial: Duration,
    /// Longest delay between reconnections.
    pub backoff_max: Duration,
}

impl WatcherConfig {
    /// A watch with these parameters and the default backoff.
    pub fn new(params: WatchParams) -> Self {
        WatcherConfig {
            params,
            backoff_initial: Duration::from_millis(800),
            backoff_max: Duration::from_secs(30),
        }
    }

    fn idle_timeout(&self) -> Duration {
        self.params
            .progress_interval
            .unwrap_or(Duration::from_secs(5))
            * 3
    }
}

struct State {
    client: Client,
    config: WatcherConfig,
    /// The resume point: the last revision delivered (`None` before the first snapshot or
    /// progress, and after a compaction).
    last_revision: Option<u64>,
    /// The open connection.
    stream: Option<MessageStream>,
    /// Errors since the last message that got through.
    failures: u32,
    /// The next connection starts with a snapshot whatever was asked (after a compaction).
    relist: bool,
    ended: bool,
}

impl State {
    fn backoff(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let base = self
            .config
            .backoff_initial
            .saturating_mul(1 << exp)
            .min(self.config.backoff_max);
        // ±20% so that many clients cut off together do not come back together.
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    fn next_params(&self) -> WatchParams {
        let mut p = self.config.params.clone();
        if self.relist {
            p.start = Start::Snapshot;
        } else if let Some(r) = self.last_revision {
            p.start = Start::After(r);
            p.min_revision = Some(r);
        }
        p
    }

    fn fail(&mut self, e: ClientError) -> Option<Result<Event, ClientError>> {
        self.stream = None;
        self.failures += 1;
        if !e.is_retryable() {
            self.ended = true;
        }
        Some(Err(e))
    }

    fn compacted(&mut self, requested: Option<u64>, oldest: u64, current: u64) -> Event {
        self.stream = None;
        self.relist = true;
        let requested = requested.or(self.last_revision).unwrap_or_default();
        self.last_revision = None;
        Event::Compacted {
            requested,
            oldest,
            current,
        }
    }

    async fn step(&mut self) -> Option<Result<Event, ClientError>> {
        if self.ended {
            return None;
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                if self.failures > 0 {
                    tokio::time::sleep(self.backoff()).await;
                }
                match self.client.watch_once(&self.next_params()).await {
                    Ok(s) => {
                        self.stream = Some(s);
                        continue;
                    }
                    Err(ClientError::Api { error, .. }) if error.code == code::COMPACTED => {
                        return Some(Ok(self.compacted(
                            error.requested,
                            error.oldest.unwrap_or_default(),
                            error.current.unwrap_or_default(),
                        )));
                    }
                    Err(e) => return self.fail(e),
                }
            };
            let idle = self.config.idle_timeout();
            let message = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => return self.fail(ClientError::Idle(idle)),
                Ok(None) => {
                    return self.fail(ClientError::Transport {
                        host: self.client.host().to_string(),
                        message: "the watch ended".into(),
                    })
                }
                Ok(Some(Err(e))) => return self.fail(e),
                Ok(Some(Ok(m))) => m,
            };
            self.failures = 0;
            let event = match message {
                WireMessage::InitBegin { revision } => {
                    self.relist = false;
                    Event::Init { revision }
                }
                WireMessage::InitObject(o) => Event::InitApply(o),
                WireMessage::InitDone { revision } => {
                    self.last_revision = Some(revision);
                    Event::InitDone { revision }
                }
                WireMessage::Commit {
                    revision,
                    at,
                    events,
                } => {
                    self.last_revision = Some(revision);
                    Event::Commit {
                        revision,
                        at,
                        events,
                    }
                }
                WireMessage::Progress { revision } => {
                    self.last_revision = Some(self.last_revision.unwrap_or(0).max(revision));
                    Event::Progress { revision }
                }
                WireMessage::Error(e) if e.code == code::COMPACTED => {
                    return Some(Ok(self.compacted(
                        e.requested,
                        e.oldest.unwrap_or_default(),
                        e.current.unwrap_or_default(),
                    )));
                }
                WireMessage::Error(error) => {
                    return self.fail(ClientError::Api { status: 200, error });
                }
            };
            return Some(Ok(event));
        }
    }
}

/// Watches through `client` for as long as the stream is polled (see the module docs).
pub fn watcher(
    client: Client,
    config: WatcherConfig,
) -> impl Stream<Item = Result<Event, ClientError>> + Send {
    let last_revision = match config.params.start {
        Start::After(r) => Some(r),
        _ => None,
    };
    let state = State {
        client,
        config,
        last_revision,
        stream: None,
        failures: 0,
        relist: false,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.step().await?;
        Some((item, state))
    })
}
