//! How a change to the store's voters affects how many manager failures the swarm survives.
//!
//! A swarm of `n` voting managers needs `n / 2 + 1` of them up to commit anything. Its margin
//! is how many of the reachable ones may still fail before that is lost: a healthy three-manager
//! swarm has a margin of one, a two-manager swarm none at all. Operators change the voters by
//! promoting, demoting and joining managers; [`assess`] says, before the change is made, whether
//! it keeps the margin, shrinks it to nothing (refused unless the operator insists), or would
//! lose the quorum outright (always refused).
//!
//! Pure arithmetic on the leader's view of who is reachable, so every caller (the API, the
//! joins the leader admits) decides the same way.

use crate::raft::types::RaftId;

/// A change to the voting members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VoterChange {
    /// A new voter (a promotion, or a manager joining).
    Add,
    /// This voter goes (a demotion or a removal).
    Remove(RaftId),
}

/// A voter as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voter {
    /// Its Raft id.
    pub raft_id: RaftId,
    /// Whether the leader heard from it recently.
    pub reachable: bool,
}

/// What a change does to the swarm's margin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Assessment {
    /// It keeps a margin (or improves it).
    Safe,
    /// Allowed as dockerd allows it, but worth telling the operator (a two-manager swarm).
    Warn(String),
    /// It leaves the swarm one failure from losing its quorum: refused unless forced.
    Risky(String),
    /// It would lose the quorum at once: always refused.
    Refused(String),
}

/// Votes needed among `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// How many more reachable voters may fail before the quorum is lost (negative: lost already).
fn margin(voters: usize, reachable: usize) -> i64 {
    reachable as i64 - quorum(voters) as i64
}

/// The warning dockerd's `docker info` shows for a swarm of two managers.
pub const TWO_MANAGERS_WARNING: &str = "WARNING: Running Swarm in a two-manager configuration. This configuration provides\n         no fault tolerance, and poses a high risk to lose control over the cluster.\n         Refer to https://docs.docker.com/engine/swarm/admin_guide/ to configure the\n         Swarm for fault-tolerance.";

/// What `change` does to a swarm whose voters are `voters`. A new voter is assumed reachable:
/// the leader makes a joining manager a voter only once it has caught up.
pub fn assess(voters: &[Voter], change: VoterChange) -> Assessment {
    let n = voters.len();
    let reachable = voters.iter().filter(|v| v.reachable).count();
    let unreachable = n - reachable;
    let before = margin(n, reachable);
    if before < 0 {
        return Assessment::Refused(format!(
            "the swarm has lost its quorum: {reachable} of its {n} managers are reachable and {} are needed; \
             bring the others back (or recover with --force-new-cluster) before changing its managers",
            quorum(n)
        ));
    }
    match change {
        VoterChange::Add => {
            let after = margin(n + 1, reachable + 1);
            if unreachable > 0 && after <= 0 {
                return Assessment::Risky(format!(
                    "{unreachable} of the {n} managers are unreachable: with one more manager the swarm \
                     would need {} of its {} managers up, every one still running; \
                     bring the unreachable managers back or demote them first",
                    quorum(n + 1),
                    n + 1
                ));
            }
            if n + 1 == 2 {
                return Assessment::Warn(
                    "the swarm will have two managers and needs both of them up: it survives no \
                     manager failure, and loses its quorum if either fails; add a third manager"
                        .into(),
                );
            }
            Assessment::Safe
        }
        VoterChange::Remove(id) => {
            let Some(leaving) = voters.iter().find(|v| v.raft_id == id) else {
                return Assessment::Safe;
            };
            if n == 1 {
                return Assessment::Refused(
                    "it is the swarm's last manager: removing it would lose all the swarm's state"
                        .into(),
                );
            }
            let left = n - 1;
            let reachable_left = reachable - usize::from(leaving.reachable);
            let after = margin(left, reachable_left);
            if after < 0 {
                return Assessment::Refused(format!(
                    "can't remove member from the raft: this would result in a loss of quorum \
                     ({reachable_left} of the {left} remaining managers are reachable, {} needed)",
                    quorum(left)
                ));
            }
            if after == 0 && before > 0 && left >= 2 {
                return Assessment::Risky(format!(
                    "it would leave {left} managers of which {reachable_left} are reachable and {} are needed: \
                     the swarm would lose its quorum at the next manager failure; \
                     promote another node first",
                    quorum(left)
                ));
            }
            Assessment::Safe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(states: &[bool]) -> Vec<Voter> {
        states
            .iter()
            .enumerate()
            .map(|(i, r)| Voter {
                raft_id: i as RaftId + 1,
                reachable: *r,
            })
            .collect()
    }

    fn kind(a: &Assessment) -> &'static str {
        match a {
            Assessment::Safe => "safe",
            Assessment::Warn(_) => "warn",
            Assessment::Risky(_) => "risky",
            Assessment::Refused(_) => "refused",
        }
    }

    #[test]
    fn adding_managers() {
        // One to two: dockerd allows it and warns.
        assert_eq!(kind(&assess(&voters(&[true]), VoterChange::Add)), "warn");
        assert_eq!(kind(&assess(&voters(&[true; 2]), VoterChange::Add)), "safe");
        assert_eq!(kind(&assess(&voters(&[true; 3]), VoterChange::Add)), "safe");
        // With one of three down, a fourth would need all three live ones and itself.
        assert_eq!(
            kind(&assess(&voters(&[true, true, false]), VoterChange::Add)),
            "risky"
        );
        // One of four down: five with four up keeps a margin of one.
        assert_eq!(
            kind(&assess(
                &voters(&[true, true, true, false]),
                VoterChange::Add
            )),
            "safe"
        );
        assert_eq!(
            kind(&assess(&voters(&[true, false]), VoterChange::Add)),
            "refused"
        );
    }

    #[test]
    fn removing_managers() {
        assert_eq!(
            kind(&assess(&voters(&[true]), VoterChange::Remove(1))),
            "refused"
        );
        // Two to one: from no margin to no margin, and fewer machines to fail.
        assert_eq!(
            kind(&assess(&voters(&[true; 2]), VoterChange::Remove(2))),
            "safe"
        );
        // Three to two: the margin of one is gone.
        let a = assess(&voters(&[true; 3]), VoterChange::Remove(3));
        assert_eq!(kind(&a), "risky", "{a:?}");
        // Removing the one that is down from three keeps what there is.
        assert_eq!(
            kind(&assess(
                &voters(&[true, true, false]),
                VoterChange::Remove(3)
            )),
            "safe"
        );
        // Removing a live one when one is down loses the quorum.
        assert_eq!(
            kind(&assess(
                &voters(&[true, true, false]),
                VoterChange::Remove(2)
            )),
            "refused"
        );
        assert_eq!(
            kind(&assess(&voters(&[true; 5]), VoterChange::Remove(5))),
            "safe"
        );
        assert_eq!(
            kind(&assess(
                &voters(&[true, true, true, true, false]),
                VoterChange::Remove(1)
            )),
            "risky"
        );
        // Not a voter: nothing changes.
        assert_eq!(
            kind(&assess(&voters(&[true; 3]), VoterChange::Remove(9))),
            "safe"
        );
    }
}
