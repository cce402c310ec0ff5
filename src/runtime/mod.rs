//! Runtime services: what runs in the background of a started instance. Each is a
//! struct holding only what it uses (the store, the event bus, the running set, its
//! options), built by the handle (api/monque.rs) and started and stopped by the
//! supervisor. They call the storage layer; it never calls them.
//!
//! | file | service |
//! |---|---|
//! | `supervisor.rs` | registered workers; start / stop of everything below |
//! | `worker.rs` | per job name: free slots -> claim -> executor (River's producer) |
//! | `executor.rs` | runs one job: handler call, timeout, panic capture |
//! | `completer.rs` | outcome -> complete / retry with backoff / fail / snooze |
//! | `dependents.rs` | flows: settles the jobs waiting on a job that ended |
//! | `heartbeat.rs` | lease renewal, remote cancels and lost leases, pauses refresh |
//! | `recovery.rs` | expired leases: back to `pending`, or past `max_stalls` a failure |
//! | `notify.rs` | change-stream wake-ups, poll fallback |
//! | `outage.rs` | a server outage reported once when it starts and once when it ends |
//! | `handoff.rs` | a local enqueue handed to an idle local worker |
//! | `presence.rs` | this instance's presence (what it handles); orphaned jobs |
//! | `retention.rs` | deletes old finished jobs |
//! | `shutdown.rs` | the stop sequence: drain, abort, hand back |
//! | `running.rs`, `doorbell.rs`, `slots.rs`, `pauses.rs` | shared state: executions in flight, wake-ups, concurrency, paused names |
//! | `metrics.rs`, `progress.rs` | Prometheus counters; progress reports |

pub(crate) mod completer;
pub(crate) mod dependents;
pub(crate) mod doorbell;
pub(crate) mod executor;
pub(crate) mod handoff;
pub(crate) mod heartbeat;
pub(crate) mod metrics;
pub(crate) mod notify;
#[cfg(feature = "opentelemetry")]
pub(crate) mod otel_metrics;
pub(crate) mod outage;
pub(crate) mod pauses;
pub(crate) mod presence;
pub(crate) mod progress;
pub(crate) mod recovery;
pub(crate) mod retention;
pub(crate) mod run_span;
pub(crate) mod running;
mod shutdown;
pub(crate) mod slots;
pub(crate) mod supervisor;
pub(crate) mod worker;
