//! Operators' view of the queue: read jobs (by id, by filter, page by page), count them,
//! and move single jobs or whole selections between states. Every state change is one
//! update guarded by the status it expects, so it never races a worker: a job claimed
//! in between is reported as an invalid transition, not overwritten.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::options::ReturnDocument;

use crate::client::Inner;
use crate::completer::unlock;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::job::{validate_job_name, Job, JobStatus};
use crate::unique::lock_id;

/// Which jobs a listing or a bulk operation is about. Empty fields match everything;
/// bulk operations refuse a selector that is empty as a whole.
#[derive(Debug, Clone, Default)]
pub struct JobSelector {
    /// Only jobs of this name.
    pub name: Option<String>,
    /// Only jobs in one of these statuses (empty: any).
    pub status: Vec<JobStatus>,
    /// Only jobs created before this time.
    pub older_than: Option<DateTime>,
    /// Only jobs created after this time.
    pub newer_than: Option<DateTime>,
}

impl JobSelector {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.status.is_empty()
            && self.older_than.is_none()
            && self.newer_than.is_none()
    }

    fn filter(&self) -> Result<Document> {
        let mut filter = Document::new();
        if let Some(name) = &self.name {
            validate_job_name(name)?;
            filter.insert("name", name);
        }
        if !self.status.is_empty() {
            let statuses: Vec<&str> = self.status.iter().map(|s| s.as_str()).collect();
            filter.insert("status", doc! { "$in": statuses });
        }
        let mut created = Document::new();
        if let Some(t) = self.older_than {
            created.insert("$lt", t);
        }
        if let Some(t) = self.newer_than {
            created.insert("$gt", t);
        }
        if !created.is_empty() {
            filter.insert("createdAt", created);
        }
        Ok(filter)
    }

    /// The filter for a bulk operation on jobs in `allowed` statuses.
    fn bulk_filter(&self, allowed: &[JobStatus]) -> Result<Document> {
        if self.is_empty() {
            return Err(Error::InvalidSelector(
                "give at least one of name, status, olderThan, newerThan",
            ));
        }
        let statuses: Vec<JobStatus> = if self.status.is_empty() {
            allowed.to_vec()
        } else {
            self.status
                .iter()
                .copied()
                .filter(|s| allowed.contains(s))
                .collect()
        };
        if statuses.is_empty() {
            return Err(Error::InvalidSelector(
                "none of the selected statuses allows this operation",
            ));
        }
        JobSelector {
            status: statuses,
            ..self.clone()
        }
        .filter()
    }
}

/// A page request for [`Monque::get_jobs`](crate::Monque::get_jobs).
#[derive(Debug, Clone)]
pub struct JobQuery {
    /// Which jobs.
    pub selector: JobSelector,
    /// At most this many (1-1000). Default 100.
    pub limit: u32,
    /// Skip this many first. Prefer cursors for deep pages.
    pub skip: u64,
    /// Leave `data` out (it comes back as `null`): cheap listings for dashboards.
    pub without_data: bool,
}

impl Default for JobQuery {
    fn default() -> Self {
        JobQuery {
            selector: JobSelector::default(),
            limit: 100,
            skip: 0,
            without_data: false,
        }
    }
}

/// Order of a cursor listing: by creation (the job id), oldest or newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first.
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}

/// Which way from the cursor a page goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Direction {
    /// The items after the cursor, in sort order.
    #[default]
    Forward,
    /// The items before the cursor, still returned in sort order.
    Backward,
}

/// A request for [`Monque::get_jobs_with_cursor`](crate::Monque::get_jobs_with_cursor).
#[derive(Debug, Clone)]
pub struct CursorQuery {
    /// Which jobs.
    pub selector: JobSelector,
    /// A cursor from a previous [`JobPage`]; `None` starts at the beginning (forward)
    /// or the end (backward).
    pub cursor: Option<String>,
    /// Page size (1-1000). Default 50.
    pub limit: u32,
    /// Which way to page.
    pub direction: Direction,
    /// Sort order of the listing.
    pub sort: SortOrder,
    /// Leave `data` out.
    pub without_data: bool,
}

