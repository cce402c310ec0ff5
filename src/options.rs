//! Every option with its default, validated in one place before anything connects or writes.

use std::time::Duration;

use mongodb::options::{Acknowledgment, ReadConcern, WriteConcern};

use crate::backoff::Backoff;
use crate::error::{Error, Result};

/// The largest document MongoDB stores is 16 MiB; the payload must leave room for the
/// job's own fields.
pub const MAX_PAYLOAD_CEILING: usize = 16 * 1024 * 1024 - 16 * 1024;

/// Options for a [`Monque`](crate::Monque) instance. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct MonqueOptions {
    /// Collection that holds the jobs. Default `monque_jobs`.
    pub collection_name: String,
    /// Database name when the connection string names none. Default `monque`.
    pub database: Option<String>,
    /// How often idle workers look for due jobs when no wake-up arrives. Default 1 s.
    pub poll_interval: Duration,
    /// Default number of jobs of one name this instance runs at once. Default 5.
    pub worker_concurrency: usize,
    /// Cap on jobs of all names this instance runs at once. Default: no cap.
    pub instance_concurrency: Option<usize>,
    /// Most jobs one claim takes when a worker has several free slots. Default 32;
    /// 1 claims one job per round trip.
    pub claim_batch: usize,
    /// Retries after the first attempt before a job is `failed`. Default 10.
    pub max_retries: u32,
    /// How often a job may be recovered from an expired lease (its worker died or hung
    /// in its run) before each further stall counts as a failed attempt, through the
    /// normal retry / `failed` path. Default 1: a job that crashes its process on every
    /// run (a poison job) ends `failed` instead of looping forever.
    pub max_stalls: u32,
    /// Delay before each retry. Default `2^failCount × 60 s`, capped at 24 h, +0–10 % jitter.
    pub backoff: Backoff,
    /// How long a claim is valid without a heartbeat. Default 30 s.
    pub lease_duration: Duration,
    /// How often running jobs' leases are renewed and expired leases recovered. Default 10 s.
    pub heartbeat_interval: Duration,
    /// How long `stop()` waits for running handlers before handing their jobs back. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Largest job data accepted, measured as its JSON encoding in bytes. Default 1 MiB.
    pub max_payload_size: usize,
    /// Largest handler result stored on the job, as JSON bytes. Default 64 KiB; a larger
    /// one is not stored (reported as `RESULT_NOT_STORED`) and the job still completes.
    pub max_result_size: usize,
    /// How long to wait for a reachable server before an operation fails. Default 10 s.
    pub server_selection_timeout: Duration,
    /// Acknowledgment the queue's writes wait for (enqueues, claims, completions, every
    /// state change). Default `w: majority`: an acknowledged enqueue or completion
    /// survives a primary failover on a replica set. `w: 1` is faster on a replica set
    /// but a write acknowledged by a primary that fails before replicating it is rolled
    /// back: a job may vanish or run twice. `w: 0` is refused. `None` leaves it to the
    /// connection string and the server's default.
    pub write_concern: Option<WriteConcern>,
    /// Read concern of the queue's reads. Default `None`: the server's (`local`).
    /// `majority` reads only what a failover cannot roll back (listings, stats; writes
    /// are guarded by their own filters either way), at some latency on a replica set.
    pub read_concern: Option<ReadConcern>,
    /// Watch the collection with a change stream to wake workers at once. Default true;
    /// falls back to polling when the server cannot open one.
    pub change_streams: bool,
    /// Identifies this instance in `claimedBy`. Default `<host>:<pid>:<random>`.
    pub instance_id: Option<String>,
    /// How long finished jobs are kept before the retention sweep deletes them.
    pub job_retention: JobRetention,
    /// How often a started instance sweeps for jobs past their retention. Default 60 s.
    pub retention_interval: Duration,
    /// Leave index creation to you (`initialize()` then creates none). Default false.
    pub skip_index_creation: bool,
}

