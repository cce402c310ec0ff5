//! `Monque`: the public handle. Connects, builds the storage layer and the runtime
//! services and wires them together (each gets only what it uses), then forwards every
//! public call to the one service that owns it.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::enqueue::Enqueuer;
use super::management::Management;
use super::schedules::Schedules;
use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::handler::Handler;
use crate::job::{validate_job_name, Job};
use crate::new_job::{BatchResult, EnqueueOptions, NewJob};
use crate::options::{MonqueOptions, WorkerOptions};
use crate::query::{CursorQuery, Instance, JobPage, JobQuery, JobSelector, QueueStats};
use crate::runtime::completer::Completer;
use crate::runtime::dependents::Dependents;
use crate::runtime::doorbell::Doorbells;
use crate::runtime::executor::Executor;
use crate::runtime::handoff::HandOffs;
use crate::runtime::heartbeat::Heartbeat;
use crate::runtime::metrics::Metrics;
use crate::runtime::notify::{ModeCell, Notifier, NotifyMode};
use crate::runtime::outage::Outage;
use crate::runtime::pauses::Pauses;
use crate::runtime::presence::Presence;
use crate::runtime::progress::Progress;
use crate::runtime::recovery::Recovery;
use crate::runtime::retention::Retention;
use crate::runtime::running::Running;
use crate::runtime::supervisor::{Background, Supervisor, SupervisorParts, WorkerDefaults};
use crate::runtime::worker::WorkerServices;
use crate::schedule::{Repeat, ScheduleOptions};
use crate::store::{Durability, Store};

/// How far apart [`Monque::retry_jobs`] spreads a redrive by default.
const DEFAULT_RETRY_SPREAD: Duration = Duration::from_secs(10);

/// A job queue on one MongoDB collection. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Monque {
    inner: Arc<Services>,
}

