//! The Node.js binding: a thin napi layer over the core. Data crosses as JSON strings
//! (one parse on each side, no per-field conversion). Errors carry their code as a
//! `[CODE] ` prefix that the TypeScript wrapper turns into `error.code`.

mod handler;
mod options;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use napi::bindgen_prelude::within_runtime_if_available;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::{EnqueueOptions, Monque, NewJob};

/// Events go to JS through a weak TSFN: an idle queue never keeps Node alive.
pub(crate) type EventSink = ThreadsafeFunction<String, (), String, Status, false, true>;
/// The JS side of a worker: `(jobJson) => Promise<envelopeJson>`.
pub(crate) type JsHandlerFn =
    ThreadsafeFunction<String, napi::bindgen_prelude::Promise<String>, String, Status, false, true>;

/// Separates an error's one-line message from its detail (ts/errors.ts splits them).
const DETAIL_SEPARATOR: &str = "\n\u{1e}detail: ";

pub(crate) fn to_napi(err: crate::Error) -> napi::Error {
    let mut message = format!("[{}] {}", err.code(), err);
    if let Some(detail) = err.detail() {
        message.push_str(DETAIL_SEPARATOR);
        message.push_str(&detail);
    }
    napi::Error::new(Status::GenericFailure, message)
}

fn bad_input(code: &str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::InvalidArg, format!("[{code}] {message}"))
}

/// A connected queue, wrapped by the TypeScript `Monque` class.
#[napi]
pub struct NativeQueue {
    queue: Monque,
    sink: Arc<RwLock<Option<EventSink>>>,
    spans: handler::RunSpans,
}

/// Connects and pings the server. `optionsJson` holds the core options (camelCase, ms).
#[napi]
pub async fn connect(uri: String, options_json: String) -> napi::Result<NativeQueue> {
    let opts = options::parse(&options_json)?;
    let queue = Monque::connect(&uri, opts).await.map_err(to_napi)?;
    Ok(NativeQueue {
        queue,
        sink: Arc::default(),
        spans: Arc::default(),
    })
}

#[napi]
impl NativeQueue {
    #[napi]
    pub async fn initialize(&self) -> napi::Result<()> {
        self.queue.initialize().await.map_err(to_napi)
    }

    /// Returns the job as JSON.
    #[napi]
    pub async fn enqueue(
        &self,
        name: String,
        data_json: String,
        options_json: String,
    ) -> napi::Result<String> {
        let data = parse_data(&data_json)?;
        let options = options::enqueue(&options_json)?;
        let job = self
            .queue
            .enqueue_job(NewJob {
                name,
                data,
                options,
            })
            .await
            .map_err(to_napi)?;
        Ok(job.to_json().to_string())
    }

    /// `itemsJson` is `[{ name, data, options }]`; returns `{ inserted, deduplicated }`.
    #[napi]
    pub async fn enqueue_many(&self, items_json: String) -> napi::Result<String> {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(&items_json).map_err(|e| bad_input("INVALID_DATA", e))?;
        let mut jobs = Vec::with_capacity(items.len());
        for mut item in items {
            let name = item["name"].as_str().unwrap_or_default().to_owned();
            let options: EnqueueOptions = options::enqueue_value(item["options"].take())?;
            jobs.push(NewJob {
                name,
                data: item["data"].take(),
                options,
            });
        }
        let res = self.queue.enqueue_many(jobs).await.map_err(to_napi)?;
        Ok(
            serde_json::json!({ "inserted": res.inserted, "deduplicated": res.deduplicated })
                .to_string(),
        )
    }

    /// Creates or updates the cron schedule of `name`; returns the job as JSON.
    #[napi]
    pub async fn schedule(
        &self,
        cron: String,
        name: String,
        data_json: String,
        options_json: String,
    ) -> napi::Result<String> {
        let data = parse_data(&data_json)?;
        let options = options::schedule(&options_json)?;
        let job = self
            .queue
            .schedule(&cron, &name, data, options)
            .await
            .map_err(to_napi)?;
        Ok(job.to_json().to_string())
    }

    /// Creates or updates the fixed-interval schedule of `name`. `interval` is
    /// milliseconds (`"5000"`) or a duration string (`"5 minutes"`).
    #[napi]
    pub async fn every(
        &self,
        interval: String,
        name: String,
        data_json: String,
        options_json: String,
    ) -> napi::Result<String> {
        let interval = crate::parse_interval(&interval).map_err(to_napi)?;
        let data = parse_data(&data_json)?;
        let options = options::schedule(&options_json)?;
        let job = self
            .queue
            .every(interval, &name, data, options)
            .await
            .map_err(to_napi)?;
        Ok(job.to_json().to_string())
    }

