//! One worker per registered job name (River's producer): while it has free slots it
//! claims due jobs (one per free slot, up to `claim_batch` in one claim) and hands them
//! to the executor; with nothing due it sleeps on its doorbell until a wake-up, a known
//! due time or the poll tick. Once its name has groups it claims round-robin across
//! them (store/groups.rs), its jobs without a group taking turns as one more group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongodb::bson::DateTime;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::doorbell::Doorbell;
use super::executor::{Executor, RegisteredHandler};
use super::metrics::Metrics;
use super::outage::Outage;
use super::pauses::Pauses;
use super::slots::{SlotPool, Slots};
use crate::error::Result;
use crate::events::EventBus;
use crate::options::RateLimit;
use crate::store::{Claimed, GroupLimits, Permits, Store};

/// What every worker of an instance shares.
pub(crate) struct WorkerServices {
    pub(crate) store: Arc<Store>,
    pub(crate) executor: Arc<Executor>,
    pub(crate) pauses: Arc<Pauses>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) outage: Arc<Outage>,
    /// Most jobs one claim takes.
    pub(crate) claim_batch: usize,
    /// Longest an idle worker sleeps before it looks again.
    pub(crate) poll_interval: Duration,
}

pub(crate) struct Worker {
    name: String,
    handler: Arc<RegisteredHandler>,
    /// Starts per window across all instances (store/rate_limits.rs), if limited.
    limiter: Option<RateLimit>,
    slots: SlotPool,
    doorbell: Arc<Doorbell>,
    /// Cancelled when `register(.., replace)` swaps this worker out.
    retired: CancellationToken,
    /// `groupConcurrency` and the per-group rate limit.
    group_limits: GroupLimits,
    /// Claims go round-robin across groups: set once the name is seen to have groups
    /// (or its worker has group limits), never unset.
    grouped: AtomicBool,
    /// Where the fair rotation stands (`claim`).
    turns: Mutex<Turns>,
}

/// A worker's view of its name's groups between claims.
struct Turns {
    /// When the name's groups were last looked for (until it has some).
    checked: Option<Instant>,
    /// When the ungrouped jobs last had their turn in a fair round (server time).
    ungrouped_at: DateTime,
    /// Their last turn found none: the doorbell's ungrouped ring count then, and when.
    /// They sit out until a ring may be for one of them, or a poll interval passed.
    ungrouped_empty: Option<(u64, Instant)>,
}

/// Where a started worker's jobs run: its claims stop with `claiming`, its runs'
/// signals abort with `abort`.
pub(crate) struct StartedTokens {
    pub(crate) claiming: CancellationToken,
    pub(crate) abort: CancellationToken,
}

impl Worker {
    pub(crate) fn new(
        name: &str,
        handler: Arc<RegisteredHandler>,
        limiter: Option<RateLimit>,
        group_limits: GroupLimits,
        slots: SlotPool,
    ) -> Self {
        let limited = group_limits.concurrency.is_some() || group_limits.limiter.is_some();
        Worker {
            name: name.to_owned(),
            handler,
            limiter,
            slots,
            doorbell: Arc::default(),
            retired: CancellationToken::new(),
            group_limits,
            grouped: AtomicBool::new(limited),
            turns: Mutex::new(Turns {
                checked: None,
                ungrouped_at: DateTime::from_millis(0),
                ungrouped_empty: None,
            }),
        }
    }

    /// Claims fairly from now on: a job of a group was enqueued here.
    pub(crate) fn saw_group(&self) {
        self.grouped.store(true, Ordering::Relaxed);
    }

    /// Claims up to `max` due jobs: round-robin across groups once the name has any.
    async fn claim(&self, svc: &WorkerServices, max: usize) -> Result<Claimed> {
        let look = !self.grouped.load(Ordering::Relaxed) && {
            let mut turns = self.turns.lock().expect("turns lock");
            let due = turns
                .checked
                .is_none_or(|at| at.elapsed() >= svc.poll_interval);
            if due {
                turns.checked = Some(Instant::now());
            }
            due
        };
        if look && svc.store.has_groups(&self.name).await? {
            self.saw_group();
        }
        if !self.grouped.load(Ordering::Relaxed) {
            return svc.store.claim(&self.name, max).await;
        }
        let rings = self.doorbell.ungrouped_rings();
        let ungrouped_at = {
            let turns = self.turns.lock().expect("turns lock");
            let sits_out = turns
                .ungrouped_empty
                .is_some_and(|(seen, at)| seen == rings && at.elapsed() < svc.poll_interval);
            (!sits_out).then_some(turns.ungrouped_at)
        };
        let fair = svc
            .store
            .claim_fair(&self.name, max, self.group_limits, ungrouped_at)
            .await?;
        if fair.tried_ungrouped {
            let mut turns = self.turns.lock().expect("turns lock");
            turns.ungrouped_at = svc.store.now();
            turns.ungrouped_empty = fair.ungrouped_empty.then(|| (rings, Instant::now()));
        }
        if let Some(at) = fair.wait_until {
            // A group waits for its rate-limit window: look again when it ends.
            self.doorbell.wake_at(at);
        }
        Ok(fair.claimed)
    }

