//! Graceful shutdown: stop claiming, wait for running handlers up to the timeout, then
//! abort their signals and hand their jobs back to `pending` at once (no waiting for the
//! lease), and finally stop the background services.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::running::Running;
use crate::error::Result;
use crate::store::Store;

/// What `start()` set going and `stop()` must wind down.
pub(crate) struct Services {
    /// Cancelled first on stop: no more claims.
    pub(crate) claiming: CancellationToken,
    /// Cancelled after the drain: heartbeats, recovery and change stream stop.
    pub(crate) background: CancellationToken,
    /// Aborts running handlers' signals when the shutdown timeout passes.
    pub(crate) abort: CancellationToken,
    pub(crate) workers: Vec<JoinHandle<()>>,
    pub(crate) maintenance: Vec<JoinHandle<()>>,
}

/// Winds `services` down; returns how many jobs were handed back.
pub(crate) async fn run(
    services: Services,
    running: &Running,
    store: &Store,
    timeout: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    services.claiming.cancel();
    // After the workers exit, `running` holds every claimed job. A worker still
    // claiming at the deadline is aborted; if its claim landed anyway, that job is
    // recovered once its lease expires.
    for worker in services.workers {
        let abort = worker.abort_handle();
        if tokio::time::timeout_at(deadline, worker).await.is_err() {
            abort.abort();
        }
    }
    let drained = running
        .wait_idle(deadline.saturating_duration_since(Instant::now()))
        .await;
    let released = if drained {
        Ok(0)
    } else {
        // One rule however the race falls: every run still in flight when the abort is
        // sent is handed back, and a result it returns afterwards is not written
        // (executor.rs), so the count is what was really handed back. The snapshot
        // comes first: a run that ends between the two is in it, and either its own
        // write or this release lands, fenced by its claim, never both.
        let unfinished = running.snapshot();
        services.abort.cancel();
        tracing::warn!(
            running = unfinished.len(),
            "shutdown timeout reached; handing unfinished jobs back"
        );
        store.release(&unfinished).await
    };
    services.background.cancel();
    for task in services.maintenance {
        let _ = task.await;
    }
    released
}
