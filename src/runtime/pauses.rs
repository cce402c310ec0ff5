//! This instance's view of the pauses (store/pauses.rs keeps them): workers and
//! hand-offs read it on every claim, so it lives in memory. Refreshed after this
//! instance's own pause/resume at once, and every heartbeat for the others'.

use std::sync::{Arc, RwLock};

use super::doorbell::Doorbells;
use crate::error::Result;
use crate::store::{Paused, Store};

pub(crate) struct Pauses {
    store: Arc<Store>,
    doorbells: Arc<Doorbells>,
    known: RwLock<Paused>,
}

impl Pauses {
    pub(crate) fn new(store: Arc<Store>, doorbells: Arc<Doorbells>) -> Self {
        Pauses {
            store,
            doorbells,
            known: RwLock::default(),
        }
    }

    /// Whether jobs of `name` may not be claimed here now.
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.known.read().expect("pauses lock").covers(name)
    }

    /// Re-reads the pauses; wakes the workers when something was resumed.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let now = self.store.read_pauses().await?;
        let resumed = {
            let mut known = self.known.write().expect("pauses lock");
            let resumed = known.resumed_in(&now);
            *known = now;
            resumed
        };
        if resumed {
            self.doorbells.ring_all();
        }
        Ok(())
    }
}
