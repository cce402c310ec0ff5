//! Concurrency slots: a run holds one of its worker's and, with
//! `instance_concurrency`, one of the instance's. Dropping them frees both.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The permits one execution holds.
pub(crate) struct Slots {
    _worker: OwnedSemaphorePermit,
    _instance: Option<OwnedSemaphorePermit>,
}

/// Where a worker takes its slots from.
pub(crate) struct SlotPool {
    worker: Arc<Semaphore>,
    instance: Option<Arc<Semaphore>>,
}

impl SlotPool {
    pub(crate) fn new(concurrency: usize, instance: Option<Arc<Semaphore>>) -> Self {
        SlotPool {
            worker: Arc::new(Semaphore::new(concurrency)),
            instance,
        }
    }

    /// Adds up to `want` more slots that are free right now, without waiting.
    pub(crate) fn take_free(&self, want: usize, slots: &mut Vec<Slots>) {
        for _ in 0..want {
            let Ok(worker) = self.worker.clone().try_acquire_owned() else {
                return;
            };
            let instance = match &self.instance {
                None => None,
                Some(all) => match all.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => return,
                },
            };
            slots.push(Slots {
                _worker: worker,
                _instance: instance,
            });
        }
    }

    /// One free slot, without waiting.
    pub(crate) fn try_take(&self) -> Option<Slots> {
        let mut slots = Vec::with_capacity(1);
        self.take_free(1, &mut slots);
        slots.pop()
    }

    /// Waits for a slot. `None` when `stop` or `retired` was cancelled first.
    pub(crate) async fn wait(
        &self,
        stop: &CancellationToken,
        retired: &CancellationToken,
    ) -> Option<Slots> {
        let worker = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            _ = retired.cancelled() => return None,
            permit = self.worker.clone().acquire_owned() => permit.ok()?,
        };
        let instance = match &self.instance {
            None => None,
            Some(slots) => tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                _ = retired.cancelled() => return None,
                permit = slots.clone().acquire_owned() => Some(permit.ok()?),
            },
        };
        Some(Slots {
            _worker: worker,
            _instance: instance,
        })
    }
}
