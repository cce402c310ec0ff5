//! `Monque`: the public handle. Connects, creates indexes, enqueues, registers workers
//! and starts / stops the background services.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::enqueue::{BatchResult, EnqueueOptions, NewJob};
use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::executor::Running;
use crate::handler::Handler;
use crate::job::{validate_job_name, Job};
use crate::management::{CursorQuery, JobPage, JobQuery, JobSelector, QueueStats};
use crate::notify::NotifyMode;
use crate::options::{MonqueOptions, WorkerOptions};
use crate::recurring::ScheduleOptions;
use crate::schedule::Repeat;
use crate::worker::Worker;

/// How far apart [`Monque::retry_jobs`] spreads a redrive by default.
const DEFAULT_RETRY_SPREAD: Duration = Duration::from_secs(10);

/// A job queue on one MongoDB collection. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Monque {
    inner: Arc<Inner>,
}

/// State shared by the handle and every background task.
pub(crate) struct Inner {
    pub(crate) db: Database,
    pub(crate) coll: Collection<Document>,
    /// uniqueKey locks (unique.rs).
    pub(crate) locks: Collection<Document>,
    /// Pauses (pause.rs) and this instance's view of them.
    pub(crate) pauses: Collection<Document>,
    /// Rate-limit windows, one per limited job name (rate_limit.rs).
    pub(crate) rate_limits: Collection<Document>,
    pub(crate) paused: RwLock<crate::pause::Paused>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) opts: MonqueOptions,
    pub(crate) instance_id: String,
    pub(crate) events: EventBus,
    pub(crate) workers: RwLock<HashMap<String, Arc<Worker>>>,
    pub(crate) running: Running,
    pub(crate) instance_slots: Option<Arc<Semaphore>>,
    pub(crate) notify_mode: AtomicU8,
    /// Claims name the claim index as a hint once `initialize()` created it here, until
    /// the server says it is gone (claim.rs).
    pub(crate) hint_claims: AtomicBool,
    lifecycle: Mutex<Lifecycle>,
    /// Held for the whole of `stop()`, so a second `stop()` waits for the first.
    stopping: tokio::sync::Mutex<()>,
}

/// What `start()` set going and `stop()` must wind down.
#[derive(Default)]
enum Lifecycle {
    #[default]
    Stopped,
    Started(Services),
    /// `stop()` is draining: `start()` must wait for it, or it would share `running`.
    Stopping,
}

pub(crate) struct Services {
    /// Cancelled first on stop: no more claims.
    pub(crate) claiming: CancellationToken,
    /// Cancelled after the drain: heartbeats, recovery and change stream stop.
    pub(crate) background: CancellationToken,
    /// Aborts running handlers' signals when the shutdown timeout passes.
    pub(crate) abort: CancellationToken,
    pub(crate) producers: Vec<JoinHandle<()>>,
    pub(crate) maintenance: Vec<JoinHandle<()>>,
}

