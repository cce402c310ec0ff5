//! Adding jobs: one insert; a lock-guarded insert when a `uniqueKey` asks for dedup;
//! a `waiting` insert settled against its dependencies; or, for a job due now whose
//! local worker is idle, an insert already claimed by it (the hand-off). Batches take
//! one round trip per kind. Everything is validated before anything is written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tracing::Instrument;

use crate::error::{Error, Result};
use crate::job::Job;
use crate::new_job::{BatchResult, NewJob};
use crate::runtime::dependents::Dependents;
use crate::runtime::doorbell::Doorbells;
use crate::runtime::handoff::HandedOff;
use crate::runtime::metrics::Metrics;
use crate::runtime::run_span::{producer_span, trace_context_of};
use crate::runtime::supervisor::Supervisor;
use crate::store::{new_job_document, Settled, Store};

pub(crate) struct Enqueuer {
    pub(crate) store: Arc<Store>,
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) dependents: Arc<Dependents>,
    pub(crate) doorbells: Arc<Doorbells>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_payload_size: usize,
}

impl Enqueuer {
    /// Adds one job, traced as a producer span whose context the job carries
    /// (run_span.rs) unless it brings its own.
    pub(crate) async fn enqueue(&self, mut job: NewJob) -> Result<Job> {
        let span = producer_span("enqueue", Some(&job.name), 1);
        if job.options.trace_context.is_none() {
            job.options.trace_context = trace_context_of(&span);
        }
        let created = self.enqueue_one(job).instrument(span.clone()).await?;
        span.record("messaging.message.id", created.id.to_hex());
        Ok(created)
    }

    async fn enqueue_one(&self, job: NewJob) -> Result<Job> {
        let now = self.store.now();
        let doc = new_job_document(&job, self.max_payload_size, now)?;
        if !job.options.depends_on.is_empty() {
            let deps = self
                .store
                .insert_waiting(&doc, &job.options.depends_on)
                .await?;
            self.metrics.enqueued(&job.name, 1);
            let id = doc
                .get_object_id("_id")
                .expect("built jobs have an ObjectId");
            return match self.dependents.settle(id, &deps).await? {
                Settled::Pending(job) | Settled::Failed(job) => Ok(job),
                Settled::Blocked => Job::from_document(doc),
                Settled::Gone => match self.store.get_job(id).await? {
                    Some(job) => Ok(job),
                    None => Job::from_document(doc), // deleted by someone else meanwhile
                },
            };
        }
        let due_now = job.options.run_at.is_none_or(|at| at <= now);
        if job.options.group.is_some() {
            // Its worker here claims fairly from now on; a hand-off would skip its turn.
            self.supervisor.saw_group(&job.name);
        } else if job.options.unique_key.is_none() && due_now {
            if let Some(to) = self.supervisor.hand_off_target(&job.name) {
                let handed = match self.supervisor.hand_off(doc.clone(), to).await? {
                    HandedOff::Started(running) => Some(*running),
                    HandedOff::HandedBack => Some(Job::from_document(doc.clone())?),
                    HandedOff::NotTaken => None,
                };
                if let Some(handed) = handed {
                    self.metrics.enqueued(&handed.name, 1);
                    return Ok(handed);
                }
            }
        }
        let created = if job.options.unique_key.is_some() {
            let (job, created) = self.store.enqueue_unique(doc).await?;
            if created {
                self.metrics.enqueued(&job.name, 1);
            }
            job
        } else {
            self.store.insert(&doc).await?;
            self.metrics.enqueued(&job.name, 1);
            Job::from_document(doc)?
        };
        if created.group.is_some() {
            self.doorbells
                .ring_group_at(&created.name, created.next_run_at);
        } else {
            self.doorbells.ring_at(&created.name, created.next_run_at);
        }
        Ok(created)
    }

    /// Adds a batch, traced as one producer span whose context every job carries
    /// unless it brings its own.
    pub(crate) async fn enqueue_many(&self, mut jobs: Vec<NewJob>) -> Result<BatchResult> {
        let first = jobs.first().map(|j| j.name.clone());
        let one_name = first.filter(|n| jobs.iter().all(|j| &j.name == n));
        let span = producer_span("enqueue", one_name.as_deref(), jobs.len());
        if let Some(context) = trace_context_of(&span) {
            for job in jobs
                .iter_mut()
                .filter(|j| j.options.trace_context.is_none())
            {
                job.options.trace_context = Some(context.clone());
            }
        }
        self.enqueue_batch(jobs).instrument(span).await
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<BatchResult> {
        let now = self.store.now();
        let mut plain = Vec::new();
        let mut unique = Vec::new();
        for job in &jobs {
            if !job.options.depends_on.is_empty() {
                return Err(Error::option(
                    "depends_on",
                    "is not supported in batches; enqueue jobs with dependencies one at a time",
                ));
            }
            let doc = new_job_document(job, self.max_payload_size, now)?;
            if job.options.unique_key.is_some() {
                unique.push(doc);
            } else {
                plain.push(doc);
            }
        }
        let mut result = BatchResult::default();
        let mut created: Vec<String> = Vec::new();
        if !plain.is_empty() {
            result.inserted += plain.len() as u64;
            created.extend(
                plain
                    .iter()
                    .map(|d| d.get_str("name").unwrap_or_default().to_owned()),
            );
            self.store.insert_many(plain).await?;
        }
        if !unique.is_empty() {
            let (names, deduplicated) = self.store.enqueue_unique_batch(unique).await?;
            result.inserted += names.len() as u64;
            result.deduplicated += deduplicated;
            created.extend(names);
        }
        let mut per_name: HashMap<&str, u64> = HashMap::new();
        for name in &created {
            *per_name.entry(name).or_default() += 1;
        }
        for (name, n) in per_name {
            self.metrics.enqueued(name, n);
        }
        let (grouped, ungrouped): (HashSet<&str>, HashSet<&str>) = (
            names_where(&jobs, |j| j.options.group.is_some()),
            names_where(&jobs, |j| j.options.group.is_none()),
        );
        for name in &grouped {
            self.supervisor.saw_group(name);
        }
        for name in grouped.union(&ungrouped) {
            if ungrouped.contains(name) {
                self.doorbells.ring(name);
            } else {
                self.doorbells.ring_for_group(name);
            }
        }
        Ok(result)
    }
}

/// The names of the jobs `pick` selects, each once.
fn names_where(jobs: &[NewJob], pick: impl Fn(&NewJob) -> bool) -> HashSet<&str> {
    jobs.iter()
        .filter(|j| pick(j))
        .map(|j| j.name.as_str())
        .collect()
}
