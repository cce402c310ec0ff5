//! Progress: a running handler reports how far it got (a number or small JSON). The
//! value is written on the job, fenced by its execution's claim so a run that lost its
//! lease cannot overwrite a newer one, and announced as `job:progress`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use mongodb::bson::oid::ObjectId;

use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::handler::ProgressSink;
use crate::new_job::storable;
use crate::store::Store;

/// Largest progress value, as JSON bytes: it is rewritten often, keep it small.
pub const MAX_PROGRESS_SIZE: usize = 4 * 1024;

pub(crate) struct Progress {
    store: Arc<Store>,
    events: Arc<EventBus>,
}

impl Progress {
    pub(crate) fn new(store: Arc<Store>, events: Arc<EventBus>) -> Self {
        Progress { store, events }
    }

    /// Stores `value` as the progress of the execution `(id, claim_id)`. False when that
    /// execution no longer holds the job (lease lost, or it already ended).
    pub(crate) async fn update(
        &self,
        id: ObjectId,
        claim_id: ObjectId,
        value: serde_json::Value,
    ) -> Result<bool> {
        let stored = storable(&value, MAX_PROGRESS_SIZE)?;
        if !self.store.set_progress(id, claim_id, stored).await? {
            return Ok(false);
        }
        self.events.emit(Event::JobProgress {
            id,
            progress: value,
        });
        Ok(true)
    }
}

impl ProgressSink for Progress {
    fn update_progress(
        &self,
        id: ObjectId,
        claim_id: ObjectId,
        value: serde_json::Value,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(self.update(id, claim_id, value))
    }
}
