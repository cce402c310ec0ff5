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
use crate::flows::Settled;
use crate::job::{validate_job_name, Job, JobStatus};
use crate::unique::{lock_id, Holder};

/// `nextRunAt` of a job being retried while it takes its uniqueKey back: never due.
const PARKED: DateTime = DateTime::MAX;

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
    /// `waiting` jobs (their dependencies have not all completed).
    pub waiting: u64,
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

/// Bulk operations read and write this many jobs at a time.
const BULK_CHUNK: i64 = 1000;

/// Bulk retries are spread over this many groups, each due a little later.
const RETRY_GROUPS: usize = 20;

fn page_limit(limit: u32) -> Result<i64> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::option("limit", "must be 1-1000"));
    }
    Ok(i64::from(limit))
}

/// The update that cancels a job (guarded by the caller's filter).
pub(crate) fn cancel_update(now: DateTime) -> Document {
    doc! { "$set": { "status": JobStatus::Cancelled.as_str(), "updatedAt": now } }
}

/// The id one step past `id` (the next possible one when `up`, else the previous).
fn step(id: ObjectId, up: bool) -> ObjectId {
    let mut bytes = id.bytes();
    for b in bytes.iter_mut().rev() {
        let (v, carry) = if up {
            b.overflowing_add(1)
        } else {
            b.overflowing_sub(1)
        };
        *b = v;
        if !carry {
            break;
        }
    }
    ObjectId::from_bytes(bytes)
}

static WITHOUT_DATA: std::sync::LazyLock<Document> =
    std::sync::LazyLock::new(|| doc! { "data": 0 });

impl Inner {
    /// Reads every job a `find` returned.
    pub(crate) async fn collect_jobs(
        &self,
        found: mongodb::error::Result<mongodb::Cursor<Document>>,
    ) -> Result<Vec<Job>> {
        let docs: Vec<Document> = found
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        docs.into_iter().map(Job::from_document).collect()
    }

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
        self.collect_jobs(find.await).await
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
        let mut jobs = self.collect_jobs(find.await).await?;
        let more_that_way = jobs.len() as i64 > limit;
        jobs.truncate(limit as usize);
        if query.direction == Direction::Backward {
            jobs.reverse();
        }
        let (has_next, has_prev) = match query.direction {
            Direction::Forward => (more_that_way, after.is_some()),
            Direction::Backward => (after.is_some(), more_that_way),
        };
        // An empty page past the end (or before the start) still leads back: its cursor
        // is the request's, moved one step outward so the page that held it is whole.
        let beyond = after.map(|c| step(c, increasing).to_hex());
        let edge = |j: Option<&Job>| j.map(|j| j.id.to_hex()).or_else(|| beyond.clone());
        Ok(JobPage {
            next_cursor: edge(jobs.last()).filter(|_| has_next),
            prev_cursor: edge(jobs.first()).filter(|_| has_prev),
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
                "waiting" => stats.waiting = count,
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

    /// Cancels a pending job, or a running one: it becomes `cancelled` at once (its
    /// worker's writes are fenced by status) and the worker's signal aborts, here at
    /// once, elsewhere on its next heartbeat or change-stream event.
    pub(crate) async fn cancel_job(&self, id: ObjectId) -> Result<Job> {
        let now = DateTime::now();
        let allowed = [
            JobStatus::Waiting,
            JobStatus::Pending,
            JobStatus::Processing,
        ];
        let (before, job) = self
            .transition(id, "cancel", &allowed, |_| cancel_update(now))
            .await?;
        if before.status == JobStatus::Processing {
            self.running.cancel(id);
        }
        self.release_key(&job).await;
        if job.has_dependents {
            self.fail_dependents(vec![id]).await;
        }
        self.emit(Event::JobCancelled {
            job: Arc::new(job.clone()),
        });
        Ok(job)
    }

    pub(crate) async fn retry_job(&self, id: ObjectId) -> Result<Job> {
        let before = self.must_get(id).await?;
        self.retry_at(before, DateTime::now()).await
    }

    /// Puts a failed or cancelled job back to `pending` at `at`. A job with a uniqueKey
    /// becomes active first but unclaimable (far-future `nextRunAt`, marked with a
    /// token), then takes its key, then gets its real run time; if another active job
    /// holds the key, the change is undone. So an active job never lacks its lock, and
    /// two racing retries or a racing enqueue cannot leave two active jobs.
    async fn retry_at(&self, before: Job, at: DateTime) -> Result<Job> {
        let allowed = [JobStatus::Failed, JobStatus::Cancelled];
        let now = DateTime::now();
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
                            "$set": { "status": before.status.as_str(), "nextRunAt": before.next_run_at, "failCount": before.fail_count, "updatedAt": DateTime::now() },
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
        } else if status == JobStatus::Waiting {
            match self.settle(job.id, &job.depends_on).await? {
                Settled::Pending(moved) | Settled::Failed(moved) => moved,
                Settled::Blocked => job,
                Settled::Gone => self.must_get(job.id).await?,
            }
        } else {
            job
        };
        self.wake_at(&job.name, job.next_run_at);
        self.emit(Event::JobRetried {
            job: Arc::new(job.clone()),
            previous_status: before.status,
        });
        Ok(job)
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
                .insert_one(doc! { "_id": &lock, "jobId": job.id, "createdAt": DateTime::now() })
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

    /// Deletes a job that is not running. A pending job with a uniqueKey is cancelled
    /// first, so it is never active without its lock; then the lock goes, then the job.
    pub(crate) async fn delete_job(&self, id: ObjectId) -> Result<bool> {
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
                            cancel_update(DateTime::now()),
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
                // Whatever the flag said when read: one may have been set since.
                self.fail_dependents(vec![id]).await;
                self.emit(Event::JobDeleted { id });
                return Ok(true);
            }
        }
        Err(Error::InvalidState("the job kept changing; try again"))
    }

