//! # monque
//!
//! A MongoDB-backed job queue. Jobs are documents; workers claim them with one atomic
//! `findOneAndUpdate` that sets a fresh fencing token (`claimId`) and a lease, renewed
//! by heartbeats. Failures retry with capped, jittered exponential backoff; `stop()`
//! hands unfinished jobs back at once.
//!
//! ```no_run
//! use monque::{Monque, MonqueOptions, WorkerOptions, JobContext};
//!
//! # async fn demo() -> monque::Result<()> {
//! let queue = Monque::connect("mongodb://127.0.0.1:27017/app", MonqueOptions::default()).await?;
//! queue.initialize().await?;
//! queue.register("send-email", |ctx: JobContext| async move {
//!     let to: String = ctx.job.data["to"].as_str().unwrap_or_default().to_owned();
//!     println!("sending to {to}");
//!     Ok::<_, monque::HandlerError>(())
//! }, WorkerOptions::default())?;
//! queue.start()?;
//! queue.now("send-email", serde_json::json!({ "to": "ada@example.com" })).await?;
//! queue.stop(None).await?;
//! # Ok(()) }
//! ```
//!
//! Where things live (imports run one way: shared types <- `store` <- `runtime` <- `api`
//! <- `node`):
//!
//! - shared types: `job.rs` (the job document), `status.rs`, `new_job.rs` (what an enqueue
//!   asks for), `query.rs` (selectors, pages), `options.rs`, `error.rs`, `events.rs`,
//!   `handler.rs`, `backoff.rs` (retry delays), `schedule.rs` (cron and intervals),
//!   `trace_context.rs` (the W3C context a job carries to its runs);
//! - `store/`: every MongoDB read and write — `claim.rs` claims a job, `outcome.rs`
//!   writes how a run ended, `executions.rs` renews and recovers leases;
//! - `runtime/`: the background services — `worker.rs` claims, `executor.rs` runs,
//!   `completer.rs` decides retries, `heartbeat.rs` keeps leases, `notify.rs` wakes idle
//!   workers, `supervisor.rs` starts and stops them all;
//! - `api/`: the [`Monque`] handle; `node/`: the Node.js binding (feature `node`).

#![warn(missing_docs)]

mod backoff;
mod error;
mod events;
mod handler;
mod job;
mod new_job;
mod options;
mod query;
mod schedule;
mod status;
mod trace_context;

mod store;

mod runtime;

mod api;

#[cfg(feature = "node")]
mod node;

pub use api::Monque;
pub use backoff::Backoff;
pub use error::{Error, Result};
pub use events::Event;
pub use handler::{
    AbortReason, AbortSignal, Handler, HandlerError, JobContext, Outcome, MAX_SNOOZE,
};
pub use job::{parse_job_id, validate_job_name, Attempt, Job, MAX_ATTEMPTS_KEPT, MAX_JOB_NAME_LEN};
pub use mongodb::bson::{oid::ObjectId, DateTime};
pub use mongodb::options::{Acknowledgment, ReadConcern, WriteConcern};
pub use new_job::{
    validate_group, BatchResult, EnqueueOptions, NewJob, MAX_DEPENDENCIES, MAX_GROUP_LEN,
};
pub use options::{JobRetention, MonqueOptions, RateLimit, WorkerOptions, MAX_PAYLOAD_CEILING};
pub use query::{
    CursorQuery, Direction, Instance, JobPage, JobQuery, JobSelector, NameSummary, QueueStats,
    SortField, SortOrder,
};
pub use runtime::notify::NotifyMode;
pub use runtime::progress::MAX_PROGRESS_SIZE;
pub use schedule::{
    default_schedule_key, parse_interval, CronSchedule, Repeat, ScheduleOptions, MIN_INTERVAL,
};
pub use status::JobStatus;
pub use store::GroupSummary;
pub use trace_context::{is_traceparent, TraceContext, MAX_TRACESTATE_LEN};
