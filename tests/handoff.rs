//! Local hand-off against a real server: a job enqueued while its worker idles is
//! written claimed and runs without a claim round trip; in every other case it is an
//! ordinary `pending` job.

mod common;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mongodb::bson::{doc, DateTime};
use monque::{EnqueueOptions, JobStatus, WorkerOptions};
use serde_json::json;

fn concurrency(n: usize) -> WorkerOptions {
    WorkerOptions {
        concurrency: Some(n),
        ..Default::default()
    }
}

/// `fast_options()` without polls while a test runs: a worker woken by its poll is not
/// idle while it looks, and a job enqueued then is an ordinary pending job (a
/// `pollInterval` of 50 ms made that a race).
fn idle_options() -> monque::MonqueOptions {
    monque::MonqueOptions {
        poll_interval: Duration::from_secs(30),
        ..fast_options()
    }
}

/// Waits until the worker has looked, found nothing and gone idle: its first claim is
/// counted, and the worker marks itself idle right after, with no I/O between.
async fn settle(q: &monque::Monque) {
    eventually(
        Duration::from_secs(10),
        "the worker's first claim",
        || async {
            let text = q.metrics().await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("monque_claim_duration_seconds_count "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n >= 1)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_while_its_worker_idles_starts_claimed_by_it() {
    let db = TestDb::new("handoff");
    let q = db.queue(idle_options()).await;
    let runs = counting_worker(&q, "h", Duration::ZERO, concurrency(2));
    q.start().unwrap();
    settle(&q).await;
    let job = q.now("h", json!({ "n": 1 })).await.unwrap();
    assert_eq!(
        job.status,
        JobStatus::Processing,
        "handed straight to the idle worker"
    );
    assert!(job.claim_id.is_some());
    assert!(job.claimed_by.is_some());
    eventually(Duration::from_secs(5), "completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_left_pending_when_no_idle_worker_may_take_them() {
    let db = TestDb::new("handoff_not");
    let q = db.queue(fast_options()).await;
    // Not started: nothing takes jobs.
    counting_worker(&q, "busy", Duration::from_secs(2), concurrency(1));
    counting_worker(&q, "idle", Duration::ZERO, concurrency(2));
    let before_start = q.now("idle", json!({})).await.unwrap();
    assert_eq!(before_start.status, JobStatus::Pending);

    q.start().unwrap();
    settle(&q).await;
    // Delayed, keyed: ordinary pending jobs.
    let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 60_000);
    let delayed = q
        .enqueue(
            "idle",
            json!({}),
            EnqueueOptions {
                run_at: Some(later),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(delayed.status, JobStatus::Pending);
    let keyed = q
        .enqueue(
            "idle",
            json!({}),
            EnqueueOptions {
                unique_key: Some("k".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(keyed.status, JobStatus::Pending);

    // The only slot of `busy` is taken: the second job waits its turn.
    let first = q.now("busy", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "first running", || async {
        get(&q, first.id).await.status == JobStatus::Processing
    })
    .await;
    let second = q.now("busy", json!({})).await.unwrap();
    assert_eq!(second.status, JobStatus::Pending);

    // Paused: nothing starts, handed off or not.
    q.pause(Some("idle")).await.unwrap();
    let paused = q.now("idle", json!({})).await.unwrap();
    assert_eq!(paused.status, JobStatus::Pending);
    assert_eq!(
        count(&q, doc! { "_id": paused.id, "status": "pending" }).await,
        1
    );

    q.stop(Some(Duration::from_millis(100))).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_a_handed_off_job_like_any_claimed_one() {
    let db = TestDb::new("handoff_stop");
    let q = db.queue(idle_options()).await;
    let runs = counting_worker(&q, "h", Duration::from_millis(400), concurrency(1));
    q.start().unwrap();
    settle(&q).await;
    let job = q.now("h", json!({})).await.unwrap();
    assert_eq!(job.status, JobStatus::Processing);
    let handed_back = q.stop(None).await.unwrap();
    assert_eq!(handed_back, 0);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "stop waited for the run");
    assert_eq!(get(&q, job.id).await.status, JobStatus::Completed);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_abandoned_by_its_caller_still_runs_its_handed_off_job() {
    let db = TestDb::new("handoff_drop");
    let q = db.queue(idle_options()).await;
    let runs = counting_worker(&q, "h", Duration::ZERO, concurrency(2));
    q.start().unwrap();
    settle(&q).await;
    // The caller polls the enqueue once (which starts the hand-off's insert) and gives
    // up while it is in flight. A timeout here would race the server: a fast insert
    // finishes before any timer fires.
    let mut enqueue = Box::pin(q.now("h", json!({})));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        enqueue.as_mut().poll(&mut cx).is_pending(),
        "one poll cannot have finished a round trip"
    );
    drop(enqueue);
    eventually(Duration::from_secs(5), "every inserted job ran", || async {
        let all = count(&q, doc! { "name": "h" }).await;
        all > 0 && count(&q, doc! { "name": "h", "status": "completed" }).await == all
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let t0 = std::time::Instant::now();
    assert_eq!(q.stop(None).await.unwrap(), 0);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "nothing left running to wait for"
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hand_off_the_worker_looks_again_for_jobs_that_fell_due() {
    let db = TestDb::new("handoff_look");
    let q = db
        .queue(monque::MonqueOptions {
            poll_interval: Duration::from_secs(30),
            change_streams: false,
            ..fast_options()
        })
        .await;
    counting_worker(&q, "h", Duration::ZERO, concurrency(4));
    q.start().unwrap();
    settle(&q).await;
    // Due, but written behind the worker's back (as another instance without change
    // streams would): only a poll, 30 s away, would find it.
    let now = DateTime::now();
    let other = q
        .collection()
        .insert_one(doc! { "name": "h", "data": {}, "status": "pending", "priority": 0, "nextRunAt": now, "failCount": 0, "createdAt": now, "updatedAt": now })
        .await
        .unwrap()
        .inserted_id;
    let local = q.now("h", json!({})).await.unwrap();
    assert_eq!(local.status, JobStatus::Processing);
    eventually(Duration::from_secs(5), "the older job ran too", || async {
        count(&q, doc! { "_id": other.clone(), "status": "completed" }).await == 1
    })
    .await;
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}
