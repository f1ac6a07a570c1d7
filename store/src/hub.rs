//! The commit hub: the current state and the watchers subscribed to it, changed together.
//!
//! Apply publishes each revision here under one lock: it swaps in the new state, then offers the
//! commit to every subscriber whose filter it matches, then advances `published`. Registering a
//! watcher takes the same lock, so a watcher sees exactly the revisions after the state (or the
//! revision) it registered at: no gap, no duplicate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, watch};

use crate::state::State;
use crate::txn::Commit;
use crate::watch::WatchFilter;

/// Most events the in-memory commit cache holds (each carries the object and its previous
/// version); resumes from further back read the history from disk.
const MAX_RECENT_EVENTS: usize = 16_384;

/// A registered watcher's end of the hub.
struct Subscriber {
    id: u64,
    filter: WatchFilter,
    tx: mpsc::Sender<Arc<Commit>>,
    overflowed: Arc<AtomicBool>,
}

/// What a watcher gets when it registers.
pub(crate) struct Registration {
    /// Live commits after `revision`.
    pub rx: mpsc::Receiver<Arc<Commit>>,
    /// Set when the hub dropped the watcher because its buffer was full.
    pub overflowed: Arc<AtomicBool>,
    /// The state at registration time.
    pub state: Arc<State>,
    /// The id to unregister with.
    pub id: u64,
}

struct Inner {
    state: Arc<State>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    /// Recent commits kept in memory to serve resumes without touching disk.
    recent: VecDeque<Arc<Commit>>,
    /// Events in `recent`: bounded too, since one commit of a busy store carries many.
    recent_events: usize,
    /// Set when the hub is closed (store shut down or state replaced by a snapshot).
    closed: bool,
}

/// Publishes applied revisions to readers and watchers.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Readers clone the current state from here without contending with the subscriber list.
    current: RwLock<Arc<State>>,
    /// The last revision fully offered to every subscriber.
    published: AtomicU64,
    /// Applied-revision signal for `wait_for_revision`.
    applied_tx: watch::Sender<u64>,
    recent_capacity: usize,
}

impl Hub {
    /// A hub starting from `state`.
    pub fn new(state: Arc<State>, recent_capacity: usize) -> Self {
        let revision = state.revision;
        let (applied_tx, _) = watch::channel(revision);
        Hub {
            inner: Mutex::new(Inner {
                state: state.clone(),
                subscribers: Vec::new(),
                next_id: 1,
                recent: VecDeque::new(),
                recent_events: 0,
                closed: false,
            }),
            current: RwLock::new(state),
            published: AtomicU64::new(revision),
            applied_tx,
            recent_capacity,
        }
    }

    /// The current state.
    pub fn state(&self) -> Arc<State> {
        self.current.read().expect("hub state lock").clone()
    }

    /// The last published revision.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// A receiver that sees every published revision.
    pub fn subscribe_revisions(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Publishes a new state and the commits that led to it, in revision order (entries that
    /// changed no object, such as Raft membership or blank entries, have no commit: they only
    /// advance the revision).
    pub fn publish(&self, state: Arc<State>, commits: Vec<Arc<Commit>>) {
        let revision = state.revision;
        let mut inner = self.inner.lock().expect("hub lock");
        inner.state = state.clone();
        *self.current.write().expect("hub state lock") = state;
        for commit in commits {
            inner.subscribers.retain(|sub| {
                if !commit.events.iter().any(|e| sub.filter.matches(e)) {
                    return !sub.tx.is_closed();
                }
                match sub.tx.try_send(commit.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        sub.overflowed.store(true, Ordering::Release);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            if self.recent_capacity > 0 {
                inner.recent_events += commit.events.len();
                inner.recent.push_back(commit);
                while inner.recent.len() > self.recent_capacity
                    || (inner.recent_events > MAX_RECENT_EVENTS && inner.recent.len() > 1)
                {
                    if let Some(old) = inner.recent.pop_front() {
                        inner.recent_events -= old.events.len();
                    }
                }
            }
        }
        // Release: every send above happens-before a watcher that reads this revision.
        self.published.store(revision, Ordering::Release);
        self.applied_tx.send_replace(revision);
    }

    /// Replaces the whole state (snapshot install): every watcher is ended, since the revisions
    /// between its position and the snapshot are not available as events.
    pub fn reset(&self, state: Arc<State>) {
        let revision = state.revision;
        let mut inner = self.inner.lock().expect("hub lock");
        inner.state = state.clone();
        *self.current.write().expect("hub state lock") = state;
        inner.subscribers.clear();
        inner.recent.clear();
        inner.recent_events = 0;
        self.published.store(revision, Ordering::Release);
        self.applied_tx.send_replace(revision);
    }

    /// Ends every watcher and refuses new ones (store shutdown).
    pub fn close(&self) {
        let mut inner = self.inner.lock().expect("hub lock");
        inner.closed = true;
        inner.subscribers.clear();
    }

    /// Registers a watcher with a buffer of `capacity` commits. Returns `None` once closed.
    pub(crate) fn register(&self, filter: WatchFilter, capacity: usize) -> Option<Registration> {
        let mut inner = self.inner.lock().expect("hub lock");
        if inner.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subscribers.push(Subscriber {
            id,
            filter,
            tx,
            overflowed: overflowed.clone(),
        });
        Some(Registration {
            rx,
            overflowed,
            state: inner.state.clone(),
            id,
        })
    }

    /// Removes a watcher.
    pub(crate) fn unregister(&self, id: u64) {
        let mut inner = self.inner.lock().expect("hub lock");
        inner.subscribers.retain(|s| s.id != id);
    }

    /// Commits in `(after, upto]` if the in-memory cache covers that whole range.
    pub(crate) fn recent_between(&self, after: u64, upto: u64) -> Option<Vec<Arc<Commit>>> {
        let inner = self.inner.lock().expect("hub lock");
        let first = inner.recent.front()?;
        // The cache covers `after` only if it holds the first commit after it; revisions with no
        // events are not commits, so require the cache to start at or before `after + 1`.
        if first.revision > after + 1 && after < upto {
            return None;
        }
        Some(
            inner
                .recent
                .iter()
                .filter(|c| c.revision > after && c.revision <= upto)
                .cloned()
                .collect(),
        )
    }

    /// Number of registered watchers.
    pub fn watcher_count(&self) -> usize {
        self.inner.lock().expect("hub lock").subscribers.len()
    }
}
