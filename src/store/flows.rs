//! Flows: a job enqueued with `depends_on` is `waiting` until every job it depends on
//! has completed, then becomes `pending` (and runs at its `run_at`). If one of them
//! ends `failed` or `cancelled`, or is deleted, the waiting job fails at once, and so
//! do the jobs waiting on it, down the flow.
//!
//! Every transition out of `waiting` is one update guarded by `status: waiting`, so
//! the two places that settle a job (right after its insert, and after a dependency
//! ends) cannot both move it. A dependency that ends before the insert is seen by the
//! first, one that ends after it by the second.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Document};
use mongodb::options::{ReadPreference, ReturnDocument, SelectionCriteria};

use super::Store;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::status::JobStatus;

/// Whether a job may move on is decided on what the primary has: a stale secondary
/// read could leave a job waiting for a dependency that already ended.
fn primary() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::Primary)
}

/// Waiting jobs one heartbeat re-checks at most (stalled_waiting).
const STALLED_BATCH: i64 = 100;

/// A waiting job's id and dependencies, from a document projected to both.
fn waiting_job(doc: &Document) -> Option<(ObjectId, Vec<ObjectId>)> {
    let id = doc.get_object_id("_id").ok()?;
    let deps = doc
        .get_array("dependsOn")
        .map(|a| a.iter().filter_map(|d| d.as_object_id()).collect())
        .unwrap_or_default();
    Some((id, deps))
}

/// What settling a waiting job did.
pub(crate) enum Settled {
    /// Its dependencies have not all completed: it waits on.
    Blocked,
    /// All completed: it is `pending` now.
    Pending(Job),
    /// One cannot complete any more: it is `failed` now.
    Failed(Job),
    /// Someone else moved it out of `waiting` meanwhile.
    Gone,
}

/// Where a waiting job's dependencies stand.
enum Verdict {
    Ready,
    Blocked,
    Broken { dependency: ObjectId, why: String },
}

