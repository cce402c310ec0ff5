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
//! Where things live: `claim.rs` claims a job, `executor.rs` runs it, `completer.rs`
//! writes its outcome, `backoff.rs` computes retry delays, `schedule.rs` computes when
//! recurring jobs run next and `recurring.rs` keeps one document per schedule,
//! `lease.rs` renews and recovers leases, `notify.rs` wakes idle workers,
//! `shutdown.rs` stops gracefully.

#![warn(missing_docs)]

mod backoff;
mod claim;
mod client;
mod completer;
mod enqueue;
mod error;
mod events;
mod executor;
mod flows;
mod handler;
mod handoff;
mod indexes;
mod job;
mod lease;
mod management;
mod metrics;
mod notify;
mod options;
mod pause;
mod progress;
mod rate_limit;
mod recurring;
mod retention;
mod schedule;
mod shutdown;
mod unique;
mod worker;

#[cfg(feature = "node")]
mod node;

pub use backoff::Backoff;
pub use client::Monque;
pub use enqueue::{BatchResult, EnqueueOptions, NewJob};
pub use error::{Error, Result};
pub use events::Event;
pub use flows::MAX_DEPENDENCIES;
pub use handler::{
    AbortReason, AbortSignal, Handler, HandlerError, JobContext, Outcome, MAX_SNOOZE,
};
pub use job::{parse_job_id, validate_job_name, Job, JobStatus, MAX_JOB_NAME_LEN};
pub use management::{
    CursorQuery, Direction, JobPage, JobQuery, JobSelector, QueueStats, SortOrder,
};
pub use mongodb::bson::{oid::ObjectId, DateTime};
pub use notify::NotifyMode;
pub use options::{JobRetention, MonqueOptions, WorkerOptions, MAX_PAYLOAD_CEILING};
pub use progress::MAX_PROGRESS_SIZE;
pub use rate_limit::RateLimit;
pub use recurring::{default_schedule_key, ScheduleOptions};
pub use schedule::{parse_interval, CronSchedule, Repeat, MIN_INTERVAL};
