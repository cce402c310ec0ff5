//! Groups of a job name (a tenant each, say): one small document per (name, group) in
//! `<collection>_groups` says when the group has due work, how many of its jobs hold a
//! `groupConcurrency` slot, when it was last served and whether it is paused. A claim
//! picks groups round-robin from there without reading a big group's backlog
//! (docs/design/groups.md has the measurements behind this).
//!
//! A group's document has `_id: { name, group }`, so two instances creating it at once
//! make one document with or without indexes.
//!
//! `due` is never later than the earliest `nextRunAt` of the group's pending jobs; it
//! may be earlier. Every write that makes a grouped job pending lowers it (`$min`) and
//! counts itself in `noted`; a claim that finds the group empty raises `due` again to
//! what is really next, guarded by the `noted` it read, so a lowering that came in
//! meanwhile (even one `$min` left unchanged) makes the raise miss. Early costs one empty
//! claim; late would starve the group.
//!
//! `running` counts slots: a claim reserves them with a guarded `$inc` before it takes
//! jobs, and marks each job it took `groupSlot: <group>`. Whoever ends that execution
//! (its run's fenced write, lease recovery, the shutdown hand-back, a cancel) unsets the
//! mark in the same write and gives the slot back to the group the mark names, so each
//! slot returns once, to where it was taken. A crash
//! between the two writes leaves one slot too many; [`Store::recount_groups`] sets the
//! count from the jobs again once the group has not been claimed from for a lease.
//!
//! An idle group's document holds nothing a claim needs, so the retention sweep deletes
//! it after an hour ([`Store::prune_idle_groups`]). Every write that makes a grouped job
//! pending upserts its group's document, so the group's next job makes it again.

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::options::{ReadPreference, SelectionCriteria};

use super::claim::{Claimed, JobGroup};
use super::queries::count_of;
use super::Store;
use crate::error::Result;
use crate::options::RateLimit;
use crate::query::QueueStats;
use crate::status::JobStatus;

/// Writes to the groups collection in flight at once (one per group).
const PARALLEL_WRITES: usize = 16;

/// Groups one recount looks at, quiet longest first.
const RECOUNT_BATCH: i64 = 200;

/// The group a job document belongs to and when it is due, if it has a group.
pub(crate) fn group_of(doc: &Document) -> Option<(String, String, DateTime)> {
    let group = doc.get_str("group").ok()?;
    let name = doc.get_str("name").ok()?;
    let due = doc.get_datetime("nextRunAt").ok()?;
    Some((name.to_owned(), group.to_owned(), *due))
}

/// The `_id` of a group's document.
fn group_id(name: &str, group: &str) -> Document {
    doc! { "name": name, "group": group }
}

/// Reads that decide a group's `due` or `running` must not see a stale secondary.
fn primary() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::Primary)
}

/// The rate-limit key of one group of a name (store/rate_limits.rs keys by `_id`).
fn limit_key(name: &str, group: &str) -> String {
    format!("{name}\0{group}")
}

/// A worker's per-group limits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupLimits {
    /// At most this many jobs of one group hold a slot at once, across instances.
    pub(crate) concurrency: Option<u32>,
    /// At most `max` jobs of one group start per `duration`, across instances.
    pub(crate) limiter: Option<RateLimit>,
}

/// What a fair claim round found.
pub(crate) struct FairClaimed {
    pub(crate) claimed: Claimed,
    /// The soonest a group held back by its rate limit may start again.
    pub(crate) wait_until: Option<DateTime>,
    /// Whether the round included the name's ungrouped jobs.
    pub(crate) tried_ungrouped: bool,
    /// It did, and found none due.
    pub(crate) ungrouped_empty: bool,
}

/// One member of a claim round: a group, or the name's jobs without a group.
struct Member {
    group: Option<GroupDoc>,
    share: usize,
}

struct GroupDoc {
    group: String,
    /// The `noted` count and `born` id read with it (settle_due's guard).
    noted: Bson,
    born: Bson,
    running: i64,
}

