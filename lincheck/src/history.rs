//! Recorded histories: what each client asked for, when, and what it was told.
//!
//! A [`History`] only accepts well-formed operations (see [`History::push`]), so the checker never
//! has to decide what a negative interval or a return time without an output would mean.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point on the recording's monotonic clock, in nanoseconds.
///
/// Every timestamp of one history must come from the same clock (one process's monotonic clock):
/// the checker orders operations by comparing them, and clocks of different hosts do not compare.
pub type Time = u64;

/// Format tag written into every JSON history, so that a file saved by a chaos run can be told
/// apart from other JSON and a future incompatible format can be refused instead of misread.
pub const FORMAT: &str = "shoal-lincheck/history/v1";

/// One operation of one client against one key.
///
/// The field names follow Porcupine's `Operation` (client id, input, call, output, return) plus
/// the key, so a saved history converts with a field-by-field mapping. An operation whose outcome
/// is unknown (the client timed out or lost its connection) has neither `output` nor `return`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation<I, O> {
    /// The client that issued the operation. Informational only: the checker orders operations by
    /// time alone, like Porcupine, so a client that reconnects may keep or change its id.
    pub client_id: u64,
    /// The key the operation touched; the default partitioning checks each key on its own.
    pub key: String,
    /// What the client asked for.
    pub input: I,
    /// When the client sent the request (before it could have taken effect).
    pub call: Time,
    /// What the client was told, or `None` when the outcome is unknown. Must not itself serialize
    /// to JSON `null`, or a saved completed operation would read back as an unknown one.
    pub output: Option<O>,
    /// When the client received the answer (after it took effect), or `None` when the outcome is
    /// unknown: the operation may take effect at any point after `call`, or never.
    #[serde(rename = "return")]
    pub return_time: Option<Time>,
}

impl<I, O> Operation<I, O> {
    /// An operation whose answer the client received.
    pub fn completed(
        client_id: u64,
        key: impl Into<String>,
        input: I,
        call: Time,
        output: O,
        return_time: Time,
    ) -> Self {
        Operation {
            client_id,
            key: key.into(),
            input,
            call,
            output: Some(output),
            return_time: Some(return_time),
        }
    }

    /// An operation whose outcome the client never learnt (timeout, lost connection, crash).
    pub fn unknown(client_id: u64, key: impl Into<String>, input: I, call: Time) -> Self {
        Operation {
            client_id,
            key: key.into(),
            input,
            call,
            output: None,
            return_time: None,
        }
    }

    /// True when the client never learnt the outcome.
    pub fn is_unknown(&self) -> bool {
        self.return_time.is_none()
    }

    /// Why this operation cannot be part of a history, if it cannot.
    fn defect(&self) -> Option<&'static str> {
        match (&self.output, self.return_time) {
            (Some(_), None) => Some("has an output but no return time"),
            (None, Some(_)) => Some("has a return time but no output"),
            (_, Some(ret)) if ret < self.call => Some("returns before it was called"),
            _ => None,
        }
    }
}

/// Why a history could not be built or read.
#[derive(Debug)]
pub enum HistoryError {
    /// The JSON was not a history of this format (syntax, field types, or the format tag).
    Json(serde_json::Error),
    /// An operation is malformed; `index` is its position in the history.
    InvalidOperation {
        /// Position of the operation in the history.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file's `format` tag is not [`FORMAT`].
    UnsupportedFormat(String),
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::Json(e) => write!(f, "history JSON: {e}"),
            HistoryError::InvalidOperation { index, reason } => {
                write!(f, "operation {index} {reason}")
            }
            HistoryError::UnsupportedFormat(tag) => {
                write!(f, "history format {tag:?} is not {FORMAT:?}")
            }
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HistoryError::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for HistoryError {
    fn from(e: serde_json::Error) -> Self {
        HistoryError::Json(e)
    }
}

/// A concurrent history: operations in any order (the checker sorts them by time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
}

/// The JSON envelope. Kept separate from [`History`] so that reading goes through
/// [`History::push`]'s validation instead of trusting the file.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: String,
    operations: T,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History { ops: Vec::new() }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a history from operations, refusing the first malformed one.
    pub fn from_operations(
        ops: impl IntoIterator<Item = Operation<I, O>>,
    ) -> Result<Self, HistoryError> {
        let mut history = History::new();
        for op in ops {
            history.push(op)?;
        }
        Ok(history)
    }

    /// Appends an operation. Refused when it has an output without a return time or the other
    /// way round, or returns before its call: such an operation has no meaning for the checker.
    pub fn push(&mut self, op: Operation<I, O>) -> Result<(), HistoryError> {
        if let Some(reason) = op.defect() {
            return Err(HistoryError::InvalidOperation {
                index: self.ops.len(),
                reason,
            });
        }
        self.ops.push(op);
        Ok(())
    }

    /// The operations, in the order they were pushed.
    pub fn operations(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl<I: Serialize, O: Serialize> History<I, O> {
    /// The history as JSON: `{"format": FORMAT, "operations": [{client_id, key, input, call,
    /// output, return}, ...]}`, with `null` output and return for unknown outcomes.
    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            format: FORMAT.to_string(),
            operations: &self.ops,
        };
        // Serializing plain structs of serializable fields into a String cannot fail unless the
        // input or output type's own Serialize impl fails, which is a bug in that type.
        serde_json::to_string(&envelope).expect("a history serializes to JSON")
    }
}

impl<I, O> History<I, O>
where
    I: for<'de> Deserialize<'de>,
    O: for<'de> Deserialize<'de>,
{
    /// Reads a history written by [`History::to_json`], validating every operation.
    pub fn from_json(json: &str) -> Result<Self, HistoryError> {
        let envelope: Envelope<Vec<Operation<I, O>>> = serde_json::from_str(json)?;
        if envelope.format != FORMAT {
            return Err(HistoryError::UnsupportedFormat(envelope.format));
        }
        History::from_operations(envelope.operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type H = History<String, u32>;

    #[test]
    fn json_round_trip_keeps_completed_and_unknown_operations() {
        let history = H::from_operations([
            Operation::completed(1, "a", "put".to_string(), 10, 7, 20),
            Operation::unknown(2, "b", "put".to_string(), 15),
        ])
        .unwrap();
        let json = history.to_json();
        assert!(json.contains("\"return\":null"), "{json}");
        assert_eq!(H::from_json(&json).unwrap(), history);
    }

    #[test]
    fn malformed_operations_are_refused() {
        let backwards = Operation::completed(1, "a", "x".to_string(), 20, 1, 10);
        assert!(matches!(
            H::new().push(backwards),
            Err(HistoryError::InvalidOperation { index: 0, .. })
        ));
        let json = r#"{"format":"shoal-lincheck/history/v1","operations":[
            {"client_id":1,"key":"a","input":"x","call":1,"output":3,"return":null}]}"#;
        assert!(matches!(
            H::from_json(json),
            Err(HistoryError::InvalidOperation { index: 0, .. })
        ));
    }

    #[test]
    fn other_formats_are_refused() {
        let json = r#"{"format":"porcupine","operations":[]}"#;
        assert!(matches!(
            H::from_json(json),
            Err(HistoryError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn a_call_and_return_at_the_same_instant_is_allowed() {
        // Coarse clocks produce zero-length operations; they are still well-formed.
        let op = Operation::completed(1, "a", "x".to_string(), 5, 1, 5);
        assert!(H::new().push(op).is_ok());
    }
}
