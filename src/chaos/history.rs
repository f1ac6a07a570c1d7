//! What each manager's watch says happened to the keys: every committed change of a secret,
//! replayed from the store's history after the run. It is the ground truth for two oracles:
//! every acknowledged write must be in it (durability, as etcd's robustness tests check
//! against the watch), and every manager must tell the same story, in revision order, with
//! no revision twice (the watch oracle), also when the watch is resumed from the middle.

use std::time::Duration;

use futures::StreamExt;

use crate::client::{Client, Host};
use crate::native::watch::{Start, WatchParams};
use crate::native::wire::WireMessage;

/// One committed change of a key: its revision, the secret's id and its label `v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The revision that committed it.
    pub revision: u64,
    /// The secret.
    pub id: String,
    /// The value it set (`None`: the label was absent).
    pub value: Option<String>,
}

/// Every change of a secret after `after`, as the manager at `socket` replays it, up to the
/// revision it had applied when asked. `Err` says why not (history compacted, no answer).
pub async fn replay(socket: &std::path::Path, after: u64) -> anyhow::Result<Vec<Change>> {
    let client = Client::new(Host::Unix(socket.to_path_buf()));
    let upto = client.current_revision().await?.applied;
    let params = WatchParams {
        kinds: vec!["secret".into()],
        start: Start::After(after),
        progress_interval: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let mut stream = client.watch_once(&params).await?;
    let mut changes = Vec::new();
    let read = async {
        while let Some(m) = stream.next().await {
            match m? {
                WireMessage::Commit {
                    revision, events, ..
                } => {
                    for e in events {
                        changes.push(Change {
                            revision,
                            id: e.id,
                            value: e.object["Spec"]["Labels"]["v"].as_str().map(str::to_string),
                        });
                    }
                    if revision >= upto {
                        return Ok(());
                    }
                }
                WireMessage::Progress { revision } if revision >= upto => return Ok(()),
                WireMessage::Error(e) => anyhow::bail!("the watch ended: {}", e.message),
                _ => {}
            }
        }
        anyhow::bail!("the watch ended before revision {upto}")
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .map_err(|_| anyhow::anyhow!("the watch did not reach revision {upto} in 30 s"))??;
    Ok(changes)
}

/// What is wrong with one manager's replay on its own: revisions out of order or repeated.
pub fn disorder(changes: &[Change]) -> Option<String> {
    changes.windows(2).find_map(|w| {
        (w[1].revision < w[0].revision || (w[1].revision == w[0].revision && w[1].id == w[0].id))
            .then(|| {
                format!(
                    "revision {} of {} came after revision {} of {}",
                    w[1].revision, w[1].id, w[0].revision, w[0].id
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(revision: u64, id: &str) -> Change {
        Change {
            revision,
            id: id.into(),
            value: None,
        }
    }

    #[test]
    fn revisions_must_rise_and_never_repeat_for_one_object() {
        assert_eq!(
            disorder(&[c(1, "a"), c(2, "a"), c(2, "b"), c(5, "a")]),
            None
        );
        assert!(disorder(&[c(3, "a"), c(2, "b")]).is_some());
        assert!(disorder(&[c(3, "a"), c(3, "a")]).is_some());
    }
}
