//! uniqueKey: at most one `pending`/`processing` job per `(name, uniqueKey)`.
//!
//! Each active key has a lock document in `<collection>_unique` whose `_id` is the key
//! and whose `jobId` names the job holding it. Only inserts and deletes touch locks, so
//! the `_id` index alone enforces uniqueness, on every MongoDB version (no partial index
//! needed). A lock is deleted when its job finishes; a lock left behind (a crash between
//! two writes) is noticed and healed by the next enqueue of that key:
//!
//! - holder job active    -> that job is the answer (dedup);
//! - holder job finished  -> the lock is stale: delete it (only if still that holder), retry;
//! - holder job missing, lock young -> its enqueuer is (or died) between the lock and
//!   the job insert: insert the job under the holder's id, so whichever insert lands
//!   first wins and nobody creates a second job;
//! - holder job missing, lock old (over two minutes) -> stale, as above.

use mongodb::bson::{doc, oid::ObjectId, Bson, Document};
use mongodb::options::{ReadPreference, SelectionCriteria};

use super::Store;
use crate::error::{Error, Result};
use crate::job::Job;

pub(super) fn lock_id(name: &str, key: &str) -> Document {
    doc! { "name": name, "key": key }
}

fn lock_of(job_doc: &Document) -> Option<Document> {
    let key = job_doc.get_str("uniqueKey").ok()?;
    let name = job_doc.get_str("name").ok()?;
    Some(lock_id(name, key))
}

/// Lock and holder reads decide dedup: a stale secondary read could drop an enqueue.
fn primary() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::Primary)
}

fn is_dup(err: &mongodb::error::Error) -> bool {
    Error::is_duplicate_key(err)
}

/// What a lock's holder means for whoever wants the key.
pub(super) enum Holder {
    /// The lock vanished: try to take it again.
    Gone,
    /// An active job holds the key.
    Active(Box<Job>),
    /// The holder finished (or its job vanished long ago): the lock may be deleted.
    Stale(ObjectId),
    /// The holder job does not exist yet: its enqueuer is between its two inserts.
    InFlight(ObjectId),
}

/// A lock younger than this whose job is missing belongs to an enqueue in flight (it
/// inserts the lock, then the job); older, its enqueuer died and the lock is stale. Much
/// longer than the two round trips between the inserts, even through a failover.
const IN_FLIGHT_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// How many times a contended key is looked at again before giving up.
const MAX_ATTEMPTS: usize = 8;

impl Store {
    /// Inserts `job_doc` unless an active job holds its key. Returns the job that holds
    /// the key afterwards and whether it is the one just created.
    pub(crate) async fn enqueue_unique(&self, job_doc: Document) -> Result<(Job, bool)> {
        let due = super::groups::group_of(&job_doc);
        let (job, created) = self.enqueue_unique_once(job_doc).await?;
        if let (true, Some(due)) = (created, due) {
            self.note_due_after_write(&[due]).await;
        }
        Ok((job, created))
    }

    async fn enqueue_unique_once(&self, job_doc: Document) -> Result<(Job, bool)> {
        let lock = lock_of(&job_doc).expect("enqueue_unique needs name and uniqueKey");
        let id = job_doc
            .get_object_id("_id")
            .expect("built jobs have an _id");
        for _ in 0..MAX_ATTEMPTS {
            let taken = self
                .locks
                .insert_one(doc! { "_id": &lock, "jobId": id, "createdAt": self.now() })
                .await;
            match taken {
                Ok(_) => return self.insert_under(job_doc, id).await,
                Err(e) if is_dup(&e) => {}
                Err(e) => return Err(self.db_err(e)),
            }
            if let Some(found) = self.resolve_holder(&lock, &job_doc).await? {
                return Ok(found);
            }
        }
        Err(Error::InvalidState(
            "uniqueKey is heavily contended; try again",
        ))
    }

    /// Looks at the job holding `lock`. `Some` is the final answer; `None` means the lock
    /// was stale or vanished and taking it should be tried again.
    async fn resolve_holder(
        &self,
        lock: &Document,
        job_doc: &Document,
    ) -> Result<Option<(Job, bool)>> {
        match self.lock_holder(lock).await? {
            Holder::Gone => Ok(None),
            Holder::Active(job) => Ok(Some((*job, false))),
            Holder::Stale(holder) => {
                self.drop_lock(lock, holder).await?;
                Ok(None)
            }
            Holder::InFlight(holder) => {
                let (job, created) = self.insert_under(job_doc.clone(), holder).await?;
                if created && !self.lock_still_names(lock, holder).await? {
                    // The lock went away while we healed (a delete took the holder out):
                    // the job just inserted holds no key, so take it back out and retry.
                    self.coll
                        .delete_one(doc! { "_id": holder, "status": "pending", "claimId": { "$exists": false } })
                        .await
                        .map_err(|e| self.db_err(e))?;
                    return Ok(None);
                }
                Ok(Some((job, created)))
            }
        }
    }

    /// Who holds `lock`, and whether that still counts.
    pub(super) async fn lock_holder(&self, lock: &Document) -> Result<Holder> {
        let Some(current) = self
            .locks
            .find_one(doc! { "_id": lock })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?
        else {
            return Ok(Holder::Gone);
        };
        let Ok(holder) = current.get_object_id("jobId") else {
            return Ok(Holder::Gone);
        };
        let job = self
            .coll
            .find_one(doc! { "_id": holder })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(match job {
            Some(doc) => {
                let job = Job::from_document(doc)?;
                if job.status.is_active() {
                    Holder::Active(Box::new(job))
                } else {
                    Holder::Stale(holder)
                }
            }
            None => {
                let taken = current
                    .get_datetime("createdAt")
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(0);
                let age = self.now().timestamp_millis() - taken;
                if age < IN_FLIGHT_GRACE.as_millis() as i64 {
                    Holder::InFlight(holder)
                } else {
                    Holder::Stale(holder)
                }
            }
        })
    }

