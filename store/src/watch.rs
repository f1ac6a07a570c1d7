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
//! - an object leaving the filter (labels, stack or name changed) arrives as the update that
//!   took it out; replayed history keeps no previous objects, so there every update or delete
//!   that may have taken an object out is delivered (never a missed exit, at worst an exit of
//!   an object the watcher never had);
//! - a watcher that falls more than its buffer behind is ended with [`WatchError::Overflow`]
//!   (after the messages it was already given), never silently skipped and never unbounded;
//! - `min_revision`: the stream starts only once this replica has applied that revision.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::error::TryRecvError;

use crate::hub::{Hub, Registration};
use crate::model::{Kind, Object, STACK_NAMESPACE_LABEL};
use crate::txn::{Action, Commit, Event};

/// Which changes a watcher wants. Empty lists mean "any". Conditions are ANDed.
///
/// `kinds`, `id`, `service_id` and `node_id` test what never changes once set (a task is never
/// re-targeted); `labels`, `stack` and `name_prefix` test what an update can change, so an object
/// can leave the filter: the watcher then gets that update (the object before it matched; see
/// [`WatchFilter::matches`]), and nothing more about the object until it matches again.
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
    /// Only objects carrying every one of these labels, each `key` (any value) or `key=value`
    /// (see [`Object::label`] for where a task's labels come from).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only objects of this stack: their [`STACK_NAMESPACE_LABEL`] equals it.
    #[serde(default)]
    pub stack: Option<String>,
    /// Only objects whose name starts with this ([`Object::display_name`]; a node also
    /// matches by its hostname).
    #[serde(default)]
    pub name_prefix: Option<String>,
}