/// How long jobs are kept once they end, per final status; `None` keeps them forever.
/// Counted from the job's last change (`updatedAt`), which for these statuses is when
/// it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobRetention {
    /// `completed` jobs.
    pub completed: Option<Duration>,
    /// `failed` jobs (the dead-letter set).
    pub failed: Option<Duration>,
    /// `cancelled` jobs.
    pub cancelled: Option<Duration>,
}

impl JobRetention {
    /// True when any status has a retention.
    pub fn is_set(&self) -> bool {
        self.completed.is_some() || self.failed.is_some() || self.cancelled.is_some()
    }
}

impl Default for MonqueOptions {
    fn default() -> Self {
        MonqueOptions {
            collection_name: "monque_jobs".into(),
            database: None,
            poll_interval: Duration::from_secs(1),
            worker_concurrency: 5,
            instance_concurrency: None,
            claim_batch: 32,
            max_retries: 10,
            max_stalls: 1,
            backoff: Backoff::default(),
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            max_payload_size: 1024 * 1024,
            max_result_size: 64 * 1024,
            server_selection_timeout: Duration::from_secs(10),
            write_concern: Some(WriteConcern::majority()),
            read_concern: None,
            change_streams: true,
            instance_id: None,
            job_retention: JobRetention::default(),
            retention_interval: Duration::from_secs(60),
            skip_index_creation: false,
        }
    }
}

impl MonqueOptions {
    /// Checks every option; the first problem found is returned as `INVALID_OPTION`.
    pub fn validate(&self) -> Result<()> {
        let name = &self.collection_name;
        if name.is_empty() || name.len() > 200 || name.contains('$') || name.contains('\0') {
            return Err(Error::option(
                "collection_name",
                "must be 1-200 characters without `$` or NUL",
            ));
        }
        if name.starts_with("system.") {
            return Err(Error::option(
                "collection_name",
                "`system.` names are reserved",
            ));
        }
        positive("poll_interval", self.poll_interval)?;
        positive("lease_duration", self.lease_duration)?;
        positive("heartbeat_interval", self.heartbeat_interval)?;
        positive("server_selection_timeout", self.server_selection_timeout)?;
        if let Some(wc) = &self.write_concern {
            if matches!(wc.w, Some(Acknowledgment::Nodes(0))) {
                return Err(Error::option(
                    "write_concern",
                    "w: 0 is refused: the queue must know its writes landed (fencing, dedup)",
                ));
            }
        }
        if self.heartbeat_interval >= self.lease_duration {
            return Err(Error::option(
                "heartbeat_interval",
                format!(
                    "must be shorter than lease_duration ({:?}) so leases are renewed before they expire",
                    self.lease_duration
                ),
            ));
        }
        at_least_one("worker_concurrency", self.worker_concurrency)?;
        if let Some(n) = self.instance_concurrency {
            at_least_one("instance_concurrency", n)?;
        }
        at_least_one("claim_batch", self.claim_batch)?;
        if self.max_payload_size == 0 || self.max_payload_size > MAX_PAYLOAD_CEILING {
            return Err(Error::option(
                "max_payload_size",
                format!("must be between 1 and {MAX_PAYLOAD_CEILING} bytes"),
            ));
        }
        if self.max_result_size > MAX_PAYLOAD_CEILING {
            return Err(Error::option(
                "max_result_size",
                format!("must be at most {MAX_PAYLOAD_CEILING} bytes"),
            ));
        }
        positive("retention_interval", self.retention_interval)?;
        for (name, value) in [
            ("job_retention.completed", self.job_retention.completed),
            ("job_retention.failed", self.job_retention.failed),
            ("job_retention.cancelled", self.job_retention.cancelled),
        ] {
            if let Some(d) = value {
                positive(name, d)?;
            }
        }
        if self.instance_id.as_deref().is_some_and(str::is_empty) {
            return Err(Error::option("instance_id", "must not be empty"));
        }
        self.backoff.validate()
    }
}

