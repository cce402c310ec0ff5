//! Wake-ups for idle workers: each worker has a doorbell, rung when a job of its name
//! may be claimable now (a local enqueue, a change-stream event, a resume) or at a known
//! time (a retry, a delayed enqueue, a schedule's next run). Whoever learns of such a
//! job rings by name; nobody but the worker itself touches the worker.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mongodb::bson::DateTime;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::Clock;

/// Due times remembered per worker; beyond that the latest are left to polling.
const MAX_DUE_TIMES: usize = 256;

/// Wake this long after a job's due time, so clock rounding never makes the claim early.
const DUE_SLACK: Duration = Duration::from_millis(2);

/// One worker's wake-up state.
#[derive(Default)]
pub(crate) struct Doorbell {
    /// A ring while the loop is busy is kept (one permit) for its next wait.
    wake: Notify,
    /// Times jobs this instance knows of fall due, soonest first, so the idle loop
    /// wakes on time, not at a poll.
    due: Mutex<BTreeSet<Instant>>,
    /// True while the loop sleeps after finding nothing due: a hand-off may take it
    /// (Worker::take_hand_off_slot).
    idle: AtomicBool,
}

impl Doorbell {
    pub(crate) fn ring(&self) {
        // Woken to look again: until it has, it may not take hand-offs.
        self.idle.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Makes the idle loop wake at `at` as well as at its polls.
    pub(crate) fn ring_at(&self, at: Instant) {
        let mut due = self.due.lock().expect("due lock");
        due.insert(at);
        if due.len() > MAX_DUE_TIMES {
            due.pop_last();
        }
        let soonest = due.first() == Some(&at);
        drop(due);
        if soonest {
            // The loop may be asleep until a later time: let it pick the sooner one.
            self.ring();
        }
    }

    /// True, once, while the loop sleeps after finding nothing due.
    pub(crate) fn take_idle(&self) -> bool {
        self.idle.swap(false, Ordering::SeqCst)
    }

    /// Sleeps until a ring, a known due time or `poll` from now; false when `stop` or
    /// `retired` was cancelled. `looked` is when the claim that found nothing started:
    /// due times before it were covered by it and are dropped. `nothing_due` says that
    /// claim found nothing, which makes this worker a target for hand-offs meanwhile.
    pub(crate) async fn wait(
        &self,
        poll: Duration,
        looked: Instant,
        nothing_due: bool,
        stop: &CancellationToken,
        retired: &CancellationToken,
    ) -> bool {
        let mut until = Instant::now() + poll;
        {
            let mut due = self.due.lock().expect("due lock");
            while due.first().is_some_and(|&at| at + DUE_SLACK <= looked) {
                due.pop_first();
            }
            if let Some(&at) = due.first() {
                // A few ms late rather than early: the claim compares with `nextRunAt`.
                until = until.min(at + DUE_SLACK);
            }
        }
        self.idle.store(nothing_due, Ordering::SeqCst);
        let go_on = tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            _ = retired.cancelled() => false,
            _ = self.wake.notified() => true,
            _ = tokio::time::sleep_until(until) => true,
        };
        self.idle.store(false, Ordering::SeqCst);
        go_on
    }
}

/// The doorbells of this instance's workers, by job name.
pub(crate) struct Doorbells {
    by_name: RwLock<HashMap<String, Arc<Doorbell>>>,
    /// Due times are the server's: how far away they are is measured on its clock.
    clock: Arc<Clock>,
}

impl Doorbells {
    pub(crate) fn new(clock: Arc<Clock>) -> Self {
        Doorbells {
            by_name: RwLock::default(),
            clock,
        }
    }

    /// Hangs `doorbell` up for `name`, replacing the one before.
    pub(crate) fn insert(&self, name: &str, doorbell: Arc<Doorbell>) {
        self.by_name
            .write()
            .expect("doorbells lock")
            .insert(name.to_owned(), doorbell);
    }

    /// Wakes the local worker for `name`, if there is one.
    pub(crate) fn ring(&self, name: &str) {
        if let Some(bell) = self.by_name.read().expect("doorbells lock").get(name) {
            bell.ring();
        }
    }

    /// Wakes the local worker for `name` when a job falls due at `at`.
    pub(crate) fn ring_at(&self, name: &str, at: DateTime) {
        if let Some(bell) = self.by_name.read().expect("doorbells lock").get(name) {
            ring_bell_at(bell, at, self.clock.now());
        }
    }

    /// Wakes every local worker when a job of a name not known here falls due at `at`.
    pub(crate) fn ring_all_at(&self, at: DateTime) {
        let now = self.clock.now();
        for bell in self.by_name.read().expect("doorbells lock").values() {
            ring_bell_at(bell, at, now);
        }
    }

    pub(crate) fn ring_all(&self) {
        for bell in self.by_name.read().expect("doorbells lock").values() {
            bell.ring();
        }
    }
}

/// Due times further ahead are left to polling: a worker polls long before, and a time
/// such as a parked retry's (the year 9999) would not fit in an `Instant`.
const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

fn ring_bell_at(bell: &Doorbell, at: DateTime, now: DateTime) {
    let wait = at.timestamp_millis() - now.timestamp_millis();
    if wait <= 0 {
        bell.ring();
    } else if let Some(when) = Duration::from_millis(wait as u64)
        .le(&MAX_AHEAD)
        .then(|| Instant::now().checked_add(Duration::from_millis(wait as u64)))
        .flatten()
    {
        bell.ring_at(when);
    }
}
