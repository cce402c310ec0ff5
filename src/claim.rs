//! The claim: one atomic findOneAndUpdate turns the best due `pending` job of a name
//! into `processing` under a fresh `claimId` (the fencing token) and a lease.

use mongodb::bson::{doc, oid::ObjectId, DateTime};
use mongodb::options::ReturnDocument;

use crate::client::Inner;
use crate::error::Result;
use crate::job::{Job, JobStatus};

impl Inner {
    /// Claims one due job of `name`, or `None` when none is due.
    #[tracing::instrument(level = "debug", skip(self), fields(instance = %self.instance_id))]
    pub(crate) async fn claim_one(&self, name: &str) -> Result<Option<Job>> {
        let now = DateTime::now();
        let lease_until = self.lease_until(now);
        let claim_id = ObjectId::new();
        let started = std::time::Instant::now();
        let claimed = self
            .coll
            .find_one_and_update(
                doc! { "name": name, "status": JobStatus::Pending.as_str(), "nextRunAt": { "$lte": now } },
                doc! { "$set": {
                    "status": JobStatus::Processing.as_str(),
                    "claimId": claim_id,
                    "claimedBy": &self.instance_id,
                    "lockedAt": now,
                    "leaseExpiresAt": lease_until,
                    "updatedAt": now,
                } },
            )
            .sort(doc! { "priority": -1, "nextRunAt": 1 })
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| self.db_err(e))?;
        self.metrics.claim_took(started.elapsed());
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let id = claimed.get("_id").cloned();
        match Job::from_document(claimed) {
            Ok(job) => {
                tracing::debug!(job.id = %job.id, "claimed");
                Ok(Some(job))
            }
            Err(err) => {
                // Left `processing`, it would be recovered and claimed again after every
                // lease, forever: fail it (fenced by this claim) and report it.
                let reason = err.to_string();
                tracing::warn!(?id, %reason, "failing a job document this build cannot read");
                self.coll
                    .update_one(
                        doc! { "_id": id, "claimId": claim_id },
                        doc! {
                            "$set": { "status": JobStatus::Failed.as_str(), "failReason": &reason, "updatedAt": now },
                            "$unset": { "claimId": "", "leaseExpiresAt": "" },
                        },
                    )
                    .await
                    .map_err(|e| self.db_err(e))?;
                Err(err)
            }
        }
    }
}
