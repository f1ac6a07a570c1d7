//! Node liveness on the leader: which nodes hold a session, and when each one must have sent its
//! next heartbeat. Pure bookkeeping with an injected clock (every call takes `now`), so the
//! expiry rules are tested without waiting; the term's sweeper calls [`Registry::expire`].
//!
//! Deadlines:
//! - a registered node must heartbeat within `period x heartbeat_multiplier` (3: SwarmKit's);
//! - a node that exists but has no session here (every node when a term starts, a node that
//!   just joined) gets `period x grace_multiplier` to register, so a leader change does not mark
//!   healthy nodes DOWN before they had a chance to reconnect.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// The liveness rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The swarm's heartbeat period (`Dispatcher.HeartbeatPeriod`).
    pub period: Duration,
    /// A registered node is DOWN after `period x heartbeat_multiplier` without a heartbeat.
    pub heartbeat_multiplier: u32,
    /// A node without a session (after a leader change, or just joined) is DOWN after
    /// `period x grace_multiplier`.
    pub grace_multiplier: u32,
}

impl Liveness {
    /// How long a registered node may stay silent.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.period * self.heartbeat_multiplier
    }

    /// How long a node without a session has to register.
    pub fn grace(&self) -> Duration {
        self.period * self.grace_multiplier
    }

    /// The period an agent is told to wait: the swarm's period +-10 %, drawn per heartbeat so
    /// thousands of agents that registered together spread out (SwarmKit: 5 s +- 0.5 s).
    pub fn jittered_period(&self) -> Duration {
        let factor = rand::rng().random_range(0.9..=1.1);
        self.period.mul_f64(factor)
    }
}

/// Why a heartbeat or call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotRegistered {
    /// The node has no session here.
    NoSession,
    /// The node has another session (it re-registered, or this one expired).
    WrongSession,
}

struct Entry<S> {
    deadline: Instant,
    session: Option<(String, S)>,
}

/// Nodes known to the leader's dispatcher, with their sessions (`S`: whatever the caller keeps
/// per session, e.g. the channel of its stream).
pub struct Registry<S> {
    rules: Liveness,
    nodes: HashMap<String, Entry<S>>,
}

impl<S> Registry<S> {
    /// An empty registry.
    pub fn new(rules: Liveness) -> Self {
        Registry {
            rules,
            nodes: HashMap::new(),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Liveness {
        self.rules
    }

    /// Changes the heartbeat period (the swarm spec changed). Deadlines already set stay; the
    /// next heartbeat of each node uses the new period.
    pub fn set_period(&mut self, period: Duration) {
        self.rules.period = period;
    }

    /// A node that is not DOWN and has no session here yet: it has the grace period to register
    /// (used for every node when a term starts, and for nodes that join). No-op when known.
    pub fn expect(&mut self, node_id: &str, now: Instant) {
        let grace = self.rules.grace();
        self.nodes.entry(node_id.to_string()).or_insert(Entry {
            deadline: now + grace,
            session: None,
        });
    }

    /// Registers a session for `node_id` with id `session_id`; returns the session it replaces.
    pub fn register(
        &mut self,
        node_id: &str,
        session_id: String,
        session: S,
        now: Instant,
    ) -> Option<(String, S)> {
        let deadline = now + self.rules.heartbeat_timeout();
        let entry = Entry {
            deadline,
            session: Some((session_id, session)),
        };
        self.nodes
            .insert(node_id.to_string(), entry)
            .and_then(|old| old.session)
    }

    /// A heartbeat: pushes the node's deadline out and returns the period the agent should wait.
    pub fn heartbeat(
        &mut self,
        node_id: &str,
        session_id: &str,
        now: Instant,
    ) -> Result<Duration, NotRegistered> {
        let timeout = self.rules.heartbeat_timeout();
        let entry = self
            .nodes
            .get_mut(node_id)
            .ok_or(NotRegistered::NoSession)?;
        match &entry.session {
            None => Err(NotRegistered::NoSession),
            Some((id, _)) if id != session_id => Err(NotRegistered::WrongSession),
            Some(_) => {
                entry.deadline = now + timeout;
                Ok(self.rules.jittered_period())
            }
        }
    }

    /// The session of `node_id` if its id is `session_id`.
    pub fn session(&self, node_id: &str, session_id: &str) -> Result<&S, NotRegistered> {
        match self.nodes.get(node_id).and_then(|e| e.session.as_ref()) {
            None => Err(NotRegistered::NoSession),
            Some((id, _)) if id != session_id => Err(NotRegistered::WrongSession),
            Some((_, s)) => Ok(s),
        }
    }

    /// The current session of `node_id`, whatever its id.
    pub fn current(&self, node_id: &str) -> Option<&(String, S)> {
        self.nodes.get(node_id).and_then(|e| e.session.as_ref())
    }

    /// Every current session.
    pub fn sessions(&self) -> impl Iterator<Item = (&str, &(String, S))> {
        self.nodes
            .iter()
            .filter_map(|(n, e)| e.session.as_ref().map(|s| (n.as_str(), s)))
    }

    /// Forgets a node (deleted from the swarm); returns its session.
    pub fn forget(&mut self, node_id: &str) -> Option<(String, S)> {
        self.nodes.remove(node_id).and_then(|e| e.session)
    }

    /// Ends the session `session_id` of `node_id` if it is still current (its stream went away),
    /// leaving the node's deadline as it was: it must register again before it passes.
    pub fn end_session(&mut self, node_id: &str, session_id: &str) -> Option<(String, S)> {
        let entry = self.nodes.get_mut(node_id)?;
        if entry
            .session
            .as_ref()
            .is_some_and(|(id, _)| id == session_id)
        {
            entry.session.take()
        } else {
            None
        }
    }

    /// Removes and returns every node whose deadline has passed, with its session if it had one.
    /// The caller marks them DOWN; they are not tracked again until they register or are
    /// expected anew.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Option<(String, S)>)> {
        let expired: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(n, _)| n.clone())
            .collect();
        expired
            .into_iter()
            .map(|n| {
                let session = self.nodes.remove(&n).and_then(|e| e.session);
                (n, session)
            })
            .collect()
    }

