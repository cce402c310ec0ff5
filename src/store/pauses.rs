//! Pauses: one document per paused job name (or the whole queue) in
//! `<collection>_paused`, so they survive restarts and every instance obeys them.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};

use super::Store;
use crate::error::Result;
use crate::job::validate_job_name;

/// What is paused, as stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Paused {
    /// The whole queue.
    pub(crate) all: bool,
    /// These names.
    pub(crate) names: HashSet<String>,
}

impl Paused {
    /// Whether jobs of `name` may not be claimed.
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }

    /// Whether something paused in `self` is not in `now` any more.
    pub(crate) fn resumed_in(&self, now: &Paused) -> bool {
        (self.all && !now.all) || self.names.difference(&now.names).next().is_some()
    }
}

const ALL: &str = "all";

fn pause_id(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("name:{name}"),
        None => ALL.to_owned(),
    }
}

impl Store {
    /// Pauses `name`, or the whole queue.
    pub(crate) async fn pause(&self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            validate_job_name(name)?;
        }
        self.pauses
            .update_one(
                doc! { "_id": pause_id(name) },
                doc! { "$setOnInsert": { "pausedAt": self.now(), "by": &self.instance_id } },
            )
            .upsert(true)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Undoes [`pause`](Self::pause) for `name` (or the queue-wide pause).
    pub(crate) async fn resume(&self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            validate_job_name(name)?;
        }
        self.pauses
            .delete_one(doc! { "_id": pause_id(name) })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Whether `name` (or, with `None`, the whole queue) is paused, as stored.
    pub(crate) async fn is_paused(&self, name: Option<&str>) -> Result<bool> {
        let mut ids = vec![pause_id(None)];
        if let Some(name) = name {
            validate_job_name(name)?;
            ids.push(pause_id(Some(name)));
        }
        let found = self
            .pauses
            .find_one(doc! { "_id": { "$in": ids } })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(found.is_some())
    }

    /// Everything paused now.
    pub(crate) async fn read_pauses(&self) -> Result<Paused> {
        let docs: Vec<Document> = self
            .pauses
            .find(doc! {})
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let mut paused = Paused::default();
        for d in docs {
            match d.get_str("_id") {
                Ok(ALL) => paused.all = true,
                Ok(id) => {
                    if let Some(name) = id.strip_prefix("name:") {
                        paused.names.insert(name.to_owned());
                    }
                }
                Err(_) => {}
            }
        }
        Ok(paused)
    }
}
