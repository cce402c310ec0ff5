//! The executions in flight on this instance, each with the signal that aborts it and
//! the local deadline of its lease. The heartbeat renews their leases (and moves the
//! deadlines), shutdown waits for them and hands them back, a cancel aborts them. A run
//! whose deadline passes without a renewal (its worker cannot reach the server) is
//! aborted with `LEASE_LOST` then: no later than another instance could take its job
//! over, so it does not keep running beside the new run.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::handler::AbortSignal;

/// The executions in flight on this instance, as `(job id, claim id)` pairs (a batch
/// claim gives its jobs one claim id, so only the pair names an execution), with the
/// signal that aborts each.
pub(crate) struct Running {
    jobs: Mutex<HashMap<(ObjectId, ObjectId), Entry>>,
    count: watch::Sender<usize>,
    /// How long a run may go on without a renewal: the lease, less the watchdog's
    /// period, so the abort lands before the lease runs out on the server.
    lease_budget: Duration,
}

/// How often the heartbeat's watchdog looks at the deadlines, for a lease and a
/// heartbeat interval (a quarter lease at most).
pub(crate) fn watchdog_period(lease: Duration, heartbeat: Duration) -> Duration {
    heartbeat.min(lease / 4)
}

struct Entry {
    signal: AbortSignal,
    /// When the lease runs out unless renewed, on the local clock: counted from when the
    /// claim or the last successful renewal was *sent*, so never after the server's.
    lease_deadline: Instant,
}

impl Running {
    pub(crate) fn new(lease: Duration, heartbeat: Duration) -> Self {
        Running {
            jobs: Mutex::default(),
            count: watch::Sender::new(0),
            lease_budget: lease - watchdog_period(lease, heartbeat),
        }
    }

    /// Registers an execution whose claim was sent at `claim_sent` (its lease started
    /// on the server no earlier).
    pub(crate) fn insert(
        &self,
        execution: (ObjectId, ObjectId),
        signal: AbortSignal,
        claim_sent: Instant,
    ) {
        let mut jobs = self.jobs.lock().expect("running lock");
        let lease_deadline = claim_sent + self.lease_budget;
        jobs.entry(execution).or_insert(Entry {
            signal,
            lease_deadline,
        });
        self.count.send_replace(jobs.len());
    }

    /// The leases of `executions` were renewed by a write sent at `sent`.
    pub(crate) fn renewed(&self, executions: &[(ObjectId, ObjectId)], sent: Instant) {
        let mut jobs = self.jobs.lock().expect("running lock");
        for execution in executions {
            if let Some(entry) = jobs.get_mut(execution) {
                entry.lease_deadline = entry.lease_deadline.max(sent + self.lease_budget);
            }
        }
    }

    /// Aborts, with `LEASE_LOST`, the runs whose lease ran out here without a renewal.
    /// Returns how many it aborted now.
    pub(crate) fn abort_expired_leases(&self) -> usize {
        let now = Instant::now();
        let jobs = self.jobs.lock().expect("running lock");
        let mut aborted = 0;
        for entry in jobs.values() {
            if entry.lease_deadline <= now && !entry.signal.is_aborted() {
                entry.signal.lose_lease();
                aborted += 1;
            }
        }
        aborted
    }

    pub(crate) fn remove(&self, execution: &(ObjectId, ObjectId)) {
        let mut jobs = self.jobs.lock().expect("running lock");
        jobs.remove(execution);
        self.count.send_replace(jobs.len());
    }

    /// `(job id, claim id)` of every execution in flight.
    pub(crate) fn snapshot(&self) -> Vec<(ObjectId, ObjectId)> {
        let jobs = self.jobs.lock().expect("running lock");
        jobs.keys().copied().collect()
    }

    /// Aborts this instance's executions of job `id` because it was cancelled (a no-op
    /// for those already aborted, whose first reason stands).
    pub(crate) fn cancel(&self, id: ObjectId) {
        let jobs = self.jobs.lock().expect("running lock");
        for ((job, _), entry) in jobs.iter() {
            if *job == id {
                entry.signal.cancel();
            }
        }
    }

    /// Aborts the execution `(id, claim)` because it lost its lease (a no-op if it
    /// already aborted, or ended).
    pub(crate) fn lose_lease(&self, execution: &(ObjectId, ObjectId)) {
        let jobs = self.jobs.lock().expect("running lock");
        if let Some(entry) = jobs.get(execution) {
            entry.signal.lose_lease();
        }
    }

    /// Waits until nothing runs; false if `timeout` passed first.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let idle = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        idle.is_ok()
    }
}
