//! Wake-ups: a local enqueue wakes the local worker directly (client.rs); a change
//! stream on the collection wakes workers when another process enqueues or a job
//! becomes `pending` again, and aborts a local run whose job another process cancelled.
//! Polling every `poll_interval` is the fallback, always on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mongodb::bson::{doc, Document};
use tokio_util::sync::CancellationToken;

use crate::client::Inner;

/// How idle workers learn about new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NotifyMode {
    /// The queue is not started.
    Off = 0,
    /// Local wake-ups plus polling every `poll_interval`.
    Polling = 1,
    /// Local wake-ups plus a change stream, with polling as a safety net.
    ChangeStream = 2,
}

impl NotifyMode {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => NotifyMode::Polling,
            2 => NotifyMode::ChangeStream,
            _ => NotifyMode::Off,
        }
    }

    /// `"off"`, `"polling"` or `"change-stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyMode::Off => "off",
            NotifyMode::Polling => "polling",
            NotifyMode::ChangeStream => "change-stream",
        }
    }
}

const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

pub(crate) async fn watch(inner: Arc<Inner>, stop: CancellationToken) {
    let mut retry_delay = Duration::from_secs(1);
    loop {
        let pipeline = [doc! { "$match": { "$or": [
            // Not jobs inserted already claimed (handoff.rs): nothing to claim there.
            { "operationType": "insert", "fullDocument.status": "pending" },
            { "operationType": "update", "updateDescription.updatedFields.status": "pending" },
            // A job cancelled while it runs: its worker aborts the run.
            { "operationType": "update", "updateDescription.updatedFields.status": "cancelled" },
        ] } }];
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = inner.coll.watch().pipeline(pipeline) => opened,
        };
        match opened {
            Ok(stream) => {
                let mut stream = stream.with_type::<Document>();
                inner
                    .notify_mode
                    .store(NotifyMode::ChangeStream as u8, Ordering::Relaxed);
                retry_delay = Duration::from_secs(1);
                loop {
                    let event = tokio::select! {
                        _ = stop.cancelled() => return,
                        event = stream.next() => event,
                    };
                    match event {
                        Some(Ok(event)) => dispatch(&inner, &event),
                        Some(Err(err)) => {
                            tracing::debug!(%err, "change stream ended; polling until it reopens");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(err) => tracing::debug!(%err, "cannot open a change stream; polling"),
        }
        inner
            .notify_mode
            .store(NotifyMode::Polling as u8, Ordering::Relaxed);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(retry_delay) => {}
        }
        retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
    }
}

fn dispatch(inner: &Arc<Inner>, event: &Document) {
    let status = event
        .get_document("updateDescription")
        .and_then(|u| u.get_document("updatedFields"))
        .and_then(|f| f.get_str("status"));
    if status == Ok("cancelled") {
        if let Ok(id) = event
            .get_document("documentKey")
            .and_then(|k| k.get_object_id("_id"))
        {
            // Events can lag: the job may have been retried and claimed here again
            // since. Abort only while it is still cancelled.
            let inner = inner.clone();
            tokio::spawn(async move {
                let still = inner
                    .coll
                    .find_one(doc! { "_id": id, "status": "cancelled" })
                    .projection(doc! { "_id": 1 })
                    .await;
                if matches!(still, Ok(Some(_))) {
                    inner.running.cancel(id);
                }
            });
        }
        return;
    }
    let name = event
        .get_document("fullDocument")
        .ok()
        .and_then(|d| d.get_str("name").ok());
    match name {
        Some(name) => inner.wake(name),
        // Updates carry no name: wake every worker (this is rare: retries, recoveries).
        None => inner.wake_all(),
    }
}
