//! uniqueKey dedup and batches against a real server.

mod common;

use common::*;
use mongodb::bson::doc;
use monque::{EnqueueOptions, JobStatus, NewJob};
use serde_json::json;

fn keyed(key: &str) -> EnqueueOptions {
    EnqueueOptions {
        unique_key: Some(key.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_duplicate_enqueues_make_one_job() {
    let db = TestDb::new("unique8");
    let q = db.queue(fast_options()).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.enqueue("sync", json!({ "i": i }), keyed("user-1")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("never an error").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller got the same job");
    assert_eq!(count(&q, doc! { "name": "sync" }).await, 1);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_is_free_again_once_the_job_is_finished() {
    let db = TestDb::new("uniquefree");
    let q = db.queue(fast_options()).await;
    let first = q.enqueue("sync", json!(1), keyed("k")).await.unwrap();
    let again = q.enqueue("sync", json!(2), keyed("k")).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(
        again.data,
        json!(1),
        "the existing job is returned untouched"
    );
    // Same key, other name: independent.
    let other = q.enqueue("other", json!(3), keyed("k")).await.unwrap();
    assert_ne!(other.id, first.id);
    q.collection()
        .update_one(
            doc! { "_id": first.id },
            doc! { "$set": { "status": "completed" } },
        )
        .await
        .unwrap();
    let fresh = q.enqueue("sync", json!(4), keyed("k")).await.unwrap();
    assert_ne!(fresh.id, first.id);
    assert_eq!(fresh.status, JobStatus::Pending);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_insert_and_deduplicate_in_one_call() {
    let db = TestDb::new("batch");
    let q = db.queue(fast_options()).await;
    q.enqueue("b", json!(0), keyed("existing")).await.unwrap();
    let mut jobs: Vec<NewJob> = (0..50)
        .map(|i| NewJob {
            name: "b".into(),
            data: json!(i),
            options: Default::default(),
        })
        .collect();
    for key in ["existing", "new-1", "new-1", "new-2"] {
        jobs.push(NewJob {
            name: "b".into(),
            data: json!(key),
            options: keyed(key),
        });
    }
    let res = q.enqueue_many(jobs).await.unwrap();
    assert_eq!(res.inserted, 52);
    assert_eq!(res.deduplicated, 2);
    assert_eq!(count(&q, doc! { "name": "b" }).await, 53);
    assert_eq!(count(&q, doc! { "uniqueKey": "new-1" }).await, 1);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_an_enqueuer_that_died_before_its_job_insert_is_healed() {
    let db = TestDb::new("uniqueheal");
    let q = db.queue(fast_options()).await;
    // The crash: a lock names a job id that was never inserted.
    let orphan = mongodb::bson::oid::ObjectId::new();
    let locks = locks(&q);
    locks
        .insert_one(doc! { "_id": { "name": "sync", "key": "k" }, "jobId": orphan, "createdAt": mongodb::bson::DateTime::now() })
        .await
        .unwrap();
    let job = q.enqueue("sync", json!("mine"), keyed("k")).await.unwrap();
    assert_eq!(
        job.id, orphan,
        "the job takes the id the lock names, so no second job can appear"
    );
    assert_eq!(job.data, json!("mine"));
    let again = q.enqueue("sync", json!("again"), keyed("k")).await.unwrap();
    assert_eq!(again.id, orphan);
    assert_eq!(count(&q, doc! { "name": "sync" }).await, 1);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_lock_whose_job_is_gone_is_stale_and_does_not_revive_its_id() {
    let db = TestDb::new("uniqueold");
    let q = db.queue(fast_options()).await;
    // A lock left behind by a job deleted long ago (say a failed lock release).
    let gone = mongodb::bson::oid::ObjectId::new();
    let long_ago = mongodb::bson::DateTime::from_millis(
        mongodb::bson::DateTime::now().timestamp_millis() - 600_000,
    );
    locks(&q)
        .insert_one(
            doc! { "_id": { "name": "sync", "key": "k" }, "jobId": gone, "createdAt": long_ago },
        )
        .await
        .unwrap();
    let job = q.enqueue("sync", json!("new"), keyed("k")).await.unwrap();
    assert_ne!(job.id, gone, "a new job, not the deleted one's id");
    let again = q.enqueue("sync", json!("dup"), keyed("k")).await.unwrap();
    assert_eq!(again.id, job.id, "and it holds the key");
    assert_eq!(count(&q, doc! {}).await, 1);
    db.drop_db(&q).await;
}
