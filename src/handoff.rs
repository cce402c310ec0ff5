//! Local hand-off: a job this instance enqueues while its worker for that name sits idle
//! is written already claimed by that worker and starts at once. The claim round trip
//! disappears from the pickup latency of a same-process enqueue. An idle worker found
//! nothing due at its last look, so no older or more urgent job is passed over; the
//! write is the same claim (fresh `claimId`, lease) that `claim.rs` would make.

use std::sync::Arc;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use tokio_util::sync::CancellationToken;

use crate::client::Inner;
use crate::error::Result;
use crate::handler::AbortSignal;
use crate::job::Job;
use crate::worker::{Slots, Worker};

/// What became of a job offered to a local worker.
pub(crate) enum HandedOff {
    /// Inserted claimed and running.
    Started(Box<Job>),
    /// Inserted, but stop() had passed its deadline: handed back to `pending`, as built.
    HandedBack,
    /// Claiming stopped first: nothing written; insert it as an ordinary `pending` job.
    NotTaken,
}

/// An idle local worker and the slot the handed-off job will run in.
pub(crate) struct HandOff {
    worker: Arc<Worker>,
    slots: Slots,
    claiming: CancellationToken,
    abort: CancellationToken,
}

impl Inner {
    /// The idle local worker ready to take a job of `name` now, if there is one. Takes
    /// the worker's idle mark: one hand-off per idle spell, after which the worker looks
    /// for due jobs again (anything that fell due meanwhile goes first from then on).
    pub(crate) fn hand_off_target(&self, name: &str) -> Option<HandOff> {
        let (claiming, abort) = self.started_tokens()?;
        if claiming.is_cancelled() || self.is_paused_here(name) {
            return None;
        }
        let worker = self
            .workers
            .read()
            .expect("workers lock")
            .get(name)?
            .clone();
        if !worker.take_idle() {
            return None;
        }
        // The slot first: woken, the worker's own loop would take it.
        let slots = worker.try_slot(self);
        worker.wake();
        let slots = slots?;
        Some(HandOff {
            worker,
            slots,
            claiming,
            abort,
        })
    }

    /// Inserts the job document claimed for `to`'s worker and runs it. Runs in its own
    /// task, so a caller that stops waiting cannot leave a claimed job that nobody runs.
    pub(crate) async fn insert_handed_off(
        self: &Arc<Self>,
        doc: Document,
        to: HandOff,
    ) -> Result<HandedOff> {
        let inner = self.clone();
        tokio::spawn(async move { inner.hand_off(doc, to).await })
            .await
            .map_err(|e| {
                crate::error::Error::InvalidState(if e.is_panic() {
                    "hand-off panicked"
                } else {
                    "hand-off cancelled"
                })
            })?
    }

    async fn hand_off(self: &Arc<Self>, mut doc: Document, to: HandOff) -> Result<HandedOff> {
        let claim_id = ObjectId::new();
        doc.extend(self.claim_set(claim_id, DateTime::now()));
        let id = doc
            .get_object_id("_id")
            .expect("built jobs have an ObjectId");
        let execution = (id, claim_id);
        // Running before the insert lands, so a stop() beginning now waits for this job
        // (or hands it back) and a cancel reaches it, like any other claimed job.
        let signal = AbortSignal::new(to.abort.child_token());
        self.running.insert(execution, signal.clone());
        if to.claiming.is_cancelled() {
            self.running.remove(&execution);
            return Ok(HandedOff::NotTaken);
        }
        if let Err(err) = self.coll.insert_one(&doc).await {
            self.running.remove(&execution);
            return Err(self.db_err(err));
        }
        if to.abort.is_cancelled() {
            // stop() passed its deadline while the insert was in flight and may have
            // handed back before it landed: hand this job back too, do not start it.
            if let Err(err) = self.release(&[execution]).await {
                tracing::warn!(%err, "could not hand back a job inserted during shutdown; it returns after its lease");
            }
            self.running.remove(&execution);
            return Ok(HandedOff::HandedBack);
        }
        match Job::from_document(doc) {
            Ok(job) => {
                self.execute_with(to.worker, job.clone(), to.slots, signal);
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
