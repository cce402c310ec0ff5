//! Claims: due `pending` jobs of a name become `processing` under a fresh `claimId` and a
//! lease. An execution is fenced by its `(_id, claimId)` pair: every later write of that
//! execution matches both, so a worker that lost its lease can never overwrite a newer
//! execution of the same job.
//!
//! With one free slot a claim is one atomic `findOneAndUpdate`. With several it is a
//! batch: read the ids of the best due jobs, take the ones still `pending` with one
//! `updateMany` under a shared `claimId`, read back what was taken. A job appears at
//! most once in a batch, so the pair stays unique per execution.

use std::sync::atomic::Ordering;

use mongodb::action::Action;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{Hint, ReturnDocument};

use futures_util::TryStreamExt;

use super::documents::back_to_pending;
use super::Store;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::status::JobStatus;

/// What a claim round found.
pub(crate) struct Claimed {
    /// Claimed jobs, best first (priority, then due time).
    pub(crate) jobs: Vec<Job>,
    /// Due jobs were seen but other workers took every one first: worth another try
    /// now, with a single atomic claim that cannot lose that race.
    pub(crate) contended: bool,
    /// Claimed documents this build cannot read; they have been failed.
    pub(crate) unreadable: Vec<Error>,
}

impl Claimed {
    pub(crate) fn none() -> Self {
        Claimed {
            jobs: Vec::new(),
            contended: false,
            unreadable: Vec::new(),
        }
    }
}

/// Which jobs of a name a claim may take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JobGroup<'a> {
    /// Any, grouped or not: a name whose worker has seen no groups (today's claim).
    Any,
    /// Only the jobs without a group (one member of a fair round).
    Ungrouped,
    /// Only this group's.
    Only(&'a str),
}

/// What one claim asks for.
struct Claim<'a> {
    name: &'a str,
    group: JobGroup<'a>,
    slot: bool,
}

impl Claim<'_> {
    /// The due `pending` jobs it may take.
    fn due(&self, now: DateTime) -> Document {
        let mut filter = doc! { "name": self.name };
        match self.group {
            JobGroup::Any => {}
            // Matches a missing field; no job stores a null group.
            JobGroup::Ungrouped => {
                filter.insert("group", Bson::Null);
            }
            JobGroup::Only(group) => {
                filter.insert("group", group);
            }
        }
        filter.insert("status", JobStatus::Pending.as_str());
        filter.insert("nextRunAt", doc! { "$lte": now });
        filter
    }
}

/// The server refused the hint: the index it names does not exist.
fn is_missing_hint(err: &Error) -> bool {
    match err {
        Error::Database(e) => match e.kind.as_ref() {
            ErrorKind::Command(c) => c.code == 2 && c.message.contains("hint"),
            _ => false,
        },
        _ => false,
    }
}

fn best_first() -> Document {
    doc! { "priority": -1, "nextRunAt": 1 }
}

/// The `_id` index, for reads and writes of known jobs.
fn by_id() -> Hint {
    Hint::Name("_id_".to_owned())
}

impl Store {
    /// The fields a claim sets (also written by a local hand-off).
    pub(super) fn claim_set(&self, claim_id: ObjectId, now: DateTime) -> Document {
        doc! {
            "status": JobStatus::Processing.as_str(),
            "claimId": claim_id,
            "claimedBy": &self.instance_id,
            "lockedAt": now,
            "leaseExpiresAt": self.lease_until(now),
            "updatedAt": now,
        }
    }

    fn claim_update(&self, claim: &Claim, claim_id: ObjectId, now: DateTime) -> Document {
        let mut set = self.claim_set(claim_id, now);
        if let (true, JobGroup::Only(group)) = (claim.slot, claim.group) {
            set.insert("groupSlot", group);
        }
        doc! { "$set": set }
    }

