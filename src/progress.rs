//! Progress: a running handler reports how far it got (a number or small JSON). The
//! value is written on the job, fenced by its execution's claim so a run that lost its
//! lease cannot overwrite a newer one, and announced as `job:progress`.

use mongodb::bson::{doc, oid::ObjectId, DateTime};

use crate::client::Inner;
use crate::completer::fenced_execution;
use crate::error::Result;
use crate::events::Event;

/// Largest progress value, as JSON bytes: it is rewritten often, keep it small.
pub const MAX_PROGRESS_SIZE: usize = 4 * 1024;

impl Inner {
    /// Stores `value` as the progress of the execution `(id, claim_id)`. False when that
    /// execution no longer holds the job (lease lost, or it already ended).
    pub(crate) async fn update_progress(
        &self,
        id: ObjectId,
        claim_id: ObjectId,
        value: serde_json::Value,
    ) -> Result<bool> {
        let stored = crate::enqueue::storable(&value, MAX_PROGRESS_SIZE)?;
        let res = self
            .coll
            .update_one(
                fenced_execution(id, Some(claim_id)),
                doc! { "$set": { "progress": stored, "updatedAt": DateTime::now() } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if res.matched_count == 0 {
            return Ok(false);
        }
        self.emit(Event::JobProgress {
            id,
            progress: value,
        });
        Ok(true)
    }
}
