//! Reads for operators: one job, filtered listings (offset or keyset pages), counts
//! per status and per name. Selectors become filters here, field by field.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};

use super::Store;
use crate::error::{Error, Result};
use crate::job::{validate_job_name, Job};
use crate::query::{CursorQuery, Direction, JobPage, JobQuery, JobSelector, QueueStats, SortOrder};
use crate::status::JobStatus;

/// Queue depth rows: (name, status, count), every status of every name seen.
pub(crate) type Depth = Vec<(String, String, u64)>;

const MAX_PAGE: u32 = 1000;

/// Bulk operations read and write this many jobs at a time.
const BULK_CHUNK: i64 = 1000;

fn page_limit(limit: u32) -> Result<i64> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::option("limit", "must be 1-1000"));
    }
    Ok(i64::from(limit))
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

fn is_empty(selector: &JobSelector) -> bool {
    selector.name.is_none()
        && selector.status.is_empty()
        && selector.older_than.is_none()
        && selector.newer_than.is_none()
}

/// The filter a selector means; its values are only ever compared, never run.
pub(super) fn selector_filter(selector: &JobSelector) -> Result<Document> {
    let mut filter = Document::new();
    if let Some(name) = &selector.name {
        validate_job_name(name)?;
        filter.insert("name", name);
    }
    if !selector.status.is_empty() {
        let statuses: Vec<&str> = selector.status.iter().map(|s| s.as_str()).collect();
        filter.insert("status", doc! { "$in": statuses });
    }
    let mut created = Document::new();
    if let Some(t) = selector.older_than {
        created.insert("$lt", t);
    }
    if let Some(t) = selector.newer_than {
        created.insert("$gt", t);
    }
    if !created.is_empty() {
        filter.insert("createdAt", created);
    }
    Ok(filter)
}

/// The filter for a bulk operation on jobs in `allowed` statuses.
pub(super) fn bulk_filter(selector: &JobSelector, allowed: &[JobStatus]) -> Result<Document> {
    if is_empty(selector) {
        return Err(Error::InvalidSelector(
            "give at least one of name, status, olderThan, newerThan",
        ));
    }
    let statuses: Vec<JobStatus> = if selector.status.is_empty() {
        allowed.to_vec()
    } else {
        selector
            .status
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
    selector_filter(&JobSelector {
        status: statuses,
        ..selector.clone()
    })
}

impl Store {
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

    pub(crate) async fn must_get(&self, id: ObjectId) -> Result<Job> {
        self.get_job(id)
            .await?
            .ok_or_else(|| Error::JobNotFound(id.to_hex()))
    }

    pub(crate) async fn get_jobs(&self, query: JobQuery) -> Result<Vec<Job>> {
        let limit = page_limit(query.limit)?;
        let mut find = self
            .coll
            .find(selector_filter(&query.selector)?)
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
        let mut filter = selector_filter(&query.selector)?;
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

    /// How many jobs each (name, status) has, zeros included, so no series goes stale.
    pub(crate) async fn queue_depth(&self) -> Result<Depth> {
        let groups: Vec<Document> = self
            .coll
            .aggregate([
                doc! { "$group": { "_id": { "name": "$name", "status": "$status" }, "count": { "$sum": 1 } } },
            ])
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let mut depth: Depth = groups
            .iter()
            .filter_map(|g| {
                let id = g.get_document("_id").ok()?;
                let count = match g.get("count")? {
                    Bson::Int32(n) => *n as u64,
                    Bson::Int64(n) => *n as u64,
                    Bson::Double(n) => *n as u64,
                    _ => return None,
                };
                Some((
                    id.get_str("name").ok()?.to_owned(),
                    id.get_str("status").ok()?.to_owned(),
                    count,
                ))
            })
            .collect();
        let names: std::collections::BTreeSet<String> =
            depth.iter().map(|(n, _, _)| n.clone()).collect();
        for name in names {
            for status in JobStatus::ALL {
                if !depth
                    .iter()
                    .any(|(n, s, _)| *n == name && s == status.as_str())
                {
                    depth.push((name.clone(), status.as_str().to_owned(), 0));
                }
            }
        }
        depth.sort();
        Ok(depth)
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
