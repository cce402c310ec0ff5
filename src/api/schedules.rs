//! Recurring jobs from the handle's side: `schedule` / `every` create or update one
//! schedule document per `(name, uniqueKey)` (store/schedules.rs keeps them); this
//! counts what was created and wakes the local worker for the next run.

use std::sync::Arc;

use tracing::Instrument;

use crate::error::Result;
use crate::job::Job;
use crate::runtime::doorbell::Doorbells;
use crate::runtime::metrics::Metrics;
use crate::runtime::run_span::{producer_span, trace_context_of};
use crate::schedule::{Repeat, ScheduleOptions};
use crate::store::{Store, Upserted};

pub(crate) struct Schedules {
    pub(crate) store: Arc<Store>,
    pub(crate) doorbells: Arc<Doorbells>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_payload_size: usize,
}

impl Schedules {
    /// Creates the schedule, or updates the one with the same `(name, uniqueKey)`.
    pub(crate) async fn upsert(
        &self,
        name: &str,
        data: serde_json::Value,
        repeat: Repeat,
        mut options: ScheduleOptions,
    ) -> Result<Job> {
        let span = producer_span("schedule", Some(name), 1);
        if options.trace_context.is_none() {
            options.trace_context = trace_context_of(&span);
        }
        let upsert = self
            .store
            .upsert_schedule(name, data, repeat, options, self.max_payload_size);
        let (job, upserted) = upsert.instrument(span.clone()).await?;
        span.record("messaging.message.id", job.id.to_hex());
        if upserted == Upserted::Created {
            self.metrics.enqueued(name, 1);
        }
        if upserted != Upserted::Unchanged {
            self.doorbells.ring_at(name, job.next_run_at);
        }
        Ok(job)
    }

    /// Stops a schedule. False if there was none.
    pub(crate) async fn remove(&self, name: &str, unique_key: Option<&str>) -> Result<bool> {
        self.store.remove_schedule(name, unique_key).await
    }

    /// Active schedules, soonest first; all names, or one.
    pub(crate) async fn list(&self, name: Option<&str>) -> Result<Vec<Job>> {
        self.store.list_schedules(name).await
    }
}
