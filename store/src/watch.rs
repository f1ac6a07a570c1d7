//! Watches: ordered, gap-free streams of commits that can start from a snapshot, resume from a
//! revision, and tell a client how far it is up to date even when nothing matches its filter.
//!
//! Guarantees (DESIGN.md §4, reference W1-W7, W9-W11):
//! - one message per revision with all of its matching events, in commit order;
//! - resume after any revision still in history, else an explicit [`WatchError::Compacted`];
//! - `Snapshot` start streams `InitBegin`, the matching objects, `InitDone{revision}`, then live
//!   commits after that revision;
//! - `Progress{revision}` when idle: every matching event up to `revision` has been delivered;
//! - deletes arrive as events carrying the last stored object;
//! - a watcher that falls more than its buffer behind is ended with [`WatchError::Overflow`]
//!   (after the messages it was already given), never silently skipped and never unbounded;
//! - `min_revision`: the stream starts only once this replica has applied that revision.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::error::TryRecvError;

use crate::hub::{Hub, Registration};
use crate::model::{Kind, Object};
use crate::txn::{Action, Commit, Event};

/// Which changes a watcher wants. Empty lists mean "any". Conditions are ANDed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchFilter {
    /// Object kinds.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// Actions.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Only objects with this id.
    #[serde(default)]
    pub id: Option<String>,
    /// Only tasks of this service.
    #[serde(default)]
    pub service_id: Option<String>,
    /// Only tasks on this node.
    #[serde(default)]
    pub node_id: Option<String>,
}

impl WatchFilter {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the given kinds.
    pub fn kinds(kinds: impl IntoIterator<Item = Kind>) -> Self {
        WatchFilter {
            kinds: kinds.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Whether an object (as of some revision) passes the object-level conditions.
    pub fn matches_object(&self, o: &Object) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&o.kind()) {
            return false;
        }
        if let Some(id) = &self.id {
            if o.id() != id {
                return false;
            }
        }
        if self.service_id.is_some() || self.node_id.is_some() {
            let Object::Task(t) = o else { return false };
            if self.service_id.as_ref().is_some_and(|s| &t.service_id != s) {
                return false;
            }
            if self.node_id.as_ref().is_some_and(|n| &t.node_id != n) {
                return false;
            }
        }
        true
    }

    /// Whether an event passes: its action is wanted and its object (or the object before it)
    /// passes, so a watcher also sees an object leaving its filter.
    pub fn matches(&self, e: &Event) -> bool {
        if !self.actions.is_empty() && !self.actions.contains(&e.action) {
            return false;
        }
        self.matches_object(&e.object) || e.prev.as_deref().is_some_and(|p| self.matches_object(p))
    }

