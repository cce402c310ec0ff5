//! Graceful shutdown: stop claiming, wait for running handlers up to the timeout, then
//! abort their signals and hand their jobs back to `pending` at once (no waiting for the
//! lease), and finally stop the background services.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{Inner, Services};
use crate::error::Result;
use crate::events::Event;
use crate::notify::NotifyMode;

pub(crate) async fn run(inner: &Arc<Inner>, services: Services, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    services.claiming.cancel();
    // After the producers exit, `running` holds every claimed job. A producer still
    // claiming at the deadline is aborted; if its claim landed anyway, that job is
    // recovered once its lease expires.
    for producer in services.producers {
        let abort = producer.abort_handle();
        if tokio::time::timeout_at(deadline, producer).await.is_err() {
            abort.abort();
        }
    }
    let drained = inner
        .running
        .wait_idle(deadline.saturating_duration_since(Instant::now()))
        .await;
    let released = if drained {
        Ok(0)
    } else {
        services.abort.cancel();
        let running = inner.running.snapshot();
        tracing::warn!(
            running = running.len(),
            "shutdown timeout reached; handing unfinished jobs back"
        );
        inner.release(&running).await
    };
    services.background.cancel();
    for task in services.maintenance {
        let _ = task.await;
    }
    inner
        .notify_mode
        .store(NotifyMode::Off as u8, Ordering::Relaxed);
    if let Ok(count @ 1..) = released {
        inner.emit(Event::JobsReleased { count });
    }
    tracing::info!(instance = %inner.instance_id, "monque stopped");
    released
}