/// Whether `o` carries `selector`: `key` (any value) or `key=value`.
fn has_label(o: &Object, selector: &str) -> bool {
    match selector.split_once('=') {
        Some((key, value)) => o.label(key) == Some(value),
        None => o.label(selector).is_some(),
    }
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

    /// Whether any condition tests what an update can change (labels, stack, name).
    pub fn has_mutable_conditions(&self) -> bool {
        !self.labels.is_empty() || self.stack.is_some() || self.name_prefix.is_some()
    }

    /// The conditions on what never changes once set.
    fn matches_fixed(&self, o: &Object) -> bool {
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
            // A task's node is set once, when it is scheduled: a task that is not on this node
            // now never was.
            if self.node_id.as_ref().is_some_and(|n| &t.node_id != n) {
                return false;
            }
        }
        true
    }

    /// The conditions on what an update can change.
    fn matches_mutable(&self, o: &Object) -> bool {
        if !self.labels.iter().all(|l| has_label(o, l)) {
            return false;
        }
        if let Some(stack) = &self.stack {
            if o.label(STACK_NAMESPACE_LABEL) != Some(stack.as_str()) {
                return false;
            }
        }
        if let Some(prefix) = &self.name_prefix {
            let by_hostname =
                matches!(o, Object::Node(n) if n.description.hostname.starts_with(prefix.as_str()));
            if !o.display_name().starts_with(prefix.as_str()) && !by_hostname {
                return false;
            }
        }
        true
    }

    /// Whether an object (as of some revision) passes the object-level conditions.
    pub fn matches_object(&self, o: &Object) -> bool {
        self.matches_fixed(o) && self.matches_mutable(o)
    }

    /// Whether an event passes: its action is wanted and its object (or the object before it)
    /// passes, so a watcher also sees an object leaving its filter.
    pub fn matches(&self, e: &Event) -> bool {
        if !self.actions.is_empty() && !self.actions.contains(&e.action) {
            return false;
        }
        self.matches_object(&e.object) || e.prev.as_deref().is_some_and(|p| self.matches_object(p))
    }

    /// Like [`WatchFilter::matches`] for an event whose previous object is unknown (history
    /// read from disk keeps none): it also passes when the object before it may have matched,
    /// i.e. the event may be the one that took the object out of the filter. Such an event may
    /// reach a watcher that never had the object; it can never be missed.
    fn may_match(&self, e: &Event) -> bool {
        if self.matches(e) {
            return true;
        }
        e.prev.is_none()
            && e.action != Action::Create
            && self.has_mutable_conditions()
            && (self.actions.is_empty() || self.actions.contains(&e.action))
            && self.matches_fixed(&e.object)
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

    /// [`WatchFilter::restrict`] for replayed history: events read from disk have no previous
    /// object, so it is taken from the replay itself (`seen`: the last object of each key
    /// replayed so far); where the replay has none either, [`WatchFilter::may_match`] decides.
    fn restrict_replayed(
        &self,
        commit: &Commit,
        seen: &mut HashMap<(Kind, String), Arc<Object>>,
    ) -> Option<Commit> {
        if !self.has_mutable_conditions() {
            // Fixed conditions decide the same with or without the previous object.
            return self.restrict(commit);
        }
        let mut events = Vec::new();
        for e in &commit.events {
            let key = (e.kind(), e.object.id().to_string());
            let prev = match e.prev.clone() {
                Some(p) => Some(p),
                None => seen.get(&key).cloned(),
            };
            if e.action == Action::Delete {
                seen.remove(&key);
            } else {
                seen.insert(key, e.object.clone());
            }
            let e = Event {
                action: e.action,
                object: e.object.clone(),
                prev,
            };
            if self.may_match(&e) {
                events.push(e);
            }
        }
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
                    let mut seen = HashMap::new();
                    for c in commits {
                        if let Some(restricted) = req.filter.restrict_replayed(&c, &mut seen) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn obj(kind: &str, json: serde_json::Value) -> Arc<Object> {
        Arc::new(serde_json::from_value(serde_json::json!({"Kind": kind, "Object": json})).unwrap())
    }

    fn service(id: &str, name: &str, labels: serde_json::Value) -> Arc<Object> {
        obj(
            "Service",
            serde_json::json!({"ID": id, "Spec": {"Name": name, "Labels": labels}}),
        )
    }

    fn stack_task(id: &str, service_name: &str, node: &str, stack: &str) -> Arc<Object> {
        obj(
            "Task",
            serde_json::json!({
                "ID": id, "ServiceID": "svc", "ServiceName": service_name, "Slot": 1, "NodeID": node,
                "Spec": {"ContainerSpec": {"Image": "busybox", "Labels": {STACK_NAMESPACE_LABEL: stack}}},
            }),
        )
    }

    fn event(action: Action, object: Arc<Object>, prev: Option<Arc<Object>>) -> Event {
        Event {
            action,
            object,
            prev,
        }
    }

    fn filter(f: impl FnOnce(&mut WatchFilter)) -> WatchFilter {
        let mut w = WatchFilter::all();
        f(&mut w);
        w
    }

    #[test]
    fn labels_match_by_key_or_key_and_value_and_all_must_match() {
        let s = service(
            "s1",
            "web",
            serde_json::json!({"tier": "front", "team": "a"}),
        );
        let by_key = filter(|f| f.labels = vec!["tier".into()]);
        assert!(by_key.matches_object(&s));
        let by_value = filter(|f| f.labels = vec!["tier=front".into(), "team=a".into()]);
        assert!(by_value.matches_object(&s));
        let wrong_value = filter(|f| f.labels = vec!["tier=back".into()]);
        assert!(!wrong_value.matches_object(&s));
        let one_missing = filter(|f| f.labels = vec!["tier".into(), "owner".into()]);
        assert!(!one_missing.matches_object(&s));
        // `key=` asks for an empty value, not for any value.
        let empty_value = filter(|f| f.labels = vec!["tier=".into()]);
        assert!(!empty_value.matches_object(&s));
    }

    #[test]
    fn stack_matches_objects_and_tasks_through_their_container_labels() {
        let st = filter(|f| f.stack = Some("st".into()));
        let in_stack = service(
            "s1",
            "st_web",
            serde_json::json!({STACK_NAMESPACE_LABEL: "st"}),
        );
        let other = service(
            "s2",
            "other_web",
            serde_json::json!({STACK_NAMESPACE_LABEL: "other"}),
        );
        let unlabelled = service("s3", "st_lookalike", serde_json::json!({}));
        assert!(st.matches_object(&in_stack));
        assert!(!st.matches_object(&other));
        assert!(
            !st.matches_object(&unlabelled),
            "the stack is the label, not a name prefix"
        );
        assert!(st.matches_object(&stack_task("t1", "st_web", "n1", "st")));
        assert!(!st.matches_object(&stack_task("t2", "other_web", "n1", "other")));
    }

    #[test]
    fn name_prefix_uses_display_names_and_node_hostnames() {
        let p = filter(|f| f.name_prefix = Some("st_".into()));
        assert!(p.matches_object(&service("s1", "st_web", serde_json::json!({}))));
        assert!(!p.matches_object(&service("s2", "web", serde_json::json!({}))));
        // A task is named after its service: service.slot.id.
        let t = stack_task("t1", "st_web", "n1", "st");
        assert_eq!(t.display_name(), "st_web.1.t1");
        assert!(p.matches_object(&t));
        let node = obj(
            "Node",
            serde_json::json!({"ID": "n1", "Spec": {"Name": "db1"}, "Description": {"Hostname": "st_host"}}),
        );
        assert_eq!(node.display_name(), "db1");
        assert!(
            p.matches_object(&node),
            "a node matches by its hostname too"
        );
        assert!(filter(|f| f.name_prefix = Some("db".into())).matches_object(&node));
        assert!(!filter(|f| f.name_prefix = Some("x".into())).matches_object(&node));
    }

    #[test]
    fn node_keeps_only_tasks_on_that_node_and_conditions_are_anded() {
        let f = filter(|f| {
            f.node_id = Some("n1".into());
            f.stack = Some("st".into());
        });
        assert!(f.matches_object(&stack_task("t1", "st_web", "n1", "st")));
        assert!(!f.matches_object(&stack_task("t2", "st_web", "n2", "st")));
        assert!(!f.matches_object(&stack_task("t3", "x_web", "n1", "x")));
        assert!(!f.matches_object(&service(
            "s1",
            "st_web",
            serde_json::json!({STACK_NAMESPACE_LABEL: "st"})
        )));
    }

    #[test]
    fn an_object_leaving_the_filter_is_delivered_live() {
        let f = filter(|f| f.labels = vec!["tier=front".into()]);
        let before = service("s1", "web", serde_json::json!({"tier": "front"}));
        let after = service("s1", "web", serde_json::json!({"tier": "back"}));
        assert!(f.matches(&event(Action::Update, after.clone(), Some(before))));
        let unrelated = service("s1", "web", serde_json::json!({"tier": "middle"}));
        assert!(!f.matches(&event(Action::Update, after, Some(unrelated))));
    }

    #[test]
    fn replayed_history_never_misses_an_exit() {
        let f = filter(|f| f.labels = vec!["tier=front".into()]);
        let front = service("s1", "web", serde_json::json!({"tier": "front"}));
        let back = service("s1", "web", serde_json::json!({"tier": "back"}));
        let middle = service("s1", "web", serde_json::json!({"tier": "middle"}));
        let other = service("s2", "db", serde_json::json!({"tier": "back"}));
        let commit = |revision, events| Commit {
            revision,
            at: Timestamp::now(),
            events,
        };
        let mut seen = HashMap::new();
        // First change of s1 in the replay, previous object unknown: it may be the exit.
        let c1 = commit(10, vec![event(Action::Update, back.clone(), None)]);
        let r1 = f
            .restrict_replayed(&c1, &mut seen)
            .expect("a possible exit is delivered");
        assert_eq!(r1.events.len(), 1);
        // Later changes know the previous object from the replay: back -> middle never matched.
        let c2 = commit(11, vec![event(Action::Update, middle.clone(), None)]);
        assert!(f.restrict_replayed(&c2, &mut seen).is_none());
        // An entry is delivered with the object before it.
        let c3 = commit(12, vec![event(Action::Update, front.clone(), None)]);
        let r3 = f.restrict_replayed(&c3, &mut seen).unwrap();
        assert_eq!(r3.events[0].prev.as_deref(), Some(middle.as_ref()));
        // ... and so is the exit that follows it.
        let c4 = commit(13, vec![event(Action::Update, back.clone(), None)]);
        assert!(f.restrict_replayed(&c4, &mut seen).is_some());
        // Creates of objects that do not match are never exits.
        let c5 = commit(14, vec![event(Action::Create, other, None)]);
        assert!(f.restrict_replayed(&c5, &mut seen).is_none());
        // Without conditions on mutable fields nothing extra is delivered.
        let kinds = WatchFilter::kinds([Kind::Task]);
        let mut seen = HashMap::new();
        assert!(kinds.restrict_replayed(&c1, &mut seen).is_none());
    }
}