/// Per-worker options given to [`Monque::register`](crate::Monque::register).
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Jobs of this name run at once on this instance. Default: `worker_concurrency`.
    pub concurrency: Option<usize>,
    /// Overrides the instance's `max_retries` for this job name.
    pub max_retries: Option<u32>,
    /// Swap out an already registered worker instead of failing with `WORKER_EXISTS`.
    pub replace: bool,
    /// Longest a run may take; past it the job's signal aborts, `JOB_TIMEOUT` is
    /// reported and the run counts as a failure (retried with backoff). Default: none.
    pub timeout: Option<Duration>,
    /// At most `max` jobs of this name start per `duration`, counted across every
    /// instance (store/rate_limits.rs). Default: none.
    pub limiter: Option<RateLimit>,
    /// At most this many jobs of one group (`EnqueueOptions::group`) run at once,
    /// counted across every instance (store/groups.rs). Give every worker of a name the
    /// same value. Default: no cap.
    pub group_concurrency: Option<u32>,
    /// At most `max` jobs of one group start per `duration`, counted across every
    /// instance. Default: none.
    pub group_limiter: Option<RateLimit>,
}

impl WorkerOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(n) = self.group_concurrency {
            at_least_one("groupConcurrency", n as usize)?;
        }
        if let Some(limit) = &self.group_limiter {
            limit.validate()?;
        }
        if let Some(n) = self.concurrency {
            at_least_one("concurrency", n)?;
        }
        if let Some(t) = self.timeout {
            positive("timeout", t)?;
        }
        if let Some(limit) = &self.limiter {
            limit.validate()?;
        }
        Ok(())
    }
}

/// At most `max` jobs of one name start per `duration`, across all instances (a fixed
/// window, as BullMQ's limiter). Instances' clocks should agree to well within
/// `duration`: each compares the window start with its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Jobs that may start in one window.
    pub max: u32,
    /// Length of a window.
    pub duration: Duration,
}

impl RateLimit {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max == 0 {
            return Err(Error::option("limiter.max", "must be at least 1"));
        }
        if self.duration < Duration::from_millis(1) {
            return Err(Error::option("limiter.duration", "must be at least 1 ms"));
        }
        Ok(())
    }
}

fn positive(name: &'static str, value: Duration) -> Result<()> {
    if value.is_zero() {
        return Err(Error::option(name, "must be greater than zero"));
    }
    Ok(())
}

fn at_least_one(name: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::option(name, "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        MonqueOptions::default().validate().unwrap();
    }

    #[test]
    fn heartbeat_must_be_shorter_than_lease() {
        let opts = MonqueOptions {
            heartbeat_interval: Duration::from_secs(30),
            ..Default::default()
        };
        assert_eq!(opts.validate().unwrap_err().code(), "INVALID_OPTION");
    }

    #[test]
    fn zero_concurrency_and_bad_collection_names_are_refused() {
        for opts in [
            MonqueOptions {
                worker_concurrency: 0,
                ..Default::default()
            },
            MonqueOptions {
                instance_concurrency: Some(0),
                ..Default::default()
            },
            MonqueOptions {
                claim_batch: 0,
                ..Default::default()
            },
            MonqueOptions {
                collection_name: "".into(),
                ..Default::default()
            },
            MonqueOptions {
                collection_name: "a$b".into(),
                ..Default::default()
            },
            MonqueOptions {
                collection_name: "system.jobs".into(),
                ..Default::default()
            },
            MonqueOptions {
                max_payload_size: 0,
                ..Default::default()
            },
            MonqueOptions {
                poll_interval: Duration::ZERO,
                ..Default::default()
            },
        ] {
            let err = opts.validate().unwrap_err();
            assert_eq!(err.code(), "INVALID_OPTION", "{opts:?}");
        }
    }
}
