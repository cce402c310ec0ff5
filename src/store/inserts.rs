//! Plain inserts of new jobs: one, or many in one round trip. Jobs with a uniqueKey
//! go through unique.rs, jobs with dependencies through flows.rs.

use mongodb::bson::Document;

use super::groups::group_of;
use super::Store;
use crate::error::Result;

impl Store {
    pub(crate) async fn insert(&self, doc: &Document) -> Result<()> {
        self.coll
            .insert_one(doc)
            .await
            .map_err(|e| self.db_err(e))?;
        if let Some(due) = group_of(doc) {
            self.note_due_after_write(&[due]).await;
        }
        Ok(())
    }

    /// Unordered: one bad document does not stop the others.
    pub(crate) async fn insert_many(&self, docs: Vec<Document>) -> Result<()> {
        let due: Vec<_> = docs.iter().filter_map(group_of).collect();
        let inserted = self.coll.insert_many(docs).ordered(false).await;
        // Even when some were refused: the others are in, and their groups must know.
        self.note_due_after_write(&due).await;
        inserted.map(|_| ()).map_err(|e| self.db_err(e))
    }
}
