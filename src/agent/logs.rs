//! Serving log subscriptions: the manager asks over the session stream; the agent reads the
//! tasks' output from their controllers and publishes it with `PublishLogs` until the output
//! ends (or, following, until the manager closes the subscription).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::{LogSubscription, PublishLogsMessage};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::worker::Worker;
use crate::dispatcher::logs::{entry, options};

/// Lines per published message.
const CHUNK: usize = 256;

/// The subscriptions this agent is serving.
#[derive(Clone, Default)]
pub struct LogPublishers {
    running: Arc<Mutex<HashMap<String, AbortHandle>>>,
}

impl LogPublishers {
    /// Starts (or, for a closing message, stops) serving `sub`.
    pub fn handle(
        &self,
        sub: LogSubscription,
        worker: &Worker,
        client: DispatcherClient<Channel>,
        session_id: String,
    ) {
        if sub.close {
            if let Some(h) = self.running.lock().unwrap().remove(&sub.id) {
                h.abort();
            }
            return;
        }
        let opts = options(&sub.selector.unwrap_or_default());
        let mut streams = Vec::new();
        let mut missing = Vec::new();
        for task_id in &sub.task_ids {
            match worker.controller(task_id) {
                Some(ctl) => {
                    let id = task_id.clone();
                    streams.push(ctl.logs(opts.clone()).map(move |r| (id.clone(), r)).boxed());
                }
                None => missing.push(task_id.clone()),
            }
        }
        let id = sub.id.clone();
        let running = self.running.clone();
        let task = tokio::spawn(async move {
            let (tx, rx) = mpsc::channel::<PublishLogsMessage>(4);
            let sub_id = id.clone();
            let producer = async move {
                let mut errors: Vec<String> = missing
                    .iter()
                    .map(|t| format!("task {t} has no workload on this node"))
                    .collect();
                let mut lines = futures::stream::select_all(streams).ready_chunks(CHUNK);
                while let Some(chunk) = lines.next().await {
                    let mut entries = Vec::with_capacity(chunk.len());
                    for (task_id, item) in chunk {
                        match item {
                            Ok(line) => entries.push(entry(&task_id, &line)),
                            Err(e) => errors.push(format!("task {task_id}: {e}")),
                        }
                    }
                    let msg = PublishLogsMessage {
                        session_id: session_id.clone(),
                        subscription_id: sub_id.clone(),
                        entries,
                        close: false,
                        error: String::new(),
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                let _ = tx
                    .send(PublishLogsMessage {
                        session_id,
                        subscription_id: sub_id,
                        entries: Vec::new(),
                        close: true,
                        error: errors.join("; "),
                    })
                    .await;
            };
            let mut client = client;
            let publish = client.publish_logs(ReceiverStream::new(rx));
            let (_, result) = tokio::join!(producer, publish);
            if let Err(e) = result {
                tracing::debug!(subscription = %id, "publishing logs ended: {}", e.message());
            }
            running.lock().unwrap().remove(&id);
        });
        self.running
            .lock()
            .unwrap()
            .insert(sub.id, task.abort_handle());
    }

    /// Stops serving everything (the session ended).
    pub fn stop_all(&self) {
        for (_, h) in self.running.lock().unwrap().drain() {
            h.abort();
        }
    }
}
