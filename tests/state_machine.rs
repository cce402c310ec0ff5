//! Model-based property test of the job state machine against a real server: random
//! starting states and random sequences of management operations, each checked
//! against a model of the documented transitions. After every step the stored status
//! must be the model's, refused operations must be `INVALID_TRANSITION` (or
//! `JOB_NOT_FOUND` once deleted) and every active job with a uniqueKey must hold its lock.

mod common;

use common::*;
use mongodb::bson::{doc, DateTime};
use monque::{EnqueueOptions, JobStatus, Monque, MonqueOptions, ObjectId};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Op {
    Cancel,
    Retry,
    Reschedule,
    Priority,
    Delete,
}

const STATUSES: [JobStatus; 6] = JobStatus::ALL;

/// The documented transitions: `Some(next)` (None = deleted) when allowed.
fn model(op: Op, from: JobStatus) -> Option<Option<JobStatus>> {
    use JobStatus::*;
    match (op, from) {
        (Op::Cancel, Waiting | Pending | Processing) => Some(Some(Cancelled)),
        (Op::Retry, Failed | Cancelled) => Some(Some(Pending)),
        (Op::Reschedule | Op::Priority, Pending) => Some(Some(Pending)),
        (Op::Delete, Processing) => None,
        (Op::Delete, _) => Some(None),
        _ => None,
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Cancel),
        Just(Op::Retry),
        Just(Op::Reschedule),
        Just(Op::Priority),
        Just(Op::Delete)
    ]
}

/// Three jobs of one name in the given states (keyed or not), as a worker would have
/// left them: finished jobs no longer hold their uniqueKey lock.
async fn setup(q: &Monque, states: &[usize], keyed: bool) -> Vec<ObjectId> {
    let mut ids = Vec::new();
    for (i, &s) in states.iter().enumerate() {
        let options = EnqueueOptions {
            unique_key: keyed.then(|| format!("k{i}")),
            ..Default::default()
        };
        let job = q.enqueue("sm", json!({ "i": i }), options).await.unwrap();
        let status = STATUSES[s];
        if status != JobStatus::Pending {
            let mut set = doc! { "status": status.as_str(), "updatedAt": DateTime::now() };
            if status == JobStatus::Processing {
                set.insert("claimId", ObjectId::new());
                set.insert(
                    "leaseExpiresAt",
                    DateTime::from_millis(DateTime::now().timestamp_millis() + 600_000),
                );
            }
            q.collection()
                .update_one(doc! { "_id": job.id }, doc! { "$set": set })
                .await
                .unwrap();
            if !status.is_active() {
                locks(q)
                    .delete_many(doc! { "jobId": job.id })
                    .await
                    .unwrap();
            }
        }
        ids.push(job.id);
    }
    ids
}

async fn apply(q: &Monque, op: Op, id: ObjectId) -> Result<Option<JobStatus>, &'static str> {
    let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    let res = match op {
        Op::Cancel => q.cancel_job(id).await.map(|j| Some(j.status)),
        Op::Retry => q.retry_job(id).await.map(|j| Some(j.status)),
        Op::Reschedule => q.reschedule_job(id, later).await.map(|j| Some(j.status)),
        Op::Priority => q.set_job_priority(id, 7).await.map(|j| Some(j.status)),
        Op::Delete => q.delete_job(id).await.map(|_| None),
    };
    res.map_err(|e| e.code())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn management_follows_the_documented_state_machine(
        states in prop::collection::vec(0usize..STATUSES.len(), 3),
        keyed in any::<bool>(),
        steps in prop::collection::vec((op(), 0usize..3), 1..10),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let db = TestDb::new("state_machine");
            let q = db.queue(MonqueOptions { ..fast_options() }).await;
            let ids = setup(&q, &states, keyed).await;
            let mut current: Vec<Option<JobStatus>> = states.iter().map(|&s| Some(STATUSES[s])).collect();
            for (op, i) in steps {
                let got = apply(&q, op, ids[i]).await;
                match current[i] {
                    None => match op {
                        Op::Delete => assert_eq!(got, Ok(None), "deleting a deleted job"),
                        _ => assert_eq!(got, Err("JOB_NOT_FOUND"), "{op:?} on a deleted job"),
                    },
                    Some(from) => match model(op, from) {
                        Some(next) => {
                            assert_eq!(got, Ok(next), "{op:?} from {from:?}");
                            current[i] = next;
                        }
                        None => assert_eq!(got, Err("INVALID_TRANSITION"), "{op:?} from {from:?}"),
                    },
                }
                for (j, expected) in current.iter().enumerate() {
                    let stored = q.get_job(ids[j]).await.unwrap().map(|job| job.status);
                    assert_eq!(stored, *expected, "job {j} after {op:?} on job {i}");
                    if keyed && expected.is_some_and(|s| s.is_active()) {
                        let lock = locks(&q).count_documents(doc! { "jobId": ids[j] }).await.unwrap();
                        assert_eq!(lock, 1, "active keyed job {j} holds its lock");
                    }
                }
            }
            db.drop_db(&q).await;
        });
    }
}
