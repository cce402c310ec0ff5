//! Adding jobs: one insert, or a lock-guarded insert when a `uniqueKey` asks for dedup
//! (unique.rs); batches take one round trip per kind. Everything is validated first.

use mongodb::bson::{self, doc, oid::ObjectId, DateTime, Document};

use std::sync::Arc;

use crate::client::Inner;
use crate::error::{Error, Result};
use crate::handoff::HandedOff;
use crate::job::{validate_data, validate_job_name, Job, JobStatus};

/// Options for one enqueue.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// At most one pending or processing job per `(name, unique_key)`: enqueueing again
    /// returns the existing job.
    pub unique_key: Option<String>,
    /// Do not run before this time. Default: now.
    pub run_at: Option<DateTime>,
    /// Higher runs first among due jobs of one name. Default 0.
    pub priority: i32,
    /// Longest one run of this job may take; overrides the worker's `timeout`.
    pub timeout: Option<std::time::Duration>,
    /// Jobs that must complete first: until then this job is `waiting`; if one of them
    /// fails, is cancelled or deleted, this one fails (flows.rs). At most 100; not with
    /// `unique_key`, not in batches.
    pub depends_on: Vec<ObjectId>,
}

/// One job in a batch for [`Monque::enqueue_many`](crate::Monque::enqueue_many).
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job name.
    pub name: String,
    /// The payload.
    pub data: serde_json::Value,
    /// Dedup key, run time and priority.
    pub options: EnqueueOptions,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// New jobs written.
    pub inserted: u64,
    /// Jobs not written because an active job with the same `(name, uniqueKey)` exists.
    pub deduplicated: u64,
}

/// Longest accepted uniqueKey, in bytes (it is part of an index key).
const MAX_UNIQUE_KEY_LEN: usize = 1024;

/// The length of `value`'s JSON encoding, counted without building the string.
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// `value` as BSON for a job field (data, result, progress), if it may be stored:
/// keys MongoDB would not read as operators ([`validate_data`]) and at most `limit`
/// bytes of JSON.
pub(crate) fn storable(value: &serde_json::Value, limit: usize) -> Result<bson::Bson> {
    validate_data(value)?;
    let size = json_len(value);
    if size > limit {
        return Err(Error::PayloadTooLarge { size, limit });
    }
    bson::to_bson(value).map_err(|e| Error::InvalidData(e.to_string()))
}

/// Validates one job and builds its document. Pure: no I/O.
pub(crate) fn build(inner: &Inner, job: &NewJob, now: DateTime) -> Result<Document> {
    validate_job_name(&job.name)?;
    let data = storable(&job.data, inner.opts.max_payload_size)?;
    if let Some(key) = &job.options.unique_key {
        if key.is_empty() || key.len() > MAX_UNIQUE_KEY_LEN {
            return Err(Error::option("unique_key", "must be 1-1024 bytes"));
        }
    }
    let mut doc = doc! {
        "_id": ObjectId::new(),
        "name": &job.name,
        "data": data,
        "status": JobStatus::Pending.as_str(),
        "priority": job.options.priority,
        "nextRunAt": job.options.run_at.unwrap_or(now),
        "failCount": 0,
        "createdAt": now,
        "updatedAt": now,
    };
    if let Some(key) = &job.options.unique_key {
        doc.insert("uniqueKey", key);
    }
    if let Some(timeout) = job.options.timeout {
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        if ms == 0 {
            return Err(Error::option("timeout", "must be at least 1 ms"));
        }
        doc.insert("timeoutMs", ms);
    }
    if !job.options.depends_on.is_empty() {
        crate::flows::check_dependency_options(&job.options)?;
        doc.insert("status", JobStatus::Waiting.as_str());
        doc.insert("dependsOn", &job.options.depends_on);
    }
    Ok(doc)
}

impl Inner {
    pub(crate) async fn enqueue_one(self: &Arc<Self>, job: NewJob) -> Result<Job> {
        let now = DateTime::now();
        let doc = build(self, &job, now)?;
        if !job.options.depends_on.is_empty() {
            return self.enqueue_waiting(doc, &job.options.depends_on).await;
        }
        let due_now = job.options.run_at.is_none_or(|at| at <= now);
        if job.options.unique_key.is_none() && due_now {
            if let Some(to) = self.hand_off_target(&job.name) {
                let handed = match self.insert_handed_off(doc.clone(), to).await? {
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
            let (job, created) = self.enqueue_unique(doc).await?;
            if created {
                self.metrics.enqueued(&job.name, 1);
            }
            job
        } else {
            self.coll
                .insert_one(&doc)
                .await
                .map_err(|e| self.db_err(e))?;
            self.metrics.enqueued(&job.name, 1);
            Job::from_document(doc)?
        };
        self.wake_at(&created.name, created.next_run_at);
        Ok(created)
    }

    pub(crate) async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<BatchResult> {
        let now = DateTime::now();
        let mut plain = Vec::new();
        let mut unique = Vec::new();
        for job in &jobs {
            if !job.options.depends_on.is_empty() {
                return Err(Error::option(
                    "depends_on",
                    "is not supported in batches; enqueue jobs with dependencies one at a time",
                ));
            }
            let doc = build(self, job, now)?;
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
            self.coll
                .insert_many(plain)
                .ordered(false)
                .await
                .map_err(|e| self.db_err(e))?;
        }
        if !unique.is_empty() {
            let (names, deduplicated) = self.enqueue_unique_batch(unique).await?;
            result.inserted += names.len() as u64;
            result.deduplicated += deduplicated;
            created.extend(names);
        }
        let mut per_name: std::collections::HashMap<&str, u64> = Default::default();
        for name in &created {
            *per_name.entry(name).or_default() += 1;
        }
        for (name, n) in per_name {
            self.metrics.enqueued(name, n);
        }
        for name in jobs
            .iter()
            .map(|j| j.name.as_str())
            .collect::<std::collections::HashSet<_>>()
        {
            self.wake(name);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_is_the_encoded_length() {
        for v in [
            serde_json::json!(null),
            serde_json::json!({ "a": [1, 2.5, "é\n\"x"], "b": { "c": true } }),
            serde_json::json!("x".repeat(5000)),
        ] {
            assert_eq!(json_len(&v), serde_json::to_vec(&v).unwrap().len());
        }
    }
}
