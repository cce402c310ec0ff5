//! The end of a run, written: `completed`, a retry back to `pending`, `failed`, or a
//! snooze. Every write matches `{_id, claimId, processing}`: a worker that lost its
//! lease can never overwrite a newer execution (fencing). What to write is decided by
//! the caller (runtime/completer.rs); how a schedule moves on is decided here, because
//! it must be read again when `schedule()` changes it under a running job.

use std::time::Duration;

use mongodb::bson::{self, doc, Bson, DateTime, Document};

use super::documents::{fenced_execution, unlock};
use super::Store;
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, MAX_ATTEMPTS_KEPT};
use crate::schedule::Repeat;
use crate::status::JobStatus;

/// How often a finishing run re-reads a schedule that changed under it before giving up.
const MAX_SCHEDULE_CHANGES: usize = 4;

/// A successful run, as the completer hands it over.
pub(crate) struct Completion {
    /// How long the handler ran.
    pub(crate) took: Duration,
    /// The traceparent of the run's span, if it was traced.
    pub(crate) span: Option<String>,
    /// The result to store, as stored and as JSON, if there is one to keep.
    pub(crate) result: Option<(Bson, serde_json::Value)>,
}

/// A failed run, as the completer decided it.
pub(crate) struct Failure {
    /// Why, already shortened to what is stored.
    pub(crate) reason: String,
    /// Where it came from, already shortened to what is stored.
    pub(crate) stack: Option<String>,
    /// How long the handler ran.
    pub(crate) took: Duration,
    /// The traceparent of the run's span, if it was traced.
    pub(crate) span: Option<String>,
    /// Due again then (a retry); `None`: out of retries.
    pub(crate) retry_at: Option<DateTime>,
}

/// Longest error kept in one attempt of the history.
const MAX_ATTEMPT_ERROR: usize = 1024;

/// The run that just ended, for the job's `attempts` history: added to `job` and
/// returned as the update's `$push` (the history keeps the last few).
fn record_attempt(
    job: &mut Job,
    now: DateTime,
    took: Duration,
    span: Option<&str>,
    outcome: &str,
    error: Option<&str>,
) -> Document {
    let took_ms = took.as_millis() as i64;
    let attempt = Attempt {
        started_at: job
            .locked_at
            .unwrap_or_else(|| DateTime::from_millis(now.timestamp_millis() - took_ms)),
        duration_ms: took_ms,
        outcome: outcome.to_owned(),
        error: error.map(|e| e.chars().take(MAX_ATTEMPT_ERROR).collect()),
        instance: job.claimed_by.clone(),
        traceparent: span.map(str::to_owned),
    };
    let stored = bson::to_bson(&attempt).unwrap_or(Bson::Null);
    job.attempts.push(attempt);
    let excess = job.attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
    job.attempts.drain(..excess);
    doc! { "attempts": { "$each": [stored], "$slice": -(MAX_ATTEMPTS_KEPT as i64) } }
}

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

/// Adds `groupSlot` to the `$unset` of a run-end update.
fn drop_group_slot(update: &mut Document) {
    match update.get_mut("$unset") {
        Some(Bson::Document(unset)) => {
            unset.insert("groupSlot", "");
        }
        _ => {
            update.insert("$unset", doc! { "groupSlot": "" });
        }
    }
}

impl Store {
    /// Writes a successful run: `completed`, or for a recurring job `pending` at its next
    /// occurrence (`failed` if its schedule became unusable). The job as written, or
    /// `None` when this execution no longer holds the job.
    pub(crate) async fn complete(&self, job: &Job, run: Completion) -> Result<Option<Job>> {
        let now = self.now();
        let took_ms = run.took.as_millis() as i64;
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
                    // A success clears the error of an earlier failed attempt (the
                    // history keeps it).
                    done.fail_reason = None;
                    done.fail_stack = None;
                    done.stall_count = 0;
                    let update = doc! {
                        "$set": { "status": JobStatus::Completed.as_str(), "completedAt": now, "durationMs": took_ms, "updatedAt": now },
                        "$unset": { "claimId": "", "leaseExpiresAt": "", "failReason": "", "failStack": "", "stallCount": "" },
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
            done.fail_stack = None;
            done.stall_count = 0;
            done.claimed_by = None;
            let update = doc! {
                "$set": { "status": JobStatus::Pending.as_str(), "nextRunAt": next, "occurrenceAt": next, "failCount": 0, "completedAt": now, "durationMs": took_ms, "updatedAt": now },
                "$unset": { "claimId": "", "claimedBy": "", "leaseExpiresAt": "", "failReason": "", "failStack": "", "stallCount": "" },
            };
            (update, done)
        };
        self.write_fenced(job, None, |current| {
            let (mut update, mut done) = attach_result(make(current), &run.result);
            // A first-try success of a one-off job (the common case) adds nothing the
            // job does not show already; the history starts with a failure or a snooze,
            // and a recurring job keeps its runs.
            if !current.attempts.is_empty() || current.repeat.is_some() {
                let mut ran = current.clone();
                let push = record_attempt(
                    &mut ran,
                    now,
                    run.took,
                    run.span.as_deref(),
                    "completed",
                    None,
                );
                done.attempts = ran.attempts;
                update.insert("$push", push);
            }
            (update, done)
        })
        .await
    }