impl Store {
    /// Inserts a job with dependencies as `waiting`, after checking they exist and can
    /// complete. Returns its dependencies, each once: settle it against them next.
    pub(crate) async fn insert_waiting(
        &self,
        doc: &Document,
        deps: &[ObjectId],
    ) -> Result<Vec<ObjectId>> {
        let unique: HashSet<ObjectId> = deps.iter().copied().collect();
        let ids: Vec<ObjectId> = unique.iter().copied().collect();
        let mut found = self
            .coll
            .find(doc! { "_id": { "$in": &ids } })
            .projection(doc! { "_id": 1, "repeat": 1 })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?;
        let mut seen = HashSet::new();
        while let Some(dep) = found.try_next().await.map_err(|e| self.db_err(e))? {
            let id = dep
                .get_object_id("_id")
                .map_err(|e| Error::InvalidData(e.to_string()))?;
            if dep.contains_key("repeat") {
                return Err(Error::InvalidDependency(format!(
                    "job {id} is recurring: it never completes"
                )));
            }
            seen.insert(id);
        }
        if let Some(missing) = ids.iter().find(|id| !seen.contains(id)) {
            return Err(Error::InvalidDependency(format!(
                "job {missing} does not exist"
            )));
        }
        // Flag the dependencies before the insert: however they end from now on, their
        // completer reads the flag and settles this job; what ended before is seen by
        // the settle below. Only jobs that still exist and are not recurring
        // (`schedule()` refuses to make a flagged job recurring): one deleted or
        // converted since the check is refused.
        let flagged = self
            .coll
            .update_many(
                doc! { "_id": { "$in": &ids }, "repeat": { "$exists": false } },
                doc! { "$set": { "hasDependents": true } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if flagged.matched_count != ids.len() as u64 {
            return Err(Error::InvalidDependency(
                "a dependency was deleted or made recurring meanwhile".into(),
            ));
        }
        self.coll
            .insert_one(doc)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(ids)
    }

    async fn verdict(&self, deps: &[ObjectId]) -> Result<Verdict> {
        let wanted: HashSet<ObjectId> = deps.iter().copied().collect();
        let mut cursor = self
            .coll
            .find(doc! { "_id": { "$in": deps } })
            .projection(doc! { "_id": 1, "status": 1 })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?;
        let (mut seen, mut completed) = (HashSet::new(), 0);
        while let Some(dep) = cursor.try_next().await.map_err(|e| self.db_err(e))? {
            let Ok(id) = dep.get_object_id("_id") else {
                continue;
            };
            seen.insert(id);
            let why = match dep.get_str("status").unwrap_or_default() {
                "completed" => {
                    completed += 1;
                    continue;
                }
                "failed" => "failed",
                "cancelled" => "was cancelled",
                _ => continue,
            };
            return Ok(Verdict::Broken {
                dependency: id,
                why: why.into(),
            });
        }
        if let Some(gone) = wanted.iter().find(|id| !seen.contains(id)) {
            return Ok(Verdict::Broken {
                dependency: *gone,
                why: "was deleted".into(),
            });
        }
        Ok(if completed == wanted.len() {
            Verdict::Ready
        } else {
            Verdict::Blocked
        })
    }

    /// Moves the waiting job `id` on if its dependencies allow: to `pending` when all
    /// completed, to `failed` when one cannot complete any more. Does not go down the
    /// flow: that is the caller's (runtime/dependents.rs).
    pub(crate) async fn settle_one(&self, id: ObjectId, deps: &[ObjectId]) -> Result<Settled> {
        let (status, set) = match self.verdict(deps).await? {
            Verdict::Blocked => return Ok(Settled::Blocked),
            Verdict::Ready => (JobStatus::Pending, doc! {}),
            Verdict::Broken { dependency, why } => (
                JobStatus::Failed,
                doc! { "failReason": format!("dependency {dependency} {why}") },
            ),
        };
        let mut set = set;
        set.insert("status", status.as_str());
        set.insert("updatedAt", self.now());
        let moved = self
            .coll
            .find_one_and_update(
                doc! { "_id": id, "status": JobStatus::Waiting.as_str() },
                doc! { "$set": set },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| self.db_err(e))?;
        let Some(moved) = moved else {
            return Ok(Settled::Gone);
        };
        let job = Job::from_document(moved)?;
        Ok(if status == JobStatus::Pending {
            self.note_jobs_due([&job]).await;
            Settled::Pending(job)
        } else {
            Settled::Failed(job)
        })
    }

    /// The waiting jobs that depend on any of `ids`, with their dependencies.
    pub(crate) async fn waiting_on(
        &self,
        ids: &[ObjectId],
    ) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
        let filter = doc! { "status": JobStatus::Waiting.as_str(), "dependsOn": { "$in": ids } };
        self.waiting_jobs(self.coll.find(filter)).await
    }

    /// The waiting jobs `find` yields, with their dependencies.
    async fn waiting_jobs(
        &self,
        find: mongodb::action::Find<'_, Document>,
    ) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
        let mut cursor = find
            .projection(doc! { "_id": 1, "dependsOn": 1 })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?;
        let mut waiting = Vec::new();
        while let Some(doc) = cursor.try_next().await.map_err(|e| self.db_err(e))? {
            waiting.extend(waiting_job(&doc));
        }
        Ok(waiting)
    }

    /// Every job some waiting job depends on.
    pub(crate) async fn dependencies_of_waiting(&self) -> Result<Vec<mongodb::bson::Bson>> {
        self.coll
            .distinct("dependsOn", doc! { "status": JobStatus::Waiting.as_str() })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))
    }

    /// The waiting jobs nobody looked at for a lease duration, longest-untouched
    /// first: the process that wrote a dependency's end may have died before it
    /// settled them, or hit an error.
    pub(crate) async fn stalled_waiting(&self) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
        let stale = self.ago(self.lease_duration);
        let filter = doc! { "status": JobStatus::Waiting.as_str(), "updatedAt": { "$lt": stale } };
        let oldest = self
            .coll
            .find(filter)
            .sort(doc! { "updatedAt": 1 })
            .limit(STALLED_BATCH);
        self.waiting_jobs(oldest).await
    }

    /// Sends a job that rightly waits on to the back of the stalled line.
    pub(crate) async fn touch_waiting(&self, id: ObjectId) -> Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id, "status": JobStatus::Waiting.as_str() },
                doc! { "$set": { "updatedAt": self.now() } },
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}
