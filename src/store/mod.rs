//! The storage layer: every MongoDB read and write of the queue, as methods of [`Store`].
//!
//! It knows documents, filters and guarded updates, and nothing of workers, events or
//! the public handle: it imports only the shared vocabulary (job, error, options,
//! query, schedule) and returns plain values. Whoever calls it decides what to emit or
//! wake. Every state change is one update guarded by what it expects (status, claim).
//!
//! | file | what it reads and writes |
//! |---|---|
//! | `documents.rs` | a new job's document; fencing filters and the lock fields |
//! | `inserts.rs` | plain inserts of new jobs |
//! | `indexes.rs` | the indexes `initialize()` creates |
//! | `clock.rs` | the server's time, as measured from here |
//! | `claim.rs` | claims: one `findOneAndUpdate`, or a batch; hand-off inserts |
//! | `changes.rs` | the change stream idle workers wake on |
//! | `outcome.rs` | the end of a run: completed, retry, failed, snoozed (fenced) |
//! | `batched_updates.rs` | run ends that are ready together, sent as one `bulkWrite` |
//! | `executions.rs` | running executions: lease renewal and recovery, hand-back, progress |
//! | `unique.rs` | uniqueKey locks |
//! | `flows.rs` | waiting jobs and their dependencies |
//! | `groups.rs` | groups of a name: when each has due work, how many run (fair claims) |
//! | `schedules.rs` | recurring jobs: one document per schedule |
//! | `pauses.rs` | paused names |
//! | `instances.rs` | live instances, what they handle, orphaned jobs |
//! | `rate_limits.rs` | rate-limit windows |
//! | `queries.rs` | listings, pages, counts |
//! | `transitions.rs` | operators' state changes: cancel, retry, reschedule, delete, retention |

mod batched_updates;
mod changes;
mod claim;
mod clock;
mod documents;
mod executions;
mod flows;
mod groups;
mod indexes;
mod inserts;
mod instances;
mod outcome;
mod pauses;
mod queries;
mod rate_limits;
mod schedules;
mod transitions;
mod unique;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, DateTime, Document};
use mongodb::options::{CollectionOptions, ReadConcern, WriteConcern};
use mongodb::{Collection, Database};

use crate::error::{Error, Result};

pub(crate) use changes::Change;
pub(crate) use claim::Claimed;
pub(crate) use clock::Clock;
pub(crate) use documents::new_job_document;
pub(crate) use flows::Settled;
pub(crate) use groups::GroupLimits;
pub use groups::GroupSummary;
pub(crate) use instances::Orphans;
pub(crate) use outcome::{Completion, Failure};
pub(crate) use pauses::Paused;
pub(crate) use queries::Depth;
pub(crate) use rate_limits::Permits;
pub(crate) use schedules::Upserted;
pub(crate) use transitions::Retried;

/// The write and read concerns every collection handle carries (options.rs says what
/// each risks).
#[derive(Debug, Clone, Default)]
pub(crate) struct Durability {
    pub(crate) write_concern: Option<WriteConcern>,
    pub(crate) read_concern: Option<ReadConcern>,
}

/// The queue's collections and what their queries need. Shared by every service.
pub(crate) struct Store {
    db: Database,
    /// The jobs.
    coll: Collection<Document>,
    /// Fenced run ends on the jobs, grouped into `bulkWrite`s (batched_updates.rs).
    run_ends: Arc<batched_updates::BatchedUpdates>,
    /// uniqueKey locks, `<collection>_unique` (unique.rs).
    locks: Collection<Document>,
    /// Pauses, `<collection>_paused` (pauses.rs).
    pauses: Collection<Document>,
    /// Rate-limit windows, `<collection>_rate_limits` (rate_limits.rs).
    rate_limits: Collection<Document>,
    /// Live instances and what they handle, `<collection>_instances` (instances.rs).
    instances: Collection<Document>,
    /// Groups with their due time and running count, `<collection>_groups` (groups.rs).
    groups: Collection<Document>,
    /// Claims name the claim index as a hint once `ensure_indexes` created it here,
    /// until the server says it is gone (claim.rs).
    hint_claims: AtomicBool,
    /// The grouped claim index exists (created at this process's first fair claim).
    group_index_ready: AtomicBool,
    /// This instance's `claimedBy`.
    instance_id: String,
    /// The server's time, as measured from here (clock.rs).
    clock: Arc<Clock>,
    /// How long a claim or a renewal holds a job.
    lease_duration: Duration,
    /// Named in connection errors.
    server_selection_timeout: Duration,
}

