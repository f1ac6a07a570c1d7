//! Enumerations the store indexes on: task states and node roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A task's observed or desired state. The declaration order is SwarmKit's lamport order: a greater
/// state is always newer, so observed state only moves forward and desired state is never lowered.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Created by an orchestrator, not yet allocated.
    #[default]
    New,
    /// Resources allocated (kept for wire compatibility; shoal goes NEW -> PENDING directly).
    Allocated,
    /// Waiting for the scheduler.
    Pending,
    /// Placed on a node.
    Assigned,
    /// The node's agent took it.
    Accepted,
    /// The executor is preparing it (image check, container create).
    Preparing,
    /// Prepared; held here while desired state is READY.
    Ready,
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Exited successfully.
    Complete,
    /// Stopped because desired state said so.
    Shutdown,
    /// Exited with an error or could not start.
    Failed,
    /// Refused before starting (bad spec, missing image, constraints no longer met).
    Rejected,
    /// Marked for removal (desired state only).
    Remove,
    /// Its node has been gone for too long.
    Orphaned,
}

impl TaskState {
    /// Every state, in order.
    pub const ALL: [TaskState; 15] = [
        TaskState::New,
        TaskState::Allocated,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Preparing,
        TaskState::Ready,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Complete,
        TaskState::Shutdown,
        TaskState::Failed,
        TaskState::Rejected,
        TaskState::Remove,
        TaskState::Orphaned,
    ];

    /// The wire name (`running`, `shutdown`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// Whether the task has stopped for good (COMPLETE or later).
    pub fn is_terminal(&self) -> bool {
        *self >= TaskState::Complete
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL
            .iter()
            .find(|t| t.as_str() == s)
            .copied()
            .ok_or_else(|| format!("unknown task state {s:?}"))
    }
}

/// A node's role in the swarm.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Runs tasks only.
    #[default]
    Worker,
    /// Also runs a store member, the APIs and the dispatcher.
    Manager,
}

impl NodeRole {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "worker" => Ok(NodeRole::Worker),
            "manager" => Ok(NodeRole::Manager),
            _ => Err(format!("invalid Role: {s:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_states_are_ordered_and_round_trip() {
        for w in TaskState::ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!(TaskState::Complete.is_terminal());
        assert!(!TaskState::Running.is_terminal());
    }
}