    /// Number of nodes tracked.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is tracked.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(5);

    fn registry() -> Registry<()> {
        Registry::new(Liveness {
            period: PERIOD,
            heartbeat_multiplier: 3,
            grace_multiplier: 6,
        })
    }

    fn expired_ids(r: &mut Registry<()>, now: Instant) -> Vec<String> {
        let mut ids: Vec<String> = r.expire(now).into_iter().map(|(n, _)| n).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_silent_node_expires_after_three_periods() {
        let t0 = Instant::now();
        let mut r = registry();
        assert!(r.register("n1", "s1".into(), (), t0).is_none());
        assert!(expired_ids(&mut r, t0 + PERIOD * 3 - Duration::from_millis(1)).is_empty());
        assert_eq!(expired_ids(&mut r, t0 + PERIOD * 3), ["n1"]);
        // Gone: not expired twice, and its heartbeats are refused until it registers again.
        assert!(expired_ids(&mut r, t0 + PERIOD * 10).is_empty());
        assert_eq!(
            r.heartbeat("n1", "s1", t0 + PERIOD * 10),
            Err(NotRegistered::NoSession)
        );
    }

    #[test]
    fn heartbeats_keep_a_node_alive_and_answer_a_jittered_period() {
        let t0 = Instant::now();
        let mut r = registry();
        r.register("n1", "s1".into(), (), t0);
        let mut now = t0;
        for _ in 0..20 {
            now += PERIOD;
            let period = r.heartbeat("n1", "s1", now).unwrap();
            assert!(period >= PERIOD.mul_f64(0.9) && period <= PERIOD.mul_f64(1.1));
            assert!(expired_ids(&mut r, now + PERIOD * 2).is_empty());
        }
        assert_eq!(expired_ids(&mut r, now + PERIOD * 3), ["n1"]);
    }

    #[test]
    fn a_new_session_replaces_the_old_one() {
        let t0 = Instant::now();
        let mut r = registry();
        r.register("n1", "s1".into(), (), t0);
        let old = r.register("n1", "s2".into(), (), t0);
        assert_eq!(old.map(|(id, _)| id).as_deref(), Some("s1"));
        assert_eq!(
            r.heartbeat("n1", "s1", t0),
            Err(NotRegistered::WrongSession)
        );
        assert!(r.heartbeat("n1", "s2", t0).is_ok());
        assert!(r.session("n1", "s2").is_ok());
        // Ending a replaced session does nothing.
        assert!(r.end_session("n1", "s1").is_none());
        assert!(r.current("n1").is_some());
    }

    #[test]
    fn after_a_leader_change_nodes_get_the_grace_period() {
        let t0 = Instant::now();
        let mut r = registry();
        for n in ["n1", "n2", "n3"] {
            r.expect(n, t0);
        }
        // Past the heartbeat timeout, inside the grace: nobody is DOWN.
        assert!(expired_ids(&mut r, t0 + PERIOD * 5).is_empty());
        // n1 and n2 reconnect; n3 never does.
        r.register("n1", "a".into(), (), t0 + PERIOD * 5);
        r.register("n2", "b".into(), (), t0 + PERIOD * 5);
        // Expecting a node that already registered changes nothing.
        r.expect("n1", t0 + PERIOD * 5);
        assert_eq!(expired_ids(&mut r, t0 + PERIOD * 6), ["n3"]);
        r.heartbeat("n1", "a", t0 + PERIOD * 7).unwrap();
        assert_eq!(expired_ids(&mut r, t0 + PERIOD * 8), ["n2"]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn forgetting_a_node_returns_its_session() {
        let t0 = Instant::now();
        let mut r: Registry<u32> = Registry::new(registry().rules());
        r.register("n1", "s1".into(), 7, t0);
        assert_eq!(r.forget("n1"), Some(("s1".to_string(), 7)));
        assert!(r.is_empty());
    }
}