/// One group as an operator sees it (`Monque::groups`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// Its jobs per status (`avg_processing_ms` and `orphaned` are not computed here).
    pub counts: QueueStats,
    /// When its oldest pending job fell (or falls) due.
    pub oldest_due: Option<DateTime>,
    /// Slots its running jobs hold (`groupConcurrency`; 0 when no worker caps it).
    pub running: u64,
    /// Whether its jobs are held back (`pause_group`).
    pub paused: bool,
    /// When a claim last took from it.
    pub served_at: Option<DateTime>,
}

/// A signed counter of a group document (`running`); 0 when absent.
fn read_i64(doc: &Document, key: &str) -> i64 {
    match doc.get(key) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

/// Splits `slots` over `members` as evenly as the order allows: earlier members (served
/// longest ago) get the remainder.
fn shares(slots: usize, members: usize) -> impl Iterator<Item = usize> {
    let each = slots / members.max(1);
    let extra = slots % members.max(1);
    (0..members).map(move |i| each + usize::from(i < extra))
}

impl Store {
    /// Lowers (or creates) the due time of each group in `due`: call it after the jobs
    /// are written.
    pub(crate) async fn note_due(&self, due: &[(String, String, DateTime)]) -> Result<()> {
        let mut earliest: HashMap<(&str, &str), DateTime> = HashMap::new();
        for (name, group, at) in due {
            let e = earliest.entry((name, group)).or_insert(*at);
            *e = (*e).min(*at);
        }
        let mut writes = Vec::with_capacity(earliest.len());
        for ((name, group), at) in earliest {
            let update = doc! {
                "$min": { "due": at },
                "$inc": { "noted": 1_i64 },
                "$setOnInsert": { "paused": false },
            };
            writes.push(self.upsert_group(name, group, update));
        }
        let results: Vec<_> = futures_util::stream::iter(writes)
            .buffer_unordered(PARALLEL_WRITES)
            .collect()
            .await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }

    /// [`note_due`](Self::note_due) after jobs were written: tried three times, then
    /// logged, never an error. The jobs are in; failing the caller would make it write
    /// them again.
    pub(crate) async fn note_due_after_write(&self, due: &[(String, String, DateTime)]) {
        if due.is_empty() {
            return;
        }
        let mut wait = std::time::Duration::from_millis(50);
        for attempt in 1..=3 {
            match self.note_due(due).await {
                Ok(()) => return,
                Err(err) if attempt == 3 => {
                    tracing::error!(%err, groups = due.len(), "could not mark groups due; their new jobs wait for the group's next write");
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 4;
                }
            }
        }
    }

    /// The groups of `jobs` that went back to `pending` (a hand-back, a recovery, a
    /// retry) are due by the jobs' times ([`note_due_after_write`](Self::note_due_after_write)).
    pub(crate) async fn note_jobs_due<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a crate::job::Job>,
    ) {
        let due: Vec<_> = jobs
            .into_iter()
            .filter_map(|j| Some((j.name.clone(), j.group.clone()?, j.next_run_at)))
            .collect();
        self.note_due_after_write(&due).await
    }

    /// Every group of `name` that has a document is due now: after a hand-back that
    /// could not tell which groups got jobs back. Early is safe.
    pub(crate) async fn note_all_due(&self, name: &str) -> Result<()> {
        let update = doc! { "$min": { "due": self.now() }, "$inc": { "noted": 1_i64 } };
        self.groups
            .update_many(doc! { "name": name }, update)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Whether `name` has any group (a worker then claims fairly across them).
    pub(crate) async fn has_groups(&self, name: &str) -> Result<bool> {
        let found = self
            .groups
            .find_one(doc! { "name": name })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(found.is_some())
    }

    /// Claims up to `max` due jobs of `name`, round-robin across its groups with due
    /// work (served longest ago first) and, if `ungrouped_at` is given, its jobs without
    /// a group as one more member last served then. Slots are split evenly over the
    /// members; each group's share is cut to its free `concurrency` slots and its
    /// rate-limit permits.
    pub(crate) async fn claim_fair(
        &self,
        name: &str,
        max: usize,
        limits: GroupLimits,
        ungrouped_at: Option<DateTime>,
    ) -> Result<FairClaimed> {
        self.ensure_group_index().await?;
        let now = self.now();
        let mut filter = doc! {
            "name": name,
            "due": { "$lte": now },
            "paused": { "$ne": true },
            // Waiting for its rate-limit window: the others go first meanwhile.
            "limitedUntil": { "$not": { "$gt": now } },
        };
        if let Some(cap) = limits.concurrency {
            filter.insert("running", doc! { "$lt": cap as i64 });
        }
        let found = self.groups_served_longest_ago(filter, max as i64).await?;
        let mut members: Vec<Member> = Vec::with_capacity(found.len() + 1);
        let mut ungrouped_placed = ungrouped_at.is_none();
        for g in &found {
            let served = g.get_datetime("servedAt").ok().copied();
            if !ungrouped_placed && served.is_some_and(|s| Some(s) > ungrouped_at) {
                members.push(Member {
                    group: None,
                    share: 0,
                });
                ungrouped_placed = true;
            }
            let Ok(group) = g.get_str("group") else {
                continue;
            };
            members.push(Member {
                group: Some(GroupDoc {
                    group: group.to_owned(),
                    noted: g.get("noted").cloned().unwrap_or(Bson::Null),
                    born: g.get("born").cloned().unwrap_or(Bson::Null),
                    running: read_i64(g, "running"),
                }),
                share: 0,
            });
        }
        if !ungrouped_placed {
            members.push(Member {
                group: None,
                share: 0,
            });
        }
        members.truncate(max);
        let count = members.len();
        for (m, share) in members.iter_mut().zip(shares(max, count)) {
            m.share = share;
        }
        let tried_ungrouped = members.iter().any(|m| m.group.is_none());
        // Served now, claimed or not: the next round starts with the others. Sent with
        // the claims, not before them. Only when there is an order to keep: with caps the
        // reservation writes it, and a group alone has nobody to take turns with.
        let served: Vec<Document> = members
            .iter()
            .filter_map(|m| m.group.as_ref().map(|g| group_id(name, &g.group)))
            .collect();
        let mark_served = async {
            // `found` is cut at `max`: one group found with room for more is alone.
            let alone = found.len() == 1 && max > 1;
            if limits.concurrency.is_some() || served.is_empty() || alone {
                return Ok(());
            }
            self.groups
                .update_many(
                    doc! { "_id": { "$in": &served } },
                    doc! { "$set": { "servedAt": now } },
                )
                .await
                .map(|_| ())
                .map_err(|e| self.db_err(e))
        };
        // Groups left out of this round for want of slots.
        let truncated = found.len() + usize::from(ungrouped_at.is_some()) > max;
        let mut more = false;
        let rounds = members
            .into_iter()
            .map(|m| self.claim_member(name, m, limits, now));
        let (outcomes, marked) =
            futures_util::future::join(futures_util::future::join_all(rounds), mark_served).await;
        if let Err(err) = marked {
            // The turns are a little off until the next round: not worth losing the jobs.
            tracing::warn!(%err, name, "could not mark groups served");
        }
        let mut fair = FairClaimed {
            claimed: Claimed::none(),
            wait_until: None,
            tried_ungrouped,
            ungrouped_empty: false,
        };
        let mut first_err = None;
        // Groups that took their whole share: the ones with more work, if slots are left.
        let mut filled = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(member) => {
                    if let Some(group) = member.filled {
                        filled.push(group);
                    }
                    // A member that came back empty took a share others may have used:
                    // claim again at once. A group found empty is settled (not due any
                    // more); the ungrouped jobs go behind the groups left out.
                    more |= member.empty && (member.grouped || truncated);
                    fair.ungrouped_empty |= member.empty && !member.grouped;
                    fair.claimed.jobs.extend(member.claimed.jobs);
                    fair.claimed.unreadable.extend(member.claimed.unreadable);
                    fair.claimed.contended |= member.claimed.contended;
                    if let Some(at) = member.wait_until {
                        fair.wait_until = Some(fair.wait_until.map_or(at, |w| w.min(at)));
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, name, "a group's claim failed");
                    first_err.get_or_insert(err);
                }
            }
        }
        // Slots a member left unused (the ungrouped jobs, a group with fewer jobs than
        // its share) go to the groups that filled theirs, in the same round: a name with
        // one big group then claims in batches like a name without groups. Only when
        // every due group had its turn in this round (none waits for the next), and
        // without caps or rate limits, whose reservations and permits were taken for the
        // shares.
        let left = max.saturating_sub(fair.claimed.jobs.len() + fair.claimed.unreadable.len());
        let unlimited = limits.concurrency.is_none() && limits.limiter.is_none();
        if left > 0 && !filled.is_empty() && !truncated && unlimited {
            let count = filled.len().min(left);
            let extra = filled
                .iter()
                .take(count)
                .zip(shares(left, count))
                .map(|(group, n)| self.claim_in(name, JobGroup::Only(group), n, false));
            for claimed in futures_util::future::join_all(extra).await {
                match claimed {
                    Ok(c) => {
                        fair.claimed.jobs.extend(c.jobs);
                        fair.claimed.unreadable.extend(c.unreadable);
                    }
                    Err(err) => tracing::warn!(%err, name, "a group's second claim failed"),
                }
            }
        }
        // The worker claims again at once instead of sleeping.
        fair.claimed.contended |= more;
        // Jobs claimed by the other members must run: an error only counts alone.
        match first_err {
            Some(err) if fair.claimed.jobs.is_empty() && fair.claimed.unreadable.is_empty() => {
                Err(err)
            }
            _ => Ok(fair),
        }
    }

    /// One member's part of a fair claim: its slots, permits and jobs.
    async fn claim_member(
        &self,
        name: &str,
        member: Member,
        limits: GroupLimits,
        now: DateTime,
    ) -> Result<MemberClaimed> {
        let Some(g) = member.group else {
            let claimed = self
                .claim_in(name, JobGroup::Ungrouped, member.share, false)
                .await?;
            return Ok(MemberClaimed::of(claimed, None, member.share));
        };
        let mut want = member.share;
        let mut reserved = 0;
        if let Some(cap) = limits.concurrency {
            want = want.min((cap as i64 - g.running).max(0) as usize);
            let took = if want == 0 {
                false
            } else {
                self.groups
                    .update_one(
                        doc! { "_id": group_id(name, &g.group), "running": { "$lte": cap as i64 - want as i64 } },
                        doc! { "$inc": { "running": want as i64 }, "$set": { "servedAt": now } },
                    )
                    .await
                    .map_err(|e| self.db_err(e))?
                    .modified_count
                    == 1
            };
            if !took {
                // Another instance took the room first: next round.
                return Ok(MemberClaimed::contended());
            }
            reserved = want;
        }
        let mut permits = None;
        if let Some(limit) = limits.limiter {
            let key = limit_key(name, &g.group);
            match self.take_permits(&key, limit, want as u32).await {
                Ok(super::Permits::Granted { count, window }) => {
                    want = want.min(count as usize);
                    permits = Some((key, window));
                }
                Ok(super::Permits::WaitUntil(at)) => {
                    self.give_back_slots(name, &g.group, reserved).await;
                    // Out of the rounds until its window ends (the worker wakes then).
                    let limited = doc! { "$max": { "limitedUntil": at } };
                    self.groups
                        .update_one(doc! { "_id": group_id(name, &g.group) }, limited)
                        .await
                        .map_err(|e| self.db_err(e))?;
                    return Ok(MemberClaimed {
                        claimed: Claimed::none(),
                        wait_until: Some(at),
                        empty: false,
                        grouped: true,
                        filled: None,
                    });
                }
                Err(err) => {
                    self.give_back_slots(name, &g.group, reserved).await;
                    return Err(err);
                }
            }
        }
        let claimed = self
            .claim_in(
                name,
                JobGroup::Only(&g.group),
                want,
                limits.concurrency.is_some(),
            )
            .await;
        let taken = claimed
            .as_ref()
            .map_or(0, |c| c.jobs.len() + c.unreadable.len());
        // Slots are held by the jobs that will run (an unreadable one was failed and its
        // mark dropped). After an error it is not known which jobs hold one (a batch
        // handed back, or left to its lease): they stay counted, too many rather than
        // too few, until the recount.
        let holding = claimed.as_ref().map_or(reserved, |c| c.jobs.len());
        self.give_back_slots(name, &g.group, reserved.saturating_sub(holding))
            .await;
        if let Some((key, window)) = permits {
            self.return_permits(&key, window, (want - taken.min(want)) as u32)
                .await;
        }
        let claimed = claimed?;
        if taken == 0 && !claimed.contended {
            self.settle_due(name, &g.group, g.noted, g.born).await?;
        }
        Ok(MemberClaimed::of(claimed, Some(&g.group), want))
    }

    /// Up to `limit` group documents `filter` matches, served longest ago first, read
    /// from the primary (they decide turns and counts).
    async fn groups_served_longest_ago(
        &self,
        filter: Document,
        limit: i64,
    ) -> Result<Vec<Document>> {
        self.groups
            .find(filter)
            .sort(doc! { "servedAt": 1 })
            .limit(limit)
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))
    }

    /// Gives back `count` slots of a group (best effort: a count left too high is
    /// corrected by the next recount).
    pub(crate) async fn give_back_slots(&self, name: &str, group: &str, count: usize) {
        if count == 0 {
            return;
        }
        let res = self
            .groups
            .update_one(
                doc! { "_id": group_id(name, group), "running": { "$gte": count as i64 } },
                doc! { "$inc": { "running": -(count as i64) } },
            )
            .await;
        if let Err(err) = res {
            tracing::warn!(%err, name, group, "could not give back group slots; the recount will");
        }
    }

    /// Gives back the slot of an execution that just ended by a write that unset its
    /// `groupSlot` (`job` is the job as claimed).
    pub(crate) async fn release_slot(&self, job: &crate::job::Job) {
        // To the group the mark names: where it was taken, even if the job's group
        // changed since (a schedule moved to another group).
        if let Some(group) = &job.group_slot {
            self.give_back_slots(&job.name, group, 1).await;
        }
    }

    /// A group found without due work: its due time becomes its next pending job's (or
    /// none), unless a write noted a pending job meanwhile (`noted` moved). `born` joins
    /// the guard for a document pruned and made again meanwhile
    /// ([`prune_idle_groups`](Self::prune_idle_groups)): its `noted` starts over, but
    /// every document is born with a new id.
    pub(super) async fn settle_due(
        &self,
        name: &str,
        group: &str,
        noted: Bson,
        born: Bson,
    ) -> Result<()> {
        let next = self.next_pending_at(name, group).await?;
        self.set_settled_due(name, group, (noted, born), next).await
    }

    /// When the group's next pending job is due, if it has one.
    pub(super) async fn next_pending_at(
        &self,
        name: &str,
        group: &str,
    ) -> Result<Option<DateTime>> {
        Ok(self
            .coll
            .find_one(doc! { "name": name, "group": group, "status": JobStatus::Pending.as_str() })
            .sort(doc! { "nextRunAt": 1 })
            .projection(doc! { "nextRunAt": 1 })
            .selection_criteria(primary())
            .await
            .map_err(|e| self.db_err(e))?
            .and_then(|d| d.get_datetime("nextRunAt").ok().copied()))
    }

    /// The write half of [`settle_due`](Self::settle_due): `due` becomes `next`, if the
    /// document still has the `(noted, born)` that was read. A group left without due
    /// work is `idleSince` now (the prune's clock).
    pub(super) async fn set_settled_due(
        &self,
        name: &str,
        group: &str,
        (noted, born): (Bson, Bson),
        next: Option<DateTime>,
    ) -> Result<()> {
        // None is an absent `due`, not null: `$min` would keep a null (null sorts
        // before every date) and the group would never be due again.
        let update = match next {
            Some(next) => doc! { "$set": { "due": next } },
            None => doc! { "$unset": { "due": "" }, "$set": { "idleSince": self.now() } },
        };
        // A missing `born` (a document from before it existed) is matched by null.
        self.groups
            .update_one(
                doc! { "_id": group_id(name, group), "noted": noted, "born": born },
                update,
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Sets `running` of groups that have not been claimed from for a lease (so no
    /// claim's reservation is in flight) to the jobs that hold a slot, guarded by what
    /// was read. Returns how many counts changed.
    pub(crate) async fn recount_groups(&self) -> Result<u64> {
        let quiet_since = self.ago(self.lease_duration);
        let quiet = doc! { "running": { "$gt": 0 }, "servedAt": { "$lt": quiet_since } };
        let held = self.groups_served_longest_ago(quiet, RECOUNT_BATCH).await?;
        let mut changed = 0;
        for g in held {
            let (Ok(id), Ok(name), Ok(group)) =
                (g.get_document("_id"), g.get_str("name"), g.get_str("group"))
            else {
                continue;
            };
            let running = g.get("running").cloned().unwrap_or(Bson::Null);
            let served = g.get("servedAt").cloned().unwrap_or(Bson::Null);
            let holding = self
                .coll
                .count_documents(doc! {
                    "name": name, "group": group,
                    "status": JobStatus::Processing.as_str(), "groupSlot": group,
                })
                .selection_criteria(primary())
                .await
                .map_err(|e| self.db_err(e))?;
            if read_i64(&g, "running") == holding as i64 {
                continue;
            }
            let res = self
                .groups
                .update_one(
                    doc! { "_id": id, "running": running, "servedAt": served },
                    doc! { "$set": { "running": holding as i64 } },
                )
                .await
                .map_err(|e| self.db_err(e))?;
            if res.modified_count == 1 {
                tracing::warn!(name, group, holding, "group slot count corrected");
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Deletes the documents of groups that are idle (nothing due, no slot held, not
    /// paused) and have been since `idle_for` ago (`idleSince`, set when a claim found
    /// the group without due work). They hold nothing a claim needs: every write that
    /// makes one of the group's jobs pending upserts the document again, and
    /// `getGroups` still lists a group that has jobs. The filter is the guard, so a
    /// group noted meanwhile is kept. Returns how many.
    pub(crate) async fn prune_idle_groups(&self, idle_for: std::time::Duration) -> Result<u64> {
        let cutoff = self.ago(idle_for);
        let res = self
            .groups
            .delete_many(doc! {
                "due": { "$exists": false },
                "running": { "$lte": 0_i64 },
                "paused": false,
                "idleSince": { "$lt": cutoff },
            })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.deleted_count)
    }

    /// Pauses or resumes one group of `name` (created if it has none yet, so a group can
    /// be paused before its jobs arrive).
    pub(crate) async fn set_group_paused(
        &self,
        name: &str,
        group: &str,
        paused: bool,
    ) -> Result<()> {
        let mut update = doc! {
            "$set": { "paused": paused },
        };
        if !paused {
            // Its work was skipped meanwhile: due now (early is safe).
            update.insert("$min", doc! { "due": self.now() });
            update.insert("$inc", doc! { "noted": 1_i64 });
        }
        self.upsert_group(name, group, update).await
    }

    /// Updates the document of (name, group), creating it if missing. Two instances may
    /// create it at once: the loser of the `_id` applies its update to the winner's
    /// document.
    async fn upsert_group(&self, name: &str, group: &str, mut update: Document) -> Result<()> {
        // What every new group document starts with; `born` tells it from one pruned
        // before it (settle_due's guard).
        let mut on_insert = match update.remove("$setOnInsert") {
            Some(Bson::Document(d)) => d,
            _ => Document::new(),
        };
        on_insert.extend(doc! {
            "name": name,
            "group": group,
            "running": 0_i64,
            "servedAt": DateTime::from_millis(0),
            "born": ObjectId::new(),
        });
        update.insert("$setOnInsert", on_insert);
        for _ in 0..2 {
            match self
                .groups
                .update_one(doc! { "_id": group_id(name, group) }, update.clone())
                .upsert(true)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if crate::error::Error::is_duplicate_key(&e) => continue,
                Err(e) => return Err(self.db_err(e)),
            }
        }
        Ok(())
    }

    /// The groups of `name` with their counts, oldest due job, slots and pause state.
    pub(crate) async fn group_summaries(&self, name: &str) -> Result<Vec<GroupSummary>> {
        let mut by_group: std::collections::BTreeMap<String, GroupSummary> = Default::default();
        let mut docs = self
            .groups
            .find(doc! { "name": name })
            .await
            .map_err(|e| self.db_err(e))?;
        while let Some(g) = docs.try_next().await.map_err(|e| self.db_err(e))? {
            let Ok(group) = g.get_str("group") else {
                continue;
            };
            by_group.insert(
                group.to_owned(),
                GroupSummary {
                    group: group.to_owned(),
                    running: read_i64(&g, "running").max(0) as u64,
                    paused: g.get_bool("paused").unwrap_or(false),
                    served_at: g
                        .get_datetime("servedAt")
                        .ok()
                        .copied()
                        .filter(|s| s.timestamp_millis() > 0),
                    ..Default::default()
                },
            );
        }
        let pipeline = [
            doc! { "$match": { "name": name, "group": { "$exists": true } } },
            doc! { "$group": {
                "_id": { "group": "$group", "status": "$status" },
                "count": { "$sum": 1 },
                "oldest": { "$min": "$nextRunAt" },
            } },
        ];
        let mut rows = self
            .coll
            .aggregate(pipeline)
            .await
            .map_err(|e| self.db_err(e))?;
        while let Some(row) = rows.try_next().await.map_err(|e| self.db_err(e))? {
            let Ok(key) = row.get_document("_id") else {
                continue;
            };
            let (Ok(group), Ok(status)) = (key.get_str("group"), key.get_str("status")) else {
                continue;
            };
            let summary = by_group
                .entry(group.to_owned())
                .or_insert_with(|| GroupSummary {
                    group: group.to_owned(),
                    ..Default::default()
                });
            summary
                .counts
                .add(status, row.get("count").and_then(count_of).unwrap_or(0));
            if status == JobStatus::Pending.as_str() {
                summary.oldest_due = row.get_datetime("oldest").ok().copied();
            }
        }
        Ok(by_group.into_values().collect())
    }

    /// How many groups of each name have due work, and how many are paused (metrics).
    pub(crate) async fn group_gauges(&self) -> Result<Vec<(String, u64, u64)>> {
        let mut out: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        let due = doc! { "due": { "$lte": self.now() }, "paused": { "$ne": true } };
        for (matcher, paused) in [(due, false), (doc! { "paused": true }, true)] {
            let pipeline = [
                doc! { "$match": matcher },
                doc! { "$group": { "_id": "$name", "n": { "$sum": 1 } } },
            ];
            let mut rows = self
                .groups
                .aggregate(pipeline)
                .await
                .map_err(|e| self.db_err(e))?;
            while let Some(row) = rows.try_next().await.map_err(|e| self.db_err(e))? {
                if let Ok(name) = row.get_str("_id") {
                    let n = row.get("n").and_then(count_of).unwrap_or(0);
                    let entry = out.entry(name.to_owned()).or_default();
                    if paused {
                        entry.1 = n;
                    } else {
                        entry.0 = n;
                    }
                }
            }
        }
        Ok(out.into_iter().map(|(n, (d, p))| (n, d, p)).collect())
    }
}

/// One member's claim.
struct MemberClaimed {
    claimed: Claimed,
    wait_until: Option<DateTime>,
    /// It had no due job.
    empty: bool,
    /// It was a group (not the ungrouped jobs).
    grouped: bool,
    /// The group, when it took its whole share (it may have more).
    filled: Option<String>,
}

impl MemberClaimed {
    fn contended() -> Self {
        MemberClaimed {
            claimed: Claimed {
                contended: true,
                ..Claimed::none()
            },
            wait_until: None,
            empty: false,
            grouped: true,
            filled: None,
        }
    }

    /// `group` and `share`: the group's name and the share it was offered.
    fn of(claimed: Claimed, group: Option<&str>, share: usize) -> Self {
        let taken = claimed.jobs.len() + claimed.unreadable.len();
        let empty = taken == 0 && !claimed.contended;
        MemberClaimed {
            filled: group
                .filter(|_| share > 0 && taken >= share)
                .map(str::to_owned),
            claimed,
            wait_until: None,
            empty,
            grouped: group.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_split_slots_evenly_with_the_remainder_first() {
        assert_eq!(shares(10, 1).collect::<Vec<_>>(), vec![10]);
        assert_eq!(shares(10, 3).collect::<Vec<_>>(), vec![4, 3, 3]);
        assert_eq!(shares(2, 2).collect::<Vec<_>>(), vec![1, 1]);
    }
}
