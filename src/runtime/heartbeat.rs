//! The heartbeat: every `heartbeat_interval` this instance renews the leases of the jobs
//! it runs, aborts runs whose job was cancelled elsewhere, re-reads the pauses, says
//! it is alive (and looks for orphaned jobs, presence.rs), puts
//! back to `pending` any job whose lease expired (its worker died or lost the server),
//! and re-checks waiting jobs nobody settled. A crashed process's jobs run again
//! within about one lease.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::dependents::Dependents;
use super::outage::Outage;
use super::pauses::Pauses;
use super::presence::Presence;
use super::recovery::Recovery;
use super::running::{watchdog_period, Running};
use crate::error::Result;
use crate::store::Store;

pub(crate) struct Heartbeat {
    pub(crate) store: Arc<Store>,
    pub(crate) running: Arc<Running>,
    pub(crate) pauses: Arc<Pauses>,
    pub(crate) dependents: Arc<Dependents>,
    pub(crate) presence: Arc<Presence>,
    pub(crate) recovery: Arc<Recovery>,
    pub(crate) outage: Arc<Outage>,
    pub(crate) interval: Duration,
}

impl Heartbeat {
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        // Deadlines are watched on their own: a renewal stuck on an unreachable server
        // must not keep a run going past its lease.
        let watchdog = self.clone().watch_lease_deadlines(stop.clone());
        tokio::join!(self.beat(stop), watchdog);
    }

    async fn watch_lease_deadlines(self: Arc<Self>, stop: CancellationToken) {
        let mut tick =
            tokio::time::interval(watchdog_period(self.store.lease_duration(), self.interval));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let aborted = self.running.abort_expired_leases();
            if aborted > 0 {
                tracing::warn!(aborted, "leases ran out without a renewal (the server is unreachable): runs aborted with LEASE_LOST");
            }
        }
    }

    async fn beat(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        let sweeping = Arc::new(AtomicBool::new(false));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.store.sync_clock().await {
                tracing::debug!(%err, "could not read the server's clock; keeping the last offset");
            }
            match self.renew_leases().await {
                // Only an answer from the server ends an outage.
                Ok(asked_server) => {
                    if asked_server {
                        self.outage.reached();
                    }
                }
                Err(err) => self.outage.failed("heartbeat", &err),
            }
            if let Err(err) = self.pauses.refresh().await {
                tracing::warn!(%err, "could not re-read pauses; keeping the last known ones");
            }
            if let Err(err) = self.presence.publish().await {
                tracing::warn!(%err, "could not publish this instance's presence");
            }
            if let Err(err) = self.presence.check_orphans().await {
                tracing::warn!(%err, "could not look for orphaned jobs");
            }
            match self.recovery.recover().await {
                Ok(_) => self.outage.reached(),
                Err(err) => self.outage.failed("lease recovery", &err),
            }
            // After recovery gave back the slots of expired runs: what is left over is
            // a crash between a run's end and its slot's return.
            if let Err(err) = self.store.recount_groups().await {
                tracing::warn!(%err, "could not recount group slots; the next heartbeat tries again");
            }
            // Its own task: a slow pass over many waiting jobs must not delay renewals.
            if !sweeping.swap(true, Ordering::SeqCst) {
                let (dependents, sweeping) = (self.dependents.clone(), sweeping.clone());
                tokio::spawn(async move {
                    if let Err(err) = dependents.settle_stalled().await {
                        tracing::warn!(%err, "could not re-check waiting jobs; the next heartbeat tries again");
                    }
                    sweeping.store(false, Ordering::SeqCst);
                });
            }
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    /// Renews the leases of what runs here. False when nothing runs (the server was
    /// not asked).
    async fn renew_leases(&self) -> Result<bool> {
        let running = self.running.snapshot();
        if running.is_empty() {
            return Ok(false);
        }
        let sent = tokio::time::Instant::now();
        let renewed = self.store.renew_leases(&running).await?;
        if (renewed as usize) < running.len() {
            self.abort_unrenewed(&running, sent).await?;
        } else {
            self.running.renewed(&running, sent);
        }
        Ok(true)
    }

    /// Some executions were not renewed: abort those whose job was cancelled while it
    /// ran (from another process; a local cancel aborts at once) as cancelled, and the
    /// others as having lost their lease: their job was recovered (perhaps claimed by
    /// another instance) and whatever they return is fenced off, so they should stop.
    async fn abort_unrenewed(
        &self,
        running: &[(ObjectId, ObjectId)],
        sent: tokio::time::Instant,
    ) -> Result<()> {
        let ids: Vec<_> = running.iter().map(|(id, _)| *id).collect();
        let cancelled: HashSet<_> = self
            .store
            .cancelled_among(&ids)
            .await?
            .into_iter()
            .collect();
        let held: Vec<_> = self.store.still_held(running).await?;
        // Those still held were renewed by that write.
        self.running.renewed(&held, sent);
        let held: HashSet<_> = held.into_iter().collect();
        let mut lost = 0;
        for execution in running {
            if cancelled.contains(&execution.0) {
                self.running.cancel(execution.0);
            } else if !held.contains(execution) {
                self.running.lose_lease(execution);
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::warn!(
                running = running.len(),
                lost,
                "some running jobs lost their lease; their runs are aborted"
            );
        }
        Ok(())
    }
}