impl Default for CursorQuery {
    fn default() -> Self {
        CursorQuery {
            selector: JobSelector::default(),
            cursor: None,
            limit: 50,
            direction: Direction::Forward,
            sort: SortOrder::Ascending,
            without_data: false,
        }
    }
}

/// One page of a cursor listing.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs, in sort order.
    pub jobs: Vec<Job>,
    /// Pass with [`Direction::Forward`] for the page after this one.
    pub next_cursor: Option<String>,
    /// Pass with [`Direction::Backward`] for the page before this one.
    pub prev_cursor: Option<String>,
    /// Whether more jobs follow this page.
    pub has_next: bool,
    /// Whether jobs precede this page.
    pub has_prev: bool,
}

/// Counts per status and the mean processing time of completed jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// `pending` jobs.
    pub pending: u64,
    /// `processing` jobs.
    pub processing: u64,
    /// `completed` jobs.
    pub completed: u64,
    /// `failed` jobs.
    pub failed: u64,
    /// `cancelled` jobs.
    pub cancelled: u64,
    /// All of them.
    pub total: u64,
    /// Mean time from start to finish of the completed jobs' last runs, in ms.
    pub avg_processing_ms: Option<f64>,
}

const MAX_PAGE: u32 = 1000;

/// Bulk retries are spread over this many groups, each due a little later.
const RETRY_GROUPS: usize = 20;

fn page_limit(limit: u32) -> Result<i64> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::option("limit", "must be 1-1000"));
    }
    Ok(i64::from(limit))
}

static WITHOUT_DATA: std::sync::LazyLock<Document> =
    std::sync::LazyLock::new(|| doc! { "data": 0 });

