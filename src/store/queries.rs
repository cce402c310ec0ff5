//! Reads for operators: one job, filtered listings (offset or keyset pages), counts
//! per status and per name. Selectors become filters here, field by field.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};

use super::Store;
use crate::error::{Error, Result};
use crate::job::{validate_job_name, Job};
use crate::new_job::validate_group;
use crate::query::{
    CursorQuery, Direction, JobPage, JobQuery, JobSelector, QueueStats, SortField, SortOrder,
};
use crate::status::JobStatus;

/// A `$sum` count as the server returned it (its integer width varies).
pub(super) fn count_of(value: &Bson) -> Option<u64> {
    match value {
        Bson::Int32(n) => Some(*n as u64),
        Bson::Int64(n) => Some(*n as u64),
        Bson::Double(n) => Some(*n as u64),
        _ => None,
    }
}

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

/// A job's place in a listing's order: its sort value (none when the order is the id)
/// and its id, which breaks ties.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Position {
    at: Option<DateTime>,
    id: ObjectId,
}

/// The field an order sorts on before the id, and the letter its cursors start with.
fn sort_key(sort_by: SortField) -> Option<(&'static str, char)> {
    match sort_by {
        SortField::CreatedAt => None,
        SortField::NextRunAt => Some(("nextRunAt", 'n')),
        SortField::UpdatedAt => Some(("updatedAt", 'u')),
    }
}

fn sort_doc(sort_by: SortField, increasing: bool) -> Document {
    let dir = if increasing { 1 } else { -1 };
    match sort_key(sort_by) {
        None => doc! { "_id": dir },
        Some((field, _)) => doc! { field: dir, "_id": dir },
    }
}

fn position_of(sort_by: SortField, job: &Job) -> Position {
    let at = match sort_by {
        SortField::CreatedAt => None,
        SortField::NextRunAt => Some(job.next_run_at),
        SortField::UpdatedAt => Some(job.updated_at),
    };
    Position { at, id: job.id }
}

/// A cursor names a position in one order: the id alone for creation order (as it
/// always did), `<letter><ms>.<id>` for the others.
fn encode_cursor(sort_by: SortField, pos: Position) -> String {
    match (sort_key(sort_by), pos.at) {
        (Some((_, letter)), Some(at)) => {
            format!("{letter}{}.{}", at.timestamp_millis(), pos.id.to_hex())
        }
        _ => pos.id.to_hex(),
    }
}

fn decode_cursor(sort_by: SortField, cursor: &str) -> Result<Position> {
    let bad = || Error::InvalidCursor(cursor.to_owned());
    match sort_key(sort_by) {
        None => Ok(Position {
            at: None,
            id: ObjectId::parse_str(cursor).map_err(|_| bad())?,
        }),
        Some((_, letter)) => {
            let rest = cursor.strip_prefix(letter).ok_or_else(bad)?;
            let (ms, id) = rest.split_once('.').ok_or_else(bad)?;
            Ok(Position {
                at: Some(DateTime::from_millis(ms.parse().map_err(|_| bad())?)),
                id: ObjectId::parse_str(id).map_err(|_| bad())?,
            })
        }
    }
}

/// The jobs after `pos` in the order (before it, when not `increasing`).
fn beyond(sort_by: SortField, pos: Position, increasing: bool) -> Document {
    let op = if increasing { "$gt" } else { "$lt" };
    match (sort_key(sort_by), pos.at) {
        (Some((field, _)), Some(at)) => doc! { "$or": [
            { field: { op: at } },
            { field: at, "_id": { op: pos.id } },
        ] },
        _ => doc! { "_id": { op: pos.id } },
    }
}

static WITHOUT_DATA: std::sync::LazyLock<Document> =
    std::sync::LazyLock::new(|| doc! { "data": 0 });