impl Monque {
    /// Connects with a MongoDB connection string and checks the server answers within
    /// `server_selection_timeout` (a `CONNECTION_ERROR` otherwise). The database is
    /// `options.database`, else the one named in the URI, else `monque`.
    pub async fn connect(uri: &str, options: MonqueOptions) -> Result<Monque> {
        options.validate()?;
        let mut client_opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| Error::InvalidUri(e.to_string()))?;
        client_opts
            .server_selection_timeout
            .get_or_insert(options.server_selection_timeout);
        client_opts
            .app_name
            .get_or_insert_with(|| "monque".to_owned());
        let db_name = options
            .database
            .clone()
            .or_else(|| client_opts.default_database.clone())
            .unwrap_or_else(|| "monque".to_owned());
        let client =
            Client::with_options(client_opts).map_err(|e| Error::InvalidUri(e.to_string()))?;
        let monque = Monque::from_database(client.database(&db_name), options)?;
        monque.ping().await?;
        Ok(monque)
    }

    /// Uses a database handle you already have. Does no I/O.
    pub fn from_database(db: Database, options: MonqueOptions) -> Result<Monque> {
        options.validate()?;
        let instance_id = options
            .instance_id
            .clone()
            .unwrap_or_else(default_instance_id);
        let inner = Inner {
            coll: db.collection(&options.collection_name),
            locks: db.collection(&format!("{}_unique", options.collection_name)),
            pauses: db.collection(&format!("{}_paused", options.collection_name)),
            rate_limits: db.collection(&format!("{}_rate_limits", options.collection_name)),
            paused: RwLock::default(),
            metrics: Arc::default(),
            db,
            instance_slots: options
                .instance_concurrency
                .map(|n| Arc::new(Semaphore::new(n))),
            opts: options,
            instance_id,
            events: EventBus::default(),
            workers: RwLock::default(),
            running: Running::default(),
            notify_mode: AtomicU8::new(NotifyMode::Off as u8),
            hint_claims: AtomicBool::new(false),
            lifecycle: Mutex::default(),
            stopping: tokio::sync::Mutex::new(()),
        };
        let metrics = inner.metrics.clone();
        inner
            .events
            .subscribe(Arc::new(move |event| metrics.record(event)));
        Ok(Monque {
            inner: Arc::new(inner),
        })
    }

    /// Creates the indexes and puts back jobs whose lease expired while nothing ran.
    /// Idempotent: call it on every start.
    pub async fn initialize(&self) -> Result<()> {
        if !self.inner.opts.skip_index_creation {
            crate::indexes::ensure(&self.inner.coll)
                .await
                .map_err(|e| self.inner.db_err(e))?;
            self.inner.hint_claims.store(true, Ordering::Relaxed);
        }
        self.inner.refresh_pauses().await?;
        let recovered = self.inner.recover_expired().await?;
        if recovered > 0 {
            self.inner.emit(Event::StaleRecovered { count: recovered });
        }
        Ok(())
    }

    /// Enqueues a job.
    pub async fn enqueue<T: Serialize>(
        &self,
        name: &str,
        data: T,
        options: EnqueueOptions,
    ) -> Result<Job> {
        let data = serde_json::to_value(data).map_err(|e| Error::InvalidData(e.to_string()))?;
        self.inner
            .enqueue_one(NewJob {
                name: name.to_owned(),
                data,
                options,
            })
            .await
    }

    /// Enqueues an already-built [`NewJob`].
    pub async fn enqueue_job(&self, job: NewJob) -> Result<Job> {
        self.inner.enqueue_one(job).await
    }

    /// Enqueues a job to run as soon as a worker is free.
    pub async fn now<T: Serialize>(&self, name: &str, data: T) -> Result<Job> {
        self.enqueue(name, data, EnqueueOptions::default()).await
    }

    /// Enqueues many jobs in one round trip (two when some have a `unique_key`).
    /// Every job is validated first; one bad job means nothing is written.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<BatchResult> {
        if jobs.is_empty() {
            return Ok(BatchResult::default());
        }
        self.inner.enqueue_batch(jobs).await
    }

    /// Runs `name` on a cron schedule: 5 fields (`*/5 * * * *`), 6 with seconds, 7 with
    /// a year, or a macro (`@daily`), read in `options.timezone` (IANA, default UTC).
    /// Idempotent: one schedule per `(name, uniqueKey)` however often and from however
    /// many processes this is called; a call with a new expression, timezone, data or
    /// priority updates that schedule. See the crate README for the DST and missed-run
    /// policy.
    pub async fn schedule<T: Serialize>(
        &self,
        cron: &str,
        name: &str,
        data: T,
        options: ScheduleOptions,
    ) -> Result<Job> {
        validate_job_name(name)?;
        let repeat = Repeat::cron(cron, options.timezone.as_deref())?;
        let data = serde_json::to_value(data).map_err(|e| Error::InvalidData(e.to_string()))?;
        self.inner
            .upsert_schedule(name, data, repeat, options)
            .await
    }

    /// Runs `name` every `interval` (at least a second), the first time one interval
    /// from now; each run is due one interval after the previous one was due. Same
    /// idempotency as [`schedule`](Self::schedule); `options.timezone` must be unset.
    /// [`parse_interval`](crate::parse_interval) reads strings such as `"5 minutes"`.
    pub async fn every<T: Serialize>(
        &self,
        interval: Duration,
        name: &str,
        data: T,
        options: ScheduleOptions,
    ) -> Result<Job> {
        validate_job_name(name)?;
        if options.timezone.is_some() {
            return Err(Error::option(
                "timezone",
                "applies to cron schedules only, not to every()",
            ));
        }
        let repeat = Repeat::every(interval)?;
        let data = serde_json::to_value(data).map_err(|e| Error::InvalidData(e.to_string()))?;
        self.inner
            .upsert_schedule(name, data, repeat, options)
            .await
    }

    /// Stops the schedule `(name, unique_key)` (`unique_key` defaults as in
    /// [`ScheduleOptions`]). A pending run is cancelled; a running one finishes and is
    /// not rescheduled. False if there was no such schedule.
    pub async fn unschedule(&self, name: &str, unique_key: Option<&str>) -> Result<bool> {
        self.inner.remove_schedule(name, unique_key).await
    }

    /// The active schedules (recurring jobs), soonest first; of every name or of `name`.
    pub async fn schedules(&self, name: Option<&str>) -> Result<Vec<Job>> {
        self.inner.list_schedules(name).await
    }

    /// The job with this id, if any.
    pub async fn get_job(&self, id: ObjectId) -> Result<Option<Job>> {
        self.inner.get_job(id).await
    }

    /// Jobs matching `query.selector`, oldest first, `skip` / `limit` paged.
    pub async fn get_jobs(&self, query: JobQuery) -> Result<Vec<Job>> {
        self.inner.get_jobs(query).await
    }

    /// One page of a keyset-paginated listing: stable in both directions while jobs
    /// are added or removed, and as fast deep in the listing as at its start.
    pub async fn get_jobs_with_cursor(&self, query: CursorQuery) -> Result<JobPage> {
        self.inner.get_jobs_page(query).await
    }

    /// Jobs per status, and the mean processing time of completed jobs; of all names
    /// or of `name`.
    pub async fn queue_stats(&self, name: Option<&str>) -> Result<QueueStats> {
        self.inner.queue_stats(name).await
    }

    /// Cancels a `pending` or `processing` job (`INVALID_TRANSITION` otherwise) and frees
    /// its uniqueKey. A running job becomes `cancelled` at once and the signal of its run
    /// aborts with [`AbortReason::Cancelled`](crate::AbortReason::Cancelled): here at
    /// once, in another process on its change stream or its next heartbeat.
    pub async fn cancel_job(&self, id: ObjectId) -> Result<Job> {
        self.inner.cancel_job(id).await
    }

    /// Puts a `failed` or `cancelled` job back to `pending`, due now, `fail_count` 0.
    pub async fn retry_job(&self, id: ObjectId) -> Result<Job> {
        self.inner.retry_job(id).await
    }

    /// Gives a `pending` job a new run time.
    pub async fn reschedule_job(&self, id: ObjectId, run_at: DateTime) -> Result<Job> {
        self.inner.reschedule_job(id, run_at).await
    }

    /// Gives a `pending` job a new priority.
    pub async fn set_job_priority(&self, id: ObjectId, priority: i32) -> Result<Job> {
        self.inner.set_job_priority(id, priority).await
    }

    /// Deletes a job that is not `processing`. False if there was none.
    pub async fn delete_job(&self, id: ObjectId) -> Result<bool> {
        self.inner.delete_job(id).await
    }

    /// Cancels the `pending` jobs `selector` matches. An empty selector is refused.
    pub async fn cancel_jobs(&self, selector: &JobSelector) -> Result<u64> {
        self.inner.cancel_jobs(selector).await
    }

    /// Retries the `failed` / `cancelled` jobs `selector` matches, their run times
    /// spread evenly over `spread` (default 10 s) so a redrive does not stampede.
    pub async fn retry_jobs(
        &self,
        selector: &JobSelector,
        spread: Option<Duration>,
    ) -> Result<u64> {
        self.inner
            .retry_jobs(selector, spread.unwrap_or(DEFAULT_RETRY_SPREAD))
            .await
    }

    /// Deletes the jobs `selector` matches, except running ones.
    pub async fn delete_jobs(&self, selector: &JobSelector) -> Result<u64> {
        self.inner.delete_jobs(selector).await
    }

    /// Stops claiming jobs of `name` (or of every name) on every instance: this one at
    /// once, others within a `heartbeat_interval`. Running jobs finish.
    pub async fn pause(&self, name: Option<&str>) -> Result<()> {
        self.inner.pause(name).await
    }

    /// Undoes [`pause`](Self::pause) for `name` (or the queue-wide pause).
    pub async fn resume(&self, name: Option<&str>) -> Result<()> {
        self.inner.resume(name).await
    }

    /// Whether `name` is paused, by its own pause or the queue-wide one.
    pub async fn is_paused(&self, name: Option<&str>) -> Result<bool> {
        self.inner.is_paused(name).await
    }

    /// Deletes the jobs past `job_retention` now (started instances also do it every
    /// `retention_interval`). Returns how many.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.inner.sweep_expired().await
    }

    /// Metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        self.inner.render_metrics().await
    }

    /// Registers the handler for jobs named `name`. If the queue is started, the worker
    /// starts claiming at once.
    pub fn register(
        &self,
        name: &str,
        handler: impl Handler,
        options: WorkerOptions,
    ) -> Result<()> {
        self.register_arc(name, Arc::new(handler), options)
    }

    /// [`register`](Self::register) for a handler already behind an `Arc`.
    pub fn register_arc(
        &self,
        name: &str,
        handler: Arc<dyn Handler>,
        options: WorkerOptions,
    ) -> Result<()> {
        validate_job_name(name)?;
        options.validate()?;
        let inner = &self.inner;
        let worker = Arc::new(Worker::new(name, handler, &options, &inner.opts));
        let previous = {
            let mut workers = inner.workers.write().expect("workers lock");
            if workers.contains_key(name) && !options.replace {
                return Err(Error::WorkerExists(name.to_owned()));
            }
            workers.insert(name.to_owned(), worker.clone())
        };
        if let Some(old) = previous {
            old.retire();
        }
        if let Lifecycle::Started(services) = &mut *inner.lifecycle.lock().expect("lifecycle lock")
        {
            services
                .producers
                .push(worker.spawn(inner.clone(), services));
        }
        Ok(())
    }

    /// Stores `value` (a number or small JSON, at most [`MAX_PROGRESS_SIZE`](crate::MAX_PROGRESS_SIZE)
    /// bytes) as the progress of the running execution `(id, claim_id)` and emits
    /// `job:progress`. False when that execution no longer holds the job. Handlers
    /// usually call [`JobContext::update_progress`](crate::JobContext::update_progress).
    pub async fn update_progress(
        &self,
        id: ObjectId,
        claim_id: ObjectId,
        value: serde_json::Value,
    ) -> Result<bool> {
        self.inner.update_progress(id, claim_id, value).await
    }

    /// Calls `listener` for every event. See [`Event`].
    pub fn on_event(&self, listener: impl Fn(&Event) + Send + Sync + 'static) {
        self.inner.events.subscribe(Arc::new(listener));
    }

    /// Starts the workers and the background services (heartbeats, lease recovery,
    /// change-stream wake-ups). Calling it while started does nothing.
    pub fn start(&self) -> Result<()> {
        let inner = &self.inner;
        let mut lifecycle = inner.lifecycle.lock().expect("lifecycle lock");
        match *lifecycle {
            Lifecycle::Started(_) => return Ok(()),
            Lifecycle::Stopping => {
                return Err(Error::InvalidState(
                    "stop() is still running; await it before start()",
                ))
            }
            Lifecycle::Stopped => {}
        }
        let mut services = Services {
            claiming: CancellationToken::new(),
            background: CancellationToken::new(),
            abort: CancellationToken::new(),
            producers: Vec::new(),
            maintenance: Vec::new(),
        };
        inner
            .notify_mode
            .store(NotifyMode::Polling as u8, Ordering::Relaxed);
        let workers: Vec<_> = inner
            .workers
            .read()
            .expect("workers lock")
            .values()
            .cloned()
            .collect();
        for worker in &workers {
            services
                .producers
                .push(worker.spawn(inner.clone(), &services));
        }
        let background = services.background.clone();
        services.maintenance.push(tokio::spawn(crate::lease::run(
            inner.clone(),
            background.clone(),
        )));
        if inner.opts.job_retention.is_set() {
            services
                .maintenance
                .push(tokio::spawn(crate::retention::run(
                    inner.clone(),
                    background.clone(),
                )));
        }
        if inner.opts.change_streams {
            services.maintenance.push(tokio::spawn(crate::notify::watch(
                inner.clone(),
                background,
            )));
        }
        *lifecycle = Lifecycle::Started(services);
        tracing::info!(instance = %inner.instance_id, workers = workers.len(), "monque started");
        Ok(())
    }

    /// Stops claiming at once, waits up to `timeout` (default `shutdown_timeout`) for
    /// running handlers, then aborts their signals and hands every unfinished job back
    /// to `pending`. Returns how many jobs were handed back.
    pub async fn stop(&self, timeout: Option<Duration>) -> Result<u64> {
        let _one_at_a_time = self.inner.stopping.lock().await;
        let services = {
            let mut lifecycle = self.inner.lifecycle.lock().expect("lifecycle lock");
            match std::mem::replace(&mut *lifecycle, Lifecycle::Stopping) {
                Lifecycle::Started(services) => services,
                other => {
                    *lifecycle = other;
                    return Ok(0);
                }
            }
        };
        let timeout = timeout.unwrap_or(self.inner.opts.shutdown_timeout);
        let released = crate::shutdown::run(&self.inner, services, timeout).await;
        *self.inner.lifecycle.lock().expect("lifecycle lock") = Lifecycle::Stopped;
        released
    }

    /// True when the queue is started and the server answered a ping.
    pub async fn is_healthy(&self) -> bool {
        let started = matches!(
            *self.inner.lifecycle.lock().expect("lifecycle lock"),
            Lifecycle::Started(_)
        );
        started && self.ping().await.is_ok()
    }

    /// How idle workers learn of new jobs right now.
    pub fn notify_mode(&self) -> NotifyMode {
        NotifyMode::from_u8(self.inner.notify_mode.load(Ordering::Relaxed))
    }

    /// This instance's `claimedBy` value.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The jobs collection, for your own queries.
    pub fn collection(&self) -> &Collection<Document> {
        &self.inner.coll
    }

    async fn ping(&self) -> Result<()> {
        self.inner
            .db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| self.inner.db_err(e))?;
        Ok(())
    }
}

