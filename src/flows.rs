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
use std::sync::Arc;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::options::{ReadPreference, ReturnDocument, SelectionCriteria};

use crate::client::Inner;
use crate::enqueue::EnqueueOptions;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::job::{Job, JobStatus};

/// Whether a job may move on is decided on what the primary has: a stale secondary
/// read could leave a job waiting for a dependency that already ended.
fn primary() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::Primary)
}

/// Waiting jobs one heartbeat re-checks at most (settle_stalled).
const STALLED_BATCH: i64 = 100;

/// Most dependencies one job may have.
pub const MAX_DEPENDENCIES: usize = 100;

/// How deep a failure travels down a flow in one go (a guard against cycles, which
/// enqueue cannot create: a job only depends on jobs that exist before it).
const MAX_FLOW_DEPTH: usize = 1000;

/// What can be checked without I/O.
pub(crate) fn check_dependency_options(options: &EnqueueOptions) -> Result<()> {
    if options.depends_on.len() > MAX_DEPENDENCIES {
        return Err(Error::option(
            "depends_on",
            format!("at most {MAX_DEPENDENCIES} jobs"),
        ));
    }
    if options.unique_key.is_some() {
        return Err(Error::option(
            "depends_on",
            "cannot be combined with a uniqueKey",
        ));
    }
    Ok(())
}

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

impl Inner {
    /// Inserts a job with dependencies as `waiting`, after checking they exist and can
    /// complete, then settles it against their current state.
    pub(crate) async fn enqueue_waiting(&self, doc: Document, deps: &[ObjectId]) -> Result<Job> {
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
        let id = doc
            .get_object_id("_id")
            .expect("built jobs have an ObjectId");
        let name = doc.get_str("name").unwrap_or_default().to_owned();
        self.coll
            .insert_one(&doc)
            .await
            .map_err(|e| self.db_err(e))?;
        self.metrics.enqueued(&name, 1);
        match self.settle(id, &ids).await? {
            Settled::Pending(job) | Settled::Failed(job) => Ok(job),
            Settled::Blocked => Job::from_document(doc),
            Settled::Gone => match self.get_job(id).await? {
                Some(job) => Ok(job),
                None => Job::from_document(doc), // deleted by someone else meanwhile
            },
        }
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
    /// completed, to `failed` when one cannot complete any more, and then fails the
    /// jobs waiting on it too.
    pub(crate) async fn settle(&self, id: ObjectId, deps: &[ObjectId]) -> Result<Settled> {
        let settled = self.settle_one(id, deps).await?;
        if let Settled::Failed(_) = settled {
            self.fail_dependents(vec![id]).await;
        }
        Ok(settled)
    }

    /// `settle` without going down the flow.
    async fn settle_one(&self, id: ObjectId, deps: &[ObjectId]) -> Result<Settled> {
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
        set.insert("updatedAt", DateTime::now());
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
        if status == JobStatus::Pending {
            tracing::debug!(job.id = %job.id, "dependencies completed; pending");
            self.wake_at(&job.name, job.next_run_at);
            return Ok(Settled::Pending(job));
        }
        let reason = job.fail_reason.clone().unwrap_or_default();
        tracing::info!(job.id = %job.id, %reason, "failed: a dependency cannot complete");
        self.emit(Event::JobFailed {
            job: Arc::new(job.clone()),
            error: reason,
            will_retry: false,
        });
        Ok(Settled::Failed(job))
    }

    /// The waiting jobs that depend on any of `ids`, with their dependencies.
    async fn waiting_on(&self, ids: &[ObjectId]) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
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

    /// After job `id` completed: settles the jobs waiting on it.
    pub(crate) async fn release_dependents(&self, id: ObjectId) {
        let result = async {
            for (waiting, deps) in self.waiting_on(&[id]).await? {
                self.settle(waiting, &deps).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(err) = result {
            self.report_flow_error(err);
        }
    }

    /// After jobs `ids` ended without completing (failed, cancelled, deleted): fails
    /// the jobs waiting on them, and the jobs waiting on those, down the flow.
    pub(crate) async fn fail_dependents(&self, ids: Vec<ObjectId>) {
        let result = async {
            let mut frontier = ids;
            for _ in 0..MAX_FLOW_DEPTH {
                if frontier.is_empty() {
                    break;
                }
                let mut next = Vec::new();
                for (waiting, deps) in self.waiting_on(&frontier).await? {
                    // Settling names the dependency that broke, and finds it whatever
                    // ended it (the caller's job, or a cancel racing it).
                    if let Settled::Failed(_) = self.settle_one(waiting, &deps).await? {
                        next.push(waiting);
                    }
                }
                frontier = next;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(err) = result {
            self.report_flow_error(err);
        }
    }

    /// Every job some waiting job depends on.
    pub(crate) async fn dependencies_of_waiting(&self) -> Result<Vec<mongodb::bson::Bson>> {
        self.coll
            .distinct("dependsOn", doc! { "status": JobStatus::Waiting.as_str() })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))
    }

    /// Settles waiting jobs nobody looked at for a lease duration: the process that
    /// wrote a dependency's end may have died before it settled them, or hit an error.
    /// Runs with the heartbeat; each pass takes the longest-untouched few.
    pub(crate) async fn settle_stalled(&self) -> Result<usize> {
        let stale = DateTime::from_millis(
            DateTime::now().timestamp_millis() - self.opts.lease_duration.as_millis() as i64,
        );
        let filter = doc! { "status": JobStatus::Waiting.as_str(), "updatedAt": { "$lt": stale } };
        let oldest = self
            .coll
            .find(filter)
            .sort(doc! { "updatedAt": 1 })
            .limit(STALLED_BATCH);
        let stalled = self.waiting_jobs(oldest).await?;
        for (id, deps) in &stalled {
            if let Settled::Blocked = self.settle(*id, deps).await? {
                // Still waiting (rightly): go to the back of the line.
                self.coll
                    .update_one(
                        doc! { "_id": id, "status": JobStatus::Waiting.as_str() },
                        doc! { "$set": { "updatedAt": DateTime::now() } },
                    )
                    .await
                    .map_err(|e| self.db_err(e))?;
            }
        }
        Ok(stalled.len())
    }

    fn report_flow_error(&self, err: Error) {
        // The jobs stay `waiting`; the next dependency to end settles them again.
        tracing::warn!(%err, "could not settle jobs waiting on a dependency");
        self.emit(Event::JobError {
            error: format!("could not settle jobs waiting on a dependency: {err}"),
            code: err.code(),
            job: None,
        });
    }
}