    /// The claim index (indexes.rs), named so the planner cannot pick `monque_status`
    /// (equality on status alone) and sort a whole backlog in memory, as some servers
    /// do. Only once `initialize()` created it in this process: an application that
    /// manages its own indexes, or never initialized, gets the planner's choice.
    fn claim_hint(&self, group: JobGroup) -> Option<Hint> {
        // The group index holds only grouped jobs: the ungrouped ones use the claim
        // index, passing the name's grouped jobs (a name that mixes both pays that).
        let keys = match group {
            JobGroup::Any | JobGroup::Ungrouped => super::indexes::claim_keys(),
            JobGroup::Only(_) if self.group_index_ready.load(Ordering::Relaxed) => {
                super::indexes::group_claim_keys()
            }
            JobGroup::Only(_) => return None,
        };
        self.hint_claims
            .load(Ordering::Relaxed)
            .then_some(Hint::Keys(keys))
    }

    /// Claims up to `max` due jobs of `name`.
    #[tracing::instrument(level = "debug", skip(self), fields(instance = %self.instance_id))]
    pub(crate) async fn claim(&self, name: &str, max: usize) -> Result<Claimed> {
        self.claim_in(name, JobGroup::Any, max, false).await
    }

    /// Claims up to `max` due jobs of `name` in `group`; `slot`: each holds one of its
    /// group's concurrency slots (reserved by the caller, groups.rs).
    pub(crate) async fn claim_in(
        &self,
        name: &str,
        group: JobGroup<'_>,
        max: usize,
        slot: bool,
    ) -> Result<Claimed> {
        if max == 0 {
            return Ok(Claimed::none());
        }
        let hint = self.claim_hint(group);
        let claim = Claim { name, group, slot };
        let mut claimed = self.claim_with(&claim, max, hint.clone()).await;
        if hint.is_some() && claimed.as_ref().is_err_and(is_missing_hint) {
            // Dropped since (or the collection was recreated): claim without it rather
            // than fail every claim until the next initialize().
            tracing::warn!(
                "the claim index is gone; claiming without it until initialize() recreates it"
            );
            self.hint_claims.store(false, Ordering::Relaxed);
            claimed = self.claim_with(&claim, max, None).await;
        }
        claimed
    }

    async fn claim_with(
        &self,
        claim: &Claim<'_>,
        max: usize,
        hint: Option<Hint>,
    ) -> Result<Claimed> {
        if max <= 1 {
            self.claim_one(claim, hint).await
        } else {
            self.claim_batch(claim, max, hint).await
        }
    }

