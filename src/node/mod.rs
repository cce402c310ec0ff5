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

pub(crate) fn to_napi(err: crate::Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {}", err.code(), err))
}

fn bad_input(code: &str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::InvalidArg, format!("[{code}] {message}"))
}

/// A connected queue, wrapped by the TypeScript `Monque` class.
#[napi]
pub struct NativeQueue {
    queue: Monque,
    sink: Arc<RwLock<Option<EventSink>>>,
}

/// Connects and pings the server. `optionsJson` holds the core options (camelCase, ms).
#[napi]
pub async fn connect(uri: String, options_json: String) -> napi::Result<NativeQueue> {
    let opts = options::parse(&options_json)?;
    let queue = Monque::connect(&uri, opts).await.map_err(to_napi)?;
    Ok(NativeQueue {
        queue,
        sink: Arc::default(),
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
        Ok(serde_json::Value::Array(jobs.iter().map(|j| j.to_json()).collect()).to_string())
    }

    #[napi]
    pub fn register(
        &self,
        name: String,
        #[napi(ts_arg_type = "(jobJson: string) => Promise<string>")] handler: JsHandlerFn,
        options_json: String,
    ) -> napi::Result<()> {
        let opts = options::worker(&options_json)?;
        let handler = handler::JsHandler::new(handler, self.sink.clone());
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

fn parse_data(json: &str) -> napi::Result<serde_json::Value> {
    serde_json::from_str(json)
        .map_err(|e| bad_input("INVALID_DATA", format!("job data is not valid JSON: {e}")))
}
