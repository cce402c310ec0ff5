//! Wake-ups for idle workers: each worker has a doorbell, rung when a job of its name
//! may be claimable now (a local enqueue, a change-stream event, a resume) or at a known
//! time (a retry, a delayed enqueue, a schedule's next run). Whoever learns of such a
//! job rings by name; nobody but the worker itself touches the worker.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mongodb::bson::DateTime;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::Clock;

/// Due times remembered per worker; beyond that the latest are left to polling.
const MAX_DUE_TIMES: usize = 256;

/// Wake this long after a job's due time, so clock rounding rarely makes the claim early
/// (an early claim is not lost: its due time stays until a claim covers it).
const DUE_SLACK: Duration = Duration::from_millis(2);

/// One worker's wake-up state.
#[derive(Default)]
pub(crate) struct Doorbell {
    /// A ring while the loop is busy is kept (one permit) for its next wait.
    wake: Notify,
    /// Times jobs this instance knows of fall due, soonest first, so the idle loop
    /// wakes on time, not at a poll. Server time, like `nextRunAt` and the claim's
    /// `now`: how far away each is gets measured when the loop goes to sleep, with the
    /// clock offset of that moment, so a heartbeat that re-measures the offset cannot
    /// make a wake-up early for good.
    due: Mutex<BTreeSet<DateTime>>,
    /// True while the loop sleeps after finding nothing due: a hand-off may take it
    /// (Worker::take_hand_off_slot).
    idle: AtomicBool,
    /// Counts rings that may be for a job without a group: a worker claiming across
    /// groups looks at its ungrouped jobs again when this moved (worker.rs).
    ungrouped_rings: AtomicU64,
}

impl Doorbell {
    pub(crate) fn ring(&self) {
        self.ungrouped_rings.fetch_add(1, Ordering::SeqCst);
        self.ring_for_group();
    }

    /// A ring for a job of a group: wakes the loop like [`ring`](Self::ring), without
    /// saying that jobs without a group may be due.
    pub(crate) fn ring_for_group(&self) {
        // Woken to look again: until it has, it may not take hand-offs.
        self.idle.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// How many rings so far may have been for a job without a group.
    pub(crate) fn ungrouped_rings(&self) -> u64 {
        self.ungrouped_rings.load(Ordering::SeqCst)
    }

    /// Makes the idle loop wake at `at` (server time) as well as at its polls.
    pub(crate) fn ring_at(&self, at: DateTime) {
        if self.remember(at) {
            // The loop may be asleep until a later time: let it pick the sooner one.
            self.ring();
        }
    }

    /// Makes the loop's next idle wait end at `at` (server time), without waking it now:
    /// for the loop itself, about to sleep.
    pub(crate) fn wake_at(&self, at: DateTime) {
        self.remember(at);
    }

    /// Keeps `at` among the due times; true if it is the soonest now.
    fn remember(&self, at: DateTime) -> bool {
        let mut due = self.due.lock().expect("due lock");
        due.insert(at);
        if due.len() > MAX_DUE_TIMES {
            due.pop_last();
        }
        due.first() == Some(&at)
    }

    /// True, once, while the loop sleeps after finding nothing due.
    pub(crate) fn take_idle(&self) -> bool {
        self.idle.swap(false, Ordering::SeqCst)
    }

    /// Sleeps until a ring, a known due time or `poll` from now; false when `stop` or
    /// `retired` was cancelled. `looked` is the server time the claim that found
    /// nothing started at: due times up to it were covered by it and are dropped (a
    /// later one stays, however close: the next wait sleeps the rest). `now` is the
    /// server time now. `nothing_due` says that claim found nothing, which makes this
    /// worker a target for hand-offs meanwhile.
    pub(crate) async fn wait(
        &self,
        poll: Duration,
        looked: DateTime,
        now: DateTime,
        nothing_due: bool,
        stop: &CancellationToken,
        retired: &CancellationToken,
    ) -> bool {
        let mut until = Instant::now() + poll;
        {
            let mut due = self.due.lock().expect("due lock");
            while due.first().is_some_and(|&at| at <= looked) {
                due.pop_first();
            }
            if let Some(&at) = due.first() {
                let ahead = (at.timestamp_millis() - now.timestamp_millis()).max(0) as u64;
                // A few ms late rather than early: the claim compares with `nextRunAt`.
                until = until.min(Instant::now() + Duration::from_millis(ahead) + DUE_SLACK);
            }
        }
        self.idle.store(nothing_due, Ordering::SeqCst);
        let go_on = tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            _ = retired.cancelled() => false,
            _ = self.wake.notified() => true,
            _ = tokio::time::sleep_until(until) => {
                // A due time or a poll: may be for a job without a group too.
                self.ungrouped_rings.fetch_add(1, Ordering::SeqCst);
                true
            }
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

    /// Wakes the local worker for `name`: a job of a group became claimable.
    pub(crate) fn ring_for_group(&self, name: &str) {
        if let Some(bell) = self.by_name.read().expect("doorbells lock").get(name) {
            bell.ring_for_group();
        }
    }

    /// [`ring_at`](Self::ring_at) for a job of a group: one due now does not count as a
    /// ring for jobs without a group (another process's grouped inserts would otherwise
    /// send a grouped name's worker looking for ungrouped jobs after each one).
    pub(crate) fn ring_group_at(&self, name: &str, at: DateTime) {
        if at <= self.clock.now() {
            self.ring_for_group(name);
        } else {
            self.ring_at(name, at);
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
    } else if Duration::from_millis(wait as u64) <= MAX_AHEAD {
        bell.ring_at(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_claim_made_just_before_a_due_time_keeps_it_and_the_loop_wakes_for_it() {
        let bell = Doorbell::default();
        let never = CancellationToken::new();
        let poll = Duration::from_secs(30);
        let t = |ms: i64| DateTime::from_millis(1_700_000_000_000 + ms);
        bell.ring_at(t(50));
        // The first wait was woken by that ring.
        assert!(bell.wait(poll, t(0), t(0), true, &never, &never).await);
        // Woken at the due time by this machine's measure, the claim started 5 ms
        // before it by the server's (the clock offset moved meanwhile) and found
        // nothing: the due time stays, and the loop sleeps the 5 ms left, not a poll.
        let slept = Instant::now();
        assert!(bell.wait(poll, t(45), t(45), true, &never, &never).await);
        assert_eq!(slept.elapsed(), Duration::from_millis(5) + DUE_SLACK);
        // A claim that started at or after it covered it: the next wait is a poll.
        let slept = Instant::now();
        assert!(bell.wait(poll, t(52), t(52), true, &never, &never).await);
        assert_eq!(slept.elapsed(), poll);
    }

    #[test]
    fn rings_for_jobs_of_a_group_do_not_say_ungrouped_jobs_may_be_due() {
        let bell = Doorbell::default();
        bell.ring_for_group();
        assert_eq!(bell.ungrouped_rings(), 0);
        bell.ring();
        assert_eq!(bell.ungrouped_rings(), 1);
        bell.ring_at(DateTime::from_millis(1_700_000_000_000));
        assert_eq!(bell.ungrouped_rings(), 2, "a due time may be any job's");
    }
}
