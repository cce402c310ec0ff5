//! The change stream idle workers wake on: jobs that became claimable (inserted
//! `pending`, or put back to `pending`) and jobs cancelled while they may be running.

use futures_util::{Stream, StreamExt};
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};

use super::Store;
use crate::error::Result;

/// What a change means to this instance.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A job of this name (`None`: an update, which carries no name) may be claimable
    /// now, or at `at` when the change says when it falls due (a delayed enqueue, a
    /// reschedule, a retry or a schedule's next run from another process).
    Claimable {
        name: Option<String>,
        at: Option<DateTime>,
        /// An inserted job of a group (store/groups.rs).
        grouped: bool,
    },
    /// This job was cancelled; a run of it here must abort.
    Cancelled(ObjectId),
}

/// Reads one change-stream event; `None` for one that means nothing here.
fn read_change(event: &Document) -> Option<Change> {
    let status = event
        .get_document("updateDescription")
        .and_then(|u| u.get_document("updatedFields"))
        .and_then(|f| f.get_str("status"));
    if status == Ok("cancelled") {
        let id = event
            .get_document("documentKey")
            .and_then(|k| k.get_object_id("_id"))
            .ok()?;
        return Some(Change::Cancelled(id));
    }
    let full = event.get_document("fullDocument").ok();
    let name = full.and_then(|d| d.get_str("name").ok()).map(str::to_owned);
    let at = full
        .or_else(|| {
            event
                .get_document("updateDescription")
                .and_then(|u| u.get_document("updatedFields"))
                .ok()
        })
        .and_then(|d| d.get_datetime("nextRunAt").ok())
        .copied();
    let grouped = full.is_some_and(|d| d.contains_key("group"));
    Some(Change::Claimable { name, at, grouped })
}

impl Store {
    /// Opens the change stream. Fails where the server has none (a standalone server);
    /// the stream ends with an error when the server drops it.
    pub(crate) async fn watch_changes(&self) -> Result<impl Stream<Item = Result<Change>>> {
        let pipeline = [doc! { "$match": { "$or": [
            // Not jobs inserted already claimed (a local hand-off): nothing to claim there.
            { "operationType": "insert", "fullDocument.status": "pending" },
            { "operationType": "update", "updateDescription.updatedFields.status": "pending" },
            // A pending job moved in time (a reschedule): due at its new nextRunAt.
            { "operationType": "update", "updateDescription.updatedFields.nextRunAt": { "$exists": true } },
            // A job cancelled while it runs: its worker aborts the run.
            { "operationType": "update", "updateDescription.updatedFields.status": "cancelled" },
        ] } }];
        let stream = self
            .coll
            .watch()
            .pipeline(pipeline)
            .await
            .map_err(|e| self.db_err(e))?
            .with_type::<Document>();
        let timeout = self.server_selection_timeout;
        Ok(stream.filter_map(move |event| async move {
            match event {
                Ok(event) => read_change(&event).map(Ok),
                Err(err) => Some(Err(crate::error::Error::from_driver(err, timeout))),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_as_changes() {
        let id = ObjectId::new();
        let cancelled = doc! {
            "documentKey": { "_id": id },
            "updateDescription": { "updatedFields": { "status": "cancelled" } },
        };
        assert_eq!(read_change(&cancelled), Some(Change::Cancelled(id)));
        let at = DateTime::from_millis(1_700_000_000_000);
        let inserted =
            doc! { "fullDocument": { "name": "mail", "status": "pending", "nextRunAt": at } };
        assert_eq!(
            read_change(&inserted),
            Some(Change::Claimable {
                name: Some("mail".into()),
                at: Some(at),
                grouped: false,
            })
        );
        let grouped =
            doc! { "fullDocument": { "name": "mail", "group": "t1", "status": "pending" } };
        assert_eq!(
            read_change(&grouped),
            Some(Change::Claimable {
                name: Some("mail".into()),
                at: None,
                grouped: true,
            })
        );
        let retried = doc! { "updateDescription": { "updatedFields": { "status": "pending" } } };
        assert_eq!(
            read_change(&retried),
            Some(Change::Claimable {
                name: None,
                at: None,
                grouped: false,
            })
        );
        let rescheduled = doc! { "updateDescription": { "updatedFields": { "nextRunAt": at } } };
        assert_eq!(
            read_change(&rescheduled),
            Some(Change::Claimable {
                name: None,
                at: Some(at),
                grouped: false,
            })
        );
    }
}
