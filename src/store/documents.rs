//! The shapes every write shares: a new job's document, the fencing filters that tie a
//! write to one execution, and the lock fields a job drops when it leaves `processing`.

use mongodb::bson::{self, doc, oid::ObjectId, DateTime, Document};

use crate::error::{Error, Result};
use crate::job::validate_job_name;
use crate::new_job::{storable, NewJob, MAX_DEPENDENCIES};
use crate::status::JobStatus;

/// Longest accepted uniqueKey, in bytes (it is part of an index key).
const MAX_UNIQUE_KEY_LEN: usize = 1024;

/// Validates one job and builds its document. Pure: no I/O.
pub(crate) fn new_job_document(
    job: &NewJob,
    max_payload_size: usize,
    now: DateTime,
) -> Result<Document> {
    validate_job_name(&job.name)?;
    let data = storable(&job.data, max_payload_size)?;
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
    if let Some(group) = &job.options.group {
        crate::new_job::validate_group(group)?;
        doc.insert("group", group);
    }
    if let Some(trace) = &job.options.trace_context {
        if !trace.is_valid() {
            return Err(Error::option(
                "trace_context",
                "must be a W3C traceparent (and tracestate); build it with TraceContext::new",
            ));
        }
        let trace = bson::to_bson(trace).map_err(|e| Error::InvalidData(e.to_string()))?;
        doc.insert("traceContext", trace);
    }
    if let Some(timeout) = job.options.timeout {
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        if ms == 0 {
            return Err(Error::option("timeout", "must be at least 1 ms"));
        }
        doc.insert("timeoutMs", ms);
    }
    if !job.options.depends_on.is_empty() {
        if job.options.depends_on.len() > MAX_DEPENDENCIES {
            return Err(Error::option(
                "depends_on",
                format!("at most {MAX_DEPENDENCIES} jobs"),
            ));
        }
        if job.options.unique_key.is_some() {
            return Err(Error::option(
                "depends_on",
                "cannot be combined with a uniqueKey",
            ));
        }
        doc.insert("status", JobStatus::Waiting.as_str());
        doc.insert("dependsOn", &job.options.depends_on);
    }
    Ok(doc)
}

/// The fencing filter of the execution `(id, claim_id)`: that claim and nothing else.
pub(super) fn fenced_execution(id: ObjectId, claim_id: Option<ObjectId>) -> Document {
    doc! { "_id": id, "claimId": claim_id, "status": JobStatus::Processing.as_str() }
}

/// The fencing filter for several executions, given as `(job id, claim id)` pairs:
/// exactly those pairs. A batch claim shares its claim id, so ids are grouped by claim
/// (two flat `$in` lists would also match a job re-claimed under a batch-mate's id).
pub(super) fn fenced_many(executions: &[(ObjectId, ObjectId)]) -> Document {
    if executions.is_empty() {
        return doc! { "_id": { "$in": [] } }; // `$or` may not be empty
    }
    let mut by_claim: Vec<(ObjectId, Vec<ObjectId>)> = Vec::new();
    for &(id, claim) in executions {
        match by_claim.iter_mut().find(|(c, _)| *c == claim) {
            Some((_, ids)) => ids.push(id),
            None => by_claim.push((claim, vec![id])),
        }
    }
    let pairs: Vec<Document> = by_claim
        .into_iter()
        .map(|(claim, ids)| doc! { "claimId": claim, "_id": { "$in": ids } })
        .collect();
    doc! { "$or": pairs, "status": JobStatus::Processing.as_str() }
}

/// The update that puts a job back to `pending` with its claim dropped (shutdown
/// hand-back, expired leases, a batch claim that could not be read back).
pub(super) fn back_to_pending(now: DateTime) -> Document {
    doc! { "$set": { "status": JobStatus::Pending.as_str(), "updatedAt": now }, "$unset": unlock() }
}

/// The lock fields a job drops when it goes back to `pending`.
pub(super) fn unlock() -> Document {
    doc! { "claimId": "", "claimedBy": "", "lockedAt": "", "leaseExpiresAt": "", "groupSlot": "" }
}

/// The update that cancels a job (guarded by the caller's filter).
pub(super) fn cancel_update(now: DateTime) -> Document {
    doc! { "$set": { "status": JobStatus::Cancelled.as_str(), "updatedAt": now }, "$unset": { "groupSlot": "" } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_many_matches_each_pair_not_every_combination() {
        let (a, b, c) = (ObjectId::new(), ObjectId::new(), ObjectId::new());
        let (batch, single) = (ObjectId::new(), ObjectId::new());
        let filter = fenced_many(&[(a, batch), (b, batch), (c, single)]);
        let expected = doc! {
            "$or": [
                { "claimId": batch, "_id": { "$in": [a, b] } },
                { "claimId": single, "_id": { "$in": [c] } },
            ],
            "status": "processing",
        };
        assert_eq!(filter, expected);
        assert_eq!(fenced_many(&[]), doc! { "_id": { "$in": [] } });
    }
}
