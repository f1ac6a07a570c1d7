//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the parameters are checked as dockerd
//! checks them (at least one stream, a known service or task, a valid `tail` and `since`), then
//! the lines come from the agents through the dispatcher's log broker and are written the way
//! moby's `WriteLogStream` writes them: optional timestamp (`RFC3339NanoFixed`), optional
//! details (`com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,com.docker.swarm.task.id=…`),
//! the line; framed with Docker's 8-byte stdcopy headers unless the service has a TTY.
//!
//! The tasks are those of the service when the request arrives: with `follow`, tasks started
//! later (replacements, scale-ups) are not followed by this request.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query as QueryExtract, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use shoal_store::model::{Service, Task, Timestamp};

use super::body::DockerPath as Path;
use super::context::ApiState;
use super::error::{ApiError, ApiResult};
use super::query::{bool_value, Query};
use super::resolve;
use super::version::ApiVersion;
use crate::dispatcher::{LogBroker, TaskLogLine};
use crate::exec::{LogOptions, LogStream};
use crate::node::SwarmState;

/// What the request asks for, checked.
#[derive(Clone, Debug, PartialEq)]
struct Params {
    stdout: bool,
    stderr: bool,
    follow: bool,
    timestamps: bool,
    details: bool,
    tail: Option<u64>,
    since: Option<Timestamp>,
}

/// dockerd's checks of the log selector, before any streaming starts.
fn check_params(q: &Query) -> ApiResult<Params> {
    let stdout = bool_value(q, "stdout");
    let stderr = bool_value(q, "stderr");
    if !(stdout || stderr) {
        return Err(ApiError::internal(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(t) => match t.parse::<i64>() {
            // A negative tail means everything, as dockerd reads it.
            Ok(n) => u64::try_from(n).ok(),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid value for tail: {t:?} is neither \"all\" nor a number of lines"
                )))
            }
        },
    };
    let since = match q.get("since").filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let bad = || {
                ApiError::bad_request(format!(
                    "invalid value for since: {raw:?} is not a Unix timestamp"
                ))
            };
            let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
            let secs: i64 = secs.parse().map_err(|_| bad())?;
            if !frac.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            let nanos: i64 = digits.parse().map_err(|_| bad())?;
            Some(Timestamp::from_unix_nanos(
                secs.saturating_mul(1_000_000_000).saturating_add(nanos),
            ))
        }
    };
    Ok(Params {
        stdout,
        stderr,
        follow: bool_value(q, "follow"),
        timestamps: bool_value(q, "timestamps"),
        details: bool_value(q, "details"),
        tail,
        since,
    })
}

/// The store and the log broker, or Docker's 503 for the node's state.
async fn broker(state: &ApiState) -> ApiResult<(shoal_store::Store, LogBroker)> {
    match state.node.state().await {
        SwarmState::Manager { manager, .. } => {
            Ok((manager.store.clone(), manager.dispatcher.log_broker()))
        }
        _ => Err(state
            .manager_store()
            .await
            .err()
            .unwrap_or_else(|| ApiError::internal("this manager has no log broker"))),
    }
}

/// Where a task's lines come from, for the details prefix.
#[derive(Clone, Debug)]
struct Origin {
    node_id: String,
    service_id: String,
}

