//! The job document as stored in MongoDB, its statuses, and the JSON view handed to
//! handlers and to Node.

use mongodb::bson::{self, oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Repeat;
use crate::status::JobStatus;
use crate::trace_context::TraceContext;

/// A job document. Field names in MongoDB are the camelCase forms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job id (`_id`).
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The job name: which worker runs it.
    pub name: String,
    /// The payload, as JSON (`null` in listings asked to leave payloads out).
    #[serde(default)]
    pub data: serde_json::Value,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Higher runs first among due jobs of one name.
    #[serde(default)]
    pub priority: i32,
    /// Not claimed before this time.
    pub next_run_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the current or last attempt started.
    pub locked_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// While `processing`: when the lease runs out unless renewed.
    pub lease_expires_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The instance that runs (or last ran) the job.
    pub claimed_by: Option<String>,
    /// Fencing token: new for every claim; every write of that execution matches on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<ObjectId>,
    #[serde(default)]
    /// Failed attempts so far.
    pub fail_count: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    /// Times the job was recovered from an expired lease (its worker died or hung).
    pub stall_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The last failure's message.
    pub fail_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Where the last failure came from: the last lines of its stack (≤ 8 KiB).
    pub fail_stack: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// The last runs, oldest first (at most [`MAX_ATTEMPTS_KEPT`]).
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The dedup key, if the job was enqueued with one.
    pub unique_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// How a recurring job repeats (see [`Monque::schedule`](crate::Monque::schedule)).
    pub repeat: Option<Repeat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Recurring jobs: the occurrence the next or current run stands for. Retries keep
    /// it, so the schedule's phase survives a failure.
    pub occurrence_at: Option<DateTime>,
    /// When the job was enqueued.
    pub created_at: DateTime,
    /// When the document last changed.
    pub updated_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the job completed.
    pub completed_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// How long the last successful run took, from start to finish, in milliseconds.
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Longest one run may take, in ms, when enqueued with a `timeout`.
    pub timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The last progress its handler reported (see `JobContext::update_progress`).
    pub progress: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What the last successful run returned, if anything (at most `max_result_size`).
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// The jobs that must complete before this one runs (store/flows.rs).
    pub depends_on: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    /// Set once a job was enqueued depending on this one: how it ends then settles
    /// those jobs (store/flows.rs).
    pub has_dependents: bool,
    /// The trace context of the code that enqueued or scheduled it: its runs continue
    /// that trace (trace_context.rs).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_trace_context"
    )]
    pub trace_context: Option<TraceContext>,
    /// The group it belongs to, if any (fair claims across groups, store/groups.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// While this execution holds one of its group's `groupConcurrency` slots: the group
    /// it was taken from. Whoever ends the execution gives it back there
    /// (store/groups.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_slot: Option<String>,
}

/// A `traceContext` this build cannot read is dropped, not a reason to fail the job.
fn lenient_trace_context<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<TraceContext>, D::Error> {
    let stored = Option::<bson::Bson>::deserialize(d)?;
    Ok(stored.and_then(|b| bson::from_bson(b).ok()))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many finished runs a job keeps in its `attempts` history.
pub const MAX_ATTEMPTS_KEPT: usize = 10;

/// One finished run of a job, as kept in its `attempts` history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// When it started.
    pub started_at: DateTime,
    /// How long it ran, in ms.
    pub duration_ms: i64,
    /// `completed`, `failed`, `snoozed` or `stalled` (its worker died or hung).
    pub outcome: String,
    /// Why a failed run failed (at most 1 KiB of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The instance that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The W3C traceparent of the run's span, when the run was traced: the next
    /// attempt links to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Attempt {
    fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "startedAt": self.started_at.timestamp_millis(),
            "durationMs": self.duration_ms,
            "outcome": self.outcome,
        });
        if let Some(error) = &self.error {
            v["error"] = error.clone().into();
        }
        if let Some(instance) = &self.instance {
            v["instance"] = instance.clone().into();
        }
        if let Some(traceparent) = &self.traceparent {
            v["traceparent"] = traceparent.clone().into();
        }
        v
    }
}

impl Job {
    /// The traceparent of the previous attempt's span, if that run was traced and did not
    /// succeed (a schedule's last run is an earlier occurrence, not an earlier attempt).
    pub fn previous_attempt_span(&self) -> Option<&str> {
        self.attempts
            .last()
            .filter(|a| a.outcome != "completed")
            .and_then(|a| a.traceparent.as_deref())
    }

    pub(crate) fn from_document(doc: Document) -> Result<Job> {
        bson::from_document(doc)
            .map_err(|e| Error::InvalidData(format!("unreadable job document: {e}")))
    }

