//! Local hand-off: a job this instance enqueues while its worker for that name sits idle
//! is written already claimed by that worker and starts at once. The claim round trip
//! disappears from the pickup latency of a same-process enqueue. An idle worker found
//! nothing due at its last look, so no older or more urgent job is passed over; the
//! write is the same claim (fresh `claimId`, lease) a claim would make.

use std::sync::Arc;

use mongodb::bson::{oid::ObjectId, Document};
use tokio_util::sync::CancellationToken;

use super::executor::{Executor, RegisteredHandler};
use super::running::Running;
use super::slots::Slots;
use super::worker::{StartedTokens, Worker};
use crate::error::{Error, Result};
use crate::handler::AbortSignal;
use crate::job::Job;
use crate::store::Store;

/// What became of a job offered to a local worker.
pub(crate) enum HandedOff {
    /// Inserted claimed and running.
    Started(Box<Job>),
    /// Inserted, but stop() had passed its deadline: handed back to `pending`, as built.
    HandedBack,
    /// Claiming stopped first: nothing written; insert it as an ordinary `pending` job.
    NotTaken,
}

/// An idle local worker's handler and the slot the handed-off job will run in.
pub(crate) struct HandOff {
    handler: Arc<RegisteredHandler>,
    slots: Slots,
    claiming: CancellationToken,
    abort: CancellationToken,
}

impl HandOff {
    /// `worker`, if it sleeps idle with a free slot.
    pub(crate) fn to(worker: &Worker, tokens: &StartedTokens) -> Option<HandOff> {
        Some(HandOff {
            slots: worker.take_hand_off_slot()?,
            handler: worker.handler(),
            claiming: tokens.claiming.clone(),
            abort: tokens.abort.clone(),
        })
    }
}

/// Inserts handed-off jobs and starts them.
pub(crate) struct HandOffs {
    store: Arc<Store>,
    running: Arc<Running>,
    executor: Arc<Executor>,
}

impl HandOffs {
    pub(crate) fn new(store: Arc<Store>, running: Arc<Running>, executor: Arc<Executor>) -> Self {
        HandOffs {
            store,
            running,
            executor,
        }
    }

    /// Inserts the job document claimed for `to`'s worker and runs it. Runs in its own
    /// task, so a caller that stops waiting cannot leave a claimed job that nobody runs.
    pub(crate) async fn insert(self: &Arc<Self>, doc: Document, to: HandOff) -> Result<HandedOff> {
        let this = self.clone();
        tokio::spawn(async move { this.hand_off(doc, to).await })
            .await
            .map_err(|e| {
                Error::InvalidState(if e.is_panic() {
                    "hand-off panicked"
                } else {
                    "hand-off cancelled"
                })
            })?
    }

    async fn hand_off(&self, doc: Document, to: HandOff) -> Result<HandedOff> {
        let claim_id = ObjectId::new();
        let id = doc
            .get_object_id("_id")
            .expect("built jobs have an ObjectId");
        let execution = (id, claim_id);
        // Running before the insert lands, so a stop() beginning now waits for this job
        // (or hands it back) and a cancel reaches it, like any other claimed job.
        let signal = AbortSignal::new(to.abort.child_token());
        let sent = tokio::time::Instant::now();
        self.running.insert(execution, signal.clone(), sent);
        if to.claiming.is_cancelled() {
            self.running.remove(&execution);
            return Ok(HandedOff::NotTaken);
        }
        let doc = match self.store.insert_claimed(doc, claim_id).await {
            Ok(doc) => doc,
            Err(err) => {
                self.running.remove(&execution);
                return Err(err);
            }
        };
        if to.abort.is_cancelled() {
            // stop() passed its deadline while the insert was in flight and may have
            // handed back before it landed: hand this job back too, do not start it.
            if let Err(err) = self.store.release(&[execution]).await {
                tracing::warn!(%err, "could not hand back a job inserted during shutdown; it returns after its lease");
            }
            self.running.remove(&execution);
            return Ok(HandedOff::HandedBack);
        }
        match Job::from_document(doc) {
            Ok(job) => {
                self.executor
                    .execute_with(to.handler, job.clone(), to.slots, signal, sent);
                Ok(HandedOff::Started(Box::new(job)))
            }
            Err(err) => {
                // Cannot happen for a document built here; if it did, lease recovery
                // would hand the job to a worker after one lease.
                self.running.remove(&execution);
                Err(err)
            }
        }
    }
}
