//! What happens to jobs, as events. Listeners are plain callbacks run on the worker's
//! task: they must be quick (send to a channel if you need to do more). A listener that
//! panics is caught and logged; it never breaks the worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mongodb::bson::DateTime;
use serde_json::json;

use crate::job::Job;

/// Something that happened in the queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A handler is about to run the job (`job:start`).
    JobStarted {
        /// The job, as claimed.
        job: Arc<Job>,
    },
    /// The handler succeeded and the job is `completed`, or, if it is recurring, back
    /// to `pending` at its next occurrence (`job:complete`).
    JobCompleted {
        /// The job, as written.
        job: Arc<Job>,
        /// How long the handler ran.
        duration: Duration,
    },
    /// The handler failed (`job:fail`).
    JobFailed {
        /// The job, with its new `fail_count` and status.
        job: Arc<Job>,
        /// The handler's error message.
        error: String,
        /// Whether the job runs again.
        will_retry: bool,
    },
    /// A failed job was put back to `pending` (`job:retry`).
    JobRetry {
        /// The job, as rescheduled.
        job: Arc<Job>,
        /// When it runs again.
        next_run_at: DateTime,
        /// The backoff delay chosen.
        delay: Duration,
    },
    /// An error outside a handler: claim, heartbeat or write failures (`job:error`).
    JobError {
        /// What went wrong.
        error: String,
        /// A stable code: an [`Error::code`](crate::Error::code) or `LEASE_LOST`.
        code: &'static str,
        /// The job concerned, if any.
        job: Option<Arc<Job>>,
    },
    /// Jobs whose lease expired were put back to `pending` (`stale:recovered`).
    StaleRecovered {
        /// How many.
        count: u64,
    },
    /// `stop()` handed unfinished jobs back to `pending` (`jobs:released`).
    JobsReleased {
        /// How many.
        count: u64,
    },
}

impl Event {
    /// The event's name as the Node wrapper emits it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::JobStarted { .. } => "job:start",
            Event::JobCompleted { .. } => "job:complete",
            Event::JobFailed { .. } => "job:fail",
            Event::JobRetry { .. } => "job:retry",
            Event::JobError { .. } => "job:error",
            Event::StaleRecovered { .. } => "stale:recovered",
            Event::JobsReleased { .. } => "jobs:released",
        }
    }

    /// JSON form for the Node binding: `{ "type": kind, ...payload }`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match self {
            Event::JobStarted { job } => json!({ "job": job.to_json() }),
            Event::JobCompleted { job, duration } => {
                json!({ "job": job.to_json(), "duration": duration.as_secs_f64() * 1000.0 })
            }
            Event::JobFailed {
                job,
                error,
                will_retry,
            } => {
                json!({ "job": job.to_json(), "error": error, "willRetry": will_retry })
            }
            Event::JobRetry {
                job,
                next_run_at,
                delay,
            } => json!({
                "job": job.to_json(),
                "nextRunAt": next_run_at.timestamp_millis(),
                "delay": delay.as_millis() as u64,
            }),
            Event::JobError { error, code, job } => json!({
                "error": error,
                "code": code,
                "job": job.as_ref().map(|j| j.to_json()),
            }),
            Event::StaleRecovered { count } | Event::JobsReleased { count } => {
                json!({ "count": count })
            }
        };
        v["type"] = self.kind().into();
        v
    }
}

type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Fan-out of events to registered listeners.
#[derive(Default)]
pub(crate) struct EventBus {
    listeners: RwLock<Vec<Listener>>,
}

impl EventBus {
    pub(crate) fn subscribe(&self, listener: Listener) {
        self.listeners
            .write()
            .expect("listener lock")
            .push(listener);
    }

    pub(crate) fn emit(&self, event: Event) {
        let listeners = self.listeners.read().expect("listener lock").clone();
        for listener in listeners {
            if catch_unwind(AssertUnwindSafe(|| listener(&event))).is_err() {
                tracing::warn!(event = event.kind(), "an event listener panicked; ignored");
            }
        }
    }
}