impl Store {
    pub(crate) fn new(
        db: Database,
        collection: &str,
        instance_id: String,
        lease_duration: Duration,
        server_selection_timeout: Duration,
        durability: Durability,
    ) -> Store {
        let open = |name: String| {
            let options = CollectionOptions::builder()
                .write_concern(durability.write_concern.clone())
                .read_concern(durability.read_concern.clone())
                .build();
            db.collection_with_options(&name, options)
        };
        let coll = open(collection.to_owned());
        Store {
            run_ends: Arc::new(batched_updates::BatchedUpdates::new(
                coll.clone(),
                durability.write_concern.clone(),
            )),
            coll,
            locks: open(format!("{collection}_unique")),
            pauses: open(format!("{collection}_paused")),
            rate_limits: open(format!("{collection}_rate_limits")),
            instances: open(format!("{collection}_instances")),
            groups: open(format!("{collection}_groups")),
            clock: Arc::default(),
            db,
            hint_claims: AtomicBool::new(false),
            group_index_ready: AtomicBool::new(false),
            instance_id,
            lease_duration,
            server_selection_timeout,
        }
    }

    /// The jobs collection.
    pub(crate) fn jobs(&self) -> &Collection<Document> {
        &self.coll
    }

    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    pub(crate) fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// The server's time, as well as it is known here.
    pub(crate) fn now(&self) -> DateTime {
        self.clock.now()
    }

    /// The server's time `span` ago: where "older than" filters start.
    pub(crate) fn ago(&self, span: Duration) -> DateTime {
        DateTime::from_millis(
            self.now()
                .timestamp_millis()
                .saturating_sub(span.as_millis() as i64),
        )
    }

    pub(crate) fn clock(&self) -> Arc<Clock> {
        self.clock.clone()
    }

    /// Measures this machine's clock against the server's (`hello`'s `localTime`).
    pub(crate) async fn sync_clock(&self) -> Result<()> {
        let sent = self.clock.local_now();
        let hello = self
            .db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        let received = self.clock.local_now();
        if let Ok(server) = hello.get_datetime("localTime") {
            self.clock.observe(sent, *server, received);
        }
        Ok(())
    }

    /// Creates the indexes and, from then on, hints claims with the claim index.
    pub(crate) async fn ensure_indexes(&self) -> Result<()> {
        indexes::ensure(&self.coll, &self.groups)
            .await
            .map_err(|e| self.db_err(e))?;
        self.hint_claims.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Creates the grouped claim index once per process, if this process manages the
    /// indexes (`initialize()` without `skipIndexCreation`). Until it exists, grouped
    /// claims are not hinted.
    pub(crate) async fn ensure_group_index(&self) -> Result<()> {
        if self.group_index_ready.load(Ordering::Relaxed)
            || !self.hint_claims.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        indexes::ensure_group_claim(&self.coll)
            .await
            .map_err(|e| self.db_err(e))?;
        self.group_index_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn db_err(&self, err: mongodb::error::Error) -> Error {
        Error::from_driver(err, self.server_selection_timeout)
    }

    /// When a lease taken or renewed at `now` expires.
    fn lease_until(&self, now: DateTime) -> DateTime {
        DateTime::from_millis(now.timestamp_millis() + self.lease_duration.as_millis() as i64)
    }
}
