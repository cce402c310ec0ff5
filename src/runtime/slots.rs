//! Concurrency slots: a run holds one of its worker's and, with
//! `instance_concurrency`, one of the instance's. Dropping them frees both.
//!
//! When its handler returns, a run trades its slots for a place in the worker's
//! write queue (as many places as slots), so the worker claims the next job while the
//! outcome is on its way to the server (River's completer does the same): claims and
//! run ends overlap instead of taking turns. With every place taken, the run keeps its
//! slots until its outcome is written: at most twice the concurrency is ever held.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The permits one execution holds.
pub(crate) struct Slots {
    _worker: OwnedSemaphorePermit,
    _instance: Option<OwnedSemaphorePermit>,
    /// The worker's write queue, for [`Slots::trade_for_write`].
    writes: Arc<Semaphore>,
}

/// What a run whose handler returned holds while its outcome is written: a place in
/// the write queue (its slots are free again), or, with the queue full, its slots.
pub(crate) enum Writing {
    Queued { _place: OwnedSemaphorePermit },
    Slots { _slots: Slots },
}

impl Slots {
    /// Frees the slots for the next run if a place in the write queue is free.
    pub(crate) fn trade_for_write(self) -> Writing {
        match self.writes.clone().try_acquire_owned() {
            Ok(place) => Writing::Queued { _place: place },
            Err(_) => Writing::Slots { _slots: self },
        }
    }
}

/// Where a worker takes its slots from.
pub(crate) struct SlotPool {
    worker: Arc<Semaphore>,
    instance: Option<Arc<Semaphore>>,
    writes: Arc<Semaphore>,
}

impl SlotPool {
    pub(crate) fn new(concurrency: usize, instance: Option<Arc<Semaphore>>) -> Self {
        SlotPool {
            worker: Arc::new(Semaphore::new(concurrency)),
            instance,
            writes: Arc::new(Semaphore::new(concurrency)),
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
                writes: self.writes.clone(),
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
            writes: self.writes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_frees_its_slot_for_the_write_while_the_write_queue_has_room() {
        let pool = SlotPool::new(1, None);
        let first = pool.try_take().expect("a free slot");
        assert!(pool.try_take().is_none(), "concurrency 1");
        // Handler returned: the slot is free for the next run while the outcome is written.
        let writing = first.trade_for_write();
        assert!(matches!(writing, Writing::Queued { .. }));
        let second = pool.try_take().expect("the slot is free again");
        // The write queue is full (one place for concurrency 1): the second run keeps
        // its slot until written, so no third run starts.
        let still = second.trade_for_write();
        assert!(matches!(still, Writing::Slots { .. }));
        assert!(pool.try_take().is_none());
        drop(writing);
        drop(still);
        assert!(pool.try_take().is_some());
    }
}