    /// Deletes `lock` if it still names `holder`.
    pub(super) async fn drop_lock(&self, lock: &Document, holder: ObjectId) -> Result<()> {
        self.locks
            .delete_one(doc! { "_id": lock, "jobId": holder })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Deletes the locks naming any of `jobs` (which must all be finished or gone).
    pub(crate) async fn drop_locks_of(&self, jobs: &[ObjectId]) -> Result<()> {
        for chunk in jobs.chunks(1000) {
            self.locks
                .delete_many(doc! { "jobId": { "$in": chunk } })
                .await
                .map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    /// After healing: makes sure `lock` names `holder`, re-creating it if it vanished.
    /// False when another job holds the key now.
    async fn lock_still_names(&self, lock: &Document, holder: ObjectId) -> Result<bool> {
        match self
            .locks
            .insert_one(doc! { "_id": lock, "jobId": holder, "createdAt": self.now() })
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if is_dup(&e) => {}
            Err(e) => return Err(self.db_err(e)),
        }
        let current = self
            .locks
            .find_one(doc! { "_id": lock })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(current.and_then(|l| l.get_object_id("jobId").ok()) == Some(holder))
    }

    /// Inserts the job with `_id = id`; if that id exists already, returns the existing job.
    async fn insert_under(&self, mut job_doc: Document, id: ObjectId) -> Result<(Job, bool)> {
        job_doc.insert("_id", id);
        match self.coll.insert_one(&job_doc).await {
            Ok(_) => Ok((Job::from_document(job_doc)?, true)),
            Err(e) if is_dup(&e) => {
                let existing = self
                    .coll
                    .find_one(doc! { "_id": id })
                    .selection_criteria(primary())
                    .await
                    .map_err(|e| self.db_err(e))?;
                let existing = existing.ok_or(Error::InvalidState(
                    "job vanished while enqueueing; try again",
                ))?;
                Ok((Job::from_document(existing)?, false))
            }
            Err(e) => Err(self.db_err(e)),
        }
    }

    /// Batch form: locks in one round trip, jobs in one more; keys already held go
    /// through the one-by-one path. Returns the names of the jobs created, and how many
    /// were deduplicated.
    pub(crate) async fn enqueue_unique_batch(
        &self,
        docs: Vec<Document>,
    ) -> Result<(Vec<String>, u64)> {
        let now = self.now();
        let locks: Vec<Document> = docs
            .iter()
            .map(|d| doc! { "_id": lock_of(d).expect("unique batch"), "jobId": d.get("_id").cloned().unwrap_or(Bson::Null), "createdAt": now })
            .collect();
        let conflicts = self.insert_many_collecting_dups(&self.locks, locks).await?;
        let (contended, free): (Vec<_>, Vec<_>) = docs
            .into_iter()
            .enumerate()
            .partition(|(i, _)| conflicts.contains(i));
        let free: Vec<Document> = free.into_iter().map(|(_, d)| d).collect();
        let names: Vec<String> = free
            .iter()
            .map(|d| d.get_str("name").unwrap_or_default().to_owned())
            .collect();
        let due: Vec<_> = free.iter().filter_map(super::groups::group_of).collect();
        // A job id can already exist only if another enqueue helped us (see module docs).
        let helped = self.insert_many_collecting_dups(&self.coll, free).await;
        self.note_due_after_write(&due).await;
        let helped = helped?;
        let mut created: Vec<String> = names
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !helped.contains(i))
            .map(|(_, n)| n)
            .collect();
        let mut deduplicated = helped.len() as u64;
        for (_, d) in contended {
            let (job, was_created) = self.enqueue_unique(d).await?;
            if was_created {
                created.push(job.name);
            } else {
                deduplicated += 1;
            }
        }
        Ok((created, deduplicated))
    }

    /// `insert_many` (unordered) that returns the indexes refused as duplicates and fails
    /// on any other error.
    async fn insert_many_collecting_dups(
        &self,
        coll: &mongodb::Collection<Document>,
        docs: Vec<Document>,
    ) -> Result<std::collections::HashSet<usize>> {
        use mongodb::error::ErrorKind;
        if docs.is_empty() {
            return Ok(Default::default());
        }
        match coll.insert_many(docs).ordered(false).await {
            Ok(_) => Ok(Default::default()),
            Err(e) => match &*e.kind {
                ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
                    let errors = m.write_errors.as_deref().unwrap_or_default();
                    if errors.iter().all(|w| w.code == 11000) {
                        Ok(errors.iter().map(|w| w.index).collect())
                    } else {
                        Err(self.db_err(e))
                    }
                }
                _ => Err(self.db_err(e)),
            },
        }
    }

    /// Frees the key of a job that just left the active set. Best effort: a lock left
    /// behind is healed by the next enqueue of that key.
    pub(crate) async fn release_key(&self, job: &Job) {
        let Some(key) = &job.unique_key else { return };
        let res = self
            .locks
            .delete_one(doc! { "_id": lock_id(&job.name, key), "jobId": job.id })
            .await;
        if let Err(err) = res {
            tracing::debug!(job.id = %job.id, %err, "could not free uniqueKey; the next enqueue heals it");
        }
    }
}