    /// Decodes `data` into your own type.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_value(self.data.clone())
    }

    /// The JSON view used by the Node binding: ids as hex strings, times as epoch ms.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let ms = |d: &DateTime| d.timestamp_millis();
        let mut v = json!({
            "id": self.id.to_hex(),
            "name": self.name,
            "data": self.data,
            "status": self.status,
            "priority": self.priority,
            "nextRunAt": ms(&self.next_run_at),
            "failCount": self.fail_count,
            "createdAt": ms(&self.created_at),
            "updatedAt": ms(&self.updated_at),
        });
        let o = v.as_object_mut().expect("object literal");
        let mut put = |k: &str, val: Option<serde_json::Value>| {
            if let Some(val) = val {
                o.insert(k.into(), val);
            }
        };
        put("lockedAt", self.locked_at.as_ref().map(|d| ms(d).into()));
        put(
            "leaseExpiresAt",
            self.lease_expires_at.as_ref().map(|d| ms(d).into()),
        );
        put("claimedBy", self.claimed_by.clone().map(Into::into));
        put("claimId", self.claim_id.map(|c| c.to_hex().into()));
        put("failReason", self.fail_reason.clone().map(Into::into));
        put(
            "stallCount",
            (self.stall_count > 0).then(|| self.stall_count.into()),
        );
        put("failStack", self.fail_stack.clone().map(Into::into));
        if !self.attempts.is_empty() {
            let attempts = self.attempts.iter().map(Attempt::to_json);
            put(
                "attempts",
                Some(serde_json::Value::Array(attempts.collect())),
            );
        }
        put("uniqueKey", self.unique_key.clone().map(Into::into));
        put(
            "repeat",
            self.repeat
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok()),
        );
        put("durationMs", self.duration_ms.map(Into::into));
        put("result", self.result.clone());
        put("progress", self.progress.clone());
        put("timeoutMs", self.timeout_ms.map(Into::into));
        put("group", self.group.clone().map(Into::into));
        put(
            "traceContext",
            self.trace_context
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
        );
        if !self.depends_on.is_empty() {
            let ids = self.depends_on.iter().map(|id| id.to_hex().into());
            put("dependsOn", Some(serde_json::Value::Array(ids.collect())));
        }
        put(
            "occurrenceAt",
            self.occurrence_at.as_ref().map(|d| ms(d).into()),
        );
        put(
            "completedAt",
            self.completed_at.as_ref().map(|d| ms(d).into()),
        );
        v
    }
}

/// Parses a job id given as a 24-character hex string.
pub fn parse_job_id(id: &str) -> Result<ObjectId> {
    ObjectId::parse_str(id).map_err(|_| Error::InvalidJobId(id.to_owned()))
}

/// Longest job name accepted, in bytes.
pub const MAX_JOB_NAME_LEN: usize = 255;

/// Job names are non-empty, at most 255 bytes, and free of control characters (they
/// show up in logs, metrics labels and dashboards).
pub fn validate_job_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_JOB_NAME_LEN {
        "must be at most 255 bytes"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else if name.trim() != name {
        "must not start or end with whitespace"
    } else {
        return Ok(());
    };
    Err(Error::InvalidJobName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

/// Job data keys must not start with `$` or contain `.`: MongoDB would read the first
/// as an operator inside update documents and cannot address the second in queries.
/// Refusing them keeps every stored payload round-trippable.
pub fn validate_data(data: &serde_json::Value) -> Result<()> {
    fn walk(v: &serde_json::Value, path: &mut Vec<String>) -> Result<()> {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    if k.starts_with('$') || k.contains('.') || k.contains('\0') {
                        let at = if path.is_empty() {
                            "the top level".to_owned()
                        } else {
                            path.join(".")
                        };
                        return Err(Error::InvalidData(format!(
                            "key {k:?} at {at}: keys must not start with `$` or contain `.` or NUL"
                        )));
                    }
                    path.push(k.clone());
                    walk(child, path)?;
                    path.pop();
                }
                Ok(())
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(child, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(data, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unreadable_trace_context_is_dropped_not_fatal() {
        let now = DateTime::now();
        let doc = bson::doc! {
            "_id": ObjectId::new(), "name": "x", "data": {}, "status": "pending",
            "priority": 0, "nextRunAt": now, "failCount": 0, "createdAt": now, "updatedAt": now,
            "traceContext": { "tracestate": 42 },
        };
        let job = Job::from_document(doc).expect("the job is still readable");
        assert_eq!(job.trace_context, None);
    }

    #[test]
    fn job_names() {
        assert!(validate_job_name("send-email").is_ok());
        assert!(validate_job_name("reports:daily/europe").is_ok());
        for bad in ["", " x", "x ", "a\nb", "a\u{0}b", &"x".repeat(256)] {
            assert_eq!(
                validate_job_name(bad).unwrap_err().code(),
                "INVALID_JOB_NAME",
                "{bad:?}"
            );
        }
        assert!(validate_job_name(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn operator_and_dotted_keys_are_refused_anywhere() {
        assert!(validate_data(&json!({"a": [1, {"b": "$not-a-key"}]})).is_ok());
        for bad in [
            json!({"$set": 1}),
            json!({"a": {"b.c": 1}}),
            json!([{"x": {"$gt": 1}}]),
        ] {
            assert_eq!(
                validate_data(&bad).unwrap_err().code(),
                "INVALID_DATA",
                "{bad}"
            );
        }
    }

    #[test]
    fn job_ids() {
        assert!(parse_job_id("65f0c0ffee0123456789abcd").is_ok());
        for bad in [
            "",
            "xyz",
            "65f0c0ffee0123456789abc",
            "65f0c0ffee0123456789abcg",
        ] {
            assert_eq!(parse_job_id(bad).unwrap_err().code(), "INVALID_JOB_ID");
        }
    }
}
