//! Operators' view of the queue: read jobs (by id, by filter, page by page), count them,
//! move single jobs or whole selections between states, pause and resume. The storage
//! layer makes each change, guarded by the status it expects (store/transitions.rs);
//! this layer aborts a cancelled run, settles the flows a change ends, wakes the
//! workers and announces what changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{oid::ObjectId, DateTime};

use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::job::validate_job_name;
use crate::job::Job;
use crate::new_job::validate_group;
use crate::query::{CursorQuery, JobPage, JobQuery, JobSelector, NameSummary, QueueStats};
use crate::runtime::dependents::Dependents;
use crate::runtime::doorbell::Doorbells;
use crate::runtime::pauses::Pauses;
use crate::runtime::running::Running;
use crate::status::JobStatus;
use crate::store::GroupSummary;
use crate::store::{Retried, Settled, Store};

/// Bulk retries are spread over this many groups, each due a little later.
const RETRY_GROUPS: usize = 20;

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

    /// Every job name in the queue with its jobs per status and whether it is paused:
    /// one aggregation over the collection and one read of the pauses.
    pub(crate) async fn job_names(&self) -> Result<Vec<NameSummary>> {
        let paused = self.store.read_pauses().await?;
        let mut names: BTreeMap<String, NameSummary> = BTreeMap::new();
        for (name, status, count) in self.store.queue_depth().await? {
            let summary = names.entry(name.clone()).or_insert_with(|| NameSummary {
                paused: paused.covers(&name),
                name,
                ..Default::default()
            });
            summary.counts.add(&status, count);
        }
        Ok(names.into_values().collect())
    }

    /// Counts per status, and the due jobs no live instance handles.
    pub(crate) async fn queue_stats(&self, name: Option<&str>) -> Result<QueueStats> {
        let mut stats = self.store.queue_stats(name).await?;
        let live = self.store.live_instances().await?;
        let orphans = self.store.orphans(&live, self.store.now(), name).await?;
        stats.orphaned = orphans.iter().map(|o| o.count).sum();
        Ok(stats)
    }

    /// Cancels a waiting, pending or running job: it becomes `cancelled` at once (its
    /// worker's writes are fenced by status) and the worker's signal aborts, here at
    /// once, elsewhere on its next heartbeat or change-stream event.
    pub(crate) async fn cancel_job(&self, id: ObjectId) -> Result<Job> {
        let (before, job) = self.store.cancel(id).await?;
        // Abort the run before the key is free for a new job.
        if before.status == JobStatus::Processing {
            self.running.cancel(id);
        }
        self.store.release_key(&job).await;
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
        self.retry_at(before, self.store.now()).await
    }

    /// Puts a failed or cancelled job back, due at `at`. One with dependencies waits
    /// for them again: settled at once. Then its worker is woken on time.
    async fn retry_at(&self, before: Job, at: DateTime) -> Result<Job> {
        let Retried {
            previous_status,
            job,
        } = self.store.retry(before, at).await?;
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
        let selection = self
            .store
            .select(selector, &[JobStatus::Waiting, JobStatus::Pending])?;
        let mut cancelled = 0;
        let mut after = None;
        loop {
            let jobs = self.store.next_chunk(&selection, after).await?;
            let Some(last) = jobs.last() else { break };
            after = Some(last.id);
            cancelled += self.store.cancel_chunk(&selection, &jobs).await?;
            // Jobs waiting on these fail if theirs really was cancelled (the flow checks
            // each dependency's status, so one claimed meanwhile is left alone), whatever
            // their flags said when read: one may have been set since.
            self.dependents
                .fail_dependents(jobs.iter().map(|j| j.id).collect())
                .await;
        }
        self.emit_bulk("jobs:cancelled", cancelled);
        Ok(cancelled)
    }

    /// Retries failed / cancelled jobs, spread evenly over `spread` so a large redrive
    /// does not hit the workers (and whatever they call) all at once. Jobs that changed
    /// or vanished meanwhile, or whose key another active job holds, are skipped.
    pub(crate) async fn retry_jobs(&self, selector: &JobSelector, spread: Duration) -> Result<u64> {
        let selection = self
            .store
            .select(selector, &[JobStatus::Failed, JobStatus::Cancelled])?;
        let total = self.store.count_selected(&selection).await?.max(1);
        let now = self.store.now().timestamp_millis();
        let spread_ms = spread.as_millis() as i64;
        // The n-th job of the selection is due `n / total` of the way into the window,
        // rounded down to one of RETRY_GROUPS steps (one update per step and chunk).
        let due = |n: u64| {
            let group = (n * RETRY_GROUPS as u64 / total) as i64;
            DateTime::from_millis(now + spread_ms * group / RETRY_GROUPS as i64)
        };
        let mut seen = 0u64;
        let mut retried = 0;
        let mut after = None;
        loop {
            let jobs = self.store.next_chunk(&selection, after).await?;
            let Some(last) = jobs.last() else { break };
            after = Some(last.id);
            let mut groups: BTreeMap<i64, Vec<Job>> = BTreeMap::new();
            for job in jobs {
                let at = due(seen);
                seen += 1;
                if job.unique_key.is_some() || !job.depends_on.is_empty() {
                    // Each must take its key back, or look at its dependencies, first.
                    match self.retry_at(job, at).await {
                        Ok(_) => retried += 1,
                        Err(Error::InvalidTransition { .. } | Error::JobNotFound(_)) => {}
                        Err(err) => return Err(err),
                    }
                } else {
                    groups.entry(at.timestamp_millis()).or_default().push(job);
                }
            }
            for (at, jobs) in groups {
                retried += self
                    .store
                    .retry_group(&selection, &jobs, DateTime::from_millis(at))
                    .await?;
            }
        }
        self.doorbells.ring_all();
        self.emit_bulk("jobs:retried", retried);
        Ok(retried)
    }

    pub(crate) async fn delete_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let deletable = [
            JobStatus::Waiting,
            JobStatus::Pending,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ];
        let selection = self.store.select(selector, &deletable)?;
        let mut deleted = 0;
        let mut after = None;
        loop {
            let jobs = self.store.next_chunk(&selection, after).await?;
            let Some(last) = jobs.last() else { break };
            after = Some(last.id);
            for job in &jobs {
                if job.status == JobStatus::Pending && job.unique_key.is_some() {
                    // One by one, never active without their lock (see delete_job).
                    match self.delete_job(job.id).await {
                        Ok(true) => deleted += 1,
                        Ok(false) | Err(Error::InvalidTransition { .. }) => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            deleted += self.store.delete_chunk(&selection, &jobs).await?;
            self.dependents
                .fail_dependents(jobs.iter().map(|j| j.id).collect())
                .await;
        }
        self.emit_bulk("jobs:deleted", deleted);
        Ok(deleted)
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

    /// Pauses or resumes one group of `name` on every instance (each reads it at its
    /// next claim); a resume wakes this instance's worker for `name`.
    pub(crate) async fn set_group_paused(
        &self,
        name: &str,
        group: &str,
        paused: bool,
    ) -> Result<()> {
        validate_job_name(name)?;
        validate_group(group)?;
        self.store.set_group_paused(name, group, paused).await?;
        tracing::info!(name, group, paused, "group pause changed");
        if !paused {
            self.doorbells.ring(name);
        }
        Ok(())
    }

    pub(crate) async fn groups(&self, name: &str) -> Result<Vec<GroupSummary>> {
        validate_job_name(name)?;
        self.store.group_summaries(name).await
    }

    pub(crate) async fn group_stats(&self, name: &str, group: &str) -> Result<QueueStats> {
        validate_job_name(name)?;
        validate_group(group)?;
        self.store.queue_stats_of(Some(name), Some(group)).await
    }

    fn emit_bulk(&self, kind: &'static str, count: u64) {
        if count > 0 {
            self.events.emit(Event::JobsChanged { kind, count });
        }
    }
}
