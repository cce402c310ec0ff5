//! The supervisor: the registered workers and the lifecycle of the background services.
//! `start()` spawns a task per worker, the heartbeat, the change-stream notifier and
//! the retention sweep; `stop()` winds them down (shutdown.rs). It also finds the idle
//! local worker a new job can be handed to (handoff.rs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mongodb::bson::Document;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::doorbell::Doorbells;
use super::executor::RegisteredHandler;
use super::handoff::{HandOff, HandOffs, HandedOff};
use super::heartbeat::Heartbeat;
use super::notify::{ModeCell, Notifier, NotifyMode};
use super::pauses::Pauses;
use super::presence::Presence;
use super::retention::Retention;
use super::running::Running;
use super::shutdown::{self, Services};
use super::slots::SlotPool;
use super::worker::{StartedTokens, Worker, WorkerServices};
use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::handler::Handler;
use crate::options::WorkerOptions;
use crate::store::{GroupLimits, Store};

#[derive(Default)]
enum Lifecycle {
    #[default]
    Stopped,
    Started(Services),
    /// `stop()` is draining: `start()` must wait for it, or it would share `running`.
    Stopping,
}

/// Per-worker settings a worker's own options do not override.
pub(crate) struct WorkerDefaults {
    pub(crate) concurrency: usize,
    pub(crate) max_retries: u32,
    /// Shared by every worker with `instance_concurrency`.
    pub(crate) instance_slots: Option<Arc<Semaphore>>,
}

/// The services `start()` runs besides the workers.
pub(crate) struct Background {
    pub(crate) heartbeat: Arc<Heartbeat>,
    /// Only with `change_streams`.
    pub(crate) notifier: Option<Arc<Notifier>>,
    pub(crate) retention: Arc<Retention>,
}

pub(crate) struct Supervisor {
    workers: RwLock<HashMap<String, Arc<Worker>>>,
    defaults: WorkerDefaults,
    worker_services: Arc<WorkerServices>,
    background: Background,
    hand_offs: Arc<HandOffs>,
    doorbells: Arc<Doorbells>,
    pauses: Arc<Pauses>,
    presence: Arc<Presence>,
    running: Arc<Running>,
    store: Arc<Store>,
    events: Arc<EventBus>,
    mode: Arc<ModeCell>,
    lifecycle: Mutex<Lifecycle>,
    /// Held for the whole of `stop()`, so a second `stop()` waits for the first.
    stopping: tokio::sync::Mutex<()>,
}

/// What the supervisor is built from.
pub(crate) struct SupervisorParts {
    pub(crate) defaults: WorkerDefaults,
    pub(crate) worker_services: Arc<WorkerServices>,
    pub(crate) background: Background,
    pub(crate) hand_offs: Arc<HandOffs>,
    pub(crate) doorbells: Arc<Doorbells>,
    pub(crate) pauses: Arc<Pauses>,
    pub(crate) presence: Arc<Presence>,
    pub(crate) running: Arc<Running>,
    pub(crate) store: Arc<Store>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) mode: Arc<ModeCell>,
}

impl Supervisor {
    pub(crate) fn new(parts: SupervisorParts) -> Self {
        Supervisor {
            workers: RwLock::default(),
            defaults: parts.defaults,
            worker_services: parts.worker_services,
            background: parts.background,
            hand_offs: parts.hand_offs,
            doorbells: parts.doorbells,
            pauses: parts.pauses,
            presence: parts.presence,
            running: parts.running,
            store: parts.store,
            events: parts.events,
            mode: parts.mode,
            lifecycle: Mutex::default(),
            stopping: tokio::sync::Mutex::new(()),
        }
    }

    /// Registers the worker for `name`; starts it at once if the queue is started.
    pub(crate) fn register(
        &self,
        name: &str,
        handler: Arc<dyn Handler>,
        options: &WorkerOptions,
    ) -> Result<()> {
        let max_retries = options.max_retries.unwrap_or(self.defaults.max_retries);
        let handler = Arc::new(RegisteredHandler {
            handler,
            max_retries,
            timeout: options.timeout,
        });
        let slots = SlotPool::new(
            options.concurrency.unwrap_or(self.defaults.concurrency),
            self.defaults.instance_slots.clone(),
        );
        let limits = GroupLimits {
            concurrency: options.group_concurrency,
            limiter: options.group_limiter,
        };
        let worker = Arc::new(Worker::new(name, handler, options.limiter, limits, slots));
        let previous = {
            let mut workers = self.workers.write().expect("workers lock");
            if workers.contains_key(name) && !options.replace {
                return Err(Error::WorkerExists(name.to_owned()));
            }
            self.doorbells.insert(name, worker.doorbell());
            self.presence.handle(name, max_retries);
            workers.insert(name.to_owned(), worker.clone())
        };
        if let Some(old) = previous {
            old.retire();
        }
        if let Lifecycle::Started(services) = &mut *self.lifecycle.lock().expect("lifecycle lock") {
            let tokens = tokens_of(services);
            services
                .workers
                .push(worker.spawn(self.worker_services.clone(), &tokens));
        }
        Ok(())
    }

