//! What an enqueue asks for: a job's name, data and options, before it is a document;
//! and the check every stored JSON value passes (data, result, progress).

use mongodb::bson::{self, oid::ObjectId, DateTime};

use crate::error::{Error, Result};
use crate::job::validate_data;
use crate::trace_context::TraceContext;

/// Most dependencies one job may have.
pub const MAX_DEPENDENCIES: usize = 100;

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
    /// fails, is cancelled or deleted, this one fails (store/flows.rs). At most 100;
    /// not with `unique_key`, not in batches.
    pub depends_on: Vec<ObjectId>,
    /// The trace its runs continue (W3C context). With the `opentelemetry` feature,
    /// `None` takes the current span's.
    pub trace_context: Option<TraceContext>,
    /// The group (a tenant, say) the job belongs to: jobs of one name are claimed
    /// round-robin across groups with due work (store/groups.rs). At most 256 bytes.
    pub group: Option<String>,
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

/// Longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 256;

/// Group names are 1-256 bytes without control characters (they show up in stats and
/// dashboards). `INVALID_OPTION` otherwise.
pub fn validate_group(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > MAX_GROUP_LEN || group.chars().any(char::is_control) {
        return Err(Error::option(
            "group",
            format!("must be 1-{MAX_GROUP_LEN} bytes without control characters"),
        ));
    }
    Ok(())
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
