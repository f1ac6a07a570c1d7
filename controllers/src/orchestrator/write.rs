//! Writing a pass's changes: groups of operations that must commit together, packed into
//! transactions of bounded size (a Raft entry per transaction must stay small).

use shoal_store::{Op, Txn};

use crate::runtime::{Ctx, ReconcileError};

/// Most operations in one transaction (SwarmKit splits its batches at 200 changes).
pub const MAX_OPS_PER_TXN: usize = 200;

/// Most encoded bytes in one transaction (well under the store's 4 MiB limit).
pub const MAX_TXN_BYTES: usize = 1 << 20;

fn op_size(op: &Op) -> usize {
    match op {
        Op::Create(o) | Op::Update { object: o, .. } => o.encoded_len(),
        _ => 64,
    }
}

/// Commits `groups` in order, each group atomically, several groups per transaction. Stops at
/// the first rejected transaction (the next pass starts again from the store's state).
pub async fn commit(ctx: &Ctx, groups: Vec<Vec<Op>>) -> Result<usize, ReconcileError> {
    let mut committed = 0;
    let mut txn = Txn::new();
    let mut bytes = 0;
    for group in groups.into_iter().filter(|g| !g.is_empty()) {
        let size: usize = group.iter().map(op_size).sum();
        let full = txn.ops.len() + group.len() > MAX_OPS_PER_TXN || bytes + size > MAX_TXN_BYTES;
        if full && !txn.is_empty() {
            committed += txn.ops.len();
            ctx.submit(std::mem::take(&mut txn)).await?;
            bytes = 0;
        }
        bytes += size;
        txn.ops.extend(group);
    }
    if !txn.is_empty() {
        committed += txn.ops.len();
        ctx.submit(txn).await?;
    }
    Ok(committed)
}