/// The services a handle forwards to, each owning its part of the queue.
struct Services {
    store: Arc<Store>,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    running: Arc<Running>,
    pauses: Arc<Pauses>,
    progress: Arc<Progress>,
    retention: Arc<Retention>,
    recovery: Arc<Recovery>,
    outage: Arc<Outage>,
    supervisor: Arc<Supervisor>,
    enqueuer: Enqueuer,
    management: Management,
    schedules: Schedules,
    skip_index_creation: bool,
    shutdown_timeout: Duration,
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
        monque.inner.store.sync_clock().await?;
        Ok(monque)
    }

    /// Uses a database handle you already have. Does no I/O.
    pub fn from_database(db: Database, options: MonqueOptions) -> Result<Monque> {
        options.validate()?;
        let opts = options;
        let instance_id = opts.instance_id.clone().unwrap_or_else(default_instance_id);
        let store = Arc::new(Store::new(
            db,
            &opts.collection_name,
            instance_id,
            opts.lease_duration,
            opts.server_selection_timeout,
            Durability {
                write_concern: opts.write_concern.clone(),
                read_concern: opts.read_concern.clone(),
            },
        ));
        let events = Arc::new(EventBus::default());
        let metrics = Arc::new(Metrics::default());
        {
            let metrics = metrics.clone();
            events.subscribe(Arc::new(move |event| metrics.record(event)));
        }
        let running = Arc::new(Running::new(opts.lease_duration, opts.heartbeat_interval));
        let doorbells = Arc::new(Doorbells::new(store.clock()));
        let pauses = Arc::new(Pauses::new(store.clone(), doorbells.clone()));
        let dependents = Arc::new(Dependents::new(
            store.clone(),
            events.clone(),
            doorbells.clone(),
        ));
        let completer: Arc<Completer> = Arc::new(Completer {
            store: store.clone(),
            events: events.clone(),
            dependents: dependents.clone(),
            doorbells: doorbells.clone(),
            backoff: opts.backoff,
            max_result_size: opts.max_result_size,
        });
        let progress = Arc::new(Progress::new(store.clone(), events.clone()));
        let executor = Arc::new(Executor::new(
            running.clone(),
            completer.clone(),
            events.clone(),
            progress.clone(),
        ));
        let retention = Arc::new(Retention::new(
            store.clone(),
            events.clone(),
            opts.job_retention,
            opts.retention_interval,
        ));
        let mode = Arc::new(ModeCell::default());
        let outage = Arc::new(Outage::new(events.clone()));
        let presence = Arc::new(Presence::new(
            store.clone(),
            events.clone(),
            mode.clone(),
            opts.lease_duration,
        ));
        let recovery = Arc::new(Recovery {
            store: store.clone(),
            events: events.clone(),
            completer: completer.clone(),
            presence: presence.clone(),
            doorbells: doorbells.clone(),
            max_stalls: opts.max_stalls,
            default_max_retries: opts.max_retries,
        });
        let background = Background {
            heartbeat: Arc::new(Heartbeat {
                store: store.clone(),
                running: running.clone(),
                pauses: pauses.clone(),
                dependents: dependents.clone(),
                recovery: recovery.clone(),
                presence: presence.clone(),
                outage: outage.clone(),
                interval: opts.heartbeat_interval,
            }),
            notifier: opts.change_streams.then(|| {
                Arc::new(Notifier {
                    store: store.clone(),
                    doorbells: doorbells.clone(),
                    running: running.clone(),
                    mode: mode.clone(),
                })
            }),
            retention: retention.clone(),
        };
        let supervisor = Arc::new(Supervisor::new(SupervisorParts {
            defaults: WorkerDefaults {
                concurrency: opts.worker_concurrency,
                max_retries: opts.max_retries,
                instance_slots: opts
                    .instance_concurrency
                    .map(|n| Arc::new(Semaphore::new(n))),
            },
            worker_services: Arc::new(WorkerServices {
                store: store.clone(),
                executor: executor.clone(),
                pauses: pauses.clone(),
                events: events.clone(),
                metrics: metrics.clone(),
                outage: outage.clone(),
                claim_batch: opts.claim_batch,
                poll_interval: opts.poll_interval,
            }),
            background,
            hand_offs: Arc::new(HandOffs::new(store.clone(), running.clone(), executor)),
            doorbells: doorbells.clone(),
            pauses: pauses.clone(),
            presence,
            running: running.clone(),
            store: store.clone(),
            events: events.clone(),
            mode,
        }));
        let services = Services {
            enqueuer: Enqueuer {
                store: store.clone(),
                supervisor: supervisor.clone(),
                dependents: dependents.clone(),
                doorbells: doorbells.clone(),
                metrics: metrics.clone(),
                max_payload_size: opts.max_payload_size,
            },
            management: Management {
                store: store.clone(),
                events: events.clone(),
                running: running.clone(),
                dependents,
                doorbells: doorbells.clone(),
                pauses: pauses.clone(),
            },
            schedules: Schedules {
                store: store.clone(),
                doorbells,
                metrics: metrics.clone(),
                max_payload_size: opts.max_payload_size,
            },
            store,
            events,
            metrics,
            running,
            pauses,
            progress,
            retention,
            recovery,
            outage,
            supervisor,
            skip_index_creation: opts.skip_index_creation,
            shutdown_timeout: opts.shutdown_timeout,
        };
        Ok(Monque {
            inner: Arc::new(services),
        })
    }

    /// Creates the indexes and puts back jobs whose lease expired while nothing ran.
    /// Idempotent: call it on every start.
    pub async fn initialize(&self) -> Result<()> {
        let inner = &self.inner;
        inner.store.sync_clock().await?;
        if !inner.skip_index_creation {
            inner.store.ensure_indexes().await?;
        }
        inner.pauses.refresh().await?;
        inner.recovery.recover().await?;
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
            .enqueuer
            .enqueue(NewJob {
                name: name.to_owned(),
                data,
                options,
            })
            .await
    }

    /// Enqueues an already-built [`NewJob`].
    pub async fn enqueue_job(&self, job: NewJob) -> Result<Job> {
        self.inner.enqueuer.enqueue(job).await
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
        self.inner.enqueuer.enqueue_many(jobs).await
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
            .schedules
            .upsert(name, data, repeat, options)
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
            .schedules
            .upsert(name, data, repeat, options)
            .await
    }

    /// Stops the schedule `(name, unique_key)` (`unique_key` defaults as in
    /// [`ScheduleOptions`]). A pending run is cancelled; a running one finishes and is
    /// not rescheduled. False if there was no such schedule.
    pub async fn unschedule(&self, name: &str, unique_key: Option<&str>) -> Result<bool> {
        self.inner.schedules.remove(name, unique_key).await
    }

    /// The active schedules (recurring jobs), soonest first; of every name or of `name`.
    pub async fn schedules(&self, name: Option<&str>) -> Result<Vec<Job>> {
        self.inner.schedules.list(name).await
    }

    /// The job with this id, if any.
    pub async fn get_job(&self, id: ObjectId) -> Result<Option<Job>> {
        self.inner.management.get_job(id).await
    }

    /// Jobs matching `query.selector`, oldest first, `skip` / `limit` paged.
    pub async fn get_jobs(&self, query: JobQuery) -> Result<Vec<Job>> {
        self.inner.management.get_jobs(query).await
    }

    /// One page of a keyset-paginated listing: stable in both directions while jobs
    /// are added or removed, and as fast deep in the listing as at its start.
    pub async fn get_jobs_with_cursor(&self, query: CursorQuery) -> Result<JobPage> {
        self.inner.management.get_jobs_page(query).await
    }

    /// The started instances that heartbeated within a lease, with the job names each
    /// handles.
    pub async fn instances(&self) -> Result<Vec<Instance>> {
        self.inner.store.live_instances().await
    }

    /// Jobs per status, and the mean processing time of completed jobs; of all names
    /// or of `name`.
    pub async fn queue_stats(&self, name: Option<&str>) -> Result<QueueStats> {
        self.inner.management.queue_stats(name).await
    }

    /// Every job name in the queue, with its jobs per status and whether it is paused
    /// (an operator's overview; one aggregation over the whole collection).
    pub async fn job_names(&self) -> Result<Vec<crate::NameSummary>> {
        self.inner.management.job_names().await
    }

    /// Cancels a `pending` or `processing` job (`INVALID_TRANSITION` otherwise) and frees
    /// its uniqueKey. A running job becomes `cancelled` at once and the signal of its run
    /// aborts with [`AbortReason::Cancelled`](crate::AbortReason::Cancelled): here at
    /// once, in another process on its change stream or its next heartbeat.
    pub async fn cancel_job(&self, id: ObjectId) -> Result<Job> {
        self.inner.management.cancel_job(id).await
    }

    /// Puts a `failed` or `cancelled` job back to `pending`, due now, `fail_count` 0.
    pub async fn retry_job(&self, id: ObjectId) -> Result<Job> {
        self.inner.management.retry_job(id).await
    }

    /// Gives a `pending` job a new run time.
    pub async fn reschedule_job(&self, id: ObjectId, run_at: DateTime) -> Result<Job> {
        self.inner.management.reschedule_job(id, run_at).await
    }

    /// Gives a `pending` job a new priority.
    pub async fn set_job_priority(&self, id: ObjectId, priority: i32) -> Result<Job> {
        self.inner.management.set_job_priority(id, priority).await
    }

    /// Deletes a job that is not `processing`. False if there was none.
    pub async fn delete_job(&self, id: ObjectId) -> Result<bool> {
        self.inner.management.delete_job(id).await
    }

    /// Cancels the `pending` jobs `selector` matches. An empty selector is refused.
    pub async fn cancel_jobs(&self, selector: &JobSelector) -> Result<u64> {
        self.inner.management.cancel_jobs(selector).await
    }

    /// Retries the `failed` / `cancelled` jobs `selector` matches, their run times
    /// spread evenly over `spread` (default 10 s) so a redrive does not stampede.
    pub async fn retry_jobs(
        &self,
        selector: &JobSelector,
        spread: Option<Duration>,
    ) -> Result<u64> {
        self.inner
            .management
            .retry_jobs(selector, spread.unwrap_or(DEFAULT_RETRY_SPREAD))
            .await
    }

    /// Deletes the jobs `selector` matches, except running ones.
    pub async fn delete_jobs(&self, selector: &JobSelector) -> Result<u64> {
        self.inner.management.delete_jobs(selector).await
    }

    /// Stops claiming jobs of `name` (or of every name) on every instance: this one at
    /// once, others within a `heartbeat_interval`. Running jobs finish.
    pub async fn pause(&self, name: Option<&str>) -> Result<()> {
        self.inner.management.pause(name).await
    }

    /// Undoes [`pause`](Self::pause) for `name` (or the queue-wide pause).
    pub async fn resume(&self, name: Option<&str>) -> Result<()> {
        self.inner.management.resume(name).await
    }

    /// Stops claiming jobs of one group of `name` on every instance, from each one's
    /// next claim; the name's other groups go on. Running jobs finish. A group can be
    /// paused before it has jobs.
    pub async fn pause_group(&self, name: &str, group: &str) -> Result<()> {
        self.inner
            .management
            .set_group_paused(name, group, true)
            .await
    }

    /// Undoes [`pause_group`](Self::pause_group).
    pub async fn resume_group(&self, name: &str, group: &str) -> Result<()> {
        self.inner
            .management
            .set_group_paused(name, group, false)
            .await
    }

    /// The groups of `name`: jobs per status, the oldest due job, slots held and
    /// whether paused (one aggregation over the name's grouped jobs).
    pub async fn groups(&self, name: &str) -> Result<Vec<crate::GroupSummary>> {
        self.inner.management.groups(name).await
    }

    /// Jobs per status of one group of `name`.
    pub async fn group_stats(&self, name: &str, group: &str) -> Result<QueueStats> {
        self.inner.management.group_stats(name, group).await
    }

    /// Whether `name` is paused, by its own pause or the queue-wide one.
    pub async fn is_paused(&self, name: Option<&str>) -> Result<bool> {
        self.inner.store.is_paused(name).await
    }

    /// Deletes the jobs past `job_retention` now, and the documents of groups idle for an
    /// hour (started instances also do it every `retention_interval`). Returns how many
    /// jobs.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.inner.retention.sweep().await
    }

    /// Metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        self.inner
            .metrics
            .render(&self.inner.store, self.inner.running.snapshot().len())
            .await
    }

    /// Registers the metrics of [`metrics`](Monque::metrics) as OpenTelemetry instruments
    /// on `meter` (feature `opentelemetry`), under the names OpenTelemetry's Prometheus
    /// exporter turns into the same ones (`monque.jobs.completed` ->
    /// `monque_jobs_completed_total`, `monque.job.duration` in `s` ->
    /// `monque_job_duration_seconds`). Call it within the Tokio runtime (the whole-queue
    /// gauges recount on it). False, registering nothing, when they already were.
    #[cfg(feature = "opentelemetry")]
    pub fn observe_metrics(&self, meter: &opentelemetry::metrics::Meter) -> bool {
        crate::runtime::otel_metrics::observe(
            meter,
            self.inner.metrics.clone(),
            self.inner.store.clone(),
            self.inner.running.clone(),
            tokio::runtime::Handle::current(),
        )
    }

    /// From now on, keeps the run and claim durations `telemetry` hands over.
    #[cfg_attr(not(feature = "node"), allow(dead_code))]
    pub(crate) fn keep_telemetry_samples(&self) {
        self.inner.metrics.keep_samples();
    }

    /// The metrics for OpenTelemetry instruments (the Node binding's), as JSON.
    #[cfg_attr(not(feature = "node"), allow(dead_code))]
    pub(crate) async fn telemetry(&self) -> Result<serde_json::Value> {
        self.inner
            .metrics
            .telemetry(&self.inner.store, self.inner.running.snapshot().len())
            .await
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
        self.inner.supervisor.register(name, handler, &options)
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
        self.inner.progress.update(id, claim_id, value).await
    }

    /// Calls `listener` for every event. See [`Event`].
    pub fn on_event(&self, listener: impl Fn(&Event) + Send + Sync + 'static) {
        self.inner.events.subscribe(Arc::new(listener));
    }

    /// Starts the workers and the background services (heartbeats, lease recovery,
    /// change-stream wake-ups). Calling it while started does nothing.
    pub fn start(&self) -> Result<()> {
        self.inner.supervisor.start()
    }

    /// Stops claiming at once, waits up to `timeout` (default `shutdown_timeout`) for
    /// running handlers, then aborts their signals and hands every unfinished job back
    /// to `pending`. Returns how many jobs were handed back.
    pub async fn stop(&self, timeout: Option<Duration>) -> Result<u64> {
        let timeout = timeout.unwrap_or(self.inner.shutdown_timeout);
        self.inner.supervisor.stop(timeout).await
    }

    /// True when the queue is started, no outage is on (see `server:unreachable`) and
    /// the server answered a ping. During an outage it answers false at once, without
    /// waiting for a ping to time out.
    pub async fn is_healthy(&self) -> bool {
        if !self.inner.supervisor.is_started() || self.inner.outage.is_down() {
            return false;
        }
        match self.ping().await {
            Ok(()) => {
                self.inner.outage.reached();
                true
            }
            Err(err) => {
                self.inner.outage.failed("health check", &err);
                false
            }
        }
    }

    /// How idle workers learn of new jobs right now.
    pub fn notify_mode(&self) -> NotifyMode {
        self.inner.supervisor.notify_mode()
    }

    /// This instance's `claimedBy` value.
    pub fn instance_id(&self) -> &str {
        self.inner.store.instance_id()
    }

    /// The jobs collection, for your own queries.
    pub fn collection(&self) -> &Collection<Document> {
        self.inner.store.jobs()
    }

    async fn ping(&self) -> Result<()> {
        self.inner.store.ping().await
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
