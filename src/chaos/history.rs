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
    // All of it under one bound: a manager that accepts the connection and never answers
    // (stuck after a fault) must not hold the run.
    tokio::time::timeout(REPLAY_BUDGET, replay_unbounded(socket, after))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the watch did not answer, or did not reach the revision it reported, in {} s",
                REPLAY_BUDGET.as_secs()
            )
        })?
}

/// How long [`replay`] may take.
const REPLAY_BUDGET: Duration = Duration::from_secs(30);

async fn replay_unbounded(socket: &std::path::Path, after: u64) -> anyhow::Result<Vec<Change>> {
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
                    return Ok(changes);
                }
            }
            WireMessage::Progress { revision } if revision >= upto => return Ok(changes),
            WireMessage::Error(e) => anyhow::bail!("the watch ended: {}", e.message),
            _ => {}
        }
    }
    anyhow::bail!("the watch ended before revision {upto}")
}

/// What a watch kept open through the faults saw: a client that watches one manager from the
/// start and, whenever its stream breaks (the manager killed, paused or cut off), opens it
/// again after the last revision it got, as a watch client is told to (etcd#15271's case).
#[derive(Debug, Default)]
pub struct Followed {
    /// Every change it was sent, in the order it got them.
    pub changes: Vec<Change>,
    /// How many times it had to open the watch again.
    pub resumes: u64,
    /// The member answered `compacted` to a resume (an explicit answer, which the watch
    /// guarantee allows): the revision the watch had reached, after which nothing is compared,
    /// and the oldest one the member could resume after.
    pub compacted: Option<(u64, u64)>,
}

/// How long a run's [`follow`]s go on after they are stopped without having seen `upto`.
pub const FOLLOW_GRACE: Duration = Duration::from_secs(30);

/// Follows the secrets' changes on the manager at `socket` from revision `after`, resuming
/// after every break, until `stop` is set and it has seen `upto` (or `stop` has been set for
/// `grace`, the run's [`FOLLOW_GRACE`]).
pub async fn follow(
    socket: std::path::PathBuf,
    after: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    upto: std::sync::Arc<std::sync::atomic::AtomicU64>,
    grace: Duration,
) -> Followed {
    use std::sync::atomic::Ordering;
    let client = Client::new(Host::Unix(socket));
    let mut out = Followed::default();
    let mut last = after;
    let mut stopping_since: Option<std::time::Instant> = None;
    let mut first = true;
    // Once stopped: done when it has seen `upto`, or after a while without (a manager left
    // behind, which streams progress at an older revision forever).
    let mut done = |last: u64| {
        if !stop.load(Ordering::Relaxed) {
            return false;
        }
        let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
        last >= upto.load(Ordering::Relaxed) || since.elapsed() > grace
    };
    loop {
        if done(last) {
            return out;
        }
        if !first {
            out.resumes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        first = false;
        let params = WatchParams {
            kinds: vec!["secret".into()],
            start: Start::After(last),
            progress_interval: Some(Duration::from_millis(200)),
            ..Default::default()
        };
        let opened = tokio::time::timeout(Duration::from_secs(3), client.watch_once(&params)).await;
        let mut stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(crate::client::ClientError::Api { error, .. })) if error.code == "compacted" => {
                out.compacted = Some((last, error.oldest.unwrap_or(0)));
                return out;
            }
            _ => continue,
        };
        loop {
            // A paused or cut-off manager sends nothing, not even progress: give up on the
            // stream after a while and open another.
            let next = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
            match next {
                Ok(Some(Ok(WireMessage::Commit {
                    revision, events, ..
                }))) => {
                    for e in events {
                        out.changes.push(Change {
                            revision,
                            id: e.id,
                            value: e.object["Spec"]["Labels"]["v"].as_str().map(str::to_string),
                        });
                    }
                    last = last.max(revision);
                }
                Ok(Some(Ok(WireMessage::Progress { revision }))) => last = last.max(revision),
                Ok(Some(Ok(WireMessage::Error(e)))) if e.code == "compacted" => {
                    out.compacted = Some((last, e.oldest.unwrap_or(0)));
                    return out;
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
            if done(last) {
                return out;
            }
        }
    }
}

/// What is wrong with a followed watch, against the committed history `reference` (every
/// change after the watch's start, as the managers replay it after the run): changes left
/// out, sent twice or out of order, or changes that were never committed.
pub fn followed_differs(followed: &Followed, reference: &[Change]) -> Option<String> {
    let limit = followed.compacted.map_or(u64::MAX, |(reached, _)| reached);
    let got: Vec<&Change> = followed
        .changes
        .iter()
        .filter(|c| c.revision <= limit)
        .collect();
    let want: Vec<&Change> = reference.iter().filter(|c| c.revision <= limit).collect();
    if let Some(d) = disorder(&followed.changes) {
        return Some(d);
    }
    if got == want {
        return None;
    }
    let missing: Vec<u64> = want
        .iter()
        .filter(|c| !got.contains(c))
        .map(|c| c.revision)
        .collect();
    let extra: Vec<u64> = got
        .iter()
        .filter(|c| !want.contains(c))
        .map(|c| c.revision)
        .collect();
    Some(format!(
        "it got {} changes, the history has {} (missing {} at revisions {:?}, not in the history {} at {:?}) after {} resumes{}",
        got.len(),
        want.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        extra.len(),
        &extra[..extra.len().min(10)],
        followed.resumes,
        match followed.compacted {
            Some((reached, oldest)) => format!(
                ", then \"compacted\" (it had reached {reached}, the member keeps history after {oldest})"
            ),
            None => String::new(),
        }
    ))
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

    /// A manager left behind answers a watch with progress at its own, older revision, every
    /// 50 ms, forever: a stopped follow must still end after its grace.
    #[tokio::test]
    async fn a_stopped_follow_ends_even_while_progress_keeps_coming_below_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("behind.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let progress = || async {
            let lines = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let line = bytes::Bytes::from_static(b"{\"type\":\"progress\",\"revision\":7}\n");
                Some((Ok::<_, std::convert::Infallible>(line), ()))
            });
            axum::body::Body::from_stream(lines)
        };
        let app = axum::Router::new().route("/shoal/v1/watch", axum::routing::get(progress));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let upto = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(100));
        let followed = tokio::time::timeout(
            Duration::from_secs(20),
            follow(socket, 0, stop, upto, Duration::from_secs(1)),
        )
        .await
        .expect("the follow ended within its grace although the stream never broke");
        assert!(followed.changes.is_empty());
        assert_eq!(followed.resumes, 0, "one stream, never broken");
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