    /// The next (up to) 1,000 jobs `filter` matches after `after`, in id order, without
    /// payloads: bulk operations walk their selection in chunks, so a huge selection
    /// never builds one huge command.
    pub(crate) async fn chunk(
        &self,
        filter: &Document,
        after: Option<ObjectId>,
    ) -> Result<Vec<Job>> {
        let page = match after {
            Some(last) => doc! { "$and": [filter.clone(), { "_id": { "$gt": last } }] },
            None => filter.clone(),
        };
        let found = self
            .coll
            .find(page)
            .sort(doc! { "_id": 1 })
            .limit(BULK_CHUNK)
            .projection(WITHOUT_DATA.clone())
            .await;
        self.collect_jobs(found).await
    }

    pub(crate) async fn cancel_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let filter = selector.bulk_filter(&[JobStatus::Waiting, JobStatus::Pending])?;
        let mut cancelled = 0;
        let mut after = None;
        loop {
            let jobs = self.chunk(&filter, after).await?;
            let Some(last) = jobs.last() else { break };
            after = Some(last.id);
            let ids: Vec<ObjectId> = jobs.iter().map(|j| j.id).collect();
            let res = self
                .coll
                .update_many(
                    doc! { "_id": { "$in": &ids }, "status": { "$in": ["waiting", "pending"] } },
                    cancel_update(DateTime::now()),
                )
                .await
                .map_err(|e| self.db_err(e))?;
            cancelled += res.modified_count;
            // Jobs waiting on these fail if theirs really was cancelled (the flow
            // checks each dependency's status, so one claimed meanwhile is left alone).
            // (Whatever their flags said when read: one may have been set since.)
            self.fail_dependents(ids.clone()).await;
            // Free the keys of the jobs that really were cancelled (not claimed meanwhile).
            let keyed: Vec<ObjectId> = jobs
                .iter()
                .filter(|j| j.unique_key.is_some())
                .map(|j| j.id)
                .collect();
            if !keyed.is_empty() {
                let done =
                    doc! { "_id": { "$in": keyed }, "status": JobStatus::Cancelled.as_str() };
                for job in self.chunk(&done, None).await? {
                    self.release_key(&job).await;
                }
            }
        }
        self.emit_bulk("jobs:cancelled", cancelled);
        Ok(cancelled)
    }

    /// Retries failed / cancelled jobs, spread evenly over `spread` so a large redrive
    /// does not hit the workers (and whatever they call) all at once. Jobs that changed
    /// or vanished meanwhile, or whose key another active job holds, are skipped.
    pub(crate) async fn retry_jobs(&self, selector: &JobSelector, spread: Duration) -> Result<u64> {
        let allowed = [JobStatus::Failed, JobStatus::Cancelled];
        let filter = selector.bulk_filter(&allowed)?;
        let total = self
            .coll
            .count_documents(filter.clone())
            .await
            .map_err(|e| self.db_err(e))?
            .max(1);
        let now = DateTime::now().timestamp_millis();
        let spread_ms = spread.as_millis() as i64;
        // The n-th job of the selection is due `n / total` of the way into the window,
        // rounded down to one of RETRY_GROUPS steps (one update per step and chunk).
        let due = |n: u64| {
            let group = (n * RETRY_GROUPS as u64 / total) as i64;
            DateTime::from_millis(now + spread_ms * group / RETRY_GROUPS as i64)
        };
        let statuses: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        let mut seen = 0u64;
        let mut retried = 0;
        let mut after = None;
        loop {
            let jobs = self.chunk(&filter, after).await?;
            let Some(last) = jobs.last() else { break };
            after = Some(last.id);
            let mut groups: std::collections::BTreeMap<i64, Vec<ObjectId>> = Default::default();
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
                    groups
                        .entry(at.timestamp_millis())
                        .or_default()
                        .push(job.id);
                }
            }
            for (at, ids) in groups {
                let res = self
                    .coll
                    .update_many(
                        doc! { "_id": { "$in": ids }, "status": { "$in": &statuses } },
                        doc! {
                            "$set": { "status": JobStatus::Pending.as_str(), "nextRunAt": DateTime::from_millis(at), "failCount": 0, "updatedAt": DateTime::now() },
                            "$unset": unlock(),
                        },
                    )
                    .await
                    .map_err(|e| self.db_err(e))?;
                retried += res.modified_count;
            }
        }
        self.wake_all();
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
        let filter = selector.bulk_filter(&deletable)?;
        let statuses: Vec<&str> = deletable.iter().map(|s| s.as_str()).collect();
        let mut deleted = 0;
        let mut after = None;
        loop {
            let jobs = self.chunk(&filter, after).await?;
            let Some(last) = jobs.last() else { break };
            after = Some(last.id);
            let mut rest = Vec::new();
            let mut finished_keyed = Vec::new();
            let chunk_ids: Vec<ObjectId> = jobs.iter().map(|j| j.id).collect();
            for job in jobs {
                match (job.status, &job.unique_key) {
                    // Pending jobs holding a key go one by one (see delete_job).
                    (JobStatus::Pending, Some(_)) => match self.delete_job(job.id).await {
                        Ok(true) => deleted += 1,
                        Ok(false) | Err(Error::InvalidTransition { .. }) => {}
                        Err(err) => return Err(err),
                    },
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
                .delete_many(doc! { "_id": { "$in": rest }, "status": { "$in": &statuses } })
                .await
                .map_err(|e| self.db_err(e))?;
            deleted += res.deleted_count;
            self.fail_dependents(chunk_ids).await;
        }
        self.emit_bulk("jobs:deleted", deleted);
        Ok(deleted)
    }

    fn emit_bulk(&self, kind: &'static str, count: u64) {
        if count > 0 {
            self.emit(Event::JobsChanged { kind, count });
        }
    }
}
