//! Runs one claimed job: calls the handler in its own task (so a panic is a failure, not
//! a crash), enforces its timeout, then hands the outcome to the completer. Every run
//! is in the running set (running.rs) from start to end.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::completer::{Completer, RunRecord};
use super::progress::Progress;
use super::run_span::{record_outcome, run_span, traceparent_of};
use super::running::Running;
use super::slots::Slots;
use crate::events::{Event, EventBus};
use crate::handler::{
    AbortReason, AbortSignal, Handler, HandlerError, JobContext, ProgressSink, RunSpan,
};
use crate::job::Job;

/// How long a timed-out Rust handler may go on after its signal aborted before its task
/// is cancelled (long enough for the Node binding to tell JavaScript).
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// A job name's handler with the settings its runs need.
pub(crate) struct RegisteredHandler {
    pub(crate) handler: Arc<dyn Handler>,
    /// Failed runs retried before the job is `failed`.
    pub(crate) max_retries: u32,
    /// Longest a run may take, if limited (a job's own `timeout` wins).
    pub(crate) timeout: Option<Duration>,
}

pub(crate) struct Executor {
    running: Arc<Running>,
    completer: Arc<Completer>,
    events: Arc<EventBus>,
    progress: Arc<Progress>,
}

impl Executor {
    pub(crate) fn new(
        running: Arc<Running>,
        completer: Arc<Completer>,
        events: Arc<EventBus>,
        progress: Arc<Progress>,
    ) -> Self {
        Executor {
            running,
            completer,
            events,
            progress,
        }
    }

    /// Runs `job`, claimed by a write sent at `claim_sent` (its lease counts from then).
    pub(crate) fn execute(
        self: &Arc<Self>,
        worker: Arc<RegisteredHandler>,
        job: Job,
        slots: Slots,
        abort_root: &CancellationToken,
        claim_sent: tokio::time::Instant,
    ) {
        let signal = AbortSignal::new(abort_root.child_token());
        self.execute_with(worker, job, slots, signal, claim_sent);
    }

    /// Runs `job` under `signal`, which a hand-off made before the job existed.
    pub(crate) fn execute_with(
        self: &Arc<Self>,
        worker: Arc<RegisteredHandler>,
        job: Job,
        slots: Slots,
        signal: AbortSignal,
        claim_sent: tokio::time::Instant,
    ) {
        let Some(claim_id) = job.claim_id else {
            tracing::error!(job.id = %job.id, "claimed job has no claimId; skipped");
            return;
        };
        let execution = (job.id, claim_id);
        self.running.insert(execution, signal.clone(), claim_sent);
        let span = run_span(&job);
        let exec = self.clone();
        tokio::spawn(
            async move {
                let job = Arc::new(job);
                exec.events.emit(Event::JobStarted { job: job.clone() });
                let started = Instant::now();
                let recorded = RunSpan::new(traceparent_of(&tracing::Span::current()));
                let ctx = JobContext {
                    job: job.clone(),
                    signal: signal.clone(),
                    progress: Arc::downgrade(&exec.progress) as Weak<dyn ProgressSink>,
                    span: recorded.clone(),
                };
                // `call` itself runs inside the task too: a panic before its future
                // exists is caught like one inside it.
                let handler = worker.handler.clone();
                // In the run's span, so spans the handler starts nest under it.
                let mut run = tokio::spawn(async move { handler.call(ctx).await }.in_current_span());
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
                        exec.events.emit(Event::JobError {
                            error: format!("job {} timed out after {limit} ms", job.id),
                            code: "JOB_TIMEOUT",
                            job: Some(job.clone()),
                        });
                        Err(HandlerError::new(format!("timed out after {limit} ms")))
                    }
                };
                // The handler is done: its slots go to the next run while the outcome
                // is written (slots.rs), and the run stays registered until written.
                let writing = slots.trade_for_write();
                let traced_as = recorded.take();
                match signal.reason() {
                    // Cancelled while it ran: the job is `cancelled` already and the
                    // status fence would refuse any write of this run.
                    Some(AbortReason::Cancelled) => {
                        tracing::info!(job.id = %job.id, "run ended after its job was cancelled");
                    }
                    // stop() sent its abort: it hands the job back (shutdown.rs), and
                    // whatever the run returned now is not written, success or not.
                    Some(AbortReason::Shutdown) => {
                        tracing::debug!(job.id = %job.id, "run ended after stop() handed its job back; result discarded");
                    }
                    _ => {
                        // Only an outcome that is written marks the span: a hand-back
                        // or a cancel is not the run failing.
                        record_outcome(&outcome);
                        exec.completer
                            .finish(&job, outcome, RunRecord { took: started.elapsed(), span: traced_as }, worker.max_retries, &signal)
                            .await
                    }
                }
                exec.running.remove(&execution);
                drop(writing);
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