    #[napi]
    pub async fn unschedule(&self, name: String, unique_key: Option<String>) -> napi::Result<bool> {
        self.queue
            .unschedule(&name, unique_key.as_deref())
            .await
            .map_err(to_napi)
    }

    /// The active schedules as a JSON array of jobs.
    #[napi]
    pub async fn list_schedules(&self, name: Option<String>) -> napi::Result<String> {
        let jobs = self
            .queue
            .schedules(name.as_deref())
            .await
            .map_err(to_napi)?;
        Ok(jobs_json(&jobs))
    }

    /// Stores a running execution's progress (JSON); false when it no longer holds the job.
    #[napi]
    pub async fn update_progress(
        &self,
        id: String,
        claim_id: String,
        value_json: String,
    ) -> napi::Result<bool> {
        let id = crate::parse_job_id(&id).map_err(to_napi)?;
        let claim = crate::parse_job_id(&claim_id).map_err(to_napi)?;
        let value: serde_json::Value = serde_json::from_str(&value_json)
            .map_err(|e| to_napi(crate::Error::InvalidData(e.to_string())))?;
        self.queue
            .update_progress(id, claim, value)
            .await
            .map_err(to_napi)
    }

    /// The job as JSON, or null.
    #[napi]
    pub async fn get_job(&self, id: String) -> napi::Result<Option<String>> {
        let id = crate::parse_job_id(&id).map_err(to_napi)?;
        let job = self.queue.get_job(id).await.map_err(to_napi)?;
        Ok(job.map(|j| j.to_json().to_string()))
    }

    /// A JSON array of jobs.
    #[napi]
    pub async fn get_jobs(&self, query_json: String) -> napi::Result<String> {
        let query = options::job_query(&query_json)?;
        let jobs = self.queue.get_jobs(query).await.map_err(to_napi)?;
        Ok(jobs_json(&jobs))
    }

    /// `{ jobs, nextCursor, prevCursor, hasNext, hasPrev }` as JSON.
    #[napi]
    pub async fn get_jobs_with_cursor(&self, query_json: String) -> napi::Result<String> {
        let query = options::cursor_query(&query_json)?;
        let page = self
            .queue
            .get_jobs_with_cursor(query)
            .await
            .map_err(to_napi)?;
        Ok(serde_json::json!({
            "jobs": page.jobs.iter().map(|j| j.to_json()).collect::<Vec<_>>(),
            "nextCursor": page.next_cursor,
            "prevCursor": page.prev_cursor,
            "hasNext": page.has_next,
            "hasPrev": page.has_prev,
        })
        .to_string())
    }

    /// Every job name with its counts per status and whether it is paused, as JSON.
    #[napi]
    pub async fn get_job_names(&self) -> napi::Result<String> {
        let names = self.queue.job_names().await.map_err(to_napi)?;
        Ok(serde_json::Value::Array(
            names
                .iter()
                .map(|n| serde_json::json!({ "name": n.name, "paused": n.paused, "counts": counts_json(&n.counts) }))
                .collect(),
        )
        .to_string())
    }

    /// Counts per status, total and `avgProcessingMs`, as JSON.
    #[napi]
    pub async fn get_queue_stats(
        &self,
        name: Option<String>,
        group: Option<String>,
    ) -> napi::Result<String> {
        let s = match (name.as_deref(), group.as_deref()) {
            (Some(name), Some(group)) => self.queue.group_stats(name, group).await,
            (None, Some(_)) => {
                return Err(bad_input(
                    "INVALID_OPTION",
                    "group needs a name: groups belong to one job name",
                ))
            }
            (name, None) => self.queue.queue_stats(name).await,
        }
        .map_err(to_napi)?;
        let mut stats = counts_json(&s);
        stats["avgProcessingMs"] = serde_json::json!(s.avg_processing_ms);
        stats["orphaned"] = serde_json::json!(s.orphaned);
        Ok(stats.to_string())
    }