    fn restrict(&self, commit: &Commit) -> Option<Commit> {
        let events: Vec<Event> = commit
            .events
            .iter()
            .filter(|e| self.matches(e))
            .cloned()
            .collect();
        if events.is_empty() {
            return None;
        }
        Some(Commit {
            revision: commit.revision,
            at: commit.at,
            events,
        })
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchStart {
    /// With commits after the current revision.
    Now,
    /// With commits after this revision (exclusive), replayed from history.
    After(u64),
    /// With every matching object at the current revision, then commits after it.
    Snapshot,
}

/// A watch request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// Where to start.
    pub start: WatchStart,
    /// What to deliver.
    #[serde(default)]
    pub filter: WatchFilter,
    /// Wait until this replica has applied at least this revision before starting (so a client
    /// that reconnects to another manager never goes back in time).
    #[serde(default)]
    pub min_revision: Option<u64>,
    /// Commits the watcher may fall behind before it is ended with `Overflow`.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// Emit `Progress` after this long without a message.
    #[serde(default = "default_progress", with = "duration_ms")]
    pub progress_interval: Duration,
}

fn default_buffer() -> usize {
    1024
}

fn default_progress() -> Duration {
    Duration::from_secs(5)
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl WatchRequest {
    /// A request starting at `start` with everything else default.
    pub fn new(start: WatchStart) -> Self {
        WatchRequest {
            start,
            filter: WatchFilter::all(),
            min_revision: None,
            buffer: default_buffer(),
            progress_interval: default_progress(),
        }
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: WatchFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets the minimum revision.
    pub fn min_revision(mut self, r: u64) -> Self {
        self.min_revision = Some(r);
        self
    }

    /// Sets the buffer bound.
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n;
        self
    }

    /// Sets the idle progress interval.
    pub fn progress_interval(mut self, d: Duration) -> Self {
        self.progress_interval = d;
        self
    }
}

/// One message of a watch stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WatchMessage {
    /// A snapshot starts (at `revision`).
    InitBegin {
        /// Revision of the snapshot.
        revision: u64,
    },
    /// Objects of the snapshot (sent in chunks).
    InitObjects(Vec<Arc<Object>>),
    /// The snapshot is complete: the client's view equals the store at `revision`.
    InitDone {
        /// Revision of the snapshot.
        revision: u64,
    },
    /// The matching changes of one revision.
    Commit(Arc<Commit>),
    /// Every matching change up to `revision` has been delivered.
    Progress {
        /// The revision the client is up to date with.
        revision: u64,
    },
}

/// Why a watch ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WatchError {
    /// The requested start revision is older than the retained history.
    #[error("watch from revision {requested} is no longer possible: history is compacted up to {oldest} (current revision {current}); list again and watch from the list's revision")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision one can resume after.
        oldest: u64,
        /// The current revision.
        current: u64,
    },
    /// The watcher fell too far behind; resume after `last_delivered`.
    #[error("watcher fell more than its buffer behind and was ended; resume after revision {last_delivered}")]
    Overflow {
        /// The last revision delivered to this watcher.
        last_delivered: u64,
    },
    /// This replica could not serve the watch (not caught up in time, shutting down, ...).
    #[error("watch unavailable: {0}")]
    Unavailable(String),
}

/// Source of historical commits for resumes that the in-memory cache cannot serve.
pub trait HistorySource: Send + Sync {
    /// The oldest revision a watch may resume after.
    fn floor(&self) -> u64;
    /// Commits with revisions in `(after, upto]`, in order.
    fn commits_between(&self, after: u64, upto: u64) -> Result<Vec<Arc<Commit>>, WatchError>;
}

/// A live watch. Call [`Watch::next`] until it returns `None` (ended by the store) or an error.
pub struct Watch {
    hub: Arc<Hub>,
    registration: Option<Registration>,
    filter: WatchFilter,
    backlog: VecDeque<WatchMessage>,
    progress_interval: Duration,
    last_revision: u64,
    /// Live commits at or below this were already seen by the client (it resumed ahead of this
    /// replica's registration point).
    skip_upto: u64,
    ended: bool,
}