    async fn claim_one(&self, claim: &Claim<'_>, hint: Option<Hint>) -> Result<Claimed> {
        let now = self.now();
        let claim_id = ObjectId::new();
        let doc = self
            .coll
            .find_one_and_update(claim.due(now), self.claim_update(claim, claim_id, now))
            .sort(best_first())
            .optional(hint, |q, h| q.hint(h))
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| self.db_err(e))?;
        self.read_claimed(doc.into_iter().collect(), claim_id).await
    }

    async fn claim_batch(
        &self,
        claim: &Claim<'_>,
        max: usize,
        hint: Option<Hint>,
    ) -> Result<Claimed> {
        let now = self.now();
        let candidates: Vec<Document> = self
            .coll
            .find(claim.due(now))
            .sort(best_first())
            .optional(hint, |q, h| q.hint(h))
            .limit(max as i64)
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let ids: Vec<_> = candidates
            .iter()
            .filter_map(|d| d.get("_id"))
            .cloned()
            .collect();
        if ids.is_empty() {
            return Ok(Claimed::none());
        }
        let claim_id = ObjectId::new();
        let mut still_due = claim.due(now);
        still_due.insert("_id", doc! { "$in": &ids });
        let taken = self
            .coll
            .update_many(still_due, self.claim_update(claim, claim_id, now))
            .hint(by_id())
            .await
            .map_err(|e| self.db_err(e))?;
        if taken.modified_count == 0 {
            return Ok(Claimed {
                contended: true,
                ..Claimed::none()
            });
        }
        let read_back = async {
            self.coll
                .find(doc! { "_id": { "$in": &ids }, "claimId": claim_id })
                .hint(by_id())
                .await?
                .try_collect::<Vec<Document>>()
                .await
        };
        match read_back.await {
            Ok(docs) => self.read_claimed(docs, claim_id).await,
            Err(err) => {
                // Claimed but not known here: hand them back rather than leave them to
                // wait out a lease nobody renews.
                self.unclaim(claim, claim_id).await;
                Err(self.db_err(err))
            }
        }
    }

    /// Inserts `doc`, a new job, already claimed by this instance under `claim_id`: a
    /// local hand-off, which skips the claim round trip.
    pub(crate) async fn insert_claimed(
        &self,
        mut doc: Document,
        claim_id: ObjectId,
    ) -> Result<Document> {
        doc.extend(self.claim_set(claim_id, self.now()));
        self.coll
            .insert_one(&doc)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(doc)
    }

    /// Best effort: puts every job still held by `claim_id` back to `pending`.
    async fn unclaim(&self, claim: &Claim<'_>, claim_id: ObjectId) {
        // A claim of any job may have taken grouped ones: which groups, read first (the
        // hand-back unsets `claimId`). This path is rare: a read after the claim failed.
        let held_groups = match claim.group {
            JobGroup::Any => self
                .coll
                .distinct("group", doc! { "claimId": claim_id })
                .await
                .ok(),
            JobGroup::Only(_) | JobGroup::Ungrouped => None,
        };
        let res = self
            .coll
            .update_many(
                doc! { "claimId": claim_id, "status": JobStatus::Processing.as_str() },
                back_to_pending(self.now()),
            )
            .await;
        if let Err(err) = res {
            tracing::warn!(%err, "could not hand back a batch claim; its jobs return after their lease");
        }
        // Grouped jobs among them are pending again: their groups must look due (a
        // claim may have settled a group while they were out). Their slots stay
        // counted by the caller until the recount.
        let now = self.now();
        let noted = match (claim.group, held_groups) {
            (JobGroup::Only(group), _) => {
                self.note_due(&[(claim.name.to_owned(), group.to_owned(), now)])
                    .await
            }
            (JobGroup::Any, Some(groups)) => {
                let due: Vec<_> = groups
                    .iter()
                    .filter_map(|g| Some((claim.name.to_owned(), g.as_str()?.to_owned(), now)))
                    .collect();
                self.note_due(&due).await
            }
            // Even that read failed: every group of the name that has a document.
            (JobGroup::Any, None) => self.note_all_due(claim.name).await,
            (JobGroup::Ungrouped, _) => Ok(()),
        };
        if let Err(err) = noted {
            tracing::warn!(%err, "could not mark the groups of a handed-back batch due");
        }
    }

    /// Turns claimed documents into jobs, best first. A document this build cannot read
    /// would be recovered and claimed again after every lease, forever: it is failed
    /// (fenced by this claim) and reported instead.
    async fn read_claimed(&self, docs: Vec<Document>, claim_id: ObjectId) -> Result<Claimed> {
        let mut claimed = Claimed {
            jobs: Vec::with_capacity(docs.len()),
            contended: false,
            unreadable: Vec::new(),
        };
        for doc in docs {
            let id = doc.get("_id").cloned();
            match Job::from_document(doc) {
                Ok(job) => claimed.jobs.push(job),
                Err(err) => {
                    let reason = err.to_string();
                    tracing::warn!(?id, %reason, "failing a job document this build cannot read");
                    let failed = self
                        .coll
                        .update_one(
                            doc! { "_id": id, "claimId": claim_id },
                            doc! {
                                "$set": { "status": JobStatus::Failed.as_str(), "failReason": &reason, "updatedAt": self.now() },
                                "$unset": { "claimId": "", "leaseExpiresAt": "", "groupSlot": "" },
                            },
                        )
                        .await;
                    // Not fatal for the rest of the batch: this one comes back after its
                    // lease and is failed then.
                    if let Err(write) = failed {
                        tracing::warn!(%write, "could not fail an unreadable job document");
                    }
                    claimed.unreadable.push(err);
                }
            }
        }
        claimed.jobs.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.next_run_at.cmp(&b.next_run_at))
        });
        for job in &claimed.jobs {
            tracing::debug!(job.id = %job.id, "claimed");
        }
        Ok(claimed)
    }
}
