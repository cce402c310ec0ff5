//! Outages: while the server cannot be reached, every claim, heartbeat and poll of
//! every worker fails alike. Reporting each as `job:error` floods the logs just when an
//! operator needs them; the outage is reported once when it starts
//! (`server:unreachable`) and once when it ends (`server:reachable`, with how long it
//! lasted). Errors of other kinds are reported every time, as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mongodb::bson::DateTime;

use crate::error::Error;
use crate::events::{Event, EventBus};

pub(crate) struct Outage {
    events: Arc<EventBus>,
    /// Fast path for `reached`, called on every claim.
    down: AtomicBool,
    since: Mutex<Option<(Instant, DateTime)>>,
}

impl Outage {
    pub(crate) fn new(events: Arc<EventBus>) -> Self {
        Outage {
            events,
            down: AtomicBool::new(false),
            since: Mutex::new(None),
        }
    }

    /// Whether the server is unreachable, as the last operations found.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// An operation reached the server: ends an outage, if one was on.
    pub(crate) fn reached(&self) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let Some((started, _)) = self.since.lock().expect("outage lock").take() else {
            return;
        };
        self.down.store(false, Ordering::Relaxed);
        let down_for = started.elapsed();
        tracing::info!(
            down_ms = down_for.as_millis() as u64,
            "the server is reachable again"
        );
        self.events.emit(Event::ServerReachable { down_for });
    }

    /// An operation failed with `err` while doing `what` (e.g. "heartbeat"): a
    /// connection error starts (or continues, silently) an outage; any other error is
    /// reported as `job:error`.
    pub(crate) fn failed(&self, what: &str, err: &Error) {
        if !matches!(err, Error::Connection { .. }) {
            self.events.emit(Event::JobError {
                error: format!("{what} failed: {err}"),
                code: err.code(),
                job: None,
            });
            return;
        }
        let mut since = self.since.lock().expect("outage lock");
        if since.is_some() {
            tracing::debug!(%err, what, "still unreachable");
            return;
        }
        let now = DateTime::now();
        *since = Some((Instant::now(), now));
        self.down.store(true, Ordering::Relaxed);
        drop(since);
        tracing::warn!(%err, what, "the server is unreachable; reported once until it is back");
        self.events.emit(Event::ServerUnreachable {
            error: err.to_string(),
            since: now,
        });
    }
}
