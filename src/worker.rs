//! One worker per registered job name: while it has free slots it claims due jobs (one
//! per free slot, up to `claim_batch` in one claim) and hands them to the executor; with
//! nothing due it sleeps until a wake-up, a known due time or the poll tick.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mongodb::bson::DateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Inner, Services};
use crate::handler::Handler;
use crate::options::{MonqueOptions, WorkerOptions};
use crate::rate_limit::{Permits, RateLimit};

/// Due times remembered per worker; beyond that the latest are left to polling.
const MAX_DUE_TIMES: usize = 256;

/// Wake this long after a job's due time, so clock rounding never makes the claim early.
const DUE_SLACK: std::time::Duration = std::time::Duration::from_millis(2);

pub(crate) struct Worker {
    pub(crate) name: String,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) max_retries: u32,
    /// Longest a run may take (executor.rs), if limited.
    pub(crate) timeout: Option<std::time::Duration>,
    /// Starts per window across all instances (rate_limit.rs), if limited.
    limiter: Option<RateLimit>,
    slots: Arc<Semaphore>,
    /// A wake-up sent while the loop is busy is kept (one permit) for its next wait.
    wake: Notify,
    /// Times jobs this instance knows of fall due (retries, recurring jobs' next runs,
    /// delayed enqueues), soonest first, so the idle loop wakes on time, not at a poll.
    due: std::sync::Mutex<BTreeSet<Instant>>,
    /// Cancelled when `register(.., replace)` swaps this worker out.
    retired: CancellationToken,
    /// True while the loop sleeps after finding nothing due (handoff.rs reads it).
    idle: AtomicBool,
}

/// The permits one execution holds: its worker's and, with `instance_concurrency`,
/// the instance's. Dropping them frees the slots.
pub(crate) struct Slots {
    _worker: OwnedSemaphorePermit,
    _instance: Option<OwnedSemaphorePermit>,
}

impl Worker {
    pub(crate) fn new(
        name: &str,
        handler: Arc<dyn Handler>,
        opts: &WorkerOptions,
        defaults: &MonqueOptions,
    ) -> Self {
        Worker {
            name: name.to_owned(),
            handler,
            max_retries: opts.max_retries.unwrap_or(defaults.max_retries),
            timeout: opts.timeout,
            limiter: opts.limiter,
            slots: Arc::new(Semaphore::new(
                opts.concurrency.unwrap_or(defaults.worker_concurrency),
            )),
            wake: Notify::new(),
            due: std::sync::Mutex::default(),
            retired: CancellationToken::new(),
            idle: AtomicBool::new(false),
        }
    }

