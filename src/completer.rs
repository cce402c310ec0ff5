//! Writes the end of an execution: `completed`, a retry back to `pending` with backoff,
//! `failed`, or a hand-back on shutdown. Every write matches `{_id, claimId, processing}`:
//! a worker that lost its lease can never overwrite a newer execution (fencing).

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};

use crate::client::Inner;
use crate::error::Result;
use crate::events::Event;
use crate::handler::{HandlerError, Outcome};
use crate::job::{Job, JobStatus};
use crate::worker::Worker;

/// Longest failReason stored; handler errors can carry huge messages.
const MAX_FAIL_REASON: usize = 4096;

/// The fencing filter: this execution's claim and nothing else.
pub(crate) fn fenced(job: &Job) -> Document {
    doc! { "_id": job.id, "claimId": job.claim_id, "status": JobStatus::Processing.as_str() }
}

/// The fencing filter for several executions, given as `(job id, claim id)` pairs.
/// Claim ids are unique per execution, so matching both lists is as strict as
/// matching each pair.
pub(crate) fn fenced_many(executions: &[(ObjectId, ObjectId)]) -> Document {
    let (ids, claims): (Vec<_>, Vec<_>) = executions.iter().copied().unzip();
    doc! { "_id": { "$in": ids }, "claimId": { "$in": claims }, "status": JobStatus::Processing.as_str() }
}

/// The lock fields a job drops when it goes back to `pending`.
pub(crate) fn unlock() -> Document {
    doc! { "claimId": "", "claimedBy": "", "lockedAt": "", "leaseExpiresAt": "" }
}

impl Inner {
    /// Records an execution's outcome. `aborted` says the shutdown timeout already handed
    /// the job back, in which case a fenced-off write is expected and not an error.
    pub(crate) async fn finish(
        &self,
        worker: &Worker,
        job: &Arc<Job>,
        outcome: Outcome,
        took: Duration,
        aborted: bool,
    ) {
        let written = match outcome {
            Ok(_) => self.complete(job, took).await,
            // Failing because stop() aborted it is not the job's fault: hand it back
            // (fenced, so a no-op if the hand-back already happened).
            Err(_) if aborted => match job.claim_id {
                Some(claim) => self.release(&[(job.id, claim)]).await.map(|_| false),
                None => Ok(false),
            },
            Err(err) => self.fail(worker, job, err).await,
        };
        match written {
            Ok(true) => {}
            Ok(false) if aborted => {
                tracing::debug!(job.id = %job.id, "result of a handed-back job discarded")
            }
            Ok(false) => {
                tracing::warn!(job.id = %job.id, "lease lost before the job finished; result discarded");
                self.emit(Event::JobError {
                    error: format!(
                        "job {} lost its lease before finishing; its result was discarded",
                        job.id
                    ),
                    code: "LEASE_LOST",
                    job: Some(job.clone()),
                });
            }
            Err(err) => self.emit(Event::JobError {
                error: err.to_string(),
                code: err.code(),
                job: Some(job.clone()),
            }),
        }
    }

    /// True when the write matched this execution's claim.
    async fn complete(&self, job: &Arc<Job>, took: Duration) -> Result<bool> {
        let now = DateTime::now();
        let update = doc! {
            "$set": { "status": JobStatus::Completed.as_str(), "completedAt": now, "updatedAt": now },
            "$unset": { "claimId": "", "leaseExpiresAt": "" },
        };
        let res = self
            .coll
            .update_one(fenced(job), update)
            .await
            .map_err(|e| self.db_err(e))?;
        if res.matched_count == 0 {
            return Ok(false);
        }
        let mut done = Job::clone(job);
        done.status = JobStatus::Completed;
        done.completed_at = Some(now);
        done.updated_at = now;
        done.claim_id = None;
        done.lease_expires_at = None;
        self.release_key(job).await;
        tracing::debug!(job.id = %job.id, ms = took.as_millis() as u64, "completed");
        self.emit(Event::JobCompleted {
            job: Arc::new(done),
            duration: took,
        });
        Ok(true)
    }

    async fn fail(&self, worker: &Worker, job: &Arc<Job>, err: HandlerError) -> Result<bool> {
        let now = DateTime::now();
        let fail_count = job.fail_count + 1;
        let will_retry = err.is_retryable() && fail_count <= worker.max_retries;
        let reason: String = err.message().chars().take(MAX_FAIL_REASON).collect();
        let mut failed = Job::clone(job);
        failed.fail_count = fail_count;
        failed.fail_reason = Some(reason.clone());
        failed.updated_at = now;
        failed.claim_id = None;
        failed.lease_expires_at = None;
        let mut set = doc! { "failCount": fail_count, "failReason": &reason, "updatedAt": now };
        let delay = will_retry.then(|| self.opts.backoff.next_delay(fail_count));
        let unset = match delay {
            Some(delay) => {
                let next = DateTime::from_millis(now.timestamp_millis() + delay.as_millis() as i64);
                set.insert("status", JobStatus::Pending.as_str());
                set.insert("nextRunAt", next);
                failed.status = JobStatus::Pending;
                failed.next_run_at = next;
                failed.claimed_by = None;
                failed.locked_at = None;
                unlock()
            }
            None => {
                set.insert("status", JobStatus::Failed.as_str());
                failed.status = JobStatus::Failed;
                // Keep claimedBy / lockedAt: they tell who ran the last attempt.
                doc! { "claimId": "", "leaseExpiresAt": "" }
            }
        };
        let res = self
            .coll
            .update_one(fenced(job), doc! { "$set": set, "$unset": unset })
            .await
            .map_err(|e| self.db_err(e))?;
        if res.matched_count == 0 {
            return Ok(false);
        }
        if !will_retry {
            self.release_key(job).await;
        }
        tracing::info!(job.id = %job.id, fail_count, will_retry, reason = %reason, "failed");
        let failed = Arc::new(failed);
        self.emit(Event::JobFailed {
            job: failed.clone(),
            error: reason,
            will_retry,
        });
        if let Some(delay) = delay {
            self.emit(Event::JobRetry {
                next_run_at: failed.next_run_at,
                job: failed,
                delay,
            });
        }
        Ok(true)
    }

    /// Hands the given executions back to `pending` at once (shutdown). Returns how
    /// many were still ours to hand back.
    pub(crate) async fn release(&self, executions: &[(ObjectId, ObjectId)]) -> Result<u64> {
        if executions.is_empty() {
            return Ok(0);
        }
        let res = self
            .coll
            .update_many(
                fenced_many(executions),
                doc! { "$set": { "status": JobStatus::Pending.as_str(), "updatedAt": DateTime::now() }, "$unset": unlock() },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.modified_count)
    }
}
