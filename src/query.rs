//! What operators ask the queue for: which jobs (a selector), how to page through them,
//! and the counts they get back. Plain values; the storage layer turns them into
//! queries (store/queries.rs), never passing a caller's value on as an operator.

use mongodb::bson::DateTime;

use crate::job::Job;
use crate::status::JobStatus;

/// Which jobs a listing or a bulk operation is about. Empty fields match everything;
/// bulk operations refuse a selector that is empty as a whole.
#[derive(Debug, Clone, Default)]
pub struct JobSelector {
    /// Only jobs of this name.
    pub name: Option<String>,
    /// Only jobs of this group (of any name, unless `name` is given too): one tenant's
    /// jobs, to list or act on.
    pub group: Option<String>,
    /// Only jobs in one of these statuses (empty: any).
    pub status: Vec<JobStatus>,
    /// Only jobs created before this time.
    pub older_than: Option<DateTime>,
    /// Only jobs created after this time.
    pub newer_than: Option<DateTime>,
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
    /// What the listing is ordered by. Default: creation.
    pub sort_by: SortField,
    /// Which way. Default: ascending (oldest, soonest first).
    pub sort: SortOrder,
}

impl Default for JobQuery {
    fn default() -> Self {
        JobQuery {
            selector: JobSelector::default(),
            limit: 100,
            skip: 0,
            without_data: false,
            sort_by: SortField::CreatedAt,
            sort: SortOrder::Ascending,
        }
    }
}

/// What a listing is ordered by; ties are broken by the job id, so every order is total
/// and pages never repeat or skip a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortField {
    /// When the job was enqueued (its id, which holds the time: backed by the `_id`
    /// index whatever the filter).
    #[default]
    CreatedAt,
    /// When the job is (or was) due.
    NextRunAt,
    /// When the job last changed (backed by the status index when the filter names
    /// one status).
    UpdatedAt,
}

/// Which way a listing is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest (or soonest) first.
    #[default]
    Ascending,
    /// Newest (or latest) first.
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
    /// What the listing is ordered by. A cursor belongs to the order it came from.
    pub sort_by: SortField,
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
            sort_by: SortField::CreatedAt,
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
    /// `pending` jobs that are due but whose name no live instance handles: nothing
    /// will run them until a worker for their name starts.
    pub orphaned: u64,
}

impl QueueStats {
    /// Counts `count` more jobs of the stored status `status`, in its field and the total.
    pub(crate) fn add(&mut self, status: &str, count: u64) {
        match status {
            "waiting" => self.waiting += count,
            "pending" => self.pending += count,
            "processing" => self.processing += count,
            "completed" => self.completed += count,
            "failed" => self.failed += count,
            "cancelled" => self.cancelled += count,
            _ => {}
        }
        self.total += count;
    }
}

/// One job name as an operator's overview shows it: its jobs per status, and whether
/// it is paused (by name or with the whole queue).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameSummary {
    /// The job name.
    pub name: String,
    /// Jobs per status (`avg_processing_ms` and `orphaned` are not computed here).
    pub counts: QueueStats,
    /// Claims of this name are paused.
    pub paused: bool,
}

/// A started instance, as it last reported itself (every heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its `claimedBy` value.
    pub id: String,
    /// The job names it has workers for.
    pub names: Vec<String>,
    /// When it started.
    pub started_at: DateTime,
    /// Its last heartbeat; instances silent for a lease are not listed.
    pub heartbeat_at: DateTime,
    /// How its idle workers learn of new jobs (`change-stream`, `polling`).
    pub notify_mode: String,
}
