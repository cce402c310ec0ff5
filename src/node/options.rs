//! JSON options from the TypeScript wrapper (camelCase, durations in ms) to core options.
//! Wrong types or ranges are `INVALID_OPTION` errors, never silently ignored.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::{
    Acknowledgment, CursorQuery, DateTime, Direction, EnqueueOptions, JobQuery, JobRetention,
    JobSelector, JobStatus, MonqueOptions, RateLimit, ReadConcern, ScheduleOptions, SortField,
    SortOrder, TraceContext, WorkerOptions, WriteConcern,
};

type R<T> = napi::Result<T>;

fn invalid(name: &str, why: &str) -> napi::Error {
    napi::Error::new(
        napi::Status::InvalidArg,
        format!("[INVALID_OPTION] invalid option `{name}`: {why}"),
    )
}

fn object(json: &str) -> R<Map<String, Value>> {
    as_object(serde_json::from_str(json).map_err(|_| invalid("options", "must be an object"))?)
}

/// An options object; `null` counts as `{}`.
fn as_object(value: Value) -> R<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(invalid("options", "must be an object")),
    }
}

fn number(map: &Map<String, Value>, key: &str) -> R<Option<f64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let n = n
                .as_f64()
                .ok_or_else(|| invalid(key, "must be a finite number"))?;
            if n < 0.0 {
                return Err(invalid(key, "must not be negative"));
            }
            Ok(Some(n))
        }
        Some(_) => Err(invalid(key, "must be a number")),
    }
}

fn ms(map: &Map<String, Value>, key: &str) -> R<Option<Duration>> {
    number(map, key)?
        .map(|n| Duration::try_from_secs_f64(n / 1000.0).map_err(|_| invalid(key, "is too large")))
        .transpose()
}

fn count(map: &Map<String, Value>, key: &str) -> R<Option<usize>> {
    match number(map, key)? {
        Some(n) if n.fract() != 0.0 => Err(invalid(key, "must be a whole number")),
        other => Ok(other.map(|n| n as usize)),
    }
}

fn string(map: &Map<String, Value>, key: &str) -> R<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn boolean(map: &Map<String, Value>, key: &str) -> R<Option<bool>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(key, "must be a boolean")),
    }
}

/// `writeConcern: { w: number | 'majority', journal?, wtimeoutMS? }`, or `null` for the
/// connection's own.
fn write_concern(m: &Map<String, Value>) -> R<Option<Option<WriteConcern>>> {
    let v = match m.get("writeConcern") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(v) => v,
    };
    let wc = v
        .as_object()
        .ok_or_else(|| invalid("writeConcern", "must be an object like { w: 'majority' }"))?;
    let w = match wc.get("w") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "majority" => Some(Acknowledgment::Majority),
        Some(Value::String(s)) => Some(Acknowledgment::Custom(s.clone())),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n <= u32::MAX as u64 => Some(Acknowledgment::Nodes(n as u32)),
            _ => {
                return Err(invalid(
                    "writeConcern.w",
                    "must be a whole number or 'majority'",
                ))
            }
        },
        Some(_) => {
            return Err(invalid(
                "writeConcern.w",
                "must be a whole number or 'majority'",
            ))
        }
    };
    let journal = boolean(wc, "journal")?;
    let timeout = ms(wc, "wtimeoutMS")?;
    Ok(Some(Some(
        WriteConcern::builder()
            .w(w)
            .journal(journal)
            .w_timeout(timeout)
            .build(),
    )))
}

