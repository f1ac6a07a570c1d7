//! The reflector: one store watch (snapshot, then live commits) feeding the shared cache and
//! every controller's queue.
//!
//! One watch and one cache serve all controllers of a leader term (kube-runtime gives each
//! controller its own, which multiplies memory). Each commit is applied to the cache, the
//! controllers observe it (updating derived state and queueing keys gated on its revision),
//! and then the snapshot is published, so a key queued by revision r is always reconciled on a
//! cache at r or later and on derived state at least as new. Commits already waiting are
//! applied together before one publication, which keeps copy-on-write work per commit low
//! when the store is busy.
//!
//! A watch that ends is resumed after the last revision applied; if the store's history no
//! longer reaches back that far (compacted), the reflector relists and every controller does a
//! full pass, so nothing that happened in between, deletes included, is missed.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use shoal_store::{Commit, Store, WatchError, WatchFilter, WatchMessage, WatchRequest, WatchStart};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::cache::{Cache, WATCHED_KINDS};
use super::controller::Observer;

/// Most commits applied between two publications of the cache.
const MAX_COMMITS_PER_PUBLISH: usize = 64;

/// Feeds the cache and the controllers from a store watch.
pub struct Reflector {
    store: Store,
    observers: Vec<Arc<dyn Observer>>,
    cache: watch::Sender<Cache>,
    backoff: Backoff,
}

enum Ended {
    Stopped,
    Resume(WatchStart),
}

impl Reflector {
    /// A reflector publishing into `cache`.
    pub fn new(
        store: Store,
        observers: Vec<Arc<dyn Observer>>,
        cache: watch::Sender<Cache>,
    ) -> Self {
        Reflector {
            store,
            observers,
            cache,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
        }
    }

    fn request(start: WatchStart, min_revision: u64) -> WatchRequest {
        WatchRequest::new(start)
            .filter(WatchFilter::kinds(WATCHED_KINDS))
            .min_revision(min_revision)
            .buffer(8192)
            .progress_interval(Duration::from_secs(1))
    }

    /// Runs until `stop` turns true. The first snapshot is taken at `min_revision` or later (the
    /// new leader's read index), so it includes every write of earlier leaders.
    pub async fn run(self, min_revision: u64, mut stop: watch::Receiver<bool>) {
        let mut cache = Cache::new();
        let mut start = WatchStart::Snapshot;
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let floor = min_revision.max(cache.revision());
            let opened = tokio::select! {
                _ = stop.changed() => return,
                w = self.store.watch(Self::request(start, floor)) => w,
            };
            let ended = match opened {
                Ok(w) => {
                    failures = 0;
                    self.follow(w, &mut cache, &mut stop).await
                }
                Err(WatchError::Compacted { .. }) => Ended::Resume(WatchStart::Snapshot),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "controllers' watch could not start; retrying");
                    let delay = self.backoff.delay(failures);
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    Ended::Resume(start)
                }
            };
            match ended {
                Ended::Stopped => return,
                Ended::Resume(next) => start = next,
            }
        }
    }

    fn publish(&self, cache: &Cache) {
        self.cache.send_replace(cache.clone());
    }

    fn apply(&self, cache: &mut Cache, commit: &Commit) {
        for e in &commit.events {
            cache.apply(e);
        }
        cache.set_revision(commit.revision);
        for o in &self.observers {
            o.observe_commit(commit, cache);
        }
    }

    async fn follow(
        &self,
        mut w: shoal_store::Watch,
        cache: &mut Cache,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut building: Option<Cache> = None;
        // Once a snapshot has been applied, a broken watch resumes after the cache's revision.
        let resume = |c: &Cache| {
            if c.revision() > 0 {
                WatchStart::After(c.revision())
            } else {
                WatchStart::Snapshot
            }
        };
        let mut pending = None;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => tokio::select! {
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            return Ended::Stopped;
                        }
                        continue;
                    }
                    m = w.next() => m,
                },
            };
            match msg {
                None => return Ended::Resume(resume(cache)),
                Some(Err(WatchError::Compacted { .. })) => {
                    return Ended::Resume(WatchStart::Snapshot)
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e, "controllers' watch ended; resuming");
                    return Ended::Resume(resume(cache));
                }
                Some(Ok(WatchMessage::InitBegin { .. })) => building = Some(Cache::new()),
                Some(Ok(WatchMessage::InitObjects(objects))) => {
                    let b = building.get_or_insert_with(Cache::new);
                    for o in objects {
                        b.put(o);
                    }
                }
                Some(Ok(WatchMessage::InitDone { revision })) => {
                    let mut fresh = building.take().unwrap_or_default();
                    fresh.set_revision(revision);
                    *cache = fresh;
                    for o in &self.observers {
                        o.resync(cache);
                    }
                    self.publish(cache);
                }
                Some(Ok(WatchMessage::Commit(commit))) => {
                    self.apply(cache, &commit);
                    // Take the commits already waiting before publishing once.
                    let mut more = 0;
                    while more < MAX_COMMITS_PER_PUBLISH {
                        match w.next().now_or_never() {
                            Some(Some(Ok(WatchMessage::Commit(c)))) => self.apply(cache, &c),
                            Some(Some(Ok(WatchMessage::Progress { revision }))) => {
                                cache.set_revision(revision)
                            }
                            Some(other) => {
                                pending = Some(other);
                                break;
                            }
                            None => break,
                        }
                        more += 1;
                    }
                    self.publish(cache);
                }
                Some(Ok(WatchMessage::Progress { revision })) => {
                    if revision > cache.revision() && building.is_none() {
                        cache.set_revision(revision);
                        self.publish(cache);
                    }
                }
            }
        }
    }
}
