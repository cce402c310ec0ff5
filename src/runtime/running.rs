//! The executions in flight on this instance, each with the signal that aborts it. The
//! heartbeat renews their leases, shutdown waits for them and hands them back, a
//! cancel aborts them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use tokio::sync::watch;

use crate::handler::AbortSignal;

/// The executions in flight on this instance, as `(job id, claim id)` pairs (a batch
/// claim gives its jobs one claim id, so only the pair names an execution), with the
/// signal that aborts each.
pub(crate) struct Running {
    jobs: Mutex<HashMap<(ObjectId, ObjectId), AbortSignal>>,
    count: watch::Sender<usize>,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            jobs: Mutex::default(),
            count: watch::Sender::new(0),
        }
    }
}

impl Running {
    pub(crate) fn insert(&self, execution: (ObjectId, ObjectId), signal: AbortSignal) {
        let mut jobs = self.jobs.lock().expect("running lock");
        jobs.insert(execution, signal);
        self.count.send_replace(jobs.len());
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
        for ((job, _), signal) in jobs.iter() {
            if *job == id {
                signal.cancel();
            }
        }
    }

    /// Aborts the execution `(id, claim)` because it lost its lease (a no-op if it
    /// already aborted, or ended).
    pub(crate) fn lose_lease(&self, execution: &(ObjectId, ObjectId)) {
        let jobs = self.jobs.lock().expect("running lock");
        if let Some(signal) = jobs.get(execution) {
            signal.lose_lease();
        }
    }

    /// Waits until nothing runs; false if `timeout` passed first.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let idle = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        idle.is_ok()
    }
}