pub(super) fn parse(json: &str) -> R<MonqueOptions> {
    let m = object(json)?;
    let mut o = MonqueOptions::default();
    if let Some(wc) = write_concern(&m)? {
        o.write_concern = wc;
    }
    if let Some(level) = string(&m, "readConcern")? {
        o.read_concern = Some(match level.as_str() {
            "local" => ReadConcern::local(),
            "majority" => ReadConcern::majority(),
            "linearizable" => ReadConcern::linearizable(),
            "available" => ReadConcern::available(),
            "snapshot" => ReadConcern::snapshot(),
            _ => {
                return Err(invalid(
                    "readConcern",
                    "must be 'local', 'majority', 'linearizable', 'available' or 'snapshot'",
                ))
            }
        });
    }
    if let Some(v) = string(&m, "collectionName")? {
        o.collection_name = v;
    }
    o.database = string(&m, "database")?;
    o.instance_id = string(&m, "instanceId")?;
    if let Some(v) = ms(&m, "pollInterval")? {
        o.poll_interval = v;
    }
    if let Some(v) = count(&m, "workerConcurrency")? {
        o.worker_concurrency = v;
    }
    o.instance_concurrency = count(&m, "instanceConcurrency")?;
    if let Some(v) = count(&m, "maxResultSize")? {
        o.max_result_size = v;
    }
    if let Some(v) = count(&m, "claimBatch")? {
        o.claim_batch = v;
    }
    if let Some(v) = count(&m, "maxRetries")? {
        o.max_retries = v.min(u32::MAX as usize) as u32;
    }
    if let Some(v) = count(&m, "maxStalls")? {
        o.max_stalls = v.min(u32::MAX as usize) as u32;
    }
    if let Some(v) = ms(&m, "baseRetryInterval")? {
        o.backoff.base = v;
    }
    if let Some(v) = ms(&m, "maxBackoffDelay")? {
        o.backoff.max = v;
    }
    if let Some(v) = number(&m, "jitter")? {
        o.backoff.jitter = v;
    }
    if let Some(v) = ms(&m, "leaseDuration")? {
        o.lease_duration = v;
    }
    if let Some(v) = ms(&m, "heartbeatInterval")? {
        o.heartbeat_interval = v;
    }
    if let Some(v) = ms(&m, "shutdownTimeout")? {
        o.shutdown_timeout = v;
    }
    if let Some(v) = count(&m, "maxPayloadSize")? {
        o.max_payload_size = v;
    }
    if let Some(v) = ms(&m, "serverSelectionTimeout")? {
        o.server_selection_timeout = v;
    }
    if let Some(v) = boolean(&m, "changeStreams")? {
        o.change_streams = v;
    }
    if let Some(v) = boolean(&m, "skipIndexCreation")? {
        o.skip_index_creation = v;
    }
    if let Some(v) = ms(&m, "retentionInterval")? {
        o.retention_interval = v;
    }
    if let Some(Value::Object(r)) = m.get("jobRetention") {
        o.job_retention = JobRetention {
            completed: ms(r, "completed")?,
            failed: ms(r, "failed")?,
            cancelled: ms(r, "cancelled")?,
        };
    } else if !matches!(m.get("jobRetention"), None | Some(Value::Null)) {
        return Err(invalid(
            "jobRetention",
            "must be an object of durations in ms",
        ));
    }
    Ok(o)
}

fn statuses(m: &Map<String, Value>) -> R<Vec<JobStatus>> {
    let one = |v: &Value| -> R<JobStatus> {
        serde_json::from_value(v.clone()).map_err(|_| {
            invalid(
                "status",
                "must be waiting, pending, processing, completed, failed or cancelled",
            )
        })
    };
    match m.get("status") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

fn date(m: &Map<String, Value>, key: &str) -> R<Option<DateTime>> {
    Ok(number(m, key)?.map(|ms| DateTime::from_millis(ms as i64)))
}

/// `{ name, group, status (one or a list), olderThan, newerThan }`, times in epoch ms.
pub(super) fn selector_value(value: Value) -> R<JobSelector> {
    let m = as_object(value)?;
    Ok(JobSelector {
        name: string(&m, "name")?,
        group: string(&m, "group")?,
        status: statuses(&m)?,
        older_than: date(&m, "olderThan")?,
        newer_than: date(&m, "newerThan")?,
    })
}

pub(super) fn selector(json: &str) -> R<JobSelector> {
    selector_value(
        serde_json::from_str(json).map_err(|_| invalid("selector", "must be an object"))?,
    )
}

fn limit(m: &Map<String, Value>, default: u32) -> R<u32> {
    Ok(count(m, "limit")?.map_or(default, |n| n.min(u32::MAX as usize) as u32))
}

fn sort_by(m: &Map<String, Value>) -> R<SortField> {
    Ok(match string(m, "sortBy")?.as_deref() {
        None | Some("createdAt") => SortField::CreatedAt,
        Some("nextRunAt") => SortField::NextRunAt,
        Some("updatedAt") => SortField::UpdatedAt,
        Some(_) => {
            return Err(invalid(
                "sortBy",
                "must be 'createdAt', 'nextRunAt' or 'updatedAt'",
            ))
        }
    })
}

fn sort_order(m: &Map<String, Value>) -> R<SortOrder> {
    Ok(match string(m, "sort")?.as_deref() {
        None | Some("asc") => SortOrder::Ascending,
        Some("desc") => SortOrder::Descending,
        Some(_) => return Err(invalid("sort", "must be 'asc' or 'desc'")),
    })
}

/// `{ name, status, limit, skip, withoutData, sortBy, sort }`.
pub(super) fn job_query(json: &str) -> R<JobQuery> {
    let m = object(json)?;
    Ok(JobQuery {
        selector: selector_value(Value::Object(m.clone()))?,
        limit: limit(&m, 100)?,
        skip: count(&m, "skip")?.unwrap_or(0) as u64,
        without_data: boolean(&m, "withoutData")?.unwrap_or(false),
        sort_by: sort_by(&m)?,
        sort: sort_order(&m)?,
    })
}

/// `{ cursor, limit, direction: 'forward'|'backward', sortBy, sort: 'asc'|'desc', filter,
/// withoutData }`.
pub(super) fn cursor_query(json: &str) -> R<CursorQuery> {
    let m = object(json)?;
    let direction = match string(&m, "direction")?.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(_) => return Err(invalid("direction", "must be 'forward' or 'backward'")),
    };
    let sort = sort_order(&m)?;
    let selector = match m.get("filter") {
        None | Some(Value::Null) => JobSelector::default(),
        Some(v) => selector_value(v.clone())?,
    };
    Ok(CursorQuery {
        selector,
        cursor: string(&m, "cursor")?,
        limit: limit(&m, 50)?,
        direction,
        sort_by: sort_by(&m)?,
        sort,
        without_data: boolean(&m, "withoutData")?.unwrap_or(false),
    })
}

