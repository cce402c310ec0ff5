//! The end of a run: turns a handler's outcome into a decision (complete, retry with
//! backoff, fail, snooze, hand back), has the storage layer write it fenced by the
//! run's claim (store/outcome.rs), then announces it, frees the uniqueKey of a job
//! that left the active set, settles the jobs waiting on it and wakes the worker of a
//! job due again soon.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{Bson, DateTime};

use super::dependents::Dependents;
use super::doorbell::Doorbells;
use crate::backoff::Backoff;
use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::handler::{AbortReason, AbortSignal, HandlerError, Outcome};
use crate::job::Job;
use crate::new_job::storable;
use crate::status::JobStatus;
use crate::store::{Completion, Failure, Store};

/// Longest failReason stored; handler errors can carry huge messages.
const MAX_FAIL_REASON: usize = 4096;

/// A stored stack keeps its last lines (where it was thrown from is at the top of a
/// JS stack, but the cause chain of a Rust error grows at the bottom: keep both ends).
const MAX_STACK_LINES: usize = 50;
const MAX_STACK_BYTES: usize = 8 * 1024;

/// At most `MAX_STACK_LINES` lines and `MAX_STACK_BYTES` bytes of `stack`: its head and
/// its tail, with how many lines were left out between them.
fn bounded_stack(stack: &str) -> String {
    let lines: Vec<&str> = stack.lines().collect();
    let mut kept: Vec<String> = if lines.len() <= MAX_STACK_LINES {
        lines.iter().map(|l| l.to_string()).collect()
    } else {
        let half = MAX_STACK_LINES / 2;
        let mut kept: Vec<String> = lines[..half].iter().map(|l| l.to_string()).collect();
        kept.push(format!("... {} lines left out ...", lines.len() - 2 * half));
        kept.extend(lines[lines.len() - half..].iter().map(|l| l.to_string()));
        kept
    };
    while kept.iter().map(|l| l.len() + 1).sum::<usize>() > MAX_STACK_BYTES && kept.len() > 1 {
        kept.remove(kept.len() / 2);
    }
    let mut out = kept.join("\n");
    let mut end = out.len().min(MAX_STACK_BYTES);
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

/// One run as it ended: how long its handler took and, if it was traced, its span's
/// traceparent (kept in the attempts history).
pub(crate) struct RunRecord {
    pub(crate) took: Duration,
    pub(crate) span: Option<String>,
}

pub(crate) struct Completer {
    pub(crate) store: Arc<Store>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) dependents: Arc<Dependents>,
    pub(crate) doorbells: Arc<Doorbells>,
    /// Retry delays.
    pub(crate) backoff: Backoff,
    /// Larger results are not stored (the job still completes).
    pub(crate) max_result_size: usize,
}

fn after(now: DateTime, delay: Duration) -> DateTime {
    DateTime::from_millis(now.timestamp_millis() + delay.as_millis() as i64)
}

impl Completer {
    /// Records an execution's outcome. `signal` is the run's: when stop()'s abort
    /// arrives while the write is in flight, its hand-back may win, and then a
    /// fenced-off write is expected, not a lost lease. `max_retries` is the job's
    /// worker's.
    pub(crate) async fn finish(
        &self,
        job: &Arc<Job>,
        outcome: Outcome,
        run: RunRecord,
        max_retries: u32,
        signal: &AbortSignal,
    ) {
        let written = match outcome {
            Ok(value) => self.complete(job, run, value).await,
            Err(err) => match err.snoozed_for() {
                Some(delay) => self.snooze(job, delay, run).await,
                None => self.fail(job, err, run, max_retries).await,
            },
        };
        if job.group_slot.is_some() {
            // Its group slot is free again (or was taken back by whoever ended the run):
            // a worker that found the group at its cap sleeps until told.
            self.doorbells.ring_for_group(&job.name);
        }
        match written {
            Ok(true) => {}
            Ok(false) if signal.reason() == Some(AbortReason::Shutdown) => {
                tracing::debug!(job.id = %job.id, "stop() handed the job back first; result discarded")
            }
            Ok(false) => {
                tracing::warn!(job.id = %job.id, "lease lost before the job finished; result discarded");
                self.events.emit(Event::JobError {
                    error: format!(
                        "job {} lost its lease before finishing; its result was discarded",
                        job.id
                    ),
                    code: "LEASE_LOST",
                    job: Some(job.clone()),
                });
            }
            Err(err) => self.events.error(&err, Some(job.clone())),
        }
    }

