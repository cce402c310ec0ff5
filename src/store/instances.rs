//! Live instances: every started instance keeps a document in `<collection>_instances`
//! with the job names it handles, refreshed every heartbeat and removed on stop. From
//! them, the jobs no live instance handles (orphans) can be counted.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};

use super::queries::count_of;
use super::Store;
use crate::error::Result;
use crate::query::Instance;
use crate::status::JobStatus;

/// Due jobs of one name that no live instance handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orphans {
    pub(crate) name: String,
    pub(crate) count: u64,
    /// When the longest-waiting of them fell due.
    pub(crate) oldest_due: DateTime,
}

impl Store {
    /// Writes this instance's presence: alive now, handling `names`.
    pub(crate) async fn publish_instance(
        &self,
        names: &[String],
        started_at: DateTime,
        notify_mode: &str,
    ) -> Result<()> {
        self.instances
            .update_one(
                doc! { "_id": &self.instance_id },
                doc! { "$set": {
                    "names": names,
                    "startedAt": started_at,
                    "heartbeatAt": self.now(),
                    "notifyMode": notify_mode,
                } },
            )
            .upsert(true)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Removes this instance's presence (on stop).
    pub(crate) async fn withdraw_instance(&self) -> Result<()> {
        self.instances
            .delete_one(doc! { "_id": &self.instance_id })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The instances whose last heartbeat is younger than a lease.
    pub(crate) async fn live_instances(&self) -> Result<Vec<Instance>> {
        let since = self.ago(self.lease_duration);
        let docs: Vec<Document> = self
            .instances
            .find(doc! { "heartbeatAt": { "$gte": since } })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some(Instance {
                    id: d.get_str("_id").ok()?.to_owned(),
                    names: d
                        .get_array("names")
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    started_at: *d.get_datetime("startedAt").ok()?,
                    heartbeat_at: *d.get_datetime("heartbeatAt").ok()?,
                    notify_mode: d.get_str("notifyMode").unwrap_or("off").to_owned(),
                })
            })
            .collect())
    }

    /// Pending jobs due before `due_before` whose name none of the `live` instances
    /// handles, per name (of `name` only, when given).
    pub(crate) async fn orphans(
        &self,
        live: &[Instance],
        due_before: DateTime,
        name: Option<&str>,
    ) -> Result<Vec<Orphans>> {
        let handled: Vec<&String> = live.iter().flat_map(|i| &i.names).collect();
        let names = match name {
            Some(name) if handled.iter().any(|h| *h == name) => return Ok(Vec::new()),
            Some(name) => doc! { "$eq": name },
            None => doc! { "$nin": handled },
        };
        let matcher = doc! {
            "status": JobStatus::Pending.as_str(),
            "nextRunAt": { "$lte": due_before },
            "name": names,
        };
        let groups: Vec<Document> = self
            .coll
            .aggregate([
                doc! { "$match": matcher },
                doc! { "$group": { "_id": "$name", "count": { "$sum": 1 }, "oldest": { "$min": "$nextRunAt" } } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(groups
            .iter()
            .filter_map(|g| {
                Some(Orphans {
                    name: g.get_str("_id").ok()?.to_owned(),
                    count: g.get("count").and_then(count_of).unwrap_or(0),
                    oldest_due: *g.get_datetime("oldest").ok()?,
                })
            })
            .collect())
    }
}
