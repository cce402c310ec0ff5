//! Recurring jobs. A schedule is one job document with a `repeat` field: after each
//! run it goes back to `pending` at its next occurrence (outcome.rs), so it never leaves
//! the active set and keeps its uniqueKey lock (unique.rs). That lock is what makes
//! `schedule()` idempotent across restarts and racing processes: one document per
//! `(name, uniqueKey)`, whoever calls first creates it, later calls find it and update
//! it in place.

use mongodb::bson::{self, doc};

use super::documents::{cancel_update, new_job_document};
use super::Store;
use crate::error::{Error, Result};
use crate::job::{validate_job_name, Job};
use crate::new_job::{EnqueueOptions, NewJob};
use crate::schedule::{default_schedule_key, Repeat, ScheduleOptions};
use crate::status::JobStatus;

/// What `upsert_schedule` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upserted {
    Created,
    Updated,
    /// The schedule was as asked already.
    Unchanged,
}

/// How many times a schedule that changes state under us is looked at again.
const MAX_ATTEMPTS: usize = 8;

impl Store {
    /// Creates the schedule, or updates the one with the same `(name, uniqueKey)`.
    /// Returns the schedule and what was done to it.
    pub(crate) async fn upsert_schedule(
        &self,
        name: &str,
        data: serde_json::Value,
        repeat: Repeat,
        options: ScheduleOptions,
        max_payload_size: usize,
    ) -> Result<(Job, Upserted)> {
        let now = self.now();
        let first = repeat.first_run(now)?.ok_or_else(|| Error::InvalidCron {
            expression: format!("{repeat:?}"),
            reason: "it never fires again".into(),
        })?;
        let key = options
            .unique_key
            .unwrap_or_else(|| default_schedule_key(name));
        let new_job = NewJob {
            name: name.to_owned(),
            data,
            options: EnqueueOptions {
                unique_key: Some(key),
                run_at: Some(first),
                priority: options.priority,
                timeout: None,
                depends_on: Vec::new(),
                trace_context: options.trace_context.clone(),
                group: options.group.clone(),
            },
        };
        let mut job_doc = new_job_document(&new_job, max_payload_size, now)?;
        let repeat_bson = bson::to_bson(&repeat).map_err(|e| Error::InvalidData(e.to_string()))?;
        job_doc.insert("repeat", repeat_bson.clone());
        job_doc.insert("occurrenceAt", first);

        for _ in 0..MAX_ATTEMPTS {
            let (holder, created) = self.enqueue_unique(job_doc.clone()).await?;
            if created {
                tracing::info!(job.id = %holder.id, name, "schedule created");
                return Ok((holder, Upserted::Created));
            }
            if holder.has_dependents && holder.repeat.is_none() {
                // A recurring job never completes: its dependents would wait forever.
                return Err(Error::InvalidDependency(format!(
                    "job {} holds this uniqueKey and jobs wait on it; it cannot become recurring",
                    holder.id
                )));
            }
            let timing_changed = holder.repeat.as_ref() != Some(&repeat);
            if !timing_changed
                && holder.data == new_job.data
                && holder.priority == options.priority
                && holder.group == options.group
            {
                return Ok((holder, Upserted::Unchanged));
            }
            // Update in place. A pending run moves to the new timing; a running one keeps
            // going and its completion reads the new schedule (outcome.rs). Unchanged
            // timing keeps `nextRunAt`, so a missed run still runs.
            let mut set = doc! {
                "repeat": repeat_bson.clone(),
                "data": job_doc.get("data").cloned().unwrap_or(bson::Bson::Null),
                "priority": options.priority,
                "updatedAt": now,
            };
            if let Some(trace) = job_doc.get("traceContext") {
                set.insert("traceContext", trace.clone());
            }
            let mut update = doc! {};
            match job_doc.get("group") {
                Some(group) => {
                    set.insert("group", group.clone());
                }
                // A schedule called without a group leaves its group.
                None if holder.group.is_some() => {
                    update.insert("$unset", doc! { "group": "" });
                }
                None => {}
            }
            if timing_changed && holder.status == JobStatus::Pending {
                set.insert("nextRunAt", first);
                set.insert("occurrenceAt", first);
            }
            let updated = self
                .coll
                .find_one_and_update(
                    doc! { "_id": holder.id, "status": holder.status.as_str(), "hasDependents": { "$ne": holder.repeat.is_none() } },
                    {
                        update.insert("$set", set);
                        update
                    },
                )
                .return_document(mongodb::options::ReturnDocument::After)
                .await
                .map_err(|e| self.db_err(e))?;
            if let Some(updated) = updated {
                let job = Job::from_document(updated)?;
                // Moved earlier, or into another group: that group must look due. (A
                // running holder's slot stays with the group it was taken from.)
                if job.status == JobStatus::Pending {
                    self.note_jobs_due([&job]).await;
                }
                tracing::info!(job.id = %job.id, name, "schedule updated");
                return Ok((job, Upserted::Updated));
            }
            // The run finished or was claimed in between: look again.
        }
        Err(Error::InvalidState(
            "the schedule kept changing state; try again",
        ))
    }

    /// Stops a schedule. A pending schedule is `cancelled` at once; a running one
    /// finishes its current run and is not rescheduled. False if there was none.
    pub(crate) async fn remove_schedule(
        &self,
        name: &str,
        unique_key: Option<&str>,
    ) -> Result<bool> {
        validate_job_name(name)?;
        let key = unique_key
            .map(str::to_owned)
            .unwrap_or_else(|| default_schedule_key(name));
        for _ in 0..MAX_ATTEMPTS {
            let filter = doc! {
                "name": name,
                "uniqueKey": &key,
                "repeat": { "$exists": true },
                "status": { "$in": [JobStatus::Pending.as_str(), JobStatus::Processing.as_str()] },
            };
            let Some(found) = self
                .coll
                .find_one(filter)
                .await
                .map_err(|e| self.db_err(e))?
            else {
                return Ok(false);
            };
            let job = Job::from_document(found)?;
            let now = self.now();
            // The document stays, as history; a cancelled holder frees its key.
            let (guard, update) = match job.status {
                JobStatus::Pending => (
                    doc! { "_id": job.id, "status": JobStatus::Pending.as_str() },
                    cancel_update(now),
                ),
                _ => (
                    doc! { "_id": job.id, "status": JobStatus::Processing.as_str() },
                    doc! { "$unset": { "repeat": "" }, "$set": { "updatedAt": now } },
                ),
            };
            let res = self
                .coll
                .update_one(guard, update)
                .await
                .map_err(|e| self.db_err(e))?;
            if res.matched_count == 1 {
                if job.status == JobStatus::Pending {
                    self.release_key(&job).await;
                }
                tracing::info!(job.id = %job.id, name, "schedule removed");
                return Ok(true);
            }
        }
        Err(Error::InvalidState(
            "the schedule kept changing state; try again",
        ))
    }
}