    /// A handler's result as it will be stored, or `None` (reported) when it cannot be:
    /// larger than `max_result_size`, or with keys MongoDB would read as operators.
    /// The job completes either way.
    fn storable_result(
        &self,
        job: &Arc<Job>,
        value: serde_json::Value,
    ) -> Option<(Bson, serde_json::Value)> {
        match storable(&value, self.max_result_size) {
            Ok(stored) => Some((stored, value)),
            Err(err) => {
                let why = err.to_string();
                tracing::warn!(job.id = %job.id, %why, "result not stored");
                self.events.emit(Event::JobError {
                    error: format!("the result of job {} was not stored: {why}", job.id),
                    code: "RESULT_NOT_STORED",
                    job: Some(job.clone()),
                });
                None
            }
        }
    }

    /// True when the write matched this execution's claim.
    async fn complete(
        &self,
        job: &Arc<Job>,
        run: RunRecord,
        value: Option<serde_json::Value>,
    ) -> Result<bool> {
        let result = value.and_then(|v| self.storable_result(job, v));
        let took = run.took;
        let completion = Completion {
            took,
            span: run.span,
            result,
        };
        let Some(done) = self.store.complete(job, completion).await? else {
            return Ok(false);
        };
        self.after_write(&done).await;
        if done.status == JobStatus::Failed {
            let error = done.fail_reason.clone().unwrap_or_default();
            tracing::warn!(job.id = %job.id, %error, "schedule ended: unusable");
            self.events.emit(Event::JobFailed {
                job: Arc::new(done),
                error,
                will_retry: false,
            });
            return Ok(true);
        }
        tracing::debug!(job.id = %job.id, ms = took.as_millis() as u64, "completed");
        self.events.emit(Event::JobCompleted {
            job: Arc::new(done),
            duration: took,
        });
        Ok(true)
    }

    async fn fail(
        &self,
        job: &Arc<Job>,
        err: HandlerError,
        run: RunRecord,
        max_retries: u32,
    ) -> Result<bool> {
        let fail_count = job.fail_count + 1;
        let will_retry = err.is_retryable() && fail_count <= max_retries;
        let reason: String = err.message().chars().take(MAX_FAIL_REASON).collect();
        let delay = will_retry.then(|| self.backoff.next_delay(fail_count));
        let failure = Failure {
            reason,
            stack: err.stack().map(bounded_stack),
            took: run.took,
            span: run.span,
            retry_at: delay.map(|d| after(self.store.now(), d)),
        };
        let Some(failed) = self.store.fail(job, &failure).await? else {
            return Ok(false);
        };
        self.after_write(&failed).await;
        let stack = failure.stack.as_deref().unwrap_or("");
        if will_retry {
            tracing::warn!(job.id = %job.id, job.name = %job.name, fail_count, reason = %failure.reason, "failed; will retry");
        } else {
            tracing::error!(job.id = %job.id, job.name = %job.name, fail_count, reason = %failure.reason, stack, "failed for good");
        }
        self.announce_failure(Arc::new(failed), failure.reason, delay);
        Ok(true)
    }

    /// `job:fail`, and `job:retry` when it runs again after `delay`.
    fn announce_failure(&self, failed: Arc<Job>, error: String, delay: Option<Duration>) {
        self.events.emit(Event::JobFailed {
            job: failed.clone(),
            error,
            will_retry: delay.is_some(),
        });
        if let Some(delay) = delay {
            self.events.emit(Event::JobRetry {
                next_run_at: failed.next_run_at,
                job: failed,
                delay,
            });
        }
    }

