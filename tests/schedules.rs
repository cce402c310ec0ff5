//! Recurring jobs against a real server: idempotent scheduling (restarts, racing
//! processes), runs that repeat, failures, missed runs, changes and removal.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mongodb::bson::{doc, DateTime};
use monque::{
    Backoff, CronSchedule, Event, HandlerError, JobContext, JobStatus, MonqueOptions, Repeat,
    ScheduleOptions, WorkerOptions,
};
use serde_json::json;
use tokio::sync::Notify;

fn tz(zone: &str) -> ScheduleOptions {
    ScheduleOptions {
        timezone: Some(zone.into()),
        ..Default::default()
    }
}

async fn lock_count(q: &monque::Monque) -> u64 {
    locks(q).count_documents(doc! {}).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_again_on_every_start_leaves_one_schedule() {
    let db = TestDb::new("sched_idem");
    let mut ids = Vec::new();
    let mut next_runs = Vec::new();
    // Three "app starts", each with its own connection.
    for _ in 0..3 {
        let q = db.queue(fast_options()).await;
        let job = q
            .schedule(
                "0 3 * * *",
                "nightly",
                json!({ "full": true }),
                tz("Europe/Berlin"),
            )
            .await
            .unwrap();
        ids.push(job.id);
        next_runs.push(job.next_run_at);
    }
    let q = db.queue(fast_options()).await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(next_runs.iter().all(|t| *t == next_runs[0]));
    assert_eq!(count(&q, doc! {}).await, 1);
    assert_eq!(lock_count(&q).await, 1);
    let job = get(&q, ids[0]).await;
    assert_eq!(job.unique_key.as_deref(), Some("schedule:nightly"));
    assert_eq!(
        job.repeat,
        Some(Repeat::Cron {
            cron: "0 3 * * *".into(),
            timezone: "Europe/Berlin".into()
        })
    );
    let expected = CronSchedule::parse("0 3 * * *", "Europe/Berlin")
        .unwrap()
        .next_after(chrono::Utc::now())
        .unwrap();
    assert_eq!(
        job.next_run_at.timestamp_millis(),
        expected.timestamp_millis()
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_schedulers_leave_one_schedule() {
    let db = TestDb::new("sched_race");
    let mut queues = Vec::new();
    for _ in 0..4 {
        queues.push(db.queue(fast_options()).await);
    }
    for round in 0..3 {
        let name = format!("report-{round}");
        let calls = queues.iter().map(|q| {
            let name = name.clone();
            async move {
                q.schedule("*/5 * * * *", &name, json!({}), ScheduleOptions::default())
                    .await
                    .unwrap()
            }
        });
        let jobs = futures_util::future::join_all(calls).await;
        assert!(
            jobs.iter().all(|j| j.id == jobs[0].id),
            "round {round}: every caller sees the same schedule"
        );
        assert_eq!(count(&queues[0], doc! { "name": &name }).await, 1);
    }
    assert_eq!(lock_count(&queues[0]).await, 3);
    db.drop_db(&queues[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_expression_timezone_or_data_updates_the_schedule() {
    let db = TestDb::new("sched_update");
    let q = db.queue(fast_options()).await;
    let first = q
        .schedule(
            "0 9 * * *",
            "digest",
            json!({ "v": 1 }),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    let moved = q
        .schedule(
            "0 9 * * *",
            "digest",
            json!({ "v": 1 }),
            tz("America/New_York"),
        )
        .await
        .unwrap();
    assert_eq!(moved.id, first.id);
    let want = CronSchedule::parse("0 9 * * *", "America/New_York")
        .unwrap()
        .next_after(chrono::Utc::now())
        .unwrap();
    assert_eq!(
        moved.next_run_at.timestamp_millis(),
        want.timestamp_millis()
    );
    assert_ne!(moved.next_run_at, first.next_run_at);

    // New data only: the run time stays (a missed run is not pushed away).
    let data_only = q
        .schedule(
            "0 9 * * *",
            "digest",
            json!({ "v": 2 }),
            tz("America/New_York"),
        )
        .await
        .unwrap();
    assert_eq!(data_only.next_run_at, moved.next_run_at);
    let stored = get(&q, first.id).await;
    assert_eq!(stored.data, json!({ "v": 2 }));
    assert_eq!(
        stored.repeat,
        Some(Repeat::Cron {
            cron: "0 9 * * *".into(),
            timezone: "America/New_York".into()
        })
    );
    assert_eq!(count(&q, doc! {}).await, 1);

    // A second key is a second schedule of the same name.
    let eu = q
        .schedule(
            "0 9 * * *",
            "digest",
            json!({ "region": "eu" }),
            ScheduleOptions {
                unique_key: Some("eu".into()),
                timezone: Some("Europe/Paris".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(eu.id, first.id);
    let listed = q.schedules(Some("digest")).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed[0].next_run_at <= listed[1].next_run_at,
        "soonest first"
    );
    assert_eq!(q.schedules(Some("other")).await.unwrap().len(), 0);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_second_schedule_runs_repeatedly_on_its_slots() {
    let db = TestDb::new("sched_runs");
    let q = db.queue(fast_options()).await;
    let slots = Arc::new(Mutex::new(Vec::<(DateTime, DateTime)>::new()));
    let s = slots.clone();
    q.register(
        "tick",
        move |ctx: JobContext| {
            let slots = s.clone();
            async move {
                slots
                    .lock()
                    .unwrap()
                    .push((ctx.job.next_run_at, DateTime::now()));
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    let job = q
        .schedule("* * * * * *", "tick", json!({}), ScheduleOptions::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "three runs", || async {
        slots.lock().unwrap().len() >= 3
    })
    .await;
    q.stop(None).await.unwrap();
    let runs = slots.lock().unwrap().clone();
    for (i, (due, started)) in runs.iter().enumerate() {
        assert_eq!(
            due.timestamp_millis() % 1000,
            0,
            "run {i} is on a whole second"
        );
        assert!(started >= due, "run {i} did not start early");
        if i > 0 {
            assert!(due > &runs[i - 1].0, "each run has its own slot");
        }
    }
    let after = get(&q, job.id).await;
    assert_eq!(
        after.status,
        JobStatus::Pending,
        "rescheduled, not completed"
    );
    assert_eq!(after.fail_count, 0);
    assert!(
        after.completed_at.is_some(),
        "completedAt tells the last success"
    );
    assert!(after.claim_id.is_none() && after.lease_expires_at.is_none());
    assert_eq!(count(&q, doc! {}).await, 1);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_schedule_retries_then_waits_for_its_next_occurrence() {
    let db = TestDb::new("sched_fail");
    let q = db
        .queue(MonqueOptions {
            backoff: Backoff {
                base: Duration::from_millis(20),
                max: Duration::from_millis(100),
                jitter: 0.0,
            },
            ..fast_options()
        })
        .await;
    q.register(
        "flaky",
        |_ctx: JobContext| async { Err::<(), _>(HandlerError::new("upstream down")) },
        WorkerOptions {
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    q.on_event(move |e| {
        if let Event::JobFailed {
            job, will_retry, ..
        } = e
        {
            f.lock()
                .unwrap()
                .push((*will_retry, job.status, job.fail_count, job.next_run_at));
        }
    });
    let job = q
        .schedule(
            "*/2 * * * * *",
            "flaky",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    q.start().unwrap();
    eventually(
        Duration::from_secs(10),
        "two occurrences failed",
        || async { failures.lock().unwrap().len() >= 4 },
    )
    .await;
    q.stop(None).await.unwrap();
    let seen = failures.lock().unwrap().clone();
    // Occurrence 1: a retry, then out of retries -> next occurrence with a clean slate.
    assert_eq!(
        (seen[0].0, seen[0].1, seen[0].2),
        (true, JobStatus::Pending, 1)
    );
    assert_eq!(
        (seen[1].0, seen[1].1, seen[1].2),
        (false, JobStatus::Pending, 0)
    );
    assert_eq!(
        seen[1].3.timestamp_millis() % 2000,
        0,
        "back on the schedule"
    );
    // Occurrence 2 follows the same rules.
    assert_eq!((seen[2].0, seen[2].2), (true, 1));
    assert_eq!((seen[3].0, seen[3].2), (false, 0));
    assert!(seen[3].3 > seen[1].3);
    let stored = get(&q, job.id).await;
    assert_eq!(stored.fail_reason.as_deref(), Some("upstream down"));
    assert!(stored.status.is_active());
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_missed_while_down_run_once() {
    let db = TestDb::new("sched_missed");
    let q = db.queue(fast_options()).await;
    let job = q
        .every(
            Duration::from_secs(3600),
            "hourly",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    // Everything was down for five and a half hours.
    let due = DateTime::from_millis(DateTime::now().timestamp_millis() - 5 * 3_600_000 - 1_800_000);
    q.collection()
        .update_one(
            doc! { "_id": job.id },
            doc! { "$set": { "nextRunAt": due, "occurrenceAt": due } },
        )
        .await
        .unwrap();
    let runs = counting_worker(&q, "hourly", Duration::ZERO, WorkerOptions::default());
    q.start().unwrap();
    eventually(Duration::from_secs(5), "the missed run ran", || async {
        runs.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    // Give a pile-up time to show itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    q.stop(None).await.unwrap();
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let after = get(&q, job.id).await;
    assert_eq!(
        after.next_run_at.timestamp_millis(),
        due.timestamp_millis() + 6 * 3_600_000,
        "the next slot after now, in the schedule's phase"
    );
    db.drop_db(&q).await;
}

/// Registers a handler that signals when it starts and waits for `release`.
fn blocking_worker(q: &monque::Monque, name: &str) -> (Arc<Notify>, Arc<Notify>) {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (started.clone(), release.clone());
    q.register(
        name,
        move |_ctx: JobContext| {
            let (started, release) = (s.clone(), r.clone());
            async move {
                started.notify_one();
                release.notified().await;
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    (started, release)
}

fn errors(q: &monque::Monque) -> Arc<Mutex<Vec<String>>> {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    q.on_event(move |ev| {
        if let Event::JobError { error, .. } = ev {
            e.lock().unwrap().push(error.clone());
        }
    });
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_changed_during_a_run_takes_effect_for_the_next_one() {
    let db = TestDb::new("sched_change_running");
    let q = db.queue(fast_options()).await;
    let (started, release) = blocking_worker(&q, "sync");
    let errors = errors(&q);
    let job = q
        .schedule("* * * * * *", "sync", json!({}), ScheduleOptions::default())
        .await
        .unwrap();
    q.start().unwrap();
    started.notified().await;
    let changed = q
        .schedule("0 0 * * *", "sync", json!({}), tz("Asia/Tokyo"))
        .await
        .unwrap();
    assert_eq!(changed.status, JobStatus::Processing);
    release.notify_one();
    eventually(Duration::from_secs(5), "run finished", || async {
        get(&q, job.id).await.status == JobStatus::Pending
    })
    .await;
    q.stop(None).await.unwrap();
    let after = get(&q, job.id).await;
    let want = CronSchedule::parse("0 0 * * *", "Asia/Tokyo")
        .unwrap()
        .next_after(chrono::Utc::now())
        .unwrap();
    assert_eq!(
        after.next_run_at.timestamp_millis(),
        want.timestamp_millis()
    );
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedule_cancels_a_pending_schedule_and_frees_its_key() {
    let db = TestDb::new("sched_remove");
    let q = db.queue(fast_options()).await;
    let job = q
        .every(
            Duration::from_secs(60),
            "cleanup",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    assert!(q.unschedule("cleanup", None).await.unwrap());
    assert_eq!(get(&q, job.id).await.status, JobStatus::Cancelled);
    assert!(q.schedules(None).await.unwrap().is_empty());
    assert_eq!(lock_count(&q).await, 0);
    assert!(
        !q.unschedule("cleanup", None).await.unwrap(),
        "nothing left"
    );
    let again = q
        .every(
            Duration::from_secs(60),
            "cleanup",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    assert_ne!(again.id, job.id);
    assert_eq!(q.schedules(None).await.unwrap().len(), 1);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedule_during_a_run_lets_it_finish_as_the_last_one() {
    let db = TestDb::new("sched_remove_running");
    let q = db.queue(fast_options()).await;
    let (started, release) = blocking_worker(&q, "export");
    let errors = errors(&q);
    let job = q
        .schedule(
            "* * * * * *",
            "export",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    q.start().unwrap();
    started.notified().await;
    assert!(q.unschedule("export", None).await.unwrap());
    release.notify_one();
    eventually(Duration::from_secs(5), "last run completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    q.stop(None).await.unwrap();
    let after = get(&q, job.id).await;
    assert!(after.repeat.is_none());
    assert_eq!(lock_count(&q).await, 0);
    assert!(q.schedules(None).await.unwrap().is_empty());
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_and_write_nothing() {
    let db = TestDb::new("sched_bad");
    let q = db.queue(fast_options()).await;
    let none = ScheduleOptions::default;
    let cases = [
        (
            q.schedule("61 * * * *", "x", json!({}), none()).await,
            "INVALID_CRON",
        ),
        (
            q.schedule("* * *", "x", json!({}), none()).await,
            "INVALID_CRON",
        ),
        (
            q.schedule("@sometimes", "x", json!({}), none()).await,
            "INVALID_CRON",
        ),
        (
            q.schedule("* * * * *", "x", json!({}), tz("Europe/Atlantis"))
                .await,
            "INVALID_TIMEZONE",
        ),
        (
            q.schedule("* * * * *", "", json!({}), none()).await,
            "INVALID_JOB_NAME",
        ),
        (
            q.schedule("* * * * *", "x", json!({ "$where": 1 }), none())
                .await,
            "INVALID_DATA",
        ),
        (
            q.every(Duration::from_millis(10), "x", json!({}), none())
                .await,
            "INVALID_INTERVAL",
        ),
        (
            q.every(Duration::from_secs(5), "x", json!({}), tz("UTC"))
                .await,
            "INVALID_OPTION",
        ),
    ];
    for (i, (result, code)) in cases.into_iter().enumerate() {
        assert_eq!(result.unwrap_err().code(), code, "case {i}");
    }
    assert_eq!(count(&q, doc! {}).await, 0);
    assert_eq!(lock_count(&q).await, 0);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_wake_on_known_due_times_not_at_polls() {
    let db = TestDb::new("sched_due_wake");
    // Polls so rare that any run within the deadlines below came from a due-time wake.
    let q = db
        .queue(MonqueOptions {
            poll_interval: Duration::from_secs(30),
            ..fast_options()
        })
        .await;
    let ticks = counting_worker(&q, "tick", Duration::ZERO, WorkerOptions::default());
    let later = counting_worker(&q, "later", Duration::ZERO, WorkerOptions::default());
    q.start().unwrap();
    q.schedule("* * * * * *", "tick", json!({}), ScheduleOptions::default())
        .await
        .unwrap();
    q.enqueue(
        "later",
        json!({}),
        monque::EnqueueOptions {
            run_at: Some(DateTime::from_millis(
                DateTime::now().timestamp_millis() + 300,
            )),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(8),
        "four ticks and the delayed job",
        || async {
            ticks.load(std::sync::atomic::Ordering::SeqCst) >= 4
                && later.load(std::sync::atomic::Ordering::SeqCst) == 1
        },
    )
    .await;
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keeps_its_phase_through_a_retry() {
    let db = TestDb::new("sched_phase");
    let q = db
        .queue(MonqueOptions {
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_millis(400),
                jitter: 0.0,
            },
            ..fast_options()
        })
        .await;
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = attempts.clone();
    q.register(
        "sync",
        move |_ctx: JobContext| {
            let n = a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(HandlerError::new("first attempt fails"))
                } else {
                    Ok(())
                }
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    let job = q
        .every(
            Duration::from_secs(60),
            "sync",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(job.occurrence_at, Some(job.next_run_at));
    // Make the first occurrence due now.
    let slot = DateTime::now();
    q.collection()
        .update_one(
            doc! { "_id": job.id },
            doc! { "$set": { "nextRunAt": slot, "occurrenceAt": slot } },
        )
        .await
        .unwrap();
    q.start().unwrap();
    eventually(
        Duration::from_secs(5),
        "failed once, then succeeded",
        || async { get(&q, job.id).await.completed_at.is_some() },
    )
    .await;
    q.stop(None).await.unwrap();
    let after = get(&q, job.id).await;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        after.next_run_at.timestamp_millis(),
        slot.timestamp_millis() + 60_000,
        "one interval after the slot, not after the retry"
    );
    assert_eq!(after.occurrence_at, Some(after.next_run_at));
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_this_build_cannot_use_ends_failed_instead_of_looping() {
    let db = TestDb::new("sched_broken");
    let q = db.queue(fast_options()).await;
    let runs = counting_worker(&q, "report", Duration::ZERO, WorkerOptions::default());
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    q.on_event(move |e| {
        if let Event::JobFailed {
            error, will_retry, ..
        } = e
        {
            f.lock().unwrap().push((error.clone(), *will_retry));
        }
    });
    let job = q
        .schedule(
            "* * * * * *",
            "report",
            json!({}),
            ScheduleOptions::default(),
        )
        .await
        .unwrap();
    // As if written by a newer build whose tz database knows this zone.
    q.collection()
        .update_one(
            doc! { "_id": job.id },
            doc! { "$set": { "repeat.timezone": "Mars/Olympus_Mons" } },
        )
        .await
        .unwrap();
    q.start().unwrap();
    eventually(Duration::from_secs(5), "the schedule ended", || async {
        get(&q, job.id).await.status == JobStatus::Failed
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.stop(None).await.unwrap();
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let after = get(&q, job.id).await;
    assert!(after.fail_reason.unwrap().contains("Mars/Olympus_Mons"));
    assert_eq!(
        lock_count(&q).await,
        0,
        "the key is free for a new schedule"
    );
    let seen = failures.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].1);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_job_document_is_failed_not_claimed_forever() {
    let db = TestDb::new("sched_unreadable");
    let q = db.queue(fast_options()).await;
    let runs = counting_worker(&q, "odd", Duration::ZERO, WorkerOptions::default());
    let errors = errors(&q);
    let id = mongodb::bson::oid::ObjectId::new();
    let now = DateTime::now();
    q.collection()
        .insert_one(doc! {
            "_id": id, "name": "odd", "data": {}, "status": "pending", "priority": 0,
            "nextRunAt": now, "failCount": 0, "createdAt": now, "updatedAt": now,
            "repeat": { "rrule": "FREQ=DAILY" },
        })
        .await
        .unwrap();
    q.start().unwrap();
    eventually(
        Duration::from_secs(5),
        "the document was failed",
        || async {
            q.collection()
                .find_one(doc! { "_id": id, "status": "failed" })
                .await
                .unwrap()
                .is_some()
        },
    )
    .await;
    q.stop(None).await.unwrap();
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
    let doc = q
        .collection()
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .unwrap();
    assert!(doc.get_str("failReason").unwrap().contains("unreadable"));
    assert!(doc.get("claimId").is_none());
    assert_eq!(
        errors.lock().unwrap().len(),
        1,
        "{:?}",
        errors.lock().unwrap()
    );
    db.drop_db(&q).await;
}