impl Watch {
    /// Starts a watch (see the module docs for the guarantees).
    pub async fn start(
        hub: Arc<Hub>,
        history: &dyn HistorySource,
        req: WatchRequest,
        min_revision_timeout: Duration,
    ) -> Result<Watch, WatchError> {
        if let Some(min) = req.min_revision {
            let mut rx = hub.subscribe_revisions();
            let waited =
                tokio::time::timeout(min_revision_timeout, rx.wait_for(|r| *r >= min)).await;
            match waited {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(WatchError::Unavailable("store is shutting down".into())),
                Err(_) => {
                    return Err(WatchError::Unavailable(format!(
                        "this manager has applied revision {} but the watch needs at least {min}; retry or use another manager",
                        hub.published()
                    )))
                }
            }
        }
        let registration = hub
            .register(req.filter.clone(), req.buffer)
            .ok_or_else(|| WatchError::Unavailable("store is shutting down".into()))?;
        let at = registration.state.revision;
        let skip_upto = match req.start {
            WatchStart::After(after) => after,
            _ => 0,
        };
        let mut backlog = VecDeque::new();
        match req.start {
            WatchStart::Now => {}
            WatchStart::Snapshot => {
                backlog.push_back(WatchMessage::InitBegin { revision: at });
                let mut chunk = Vec::new();
                for o in registration.state.all_objects() {
                    if req.filter.matches_object(o) {
                        chunk.push(o.clone());
                        if chunk.len() == 1000 {
                            backlog
                                .push_back(WatchMessage::InitObjects(std::mem::take(&mut chunk)));
                        }
                    }
                }
                if !chunk.is_empty() {
                    backlog.push_back(WatchMessage::InitObjects(chunk));
                }
                backlog.push_back(WatchMessage::InitDone { revision: at });
            }
            WatchStart::After(after) => {
                if after < at {
                    let floor = history.floor();
                    if after < floor {
                        hub.unregister(registration.id);
                        return Err(WatchError::Compacted {
                            requested: after,
                            oldest: floor,
                            current: at,
                        });
                    }
                    let commits = match hub.recent_between(after, at) {
                        Some(c) => c,
                        None => match history.commits_between(after, at) {
                            Ok(c) => c,
                            Err(e) => {
                                hub.unregister(registration.id);
                                return Err(e);
                            }
                        },
                    };
                    for c in commits {
                        if let Some(restricted) = req.filter.restrict(&c) {
                            backlog.push_back(WatchMessage::Commit(Arc::new(restricted)));
                        }
                    }
                }
            }
        }
        Ok(Watch {
            hub,
            registration: Some(registration),
            filter: req.filter,
            backlog,
            progress_interval: req.progress_interval,
            last_revision: at.max(skip_upto),
            skip_upto,
            ended: false,
        })
    }

    /// The revision this watcher is up to date with (last delivered commit or progress).
    pub fn revision(&self) -> u64 {
        self.last_revision
    }

    fn deliver_live(&mut self, commit: Arc<Commit>) -> WatchMessage {
        self.last_revision = commit.revision;
        match self.filter.restrict(&commit) {
            Some(r) if r.events.len() == commit.events.len() => WatchMessage::Commit(commit),
            Some(r) => WatchMessage::Commit(Arc::new(r)),
            // The hub only sends matching commits, so this is unreachable in practice; report
            // it as progress rather than dropping the revision.
            None => WatchMessage::Progress {
                revision: commit.revision,
            },
        }
    }

    fn ended_error(&mut self) -> Option<Result<WatchMessage, WatchError>> {
        self.ended = true;
        let overflowed = self
            .registration
            .as_ref()
            .is_some_and(|r| r.overflowed.load(Ordering::Acquire));
        if overflowed {
            Some(Err(WatchError::Overflow {
                last_delivered: self.last_revision,
            }))
        } else {
            None
        }
    }

    /// The next message; `None` when the store ended the watch (shutdown or a snapshot install:
    /// resume with the last revision), `Some(Err)` for an explicit end.
    pub async fn next(&mut self) -> Option<Result<WatchMessage, WatchError>> {
        if self.ended {
            return None;
        }
        if let Some(m) = self.backlog.pop_front() {
            if let WatchMessage::Commit(c) = &m {
                self.last_revision = c.revision;
            }
            return Some(Ok(m));
        }
        loop {
            let reg = self.registration.as_mut()?;
            match tokio::time::timeout(self.progress_interval, reg.rx.recv()).await {
                Ok(Some(commit)) if commit.revision <= self.skip_upto => continue,
                Ok(Some(commit)) => return Some(Ok(self.deliver_live(commit))),
                Ok(None) => return self.ended_error(),
                Err(_) => {
                    // Read the published revision first, then make sure nothing is queued: every
                    // send for a revision <= published happened before it was published.
                    let published = self.hub.published();
                    match reg.rx.try_recv() {
                        Ok(commit) if commit.revision <= self.skip_upto => continue,
                        Ok(commit) => return Some(Ok(self.deliver_live(commit))),
                        Err(TryRecvError::Disconnected) => return self.ended_error(),
                        Err(TryRecvError::Empty) => {
                            if published > self.last_revision {
                                self.last_revision = published;
                            }
                            return Some(Ok(WatchMessage::Progress {
                                revision: self.last_revision,
                            }));
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(r) = &self.registration {
            self.hub.unregister(r.id);
        }
    }
}
