//! Leases: every `heartbeat_interval` this instance renews the leases of the jobs it
//! runs, and puts back to `pending` any job whose lease expired (its worker died or
//! lost the server). A crashed process's jobs run again within about one lease.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::client::Inner;
use crate::completer::{back_to_pending, fenced_many};
use crate::error::Result;
use crate::events::Event;
use crate::job::JobStatus;

pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(inner.opts.heartbeat_interval);
    let sweeping = Arc::new(AtomicBool::new(false));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = inner.renew_leases().await {
            inner.emit(Event::JobError {
                error: format!("heartbeat failed: {err}"),
                code: err.code(),
                job: None,
            });
        }
        if let Err(err) = inner.refresh_pauses().await {
            tracing::warn!(%err, "could not re-read pauses; keeping the last known ones");
        }
        match inner.recover_expired().await {
            Ok(0) => {}
            Ok(count) => {
                tracing::warn!(count, "recovered jobs whose lease expired");
                inner.emit(Event::StaleRecovered { count });
                inner.wake_all();
            }
            Err(err) => inner.emit(Event::JobError {
                error: format!("lease recovery failed: {err}"),
                code: err.code(),
                job: None,
            }),
        }
        // Its own task: a slow pass over many waiting jobs must not delay lease renewals.
        if !sweeping.swap(true, Ordering::SeqCst) {
            let (inner, sweeping) = (inner.clone(), sweeping.clone());
            tokio::spawn(async move {
                if let Err(err) = inner.settle_stalled().await {
                    tracing::warn!(%err, "could not re-check waiting jobs; the next heartbeat tries again");
                }
                sweeping.store(false, Ordering::SeqCst);
            });
        }
    }
}

impl Inner {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn renew_leases(&self) -> Result<()> {
        let running = self.running.snapshot();
        if running.is_empty() {
            return Ok(());
        }
        let until = self.lease_until(DateTime::now());
        let res = self
            .coll
            .update_many(
                fenced_many(&running),
                doc! { "$set": { "leaseExpiresAt": until } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if (res.matched_count as usize) < running.len() {
            self.abort_cancelled(&running).await?;
        }
        Ok(())
    }

    /// Some executions were not renewed: abort those whose job was cancelled while it
    /// ran (from another process; a local cancel aborts at once). The others lost
    /// their lease to a takeover; their writes are fenced off.
    async fn abort_cancelled(&self, running: &[(ObjectId, ObjectId)]) -> Result<()> {
        let ids: Vec<ObjectId> = running.iter().map(|(id, _)| *id).collect();
        let mut cursor = self
            .coll
            .find(doc! { "_id": { "$in": ids }, "status": JobStatus::Cancelled.as_str() })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        let mut cancelled = HashSet::new();
        while let Some(found) = cursor.try_next().await.map_err(|e| self.db_err(e))? {
            if let Ok(id) = found.get_object_id("_id") {
                self.running.cancel(id);
                cancelled.insert(id);
            }
        }
        let lost = running
            .iter()
            .filter(|(id, _)| !cancelled.contains(id))
            .count();
        if lost > 0 {
            tracing::warn!(
                running = running.len(),
                lost,
                "some running jobs lost their lease"
            );
        }
        Ok(())
    }

    /// Puts every `processing` job whose lease has expired back to `pending`.
    pub(crate) async fn recover_expired(&self) -> Result<u64> {
        let now = DateTime::now();
        let res = self
            .coll
            .update_many(
                doc! { "status": JobStatus::Processing.as_str(), "leaseExpiresAt": { "$lt": now } },
                back_to_pending(now),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.modified_count)
    }
}