    pub(crate) fn doorbell(&self) -> Arc<Doorbell> {
        self.doorbell.clone()
    }

    pub(crate) fn handler(&self) -> Arc<RegisteredHandler> {
        self.handler.clone()
    }

    /// A free slot for a job handed to this worker, if it sleeps idle now. Takes the
    /// idle mark: one hand-off per idle spell, after which the worker looks for due
    /// jobs again (anything that fell due meanwhile goes first from then on). Never
    /// for a rate-limited worker: a hand-off would start a job without a permit.
    pub(crate) fn take_hand_off_slot(&self) -> Option<Slots> {
        if self.grouped.load(Ordering::Relaxed) {
            // A group's caps and turn are taken by a claim, never by a hand-off.
            return None;
        }
        if !self.doorbell.take_idle() || self.retired.is_cancelled() || self.limiter.is_some() {
            return None;
        }
        // The slot first: woken, the worker's own loop would take it.
        let slots = self.slots.try_take();
        self.doorbell.ring();
        slots
    }

    pub(crate) fn retire(&self) {
        self.retired.cancel();
    }

    pub(crate) fn spawn(
        self: &Arc<Self>,
        services: Arc<WorkerServices>,
        tokens: &StartedTokens,
    ) -> JoinHandle<()> {
        let stop = tokens.claiming.child_token();
        let abort = tokens.abort.clone();
        tokio::spawn(self.clone().run(services, stop, abort))
    }

    async fn run(
        self: Arc<Self>,
        services: Arc<WorkerServices>,
        stop: CancellationToken,
        abort: CancellationToken,
    ) {
        let svc = &*services;
        // Batch only while a backlog is likely: at start, and after a claim that filled
        // every slot it offered. A worker woken from idle for one new job claims it with
        // one round trip instead of three. After a batch lost every candidate to other
        // workers the next claim is single too: it cannot lose that way, so contention
        // never spins.
        let mut batch = true;
        loop {
            let Some(first) = self.slots.wait(&stop, &self.retired).await else {
                break;
            };
            // Server time, as the claim's `now` and the due times the doorbell keeps.
            let looked = svc.store.now();
            if svc.pauses.covers(&self.name) {
                drop(first);
                if !self.idle(svc, &stop, looked, false).await {
                    break;
                }
                continue;
            }
            let mut slots = vec![first];
            if batch {
                self.slots.take_free(svc.claim_batch - 1, &mut slots);
            }
            let permits = match self.limiter {
                None => None,
                Some(limit) => match self.take_permits(svc, limit, &mut slots, &stop).await {
                    Ok(Some(window)) => Some(window),
                    Ok(None) => continue, // waited for the next window
                    Err(()) => break,     // stopped while waiting
                },
            };
            let offered = slots.len();
            let claim_sent = Instant::now();
            let claimed = self.claim(svc, offered).await;
            svc.metrics.claim_took(claim_sent.elapsed());
            let taken = claimed
                .as_ref()
                .map_or(0, |c| c.jobs.len() + c.unreadable.len());
            if let Some(window) = permits {
                svc.store
                    .return_permits(&self.name, window, (offered - taken) as u32)
                    .await;
            }
            match claimed {
                Ok(claimed) => {
                    svc.outage.reached();
                    let contended = claimed.contended;
                    batch = !contended && taken == slots.len();
                    for err in &claimed.unreadable {
                        svc.events.error(err, None);
                    }
                    // One slot per job; slots left over go back at once.
                    let mut slots = slots.into_iter();
                    for job in claimed.jobs {
                        let slot = slots
                            .next()
                            .expect("a claim takes at most one job per slot");
                        svc.executor
                            .execute(self.handler.clone(), job, slot, &abort, claim_sent);
                    }
                    drop(slots);
                    if taken == 0 && !contended && !self.idle(svc, &stop, looked, true).await {
                        break;
                    }
                }
                Err(err) => {
                    drop(slots);
                    batch = false;
                    svc.outage.failed("claim", &err);
                    if !self.idle(svc, &stop, looked, false).await {
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
        svc: &WorkerServices,
        limit: RateLimit,
        slots: &mut Vec<Slots>,
        stop: &CancellationToken,
    ) -> Result<Option<DateTime>, ()> {
        let wait_until = match svc
            .store
            .take_permits(&self.name, limit, slots.len() as u32)
            .await
        {
            Ok(Permits::Granted { count, window }) => {
                slots.truncate(count as usize);
                return Ok(Some(window));
            }
            Ok(Permits::WaitUntil(at)) => {
                let ms = (at.timestamp_millis() - svc.store.now().timestamp_millis()).max(1);
                Instant::now() + Duration::from_millis(ms as u64)
            }
            Err(err) => {
                svc.outage.failed("rate limit", &err);
                Instant::now() + svc.poll_interval
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

    /// Sleeps on the doorbell; false when the worker must stop.
    async fn idle(
        &self,
        svc: &WorkerServices,
        stop: &CancellationToken,
        looked: DateTime,
        nothing_due: bool,
    ) -> bool {
        self.doorbell
            .wait(
                svc.poll_interval,
                looked,
                svc.store.now(),
                nothing_due,
                stop,
                &self.retired,
            )
            .await
    }
}
