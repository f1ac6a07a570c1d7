//! The work queue of one controller: which keys to reconcile, and when.
//!
//! - Requests for a key are merged: one entry per key, due at the earliest requested time (an
//!   event overtakes a long retry timer).
//! - Change triggers are debounced on the trailing edge, but never later than `max_latency`
//!   after the first trigger, so a hot key (a node heart-beating its status) is not starved.
//! - A key is never handed out while a reconcile of it runs; requests that arrive meanwhile
//!   wait and are handed out when it finishes.
//! - Read-your-writes: after a reconcile wrote at revision r, the key is not handed out again
//!   until the cache has reached r, so a reconcile never acts on state older than its own writes.
//!   Likewise a key queued by the change at revision r waits for a cache at r or later.
//! - Errors back off exponentially per key (with jitter); a success resets the count.
//!
//! The queue is plain data driven with explicit instants, so it is tested without a runtime.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::backoff::Backoff;

/// Why a key was queued (kept as a set, for logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reasons(u8);

impl Reasons {
    /// A watched object changed.
    pub const CHANGE: Reasons = Reasons(1);
    /// The reconciler asked to run again later.
    pub const REQUEUE: Reasons = Reasons(2);
    /// The last reconcile failed.
    pub const RETRY: Reasons = Reasons(4);
    /// Full pass (start, relist).
    pub const RESYNC: Reasons = Reasons(8);

    fn add(&mut self, other: Reasons) {
        self.0 |= other.0;
    }