    /// Starts the workers and the background services. Calling it while started does
    /// nothing.
    pub(crate) fn start(&self) -> Result<()> {
        let mut lifecycle = self.lifecycle.lock().expect("lifecycle lock");
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
            workers: Vec::new(),
            maintenance: Vec::new(),
        };
        self.mode.set(NotifyMode::Polling);
        self.presence.started();
        let workers: Vec<_> = self
            .workers
            .read()
            .expect("workers lock")
            .values()
            .cloned()
            .collect();
        let tokens = tokens_of(&services);
        for worker in &workers {
            services
                .workers
                .push(worker.spawn(self.worker_services.clone(), &tokens));
        }
        let stop = &services.background;
        let bg = &self.background;
        services
            .maintenance
            .push(tokio::spawn(bg.heartbeat.clone().run(stop.clone())));
        if bg.retention.is_set() {
            services
                .maintenance
                .push(tokio::spawn(bg.retention.clone().run(stop.clone())));
        }
        if let Some(notifier) = &bg.notifier {
            services
                .maintenance
                .push(tokio::spawn(notifier.clone().run(stop.clone())));
        }
        *lifecycle = Lifecycle::Started(services);
        tracing::info!(instance = %self.store.instance_id(), workers = workers.len(), "monque started");
        Ok(())
    }

    /// Stops claiming at once, waits up to `timeout` for running handlers, then aborts
    /// their signals and hands every unfinished job back to `pending`. Returns how many
    /// jobs were handed back.
    pub(crate) async fn stop(&self, timeout: Duration) -> Result<u64> {
        let _one_at_a_time = self.stopping.lock().await;
        let services = {
            let mut lifecycle = self.lifecycle.lock().expect("lifecycle lock");
            match std::mem::replace(&mut *lifecycle, Lifecycle::Stopping) {
                Lifecycle::Started(services) => services,
                other => {
                    *lifecycle = other;
                    return Ok(0);
                }
            }
        };
        let released = shutdown::run(services, &self.running, &self.store, timeout).await;
        self.presence.withdraw().await;
        self.mode.set(NotifyMode::Off);
        if let Ok(count @ 1..) = released {
            self.events.emit(Event::JobsReleased { count });
        }
        tracing::info!(instance = %self.store.instance_id(), "monque stopped");
        *self.lifecycle.lock().expect("lifecycle lock") = Lifecycle::Stopped;
        released
    }

    pub(crate) fn is_started(&self) -> bool {
        matches!(
            *self.lifecycle.lock().expect("lifecycle lock"),
            Lifecycle::Started(_)
        )
    }

    /// How idle workers learn of new jobs right now.
    pub(crate) fn notify_mode(&self) -> NotifyMode {
        self.mode.get()
    }

    /// The idle local worker a new job of `name` can be handed to now, if there is one
    /// (started, claiming, not paused, idle with a free slot).
    /// A job of a group was enqueued for `name`: its worker here claims fairly.
    pub(crate) fn saw_group(&self, name: &str) {
        if let Some(worker) = self.workers.read().expect("workers lock").get(name) {
            worker.saw_group();
        }
    }

    pub(crate) fn hand_off_target(&self, name: &str) -> Option<HandOff> {
        let lifecycle = self.lifecycle.lock().expect("lifecycle lock");
        let Lifecycle::Started(services) = &*lifecycle else {
            return None;
        };
        if services.claiming.is_cancelled() || self.pauses.covers(name) {
            return None;
        }
        let worker = self
            .workers
            .read()
            .expect("workers lock")
            .get(name)
            .cloned()?;
        HandOff::to(&worker, &tokens_of(services))
    }

    /// Writes `doc` claimed for the worker `to` names and starts it.
    pub(crate) async fn hand_off(&self, doc: Document, to: HandOff) -> Result<HandedOff> {
        self.hand_offs.insert(doc, to).await
    }
}

fn tokens_of(services: &Services) -> StartedTokens {
    StartedTokens {
        claiming: services.claiming.clone(),
        abort: services.abort.clone(),
    }
}
