//! Where a job is in its life: its statuses, and which of them hold a uniqueKey.

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Enqueued with `depends_on`: waits until every job it depends on has completed.
    Waiting,
    /// Waiting for `nextRunAt` and a free worker.
    Pending,
    /// Claimed by a worker that holds a lease on it.
    Processing,
    /// The handler succeeded.
    Completed,
    /// The handler failed and no retries are left (the dead-letter set).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in a fixed order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Waiting,
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The name stored in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Pending => "pending",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Active jobs hold their `uniqueKey`: at most one per `(name, uniqueKey)`.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Processing)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
