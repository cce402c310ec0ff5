//! Leases, recovery, shutdown and many instances against a real server.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mongodb::bson::{doc, DateTime};
use monque::{
    EnqueueOptions, HandlerError, JobContext, JobStatus, Monque, MonqueOptions, NewJob, NotifyMode,
    WorkerOptions,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_job_leased() {
    let db = TestDb::new("heartbeat");
    let q = db.queue(fast_options()).await; // lease 1.5 s, heartbeat 0.3 s
    let runs = counting_worker(
        &q,
        "long",
        Duration::from_millis(4000),
        WorkerOptions::default(),
    );
    let recovered = count_events(&q, stale_recovered);
    q.start().unwrap();
    let job = q.now("long", json!({})).await.unwrap();
    eventually(Duration::from_secs(10), "completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "ran once although it outlived its lease 2.6 times"
    );
    assert_eq!(recovered.load(Ordering::SeqCst), 0);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_job_is_recovered_after_its_lease_and_runs_again() {
    let db = TestDb::new("crash");
    let q = db.queue(fast_options()).await;
    let job = q.now("orphan", json!({ "n": 1 })).await.unwrap();
    // A worker claimed it and died: processing, lease already expired, nobody heartbeats.
    let expired = DateTime::from_millis(DateTime::now().timestamp_millis() - 1000);
    q.collection()
        .update_one(
            doc! { "_id": job.id },
            doc! { "$set": { "status": "processing", "claimId": mongodb::bson::oid::ObjectId::new(), "claimedBy": "dead:1", "leaseExpiresAt": expired } },
        )
        .await
        .unwrap();
    let recovered = count_events(&q, stale_recovered);
    q.register(
        "orphan",
        |_c: JobContext| async { Ok::<_, HandlerError>(()) },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    eventually(
        Duration::from_secs(5),
        "recovered and completed",
        || async { get(&q, job.id).await.status == JobStatus::Completed },
    )
    .await;
    assert_eq!(recovered.load(Ordering::SeqCst), 1);
    assert_eq!(
        get(&q, job.id).await.claimed_by.as_deref(),
        Some(q.instance_id())
    );
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_running_handlers_that_finish_in_time() {
    let db = TestDb::new("graceful");
    let q = db.queue(fast_options()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    q.register(
        "work",
        move |_c: JobContext| {
            let tx = tx.clone();
            async move {
                tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok::<_, HandlerError>(())
            }
        },
        // One slot: the second job waits in the queue while stop() begins.
        WorkerOptions {
            concurrency: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    q.start().unwrap();
    let job = q.now("work", json!({})).await.unwrap();
    rx.recv().await.unwrap();
    let later = q.now("work", json!({ "after": "stop" })).await;
    let handed_back = q.stop(Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(handed_back, 0);
    assert_eq!(
        get(&q, job.id).await.status,
        JobStatus::Completed,
        "in-flight job finished before stop returned"
    );
    // The freed slot claims nothing once stop() began, and nothing is left locked.
    let later = later.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&q, later.id).await.status, JobStatus::Pending);
    assert_eq!(count(&q, doc! { "status": "processing" }).await, 0);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_run_300_jobs_exactly_once() {
    let db = TestDb::new("three");
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut queues = Vec::new();
    for _ in 0..3 {
        let q = db.queue(fast_options()).await;
        let runs = runs.clone();
        q.register(
            "shared",
            move |ctx: JobContext| {
                let runs = runs.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(rand_ms())).await;
                    *runs.lock().unwrap().entry(ctx.job.id.to_hex()).or_default() += 1;
                    Ok::<_, HandlerError>(())
                }
            },
            WorkerOptions {
                concurrency: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        queues.push(q);
    }
    let jobs = (0..300)
        .map(|i| NewJob {
            name: "shared".into(),
            data: json!(i),
            options: Default::default(),
        })
        .collect();
    assert_eq!(queues[0].enqueue_many(jobs).await.unwrap().inserted, 300);
    for q in &queues {
        q.start().unwrap();
    }
    let q0 = queues[0].clone();
    eventually(Duration::from_secs(60), "all 300 completed", || async {
        count(&q0, doc! { "status": "completed" }).await == 300
    })
    .await;
    for q in &queues {
        q.stop(None).await.unwrap();
    }
    {
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), 300);
        let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    }
    let mut by_instance = HashMap::new();
    let docs: Vec<_> = {
        use futures_util::TryStreamExt;
        q0.collection()
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    for d in docs {
        *by_instance
            .entry(d.get_str("claimedBy").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        by_instance.len(),
        3,
        "every instance took part: {by_instance:?}"
    );
    db.drop_db(&q0).await;
}

fn rand_ms() -> u64 {
    5 + (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stream_wakes_another_instance_long_before_its_poll() {
    let db = TestDb::new("wake");
    let (worker, producer) = slow_poll_worker_and_producer(&db).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    worker
        .register(
            "ping",
            move |_c: JobContext| {
                let tx = tx.clone();
                async move {
                    tx.send(Instant::now()).unwrap();
                    Ok::<_, HandlerError>(())
                }
            },
            WorkerOptions::default(),
        )
        .unwrap();
    start_and_let_it_sleep(&worker).await;
    let sent = Instant::now();
    producer.now("ping", json!({})).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("woken well before the 30 s poll")
        .unwrap();
    assert!(got - sent < Duration::from_secs(5));
    worker.stop(None).await.unwrap();
    db.drop_db(&producer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_during_an_unfinished_stop_is_refused_and_a_second_stop_waits() {
    let db = TestDb::new("stopping");
    let q = db.queue(fast_options()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    q.register(
        "hold",
        move |ctx: JobContext| {
            let tx = tx.clone();
            async move {
                tx.send(()).unwrap();
                ctx.signal.aborted().await;
                // Finish late, so the hand-back is what records the job.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    let job = q.now("hold", json!({})).await.unwrap();
    rx.recv().await.unwrap();
    let first = tokio::spawn({
        let q = q.clone();
        async move { q.stop(Some(Duration::from_millis(600))).await }
    });
    eventually(Duration::from_secs(2), "first stop() began", || async {
        // start() is a no-op while started and refused once stop() is draining.
        q.start().is_err()
    })
    .await;
    assert_eq!(q.start().unwrap_err().code(), "INVALID_STATE");
    let before_second = Instant::now();
    let second = q.stop(None).await.unwrap();
    // The first stop() drains for 600 ms from its start, just before this one.
    assert!(
        before_second.elapsed() >= Duration::from_millis(400),
        "the second stop() waited for the first ({:?})",
        before_second.elapsed()
    );
    assert_eq!((first.await.unwrap().unwrap(), second), (1, 0));
    assert_eq!(get(&q, job.id).await.status, JobStatus::Pending);
    q.start().expect("start works again once stopped");
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failing_because_stop_aborted_it_is_handed_back_not_failed() {
    let db = TestDb::new("abortfail");
    let q = db.queue(fast_options()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    q.register(
        "obedient",
        move |ctx: JobContext| {
            let tx = tx.clone();
            async move {
                tx.send(()).unwrap();
                ctx.signal.aborted().await;
                Err::<(), _>("aborted by shutdown")
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    let job = q.now("obedient", json!({})).await.unwrap();
    rx.recv().await.unwrap();
    q.stop(Some(Duration::from_millis(200))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = get(&q, job.id).await;
    assert_eq!(after.status, JobStatus::Pending);
    assert_eq!(after.fail_count, 0, "shutdown is not the job's failure");
    assert!(after.claim_id.is_none());
    db.drop_db(&q).await;
}

/// A handler whose `call` panics before it returns a future.
struct PanicsEarly;

impl monque::Handler for PanicsEarly {
    fn call(&self, _ctx: JobContext) -> futures_util::future::BoxFuture<'static, monque::Outcome> {
        panic!("panicked before returning a future")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_before_the_handler_future_exists_is_a_failure() {
    let db = TestDb::new("earlypanic");
    let q = db.queue(fast_options()).await;
    let opts = WorkerOptions {
        max_retries: Some(0),
        ..Default::default()
    };
    q.register("early", PanicsEarly, opts).unwrap();
    q.start().unwrap();
    let job = q.now("early", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "failed", || async {
        get(&q, job.id).await.status == JobStatus::Failed
    })
    .await;
    assert!(get(&q, job.id)
        .await
        .fail_reason
        .unwrap()
        .contains("before returning"));
    // Nothing is left running: stop() returns at once with nothing to hand back.
    assert_eq!(q.stop(Some(Duration::from_secs(5))).await.unwrap(), 0);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_rescheduled_and_retried_jobs_from_another_process_run_on_time() {
    let db = TestDb::new("due_remote");
    let (worker, producer) = slow_poll_worker_and_producer(&db).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    worker
        .register(
            "later",
            move |ctx: JobContext| {
                let tx = tx.clone();
                async move {
                    tx.send((ctx.job.id, Instant::now())).unwrap();
                    if ctx.job.data["fail"] == json!(true) && ctx.job.fail_count == 0 {
                        return Err(HandlerError::permanent("first run fails"));
                    }
                    Ok::<_, HandlerError>(())
                }
            },
            WorkerOptions::default(),
        )
        .unwrap();
    start_and_let_it_sleep(&worker).await;
    let in_ms = |ms: i64| DateTime::from_millis(DateTime::now().timestamp_millis() + ms);
    let on_time = |sent: Instant, due: Duration, got: Instant, what: &str| {
        let took = got - sent;
        assert!(
            took >= due,
            "{what}: ran {took:?} after the enqueue, before it was due"
        );
        assert!(
            took < due + Duration::from_secs(3),
            "{what}: ran {took:?} after the enqueue, not at its due time (poll is 30 s)"
        );
    };

    // A delayed enqueue from another process.
    let sent = Instant::now();
    let delayed = producer
        .enqueue(
            "later",
            json!({}),
            EnqueueOptions {
                run_at: Some(in_ms(1500)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (id, got) = rx.recv().await.unwrap();
    assert_eq!(id, delayed.id);
    on_time(sent, Duration::from_millis(1490), got, "delayed enqueue");

    // A job far in the future, rescheduled by another process to a near time.
    let far = producer
        .enqueue(
            "later",
            json!({}),
            EnqueueOptions {
                run_at: Some(in_ms(3_600_000)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let sent = Instant::now();
    producer.reschedule_job(far.id, in_ms(1000)).await.unwrap();
    let (id, got) = rx.recv().await.unwrap();
    assert_eq!(id, far.id);
    on_time(sent, Duration::from_millis(990), got, "reschedule");

    // A failed job retried by another process runs at once.
    let failing = producer
        .enqueue("later", json!({ "fail": true }), EnqueueOptions::default())
        .await;
    let failing = failing.unwrap();
    let (id, _) = rx.recv().await.unwrap();
    assert_eq!(id, failing.id);
    eventually(Duration::from_secs(5), "first run failed", || async {
        get(&producer, failing.id).await.status == JobStatus::Failed
    })
    .await;
    let sent = Instant::now();
    producer.retry_job(failing.id).await.unwrap();
    let (id, got) = rx.recv().await.unwrap();
    assert_eq!(id, failing.id);
    on_time(sent, Duration::ZERO, got, "retry");
    worker.stop(None).await.unwrap();
    db.drop_db(&producer).await;
}

/// A worker that polls only every 30 s (so only wake-ups can make it run a job on
/// time), and a producer in the same database.
async fn slow_poll_worker_and_producer(db: &TestDb) -> (Monque, Monque) {
    let slow_poll = MonqueOptions {
        poll_interval: Duration::from_secs(30),
        ..fast_options()
    };
    (db.queue(slow_poll).await, db.queue(fast_options()).await)
}

/// Starts `worker`, waits for its change stream, and lets its first (empty) claim pass
/// so it sits in its 30 s poll sleep.
async fn start_and_let_it_sleep(worker: &Monque) {
    worker.start().unwrap();
    eventually(Duration::from_secs(5), "change stream open", || async {
        worker.notify_mode() == NotifyMode::ChangeStream
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_was_taken_over_is_aborted_with_lease_lost() {
    let db = TestDb::new("lease_lost");
    let q = db.queue(fast_options()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    {
        let reasons = reasons.clone();
        q.register(
            "slow",
            move |ctx: JobContext| {
                let (tx, reasons) = (tx.clone(), reasons.clone());
                async move {
                    tx.send(()).unwrap();
                    ctx.signal.aborted().await;
                    reasons.lock().unwrap().push(ctx.signal.reason());
                    Ok::<_, HandlerError>(json!("late"))
                }
            },
            WorkerOptions::default(),
        )
        .unwrap();
    }
    q.start().unwrap();
    let job = q.now("slow", json!({})).await.unwrap();
    rx.recv().await.unwrap();
    // Another instance took the job over (as after a lease that ran out during a
    // network partition): a new claim on it.
    let takeover = mongodb::bson::oid::ObjectId::new();
    q.collection()
        .update_one(
            doc! { "_id": job.id },
            doc! { "$set": { "claimId": takeover, "claimedBy": "other-instance" } },
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(3), "the old run aborted", || async {
        !reasons.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        *reasons.lock().unwrap(),
        vec![Some(monque::AbortReason::LeaseLost)]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = get(&q, job.id).await;
    assert_eq!(
        now.claim_id,
        Some(takeover),
        "the new owner's claim is untouched"
    );
    assert_eq!(now.result, None, "the old run's result is not written");
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}
