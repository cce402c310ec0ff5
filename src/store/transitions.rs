//! Operators' state changes: cancel, retry, reschedule, change priority, delete, one
//! job or a selection, and the retention sweep. Every change is one update guarded by
//! the status it expects, so it never races a worker: a job claimed in between is
//! reported as an invalid transition, not overwritten.

use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::options::ReturnDocument;

use super::documents::{cancel_update, unlock};
use super::queries::bulk_filter;
use super::unique::{lock_id, Holder};
use super::Store;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::options::JobRetention;
use crate::query::JobSelector;
use crate::status::JobStatus;

/// `nextRunAt` of a job being retried while it takes its uniqueKey back: never due.
const PARKED: DateTime = DateTime::MAX;

/// A job put back by a retry.
pub(crate) struct Retried {
    /// What it was before (`failed` or `cancelled`).
    pub(crate) previous_status: JobStatus,
    /// As written: `pending`, or `waiting` when it has dependencies to settle.
    pub(crate) job: Job,
}

/// A validated bulk selection (see [`Store::select`]).
pub(crate) struct Selection {
    filter: Document,
    statuses: Vec<&'static str>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Store {
    /// Applies `update` to job `id` if it is in one of `from`; returns the job after.
    /// Re-reads and retries when the job changed status in between, so the error names
    /// the status that refused.
    async fn transition(
        &self,
        id: ObjectId,
        action: &'static str,
        from: &[JobStatus],
        update: impl Fn(&Job) -> Document,
    ) -> Result<(Job, Job)> {
        for _ in 0..4 {
            let before = self.must_get(id).await?;
            if !from.contains(&before.status) {
                return Err(Error::InvalidTransition {
                    id: id.to_hex(),
                    action,
                    status: before.status,
                });
            }
            let mut filter = doc! { "_id": id, "status": before.status.as_str() };
            if before.status == JobStatus::Processing {
                // That execution, not a later run of the job (its group slot is the one
                // a cancel gives back).
                filter.insert("claimId", before.claim_id);
            }
            let after = self
                .coll
                .find_one_and_update(filter, update(&before))
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| self.db_err(e))?;
            if let Some(after) = after {
                return Ok((before, Job::from_document(after)?));
            }
        }
        Err(Error::InvalidState("the job kept changing; try again"))
    }

    /// Cancels a waiting, pending or running job. Returns the job before and after.
    /// The run of a running job must be aborted, and the key freed, by the caller (in
    /// that order); its late writes are fenced off by status.
    pub(crate) async fn cancel(&self, id: ObjectId) -> Result<(Job, Job)> {
        let now = self.now();
        let allowed = [
            JobStatus::Waiting,
            JobStatus::Pending,
            JobStatus::Processing,
        ];
        let (before, job) = self
            .transition(id, "cancel", &allowed, |_| cancel_update(now))
            .await?;
        // The cancel unset the run's `groupSlot`: its fenced end will not match.
        if before.status == JobStatus::Processing {
            self.release_slot(&before).await;
        }
        Ok((before, job))
    }

    /// Puts a failed or cancelled job back to `pending` at `at`. A job with a uniqueKey
    /// becomes active first but unclaimable (far-future `nextRunAt`, marked with a
    /// token), then takes its key, then gets its real run time; if another active job
    /// holds the key, the change is undone. So an active job never lacks its lock, and
    /// two racing retries or a racing enqueue cannot leave two active jobs.
    /// A job with dependencies comes back `waiting`: the caller settles it next.
    pub(crate) async fn retry(&self, before: Job, at: DateTime) -> Result<Retried> {
        let allowed = [JobStatus::Failed, JobStatus::Cancelled];
        let now = self.now();
        let token = ObjectId::new();
        let keyed = before.unique_key.is_some();
        // A job with dependencies waits for them again (flows.rs).
        let status = if before.depends_on.is_empty() {
            JobStatus::Pending
        } else {
            JobStatus::Waiting
        };
        let (before, job) = self
            .transition(before.id, "retry", &allowed, |_| {
                let next = if keyed { PARKED } else { at };
                let mut set = doc! { "status": status.as_str(), "nextRunAt": next, "failCount": 0, "updatedAt": now };
                if keyed {
                    set.insert("retryToken", token);
                }
                doc! { "$set": set, "$unset": unlock() }
            })
            .await?;
        let job = if keyed {
            if let Err(err) = self.relock(&job).await {
                // Undo, unless something else changed the job meanwhile.
                self.coll
                    .update_one(
                        doc! { "_id": job.id, "retryToken": token },
                        doc! {
                            "$set": { "status": before.status.as_str(), "nextRunAt": before.next_run_at, "failCount": before.fail_count, "updatedAt": self.now() },
                            "$unset": { "retryToken": "" },
                        },
                    )
                    .await
                    .map_err(|e| self.db_err(e))?;
                return Err(err);
            }
            let released = self
                .coll
                .find_one_and_update(
                    doc! { "_id": job.id, "retryToken": token },
                    doc! { "$set": { "nextRunAt": at }, "$unset": { "retryToken": "" } },
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| self.db_err(e))?;
            match released {
                Some(doc) => Job::from_document(doc)?,
                None => self.must_get(job.id).await?,
            }
        } else {
            job
        };
        if job.status == JobStatus::Pending {
            self.note_jobs_due([&job]).await;
        }
        Ok(Retried {
            previous_status: before.status,
            job,
        })
    }

    /// Takes the uniqueKey lock for `job`, which is active (and parked) already. A key
    /// held by another active job, or by an enqueue in flight, is an error.
    async fn relock(&self, job: &Job) -> Result<()> {
        let Some(key) = &job.unique_key else {
            return Ok(());
        };
        let lock = lock_id(&job.name, key);
        let held = || Error::InvalidTransition {
            id: job.id.to_hex(),
            action: "retry (its uniqueKey is held by another active job)",
            status: job.status,
        };
        for _ in 0..4 {
            match self
                .locks
                .insert_one(doc! { "_id": &lock, "jobId": job.id, "createdAt": self.now() })
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if Error::is_duplicate_key(&e) => {}
                Err(e) => return Err(self.db_err(e)),
            }
            match self.lock_holder(&lock).await? {
                Holder::Gone => {}
                Holder::Active(other) if other.id == job.id => return Ok(()),
                Holder::Active(_) | Holder::InFlight(_) => return Err(held()),
                Holder::Stale(holder) => self.drop_lock(&lock, holder).await?,
            }
        }
        Err(Error::InvalidState(
            "uniqueKey is heavily contended; try again",
        ))
    }

    /// Gives a `pending` job a new run time.
    pub(crate) async fn reschedule(&self, id: ObjectId, run_at: DateTime) -> Result<Job> {
        let job = self
            .update_pending(id, "reschedule", doc! { "nextRunAt": run_at })
            .await?;
        self.note_jobs_due([&job]).await;
        Ok(job)
    }

    /// Gives a `pending` job a new priority.
    pub(crate) async fn set_priority(&self, id: ObjectId, priority: i32) -> Result<Job> {
        self.update_pending(id, "change the priority of", doc! { "priority": priority })
            .await
    }

    /// Sets `fields` on a job that is `pending` (and only then).
    async fn update_pending(
        &self,
        id: ObjectId,
        action: &'static str,
        mut fields: Document,
    ) -> Result<Job> {
        fields.insert("updatedAt", self.now());
        let (_, job) = self
            .transition(id, action, &[JobStatus::Pending], |_| {
                doc! { "$set": fields.clone() }
            })
            .await?;
        Ok(job)
    }

    /// Deletes a job that is not running. A pending job with a uniqueKey is cancelled
    /// first, so it is never active without its lock; then the lock goes, then the job.
    pub(crate) async fn delete(&self, id: ObjectId) -> Result<bool> {
        for _ in 0..4 {
            let Some(mut job) = self.get_job(id).await? else {
                return Ok(false);
            };
            if job.status == JobStatus::Processing {
                return Err(Error::InvalidTransition {
                    id: id.to_hex(),
                    action: "delete",
                    status: job.status,
                });
            }
            if job.unique_key.is_some() {
                if job.status == JobStatus::Pending {
                    let cancelled = self
                        .coll
                        .find_one_and_update(
                            doc! { "_id": id, "status": JobStatus::Pending.as_str() },
                            cancel_update(self.now()),
                        )
                        .return_document(ReturnDocument::After)
                        .await
                        .map_err(|e| self.db_err(e))?;
                    match cancelled {
                        Some(doc) => job = Job::from_document(doc)?,
                        None => continue, // claimed or changed: look again
                    }
                }
                self.drop_locks_of(&[id]).await?;
            }
            let res = self
                .coll
                .delete_one(doc! { "_id": id, "status": job.status.as_str() })
                .await
                .map_err(|e| self.db_err(e))?;
            if res.deleted_count == 1 {
                return Ok(true);
            }
        }
        Err(Error::InvalidState("the job kept changing; try again"))
    }

    /// The jobs `selector` picks among those in `allowed` statuses, for a bulk change.
    /// An empty selector is refused: it would touch every job.
    pub(crate) fn select(
        &self,
        selector: &JobSelector,
        allowed: &[JobStatus],
    ) -> Result<Selection> {
        Ok(Selection {
            filter: bulk_filter(selector, allowed)?,
            statuses: allowed.iter().map(|s| s.as_str()).collect(),
        })
    }

    /// How many jobs `selection` matches now.
    pub(crate) async fn count_selected(&self, selection: &Selection) -> Result<u64> {
        self.coll
            .count_documents(selection.filter.clone())
            .await
            .map_err(|e| self.db_err(e))
    }

    /// The next (up to) 1,000 jobs of `selection` after `after`, in id order, without
    /// payloads: bulk changes walk their selection a chunk at a time, so a huge one
    /// never builds one huge command.
    pub(crate) async fn next_chunk(
        &self,
        selection: &Selection,
        after: Option<ObjectId>,
    ) -> Result<Vec<Job>> {
        self.chunk(&selection.filter, after).await
    }

    /// Cancels the jobs of a chunk still in a status the selection allows, and frees the
    /// keys of those really cancelled (not claimed meanwhile).
    pub(crate) async fn cancel_chunk(&self, selection: &Selection, jobs: &[Job]) -> Result<u64> {
        let ids: Vec<ObjectId> = jobs.iter().map(|j| j.id).collect();
        let res = self
            .coll
            .update_many(
                doc! { "_id": { "$in": &ids }, "status": { "$in": &selection.statuses } },
                cancel_update(self.now()),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let keyed: Vec<ObjectId> = jobs
            .iter()
            .filter(|j| j.unique_key.is_some())
            .map(|j| j.id)
            .collect();
        if !keyed.is_empty() {
            let done = doc! { "_id": { "$in": keyed }, "status": JobStatus::Cancelled.as_str() };
            for job in self.chunk(&done, None).await? {
                self.release_key(&job).await;
            }
        }
        Ok(res.modified_count)
    }

    /// Puts the jobs of a selection back to `pending`, due at `at`, `failCount` 0:
    /// those still in a status the selection allows. Jobs holding a uniqueKey or with
    /// dependencies go through [`retry`](Self::retry) one by one instead.
    pub(crate) async fn retry_group(
        &self,
        selection: &Selection,
        jobs: &[Job],
        at: DateTime,
    ) -> Result<u64> {
        let ids: Vec<ObjectId> = jobs.iter().map(|j| j.id).collect();
        let res = self
            .coll
            .update_many(
                doc! { "_id": { "$in": ids }, "status": { "$in": &selection.statuses } },
                doc! {
                    "$set": { "status": JobStatus::Pending.as_str(), "nextRunAt": at, "failCount": 0, "updatedAt": self.now() },
                    "$unset": unlock(),
                },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if res.modified_count > 0 {
            // Their groups are due by `at` (an upsert each: a group idle long enough may
            // have lost its document). A job of the chunk claimed meanwhile and not
            // retried makes its group look due early, which is safe.
            let due: Vec<_> = jobs
                .iter()
                .filter_map(|j| Some((j.name.clone(), j.group.clone()?, at)))
                .collect();
            self.note_due_after_write(&due).await;
        }
        Ok(res.modified_count)
    }

    /// Deletes the jobs of a chunk still in a status the selection allows, except
    /// pending jobs holding a key, which go one by one through [`delete`](Self::delete)
    /// (never active without their lock).
    pub(crate) async fn delete_chunk(&self, selection: &Selection, jobs: &[Job]) -> Result<u64> {
        let mut rest = Vec::new();
        let mut finished_keyed = Vec::new();
        for job in jobs {
            match (job.status, &job.unique_key) {
                (JobStatus::Pending, Some(_)) => {}
                (_, Some(_)) => {
                    finished_keyed.push(job.id);
                    rest.push(job.id);
                }
                _ => rest.push(job.id),
            }
        }
        // Stale locks of finished jobs go first: a lock must never outlive its job.
        self.drop_locks_of(&finished_keyed).await?;
        let res = self
            .coll
            .delete_many(doc! { "_id": { "$in": rest }, "status": { "$in": &selection.statuses } })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.deleted_count)
    }

    /// Deletes the jobs past their retention now. Returns how many.
    pub(crate) async fn delete_expired(&self, retention: &JobRetention) -> Result<u64> {
        let now = self.now().timestamp_millis();
        let mut deleted = 0;
        for (status, keep) in [
            (JobStatus::Completed, retention.completed),
            (JobStatus::Failed, retention.failed),
            (JobStatus::Cancelled, retention.cancelled),
        ] {
            let Some(keep) = keep else { continue };
            let cutoff = DateTime::from_millis(now - millis(keep));
            // Leftover locks of these jobs go first (normally there are none): a lock
            // must never outlive its job.
            let keyed = doc! { "status": status.as_str(), "updatedAt": { "$lt": cutoff }, "uniqueKey": { "$exists": true } };
            let mut after = None;
            loop {
                let jobs = self.chunk(&keyed, after).await?;
                let Some(last) = jobs.last() else { break };
                after = Some(last.id);
                let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
                self.drop_locks_of(&ids).await?;
            }
            let mut expired = doc! { "status": status.as_str(), "updatedAt": { "$lt": cutoff } };
            if status == JobStatus::Completed {
                // A completed job that a waiting job still lists stays: deleted, it
                // would read as a dependency that can never complete (flows.rs).
                let needed = self.dependencies_of_waiting().await?;
                if !needed.is_empty() {
                    expired.insert("_id", doc! { "$nin": needed });
                }
            }
            let res = self
                .coll
                .delete_many(expired)
                .await
                .map_err(|e| self.db_err(e))?;
            deleted += res.deleted_count;
        }
        Ok(deleted)
    }
}
