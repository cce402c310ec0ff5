//! Groups of a job name (a tenant each, say): one small document per (name, group) in
//! `<collection>_groups` says when the group has due work and how many of its jobs run,
//! so a claim picks groups round-robin without reading a big group's backlog
//! (docs/design/groups.md has the measurements behind this).
//!
//! `due` is never later than the earliest `nextRunAt` of the group's pending jobs; it
//! may be earlier. Every write that makes a grouped job pending lowers it (`$min`); a
//! claim that finds the group empty raises it again to what is really next, guarded by
//! the value it read. Early costs one empty claim; late would starve the group, which
//! the `$min` after each insert rules out.
//!
//! Work in progress (branch groups-wip): inserts note their groups and claims are fair;
//! running counts, caps, pauses and the other write paths are still to come.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::options::ReturnDocument;

use super::Store;
use crate::error::Result;
use crate::job::Job;
use crate::status::JobStatus;

/// The group a job document belongs to and when it is due, if it has a group.
pub(crate) fn group_of(doc: &Document) -> Option<(String, String, DateTime)> {
    let group = doc.get_str("group").ok()?;
    let name = doc.get_str("name").ok()?;
    let due = doc.get_datetime("nextRunAt").ok()?;
    Some((name.to_owned(), group.to_owned(), *due))
}

impl Store {
    /// Lowers (or creates) the due time of each group in `due`: call it after the jobs
    /// are written.
    pub(crate) async fn note_due(&self, due: &[(String, String, DateTime)]) -> Result<()> {
        let mut earliest: std::collections::HashMap<(&str, &str), DateTime> = Default::default();
        for (name, group, at) in due {
            let e = earliest.entry((name, group)).or_insert(*at);
            *e = (*e).min(*at);
        }
        for ((name, group), at) in earliest {
            self.groups
                .update_one(
                    doc! { "name": name, "group": group },
                    doc! {
                        "$min": { "due": at },
                        "$setOnInsert": { "running": 0_i64, "servedAt": DateTime::from_millis(0), "paused": false },
                    },
                )
                .upsert(true)
                .await
                .map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    /// Claims up to `max` due jobs of `name`, at most one per group, from the groups
    /// served longest ago.
    pub(crate) async fn claim_from_groups(&self, name: &str, max: usize) -> Result<Vec<Job>> {
        let now = self.now();
        let groups: Vec<Document> = self
            .groups
            .find(doc! { "name": name, "due": { "$lte": now }, "paused": { "$ne": true } })
            .sort(doc! { "servedAt": 1 })
            .limit(max as i64)
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let mut claimed = Vec::new();
        for g in groups {
            let (Ok(id), Ok(group)) = (g.get_object_id("_id"), g.get_str("group")) else {
                continue;
            };
            let served = doc! { "$set": { "servedAt": now } };
            self.groups
                .update_one(doc! { "_id": id }, served)
                .await
                .map_err(|e| self.db_err(e))?;
            let claim_id = ObjectId::new();
            let job = self
                .coll
                .find_one_and_update(
                    doc! { "name": name, "group": group, "status": JobStatus::Pending.as_str(), "nextRunAt": { "$lte": now } },
                    doc! { "$set": self.claim_set(claim_id, now) },
                )
                .sort(doc! { "priority": -1, "nextRunAt": 1 })
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| self.db_err(e))?;
            match job {
                Some(doc) => claimed.push(Job::from_document(doc)?),
                None => {
                    self.settle_due(id, g.get_datetime("due").ok().copied(), name, group)
                        .await?
                }
            }
        }
        Ok(claimed)
    }

    /// A group found without due work: its due time becomes its next pending job's (or
    /// none), unless it was lowered meanwhile.
    async fn settle_due(
        &self,
        id: ObjectId,
        read: Option<DateTime>,
        name: &str,
        group: &str,
    ) -> Result<()> {
        let next = self
            .coll
            .find_one(doc! { "name": name, "group": group, "status": JobStatus::Pending.as_str() })
            .sort(doc! { "nextRunAt": 1 })
            .projection(doc! { "nextRunAt": 1 })
            .await
            .map_err(|e| self.db_err(e))?
            .and_then(|d| d.get_datetime("nextRunAt").ok().copied());
        // None is an absent `due`, not null: `$min` would keep a null (null sorts
        // before every date) and the group would never be due again.
        let update = match next {
            Some(next) => doc! { "$set": { "due": next } },
            None => doc! { "$unset": { "due": "" } },
        };
        self.groups
            .update_one(doc! { "_id": id, "due": read }, update)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}
