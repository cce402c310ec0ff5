//! Retention: a started instance deletes jobs that ended longer ago than
//! `job_retention` allows, every `retention_interval`. A periodic sweep rather than a
//! TTL index: it needs no server-side TTL monitor (not every MongoDB-compatible server
//! runs one), keeps per-status durations, and never touches a recurring job, which is
//! never in a final status while its schedule lives. Only final statuses are deleted,
//! and those hold no uniqueKey lock (store/transitions.rs).
//!
//! The same sweep deletes the documents of groups left idle (store/groups.rs) and
//! rate-limit windows that ended (store/rate_limits.rs): without it a queue of many
//! short-lived tenants would keep one of each for every tenant ever seen.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::options::JobRetention;
use crate::store::Store;

/// An idle group's document is kept this long after its last claim, so groups that come
/// and go keep their place in the turns. Ended rate-limit windows are kept as long.
const IDLE_GROUPS_KEPT_FOR: Duration = Duration::from_secs(3600);

pub(crate) struct Retention {
    store: Arc<Store>,
    events: Arc<EventBus>,
    retention: JobRetention,
    interval: Duration,
}

impl Retention {
    pub(crate) fn new(
        store: Arc<Store>,
        events: Arc<EventBus>,
        retention: JobRetention,
        interval: Duration,
    ) -> Self {
        Retention {
            store,
            events,
            retention,
            interval,
        }
    }

    /// Whether there is anything to sweep.
    pub(crate) fn is_set(&self) -> bool {
        self.retention.is_set()
    }

    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.sweep().await {
                self.events.emit(Event::JobError {
                    error: format!("retention sweep failed: {err}"),
                    code: err.code(),
                    job: None,
                });
            }
        }
    }

    /// Deletes the jobs past their retention now, then idle groups' documents. Returns
    /// how many jobs.
    pub(crate) async fn sweep(&self) -> Result<u64> {
        let deleted = self.store.delete_expired(&self.retention).await?;
        if deleted > 0 {
            tracing::info!(deleted, "retention sweep");
            self.events.emit(Event::JobsChanged {
                kind: "jobs:expired",
                count: deleted,
            });
        }
        // Housekeeping: a failure here is logged, not the sweep's (its jobs are gone).
        let groups = self.store.prune_idle_groups(IDLE_GROUPS_KEPT_FOR).await;
        let windows = self.store.prune_ended_windows(IDLE_GROUPS_KEPT_FOR).await;
        match (groups, windows) {
            (Ok(groups), Ok(windows)) => {
                if groups + windows > 0 {
                    tracing::info!(
                        groups,
                        windows,
                        "idle groups and ended rate-limit windows pruned"
                    );
                }
            }
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(%err, "could not prune idle groups or ended rate-limit windows; the next sweep will");
            }
        }
        Ok(deleted)
    }
}
