//! Flows against a real server: jobs enqueued with `depends_on` wait for their
//! dependencies, run once all completed, and fail down the flow when one cannot.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use monque::{
    EnqueueOptions, Event, HandlerError, Job, JobContext, JobStatus, Monque, MonqueOptions, NewJob,
    ObjectId, ScheduleOptions, WorkerOptions,
};
use serde_json::json;

fn after(ids: &[&Job]) -> EnqueueOptions {
    EnqueueOptions {
        depends_on: ids.iter().map(|j| j.id).collect(),
        ..Default::default()
    }
}

/// A worker for "step" that records the order of runs and fails the jobs whose data
/// says `fail`, for good.
fn steps(q: &Monque) -> Arc<Mutex<Vec<String>>> {
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let o = order.clone();
    q.register(
        "step",
        move |ctx: JobContext| {
            let order = o.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                order
                    .lock()
                    .unwrap()
                    .push(ctx.job.data["id"].as_str().unwrap().to_owned());
                if ctx.job.data["fail"] == json!(true) {
                    return Err(HandlerError::permanent("step failed"));
                }
                Ok(())
            }
        },
        WorkerOptions {
            concurrency: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    order
}

async fn wait_status(q: &Monque, id: ObjectId, status: JobStatus) {
    eventually(Duration::from_secs(5), &format!("{status:?}"), || async {
        get(q, id).await.status == status
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_every_dependency_then_runs() {
    let db = TestDb::new("flows_wait");
    let producer = db.queue(fast_options()).await;
    let worker = db.queue(fast_options()).await;
    let order = steps(&worker);
    let extract = producer
        .now("step", json!({ "id": "extract" }))
        .await
        .unwrap();
    let fetch = producer
        .enqueue("step", json!({ "id": "fetch" }), delayed(3_600_000))
        .await
        .unwrap();
    let load = producer
        .enqueue("step", json!({ "id": "load" }), after(&[&extract, &fetch]))
        .await
        .unwrap();
    assert_eq!(load.status, JobStatus::Waiting);
    assert_eq!(load.depends_on, vec![extract.id, fetch.id]);
    let stats = producer.queue_stats(None).await.unwrap();
    assert_eq!((stats.waiting, stats.pending), (1, 2));

    worker.start().unwrap();
    wait_status(&producer, extract.id, JobStatus::Completed).await;
    // One dependency done, one to go (due in an hour): still waiting.
    assert_eq!(get(&producer, load.id).await.status, JobStatus::Waiting);
    producer
        .reschedule_job(fetch.id, mongodb::bson::DateTime::now())
        .await
        .unwrap();
    wait_status(&producer, load.id, JobStatus::Completed).await;
    assert_eq!(*order.lock().unwrap(), ["extract", "fetch", "load"]);
    worker.stop(None).await.unwrap();
    db.drop_db(&producer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_fails_the_rest_of_the_flow() {
    let db = TestDb::new("flows_fail");
    let q = db.queue(fast_options()).await;
    let order = steps(&q);
    let failures: Arc<Mutex<Vec<(ObjectId, String)>>> = Arc::default();
    let f = failures.clone();
    q.on_event(move |e| {
        if let Event::JobFailed {
            job,
            error,
            will_retry: false,
        } = e
        {
            f.lock().unwrap().push((job.id, error.clone()));
        }
    });
    let a = q
        .now("step", json!({ "id": "a", "fail": true }))
        .await
        .unwrap();
    let b = q
        .enqueue("step", json!({ "id": "b" }), after(&[&a]))
        .await
        .unwrap();
    let c = q
        .enqueue("step", json!({ "id": "c" }), after(&[&b]))
        .await
        .unwrap();
    let other = q.now("step", json!({ "id": "other" })).await.unwrap();
    let d = q
        .enqueue("step", json!({ "id": "d" }), after(&[&other, &c]))
        .await
        .unwrap();
    q.start().unwrap();
    wait_status(&q, d.id, JobStatus::Failed).await;
    wait_status(&q, other.id, JobStatus::Completed).await;
    for (job, cause) in [(&b, &a), (&c, &b), (&d, &c)] {
        let failed = get(&q, job.id).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(
            failed.fail_reason,
            Some(format!("dependency {} failed", cause.id))
        );
    }
    let order = order.lock().unwrap().clone();
    assert!(
        !order.iter().any(|s| ["b", "c", "d"].contains(&s.as_str())),
        "{order:?}"
    );
    let failed: Vec<ObjectId> = failures.lock().unwrap().iter().map(|(id, _)| *id).collect();
    for job in [a.id, b.id, c.id, d.id] {
        assert!(failed.contains(&job), "job:fail for {job}");
    }
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_deleting_a_dependency_fails_its_dependents() {
    let db = TestDb::new("flows_cancel");
    let q = db.queue(fast_options()).await; // not started: everything stays put
    let a = q.now("step", json!({ "id": "a" })).await.unwrap();
    let b = q
        .enqueue("step", json!({ "id": "b" }), after(&[&a]))
        .await
        .unwrap();
    q.cancel_job(a.id).await.unwrap();
    let b = get(&q, b.id).await;
    assert_eq!(b.status, JobStatus::Failed);
    assert_eq!(
        b.fail_reason,
        Some(format!("dependency {} was cancelled", a.id))
    );

    let c = q.now("step", json!({ "id": "c" })).await.unwrap();
    let d = q
        .enqueue("step", json!({ "id": "d" }), after(&[&c]))
        .await
        .unwrap();
    assert!(q.delete_job(c.id).await.unwrap());
    let d = get(&q, d.id).await;
    assert_eq!(d.status, JobStatus::Failed);
    assert_eq!(
        d.fail_reason,
        Some(format!("dependency {} was deleted", c.id))
    );

    // A waiting job can be cancelled itself; so can a whole selection, waiting included.
    let e = q.now("step", json!({ "id": "e" })).await.unwrap();
    let f = q
        .enqueue("step", json!({ "id": "f" }), after(&[&e]))
        .await
        .unwrap();
    assert_eq!(
        q.cancel_job(f.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    let g = q
        .enqueue("step", json!({ "id": "g" }), after(&[&e]))
        .await
        .unwrap();
    let h = q
        .enqueue("step", json!({ "id": "h" }), after(&[&g]))
        .await
        .unwrap();
    let selector = monque::JobSelector {
        status: vec![JobStatus::Waiting],
        ..Default::default()
    };
    assert_eq!(q.cancel_jobs(&selector).await.unwrap(), 2);
    assert_eq!(get(&q, g.id).await.status, JobStatus::Cancelled);
    assert_eq!(get(&q, h.id).await.status, JobStatus::Cancelled);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_that_ended_before_the_enqueue_settle_it_at_once() {
    let db = TestDb::new("flows_ended");
    let q = db.queue(fast_options()).await;
    steps(&q);
    q.start().unwrap();
    let done = q.now("step", json!({ "id": "done" })).await.unwrap();
    let broke = q
        .now("step", json!({ "id": "broke", "fail": true }))
        .await
        .unwrap();
    wait_status(&q, done.id, JobStatus::Completed).await;
    wait_status(&q, broke.id, JobStatus::Failed).await;

    let ready = q
        .enqueue("step", json!({ "id": "ready" }), after(&[&done]))
        .await
        .unwrap();
    assert_ne!(
        ready.status,
        JobStatus::Waiting,
        "completed dependencies: runnable at once"
    );
    wait_status(&q, ready.id, JobStatus::Completed).await;
    let doomed = q
        .enqueue("step", json!({ "id": "doomed" }), after(&[&done, &broke]))
        .await
        .unwrap();
    assert_eq!(doomed.status, JobStatus::Failed);
    assert_eq!(
        doomed.fail_reason,
        Some(format!("dependency {} failed", broke.id))
    );
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_failed_flow_waits_for_its_dependencies_again() {
    let db = TestDb::new("flows_retry");
    let q = db
        .queue(MonqueOptions {
            max_retries: 0,
            ..fast_options()
        })
        .await;
    let attempts = Arc::new(Mutex::new(0));
    let a_attempts = attempts.clone();
    q.register(
        "flaky",
        move |_ctx: JobContext| {
            let attempts = a_attempts.clone();
            async move {
                let mut n = attempts.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    return Err(HandlerError::new("first attempt fails"));
                }
                Ok(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    steps(&q);
    q.start().unwrap();
    let a = q.now("flaky", json!({})).await.unwrap();
    let b = q
        .enqueue("step", json!({ "id": "b" }), after(&[&a]))
        .await
        .unwrap();
    wait_status(&q, b.id, JobStatus::Failed).await;

    // Retrying the dependent first: it waits again, since its dependency is failed...
    assert_eq!(q.retry_job(b.id).await.unwrap().status, JobStatus::Failed);
    // ...so retry the dependency, then the dependent, which waits for it.
    q.retry_job(a.id).await.unwrap();
    let retried = q.retry_job(b.id).await.unwrap();
    assert!(matches!(
        retried.status,
        JobStatus::Waiting | JobStatus::Pending | JobStatus::Processing | JobStatus::Completed
    ));
    wait_status(&q, b.id, JobStatus::Completed).await;
    assert_eq!(get(&q, a.id).await.status, JobStatus::Completed);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_dependencies_are_refused_and_write_nothing() {
    let db = TestDb::new("flows_bad");
    let q = db.queue(fast_options()).await;
    let a = q.now("step", json!({})).await.unwrap();
    let daily = q
        .schedule("0 6 * * *", "report", json!({}), ScheduleOptions::default())
        .await
        .unwrap();
    let before = count(&q, mongodb::bson::doc! {}).await;
    let cases: Vec<(EnqueueOptions, &str)> = vec![
        (
            EnqueueOptions {
                depends_on: vec![ObjectId::new()],
                ..Default::default()
            },
            "INVALID_DEPENDENCY",
        ),
        (after(&[&a, &daily]), "INVALID_DEPENDENCY"),
        (
            EnqueueOptions {
                unique_key: Some("k".into()),
                ..after(&[&a])
            },
            "INVALID_OPTION",
        ),
        (
            EnqueueOptions {
                depends_on: vec![a.id; 101],
                ..Default::default()
            },
            "INVALID_OPTION",
        ),
    ];
    for (options, code) in cases {
        let err = q.enqueue("step", json!({}), options).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let batch = vec![NewJob {
        name: "step".into(),
        data: json!({}),
        options: after(&[&a]),
    }];
    assert_eq!(
        q.enqueue_many(batch).await.unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(
        count(&q, mongodb::bson::doc! {}).await,
        before,
        "nothing written"
    );
    db.drop_db(&q).await;
}

fn delayed(ms: i64) -> EnqueueOptions {
    EnqueueOptions {
        run_at: Some(in_ms(ms)),
        ..Default::default()
    }
}

fn in_ms(ms: i64) -> monque::DateTime {
    monque::DateTime::from_millis(monque::DateTime::now().timestamp_millis() + ms)
}

/// The dependency was claimed before anything depended on it: its completion still
/// releases the job enqueued while it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_depending_on_a_running_job_runs_when_it_completes() {
    let db = TestDb::new("flows_running");
    let q = db.queue(fast_options()).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    q.register(
        "long",
        move |_ctx: JobContext| {
            let gate = g.clone();
            async move {
                gate.notified().await;
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    steps(&q);
    q.start().unwrap();
    let long = q.now("long", json!({})).await.unwrap();
    wait_status(&q, long.id, JobStatus::Processing).await;
    let next = q
        .enqueue("step", json!({ "id": "next" }), after(&[&long]))
        .await
        .unwrap();
    assert_eq!(next.status, JobStatus::Waiting);
    gate.notify_one();
    wait_status(&q, next.id, JobStatus::Completed).await;
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

/// The process that completed a dependency died before settling the jobs waiting on
/// it (simulated with a raw write): the heartbeat's sweep settles them after a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_jobs_left_behind_by_a_crash_are_settled_by_the_heartbeat() {
    let db = TestDb::new("flows_sweep");
    let q = db.queue(fast_options()).await;
    let order = steps(&q);
    let a = q.now("step", json!({ "id": "a" })).await.unwrap();
    let b = q.now("step", json!({ "id": "b" })).await.unwrap();
    let after_a = q
        .enqueue("step", json!({ "id": "after-a" }), after(&[&a]))
        .await
        .unwrap();
    let after_b = q
        .enqueue("step", json!({ "id": "after-b" }), after(&[&b]))
        .await
        .unwrap();
    let set = |status: &str| mongodb::bson::doc! { "$set": { "status": status } };
    q.collection()
        .update_one(mongodb::bson::doc! { "_id": a.id }, set("completed"))
        .await
        .unwrap();
    q.collection()
        .delete_one(mongodb::bson::doc! { "_id": b.id })
        .await
        .unwrap();
    q.start().unwrap();
    wait_status(&q, after_a.id, JobStatus::Completed).await;
    let orphan = get(&q, after_b.id).await;
    assert_eq!(orphan.status, JobStatus::Failed);
    assert_eq!(
        orphan.fail_reason,
        Some(format!("dependency {} was deleted", b.id))
    );
    assert_eq!(*order.lock().unwrap(), ["after-a"]);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

/// Retention keeps a completed job that a waiting job still lists; `schedule()` will
/// not make a job others depend on recurring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_schedules_leave_dependencies_alone() {
    let db = TestDb::new("flows_retention");
    let q = db
        .queue(MonqueOptions {
            job_retention: monque::JobRetention {
                completed: Some(Duration::from_millis(1)),
                ..Default::default()
            },
            ..fast_options()
        })
        .await;
    steps(&q);
    let done = q.now("step", json!({ "id": "done" })).await.unwrap();
    let later = q
        .enqueue("step", json!({ "id": "later" }), delayed(60_000))
        .await
        .unwrap();
    let both = q
        .enqueue("step", json!({ "id": "both" }), after(&[&done, &later]))
        .await
        .unwrap();
    let unrelated = q.now("step", json!({ "id": "unrelated" })).await.unwrap();
    q.start().unwrap();
    wait_status(&q, done.id, JobStatus::Completed).await;
    wait_status(&q, unrelated.id, JobStatus::Completed).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(q.purge_expired().await.unwrap() >= 1);
    assert!(
        q.get_job(unrelated.id).await.unwrap().is_none(),
        "expired and deleted"
    );
    assert_eq!(
        get(&q, done.id).await.status,
        JobStatus::Completed,
        "kept: still needed"
    );
    q.reschedule_job(later.id, monque::DateTime::now())
        .await
        .unwrap();
    wait_status(&q, both.id, JobStatus::Completed).await;

    let keyed = EnqueueOptions {
        unique_key: Some("nightly".into()),
        run_at: Some(in_ms(60_000)),
        ..Default::default()
    };
    let holder = q.enqueue("report", json!({}), keyed).await.unwrap();
    q.enqueue("step", json!({ "id": "after-report" }), after(&[&holder]))
        .await
        .unwrap();
    let options = ScheduleOptions {
        unique_key: Some("nightly".into()),
        ..Default::default()
    };
    let err = q
        .schedule("0 3 * * *", "report", json!({}), options)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_DEPENDENCY");
    assert!(get(&q, holder.id).await.repeat.is_none());
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}
