//! What a worker runs: anything implementing [`Handler`], most often an async closure
//! `|ctx: JobContext| async move { ... }` returning `Result<T: Serialize, E>`.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::job::Job;
use crate::trace_context::TraceContext;

/// Longest [`HandlerError::snooze`] delay: one year.
pub const MAX_SNOOZE: Duration = Duration::from_secs(365 * 86_400);

/// Why a handler failed. Build one from any `std::error::Error`, a `String` or a `&str`;
/// use [`HandlerError::permanent`] to fail the job at once, without retries, and
/// [`HandlerError::snooze`] to run it again later without counting a failure.
#[derive(Debug, Clone)]
pub struct HandlerError {
    message: String,
    retryable: bool,
    snooze: Option<Duration>,
    stack: Option<String>,
}

impl HandlerError {
    /// A failure that follows the retry rules.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retryable: true,
            snooze: None,
            stack: None,
        }
    }

    /// A failure that marks the job `failed` at once, whatever retries are left.
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retryable: false,
            snooze: None,
            stack: None,
        }
    }

    /// Not a failure: the job goes back to `pending`, due `delay` from now, with its
    /// `failCount` unchanged (`job:snoozed`). For work that is not ready yet, or a
    /// downstream service asking to be called later. `delay` is taken between 1 ms and
    /// [`MAX_SNOOZE`].
    pub fn snooze(delay: Duration) -> Self {
        let delay = delay.clamp(Duration::from_millis(1), MAX_SNOOZE);
        HandlerError {
            message: format!("snoozed for {} ms", delay.as_millis()),
            retryable: true,
            snooze: Some(delay),
            stack: None,
        }
    }

    /// How long the handler asked to snooze, for [`HandlerError::snooze`].
    pub fn snoozed_for(&self) -> Option<Duration> {
        self.snooze
    }

    /// The failure message stored as `failReason`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// False for [`HandlerError::permanent`] failures.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Adds where the failure came from (a stack trace, a chain of causes), stored on
    /// the job as `failStack` (its last lines) for operators.
    pub fn with_stack(mut self, stack: impl Into<String>) -> Self {
        self.stack = Some(stack.into()).filter(|s: &String| !s.trim().is_empty());
        self
    }

    /// Where the failure came from, if known.
    pub fn stack(&self) -> Option<&str> {
        self.stack.as_deref()
    }
}

/// Any error type, `String` or `&str` converts (with `?` or `.into()`) to a retryable
/// failure; an error's chain of causes becomes its stack.
impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for HandlerError {
    fn from(err: E) -> Self {
        let err = err.into();
        let mut causes = Vec::new();
        let mut source = err.source();
        while let Some(cause) = source {
            causes.push(format!("caused by: {cause}"));
            source = cause.source();
        }
        HandlerError::new(err.to_string()).with_stack(causes.join("\n"))
    }
}

/// Aborted when `stop()`'s timeout passes (the job is then handed back to `pending`),
/// when the job's own `timeout` passes (the run then counts as a failure) or when the
/// job is cancelled while it runs, from any process (it stays `cancelled`). Either way
/// whatever the handler returns afterwards is discarded. Long handlers should watch it
/// and return early.
#[derive(Debug, Clone)]
pub struct AbortSignal {
    pub(crate) token: CancellationToken,
    /// Why it aborted; `UNSET` when the token was cancelled from its parent (shutdown).
    reason: Arc<AtomicU8>,
}

/// Why an [`AbortSignal`] aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// `stop()`'s timeout passed.
    Shutdown,
    /// The worker's `timeout` for one run passed.
    Timeout,
    /// The job was cancelled while it ran (`cancel_job`, from this or another process).
    Cancelled,
    /// This run lost its lease (its heartbeats did not reach the server in time) and
    /// the job was recovered, perhaps already claimed by another instance. Whatever
    /// the run returns is not written.
    LeaseLost,
}

const UNSET: u8 = 0;
const TIMEOUT: u8 = 1;
const CANCELLED: u8 = 2;
const LEASE_LOST: u8 = 3;

impl AbortSignal {
    pub(crate) fn new(token: CancellationToken) -> Self {
        AbortSignal {
            token,
            reason: Arc::default(),
        }
    }

    /// Aborts because the run took longer than its timeout.
    pub(crate) fn time_out(&self) {
        self.abort_with(TIMEOUT);
    }

    /// Aborts because the job was cancelled.
    pub(crate) fn cancel(&self) {
        self.abort_with(CANCELLED);
    }

    /// Aborts because the run no longer holds its job.
    pub(crate) fn lose_lease(&self) {
        self.abort_with(LEASE_LOST);
    }

