//! Retention: a started instance deletes jobs that ended longer ago than
//! `job_retention` allows, every `retention_interval`. A periodic sweep rather than a
//! TTL index: it needs no server-side TTL monitor (not every MongoDB-compatible server
//! runs one), keeps per-status durations, and never touches a recurring job, which is
//! never in a final status while its schedule lives. Only final statuses are deleted,
//! and those hold no uniqueKey lock.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, DateTime};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::client::Inner;
use crate::error::Result;
use crate::events::Event;
use crate::job::JobStatus;

pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(inner.opts.retention_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = inner.sweep_expired().await {
            inner.emit(Event::JobError {
                error: format!("retention sweep failed: {err}"),
                code: err.code(),
                job: None,
            });
        }
    }
}

impl Inner {
    /// Deletes the jobs past their retention now. Returns how many.
    pub(crate) async fn sweep_expired(&self) -> Result<u64> {
        let retention = self.opts.job_retention;
        let now = DateTime::now().timestamp_millis();
        let mut deleted = 0;
        for (status, keep) in [
            (JobStatus::Completed, retention.completed),
            (JobStatus::Failed, retention.failed),
            (JobStatus::Cancelled, retention.cancelled),
        ] {
            let Some(keep) = keep else { continue };
            let cutoff = DateTime::from_millis(now - millis(keep));
            // Leftover locks of these jobs go first (normally there are none): a lock
            // must never outlive its job.
            let keyed = doc! { "status": status.as_str(), "updatedAt": { "$lt": cutoff }, "uniqueKey": { "$exists": true } };
            let mut after = None;
            loop {
                let jobs = self.chunk(&keyed, after).await?;
                let Some(last) = jobs.last() else { break };
                after = Some(last.id);
                let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
                self.drop_locks_of(&ids).await?;
            }
            let mut expired = doc! { "status": status.as_str(), "updatedAt": { "$lt": cutoff } };
            if status == JobStatus::Completed {
                // A completed job that a waiting job still lists stays: deleted, it
                // would read as a dependency that can never complete (flows.rs).
                let needed = self.dependencies_of_waiting().await?;
                if !needed.is_empty() {
                    expired.insert("_id", doc! { "$nin": needed });
                }
            }
            let res = self
                .coll
                .delete_many(expired)
                .await
                .map_err(|e| self.db_err(e))?;
            deleted += res.deleted_count;
        }
        if deleted > 0 {
            tracing::info!(deleted, "retention sweep");
            self.emit(Event::JobsChanged {
                kind: "jobs:expired",
                count: deleted,
            });
        }
        Ok(deleted)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}