    /// A job whose lease expired more than `max_stalls` times: this stall counts as a
    /// failed attempt, retried with backoff or `failed` as any failure. False when its
    /// worker renewed the lease meanwhile (it is alive after all).
    pub(crate) async fn fail_stalled(&self, job: &Job, max_retries: u32) -> Result<bool> {
        let stalls = job.stall_count + 1;
        let fail_count = job.fail_count + 1;
        let will_retry = fail_count <= max_retries;
        let now = self.store.now();
        let delay = will_retry.then(|| self.backoff.next_delay(fail_count));
        let ran = job
            .locked_at
            .map_or(0, |at| now.timestamp_millis() - at.timestamp_millis());
        let failure = Failure {
            reason: format!(
                "stalled {stalls} times: its worker stopped renewing the lease before the run ended (the process died, hung or lost the server)"
            ),
            stack: None,
            took: Duration::from_millis(ran.max(0) as u64),
            span: None,
            retry_at: delay.map(|d| after(now, d)),
        };
        let Some(failed) = self.store.fail_stalled(job, &failure).await? else {
            return Ok(false);
        };
        self.after_write(&failed).await;
        tracing::error!(job.id = %job.id, job.name = %job.name, stalls, will_retry, "stalled too often: counted as a failure");
        let failed = Arc::new(failed);
        self.events.emit(Event::JobStalled {
            job: failed.clone(),
            stall_count: stalls,
            counted_as_failure: true,
        });
        self.announce_failure(failed, failure.reason, delay);
        Ok(true)
    }

    /// Puts the job back to `pending`, due `delay` from now, as the handler asked.
    async fn snooze(&self, job: &Arc<Job>, delay: Duration, run: RunRecord) -> Result<bool> {
        let until = after(self.store.now(), delay);
        let snoozed = self.store.snooze(job, until, run.took, run.span.as_deref());
        let Some(snoozed) = snoozed.await? else {
            return Ok(false);
        };
        self.after_write(&snoozed).await;
        tracing::info!(job.id = %job.id, delay_ms = delay.as_millis() as u64, "snoozed");
        self.events.emit(Event::JobSnoozed {
            next_run_at: snoozed.next_run_at,
            job: Arc::new(snoozed),
            delay,
        });
        Ok(true)
    }

    /// After an outcome is written: a job that left the active set frees its uniqueKey;
    /// one due again soon gets its worker woken on time.
    async fn after_write(&self, job: &Job) {
        if job.has_dependents {
            match job.status {
                JobStatus::Completed => self.dependents.release_dependents(job.id).await,
                JobStatus::Failed => self.dependents.fail_dependents(vec![job.id]).await,
                _ => {}
            }
        }
        if job.status == JobStatus::Pending {
            // Due again (a retry, a snooze, a schedule's next run): its group must say so.
            self.store.note_jobs_due([job]).await;
        }
        if job.status.is_active() {
            self.doorbells.ring_at(&job.name, job.next_run_at);
        } else {
            self.store.release_key(job).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_stack_keeps_its_head_and_tail_within_bounds() {
        let stack: String = (0..500)
            .map(|i| format!("    at frame{i} (file.js:{i}:1)\n"))
            .collect();
        let kept = bounded_stack(&stack);
        assert!(kept.len() <= MAX_STACK_BYTES);
        assert!(kept.lines().count() <= MAX_STACK_LINES + 1);
        assert!(kept.starts_with("    at frame0 "));
        assert!(kept.ends_with("(file.js:499:1)"));
        assert!(kept.contains("lines left out"));
        assert_eq!(bounded_stack("Error: x\n    at a"), "Error: x\n    at a");
        let wide = "y".repeat(20_000);
        assert!(bounded_stack(&wide).len() <= MAX_STACK_BYTES);
    }
}
