//! Writes the end of an execution: `completed`, a retry back to `pending` with backoff,
//! `failed`, or a hand-back on shutdown. Every write matches `{_id, claimId, processing}`:
//! a worker that lost its lease can never overwrite a newer execution (fencing).

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{self, doc, oid::ObjectId, Bson, DateTime, Document};

use crate::client::Inner;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::handler::{HandlerError, Outcome};
use crate::job::{Job, JobStatus};
use crate::schedule::Repeat;
use crate::worker::Worker;

/// Longest failReason stored; handler errors can carry huge messages.
const MAX_FAIL_REASON: usize = 4096;

/// The fencing filter: this execution's claim and nothing else.
pub(crate) fn fenced(job: &Job) -> Document {
    fenced_execution(job.id, job.claim_id)
}

/// The fencing filter of the execution `(id, claim_id)`.
pub(crate) fn fenced_execution(id: ObjectId, claim_id: Option<ObjectId>) -> Document {
    doc! { "_id": id, "claimId": claim_id, "status": JobStatus::Processing.as_str() }
}

/// The fencing filter for several executions, given as `(job id, claim id)` pairs:
/// exactly those pairs. A batch claim shares its claim id, so ids are grouped by claim
/// (two flat `$in` lists would also match a job re-claimed under a batch-mate's id).
pub(crate) fn fenced_many(executions: &[(ObjectId, ObjectId)]) -> Document {
    if executions.is_empty() {
        return doc! { "_id": { "$in": [] } }; // `$or` may not be empty
    }
    let mut by_claim: Vec<(ObjectId, Vec<ObjectId>)> = Vec::new();
    for &(id, claim) in executions {
        match by_claim.iter_mut().find(|(c, _)| *c == claim) {
            Some((_, ids)) => ids.push(id),
            None => by_claim.push((claim, vec![id])),
        }
    }
    let pairs: Vec<Document> = by_claim
        .into_iter()
        .map(|(claim, ids)| doc! { "claimId": claim, "_id": { "$in": ids } })
        .collect();
    doc! { "$or": pairs, "status": JobStatus::Processing.as_str() }
}

/// How often a finishing run re-reads a schedule that changed under it before giving up.
const MAX_SCHEDULE_CHANGES: usize = 4;

/// Matches the job's `repeat` exactly, or its absence.
fn repeat_filter(repeat: Option<&Repeat>) -> Result<Bson> {
    match repeat {
        None => Ok(Bson::Null),
        Some(r) => bson::to_bson(r).map_err(|e| Error::InvalidData(e.to_string())),
    }
}

/// Where a job goes after a run, as far as its schedule decides.
enum Next {
    /// Not recurring, or a schedule whose expression has no later time: it ends.
    End,
    /// Recurring: due again then.
    At(DateTime),
    /// Recurring, but its stored schedule cannot be read by this build (say, a timezone
    /// newer than its tz database): it ends `failed` rather than running forever.
    Broken(Error),
}

/// For a recurring job, when its next occurrence is due after the run that just ended.
fn next_occurrence(job: &Job, now: DateTime) -> Next {
    let Some(repeat) = &job.repeat else {
        return Next::End;
    };
    let due = job.occurrence_at.unwrap_or(job.next_run_at);
    match repeat.next_run(due, job.locked_at.unwrap_or(now)) {
        Ok(Some(next)) => Next::At(next),
        Ok(None) => Next::End,
        Err(err) => Next::Broken(err),
    }
}

/// Adds a run's stored result to a successful completion (not to a schedule that ends
/// `failed` because it became unusable).
fn attach_result(
    (mut update, mut done): (Document, Job),
    result: &Option<(Bson, serde_json::Value)>,
) -> (Document, Job) {
    if let Some((stored, value)) = result {
        if done.status != JobStatus::Failed {
            if let Ok(set) = update.get_document_mut("$set") {
                set.insert("result", stored.clone());
            }
            done.result = Some(value.clone());
        }
    }
    (update, done)
}

/// The update that puts a job back to `pending` with its claim dropped (shutdown
/// hand-back, expired leases, a batch claim that could not be read back).
pub(crate) fn back_to_pending(now: DateTime) -> Document {
    doc! { "$set": { "status": JobStatus::Pending.as_str(), "updatedAt": now }, "$unset": unlock() }
}

