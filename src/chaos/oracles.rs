//! What a chaos run must show at its end: the history is linearizable (per key, a CAS
//! register), no acknowledged write was lost, and every manager holds the same state.

use std::time::Duration;

use serde_json::{json, Value};
use shoal_lincheck::models::{Register, RegisterInput, RegisterOutput};
use shoal_lincheck::{check, CheckResult, History};

/// How long the linearizability check of one run may take before it says "unknown".
const CHECK_BUDGET: Duration = Duration::from_secs(60);

/// The linearizability verdict: `"true"`, `"false"` (with the checker's report) or
/// `"unknown"` (the search ran out of time; never a pass).
pub fn linearizable(
    history: &History<RegisterInput<String>, RegisterOutput<String>>,
) -> (String, Option<String>) {
    match check(&Register::<String>::new(), history, CHECK_BUDGET) {
        CheckResult::Ok => ("true".into(), None),
        CheckResult::Illegal { key, report, .. } => (
            "false".into(),
            Some(format!("key {key} has no linearization:\n{report}")),
        ),
        CheckResult::Unknown { key } => (
            "unknown".into(),
            Some(format!("the check ran out of time at key {key}")),
        ),
    }
}

/// Acknowledged writes lost: for each key, the final value (read after the cluster healed)
/// must come from a write that was not over before the last acknowledged write began. A final
/// value older than that means the acknowledged write vanished. Returns the losses found.
pub fn lost_writes(
    history: &History<RegisterInput<String>, RegisterOutput<String>>,
    finals: &[(String, Option<String>)],
) -> Vec<String> {
    let ops = history.operations();
    let mut lost = Vec::new();
    for (key, value) in finals {
        let acked = ops
            .iter()
            .filter(|o| o.key == *key && o.output == Some(RegisterOutput::CasOk))
            .max_by_key(|o| o.return_time);
        let Some(last) = acked else { continue };
        let RegisterInput::Cas {
            new: last_value, ..
        } = &last.input
        else {
            continue;
        };
        let Some(value) = value else {
            lost.push(format!(
                "{key}: reads as never written, but {last_value} was acknowledged"
            ));
            continue;
        };
        let writer = ops.iter().find(
            |o| matches!(&o.input, RegisterInput::Cas { new, .. } if new == value && o.key == *key),
        );
        match writer {
            None => lost.push(format!("{key}: holds {value}, which no client wrote")),
            Some(w) if w.return_time.is_some_and(|r| r < last.call) => lost.push(format!(
                "{key}: holds {value}, written before {last_value}, whose write was acknowledged"
            )),
            Some(_) => {}
        }
    }
    lost
}

/// Acknowledged writes missing from the committed history: every value a CAS was told it
/// set must have been committed to its key (`changes`: `(key, value)` of each committed change,
/// as the watch replays them).
pub fn unrecorded_writes(
    history: &History<RegisterInput<String>, RegisterOutput<String>>,
    changes: &std::collections::HashSet<(String, String)>,
) -> Vec<String> {
    history
        .operations()
        .iter()
        .filter(|o| o.output == Some(RegisterOutput::CasOk))
        .filter_map(|o| match &o.input {
            RegisterInput::Cas { new, .. } if !changes.contains(&(o.key.clone(), new.clone())) => {
                Some(format!(
                    "{}: {new} was acknowledged but no manager's history has it",
                    o.key
                ))
            }
            _ => None,
        })
        .collect()
}

/// Whether every replica has the same applied revision and state digest; the digests as JSON.
pub fn replicas_identical(digests: &[(String, u64, String)]) -> (bool, Value) {
    let same = digests
        .windows(2)
        .all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2);
    let shown = digests
        .iter()
        .map(|(name, rev, d)| json!({"member": name, "applied": rev, "digest": &d[..16.min(d.len())]}))
        .collect();
    (same, Value::Array(shown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_lincheck::Operation;

    fn cas(
        client: u64,
        new: &str,
        call: u64,
        ret: u64,
        ok: bool,
    ) -> Operation<RegisterInput<String>, RegisterOutput<String>> {
        Operation::completed(
            client,
            "k",
            RegisterInput::Cas {
                expected: None,
                new: new.into(),
            },
            call,
            if ok {
                RegisterOutput::CasOk
            } else {
                RegisterOutput::CasFailed
            },
            ret,
        )
    }

    #[test]
    fn a_final_value_older_than_the_last_acknowledged_write_is_a_loss() {
        let h = History::from_operations([cas(1, "a", 0, 10, true), cas(2, "b", 20, 30, true)])
            .unwrap();
        assert!(lost_writes(&h, &[("k".into(), Some("b".into()))]).is_empty());
        let lost = lost_writes(&h, &[("k".into(), Some("a".into()))]);
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost_writes(&h, &[("k".into(), None)]).len() == 1);
        // A concurrent write may end up last.
        let h = History::from_operations([cas(1, "a", 0, 25, true), cas(2, "b", 20, 30, true)])
            .unwrap();
        assert!(lost_writes(&h, &[("k".into(), Some("a".into()))]).is_empty());
    }

    #[test]
    fn replicas_differ_when_a_digest_or_revision_does() {
        let a = ("m1".to_string(), 5, "x".repeat(64));
        let b = ("m2".to_string(), 5, "x".repeat(64));
        assert!(replicas_identical(&[a.clone(), b.clone()]).0);
        let c = ("m3".to_string(), 5, "y".repeat(64));
        assert!(!replicas_identical(&[a, b, c]).0);
    }
}