fn is_empty(selector: &JobSelector) -> bool {
    selector.name.is_none()
        && selector.group.is_none()
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
    if let Some(group) = &selector.group {
        validate_group(group)?;
        filter.insert("group", group);
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
            "give at least one of name, group, status, olderThan, newerThan",
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
            .sort(sort_doc(query.sort_by, query.sort == SortOrder::Ascending))
            .skip(query.skip)
            .limit(limit);
        if query.without_data {
            find = find.projection(WITHOUT_DATA.clone());
        }
        self.collect_jobs(find.await).await
    }

    /// Keyset pagination on the sort value and the id: stable under inserts and
    /// deletes, and as cheap on page 1000 as on page 1.
    pub(crate) async fn get_jobs_page(&self, query: CursorQuery) -> Result<JobPage> {
        let limit = page_limit(query.limit)?;
        let mut filter = selector_filter(&query.selector)?;
        let after = match &query.cursor {
            Some(c) => Some(decode_cursor(query.sort_by, c)?),
            None => None,
        };
        // Walking forward in ascending order means increasing positions; every other
        // combination is derived from that.
        let increasing =
            (query.sort == SortOrder::Ascending) == (query.direction == Direction::Forward);
        if let Some(pos) = after {
            filter = doc! { "$and": [filter, beyond(query.sort_by, pos, increasing)] };
        }
        let mut find = self
            .coll
            .find(filter)
            .sort(sort_doc(query.sort_by, increasing))
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
        let sort_by = query.sort_by;
        let outward = after.map(|pos| Position {
            id: step(pos.id, increasing),
            ..pos
        });
        let edge = |j: Option<&Job>| {
            j.map(|j| position_of(sort_by, j))
                .or(outward)
                .map(|pos| encode_cursor(sort_by, pos))
        };
        Ok(JobPage {
            next_cursor: edge(jobs.last()).filter(|_| has_next),
            prev_cursor: edge(jobs.first()).filter(|_| has_prev),
            has_next,
            has_prev,
            jobs,
        })
    }

    pub(crate) async fn queue_stats(&self, name: Option<&str>) -> Result<QueueStats> {
        self.queue_stats_of(name, None).await
    }

    /// [`queue_stats`](Self::queue_stats) of one group of `name`.
    pub(crate) async fn queue_stats_of(
        &self,
        name: Option<&str>,
        group: Option<&str>,
    ) -> Result<QueueStats> {
        let mut matcher = Document::new();
        if let Some(name) = name {
            validate_job_name(name)?;
            matcher.insert("name", name);
        }
        if let Some(group) = group {
            matcher.insert("group", group);
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
            let count = group.get("count").and_then(count_of).unwrap_or(0);
            let status = group.get_str("_id").unwrap_or_default();
            stats.add(status, count);
            if status == JobStatus::Completed.as_str() {
                stats.avg_processing_ms = match group.get("avg") {
                    Some(Bson::Double(v)) => Some(*v),
                    Some(Bson::Int32(v)) => Some(f64::from(*v)),
                    Some(Bson::Int64(v)) => Some(*v as f64),
                    _ => None,
                };
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
                let count = count_of(g.get("count")?)?;
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

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn cursors_name_a_place_in_their_own_order() {
        let id = ObjectId::new();
        let at = DateTime::from_millis(1_700_000_000_123);
        let by_id = Position { at: None, id };
        assert_eq!(encode_cursor(SortField::CreatedAt, by_id), id.to_hex());
        assert_eq!(
            decode_cursor(SortField::CreatedAt, &id.to_hex()).unwrap(),
            by_id
        );
        let due = Position { at: Some(at), id };
        let cursor = encode_cursor(SortField::NextRunAt, due);
        assert_eq!(decode_cursor(SortField::NextRunAt, &cursor).unwrap(), due);
        // A cursor of one order is refused by another.
        assert!(decode_cursor(SortField::UpdatedAt, &cursor).is_err());
        assert!(decode_cursor(SortField::NextRunAt, &id.to_hex()).is_err());
        assert!(decode_cursor(SortField::NextRunAt, "nx.y").is_err());
    }
}
