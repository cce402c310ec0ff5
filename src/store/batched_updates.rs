//! Fenced single-job updates that are ready at about the same time, sent as one
//! `bulkWrite` (MongoDB 8.0+): one round trip for many run ends. Each update keeps its
//! own filter (its `(_id, claimId)` fence) and gets its own result, so one execution
//! that lost its lease is refused alone while the others are written.
//!
//! Group commit, with no timer: the first update to wait starts a flush, which first
//! lets the tasks already woken add theirs; updates that arrive while a flush is on
//! the wire go in the next one. A lone update waits for nothing but its own round
//! trip, and under load the batches grow by themselves. Servers before 8.0 have no
//! `bulkWrite`: there every update is its own `updateOne`, as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use mongodb::bson::Document;
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::options::{UpdateOneModel, WriteConcern};
use mongodb::Collection;
use tokio::sync::oneshot;

/// Most updates in one `bulkWrite`; more wait for the next.
const MAX_BATCH: usize = 128;

/// Whether an update matched its document (`matched_count == 1`).
type Matched = std::result::Result<bool, DriverError>;

struct Waiting {
    filter: Document,
    update: Document,
    reply: oneshot::Sender<Matched>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A flush task is running; it takes whatever is waiting until nothing is.
    flushing: bool,
}

pub(super) struct BatchedUpdates {
    coll: Collection<Document>,
    write_concern: Option<WriteConcern>,
    queue: Mutex<Queue>,
    /// Cleared when the server turns out to have no `bulkWrite` (before 8.0).
    bulk_supported: AtomicBool,
}

impl BatchedUpdates {
    pub(super) fn new(coll: Collection<Document>, write_concern: Option<WriteConcern>) -> Self {
        BatchedUpdates {
            coll,
            write_concern,
            queue: Mutex::default(),
            bulk_supported: AtomicBool::new(true),
        }
    }

    /// `updateOne(filter, update)`, possibly in one round trip with others: true when
    /// the filter matched.
    pub(super) async fn update_one(
        self: &Arc<Self>,
        filter: Document,
        update: Document,
    ) -> Matched {
        if !self.bulk_supported.load(Ordering::Relaxed) {
            return self.single(filter, update).await;
        }
        let (reply, answer) = oneshot::channel();
        let start_flush = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.waiting.push(Waiting {
                filter,
                update,
                reply,
            });
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start_flush {
            // Its own task: a caller that stops waiting must not strand the others.
            let me = self.clone();
            tokio::spawn(async move { me.flush().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(DriverError::custom(
                "the batched update was dropped before it was sent",
            ))
        })
    }

    async fn flush(&self) {
        // Runs the tasks already woken first: the completions that are ready now join.
        tokio::task::yield_now().await;
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.waiting.is_empty() {
                    queue.flushing = false;
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect()
            };
            self.send(batch).await;
        }
    }

    async fn single(&self, filter: Document, update: Document) -> Matched {
        let res = self.coll.update_one(filter, update).await?;
        Ok(res.matched_count == 1)
    }

    async fn send(&self, batch: Vec<Waiting>) {
        if batch.len() == 1 || !self.bulk_supported.load(Ordering::Relaxed) {
            return self.each_alone(batch).await;
        }
        let namespace = self.coll.namespace();
        let models = batch.iter().map(|w| {
            UpdateOneModel::builder()
                .namespace(namespace.clone())
                .filter(w.filter.clone())
                .update(w.update.clone())
                .build()
        });
        tracing::trace!(updates = batch.len(), "batched updates sent");
        let mut bulk = self
            .coll
            .client()
            .bulk_write(models)
            .ordered(false)
            .verbose_results();
        if let Some(wc) = &self.write_concern {
            bulk = bulk.write_concern(wc.clone());
        }
        match bulk.await {
            Ok(res) => {
                for (i, w) in batch.into_iter().enumerate() {
                    let answer = match res.update_results.get(&i) {
                        Some(r) => Ok(r.matched_count == 1),
                        None => Err(DriverError::custom(format!(
                            "bulkWrite returned no result for update {i}"
                        ))),
                    };
                    let _ = w.reply.send(answer);
                }
            }
            Err(err) => match *err.kind {
                // Checked before anything is sent: the server predates bulkWrite.
                ErrorKind::IncompatibleServer { .. } => {
                    tracing::debug!(
                        "the server has no bulkWrite (MongoDB < 8.0): updates go one by one"
                    );
                    self.bulk_supported.store(false, Ordering::Relaxed);
                    self.each_alone(batch).await
                }
                ErrorKind::BulkWrite(ref failed) => {
                    let partial = match &failed.partial_result {
                        Some(mongodb::error::PartialBulkWriteResult::Verbose(v)) => {
                            Some(&v.update_results)
                        }
                        _ => None,
                    };
                    for (i, w) in batch.into_iter().enumerate() {
                        let answer = match partial.and_then(|p| p.get(&i)) {
                            Some(r) if !failed.write_errors.contains_key(&i) => {
                                Ok(r.matched_count == 1)
                            }
                            _ => Err(err.clone()),
                        };
                        let _ = w.reply.send(answer);
                    }
                }
                _ => {
                    for w in batch {
                        let _ = w.reply.send(Err(err.clone()));
                    }
                }
            },
        }
    }

    /// Each update as its own `updateOne`, all at once.
    async fn each_alone(&self, batch: Vec<Waiting>) {
        join_all(batch.into_iter().map(|w| async move {
            let answer = self.single(w.filter, w.update).await;
            let _ = w.reply.send(answer);
        }))
        .await;
    }
}
