//! Presence: a started instance says, every heartbeat, that it is alive and which job
//! names it handles (store/instances.rs). Operators get the list of live instances,
//! and every instance checks, at most once a minute, for due jobs that no live
//! instance handles (a job name nobody registers, a schedule whose handler was
//! removed): they would wait forever, silently, so they are reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mongodb::bson::DateTime;

use super::notify::ModeCell;
use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::store::Store;

/// A job counts as orphaned once it has been due this long with no worker anywhere:
/// long enough for a deployment to bring its workers up.
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// How often one instance looks for orphans (the query reads every due pending job).
const ORPHAN_CHECK_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) struct Presence {
    store: Arc<Store>,
    events: Arc<EventBus>,
    mode: Arc<ModeCell>,
    /// The names this instance handles, with their workers' `max_retries`.
    names: RwLock<BTreeMap<String, u32>>,
    started_at: Mutex<DateTime>,
    /// Not before a lease has passed since start: until then other instances' presence
    /// may not be written yet (or be a dead one's). Then every ORPHAN_CHECK_INTERVAL.
    next_orphan_check: Mutex<Instant>,
    lease_duration: Duration,
}

impl Presence {
    pub(crate) fn new(
        store: Arc<Store>,
        events: Arc<EventBus>,
        mode: Arc<ModeCell>,
        lease_duration: Duration,
    ) -> Self {
        Presence {
            store,
            events,
            mode,
            names: RwLock::default(),
            started_at: Mutex::new(DateTime::now()),
            next_orphan_check: Mutex::new(Instant::now() + lease_duration),
            lease_duration,
        }
    }

    /// This instance now has a worker for `name`, retrying its jobs `max_retries` times.
    pub(crate) fn handle(&self, name: &str, max_retries: u32) {
        self.names
            .write()
            .expect("names lock")
            .insert(name.to_owned(), max_retries);
    }

    /// The `max_retries` of this instance's worker for `name`, if it has one.
    pub(crate) fn max_retries(&self, name: &str) -> Option<u32> {
        self.names.read().expect("names lock").get(name).copied()
    }

    pub(crate) fn started(&self) {
        *self.started_at.lock().expect("started lock") = self.store.now();
        *self.next_orphan_check.lock().expect("orphan check lock") =
            Instant::now() + self.lease_duration;
    }

    /// Says this instance is alive, with what it handles.
    pub(crate) async fn publish(&self) -> Result<()> {
        let names: Vec<String> = self
            .names
            .read()
            .expect("names lock")
            .keys()
            .cloned()
            .collect();
        let started_at = *self.started_at.lock().expect("started lock");
        self.store
            .publish_instance(&names, started_at, self.mode.get().as_str())
            .await
    }

    /// Says this instance is gone (on stop), so nobody counts on its workers.
    pub(crate) async fn withdraw(&self) {
        if let Err(err) = self.store.withdraw_instance().await {
            tracing::warn!(%err, "could not withdraw this instance; it expires after a lease");
        }
    }

    /// Reports due jobs no live instance handles, overdue by `ORPHAN_GRACE`, one event
    /// per name; a lease after start, then at most once per `ORPHAN_CHECK_INTERVAL`.
    pub(crate) async fn check_orphans(&self) -> Result<()> {
        {
            let mut next = self.next_orphan_check.lock().expect("orphan check lock");
            if Instant::now() < *next {
                return Ok(());
            }
            *next = Instant::now() + ORPHAN_CHECK_INTERVAL;
        }
        let overdue = DateTime::from_millis(
            self.store.now().timestamp_millis() - ORPHAN_GRACE.as_millis() as i64,
        );
        let live = self.store.live_instances().await?;
        for orphans in self.store.orphans(&live, overdue, None).await? {
            tracing::warn!(
                name = %orphans.name,
                count = orphans.count,
                "due jobs that no live instance handles: nothing runs them until a worker for their name starts"
            );
            self.events.emit(Event::JobsOrphaned {
                name: orphans.name,
                count: orphans.count,
                oldest_due: orphans.oldest_due,
            });
        }
        Ok(())
    }
}
