//! Operators' view of the queue: read jobs (by id, by filter, page by page), count them,
//! move single jobs or whole selections between states, pause and resume. The storage
//! layer makes each change, guarded by the status it expects (store/transitions.rs);
//! this layer aborts a cancelled run, settles the flows a change ends, wakes the
//! workers and announces what changed.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{oid::ObjectId, DateTime};

use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::job::Job;
use crate::query::{CursorQuery, JobPage, JobQuery, JobSelector, QueueStats};
use crate::runtime::dependents::Dependents;
use crate::runtime::doorbell::Doorbells;
use crate::runtime::pauses::Pauses;
use crate::runtime::running::Running;
use crate::status::JobStatus;
use crate::store::{Retried, Settled, Store};

pub(crate) struct Management {
    pub(crate) store: Arc<Store>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) running: Arc<Running>,
    pub(crate) dependents: Arc<Dependents>,
    pub(crate) doorbells: Arc<Doorbells>,
    pub(crate) pauses: Arc<Pauses>,
}

impl Management {
    pub(crate) async fn get_job(&self, id: ObjectId) -> Result<Option<Job>> {
        self.store.get_job(id).await
    }

    pub(crate) async fn get_jobs(&self, query: JobQuery) -> Result<Vec<Job>> {
        self.store.get_jobs(query).await
    }

    pub(crate) async fn get_jobs_page(&self, query: CursorQuery) -> Result<JobPage> {
        self.store.get_jobs_page(query).await
    }

    pub(crate) async fn queue_stats(&self, name: Option<&str>) -> Result<QueueStats> {
        self.store.queue_stats(name).await
    }

    /// Cancels a waiting, pending or running job: it becomes `cancelled` at once (its
    /// worker's writes are fenced by status) and the worker's signal aborts, here at
    /// once, elsewhere on its next heartbeat or change-stream event.
    pub(crate) async fn cancel_job(&self, id: ObjectId) -> Result<Job> {
        let (before, job) = self.store.cancel(id).await?;
        if before.status == JobStatus::Processing {
            self.running.cancel(id);
        }
        if job.has_dependents {
            self.dependents.fail_dependents(vec![id]).await;
        }
        self.events.emit(Event::JobCancelled {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    pub(crate) async fn retry_job(&self, id: ObjectId) -> Result<Job> {
        let before = self.store.must_get(id).await?;
        let retried = self.store.retry(before, DateTime::now()).await?;
        self.after_retry(retried).await
    }

    /// A retried job with dependencies waits for them again: settle it now. Then wake
    /// its worker on time and announce it.
    async fn after_retry(&self, retried: Retried) -> Result<Job> {
        let Retried {
            previous_status,
            job,
        } = retried;
        let job = if job.status == JobStatus::Waiting {
            match self.dependents.settle(job.id, &job.depends_on).await? {
                Settled::Pending(moved) | Settled::Failed(moved) => moved,
                Settled::Blocked => job,
                Settled::Gone => self.store.must_get(job.id).await?,
            }
        } else {
            job
        };
        self.doorbells.ring_at(&job.name, job.next_run_at);
        self.events.emit(Event::JobRetried {
            job: Arc::new(job.clone()),
            previous_status,
        });
        Ok(job)
    }

    pub(crate) async fn reschedule_job(&self, id: ObjectId, run_at: DateTime) -> Result<Job> {
        let job = self.store.reschedule(id, run_at).await?;
        self.doorbells.ring_at(&job.name, job.next_run_at);
        self.events.emit(Event::JobRescheduled {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    pub(crate) async fn set_job_priority(&self, id: ObjectId, priority: i32) -> Result<Job> {
        let job = self.store.set_priority(id, priority).await?;
        self.events.emit(Event::JobPriorityChanged {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    pub(crate) async fn delete_job(&self, id: ObjectId) -> Result<bool> {
        if !self.store.delete(id).await? {
            return Ok(false);
        }
        // Whatever the flag said when read: one may have been set since.
        self.dependents.fail_dependents(vec![id]).await;
        self.events.emit(Event::JobDeleted { id });
        Ok(true)
    }

    pub(crate) async fn cancel_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let bulk = self.store.cancel_matching(selector).await?;
        // Jobs waiting on these fail if theirs really was cancelled (the flow checks
        // each dependency's status, so one claimed meanwhile is left alone).
        for ids in bulk.chunks {
            self.dependents.fail_dependents(ids).await;
        }
        self.emit_bulk("jobs:cancelled", bulk.count);
        Ok(bulk.count)
    }

    /// Retries failed / cancelled jobs, spread evenly over `spread` so a large redrive
    /// does not hit the workers (and whatever they call) all at once. Jobs that changed
    /// or vanished meanwhile, or whose key another active job holds, are skipped.
    pub(crate) async fn retry_jobs(&self, selector: &JobSelector, spread: Duration) -> Result<u64> {
        let (count, one_by_one) = self.store.retry_matching(selector, spread).await?;
        for retried in one_by_one {
            self.after_retry(retried).await?;
        }
        self.doorbells.ring_all();
        self.emit_bulk("jobs:retried", count);
        Ok(count)
    }

    pub(crate) async fn delete_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let bulk = self.store.delete_matching(selector).await?;
        for id in bulk.one_by_one {
            self.dependents.fail_dependents(vec![id]).await;
            self.events.emit(Event::JobDeleted { id });
        }
        for ids in bulk.chunks {
            self.dependents.fail_dependents(ids).await;
        }
        self.emit_bulk("jobs:deleted", bulk.count);
        Ok(bulk.count)
    }

    /// Stops claiming jobs of `name` (or of every name) on every instance: this one at
    /// once, others within a heartbeat.
    pub(crate) async fn pause(&self, name: Option<&str>) -> Result<()> {
        self.store.pause(name).await?;
        self.pauses.refresh().await?;
        tracing::info!(name, "paused");
        self.events.emit(Event::QueuePaused {
            name: name.map(str::to_owned),
            paused: true,
        });
        Ok(())
    }

    pub(crate) async fn resume(&self, name: Option<&str>) -> Result<()> {
        self.store.resume(name).await?;
        self.pauses.refresh().await?;
        tracing::info!(name, "resumed");
        self.events.emit(Event::QueuePaused {
            name: name.map(str::to_owned),
            paused: false,
        });
        Ok(())
    }

    fn emit_bulk(&self, kind: &'static str, count: u64) {
        if count > 0 {
            self.events.emit(Event::JobsChanged { kind, count });
        }
    }
}
