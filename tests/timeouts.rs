//! Job timeouts against a real server: a run past its worker's `timeout` is aborted,
//! reported and failed; one within it is untouched.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use monque::{
    AbortReason, EnqueueOptions, Event, HandlerError, JobContext, JobStatus, MonqueOptions,
    WorkerOptions,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_timeout_is_aborted_reported_and_failed() {
    let db = TestDb::new("timeout");
    let q = db
        .queue(MonqueOptions {
            max_retries: 0,
            ..fast_options()
        })
        .await;
    let reasons: Arc<Mutex<Vec<Option<AbortReason>>>> = Arc::default();
    let r = reasons.clone();
    q.register(
        "hangs",
        move |ctx: JobContext| {
            let reasons = r.clone();
            async move {
                if ctx.job.data["quick"] == json!(true) {
                    return Ok(());
                }
                ctx.signal.aborted().await;
                reasons.lock().unwrap().push(ctx.signal.reason());
                // Ignores the abort and hangs on: nobody waits for it any more.
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions {
            timeout: Some(Duration::from_millis(200)),
            concurrency: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let timeouts = count_events(&q, |e| match e {
        Event::JobError {
            code: "JOB_TIMEOUT",
            ..
        } => 1,
        _ => 0,
    });
    q.start().unwrap();
    let job = q.now("hangs", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "failed", || async {
        get(&q, job.id).await.status == JobStatus::Failed
    })
    .await;
    let failed = get(&q, job.id).await;
    assert_eq!(
        failed.fail_reason.as_deref(),
        Some("timed out after 200 ms")
    );
    assert_eq!(timeouts.load(std::sync::atomic::Ordering::SeqCst), 1);
    eventually(Duration::from_secs(5), "the handler saw why", || async {
        *reasons.lock().unwrap() == vec![Some(AbortReason::Timeout)]
    })
    .await;
    // The only slot is free again although the first run still hangs.
    let next = q.now("hangs", json!({ "quick": true })).await.unwrap();
    eventually(Duration::from_secs(5), "the next job completed", || async {
        get(&q, next.id).await.status == JobStatus::Completed
    })
    .await;
    // The hanging run is no longer this instance's: stop() does not wait for it.
    let t0 = Instant::now();
    assert_eq!(q.stop(None).await.unwrap(), 0);
    assert!(t0.elapsed() < Duration::from_secs(2));
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_within_its_timeout_completes() {
    let db = TestDb::new("timeout_ok");
    let q = db.queue(fast_options()).await;
    let runs = counting_worker(
        &q,
        "quick",
        Duration::from_millis(20),
        WorkerOptions {
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        },
    );
    q.start().unwrap();
    let job = q.now("quick", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(q
        .register(
            "zero",
            |_ctx: JobContext| async { Ok::<_, HandlerError>(()) },
            WorkerOptions {
                timeout: Some(Duration::ZERO),
                ..Default::default()
            },
        )
        .is_err_and(|e| e.code() == "INVALID_OPTION"));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_after_stop_handed_the_job_back_changes_nothing() {
    let db = TestDb::new("timeout_stop");
    let q = db.queue(fast_options()).await;
    let started = counting_worker(
        &q,
        "slow",
        Duration::from_secs(3), // ignores its signal
        WorkerOptions {
            timeout: Some(Duration::from_millis(800)),
            ..Default::default()
        },
    );
    let timeouts = count_events(&q, |e| match e {
        Event::JobError {
            code: "JOB_TIMEOUT",
            ..
        }
        | Event::JobError {
            code: "LEASE_LOST", ..
        } => 1,
        _ => 0,
    });
    q.start().unwrap();
    let job = q.now("slow", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "running", || async {
        get(&q, job.id).await.status == JobStatus::Processing
    })
    .await;
    assert_eq!(q.stop(Some(Duration::from_millis(100))).await.unwrap(), 1);
    // Past the job's timeout: the shutdown's hand-back stands.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = get(&q, job.id).await;
    assert_eq!(after.status, JobStatus::Pending);
    assert_eq!(after.fail_count, 0);
    assert_eq!(timeouts.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        started.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never finished"
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_timeout_overrides_its_workers() {
    let db = TestDb::new("timeout_job");
    let q = db
        .queue(MonqueOptions {
            max_retries: 0,
            ..fast_options()
        })
        .await;
    counting_worker(
        &q,
        "slow",
        Duration::from_secs(2),
        WorkerOptions {
            timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        },
    );
    let refused = q
        .enqueue(
            "slow",
            json!({}),
            EnqueueOptions {
                timeout: Some(Duration::ZERO),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "INVALID_OPTION");
    assert_eq!(
        count(&q, mongodb::bson::doc! {}).await,
        0,
        "nothing written"
    );
    q.start().unwrap();
    let job = q
        .enqueue(
            "slow",
            json!({}),
            EnqueueOptions {
                timeout: Some(Duration::from_millis(150)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(job.timeout_ms, Some(150));
    eventually(Duration::from_secs(5), "failed", || async {
        get(&q, job.id).await.status == JobStatus::Failed
    })
    .await;
    assert_eq!(
        get(&q, job.id).await.fail_reason.as_deref(),
        Some("timed out after 150 ms")
    );
    q.stop(Some(Duration::from_millis(100))).await.unwrap();
    db.drop_db(&q).await;
}