    /// The live instances, as JSON: `[{ id, names, startedAt, heartbeatAt, notifyMode }]`.
    #[napi]
    pub async fn get_instances(&self) -> napi::Result<String> {
        let instances = self.queue.instances().await.map_err(to_napi)?;
        let list: Vec<serde_json::Value> = instances
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "names": i.names,
                    "startedAt": i.started_at.timestamp_millis(),
                    "heartbeatAt": i.heartbeat_at.timestamp_millis(),
                    "notifyMode": i.notify_mode,
                })
            })
            .collect();
        Ok(serde_json::Value::Array(list).to_string())
    }

    /// `action` is cancel, retry, reschedule (`value` = epoch ms) or priority (`value`).
    #[napi]
    pub async fn change_job(
        &self,
        id: String,
        action: String,
        value: Option<f64>,
    ) -> napi::Result<String> {
        let id = crate::parse_job_id(&id).map_err(to_napi)?;
        let need = |what: &str| {
            value.filter(|v| v.is_finite()).ok_or_else(|| {
                bad_input("INVALID_OPTION", format!("{what} must be a finite number"))
            })
        };
        let job = match action.as_str() {
            "cancel" => self.queue.cancel_job(id).await,
            "retry" => self.queue.retry_job(id).await,
            "reschedule" => {
                let at = crate::DateTime::from_millis(need("runAt")? as i64);
                self.queue.reschedule_job(id, at).await
            }
            "priority" => {
                let p = need("priority")?;
                if p.fract() != 0.0 || p < f64::from(i32::MIN) || p > f64::from(i32::MAX) {
                    return Err(bad_input(
                        "INVALID_OPTION",
                        "priority must be a 32-bit integer",
                    ));
                }
                self.queue.set_job_priority(id, p as i32).await
            }
            other => {
                return Err(bad_input(
                    "INVALID_OPTION",
                    format!("unknown action {other}"),
                ))
            }
        }
        .map_err(to_napi)?;
        Ok(job.to_json().to_string())
    }

    #[napi]
    pub async fn delete_job(&self, id: String) -> napi::Result<bool> {
        let id = crate::parse_job_id(&id).map_err(to_napi)?;
        self.queue.delete_job(id).await.map_err(to_napi)
    }

    /// `action` is cancel, retry or delete; resolves with how many jobs changed.
    #[napi]
    pub async fn change_jobs(
        &self,
        action: String,
        selector_json: String,
        spread_ms: Option<f64>,
    ) -> napi::Result<f64> {
        let selector = options::selector(&selector_json)?;
        let n = match action.as_str() {
            "cancel" => self.queue.cancel_jobs(&selector).await,
            "retry" => {
                let spread = match spread_ms {
                    None => None,
                    Some(ms) if ms.is_finite() && ms >= 0.0 => {
                        Some(Duration::from_millis(ms as u64))
                    }
                    Some(_) => {
                        return Err(bad_input(
                            "INVALID_OPTION",
                            "spread must be a non-negative number of ms",
                        ))
                    }
                };
                self.queue.retry_jobs(&selector, spread).await
            }
            "delete" => self.queue.delete_jobs(&selector).await,
            other => {
                return Err(bad_input(
                    "INVALID_OPTION",
                    format!("unknown action {other}"),
                ))
            }
        }
        .map_err(to_napi)?;
        Ok(n as f64)
    }

    #[napi]
    pub async fn pause(&self, name: Option<String>) -> napi::Result<()> {
        self.queue.pause(name.as_deref()).await.map_err(to_napi)
    }

    #[napi]
    pub async fn resume(&self, name: Option<String>) -> napi::Result<()> {
        self.queue.resume(name.as_deref()).await.map_err(to_napi)
    }

    #[napi]
    pub async fn pause_group(&self, name: String, group: String) -> napi::Result<()> {
        self.queue.pause_group(&name, &group).await.map_err(to_napi)
    }

    #[napi]
    pub async fn resume_group(&self, name: String, group: String) -> napi::Result<()> {
        self.queue
            .resume_group(&name, &group)
            .await
            .map_err(to_napi)
    }

    /// The groups of `name`, as JSON: `[{ group, counts, oldestDue, running, paused,
    /// servedAt }]` (dates as epoch ms, as `get_instances`).
    #[napi]
    pub async fn get_groups(&self, name: String) -> napi::Result<String> {
        let groups = self.queue.groups(&name).await.map_err(to_napi)?;
        let ms = |d: Option<crate::DateTime>| d.map(|d| d.timestamp_millis());
        let rows: Vec<_> = groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "group": g.group,
                    "counts": counts_json(&g.counts),
                    "oldestDue": ms(g.oldest_due),
                    "running": g.running,
                    "paused": g.paused,
                    "servedAt": ms(g.served_at),
                })
            })
            .collect();
        Ok(serde_json::Value::Array(rows).to_string())
    }

    #[napi]
    pub async fn is_paused(&self, name: Option<String>) -> napi::Result<bool> {
        self.queue.is_paused(name.as_deref()).await.map_err(to_napi)
    }

    #[napi]
    pub async fn purge_expired(&self) -> napi::Result<f64> {
        self.queue
            .purge_expired()
            .await
            .map(|n| n as f64)
            .map_err(to_napi)
    }

    /// Prometheus text format.
    #[napi]
    pub async fn metrics(&self) -> napi::Result<String> {
        self.queue.metrics().await.map_err(to_napi)
    }

    /// Names the OpenTelemetry span of the run in flight `execution` (`<jobId>:<claimId>`),
    /// kept in its job's attempts history when the run ends, however it ends.
    #[napi]
    pub fn record_run_span(&self, execution: String, traceparent: String) {
        let cell = self
            .spans
            .lock()
            .expect("spans lock")
            .get(&execution)
            .cloned();
        if let Some(cell) = cell {
            cell.record(&traceparent);
        }
    }

    /// From now on, keeps run and claim durations for `telemetry()`.
    #[napi]
    pub fn keep_telemetry_samples(&self) {
        self.queue.keep_telemetry_samples();
    }

    /// The metrics as JSON for the OpenTelemetry instruments (ts/otel-metrics.ts).
    #[napi]
    pub async fn telemetry(&self) -> napi::Result<String> {
        let value = self.queue.telemetry().await.map_err(to_napi)?;
        Ok(value.to_string())
    }

    #[napi]
    pub fn register(
        &self,
        name: String,
        #[napi(ts_arg_type = "(jobJson: string) => Promise<string>")] handler: JsHandlerFn,
        options_json: String,
    ) -> napi::Result<()> {
        let opts = options::worker(&options_json)?;
        let handler = handler::JsHandler::new(handler, self.sink.clone(), self.spans.clone());
        within_runtime_if_available(|| self.queue.register_arc(&name, Arc::new(handler), opts))
            .map_err(to_napi)
    }

    /// Every event, as JSON, goes to `listener`.
    #[napi]
    pub fn on_event(
        &self,
        #[napi(ts_arg_type = "(eventJson: string) => void")] listener: EventSink,
    ) {
        *self.sink.write().expect("sink lock") = Some(listener);
        let sink = self.sink.clone();
        self.queue.on_event(move |event| {
            if let Some(tsfn) = sink.read().expect("sink lock").as_ref() {
                tsfn.call(
                    event.to_json().to_string(),
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }
        });
    }

    #[napi]
    pub fn start(&self) -> napi::Result<()> {
        within_runtime_if_available(|| self.queue.start()).map_err(to_napi)
    }

    /// Resolves with the number of jobs handed back to `pending`.
    #[napi]
    pub async fn stop(&self, timeout_ms: Option<f64>) -> napi::Result<f64> {
        // Out-of-range timeouts (negative, NaN, astronomically large) saturate.
        let timeout = timeout_ms.map(|ms| {
            Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(if ms > 0.0 {
                Duration::MAX
            } else {
                Duration::ZERO
            })
        });
        self.queue
            .stop(timeout)
            .await
            .map(|n| n as f64)
            .map_err(to_napi)
    }

    #[napi]
    pub async fn is_healthy(&self) -> bool {
        self.queue.is_healthy().await
    }

    /// `"off"`, `"polling"` or `"change-stream"`.
    #[napi]
    pub fn notify_mode(&self) -> String {
        self.queue.notify_mode().as_str().to_owned()
    }

    #[napi(getter)]
    pub fn instance_id(&self) -> String {
        self.queue.instance_id().to_owned()
    }
}

/// Throws `INVALID_JOB_NAME` unless `name` is a valid job name (the core's own rule).
#[napi]
pub fn validate_job_name(name: String) -> napi::Result<()> {
    crate::validate_job_name(&name).map_err(to_napi)
}

fn jobs_json(jobs: &[crate::Job]) -> String {
    serde_json::Value::Array(jobs.iter().map(|j| j.to_json()).collect()).to_string()
}

fn parse_data(json: &str) -> napi::Result<serde_json::Value> {
    serde_json::from_str(json)
        .map_err(|e| bad_input("INVALID_DATA", format!("job data is not valid JSON: {e}")))
}

/// Jobs per status and their total, as the JS `counts` / `QueueStats` fields.
fn counts_json(c: &crate::QueueStats) -> serde_json::Value {
    serde_json::json!({
        "waiting": c.waiting, "pending": c.pending, "processing": c.processing, "completed": c.completed,
        "failed": c.failed, "cancelled": c.cancelled, "total": c.total,
    })
}
