//! Writes about executions in flight: lease renewal, recovery of expired leases, the
//! hand-back on shutdown, and progress. Each names its executions by `(job id, claim
//! id)`, so a run that lost its job can never touch a newer run of it.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson};

use super::documents::{back_to_pending, fenced_execution, fenced_many};
use super::Store;
use crate::error::Result;
use crate::job::Job;
use crate::status::JobStatus;

impl Store {
    /// Extends the leases of `running` by a lease from now. Returns how many were still
    /// held (fewer: some were cancelled or taken over).
    pub(crate) async fn renew_leases(&self, running: &[(ObjectId, ObjectId)]) -> Result<u64> {
        if running.is_empty() {
            return Ok(0);
        }
        let until = self.lease_until(self.now());
        let res = self
            .coll
            .update_many(
                fenced_many(running),
                doc! { "$set": { "leaseExpiresAt": until } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.matched_count)
    }

    /// Which of the jobs `ids` are `cancelled` now.
    pub(crate) async fn cancelled_among(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut cursor = self
            .coll
            .find(doc! { "_id": { "$in": ids }, "status": JobStatus::Cancelled.as_str() })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        let mut cancelled = Vec::new();
        while let Some(found) = cursor.try_next().await.map_err(|e| self.db_err(e))? {
            if let Ok(id) = found.get_object_id("_id") {
                cancelled.push(id);
            }
        }
        Ok(cancelled)
    }

    /// Which of `executions` still hold their job (`processing` under their claim). A
    /// renewal can match fewer because one ended in between (its own write); only the
    /// ones not held now lost their lease.
    pub(crate) async fn still_held(
        &self,
        executions: &[(ObjectId, ObjectId)],
    ) -> Result<Vec<(ObjectId, ObjectId)>> {
        let mut cursor = self
            .coll
            .find(fenced_many(executions))
            .projection(doc! { "_id": 1, "claimId": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        let mut held = Vec::new();
        while let Some(found) = cursor.try_next().await.map_err(|e| self.db_err(e))? {
            if let (Ok(id), Ok(claim)) =
                (found.get_object_id("_id"), found.get_object_id("claimId"))
            {
                held.push((id, claim));
            }
        }
        Ok(held)
    }

    /// Whether job `id` is `cancelled` now (a change-stream event may lag behind).
    pub(crate) async fn is_cancelled(&self, id: ObjectId) -> Result<bool> {
        let found = self
            .coll
            .find_one(doc! { "_id": id, "status": JobStatus::Cancelled.as_str() })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(found.is_some())
    }

    /// `processing` jobs whose lease has expired (their worker died, hung or lost the
    /// server), oldest expiry first, at most `limit`.
    pub(crate) async fn expired_leases(&self, limit: i64) -> Result<Vec<Job>> {
        let found = self
            .coll
            .find(doc! { "status": JobStatus::Processing.as_str(), "leaseExpiresAt": { "$lt": self.now() } })
            .sort(doc! { "leaseExpiresAt": 1 })
            .limit(limit)
            .projection(doc! { "data": 0, "result": 0, "progress": 0 })
            .await;
        self.collect_jobs(found).await
    }

    /// Puts a job whose lease expired back to `pending`, one more stall counted; only if
    /// its lease is still expired under that claim (its worker did not renew meanwhile).
    pub(crate) async fn requeue_stalled(&self, job: &Job) -> Result<bool> {
        let now = self.now();
        let mut filter = fenced_execution(job.id, job.claim_id);
        filter.insert("leaseExpiresAt", doc! { "$lt": now });
        let mut update = back_to_pending(now);
        update.insert("$inc", doc! { "stallCount": 1 });
        let res = self
            .coll
            .update_one(filter, update)
            .await
            .map_err(|e| self.db_err(e))?;
        let requeued = res.modified_count == 1;
        if requeued {
            self.release_slot(job).await;
            self.note_jobs_due([job]).await;
        }
        Ok(requeued)
    }

    /// Hands the given executions back to `pending` at once (shutdown). Returns how
    /// many were still ours to hand back.
    pub(crate) async fn release(&self, executions: &[(ObjectId, ObjectId)]) -> Result<u64> {
        if executions.is_empty() {
            return Ok(0);
        }
        // Grouped executions go one by one: each that is handed back gives back its
        // slot and makes its group due.
        let grouped = self
            .collect_jobs(
                self.coll
                    .find({
                        let mut f = fenced_many(executions);
                        f.insert("group", doc! { "$exists": true });
                        f
                    })
                    .projection(doc! { "data": 0, "result": 0, "progress": 0, "attempts": 0 })
                    .await,
            )
            .await?;
        let now = self.now();
        let mut handed_back = 0;
        for job in &grouped {
            let res = self
                .coll
                .update_one(fenced_execution(job.id, job.claim_id), back_to_pending(now))
                .await
                .map_err(|e| self.db_err(e))?;
            if res.modified_count == 1 {
                handed_back += 1;
                self.release_slot(job).await;
            }
        }
        self.note_jobs_due(grouped.iter()).await;
        let res = self
            .coll
            .update_many(fenced_many(executions), back_to_pending(now))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(handed_back + res.modified_count)
    }

    /// Stores `progress` on the execution `(id, claim_id)`. False when that execution no
    /// longer holds the job (lease lost, or it already ended).
    pub(crate) async fn set_progress(
        &self,
        id: ObjectId,
        claim_id: ObjectId,
        progress: Bson,
    ) -> Result<bool> {
        let res = self
            .coll
            .update_one(
                fenced_execution(id, Some(claim_id)),
                doc! { "$set": { "progress": progress, "updatedAt": self.now() } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.matched_count == 1)
    }
}