impl Inner {
    pub(crate) fn db_err(&self, err: mongodb::error::Error) -> Error {
        Error::from_driver(err, self.opts.server_selection_timeout)
    }

    /// When a lease taken or renewed at `now` expires.
    pub(crate) fn lease_until(&self, now: DateTime) -> DateTime {
        DateTime::from_millis(now.timestamp_millis() + self.opts.lease_duration.as_millis() as i64)
    }

    pub(crate) fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    /// Reports `err` as `job:error`, with its code and the job concerned, if any.
    pub(crate) fn emit_error(&self, err: &Error, job: Option<Arc<Job>>) {
        self.emit(Event::JobError {
            error: err.to_string(),
            code: err.code(),
            job,
        });
    }

    /// The `claiming` and `abort` tokens while started.
    pub(crate) fn started_tokens(&self) -> Option<(CancellationToken, CancellationToken)> {
        match &*self.lifecycle.lock().expect("lifecycle lock") {
            Lifecycle::Started(services) => {
                Some((services.claiming.clone(), services.abort.clone()))
            }
            _ => None,
        }
    }

    /// Wakes the local worker for `name`, if there is one.
    pub(crate) fn wake(&self, name: &str) {
        if let Some(worker) = self.workers.read().expect("workers lock").get(name) {
            worker.wake();
        }
    }

    /// Wakes the local worker for `name` when a job falls due at `at`.
    pub(crate) fn wake_at(&self, name: &str, at: DateTime) {
        let wait = at.timestamp_millis() - DateTime::now().timestamp_millis();
        if let Some(worker) = self.workers.read().expect("workers lock").get(name) {
            if wait <= 0 {
                worker.wake();
            } else {
                worker.wake_at(tokio::time::Instant::now() + Duration::from_millis(wait as u64));
            }
        }
    }

    pub(crate) fn wake_all(&self) {
        for worker in self.workers.read().expect("workers lock").values() {
            worker.wake();
        }
    }
}

fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}:{}:{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}
