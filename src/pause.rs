//! Pausing: a paused job name (or the whole queue) claims nothing, on every instance.
//! Pauses are documents in `<collection>_paused`, so they survive restarts and every
//! instance obeys: each one applies its own pause/resume at once and re-reads the
//! collection every heartbeat for the others'. Jobs already running finish normally.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};

use crate::client::Inner;
use crate::error::Result;
use crate::events::Event;
use crate::job::validate_job_name;

/// What this instance believes is paused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Paused {
    all: bool,
    names: HashSet<String>,
}

const ALL: &str = "all";

fn pause_id(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("name:{name}"),
        None => ALL.to_owned(),
    }
}

impl Inner {
    pub(crate) fn is_paused_here(&self, name: &str) -> bool {
        let paused = self.paused.read().expect("paused lock");
        paused.all || paused.names.contains(name)
    }

    pub(crate) async fn pause(&self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            validate_job_name(name)?;
        }
        self.pauses
            .update_one(
                doc! { "_id": pause_id(name) },
                doc! { "$setOnInsert": { "pausedAt": DateTime::now(), "by": &self.instance_id } },
            )
            .upsert(true)
            .await
            .map_err(|e| self.db_err(e))?;
        self.refresh_pauses().await?;
        tracing::info!(name, "paused");
        self.emit(Event::QueuePaused {
            name: name.map(str::to_owned),
            paused: true,
        });
        Ok(())
    }

    pub(crate) async fn resume(&self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            validate_job_name(name)?;
        }
        self.pauses
            .delete_one(doc! { "_id": pause_id(name) })
            .await
            .map_err(|e| self.db_err(e))?;
        self.refresh_pauses().await?;
        tracing::info!(name, "resumed");
        self.emit(Event::QueuePaused {
            name: name.map(str::to_owned),
            paused: false,
        });
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

    /// Re-reads the pauses; wakes the workers when something was resumed.
    pub(crate) async fn refresh_pauses(&self) -> Result<()> {
        let docs: Vec<Document> = self
            .pauses
            .find(doc! {})
            .await
            .map_err(|e| self.db_err(e))?
            .try_collect()
            .await
            .map_err(|e| self.db_err(e))?;
        let mut now = Paused::default();
        for d in docs {
            match d.get_str("_id") {
                Ok(ALL) => now.all = true,
                Ok(id) => {
                    if let Some(name) = id.strip_prefix("name:") {
                        now.names.insert(name.to_owned());
                    }
                }
                Err(_) => {}
            }
        }
        let resumed = {
            let mut paused = self.paused.write().expect("paused lock");
            let resumed =
                (paused.all && !now.all) || paused.names.difference(&now.names).next().is_some();
            *paused = now;
            resumed
        };
        if resumed {
            self.wake_all();
        }
        Ok(())
    }
}
