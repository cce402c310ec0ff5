//! Batch claims against a real server: one claim per free slot, best jobs first, and
//! fencing that still holds per execution when a batch shares its claim id.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use monque::{
    EnqueueOptions, Event, HandlerError, JobContext, JobStatus, Monque, MonqueOptions, NewJob,
    WorkerOptions,
};
use serde_json::json;
use tokio::sync::Semaphore;

/// Registers `name`: each run records its job's priority, then waits for a gate permit.
fn gated_worker(
    q: &Monque,
    name: &str,
    concurrency: usize,
) -> (Arc<Semaphore>, Arc<Mutex<Vec<i32>>>) {
    let gate = Arc::new(Semaphore::new(0));
    let started: Arc<Mutex<Vec<i32>>> = Arc::default();
    let (g, s) = (gate.clone(), started.clone());
    q.register(
        name,
        move |ctx: JobContext| {
            let (gate, started) = (g.clone(), s.clone());
            async move {
                started.lock().unwrap().push(ctx.job.priority);
                gate.acquire().await.unwrap().forget();
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions {
            concurrency: Some(concurrency),
            ..Default::default()
        },
    )
    .unwrap();
    (gate, started)
}

async fn enqueue_with_priorities(q: &Monque, name: &str, priorities: impl Iterator<Item = i32>) {
    let jobs: Vec<NewJob> = priorities
        .map(|p| NewJob {
            name: name.into(),
            data: json!({ "p": p }),
            options: EnqueueOptions {
                priority: p,
                ..Default::default()
            },
        })
        .collect();
    q.enqueue_many(jobs).await.unwrap();
}

async fn processing(q: &Monque) -> Vec<Document> {
    q.collection()
        .find(doc! { "status": "processing" })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_slots_are_filled_by_one_batch_claim_of_the_best_jobs() {
    let db = TestDb::new("claim_batch");
    let q = db.queue(fast_options()).await;
    let (gate, started) = gated_worker(&q, "batch", 4);
    enqueue_with_priorities(&q, "batch", 0..10).await;
    q.start().unwrap();
    eventually(Duration::from_secs(10), "4 running", || async {
        started.lock().unwrap().len() == 4
    })
    .await;
    // Polls and wake-ups keep coming; no slot is free, so nothing more is claimed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = processing(&q).await;
    assert_eq!(running.len(), 4, "one job per slot, never more");
    let mut first: Vec<i32> = started.lock().unwrap().clone();
    first.sort_unstable();
    assert_eq!(first, vec![6, 7, 8, 9], "the highest priorities first");
    let claims: HashSet<ObjectId> = running
        .iter()
        .map(|d| d.get_object_id("claimId").unwrap())
        .collect();
    assert_eq!(claims.len(), 1, "the four came in one claim: {claims:?}");

    gate.add_permits(10);
    eventually(Duration::from_secs(10), "all completed", || async {
        count(&q, doc! { "status": "completed" }).await == 10
    })
    .await;
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_batch_1_claims_each_job_on_its_own() {
    let db = TestDb::new("claim_single");
    let q = db
        .queue(MonqueOptions {
            claim_batch: 1,
            ..fast_options()
        })
        .await;
    let (gate, started) = gated_worker(&q, "single", 4);
    enqueue_with_priorities(&q, "single", 0..6).await;
    q.start().unwrap();
    eventually(Duration::from_secs(10), "4 running", || async {
        started.lock().unwrap().len() == 4
    })
    .await;
    let claims: HashSet<ObjectId> = processing(&q)
        .await
        .iter()
        .map(|d| d.get_object_id("claimId").unwrap())
        .collect();
    assert_eq!(claims.len(), 4, "a claim id per job");
    gate.add_permits(6);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mate_losing_its_lease_does_not_fence_off_the_other() {
    let db = TestDb::new("claim_fence");
    let q = db.queue(fast_options()).await;
    let (gate, started) = gated_worker(&q, "fence", 2);
    let lost: Arc<Mutex<Vec<ObjectId>>> = Arc::default();
    let l = lost.clone();
    q.on_event(move |e| {
        if let Event::JobError {
            code: "LEASE_LOST",
            job: Some(job),
            ..
        } = e
        {
            l.lock().unwrap().push(job.id);
        }
    });
    enqueue_with_priorities(&q, "fence", [1, 2].into_iter()).await;
    q.start().unwrap();
    eventually(Duration::from_secs(10), "both running", || async {
        started.lock().unwrap().len() == 2
    })
    .await;
    let running = processing(&q).await;
    let claim = running[0].get_object_id("claimId").unwrap();
    assert!(running
        .iter()
        .all(|d| d.get_object_id("claimId").unwrap() == claim));
    let (stolen, kept) = (
        running[0].get_object_id("_id").unwrap(),
        running[1].get_object_id("_id").unwrap(),
    );

    // As if `stolen`'s lease had expired and another instance had claimed it again.
    let thief = ObjectId::new();
    let far = DateTime::from_millis(DateTime::now().timestamp_millis() + 600_000);
    q.collection()
        .update_one(
            doc! { "_id": stolen },
            doc! { "$set": { "claimId": thief, "claimedBy": "thief", "leaseExpiresAt": far } },
        )
        .await
        .unwrap();
    gate.add_permits(2);

    eventually(
        Duration::from_secs(10),
        "the kept job completed",
        || async { get(&q, kept).await.status == JobStatus::Completed },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the lost lease reported",
        || async { lost.lock().unwrap().contains(&stolen) },
    )
    .await;
    let stolen_doc = get(&q, stolen).await;
    assert_eq!(
        stolen_doc.status,
        JobStatus::Processing,
        "the newer execution's job is untouched"
    );
    assert_eq!(stolen_doc.claim_id, Some(thief));
    assert_eq!(
        lost.lock().unwrap().as_slice(),
        &[stolen],
        "only the stolen job lost its lease"
    );
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_go_on_without_the_hint_when_the_claim_index_is_dropped() {
    let db = TestDb::new("claim_nohint");
    let q = db.queue(fast_options()).await;
    let runs = counting_worker(&q, "h", Duration::ZERO, WorkerOptions::default());
    q.collection().drop_index("monque_claim").await.unwrap();
    enqueue_with_priorities(&q, "h", 0..6).await;
    q.start().unwrap();
    eventually(Duration::from_secs(10), "all completed", || async {
        count(&q, doc! { "status": "completed" }).await == 6
    })
    .await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 6);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}