impl Inner {
    /// The job with this id, if any.
    pub(crate) async fn get_job(&self, id: ObjectId) -> Result<Option<Job>> {
        self.coll
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| self.db_err(e))?
            .map(Job::from_document)
            .transpose()
    }

    async fn must_get(&self, id: ObjectId) -> Result<Job> {
        self.get_job(id)
            .await?
            .ok_or_else(|| Error::JobNotFound(id.to_hex()))
    }

    pub(crate) async fn get_jobs(&self, query: JobQuery) -> Result<Vec<Job>> {
        let limit = page_limit(query.limit)?;
        let mut find = self
            .coll
            .find(query.selector.filter()?)
            .sort(doc! { "_id": 1 })
            .skip(query.skip)
            .limit(limit);
        if query.without_data {
            find = find.projection(WITHOUT_DATA.clone());
        }
        let cursor = find.await.map_err(|e| self.db_err(e))?;
        let docs: Vec<Document> = cursor.try_collect().await.map_err(|e| self.db_err(e))?;
        docs.into_iter().map(Job::from_document).collect()
    }

    /// Keyset pagination on `_id`: stable under inserts and deletes, and as cheap on
    /// page 1000 as on page 1.
    pub(crate) async fn get_jobs_page(&self, query: CursorQuery) -> Result<JobPage> {
        let limit = page_limit(query.limit)?;
        let mut filter = query.selector.filter()?;
        let after = match &query.cursor {
            Some(c) => Some(ObjectId::parse_str(c).map_err(|_| Error::InvalidCursor(c.clone()))?),
            None => None,
        };
        // Walking forward in ascending order means increasing ids; every other
        // combination is derived from that.
        let increasing =
            (query.sort == SortOrder::Ascending) == (query.direction == Direction::Forward);
        if let Some(id) = after {
            filter.insert("_id", doc! { if increasing { "$gt" } else { "$lt" }: id });
        }
        let mut find = self
            .coll
            .find(filter)
            .sort(doc! { "_id": if increasing { 1 } else { -1 } })
            .limit(limit + 1);
        if query.without_data {
            find = find.projection(WITHOUT_DATA.clone());
        }
        let docs: Vec<Document> = find
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let more_that_way = docs.len() as i64 > limit;
        let mut jobs = docs
            .into_iter()
            .take(limit as usize)
            .map(Job::from_document)
            .collect::<Result<Vec<_>>>()?;
        if query.direction == Direction::Backward {
            jobs.reverse();
        }
        let (has_next, has_prev) = match query.direction {
            Direction::Forward => (more_that_way, after.is_some()),
            Direction::Backward => (after.is_some(), more_that_way),
        };
        Ok(JobPage {
            next_cursor: jobs.last().filter(|_| has_next).map(|j| j.id.to_hex()),
            prev_cursor: jobs.first().filter(|_| has_prev).map(|j| j.id.to_hex()),
            has_next,
            has_prev,
            jobs,
        })
    }

    pub(crate) async fn queue_stats(&self, name: Option<&str>) -> Result<QueueStats> {
        let mut matcher = Document::new();
        if let Some(name) = name {
            validate_job_name(name)?;
            matcher.insert("name", name);
        }
        let pipeline = [
            doc! { "$match": matcher },
            doc! { "$group": { "_id": "$status", "count": { "$sum": 1 }, "avg": { "$avg": "$durationMs" } } },
        ];
        let groups: Vec<Document> = self
            .coll
            .aggregate(pipeline)
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let mut stats = QueueStats::default();
        for group in groups {
            let count = match group.get("count") {
                Some(Bson::Int32(n)) => *n as u64,
                Some(Bson::Int64(n)) => *n as u64,
                Some(Bson::Double(n)) => *n as u64,
                _ => 0,
            };
            stats.total += count;
            match group.get_str("_id").unwrap_or_default() {
                "pending" => stats.pending = count,
                "processing" => stats.processing = count,
                "completed" => {
                    stats.completed = count;
                    stats.avg_processing_ms = match group.get("avg") {
                        Some(Bson::Double(v)) => Some(*v),
                        Some(Bson::Int32(v)) => Some(f64::from(*v)),
                        Some(Bson::Int64(v)) => Some(*v as f64),
                        _ => None,
                    };
                }
                "failed" => stats.failed = count,
                "cancelled" => stats.cancelled = count,
                _ => {}
            }
        }
        Ok(stats)
    }

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
            let after = self
                .coll
                .find_one_and_update(
                    doc! { "_id": id, "status": before.status.as_str() },
                    update(&before),
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| self.db_err(e))?;
            if let Some(after) = after {
                return Ok((before, Job::from_document(after)?));
            }
        }
        Err(Error::InvalidState("the job kept changing; try again"))
    }

    pub(crate) async fn cancel_job(&self, id: ObjectId) -> Result<Job> {
        let now = DateTime::now();
        let (_, job) = self
            .transition(id, "cancel", &[JobStatus::Pending], |_| {
                doc! { "$set": { "status": JobStatus::Cancelled.as_str(), "updatedAt": now } }
            })
            .await?;
        self.release_key(&job).await;
        self.emit(Event::JobCancelled {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    pub(crate) async fn retry_job(&self, id: ObjectId) -> Result<Job> {
        let before = self.must_get(id).await?;
        self.retry_at(before, DateTime::now()).await
    }

    /// Puts a failed or cancelled job back to `pending` at `at`, taking its uniqueKey
    /// back first (refused if another active job holds it now).
    async fn retry_at(&self, before: Job, at: DateTime) -> Result<Job> {
        let allowed = [JobStatus::Failed, JobStatus::Cancelled];
        if !allowed.contains(&before.status) {
            return Err(Error::InvalidTransition {
                id: before.id.to_hex(),
                action: "retry",
                status: before.status,
            });
        }
        let locked = self.relock(&before).await?;
        let now = DateTime::now();
        let result = self
            .transition(before.id, "retry", &allowed, |_| {
                doc! {
                    "$set": { "status": JobStatus::Pending.as_str(), "nextRunAt": at, "failCount": 0, "updatedAt": now },
                    "$unset": unlock(),
                }
            })
            .await;
        match result {
            Ok((before, job)) => {
                self.wake_at(&job.name, job.next_run_at);
                self.emit(Event::JobRetried {
                    job: Arc::new(job.clone()),
                    previous_status: before.status,
                });
                Ok(job)
            }
            Err(err) => {
                if locked {
                    self.release_key(&before).await;
                }
                Err(err)
            }
        }
    }

    /// Takes the uniqueKey lock for a job about to become active again. False when the
    /// job has no key. A key held by another active job is an error.
    async fn relock(&self, job: &Job) -> Result<bool> {
        let Some(key) = &job.unique_key else {
            return Ok(false);
        };
        let lock = lock_id(&job.name, key);
        for _ in 0..4 {
            match self
                .locks
                .insert_one(doc! { "_id": &lock, "jobId": job.id, "createdAt": DateTime::now() })
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if Error::is_duplicate_key(&e) => {}
                Err(e) => return Err(self.db_err(e)),
            }
            let holder = self
                .locks
                .find_one(doc! { "_id": &lock })
                .await
                .map_err(|e| self.db_err(e))?
                .and_then(|l| l.get_object_id("jobId").ok());
            let Some(holder) = holder else { continue };
            if holder == job.id {
                return Ok(true);
            }
            match self.get_job(holder).await? {
                Some(other) if other.status.is_active() => {
                    return Err(Error::InvalidTransition {
                        id: job.id.to_hex(),
                        action: "retry (its uniqueKey is held by an active job)",
                        status: job.status,
                    })
                }
                _ => {
                    self.locks
                        .delete_one(doc! { "_id": &lock, "jobId": holder })
                        .await
                        .map_err(|e| self.db_err(e))?;
                }
            }
        }
        Err(Error::InvalidState(
            "uniqueKey is heavily contended; try again",
        ))
    }

    pub(crate) async fn reschedule_job(&self, id: ObjectId, run_at: DateTime) -> Result<Job> {
        let now = DateTime::now();
        let (_, job) = self
            .transition(id, "reschedule", &[JobStatus::Pending], |_| {
                doc! { "$set": { "nextRunAt": run_at, "updatedAt": now } }
            })
            .await?;
        self.wake_at(&job.name, job.next_run_at);
        self.emit(Event::JobRescheduled {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    pub(crate) async fn set_job_priority(&self, id: ObjectId, priority: i32) -> Result<Job> {
        let now = DateTime::now();
        let (_, job) = self
            .transition(id, "change the priority of", &[JobStatus::Pending], |_| {
                doc! { "$set": { "priority": priority, "updatedAt": now } }
            })
            .await?;
        self.emit(Event::JobPriorityChanged {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    /// Deletes a job that is not running. The uniqueKey lock goes first, so the key is
    /// never held by a job that no longer exists.
    pub(crate) async fn delete_job(&self, id: ObjectId) -> Result<bool> {
        for _ in 0..4 {
            let Some(job) = self.get_job(id).await? else {
                return Ok(false);
            };
            if job.status == JobStatus::Processing {
                return Err(Error::InvalidTransition {
                    id: id.to_hex(),
                    action: "delete",
                    status: job.status,
                });
            }
            let keyed = job.status.is_active() && job.unique_key.is_some();
            if keyed {
                self.release_key(&job).await;
            }
            let res = self
                .coll
                .delete_one(doc! { "_id": id, "status": job.status.as_str() })
                .await
                .map_err(|e| self.db_err(e))?;
            if res.deleted_count == 1 {
                self.emit(Event::JobDeleted { id });
                return Ok(true);
            }
            if keyed {
                // Claimed in between: it is still active, so it keeps its key.
                let _ = self.relock(&job).await;
            }
        }
        Err(Error::InvalidState("the job kept changing; try again"))
    }

    /// Ids (and keys) of the jobs a bulk filter matches right now.
    async fn matching(&self, filter: Document) -> Result<Vec<Job>> {
        let docs: Vec<Document> = self
            .coll
            .find(filter)
            .projection(doc! { "data": 0 })
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        docs.into_iter().map(Job::from_document).collect()
    }

    pub(crate) async fn cancel_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let filter = selector.bulk_filter(&[JobStatus::Pending])?;
        let jobs = self.matching(filter).await?;
        let ids: Vec<ObjectId> = jobs.iter().map(|j| j.id).collect();
        let now = DateTime::now();
        let res = self
            .coll
            .update_many(
                doc! { "_id": { "$in": &ids }, "status": JobStatus::Pending.as_str() },
                doc! { "$set": { "status": JobStatus::Cancelled.as_str(), "updatedAt": now } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        // Free the keys of the jobs that really were cancelled (not claimed meanwhile).
        let keyed: Vec<ObjectId> = jobs
            .iter()
            .filter(|j| j.unique_key.is_some())
            .map(|j| j.id)
            .collect();
        if !keyed.is_empty() {
            let cancelled = self
                .matching(doc! { "_id": { "$in": keyed }, "status": JobStatus::Cancelled.as_str() })
                .await?;
            for job in &cancelled {
                self.release_key(job).await;
            }
        }
        self.emit_bulk("jobs:cancelled", res.modified_count);
        Ok(res.modified_count)
    }

    /// Retries failed / cancelled jobs, spread evenly over `spread` so a large redrive
    /// does not hit the workers (and whatever they call) all at once.
    pub(crate) async fn retry_jobs(&self, selector: &JobSelector, spread: Duration) -> Result<u64> {
        let allowed = [JobStatus::Failed, JobStatus::Cancelled];
        let jobs = self.matching(selector.bulk_filter(&allowed)?).await?;
        let now = DateTime::now();
        let step_ms = spread.as_millis() as i64 / RETRY_GROUPS as i64;
        let (keyed, plain): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.unique_key.is_some());
        let mut retried = 0;
        let group_size = plain.len().div_ceil(RETRY_GROUPS).max(1);
        for (i, group) in plain.chunks(group_size).enumerate() {
            let at = DateTime::from_millis(now.timestamp_millis() + step_ms * i as i64);
            let ids: Vec<ObjectId> = group.iter().map(|j| j.id).collect();
            let statuses: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            let res = self
                .coll
                .update_many(
                    doc! { "_id": { "$in": ids }, "status": { "$in": statuses } },
                    doc! {
                        "$set": { "status": JobStatus::Pending.as_str(), "nextRunAt": at, "failCount": 0, "updatedAt": now },
                        "$unset": unlock(),
                    },
                )
                .await
                .map_err(|e| self.db_err(e))?;
            retried += res.modified_count;
        }
        // Keyed jobs one by one: each must take its key back first.
        for (i, job) in keyed.into_iter().enumerate() {
            let at =
                DateTime::from_millis(now.timestamp_millis() + step_ms * (i % RETRY_GROUPS) as i64);
            match self.retry_at(job, at).await {
                Ok(_) => retried += 1,
                Err(Error::InvalidTransition { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        self.wake_all();
        self.emit_bulk("jobs:retried", retried);
        Ok(retried)
    }

    pub(crate) async fn delete_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let deletable = [
            JobStatus::Pending,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ];
        let mut filter = selector.bulk_filter(&deletable)?;
        // Pending jobs holding a key go one by one, lock first (see delete_job).
        let mut deleted = 0;
        if selector.status.is_empty() || selector.status.contains(&JobStatus::Pending) {
            let mut keyed = filter.clone();
            keyed.insert("status", JobStatus::Pending.as_str());
            keyed.insert("uniqueKey", doc! { "$exists": true });
            for job in self.matching(keyed).await? {
                match self.delete_job(job.id).await {
                    Ok(true) => deleted += 1,
                    Ok(false) | Err(Error::InvalidTransition { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            filter = doc! { "$and": [filter, { "$or": [
                { "status": { "$ne": JobStatus::Pending.as_str() } },
                { "uniqueKey": { "$exists": false } },
            ] }] };
        }
        let res = self
            .coll
            .delete_many(filter)
            .await
            .map_err(|e| self.db_err(e))?;
        deleted += res.deleted_count;
        self.emit_bulk("jobs:deleted", deleted);
        Ok(deleted)
    }

    fn emit_bulk(&self, kind: &'static str, count: u64) {
        if count > 0 {
            self.emit(Event::JobsChanged { kind, count });
        }
    }
}
