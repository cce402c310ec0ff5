//! Recovery of jobs whose lease expired: their worker died, hung, or lost the server
//! for longer than a lease. Each goes back to `pending` with one more stall counted;
//! past `max_stalls`, a stall counts as a failed attempt (completer.rs), so a job that
//! crashes its process on every run (a poison job) ends `failed` instead of looping.

use std::sync::Arc;

use super::completer::Completer;
use super::doorbell::Doorbells;
use super::presence::Presence;
use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::store::Store;

/// Jobs recovered per read; more are read until none is left.
const BATCH: i64 = 500;

pub(crate) struct Recovery {
    pub(crate) store: Arc<Store>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) completer: Arc<Completer>,
    pub(crate) presence: Arc<Presence>,
    pub(crate) doorbells: Arc<Doorbells>,
    pub(crate) max_stalls: u32,
    /// For names this instance has no worker for.
    pub(crate) default_max_retries: u32,
}

impl Recovery {
    /// Recovers every job whose lease has expired. Returns how many.
    pub(crate) async fn recover(&self) -> Result<u64> {
        let mut recovered = 0;
        loop {
            let expired = self.store.expired_leases(BATCH).await?;
            let mut progress = false;
            for job in &expired {
                let stalls = job.stall_count + 1;
                let done = if stalls <= self.max_stalls {
                    let requeued = self.store.requeue_stalled(job).await?;
                    if requeued {
                        let mut back = job.clone();
                        back.stall_count = stalls;
                        self.events.emit(Event::JobStalled {
                            job: Arc::new(back),
                            stall_count: stalls,
                            counted_as_failure: false,
                        });
                    }
                    requeued
                } else {
                    let max_retries = self
                        .presence
                        .max_retries(&job.name)
                        .unwrap_or(self.default_max_retries);
                    self.completer.fail_stalled(job, max_retries).await?
                };
                if done {
                    recovered += 1;
                    progress = true;
                }
            }
            if (expired.len() as i64) < BATCH || !progress {
                break;
            }
        }
        if recovered > 0 {
            tracing::warn!(count = recovered, "recovered jobs whose lease expired");
            self.events.emit(Event::StaleRecovered { count: recovered });
            self.doorbells.ring_all();
        }
        Ok(recovered)
    }
}
