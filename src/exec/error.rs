//! Executor errors, classified by what the agent does with them.

/// Why a controller operation failed. The variant says what the controller knows; [`drive`]
/// (super::drive) turns any fatal error into REJECTED when it happens before the task was started
/// and into FAILED from STARTING on, as SwarmKit does, and retries temporary ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The task can never run as specified (missing image, bad command, invalid option): fatal,
    /// normally raised before it starts.
    #[error("{0}")]
    Rejected(String),
    /// The task ran (or was being started) and failed: fatal, with the exit code when one exists.
    #[error("{message}")]
    Failed {
        /// Docker-style text (`task: non-zero exit (3)`).
        message: String,
        /// The workload's exit code, when it exited.
        exit_code: Option<i64>,
    },
    /// Something that may work on a retry (the engine is unreachable, a timeout).
    #[error("{0}")]
    Temporary(String),
}

impl ExecError {
    /// A failure that is not an exit (e.g. the container turned unhealthy).
    pub fn failed(message: impl Into<String>) -> Self {
        ExecError::Failed {
            message: message.into(),
            exit_code: None,
        }
    }

    /// A non-zero exit, with Docker's message: `task: non-zero exit (N)`.
    pub fn non_zero_exit(code: i64) -> Self {
        ExecError::Failed {
            message: format!("task: non-zero exit ({code})"),
            exit_code: Some(code),
        }
    }

    /// Whether retrying may help.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ExecError::Temporary(_))
    }

    /// The exit code carried by the error, if any.
    pub fn exit_code(&self) -> Option<i64> {
        match self {
            ExecError::Failed { exit_code, .. } => *exit_code,
            _ => None,
        }
    }
}
