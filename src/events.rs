//! What happens to jobs, as events. Listeners are plain callbacks run on the worker's
//! task: they must be quick (send to a channel if you need to do more). A listener that
//! panics is caught and logged; it never breaks the worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mongodb::bson::{oid::ObjectId, DateTime};
use serde_json::json;

use crate::job::Job;

/// Something that happened in the queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A running job reported progress (`job:progress`).
    JobProgress {
        /// The job.
        id: ObjectId,
        /// The value reported.
        progress: serde_json::Value,
    },
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
    /// A handler snoozed its job: back to `pending` without counting a failure
    /// (`job:snoozed`).
    JobSnoozed {
        /// The job, as rescheduled.
        job: Arc<Job>,
        /// When it runs again.
        next_run_at: DateTime,
        /// The delay the handler asked for.
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
    /// A job's lease expired while it ran (its worker died, hung or lost the server)
    /// and it was recovered (`job:stalled`): back to `pending`, or, past `max_stalls`,
    /// counted as a failed attempt (a `job:fail` follows).
    JobStalled {
        /// The job, as recovered.
        job: Arc<Job>,
        /// How many times it has stalled.
        stall_count: u32,
        /// Whether this stall counted as a failed attempt.
        counted_as_failure: bool,
    },
    /// Jobs whose lease expired were put back to `pending` (`stale:recovered`).
    StaleRecovered {
        /// How many.
        count: u64,
    },
    /// A job was cancelled through the management API (`job:cancelled`).
    JobCancelled {
        /// The job, as cancelled.
        job: Arc<Job>,
    },
    /// A failed or cancelled job was put back to `pending` by hand (`job:retried`).
    JobRetried {
        /// The job, as put back.
        job: Arc<Job>,
        /// Its status before.
        previous_status: crate::JobStatus,
    },
    /// A pending job got a new run time (`job:rescheduled`).
    JobRescheduled {
        /// The job, as rescheduled.
        job: Arc<Job>,
    },
    /// A pending job got a new priority (`job:priority`).
    JobPriorityChanged {
        /// The job, as changed.
        job: Arc<Job>,
    },
    /// A job was deleted (`job:deleted`).
    JobDeleted {
        /// Its id.
        id: mongodb::bson::oid::ObjectId,
    },
    /// A bulk operation changed jobs (`jobs:cancelled`, `jobs:retried`, `jobs:deleted`,
    /// `jobs:expired` for the retention sweep).
    JobsChanged {
        /// Which one: the event name.
        kind: &'static str,
        /// How many jobs.
        count: u64,
    },
    /// Processing was paused or resumed, for one name or all (`queue:paused`,
    /// `queue:resumed`).
    QueuePaused {
        /// The job name, or `None` for every name.
        name: Option<String>,
        /// True for a pause, false for a resume.
        paused: bool,
    },
    /// The server stopped answering (`server:unreachable`): claims and heartbeats fail
    /// until it is back. Reported once per outage, not per failed operation.
    ServerUnreachable {
        /// The first error seen.
        error: String,
        /// When the outage was noticed.
        since: DateTime,
    },
    /// The server answers again after an outage (`server:reachable`).
    ServerReachable {
        /// How long it was unreachable, as this instance saw it.
        down_for: Duration,
    },
    /// `stop()` handed unfinished jobs back to `pending` (`jobs:released`).
    JobsReleased {
        /// How many.
        count: u64,
    },
    /// Jobs of `name` have been due for over a minute and no live instance handles
    /// that name (`jobs:orphaned`): nothing runs them until a worker for it starts.
    /// Reported by every started instance at most once a minute while it lasts.
    JobsOrphaned {
        /// The job name nobody handles.
        name: String,
        /// How many of its jobs are due.
        count: u64,
        /// When the longest-waiting of them fell due.
        oldest_due: DateTime,
    },
}

impl Event {
    /// The event's name as the Node wrapper emits it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::JobStarted { .. } => "job:start",
            Event::JobProgress { .. } => "job:progress",
            Event::JobCompleted { .. } => "job:complete",
            Event::JobFailed { .. } => "job:fail",
            Event::JobRetry { .. } => "job:retry",
            Event::JobSnoozed { .. } => "job:snoozed",
            Event::JobError { .. } => "job:error",
            Event::StaleRecovered { .. } => "stale:recovered",
            Event::JobStalled { .. } => "job:stalled",
            Event::ServerUnreachable { .. } => "server:unreachable",
            Event::ServerReachable { .. } => "server:reachable",
            Event::JobsReleased { .. } => "jobs:released",
            Event::JobCancelled { .. } => "job:cancelled",
            Event::JobRetried { .. } => "job:retried",
            Event::JobRescheduled { .. } => "job:rescheduled",
            Event::JobPriorityChanged { .. } => "job:priority",
            Event::JobDeleted { .. } => "job:deleted",
            Event::JobsChanged { kind, .. } => kind,
            Event::QueuePaused { paused: true, .. } => "queue:paused",
            Event::QueuePaused { paused: false, .. } => "queue:resumed",
            Event::JobsOrphaned { .. } => "jobs:orphaned",
        }
    }

    /// JSON form for the Node binding: `{ "type": kind, ...payload }`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match self {
            Event::JobStarted { job } => json!({ "job": job.to_json() }),
            Event::JobProgress { id, progress } => {
                json!({ "id": id.to_hex(), "progress": progress })
            }
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
            }
            | Event::JobSnoozed {
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
            Event::JobStalled {
                job,
                stall_count,
                counted_as_failure,
            } => {
                json!({ "job": job.to_json(), "stallCount": stall_count, "countedAsFailure": counted_as_failure })
            }
            Event::ServerUnreachable { error, since } => {
                json!({ "error": error, "code": "CONNECTION_ERROR", "since": since.timestamp_millis() })
            }
            Event::ServerReachable { down_for } => {
                json!({ "downForMs": down_for.as_millis() as u64 })
            }
            Event::StaleRecovered { count }
            | Event::JobsReleased { count }
            | Event::JobsChanged { count, .. } => {
                json!({ "count": count })
            }
            Event::JobCancelled { job }
            | Event::JobRescheduled { job }
            | Event::JobPriorityChanged { job } => json!({ "job": job.to_json() }),
            Event::JobRetried {
                job,
                previous_status,
            } => json!({ "job": job.to_json(), "previousStatus": previous_status }),
            Event::JobDeleted { id } => json!({ "jobId": id.to_hex() }),
            Event::QueuePaused { name, .. } => json!({ "name": name }),
            Event::JobsOrphaned {
                name,
                count,
                oldest_due,
            } => {
                json!({ "name": name, "count": count, "oldestDueAt": oldest_due.timestamp_millis() })
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

    /// Reports `err` as `job:error`, with its code and the job concerned, if any.
    pub(crate) fn error(&self, err: &crate::Error, job: Option<Arc<Job>>) {
        self.emit(Event::JobError {
            error: err.to_string(),
            code: err.code(),
            job,
        });
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