/// The lock fields a job that runs again later (a retry, a snooze) drops, applied to
/// `job` and returned as the `$unset`. A recurring job keeps `lockedAt`: it tells when
/// the schedule last ran.
fn rerun_unlock(job: &mut Job) -> Document {
    job.claim_id = None;
    job.claimed_by = None;
    job.lease_expires_at = None;
    if job.repeat.is_some() {
        doc! { "claimId": "", "claimedBy": "", "leaseExpiresAt": "" }
    } else {
        job.locked_at = None;
        unlock()
    }
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
            Ok(value) => self.complete(job, took, value).await,
            // Failing because stop() aborted it is not the job's fault: hand it back
            // (fenced, so a no-op if the hand-back already happened).
            Err(_) if aborted => match job.claim_id {
                Some(claim) => self.release(&[(job.id, claim)]).await.map(|_| false),
                None => Ok(false),
            },
            Err(err) => match err.snoozed_for() {
                Some(delay) => self.snooze(job, delay).await,
                None => self.fail(worker, job, err).await,
            },
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
            Err(err) => self.emit_error(&err, Some(job.clone())),
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
        let refuse = |why: String| {
            tracing::warn!(job.id = %job.id, %why, "result not stored");
            self.emit(Event::JobError {
                error: format!("the result of job {} was not stored: {why}", job.id),
                code: "RESULT_NOT_STORED",
                job: Some(job.clone()),
            });
            None
        };
        match crate::enqueue::storable(&value, self.opts.max_result_size) {
            Ok(stored) => Some((stored, value)),
            Err(err) => refuse(err.to_string()),
        }
    }

    /// True when the write matched this execution's claim.
    async fn complete(
        &self,
        job: &Arc<Job>,
        took: Duration,
        value: Option<serde_json::Value>,
    ) -> Result<bool> {
        let now = DateTime::now();
        let took_ms = took.as_millis() as i64;
        let result = value.and_then(|v| self.storable_result(job, v));
        let make = |current: &Job| {
            let mut done = current.clone();
            done.updated_at = now;
            done.completed_at = Some(now);
            done.duration_ms = Some(took_ms);
            done.claim_id = None;
            done.lease_expires_at = None;
            let next = match next_occurrence(current, now) {
                Next::At(next) => next,
                Next::End => {
                    done.status = JobStatus::Completed;
                    let update = doc! {
                        "$set": { "status": JobStatus::Completed.as_str(), "completedAt": now, "durationMs": took_ms, "updatedAt": now },
                        "$unset": { "claimId": "", "leaseExpiresAt": "" },
                    };
                    return (update, done);
                }
                Next::Broken(err) => {
                    let reason = format!("the run succeeded but its schedule is unusable: {err}");
                    done.status = JobStatus::Failed;
                    done.completed_at = current.completed_at;
                    done.duration_ms = current.duration_ms;
                    done.fail_reason = Some(reason.clone());
                    let update = doc! {
                        "$set": { "status": JobStatus::Failed.as_str(), "failReason": reason, "updatedAt": now },
                        "$unset": { "claimId": "", "leaseExpiresAt": "" },
                    };
                    return (update, done);
                }
            };
            done.status = JobStatus::Pending;
            done.next_run_at = next;
            done.occurrence_at = Some(next);
            done.fail_count = 0;
            done.fail_reason = None;
            done.claimed_by = None;
            let update = doc! {
                "$set": { "status": JobStatus::Pending.as_str(), "nextRunAt": next, "occurrenceAt": next, "failCount": 0, "completedAt": now, "durationMs": took_ms, "updatedAt": now },
                "$unset": { "claimId": "", "claimedBy": "", "leaseExpiresAt": "", "failReason": "" },
            };
            (update, done)
        };
        let written = self
            .write_fenced(job, |current| attach_result(make(current), &result))
            .await?;
        let Some(done) = written else {
            return Ok(false);
        };
        self.after_write(&done).await;
        if done.status == JobStatus::Failed {
            let error = done.fail_reason.clone().unwrap_or_default();
            tracing::warn!(job.id = %job.id, %error, "schedule ended: unusable");
            self.emit(Event::JobFailed {
                job: Arc::new(done),
                error,
                will_retry: false,
            });
            return Ok(true);
        }
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
        let delay = will_retry.then(|| self.opts.backoff.next_delay(fail_count));
        let written = self
            .write_fenced(job, |current| {
                let mut failed = current.clone();
                failed.fail_count = fail_count;
                failed.fail_reason = Some(reason.clone());
                failed.updated_at = now;
                failed.claim_id = None;
                failed.lease_expires_at = None;
                let mut set =
                    doc! { "failCount": fail_count, "failReason": &reason, "updatedAt": now };
                // A retry waits its backoff; a recurring job out of retries waits for
                // its next occurrence with a clean slate; anything else is `failed`.
                let next = match delay {
                    Some(delay) => Some(DateTime::from_millis(
                        now.timestamp_millis() + delay.as_millis() as i64,
                    )),
                    None => match next_occurrence(current, now) {
                        Next::At(next) => {
                            failed.fail_count = 0;
                            failed.occurrence_at = Some(next);
                            set.insert("failCount", 0);
                            set.insert("occurrenceAt", next);
                            Some(next)
                        }
                        Next::End | Next::Broken(_) => None,
                    },
                };
                let unset = match next {
                    Some(next) => {
                        set.insert("status", JobStatus::Pending.as_str());
                        set.insert("nextRunAt", next);
                        failed.status = JobStatus::Pending;
                        failed.next_run_at = next;
                        rerun_unlock(&mut failed)
                    }
                    None => {
                        set.insert("status", JobStatus::Failed.as_str());
                        failed.status = JobStatus::Failed;
                        // Keep claimedBy / lockedAt: they tell who ran the last attempt.
                        doc! { "claimId": "", "leaseExpiresAt": "" }
                    }
                };
                (doc! { "$set": set, "$unset": unset }, failed)
            })
            .await?;
        let Some(failed) = written else {
            return Ok(false);
        };
        self.after_write(&failed).await;
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

    /// Puts the job back to `pending`, due `delay` from now, as the handler asked;
    /// `failCount` and a recurring job's occurrence stay as they are.
    async fn snooze(&self, job: &Arc<Job>, delay: Duration) -> Result<bool> {
        let now = DateTime::now();
        let next = DateTime::from_millis(now.timestamp_millis() + delay.as_millis() as i64);
        let written = self
            .write_fenced(job, |current| {
                let mut snoozed = current.clone();
                snoozed.status = JobStatus::Pending;
                snoozed.next_run_at = next;
                snoozed.updated_at = now;
                let set = doc! { "status": JobStatus::Pending.as_str(), "nextRunAt": next, "updatedAt": now };
                let unset = rerun_unlock(&mut snoozed);
                (doc! { "$set": set, "$unset": unset }, snoozed)
            })
            .await?;
        let Some(snoozed) = written else {
            return Ok(false);
        };
        self.after_write(&snoozed).await;
        tracing::info!(job.id = %job.id, delay_ms = delay.as_millis() as u64, "snoozed");
        self.emit(Event::JobSnoozed {
            next_run_at: snoozed.next_run_at,
            job: Arc::new(snoozed),
            delay,
        });
        Ok(true)
    }

    /// Writes the update `make` builds for the job as it is now, fenced by its claim and
    /// by its `repeat` as the update saw it: `schedule()` may change a running job's
    /// schedule, and then the update is built again from the new one. `None` when the
    /// claim is gone (lease lost, or the job was deleted).
    async fn write_fenced(
        &self,
        job: &Job,
        make: impl Fn(&Job) -> (Document, Job),
    ) -> Result<Option<Job>> {
        let mut current = job.clone();
        for _ in 0..MAX_SCHEDULE_CHANGES {
            let (update, after) = make(&current);
            let mut filter = fenced(&current);
            filter.insert("repeat", repeat_filter(current.repeat.as_ref())?);
            // A flow may have started to depend on this job after it was claimed, so
            // whether it has dependents is read at the write: first as a job without
            // any (the common case, one round trip), then as one with some.
            let without = Bson::Document(doc! { "$ne": true });
            for (has_dependents, condition) in [(false, without), (true, Bson::Boolean(true))] {
                let mut filter = filter.clone();
                filter.insert("hasDependents", condition);
                let res = self
                    .coll
                    .update_one(filter, update.clone())
                    .await
                    .map_err(|e| self.db_err(e))?;
                if res.matched_count == 1 {
                    let mut after = after;
                    after.has_dependents = has_dependents;
                    return Ok(Some(after));
                }
            }
            let Some(now) = self
                .coll
                .find_one(fenced(&current))
                .projection(doc! { "repeat": 1 })
                .await
                .map_err(|e| self.db_err(e))?
            else {
                return Ok(None);
            };
            current.repeat = match now.get("repeat") {
                Some(r) => Some(
                    bson::from_bson(r.clone())
                        .map_err(|e| Error::InvalidData(format!("unreadable repeat: {e}")))?,
                ),
                None => None,
            };
        }
        Err(Error::InvalidState(
            "the job's schedule kept changing while its run finished",
        ))
    }

    /// After an outcome is written: a job that left the active set frees its uniqueKey;
    /// one due again soon gets its worker woken on time.
    async fn after_write(&self, job: &Job) {
        if job.has_dependents {
            match job.status {
                JobStatus::Completed => self.release_dependents(job.id).await,
                JobStatus::Failed => self.fail_dependents(vec![job.id]).await,
                _ => {}
            }
        }
        if job.status.is_active() {
            self.wake_at(&job.name, job.next_run_at);
        } else {
            self.release_key(job).await;
        }
    }

    /// Hands the given executions back to `pending` at once (shutdown). Returns how
    /// many were still ours to hand back.
    pub(crate) async fn release(&self, executions: &[(ObjectId, ObjectId)]) -> Result<u64> {
        if executions.is_empty() {
            return Ok(0);
        }
        let res = self
            .coll
            .update_many(fenced_many(executions), back_to_pending(DateTime::now()))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.modified_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_many_matches_each_pair_not_every_combination() {
        let (a, b, c) = (ObjectId::new(), ObjectId::new(), ObjectId::new());
        let (batch, single) = (ObjectId::new(), ObjectId::new());
        let filter = fenced_many(&[(a, batch), (b, batch), (c, single)]);
        let expected = doc! {
            "$or": [
                { "claimId": batch, "_id": { "$in": [a, b] } },
                { "claimId": single, "_id": { "$in": [c] } },
            ],
            "status": "processing",
        };
        assert_eq!(filter, expected);
        assert_eq!(fenced_many(&[]), doc! { "_id": { "$in": [] } });
    }
}
