//! Recurring jobs. A schedule is one job document with a `repeat` field: after each
//! run the completer puts it back to `pending` at its next occurrence (completer.rs), so
//! it never leaves the active set and keeps its uniqueKey lock (unique.rs). That lock
//! is what makes `schedule()` idempotent across restarts and racing processes: one
//! document per `(name, uniqueKey)`, whoever calls first creates it, later calls find
//! it and update it in place.

use mongodb::bson::{self, doc, DateTime};

use crate::client::Inner;
use crate::enqueue::{build, EnqueueOptions, NewJob};
use crate::error::{Error, Result};
use crate::job::{validate_job_name, Job, JobStatus};
use crate::management::cancel_update;
use crate::schedule::Repeat;

/// Options for [`Monque::schedule`](crate::Monque::schedule) and
/// [`Monque::every`](crate::Monque::every).
#[derive(Debug, Clone, Default)]
pub struct ScheduleOptions {
    /// IANA timezone the cron expression is read in (cron only). Default `UTC`.
    pub timezone: Option<String>,
    /// Tells several schedules of one job name apart. Default: `schedule:<name>`, so
    /// scheduling a name again updates its one schedule instead of adding another.
    pub unique_key: Option<String>,
    /// Priority of each run. Default 0.
    pub priority: i32,
}

/// The uniqueKey a schedule gets when none is given.
pub fn default_schedule_key(name: &str) -> String {
    format!("schedule:{name}")
}

/// How many times a schedule that changes state under us is looked at again.
const MAX_ATTEMPTS: usize = 8;

impl Inner {
    /// Creates the schedule, or updates the one with the same `(name, uniqueKey)`.
    pub(crate) async fn upsert_schedule(
        &self,
        name: &str,
        data: serde_json::Value,
        repeat: Repeat,
        options: ScheduleOptions,
    ) -> Result<Job> {
        let now = DateTime::now();
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
            },
        };
        let mut job_doc = build(self, &new_job, now)?;
        let repeat_bson = bson::to_bson(&repeat).map_err(|e| Error::InvalidData(e.to_string()))?;
        job_doc.insert("repeat", repeat_bson.clone());
        job_doc.insert("occurrenceAt", first);

        for _ in 0..MAX_ATTEMPTS {
            let (holder, created) = self.enqueue_unique(job_doc.clone()).await?;
            if created {
                tracing::info!(job.id = %holder.id, name, "schedule created");
                self.metrics.enqueued(name, 1);
                self.wake_at(name, holder.next_run_at);
                return Ok(holder);
            }
            if holder.has_dependents && holder.repeat.is_none() {
                // A recurring job never completes: its dependents would wait forever.
                return Err(Error::InvalidDependency(format!(
                    "job {} holds this uniqueKey and jobs wait on it; it cannot become recurring",
                    holder.id
                )));
            }
            let timing_changed = holder.repeat.as_ref() != Some(&repeat);
            if !timing_changed && holder.data == new_job.data && holder.priority == options.priority
            {
                return Ok(holder);
            }
            // Update in place. A pending run moves to the new timing; a running one keeps
            // going and its completion reads the new schedule (completer.rs). Unchanged
            // timing keeps `nextRunAt`, so a missed run still runs.
            let mut set = doc! {
                "repeat": repeat_bson.clone(),
                "data": job_doc.get("data").cloned().unwrap_or(bson::Bson::Null),
                "priority": options.priority,
                "updatedAt": now,
            };
            if timing_changed && holder.status == JobStatus::Pending {
                set.insert("nextRunAt", first);
                set.insert("occurrenceAt", first);
            }
            let updated = self
                .coll
                .find_one_and_update(
                    doc! { "_id": holder.id, "status": holder.status.as_str(), "hasDependents": { "$ne": holder.repeat.is_none() } },
                    doc! { "$set": set },
                )
                .return_document(mongodb::options::ReturnDocument::After)
                .await
                .map_err(|e| self.db_err(e))?;
            if let Some(updated) = updated {
                let job = Job::from_document(updated)?;
                tracing::info!(job.id = %job.id, name, "schedule updated");
                self.wake_at(name, job.next_run_at);
                return Ok(job);
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
            let now = DateTime::now();
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

    /// Active schedules, soonest first; all names, or one.
    pub(crate) async fn list_schedules(&self, name: Option<&str>) -> Result<Vec<Job>> {
        let mut filter = doc! {
            "repeat": { "$exists": true },
            "status": { "$in": [JobStatus::Pending.as_str(), JobStatus::Processing.as_str()] },
        };
        if let Some(name) = name {
            validate_job_name(name)?;
            filter.insert("name", name);
        }
        let found = self.coll.find(filter).sort(doc! { "nextRunAt": 1 }).await;
        self.collect_jobs(found).await
    }
}
