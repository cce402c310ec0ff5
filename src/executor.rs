//! Runs one claimed job: calls the handler in its own task (so a panic is a failure, not
//! a crash), then hands the outcome to the completer. Tracks what is running so the
//! heartbeat can renew leases and shutdown can wait for, abort and hand back jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongodb::bson::oid::ObjectId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::Inner;
use crate::events::Event;
use crate::handler::{AbortReason, AbortSignal, HandlerError, JobContext};
use crate::job::Job;
use crate::worker::{Slots, Worker};

/// How long a timed-out Rust handler may go on after its signal aborted before its task
/// is cancelled (long enough for the Node binding to tell JavaScript).
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// The executions in flight on this instance, as `(job id, claim id)` pairs (a batch
/// claim gives its jobs one claim id, so only the pair names an execution), with the
/// signal that aborts each.
pub(crate) struct Running {
    jobs: Mutex<HashMap<(ObjectId, ObjectId), AbortSignal>>,
    count: watch::Sender<usize>,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            jobs: Mutex::default(),
            count: watch::Sender::new(0),
        }
    }
}

impl Running {
    pub(crate) fn insert(&self, execution: (ObjectId, ObjectId), signal: AbortSignal) {
        let mut jobs = self.jobs.lock().expect("running lock");
        jobs.insert(execution, signal);
        self.count.send_replace(jobs.len());
    }

    pub(crate) fn remove(&self, execution: &(ObjectId, ObjectId)) {
        let mut jobs = self.jobs.lock().expect("running lock");
        jobs.remove(execution);
        self.count.send_replace(jobs.len());
    }

    /// `(job id, claim id)` of every execution in flight.
    pub(crate) fn snapshot(&self) -> Vec<(ObjectId, ObjectId)> {
        let jobs = self.jobs.lock().expect("running lock");
        jobs.keys().copied().collect()
    }

    /// Aborts this instance's executions of job `id` because it was cancelled (a no-op
    /// for those already aborted, whose first reason stands).
    pub(crate) fn cancel(&self, id: ObjectId) {
        let jobs = self.jobs.lock().expect("running lock");
        for ((job, _), signal) in jobs.iter() {
            if *job == id {
                signal.cancel();
            }
        }
    }

    /// Waits until nothing runs; false if `timeout` passed first.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let idle = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        idle.is_ok()
    }
}

impl Inner {
    pub(crate) fn execute(
        self: &Arc<Self>,
        worker: Arc<Worker>,
        job: Job,
        slots: Slots,
        abort_root: &CancellationToken,
    ) {
        let signal = AbortSignal::new(abort_root.child_token());
        self.execute_with(worker, job, slots, signal);
    }

    /// Runs `job` under `signal`, which a hand-off made before the job existed.
    pub(crate) fn execute_with(
        self: &Arc<Self>,
        worker: Arc<Worker>,
        job: Job,
        slots: Slots,
        signal: AbortSignal,
    ) {
        let Some(claim_id) = job.claim_id else {
            tracing::error!(job.id = %job.id, "claimed job has no claimId; skipped");
            return;
        };
        let execution = (job.id, claim_id);
        self.running.insert(execution, signal.clone());
        let span = tracing::info_span!("monque.job", job.id = %job.id, job.name = %job.name, attempt = job.fail_count + 1);
        let inner = self.clone();
        tokio::spawn(
            async move {
                let job = Arc::new(job);
                inner.emit(Event::JobStarted { job: job.clone() });
                let started = Instant::now();
                let ctx = JobContext {
                    job: job.clone(),
                    signal: signal.clone(),
                    queue: Arc::downgrade(&inner),
                };
                // `call` itself runs inside the task too: a panic before its future
                // exists is caught like one inside it.
                let handler = worker.handler.clone();
                let mut run = tokio::spawn(async move { handler.call(ctx).await });
                // The job's own timeout, else its worker's.
                let limit = job
                    .timeout_ms
                    .map(|ms| Duration::from_millis(ms.max(1) as u64))
                    .or(worker.timeout);
                let joined = match limit {
                    None => Some((&mut run).await),
                    Some(limit) => tokio::time::timeout(limit, &mut run).await.ok(),
                };
                let outcome = match joined {
                    Some(Ok(outcome)) => outcome,
                    Some(Err(err)) => Err(HandlerError::new(format!(
                        "handler panicked: {}",
                        panic_message(err)
                    ))),
                    // stop() aborted it first and handed the job back: that reason stands.
                    None if signal.is_aborted() => Err(HandlerError::new("aborted by shutdown")),
                    None => {
                        // The handler hangs or ignores its time: abort its signal, stop
                        // waiting (its result is never read) and count the run as a
                        // failure. A Rust handler still running after a grace period is
                        // cancelled; a JavaScript one cannot be, it only sees its signal.
                        signal.time_out();
                        let stray = run.abort_handle();
                        tokio::spawn(async move {
                            tokio::time::sleep(TIMEOUT_GRACE).await;
                            stray.abort();
                        });
                        let limit = limit.unwrap_or_default().as_millis();
                        tracing::warn!(job.id = %job.id, limit_ms = limit as u64, "job timed out");
                        inner.emit(Event::JobError {
                            error: format!("job {} timed out after {limit} ms", job.id),
                            code: "JOB_TIMEOUT",
                            job: Some(job.clone()),
                        });
                        Err(HandlerError::new(format!("timed out after {limit} ms")))
                    }
                };
                match signal.reason() {
                    // Cancelled while it ran: the job is `cancelled` already and the
                    // status fence would refuse any write of this run.
                    Some(AbortReason::Cancelled) => {
                        tracing::info!(job.id = %job.id, "run ended after its job was cancelled");
                    }
                    reason => {
                        let shutdown = reason == Some(AbortReason::Shutdown);
                        inner
                            .finish(&worker, &job, outcome, started.elapsed(), shutdown)
                            .await
                    }
                }
                inner.running.remove(&execution);
                drop(slots);
            }
            .instrument(span),
        );
    }
}

fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into()),
        Err(err) => err.to_string(),
    }
}