    /// Whether `other` is among the reasons.
    pub fn contains(&self, other: Reasons) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::fmt::Display for Reasons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Self::CHANGE, "change"),
            (Self::REQUEUE, "requeue"),
            (Self::RETRY, "retry"),
            (Self::RESYNC, "resync"),
        ];
        let mut first = true;
        for (r, name) in names {
            if self.contains(r) {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// How the queue debounces triggers and backs off errors.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Trailing-edge debounce of change triggers (zero: none).
    pub debounce: Duration,
    /// Upper bound on how long debouncing may delay a key after its first trigger.
    pub max_latency: Duration,
    /// Retry delays after errors.
    pub backoff: Backoff,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            debounce: Duration::ZERO,
            max_latency: Duration::from_secs(1),
            backoff: Backoff::default(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    due: Instant,
    seq: u64,
    explicit: Option<Instant>,
    debounced: Option<Instant>,
    first_trigger: Option<Instant>,
    reasons: Reasons,
}

/// How a reconcile ended, as the queue needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded; run again after this long (`None`: only on a change).
    Done(Option<Duration>),
    /// Failed: retry with backoff.
    Failed,
}

/// The pending work of one controller.
#[derive(Debug)]
pub struct WorkQueue<K> {
    config: QueueConfig,
    entries: HashMap<K, Entry>,
    /// Entries that may be handed out, by due time (neither running nor gated).
    ready: BTreeSet<(Instant, u64, K)>,
    running: HashSet<K>,
    /// Queued keys held back until the cache reaches their gate revision.
    held: HashSet<K>,
    gates: HashMap<K, u64>,
    failures: HashMap<K, u32>,
    seq: u64,
}

impl<K: Clone + Eq + Hash + Ord + Debug> WorkQueue<K> {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        WorkQueue {
            config,
            entries: HashMap::new(),
            ready: BTreeSet::new(),
            running: HashSet::new(),
            held: HashSet::new(),
            gates: HashMap::new(),
            failures: HashMap::new(),
            seq: 0,
        }
    }

    fn entry(&mut self, key: &K, now: Instant) -> &mut Entry {
        if !self.entries.contains_key(key) {
            self.seq += 1;
            self.entries.insert(
                key.clone(),
                Entry {
                    due: now,
                    seq: self.seq,
                    explicit: None,
                    debounced: None,
                    first_trigger: None,
                    reasons: Reasons::default(),
                },
            );
        }
        self.entries.get_mut(key).expect("just inserted")
    }

    /// Re-files a key after its entry's due time changed.
    fn refile(&mut self, key: &K, old: Option<(Instant, u64)>) {
        if let Some((due, seq)) = old {
            self.ready.remove(&(due, seq, key.clone()));
        }
        if self.running.contains(key) || self.held.contains(key) {
            return;
        }
        if let Some(e) = self.entries.get(key) {
            self.ready.insert((e.due, e.seq, key.clone()));
        }
    }

    fn filed_at(&self, key: &K) -> Option<(Instant, u64)> {
        if self.running.contains(key) || self.held.contains(key) {
            return None;
        }
        self.entries.get(key).map(|e| (e.due, e.seq))
    }

    /// A watched change affects `key`: queue it (debounced).
    pub fn trigger(&mut self, key: &K, now: Instant, reason: Reasons) {
        let old = self.filed_at(key);
        let QueueConfig {
            debounce,
            max_latency,
            ..
        } = self.config;
        let e = self.entry(key, now);
        let first = *e.first_trigger.get_or_insert(now);
        let at = if debounce.is_zero() {
            now
        } else {
            (now + debounce).min(first + max_latency)
        };
        e.debounced = Some(at);
        e.due = e.explicit.map_or(at, |x| x.min(at));
        e.reasons.add(reason);
        self.refile(key, old);
    }

    /// Queues `key` to run at `at` (or earlier if something else asks for earlier).
    pub fn schedule(&mut self, key: &K, at: Instant, reason: Reasons) {
        let old = self.filed_at(key);
        let e = self.entry(key, at);
        let explicit = e.explicit.map_or(at, |x| x.min(at));
        e.explicit = Some(explicit);
        e.due = e.debounced.map_or(explicit, |d| d.min(explicit));
        e.reasons.add(reason);
        self.refile(key, old);
    }

    /// Holds `key` back until the cache has reached `revision` (the revision of the change that
    /// queued it, or of the key's own last write).
    pub fn require(&mut self, key: &K, revision: u64) {
        if revision == 0 {
            return;
        }
        let gate = self.gates.entry(key.clone()).or_insert(0);
        *gate = (*gate).max(revision);
    }

    /// The next key due at `now` whose gate the cache (at `cache_revision`) has reached; it is
    /// marked running until [`WorkQueue::finish`].
    pub fn pop(&mut self, now: Instant, cache_revision: u64) -> Option<(K, Reasons)> {
        loop {
            let (due, seq, key) = self.ready.first()?.clone();
            if due > now {
                return None;
            }
            self.ready.remove(&(due, seq, key.clone()));
            match self.gates.get(&key) {
                Some(gate) if *gate > cache_revision => {
                    self.held.insert(key);
                    continue;
                }
                Some(_) => {
                    self.gates.remove(&key);
                }
                None => {}
            }
            let entry = self.entries.remove(&key).expect("ready keys have entries");
            self.running.insert(key.clone());
            return Some((key, entry.reasons));
        }
    }

    /// The cache reached `revision`: release the keys that waited for it.
    pub fn cache_advanced(&mut self, revision: u64) {
        if self.held.is_empty() {
            return;
        }
        let released: Vec<K> = self
            .held
            .iter()
            .filter(|k| self.gates.get(*k).is_none_or(|g| *g <= revision))
            .cloned()
            .collect();
        for key in released {
            self.held.remove(&key);
            self.gates.remove(&key);
            self.refile(&key, None);
        }
    }

    /// A reconcile of `key` ended. `written` is the highest revision it wrote (0: none), or the
    /// revision its rejected write showed the store to be at; the key's next run waits for the
    /// cache to reach it.
    pub fn finish(&mut self, key: &K, now: Instant, outcome: Outcome, written: u64) {
        self.running.remove(key);
        self.require(key, written);
        match outcome {
            Outcome::Done(again) => {
                self.failures.remove(key);
                if let Some(after) = again {
                    self.schedule(key, now + after, Reasons::REQUEUE);
                }
            }
            Outcome::Failed => {
                let n = self.failures.entry(key.clone()).or_insert(0);
                *n = n.saturating_add(1);
                let delay = self.config.backoff.delay(*n);
                self.schedule(key, now + delay, Reasons::RETRY);
            }
        }
        // Requests that arrived while it ran become eligible again.
        self.refile(key, None);
    }

    /// Consecutive failures of a key.
    pub fn failures(&self, key: &K) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// When the next key is due, if any is ready.
    pub fn next_due(&self) -> Option<Instant> {
        self.ready.first().map(|(d, _, _)| *d)
    }

    /// Whether some key waits for the cache to catch up.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Keys queued (ready, held, or waiting for their running reconcile).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a reconcile of `key` is running.
    pub fn is_running(&self, key: &K) -> bool {
        self.running.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn queue(debounce: u64, max_latency: u64) -> WorkQueue<&'static str> {
        WorkQueue::new(QueueConfig {
            debounce: ms(debounce),
            max_latency: ms(max_latency),
            backoff: Backoff {
                initial: ms(100),
                max: ms(1000),
            },
        })
    }

    #[test]
    fn requests_for_a_key_merge_and_the_earliest_time_wins() {
        let t0 = Instant::now();
        let mut q = queue(0, 1000);
        q.schedule(&"a", t0 + ms(500), Reasons::REQUEUE);
        q.schedule(&"a", t0 + ms(900), Reasons::REQUEUE);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_due(), Some(t0 + ms(500)));
        assert!(q.pop(t0 + ms(100), 0).is_none());
        // A change overtakes the timer.
        q.trigger(&"a", t0 + ms(100), Reasons::CHANGE);
        let (k, why) = q.pop(t0 + ms(100), 0).unwrap();
        assert_eq!(k, "a");
        assert!(why.contains(Reasons::CHANGE) && why.contains(Reasons::REQUEUE));
        assert!(q.is_empty());
    }

    #[test]
    fn a_running_key_is_not_handed_out_until_it_finishes() {
        let t0 = Instant::now();
        let mut q = queue(0, 1000);
        q.trigger(&"a", t0, Reasons::CHANGE);
        assert_eq!(q.pop(t0, 0).unwrap().0, "a");
        q.trigger(&"a", t0, Reasons::CHANGE);
        q.trigger(&"b", t0, Reasons::CHANGE);
        // "a" is running: only "b" comes out.
        assert_eq!(q.pop(t0, 0).unwrap().0, "b");
        assert!(q.pop(t0, 0).is_none());
        q.finish(&"a", t0, Outcome::Done(None), 0);
        assert_eq!(q.pop(t0, 0).unwrap().0, "a");
    }

    #[test]
    fn debounce_is_trailing_but_capped_by_max_latency() {
        let t0 = Instant::now();
        let mut q = queue(50, 200);
        q.trigger(&"n", t0, Reasons::CHANGE);
        assert_eq!(q.next_due(), Some(t0 + ms(50)));
        // Keeps moving while changes keep coming ...
        q.trigger(&"n", t0 + ms(40), Reasons::CHANGE);
        assert_eq!(q.next_due(), Some(t0 + ms(90)));
        for i in 1..10 {
            q.trigger(&"n", t0 + ms(40 * i), Reasons::CHANGE);
        }
        // ... but never past first trigger + max latency.
        assert_eq!(q.next_due(), Some(t0 + ms(200)));
        assert!(q.pop(t0 + ms(199), 0).is_none());
        assert!(q.pop(t0 + ms(200), 0).is_some());
    }

    #[test]
    fn read_your_writes_holds_a_key_until_the_cache_catches_up() {
        let t0 = Instant::now();
        let mut q = queue(0, 1000);
        q.trigger(&"s", t0, Reasons::CHANGE);
        q.pop(t0, 10).unwrap();
        // The reconcile wrote at revision 15 and wants to run again right away.
        q.finish(&"s", t0, Outcome::Done(Some(Duration::ZERO)), 15);
        assert!(
            q.pop(t0, 12).is_none(),
            "cache at 12 is older than our write"
        );
        assert!(q.has_held());
        q.cache_advanced(14);
        assert!(q.pop(t0, 14).is_none());
        q.cache_advanced(15);
        assert_eq!(q.pop(t0, 15).unwrap().0, "s");
        // The gate is spent once satisfied.
        q.finish(&"s", t0, Outcome::Done(Some(Duration::ZERO)), 0);
        assert!(q.pop(t0, 0).is_some());
    }

    #[test]
    fn failures_back_off_exponentially_and_success_resets() {
        let t0 = Instant::now();
        let mut q = queue(0, 1000);
        q.trigger(&"k", t0, Reasons::CHANGE);
        let mut now = t0;
        let mut last_delay = Duration::ZERO;
        for n in 1..=4u32 {
            q.pop(now, 0).unwrap();
            q.finish(&"k", now, Outcome::Failed, 0);
            assert_eq!(q.failures(&"k"), n);
            let due = q.next_due().unwrap();
            let delay = due - now;
            let nominal = ms(100) * (1 << (n - 1));
            assert!(delay <= nominal && delay >= nominal / 2, "{delay:?}");
            assert!(n == 1 || delay >= last_delay / 2);
            last_delay = delay;
            now = due;
        }
        q.pop(now, 0).unwrap();
        q.finish(&"k", now, Outcome::Done(None), 0);
        assert_eq!(q.failures(&"k"), 0);
        assert!(q.is_empty());
    }
}
