//! Flows at run time: when a job ends, the jobs waiting on it move on. The storage
//! layer settles one waiting job at a time (store/flows.rs); this service announces
//! what moved, wakes the workers of jobs that became pending, and carries a failure
//! down the flow.

use std::sync::Arc;

use mongodb::bson::oid::ObjectId;

use super::doorbell::Doorbells;
use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::store::{Settled, Store};

/// How deep a failure travels down a flow in one go (a guard against cycles, which
/// enqueue cannot create: a job only depends on jobs that exist before it).
const MAX_FLOW_DEPTH: usize = 1000;

pub(crate) struct Dependents {
    store: Arc<Store>,
    events: Arc<EventBus>,
    doorbells: Arc<Doorbells>,
}

impl Dependents {
    pub(crate) fn new(store: Arc<Store>, events: Arc<EventBus>, doorbells: Arc<Doorbells>) -> Self {
        Dependents {
            store,
            events,
            doorbells,
        }
    }

    /// Moves the waiting job `id` on if its dependencies allow: to `pending` when all
    /// completed, to `failed` when one cannot complete any more, and then fails the
    /// jobs waiting on it too.
    pub(crate) async fn settle(&self, id: ObjectId, deps: &[ObjectId]) -> Result<Settled> {
        let settled = self.settle_one(id, deps).await?;
        if let Settled::Failed(_) = settled {
            self.fail_dependents(vec![id]).await;
        }
        Ok(settled)
    }

    /// `settle` without going down the flow.
    async fn settle_one(&self, id: ObjectId, deps: &[ObjectId]) -> Result<Settled> {
        let settled = self.store.settle_one(id, deps).await?;
        match &settled {
            Settled::Pending(job) => {
                tracing::debug!(job.id = %job.id, "dependencies completed; pending");
                self.doorbells.ring_at(&job.name, job.next_run_at);
            }
            Settled::Failed(job) => {
                let reason = job.fail_reason.clone().unwrap_or_default();
                tracing::info!(job.id = %job.id, %reason, "failed: a dependency cannot complete");
                self.events.emit(Event::JobFailed {
                    job: Arc::new(job.clone()),
                    error: reason,
                    will_retry: false,
                });
            }
            Settled::Blocked | Settled::Gone => {}
        }
        Ok(settled)
    }

    /// After job `id` completed: settles the jobs waiting on it.
    pub(crate) async fn release_dependents(&self, id: ObjectId) {
        let result = async {
            for (waiting, deps) in self.store.waiting_on(&[id]).await? {
                self.settle(waiting, &deps).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(err) = result {
            self.report(err);
        }
    }

    /// After jobs `ids` ended without completing (failed, cancelled, deleted): fails
    /// the jobs waiting on them, and the jobs waiting on those, down the flow.
    pub(crate) async fn fail_dependents(&self, ids: Vec<ObjectId>) {
        let result = async {
            let mut frontier = ids;
            for _ in 0..MAX_FLOW_DEPTH {
                if frontier.is_empty() {
                    break;
                }
                let mut next = Vec::new();
                for (waiting, deps) in self.store.waiting_on(&frontier).await? {
                    // Settling names the dependency that broke, and finds it whatever
                    // ended it (the caller's job, or a cancel racing it).
                    if let Settled::Failed(_) = self.settle_one(waiting, &deps).await? {
                        next.push(waiting);
                    }
                }
                frontier = next;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(err) = result {
            self.report(err);
        }
    }

    /// Settles waiting jobs nobody looked at for a lease duration (runs with the
    /// heartbeat; each pass takes the longest-untouched few).
    pub(crate) async fn settle_stalled(&self) -> Result<usize> {
        let stalled = self.store.stalled_waiting().await?;
        for (id, deps) in &stalled {
            if let Settled::Blocked = self.settle(*id, deps).await? {
                // Still waiting (rightly): go to the back of the line.
                self.store.touch_waiting(*id).await?;
            }
        }
        Ok(stalled.len())
    }

    fn report(&self, err: Error) {
        // The jobs stay `waiting`; the next dependency to end settles them again.
        tracing::warn!(%err, "could not settle jobs waiting on a dependency");
        self.events.emit(Event::JobError {
            error: format!("could not settle jobs waiting on a dependency: {err}"),
            code: err.code(),
            job: None,
        });
    }
}