    pub(crate) fn wake(&self) {
        // Woken to look again: until it has, it may not take hand-offs.
        self.idle.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Makes the idle loop wake at `at` as well as at its polls.
    pub(crate) fn wake_at(&self, at: Instant) {
        let mut due = self.due.lock().expect("due lock");
        due.insert(at);
        if due.len() > MAX_DUE_TIMES {
            due.pop_last();
        }
        let soonest = due.first() == Some(&at);
        drop(due);
        if soonest {
            // The loop may be asleep until a later time: let it pick the sooner one.
            self.wake();
        }
    }

    /// True, once, while the loop sleeps after finding nothing due. Never for a
    /// rate-limited worker: a hand-off would start a job without taking a permit.
    pub(crate) fn take_idle(&self) -> bool {
        self.idle.swap(false, Ordering::SeqCst)
            && !self.retired.is_cancelled()
            && self.limiter.is_none()
    }

    /// One free slot of this worker (and of the instance, when capped), without waiting.
    pub(crate) fn try_slot(&self, inner: &Inner) -> Option<Slots> {
        let mut slots = Vec::with_capacity(1);
        self.more_free_slots(inner, 1, &mut slots);
        slots.pop()
    }

    pub(crate) fn retire(&self) {
        self.retired.cancel();
    }

    pub(crate) fn spawn(
        self: &Arc<Self>,
        inner: Arc<Inner>,
        services: &Services,
    ) -> JoinHandle<()> {
        let stop = services.claiming.child_token();
        let abort = services.abort.clone();
        tokio::spawn(self.clone().run(inner, stop, abort))
    }

    async fn run(
        self: Arc<Self>,
        inner: Arc<Inner>,
        stop: CancellationToken,
        abort: CancellationToken,
    ) {
        // Batch only while a backlog is likely: at start, and after a claim that filled
        // every slot it offered. A worker woken from idle for one new job claims it with
        // one round trip instead of three. After a batch lost every candidate to other
        // workers the next claim is single too: it cannot lose that way, so contention
        // never spins.
        let mut batch = true;
        loop {
            let Some(first) = self.free_slots(&inner, &stop).await else {
                break;
            };
            let looked = Instant::now();
            if inner.is_paused_here(&self.name) {
                drop(first);
                if !self.idle(&inner, &stop, looked, false).await {
                    break;
                }
                continue;
            }
            let mut slots = vec![first];
            if batch {
                self.more_free_slots(&inner, inner.opts.claim_batch - 1, &mut slots);
            }
            let permits = match self.limiter {
                None => None,
                Some(limit) => match self.take_permits(&inner, limit, &mut slots, &stop).await {
                    Ok(Some(window)) => Some(window),
                    Ok(None) => continue, // waited for the next window
                    Err(()) => break,     // stopped while waiting
                },
            };
            let offered = slots.len();
            let claimed = inner.claim(&self.name, offered).await;
            let taken = claimed
                .as_ref()
                .map_or(0, |c| c.jobs.len() + c.unreadable.len());
            if let Some(window) = permits {
                inner
                    .return_permits(&self.name, window, (offered - taken) as u32)
                    .await;
            }
            match claimed {
                Ok(claimed) => {
                    let contended = claimed.contended;
                    batch = !contended && taken == slots.len();
                    for err in &claimed.unreadable {
                        inner.emit_error(err, None);
                    }
                    // One slot per job; slots left over go back at once.
                    let mut slots = slots.into_iter();
                    for job in claimed.jobs {
                        let slot = slots
                            .next()
                            .expect("a claim takes at most one job per slot");
                        inner.execute(self.clone(), job, slot, &abort);
                    }
                    drop(slots);
                    if taken == 0 && !contended && !self.idle(&inner, &stop, looked, true).await {
                        break;
                    }
                }
                Err(err) => {
                    drop(slots);
                    batch = false;
                    inner.emit_error(&err, None);
                    if !self.idle(&inner, &stop, looked, false).await {
                        break;
                    }
                }
            }
        }
    }

    /// Takes rate-limit permits for the slots in hand, dropping the slots it got none
    /// for. `Ok(Some(window))`: claim now; `Ok(None)`: the window was full and this
    /// waited for it to end (or the permits could not be read: reported, and waited a
    /// poll); `Err(())`: the worker stopped meanwhile.
    async fn take_permits(
        &self,
        inner: &Inner,
        limit: RateLimit,
        slots: &mut Vec<Slots>,
        stop: &CancellationToken,
    ) -> Result<Option<DateTime>, ()> {
        let wait_until = match inner
            .take_permits(&self.name, limit, slots.len() as u32)
            .await
        {
            Ok(Permits::Granted { count, window }) => {
                slots.truncate(count as usize);
                return Ok(Some(window));
            }
            Ok(Permits::WaitUntil(at)) => {
                let ms = (at.timestamp_millis() - DateTime::now().timestamp_millis()).max(1);
                Instant::now() + std::time::Duration::from_millis(ms as u64)
            }
            Err(err) => {
                inner.emit_error(&err, None);
                Instant::now() + inner.opts.poll_interval
            }
        };
        slots.clear();
        tokio::select! {
            biased;
            _ = stop.cancelled() => Err(()),
            _ = self.retired.cancelled() => Err(()),
            _ = tokio::time::sleep_until(wait_until) => Ok(None),
        }
    }

    /// Adds up to `want` more slots that are free right now, without waiting.
    fn more_free_slots(&self, inner: &Inner, want: usize, slots: &mut Vec<Slots>) {
        for _ in 0..want {
            let Ok(worker) = self.slots.clone().try_acquire_owned() else {
                return;
            };
            let instance = match &inner.instance_slots {
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

    /// Waits for a slot of this worker and, when capped, of the instance. `None` on stop.
    async fn free_slots(&self, inner: &Inner, stop: &CancellationToken) -> Option<Slots> {
        let worker = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            _ = self.retired.cancelled() => return None,
            permit = self.slots.clone().acquire_owned() => permit.ok()?,
        };
        let instance = match &inner.instance_slots {
            None => None,
            Some(slots) => tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                _ = self.retired.cancelled() => return None,
                permit = slots.clone().acquire_owned() => Some(permit.ok()?),
            },
        };
        Some(Slots {
            _worker: worker,
            _instance: instance,
        })
    }

    /// Sleeps until a wake-up, a known due time or the poll interval; false when the
    /// worker must stop. `looked` is when the claim that found nothing started: due
    /// times before it were covered by it and are dropped.
    /// `nothing_due` says the claim at `looked` found nothing, which makes this worker
    /// a target for local hand-offs while it sleeps.
    async fn idle(
        &self,
        inner: &Inner,
        stop: &CancellationToken,
        looked: Instant,
        nothing_due: bool,
    ) -> bool {
        let mut until = Instant::now() + inner.opts.poll_interval;
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
            _ = self.retired.cancelled() => false,
            _ = self.wake.notified() => true,
            _ = tokio::time::sleep_until(until) => true,
        };
        self.idle.store(false, Ordering::SeqCst);
        go_on
    }
}
