//! The life of a job against a real server: enqueue, claim, complete; failures,
//! backoff and max retries; priorities; fencing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mongodb::bson::doc;
use monque::{
    Backoff, EnqueueOptions, Event, HandlerError, JobContext, JobStatus, MonqueOptions,
    WorkerOptions,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_job_is_processed_and_completed() {
    let db = TestDb::new("complete");
    let q = db.queue(fast_options()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    q.register(
        "greet",
        move |ctx: JobContext| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push(ctx.job.data.clone());
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    q.on_event(move |e| ev.lock().unwrap().push(e.kind()));
    q.start().unwrap();
    let job = q
        .now("greet", json!({ "who": "ada", "n": 3 }))
        .await
        .unwrap();
    // Pending, or already handed to the idle worker (handoff.rs).
    assert!(job.status.is_active(), "{:?}", job.status);
    eventually(Duration::from_secs(5), "job completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    let done = get(&q, job.id).await;
    assert!(done.completed_at.is_some());
    assert!(
        done.claim_id.is_none() && done.lease_expires_at.is_none(),
        "lock fields cleared"
    );
    assert_eq!(*seen.lock().unwrap(), vec![json!({ "who": "ada", "n": 3 })]);
    q.stop(None).await.unwrap();
    let kinds = events.lock().unwrap().clone();
    assert!(
        kinds.contains(&"job:start") && kinds.contains(&"job:complete"),
        "{kinds:?}"
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_then_fail_after_max_retries() {
    let db = TestDb::new("retries");
    let backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
        jitter: 0.0,
    };
    let q = db
        .queue(MonqueOptions {
            backoff,
            ..fast_options()
        })
        .await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let a2 = attempts.clone();
    q.register(
        "flaky",
        move |ctx: JobContext| {
            let attempts = a2.clone();
            async move {
                attempts
                    .lock()
                    .unwrap()
                    .push((ctx.job.fail_count, std::time::Instant::now()));
                Err::<(), _>(format!("boom {}", ctx.job.fail_count))
            }
        },
        WorkerOptions {
            max_retries: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let retries = Arc::new(Mutex::new(Vec::new()));
    let r2 = retries.clone();
    q.on_event(move |e| {
        if let Event::JobRetry { delay, job, .. } = e {
            r2.lock().unwrap().push((job.fail_count, *delay));
        }
    });
    q.start().unwrap();
    let job = q.now("flaky", json!({})).await.unwrap();
    eventually(Duration::from_secs(8), "job failed", || async {
        get(&q, job.id).await.status == JobStatus::Failed
    })
    .await;
    let failed = get(&q, job.id).await;
    assert_eq!(failed.fail_count, 3, "first attempt + 2 retries");
    assert_eq!(failed.fail_reason.as_deref(), Some("boom 2"));
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(
        attempts.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    // 2^failCount × base: 200 ms after the first failure, 400 ms after the second.
    assert_eq!(
        *retries.lock().unwrap(),
        vec![
            (1, Duration::from_millis(200)),
            (2, Duration::from_millis(400))
        ]
    );
    assert!(attempts[1].1 - attempts[0].1 >= Duration::from_millis(200));
    assert!(attempts[2].1 - attempts[1].1 >= Duration::from_millis(400));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_and_panics_are_failures() {
    let db = TestDb::new("permanent");
    let q = db.queue(fast_options()).await;
    q.register(
        "perm",
        |_ctx: JobContext| async { Err::<(), _>(HandlerError::permanent("bad input")) },
        WorkerOptions::default(),
    )
    .unwrap();
    q.register(
        "panics",
        |_ctx: JobContext| async {
            if true {
                panic!("kaboom");
            }
            Ok::<(), HandlerError>(())
        },
        WorkerOptions {
            max_retries: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    q.start().unwrap();
    let a = q.now("perm", json!(1)).await.unwrap();
    let b = q.now("panics", json!(2)).await.unwrap();
    eventually(Duration::from_secs(5), "both failed", || async {
        get(&q, a.id).await.status == JobStatus::Failed
            && get(&q, b.id).await.status == JobStatus::Failed
    })
    .await;
    assert_eq!(get(&q, a.id).await.fail_count, 1, "not retried");
    assert!(get(&q, b.id).await.fail_reason.unwrap().contains("kaboom"));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_and_earlier_jobs_are_claimed_first() {
    let db = TestDb::new("priority");
    let q = db.queue(fast_options()).await;
    for (p, tag) in [(0, "low"), (10, "high"), (5, "mid"), (10, "high2")] {
        let opts = EnqueueOptions {
            priority: p,
            ..Default::default()
        };
        q.enqueue("ordered", json!(tag), opts).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    q.register(
        "ordered",
        move |ctx: JobContext| {
            let order = o2.clone();
            async move {
                order
                    .lock()
                    .unwrap()
                    .push(ctx.job.data.as_str().unwrap().to_owned());
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions {
            concurrency: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    q.start().unwrap();
    eventually(Duration::from_secs(5), "all ran", || async {
        order.lock().unwrap().len() == 4
    })
    .await;
    assert_eq!(*order.lock().unwrap(), vec!["high", "high2", "mid", "low"]);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_in_the_future_waits() {
    let db = TestDb::new("runat");
    let q = db.queue(fast_options()).await;
    q.register(
        "later",
        |_c: JobContext| async { Ok::<_, HandlerError>(()) },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    // Far enough ahead that the enqueue, the sleep and the read below fit before it.
    let at = monque::DateTime::from_millis(monque::DateTime::now().timestamp_millis() + 2_000);
    let job = q
        .enqueue(
            "later",
            json!({}),
            EnqueueOptions {
                run_at: Some(at),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&q, job.id).await.status,
        JobStatus::Pending,
        "not before runAt"
    );
    eventually(Duration::from_secs(5), "ran after runAt", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    let done = get(&q, job.id).await;
    assert!(done.locked_at.unwrap().timestamp_millis() >= at.timestamp_millis());
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_cannot_write_its_result() {
    let db = TestDb::new("fencing");
    let q = db.queue(fast_options()).await;
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let rel = release.clone();
    q.register(
        "slow",
        move |ctx: JobContext| {
            let tx = started_tx.clone();
            let rel = rel.clone();
            async move {
                tx.send(ctx.job.claim_id.unwrap()).unwrap();
                rel.notified().await;
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    let lost = count_events(&q, |e| {
        matches!(
            e,
            Event::JobError {
                code: "LEASE_LOST",
                ..
            }
        ) as usize
    });
    q.start().unwrap();
    let job = q.now("slow", json!({})).await.unwrap();
    let claim = started_rx.recv().await.unwrap();
    // Another worker takes the job over (as after an expired lease): new claimId.
    let newer = mongodb::bson::oid::ObjectId::new();
    q.collection()
        .update_one(
            doc! { "_id": job.id, "claimId": claim },
            doc! { "$set": { "claimId": newer, "claimedBy": "other" } },
        )
        .await
        .unwrap();
    release.notify_one();
    eventually(Duration::from_secs(5), "lease-lost reported", || async {
        lost.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let after = get(&q, job.id).await;
    assert_eq!(
        after.status,
        JobStatus::Processing,
        "old worker's completion was fenced off"
    );
    assert_eq!(after.claim_id, Some(newer));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_refused_before_any_write() {
    let db = TestDb::new("invalid");
    let q = db
        .queue(MonqueOptions {
            max_payload_size: 100,
            ..fast_options()
        })
        .await;
    let cases = [
        ("", json!({}), "INVALID_JOB_NAME"),
        ("a\nb", json!({}), "INVALID_JOB_NAME"),
        ("ok", json!({ "$where": "1" }), "INVALID_DATA"),
        ("ok", json!({ "a": { "b.c": 1 } }), "INVALID_DATA"),
        ("ok", json!({ "big": "x".repeat(200) }), "PAYLOAD_TOO_LARGE"),
    ];
    for (name, data, code) in cases {
        let err = q.now(name, data).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let err = q
        .enqueue(
            "ok",
            json!({}),
            EnqueueOptions {
                unique_key: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_OPTION");
    // A batch with one bad job writes nothing.
    let good = monque::NewJob {
        name: "ok".into(),
        data: json!(1),
        options: Default::default(),
    };
    let bad = monque::NewJob {
        name: "".into(),
        data: json!(1),
        options: Default::default(),
    };
    assert_eq!(
        q.enqueue_many(vec![good, bad]).await.unwrap_err().code(),
        "INVALID_JOB_NAME"
    );
    assert_eq!(count(&q, doc! {}).await, 0);
    let h = |_c: JobContext| async { Ok::<_, HandlerError>(()) };
    q.register("dup", h, WorkerOptions::default()).unwrap();
    assert_eq!(
        q.register("dup", h, WorkerOptions::default())
            .unwrap_err()
            .code(),
        "WORKER_EXISTS"
    );
    q.register(
        "dup",
        h,
        WorkerOptions {
            replace: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        q.register(
            "x",
            h,
            WorkerOptions {
                concurrency: Some(0),
                ..Default::default()
            }
        )
        .unwrap_err()
        .code(),
        "INVALID_OPTION"
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_after_a_failed_attempt_clears_its_fail_reason() {
    let db = TestDb::new("fail_reason");
    let q = db.queue(quick_retries()).await;
    q.register(
        "flaky",
        |ctx: JobContext| async move {
            if ctx.job.fail_count == 0 {
                return Err(HandlerError::new("first"));
            }
            Ok::<_, HandlerError>(())
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    let job = q.now("flaky", json!({})).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "completed on the second run",
        || async { get(&q, job.id).await.status == JobStatus::Completed },
    )
    .await;
    let done = get(&q, job.id).await;
    assert_eq!(done.fail_count, 1, "the failed attempt is still counted");
    assert_eq!(
        done.fail_reason, None,
        "the last run succeeded: no error to show"
    );
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[derive(Debug)]
struct Inner;
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}
impl std::error::Error for Inner {}

#[derive(Debug)]
struct Outer(Inner);
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not write the report")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_keep_their_stack_and_every_run_its_place_in_the_history() {
    let db = TestDb::new("attempts");
    let q = db
        .queue(MonqueOptions {
            max_retries: 1,
            ..quick_retries()
        })
        .await;
    q.register(
        "report",
        |ctx: JobContext| async move {
            if ctx.job.data["succeed_on"].as_u64() == Some(u64::from(ctx.job.fail_count)) {
                return Ok::<_, HandlerError>(());
            }
            Err(Outer(Inner).into())
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    // Fails once, then succeeds: the history shows both, the error is cleared.
    let recovers = q.now("report", json!({ "succeed_on": 1 })).await.unwrap();
    // Fails twice with max_retries 1: failed for good, with its stack.
    let fails = q.now("report", json!({})).await.unwrap();
    // Succeeds at once: nothing to add to what the job shows.
    let first_try = q.now("report", json!({ "succeed_on": 0 })).await.unwrap();
    eventually(Duration::from_secs(5), "all ended", || async {
        get(&q, recovers.id).await.status == JobStatus::Completed
            && get(&q, fails.id).await.status == JobStatus::Failed
            && get(&q, first_try.id).await.status == JobStatus::Completed
    })
    .await;
    assert!(get(&q, first_try.id).await.attempts.is_empty());
    let done = get(&q, recovers.id).await;
    let outcomes: Vec<&str> = done.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "completed"]);
    assert_eq!(
        done.attempts[0].error.as_deref(),
        Some("could not write the report")
    );
    assert_eq!(done.attempts[1].error, None);
    assert_eq!(
        done.fail_stack, None,
        "a success clears the stack with the reason"
    );
    for attempt in &done.attempts {
        assert_eq!(attempt.instance.as_deref(), Some(q.instance_id()));
        assert!(attempt.started_at <= done.updated_at);
    }
    let failed = get(&q, fails.id).await;
    assert_eq!(failed.attempts.len(), 2);
    assert!(failed.attempts.iter().all(|a| a.outcome == "failed"));
    assert_eq!(
        failed.fail_reason.as_deref(),
        Some("could not write the report")
    );
    assert_eq!(failed.fail_stack.as_deref(), Some("caused by: disk full"));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_the_last_ten_runs() {
    let db = TestDb::new("attempts_cap");
    let q = db.queue(fast_options()).await;
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    q.register(
        "again",
        move |_ctx: JobContext| {
            let run = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                // 13 runs: 12 snoozes, then done.
                if run <= 12 {
                    return Err(HandlerError::snooze(Duration::from_millis(1)));
                }
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    let job = q.now("again", json!({})).await.unwrap();
    eventually(Duration::from_secs(10), "completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    let done = get(&q, job.id).await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 13);
    assert_eq!(done.attempts.len(), monque::MAX_ATTEMPTS_KEPT);
    assert_eq!(done.attempts.last().unwrap().outcome, "completed");
    assert!(done.attempts[..9].iter().all(|a| a.outcome == "snoozed"));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_concern_reaches_the_server_and_majority_is_the_default() {
    let db = TestDb::new("write_concern");
    assert_eq!(
        MonqueOptions::default().write_concern.and_then(|w| w.w),
        Some(monque::Acknowledgment::Majority)
    );
    let q = db.queue(fast_options()).await;
    q.now("durable", json!({}))
        .await
        .expect("majority works on any deployment");
    // Two acknowledging nodes cannot be had from this one server: the server refuses,
    // so the setting is really sent, and nothing is written.
    let two = monque::Monque::connect(
        &uri(),
        MonqueOptions {
            database: Some(db.name.clone()),
            write_concern: Some(
                monque::WriteConcern::builder()
                    .w(monque::Acknowledgment::Nodes(2))
                    .w_timeout(Duration::from_millis(500))
                    .build(),
            ),
            ..fast_options()
        },
    )
    .await
    .unwrap();
    let refused = two.now("durable", json!({ "w": 2 })).await.unwrap_err();
    assert_eq!(refused.code(), "DATABASE_ERROR", "{refused}");
    // As on any MongoDB, a write-concern error does not undo the write on the primary:
    // the caller learns it is not durable as asked, not that it did not happen.
    assert!(refused.to_string().contains("data-bearing"), "{refused}");
    // w: 0 would leave the queue blind to its own writes.
    let blind = monque::Monque::connect(
        &uri(),
        MonqueOptions {
            write_concern: Some(
                monque::WriteConcern::builder()
                    .w(monque::Acknowledgment::Nodes(0))
                    .build(),
            ),
            ..fast_options()
        },
    )
    .await;
    assert_eq!(blind.err().map(|e| e.code()), Some("INVALID_OPTION"));
    db.drop_db(&q).await;
}