    /// Writes a failed run: a retry at `failure.retry_at`; out of retries, a recurring
    /// job waits for its next occurrence with a clean slate and anything else is
    /// `failed`. `None` when this execution no longer holds the job.
    pub(crate) async fn fail(&self, job: &Job, failure: &Failure) -> Result<Option<Job>> {
        self.fail_run(job, failure, None).await
    }

    /// Writes a stall that counts as a failure: like [`fail`](Self::fail), one more
    /// stall counted, and only while the job's lease is still expired under that claim
    /// (its worker did not renew meanwhile).
    pub(crate) async fn fail_stalled(&self, job: &Job, failure: &Failure) -> Result<Option<Job>> {
        let expired = doc! { "leaseExpiresAt": { "$lt": self.now() } };
        self.fail_run(job, failure, Some(&expired)).await
    }

    async fn fail_run(
        &self,
        job: &Job,
        failure: &Failure,
        stalled: Option<&Document>,
    ) -> Result<Option<Job>> {
        let now = self.now();
        let fail_count = job.fail_count + 1;
        let reason = &failure.reason;
        let outcome = if stalled.is_some() {
            "stalled"
        } else {
            "failed"
        };
        self.write_fenced(job, stalled, |current| {
            let mut failed = current.clone();
            let push = record_attempt(
                &mut failed,
                now,
                failure.took,
                failure.span.as_deref(),
                outcome,
                Some(reason),
            );
            failed.fail_count = fail_count;
            failed.fail_reason = Some(reason.clone());
            failed.fail_stack = failure.stack.clone();
            failed.updated_at = now;
            failed.claim_id = None;
            failed.lease_expires_at = None;
            let mut set = doc! { "failCount": fail_count, "failReason": reason, "updatedAt": now };
            if let Some(stack) = &failure.stack {
                set.insert("failStack", stack);
            }
            let next = match failure.retry_at {
                Some(at) => Some(at),
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
            let mut unset = unset;
            if failure.stack.is_none() {
                unset.insert("failStack", "");
            }
            let mut update = doc! { "$set": set, "$unset": unset, "$push": push };
            if stalled.is_some() {
                failed.stall_count += 1;
                update.insert("$inc", doc! { "stallCount": 1 });
            }
            (update, failed)
        })
        .await
    }

    /// Puts the job back to `pending`, due at `until`, as its handler asked;
    /// `failCount` and a recurring job's occurrence stay as they are.
    pub(crate) async fn snooze(
        &self,
        job: &Job,
        until: DateTime,
        took: Duration,
        span: Option<&str>,
    ) -> Result<Option<Job>> {
        let now = self.now();
        self.write_fenced(job, None, |current| {
            let mut snoozed = current.clone();
            let push = record_attempt(&mut snoozed, now, took, span, "snoozed", None);
            snoozed.status = JobStatus::Pending;
            snoozed.next_run_at = until;
            snoozed.updated_at = now;
            let set =
                doc! { "status": JobStatus::Pending.as_str(), "nextRunAt": until, "updatedAt": now };
            let unset = rerun_unlock(&mut snoozed);
            (doc! { "$set": set, "$unset": unset, "$push": push }, snoozed)
        })
        .await
    }

    /// Writes the update `make` builds for the job as it is now, fenced by its claim and
    /// by its `repeat` as the update saw it: `schedule()` may change a running job's
    /// schedule, and then the update is built again from the new one. `None` when the
    /// claim is gone (lease lost, or the job was deleted).
    async fn write_fenced(
        &self,
        job: &Job,
        guard: Option<&Document>,
        make: impl Fn(&Job) -> (Document, Job),
    ) -> Result<Option<Job>> {
        let mut current = job.clone();
        for _ in 0..MAX_SCHEDULE_CHANGES {
            let (mut update, mut after) = make(&current);
            if job.group_slot.is_some() {
                // The run's end gives its group slot back (groups.rs).
                drop_group_slot(&mut update);
                after.group_slot = None;
            }
            let mut filter = fenced_execution(current.id, current.claim_id);
            if let Some(guard) = guard {
                filter.extend(guard.clone());
            }
            filter.insert("repeat", repeat_filter(current.repeat.as_ref())?);
            // A flow may have started to depend on this job after it was claimed, so
            // whether it has dependents is read at the write: first as a job without
            // any (the common case, one round trip), then as one with some.
            let without = Bson::Document(doc! { "$ne": true });
            for (has_dependents, condition) in [(false, without), (true, Bson::Boolean(true))] {
                let mut filter = filter.clone();
                filter.insert("hasDependents", condition);
                let matched = self
                    .run_ends
                    .update_one(filter, update.clone())
                    .await
                    .map_err(|e| self.db_err(e))?;
                if matched {
                    let mut after = after;
                    after.has_dependents = has_dependents;
                    self.release_slot(job).await;
                    return Ok(Some(after));
                }
            }
            let Some(now) = self
                .coll
                .find_one(fenced_execution(current.id, current.claim_id))
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
}