    /// The first reason stands: a signal that already aborted keeps its reason.
    fn abort_with(&self, reason: u8) {
        if self.token.is_cancelled() {
            return;
        }
        let _ = self
            .reason
            .compare_exchange(UNSET, reason, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    /// True once the signal has aborted.
    pub fn is_aborted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the signal aborts.
    pub async fn aborted(&self) {
        self.token.cancelled().await
    }

    /// Why it aborted, once it has.
    pub fn reason(&self) -> Option<AbortReason> {
        if !self.is_aborted() {
            return None;
        }
        Some(match self.reason.load(Ordering::SeqCst) {
            TIMEOUT => AbortReason::Timeout,
            CANCELLED => AbortReason::Cancelled,
            LEASE_LOST => AbortReason::LeaseLost,
            _ => AbortReason::Shutdown,
        })
    }
}

/// Where a run's progress goes (runtime/progress.rs): kept behind a trait so the
/// handler types need nothing of the runtime.
pub(crate) trait ProgressSink: Send + Sync {
    fn update_progress(
        &self,
        id: mongodb::bson::oid::ObjectId,
        claim_id: mongodb::bson::oid::ObjectId,
        value: serde_json::Value,
    ) -> BoxFuture<'_, crate::Result<bool>>;
}

/// Where a run's span is named, once known: shared by the run's context, the executor
/// that keeps it in the attempts history, and the Node binding that names it early.
#[derive(Clone, Default)]
pub(crate) struct RunSpan(Arc<std::sync::Mutex<Option<String>>>);

impl RunSpan {
    pub(crate) fn new(traceparent: Option<String>) -> Self {
        RunSpan(Arc::new(std::sync::Mutex::new(traceparent)))
    }

    /// Names the span: a W3C `traceparent`; anything else is ignored.
    pub(crate) fn record(&self, traceparent: &str) {
        if crate::trace_context::is_traceparent(traceparent) {
            *self.0.lock().expect("span lock") = Some(traceparent.to_owned());
        }
    }

    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().expect("span lock").take()
    }
}

/// What a handler receives for one execution.
#[derive(Clone)]
pub struct JobContext {
    /// The claimed job (`status` is `processing`, `claim_id` is set).
    pub job: Arc<Job>,
    /// Aborts when the handler must stop.
    pub signal: AbortSignal,
    /// Weak: a context kept after its queue is gone writes nothing.
    pub(crate) progress: std::sync::Weak<dyn ProgressSink>,
    /// The span this run is traced as, once known (record_span).
    pub(crate) span: RunSpan,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job)
            .field("signal", &self.signal)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// Stores how far this run got (a number or small JSON) on the job, fenced by this
    /// execution's claim, and emits `job:progress`. False when the run no longer holds
    /// the job (its lease was lost).
    pub async fn update_progress(&self, value: serde_json::Value) -> crate::Result<bool> {
        let (Some(progress), Some(claim)) = (self.progress.upgrade(), self.job.claim_id) else {
            return Ok(false);
        };
        progress.update_progress(self.job.id, claim, value).await
    }

    /// Names the span this run is traced as (a W3C `traceparent`; anything else is
    /// ignored). It is kept in the job's attempts history when the run ends, and the
    /// next attempt of the job links to it. The `opentelemetry` feature and the Node
    /// binding record it for you.
    pub fn record_span(&self, traceparent: &str) {
        self.span.record(traceparent);
    }

    /// The context this run's span continues: the job's, from whoever enqueued it.
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.job.trace_context.as_ref()
    }

    /// The traceparent of the job's previous attempt, if that run was traced and did not
    /// succeed (a schedule's last run is an earlier occurrence, not an earlier attempt).
    pub fn previous_attempt_span(&self) -> Option<&str> {
        self.job.previous_attempt_span()
    }
}

/// The outcome of one execution: the value to store (if any) or why it failed.
pub type Outcome = Result<Option<serde_json::Value>, HandlerError>;

/// A job handler. Implemented for async closures; implement it yourself for stateful
/// handlers (the Node binding does).
pub trait Handler: Send + Sync + 'static {
    /// Runs one execution of a job.
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Outcome>;
}

impl<F, Fut, T, E> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: serde::Serialize,
    E: Into<HandlerError>,
{
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        let fut = self(ctx);
        Box::pin(async move {
            let value = fut.await.map_err(Into::into)?;
            match serde_json::to_value(value) {
                Ok(serde_json::Value::Null) => Ok(None),
                Ok(v) => Ok(Some(v)),
                Err(e) => Err(HandlerError::new(format!(
                    "handler result is not JSON: {e}"
                ))),
            }
        })
    }
}