/// `2006-01-02T15:04:05.000000000Z`: Go's `RFC3339NanoFixed` in UTC.
fn fixed_nanos(t: Timestamp) -> String {
    t.0.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// One line as moby writes it: `[timestamp ][details ]line`, framed unless `raw`.
fn render(l: &TaskLogLine, origin: Option<&Origin>, p: &Params, raw: bool) -> Option<Bytes> {
    let wanted = match l.line.stream {
        LogStream::Stdout => p.stdout,
        LogStream::Stderr => p.stderr,
    };
    if !wanted {
        return None;
    }
    let mut payload = Vec::with_capacity(l.line.line.len() + 128);
    if p.timestamps {
        payload.extend_from_slice(fixed_nanos(l.line.timestamp).as_bytes());
        payload.push(b' ');
    }
    if p.details {
        let (node, service) = origin
            .map(|o| (o.node_id.as_str(), o.service_id.as_str()))
            .unwrap_or(("", ""));
        payload.extend_from_slice(
            format!(
                "com.docker.swarm.node.id={node},com.docker.swarm.service.id={service},com.docker.swarm.task.id={} ",
                l.task_id
            )
            .as_bytes(),
        );
    }
    payload.extend_from_slice(&l.line.line);
    if raw {
        return Some(Bytes::from(payload));
    }
    let stream = match l.line.stream {
        LogStream::Stdout => 1u8,
        LogStream::Stderr => 2u8,
    };
    let mut framed = Vec::with_capacity(payload.len() + 8);
    framed.extend_from_slice(&[stream, 0, 0, 0]);
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(&payload);
    Some(Bytes::from(framed))
}

/// Subscribes to `tasks` and streams their lines.
async fn stream_logs(
    broker: LogBroker,
    tasks: Vec<(String, Origin)>,
    p: Params,
    tty: bool,
    version: ApiVersion,
) -> ApiResult<Response> {
    let origins: HashMap<String, Origin> = tasks.iter().cloned().collect();
    let options = LogOptions {
        stdout: p.stdout,
        stderr: p.stderr,
        follow: p.follow,
        tail: p.tail,
        since: p.since,
    };
    let ids = tasks.into_iter().map(|(id, _)| id).collect();
    let lines = broker
        .subscribe(ids, options)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let body = lines
        // A node that cannot read one task's logs is a warning; the others go on.
        .filter_map(move |item| {
            let out = match item {
                Ok(l) => render(&l, origins.get(&l.task_id), &p, tty),
                Err(e) => {
                    tracing::warn!("service logs: {e}");
                    None
                }
            };
            futures::future::ready(out.map(Ok::<_, Infallible>))
        });
    let content_type = if tty || !version.at_least(1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

fn origin(t: &Task) -> (String, Origin) {
    (
        t.meta.id.clone(),
        Origin {
            node_id: t.node_id.clone(),
            service_id: t.service_id.clone(),
        },
    )
}

fn has_tty(s: Option<&Service>) -> bool {
    s.and_then(|s| s.spec.container()).is_some_and(|c| c.tty)
}

/// `GET /services/{id}/logs`.
pub async fn service_logs(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Response> {
    let (store, broker) = broker(&state).await?;
    let p = check_params(&q)?;
    let view = store.view();
    let service = resolve::service(&view, &key)?;
    let tasks: Vec<(String, Origin)> = view
        .tasks_of_service(&service.meta.id)
        .filter(|t| !t.node_id.is_empty())
        .map(|t| origin(&t))
        .collect();
    stream_logs(broker, tasks, p, has_tty(Some(&service)), version).await
}

/// `GET /tasks/{id}/logs`.
pub async fn task_logs(
    State(state): State<ApiState>,
    Extension(version): Extension<ApiVersion>,
    Path(key): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Response> {
    let (store, broker) = broker(&state).await?;
    let p = check_params(&q)?;
    let view = store.view();
    let task = resolve::task(&view, &key)?;
    let service = view.get::<Service>(&task.service_id);
    let tty = has_tty(service.as_deref()) || task.spec.container().is_some_and(|c| c.tty);
    stream_logs(broker, vec![origin(&task)], p, tty, version).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::LogLine;

    #[test]
    fn a_stream_must_be_chosen_and_parameters_parse() {
        let mut q = Query::new();
        let e = check_params(&q).unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.message,
            "Bad parameters: you must choose at least one stream"
        );
        q.insert("stdout".into(), "1".into());
        assert_eq!(check_params(&q).unwrap().tail, None);
        q.insert("tail".into(), "ten".into());
        assert!(check_params(&q).is_err());
        q.insert("tail".into(), "5".into());
        q.insert("since".into(), "1700000000.5".into());
        let p = check_params(&q).unwrap();
        assert_eq!(p.tail, Some(5));
        assert_eq!(p.since.unwrap().unix_nanos(), 1_700_000_000_500_000_000);
    }

    #[test]
    fn lines_are_framed_with_timestamp_and_details() {
        let line = TaskLogLine {
            task_id: "t1".into(),
            line: LogLine {
                stream: LogStream::Stderr,
                timestamp: Timestamp::from_unix_nanos(1_700_000_000_500_000_000),
                line: Bytes::from_static(b"hello\n"),
            },
        };
        let p = Params {
            stdout: true,
            stderr: true,
            follow: false,
            timestamps: true,
            details: true,
            tail: None,
            since: None,
        };
        let origin = Origin {
            node_id: "n1".into(),
            service_id: "s1".into(),
        };
        let framed = render(&line, Some(&origin), &p, false).unwrap();
        let payload = b"2023-11-14T22:13:20.500000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hello\n";
        assert_eq!(&framed[..4], &[2, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(framed[4..8].try_into().unwrap()) as usize,
            payload.len()
        );
        assert_eq!(&framed[8..], &payload[..]);
        let raw = render(
            &line,
            None,
            &Params {
                details: false,
                timestamps: false,
                ..p.clone()
            },
            true,
        )
        .unwrap();
        assert_eq!(&raw[..], b"hello\n");
        assert!(render(&line, None, &Params { stderr: false, ..p }, true).is_none());
    }
}
