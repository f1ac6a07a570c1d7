//! Failure reports: the longest partial linearization of an illegal partition, as text.
//!
//! The report replays the prefix through the model instead of keeping states from the search, so
//! the search stores only operation indices and the report shows exactly what the model computes.

use std::fmt::Write;

use crate::history::{Operation, Time};
use crate::model::Model;

/// Renders why partition `key` is not linearizable.
///
/// `ops` are the partition's operations and `longest` the indices (into `ops`) of the longest
/// partial linearization found, in order. The report lists that prefix with the state after each
/// operation, then the operations that real time would allow next and why each is stuck.
pub(crate) fn failure<M: Model>(
    model: &M,
    key: &str,
    ops: &[&Operation<M::Input, M::Output>],
    longest: &[usize],
) -> String {
    let origin = ops.iter().map(|op| op.call).min().unwrap_or(0);
    let unknown = ops.iter().filter(|op| op.is_unknown()).count();
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "partition {key:?}: not linearizable ({} operations, {unknown} with unknown outcome); \
         times are nanoseconds since its first call",
        ops.len()
    );
    let _ = writeln!(
        out,
        "longest linearizable prefix: {} operations",
        longest.len()
    );

    let mut state = model.init();
    let _ = writeln!(out, "     initial state: {}", model.describe_state(&state));
    for (n, &i) in longest.iter().enumerate() {
        let op = ops[i];
        // The search accepted this exact sequence, so replaying it cannot fail; if a model's step
        // were not deterministic after all, say so rather than panic inside a failure report.
        match model.step(&state, &op.input, op.output.as_ref()) {
            Some(next) => state = next,
            None => {
                let _ = writeln!(
                    out,
                    "  (model rejected its own earlier step here: not pure?)"
                );
                break;
            }
        }
        let _ = writeln!(
            out,
            "  {:>3}. {}  => {}",
            n + 1,
            line(model, op, origin),
            model.describe_state(&state)
        );
    }

    // What could go next in real time: an operation not called after some pending completed
    // operation returned (strictly, as everywhere in this crate).
    let mut in_prefix = vec![false; ops.len()];
    for &i in longest {
        in_prefix[i] = true;
    }
    let first_return = (0..ops.len())
        .filter(|&i| !in_prefix[i])
        .filter_map(|i| ops[i].return_time)
        .min();
    let _ = writeln!(
        out,
        "none of these can be linearized next (state {}):",
        model.describe_state(&state)
    );
    for i in (0..ops.len()).filter(|&i| !in_prefix[i]) {
        let op = ops[i];
        if first_return.is_some_and(|first| first < op.call) {
            continue;
        }
        let why = match (
            model.step(&state, &op.input, op.output.as_ref()),
            op.is_unknown(),
        ) {
            (None, _) => "the model refuses it in this state",
            (Some(_), false) => "allowed here, but the rest cannot follow it",
            (Some(_), true) => "may take effect here or never; neither helps",
        };
        let _ = writeln!(out, "       {}  -- {why}", line(model, op, origin));
    }
    out
}

/// One operation: client, interval and the model's description of it.
fn line<M: Model>(model: &M, op: &Operation<M::Input, M::Output>, origin: Time) -> String {
    let ret = match op.return_time {
        Some(t) => (t - origin).to_string(),
        None => "unknown".to_string(),
    };
    format!(
        "client {:<3} [{} .. {}] {}",
        op.client_id,
        op.call - origin,
        ret,
        model.describe_operation(&op.input, op.output.as_ref())
    )
}