pub(super) fn worker(json: &str) -> R<WorkerOptions> {
    let m = object(json)?;
    Ok(WorkerOptions {
        concurrency: count(&m, "concurrency")?,
        max_retries: count(&m, "maxRetries")?.map(|n| n.min(u32::MAX as usize) as u32),
        replace: boolean(&m, "replace")?.unwrap_or(false),
        timeout: ms(&m, "timeout")?,
        limiter: rate_limit(&m, "limiter")?,
        group_concurrency: count(&m, "groupConcurrency")?
            .map(|n| u32::try_from(n).map_err(|_| invalid("groupConcurrency", "is too large")))
            .transpose()?,
        group_limiter: rate_limit(&m, "groupLimiter")?,
    })
}

pub(super) fn enqueue(json: &str) -> R<EnqueueOptions> {
    enqueue_options(&object(json)?)
}

pub(super) fn enqueue_value(value: Value) -> R<EnqueueOptions> {
    enqueue_options(&as_object(value)?)
}

fn enqueue_options(m: &Map<String, Value>) -> R<EnqueueOptions> {
    let priority = match m.get("priority") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| invalid("priority", "must be a whole number in the 32-bit range"))?,
        Some(_) => return Err(invalid("priority", "must be a number")),
    };
    let run_at = match m.get("runAt") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(DateTime::from_millis(
            n.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| invalid("runAt", "must be a valid date"))? as i64,
        )),
        Some(_) => return Err(invalid("runAt", "must be a Date or epoch milliseconds")),
    };
    let depends_on = match m.get("dependsOn") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                crate::parse_job_id(id.as_str().unwrap_or_default()).map_err(|e| {
                    napi::Error::new(napi::Status::InvalidArg, format!("[{}] {e}", e.code()))
                })
            })
            .collect::<R<_>>()?,
        Some(_) => return Err(invalid("dependsOn", "must be an array of job ids")),
    };
    Ok(EnqueueOptions {
        unique_key: string(m, "uniqueKey")?,
        run_at,
        priority,
        timeout: ms(m, "timeout")?,
        depends_on,
        trace_context: trace_context(m)?,
        group: group(m)?,
    })
}

/// `group`: a non-empty string (its length and characters are checked by the core).
fn group(m: &Map<String, Value>) -> R<Option<String>> {
    match m.get("group") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(g)) => Ok(Some(g.clone())),
        Some(_) => Err(invalid("group", "must be a string")),
    }
}

/// `{ max, duration }` of `limiter` or `groupLimiter`.
fn rate_limit(m: &Map<String, Value>, key: &str) -> R<Option<RateLimit>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let l = as_object(v.clone()).map_err(|_| invalid(key, "must be { max, duration }"))?;
            let max =
                count(&l, "max")?.ok_or_else(|| invalid(&format!("{key}.max"), "is required"))?;
            Ok(Some(RateLimit {
                max: u32::try_from(max)
                    .map_err(|_| invalid(&format!("{key}.max"), "is too large"))?,
                duration: ms(&l, "duration")?
                    .ok_or_else(|| invalid(&format!("{key}.duration"), "is required (ms)"))?,
            }))
        }
    }
}

/// `traceContext: { traceparent, tracestate? }`, as the TS wrapper's producer span or
/// the caller sets it.
fn trace_context(m: &Map<String, Value>) -> R<Option<TraceContext>> {
    let Some(tc) = m.get("traceContext").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let (Some(parent), state) = (tc["traceparent"].as_str(), &tc["tracestate"]) else {
        return Err(invalid(
            "traceContext",
            "must be { traceparent: string, tracestate?: string }",
        ));
    };
    let state = match state {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(invalid("traceContext.tracestate", "must be a string")),
    };
    TraceContext::new(parent, state)
        .map(Some)
        .map_err(|e| match e {
            crate::Error::InvalidOption { reason, .. } => invalid("traceContext", &reason),
            other => napi::Error::new(
                napi::Status::InvalidArg,
                format!("[{}] {other}", other.code()),
            ),
        })
}

pub(super) fn schedule(json: &str) -> R<ScheduleOptions> {
    let m = object(json)?;
    let priority = enqueue_options(&m)?.priority;
    Ok(ScheduleOptions {
        timezone: string(&m, "timezone")?,
        unique_key: string(&m, "uniqueKey")?,
        priority,
        trace_context: trace_context(&m)?,
        group: group(&m)?,
    })
}
