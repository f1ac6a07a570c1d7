//! Recovering a member whose group lost its quorum (etcd's and SwarmKit's
//! `--force-new-cluster`): the member's replica becomes a one-member group, keeping every entry
//! it has.
//!
//! The member must be stopped. A membership entry naming only this member is appended after
//! its last log entry, in a term above any it has seen, with its vote moved to that term. When
//! the member starts, openraft takes the newest membership in the log as the group's: a group
//! of one, whose member elects itself, and whose first leader's blank entry commits everything
//! before it, the new membership included. Entries this member had but the lost majority never
//! committed are committed too (etcd does the same): a recovered swarm keeps everything the
//! survivor saw.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{Membership, RaftLogReader};

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::raft::db;
use crate::raft::log_store::LogStore;
use crate::raft::types::{Entry, LogId, PeerNode, TypeConfig, Vote};
use openraft::type_config::TypeConfigExt;

/// What [`force_new_cluster`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The index of the membership entry appended.
    pub index: u64,
    /// Its term.
    pub term: u64,
}

fn storage(what: &str) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Storage(format!("{what}: {e}"))
}

/// Makes the stopped member of `config` the only member of its group (see the module docs).
/// Refuses a data dir that holds no replica.
pub async fn force_new_cluster(config: &StoreConfig) -> Result<Recovered, StoreError> {
    let path = config.data_dir.join("db");
    if !path.exists() {
        return Err(StoreError::Storage(format!(
            "{} holds no store to recover: --force-new-cluster needs the data dir of a manager that was in the swarm",
            config.data_dir.display()
        )));
    }
    let database = db::open(&path)
        .map_err(|e| StoreError::Storage(format!("opening {}: {e}", path.display())))?;
    let result = append_membership(config, database.clone()).await;
    crate::replica::close_database(database).await;
    result
}

async fn append_membership(
    config: &StoreConfig,
    database: Arc<crate::raft::db::Db>,
) -> Result<Recovered, StoreError> {
    let sealer = crate::replica::sealer_for(config)?;
    crate::raft::log_store::repair_after_crash(&database, &sealer)
        .map_err(storage("checking the log after a crash"))?;
    let mut log = LogStore::new(database, sealer, config.encoding);
    let state = log
        .get_log_state()
        .await
        .map_err(storage("reading the log"))?;
    let Some(last) = state.last_log_id else {
        return Err(StoreError::Storage(
            "this member's log is empty: it never took part in a swarm, there is nothing to recover".into(),
        ));
    };
    let vote: Option<Vote> = log.read_vote().await.map_err(storage("reading the vote"))?;
    let seen = vote
        .map(|v| v.leader_id().term)
        .unwrap_or(0)
        .max(last.leader_id.term);
    let term = seen + 1;
    let me = config.raft_id;
    let membership = Membership::new(
        vec![BTreeSet::from([me])],
        BTreeMap::from([(
            me,
            PeerNode {
                addr: config.advertise_addr.clone(),
                node_id: config.node_id.clone(),
            },
        )]),
    )
    .map_err(|e| StoreError::Storage(format!("the new membership: {e}")))?;
    let index = last.index + 1;
    let entry = Entry::new_membership(LogId::new_term_index(term, index), membership);
    log.save_vote(&Vote::new(term, me))
        .await
        .map_err(storage("saving the vote"))?;
    let (tx, rx) = TypeConfig::oneshot();
    log.append([entry], IOFlushed::signal(tx))
        .await
        .map_err(storage("appending the membership"))?;
    rx.await
        .map_err(|_| StoreError::Storage("the Raft log's IO thread stopped".into()))?
        .map_err(storage("syncing the log"))?;
    Ok(Recovered { index, term })
}
