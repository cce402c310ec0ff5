//! The indexes `initialize()` creates. Each one exists for one query, named beside it.

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

/// The claim index's keys (claim.rs hints them): equality on name + status, sort by
/// priority then nextRunAt, range on nextRunAt (equality, sort, range).
pub(super) fn claim_keys() -> Document {
    doc! { "name": 1, "status": 1, "priority": -1, "nextRunAt": 1 }
}

/// The grouped claim index's keys (claim.rs, groups.rs): one group's due jobs, best
/// first, without passing other groups' backlogs. Also counts a group's running jobs
/// (the slot recount). Partial on jobs with a group: queues without groups pay nothing
/// for it on their writes.
pub(super) fn group_claim_keys() -> Document {
    doc! { "name": 1, "group": 1, "status": 1, "priority": -1, "nextRunAt": 1 }
}

/// The grouped claim index, created by the first fair claim of a process that
/// initialized the indexes (`ensure_group_claim`), not by `initialize()`: even partial,
/// it costs some servers time on every insert, and queues without groups never use it.
fn group_claim_model() -> IndexModel {
    index(
        group_claim_keys(),
        IndexOptions::builder()
            .name("monque_group_claim".to_owned())
            .partial_filter_expression(doc! { "group": { "$exists": true } })
            .build(),
    )
}

pub(super) async fn ensure_group_claim(coll: &Collection<Document>) -> mongodb::error::Result<()> {
    coll.create_index(group_claim_model()).await.map(|_| ())
}

pub(super) fn models() -> Vec<IndexModel> {
    vec![
        index(
            claim_keys(),
            IndexOptions::builder()
                .name("monque_claim".to_owned())
                .build(),
        ),
        // Lease recovery (executions.rs): expired `processing` jobs. Partial, so it only
        // holds the few jobs running right now.
        index(
            doc! { "leaseExpiresAt": 1 },
            IndexOptions::builder()
                .name("monque_lease".to_owned())
                .partial_filter_expression(doc! { "status": "processing" })
                .build(),
        ),
        // Management and retention (queries.rs, transitions.rs): jobs by status,
        // oldest change first; also serves the per-status counts of stats and metrics.
        index(
            doc! { "status": 1, "updatedAt": 1 },
            IndexOptions::builder()
                .name("monque_status".to_owned())
                .build(),
        ),
    ]
}

fn index(keys: Document, options: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(options).build()
}

/// The groups collection's indexes (groups.rs; a group's `_id` is `{name, group}`):
/// a name's groups with due work (a claim reads only those, then orders them by when
/// they were served), and the groups holding slots (the recount).
fn group_models() -> Vec<IndexModel> {
    vec![
        index(
            doc! { "name": 1, "due": 1, "servedAt": 1 },
            IndexOptions::builder()
                .name("monque_group_due".to_owned())
                .build(),
        ),
        index(
            doc! { "running": 1, "servedAt": 1 },
            IndexOptions::builder()
                .name("monque_group_running".to_owned())
                .build(),
        ),
    ]
}

pub(super) async fn ensure(
    coll: &Collection<Document>,
    groups: &Collection<Document>,
) -> mongodb::error::Result<()> {
    coll.create_indexes(models()).await?;
    groups.create_indexes(group_models()).await.map(|_| ())
    // The `<collection>_unique` locks need no index of their own: their `_id` is the key.
}
