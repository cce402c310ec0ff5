//! Operators' API against a real server: reading, paging, stats, state changes single
//! and bulk, pause across instances, retention and metrics.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mongodb::bson::{doc, oid::ObjectId, DateTime};
use monque::{
    CursorQuery, Direction, EnqueueOptions, Event, HandlerError, JobContext, JobQuery,
    JobRetention, JobSelector, JobStatus, Monque, MonqueOptions, NewJob, SortField, SortOrder,
    WorkerOptions,
};
use serde_json::json;

fn kinds(q: &Monque) -> Arc<Mutex<Vec<&'static str>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    q.on_event(move |e| s.lock().unwrap().push(e.kind()));
    seen
}

fn later() -> EnqueueOptions {
    EnqueueOptions {
        run_at: Some(DateTime::from_millis(
            DateTime::now().timestamp_millis() + 3_600_000,
        )),
        ..Default::default()
    }
}

async fn enqueue_n(q: &Monque, name: &str, n: usize) -> Vec<ObjectId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            q.enqueue(name, json!({ "i": i }), later())
                .await
                .unwrap()
                .id,
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_job_and_filtered_listings() {
    let db = TestDb::new("mgmt_get");
    let q = db.queue(fast_options()).await;
    let a = enqueue_n(&q, "a", 3).await;
    enqueue_n(&q, "b", 2).await;
    let job = q.get_job(a[1]).await.unwrap().unwrap();
    assert_eq!(job.data, json!({ "i": 1 }));
    assert!(q.get_job(ObjectId::new()).await.unwrap().is_none());

    let only_a = q
        .get_jobs(JobQuery {
            selector: JobSelector {
                name: Some("a".into()),
                status: vec![JobStatus::Pending],
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_a.iter().map(|j| j.id).collect::<Vec<_>>(), a);
    let paged = q
        .get_jobs(JobQuery {
            limit: 2,
            skip: 1,
            without_data: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(paged.len(), 2);
    assert_eq!(paged[0].id, a[1]);
    assert!(paged.iter().all(|j| j.data.is_null()), "payloads left out");
    let err = q
        .get_jobs(JobQuery {
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_OPTION");
    db.drop_db(&q).await;
}

/// Walks every page in `direction` and returns the ids in the order shown.
async fn walk(q: &Monque, sort: SortOrder, direction: Direction, limit: u32) -> Vec<ObjectId> {
    walk_by(q, SortField::CreatedAt, sort, direction, limit).await
}

async fn walk_by(
    q: &Monque,
    sort_by: SortField,
    sort: SortOrder,
    direction: Direction,
    limit: u32,
) -> Vec<ObjectId> {
    let mut cursor = None;
    let mut pages: Vec<Vec<ObjectId>> = Vec::new();
    loop {
        let page = q
            .get_jobs_with_cursor(CursorQuery {
                cursor: cursor.clone(),
                limit,
                direction,
                sort_by,
                sort,
                without_data: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.jobs.len() <= limit as usize);
        pages.push(page.jobs.iter().map(|j| j.id).collect());
        let (more, next) = match direction {
            Direction::Forward => (page.has_next, page.next_cursor),
            Direction::Backward => (page.has_prev, page.prev_cursor),
        };
        if !more {
            break;
        }
        cursor = next;
        assert!(cursor.is_some());
    }
    if direction == Direction::Backward {
        pages.reverse();
    }
    pages.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pages_cover_250_jobs_in_both_directions_without_repeats_or_gaps() {
    let db = TestDb::new("mgmt_cursor");
    let q = db.queue(fast_options()).await;
    let jobs: Vec<NewJob> = (0..250)
        .map(|i| NewJob {
            name: "page".into(),
            data: json!({ "i": i }),
            options: later(),
        })
        .collect();
    q.enqueue_many(jobs).await.unwrap();
    let mut all: Vec<ObjectId> = q
        .get_jobs(JobQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    all.sort();
    assert_eq!(all.len(), 250);
    let mut newest_first = all.clone();
    newest_first.reverse();

    for limit in [40, 250, 7] {
        assert_eq!(
            walk(&q, SortOrder::Ascending, Direction::Forward, limit).await,
            all
        );
        assert_eq!(
            walk(&q, SortOrder::Ascending, Direction::Backward, limit).await,
            all
        );
        assert_eq!(
            walk(&q, SortOrder::Descending, Direction::Forward, limit).await,
            newest_first
        );
        assert_eq!(
            walk(&q, SortOrder::Descending, Direction::Backward, limit).await,
            newest_first
        );
    }

    // Back and forth from the middle gives the neighbouring pages.
    let first = q
        .get_jobs_with_cursor(CursorQuery {
            limit: 40,
            ..Default::default()
        })
        .await
        .unwrap();
    let second = q
        .get_jobs_with_cursor(CursorQuery {
            cursor: first.next_cursor.clone(),
            limit: 40,
            ..Default::default()
        })
        .await
        .unwrap();
    let back = q
        .get_jobs_with_cursor(CursorQuery {
            cursor: second.prev_cursor.clone(),
            limit: 40,
            direction: Direction::Backward,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids = |p: &monque::JobPage| p.jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids(&back), ids(&first));
    assert!(!back.has_prev && back.has_next);
    assert_eq!(ids(&second), all[40..80].to_vec());

    let bad = q
        .get_jobs_with_cursor(CursorQuery {
            cursor: Some("not-a-cursor".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "INVALID_CURSOR");
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_statuses_and_time_processing_from_start_to_finish() {
    let db = TestDb::new("mgmt_stats");
    let q = db.queue(fast_options()).await;
    counting_worker(
        &q,
        "work",
        Duration::from_millis(60),
        WorkerOptions::default(),
    );
    q.register(
        "doomed",
        |_ctx: JobContext| async { Err::<(), _>(HandlerError::permanent("no")) },
        WorkerOptions::default(),
    )
    .unwrap();
    for _ in 0..3 {
        q.now("work", json!({})).await.unwrap();
    }
    q.now("doomed", json!({})).await.unwrap();
    let waiting = q.enqueue("work", json!({}), later()).await.unwrap();
    let cancelled = q.enqueue("work", json!({}), later()).await.unwrap();
    q.cancel_job(cancelled.id).await.unwrap();
    // Created long before it runs: processing time must not count the wait.
    q.start().unwrap();
    eventually(Duration::from_secs(5), "all ran", || async {
        count(&q, doc! { "status": { "$in": ["completed", "failed"] } }).await == 4
    })
    .await;
    q.stop(None).await.unwrap();
    let all = q.queue_stats(None).await.unwrap();
    assert_eq!(
        (
            all.pending,
            all.processing,
            all.completed,
            all.failed,
            all.cancelled,
            all.total
        ),
        (1, 0, 3, 1, 1, 6)
    );
    let avg = all.avg_processing_ms.unwrap();
    assert!((55.0..1000.0).contains(&avg), "{avg}");
    let work = q.queue_stats(Some("work")).await.unwrap();
    assert_eq!((work.failed, work.total), (0, 5));
    assert_eq!(get(&q, waiting.id).await.status, JobStatus::Pending);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_job_transitions_and_their_errors() {
    let db = TestDb::new("mgmt_single");
    let q = db.queue(fast_options()).await;
    let events = kinds(&q);
    let keyed = EnqueueOptions {
        unique_key: Some("k".into()),
        ..later()
    };
    let job = q.enqueue("mail", json!({}), keyed.clone()).await.unwrap();

    let moved = DateTime::from_millis(DateTime::now().timestamp_millis() + 7_200_000);
    assert_eq!(
        q.reschedule_job(job.id, moved).await.unwrap().next_run_at,
        moved
    );
    assert_eq!(q.set_job_priority(job.id, 9).await.unwrap().priority, 9);

    let cancelled = q.cancel_job(job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    // Its key is free: a new job with it is created, not deduplicated.
    let other = q.enqueue("mail", json!({}), keyed.clone()).await.unwrap();
    assert_ne!(other.id, job.id);

    // Cancelling again, rescheduling or re-prioritising a cancelled job: refused,
    // naming the status.
    for err in [
        q.cancel_job(job.id).await.unwrap_err(),
        q.reschedule_job(job.id, moved).await.unwrap_err(),
        q.set_job_priority(job.id, 1).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "INVALID_TRANSITION");
        assert!(err.to_string().contains("cancelled"), "{err}");
    }
    // Retrying it while another active job holds its key is refused too.
    let held = q.retry_job(job.id).await.unwrap_err();
    assert_eq!(held.code(), "INVALID_TRANSITION");
    assert_eq!(get(&q, job.id).await.status, JobStatus::Cancelled);

    // Once the key is free again, retry takes it back.
    assert!(q.delete_job(other.id).await.unwrap());
    let retried = q.retry_job(job.id).await.unwrap();
    assert_eq!(
        (retried.status, retried.fail_count),
        (JobStatus::Pending, 0)
    );
    let dup = q.enqueue("mail", json!({}), keyed).await.unwrap();
    assert_eq!(dup.id, job.id, "the retried job holds its key");
    let pending_retry = q.retry_job(job.id).await.unwrap_err();
    assert!(pending_retry.to_string().contains("pending"));

    assert_eq!(
        q.cancel_job(ObjectId::new()).await.unwrap_err().code(),
        "JOB_NOT_FOUND"
    );
    assert!(!q.delete_job(ObjectId::new()).await.unwrap());
    let seen = events.lock().unwrap().clone();
    for kind in [
        "job:rescheduled",
        "job:priority",
        "job:cancelled",
        "job:deleted",
        "job:retried",
    ] {
        assert!(seen.contains(&kind), "{kind} in {seen:?}");
    }
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_cannot_be_deleted() {
    let db = TestDb::new("mgmt_running");
    let q = db.queue(fast_options()).await;
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    q.register(
        "slow",
        move |_ctx: JobContext| {
            let r = r.clone();
            async move {
                r.notified().await;
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    let job = q.now("slow", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "running", || async {
        get(&q, job.id).await.status == JobStatus::Processing
    })
    .await;
    let err = q.delete_job(job.id).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_TRANSITION");
    assert!(err.to_string().contains("processing"));
    release.notify_one();
    eventually(Duration::from_secs(5), "completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_operations_refuse_an_empty_selector_and_act_on_the_selection() {
    let db = TestDb::new("mgmt_bulk");
    let q = db.queue(fast_options()).await;
    let events = kinds(&q);
    let reports = enqueue_n(&q, "report", 30).await;
    enqueue_n(&q, "mail", 5).await;
    let everything = JobSelector::default();
    for err in [
        q.cancel_jobs(&everything).await.unwrap_err(),
        q.retry_jobs(&everything, None).await.unwrap_err(),
        q.delete_jobs(&everything).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "INVALID_SELECTOR");
    }
    assert_eq!(
        count(&q, doc! { "status": "pending" }).await,
        35,
        "nothing touched"
    );

    let by_name = JobSelector {
        name: Some("report".into()),
        ..Default::default()
    };
    assert_eq!(q.cancel_jobs(&by_name).await.unwrap(), 30);
    assert_eq!(count(&q, doc! { "status": "pending" }).await, 5);

    // Redrive the cancelled reports over 2 s: run times spread over the window.
    let before = DateTime::now().timestamp_millis();
    let cancelled_reports = JobSelector {
        name: Some("report".into()),
        status: vec![JobStatus::Cancelled],
        ..Default::default()
    };
    assert_eq!(
        q.retry_jobs(&cancelled_reports, Some(Duration::from_secs(2)))
            .await
            .unwrap(),
        30
    );
    let mut times = HashSet::new();
    for id in &reports {
        let job = get(&q, *id).await;
        assert_eq!(job.status, JobStatus::Pending);
        let t = job.next_run_at.timestamp_millis() - before;
        assert!((0..2_500).contains(&t), "{t}");
        times.insert(t / 100);
    }
    assert!(times.len() >= 10, "spread over the window: {times:?}");

    // Status-only selectors and time bounds.
    let created_after = DateTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await; // createdAt has ms resolution
    enqueue_n(&q, "mail", 2).await;
    let newer = JobSelector {
        newer_than: Some(created_after),
        ..Default::default()
    };
    assert_eq!(q.delete_jobs(&newer).await.unwrap(), 2);
    let older = JobSelector {
        name: Some("mail".into()),
        older_than: Some(created_after),
        ..Default::default()
    };
    assert_eq!(q.delete_jobs(&older).await.unwrap(), 5);
    assert_eq!(count(&q, doc! {}).await, 30);
    let seen = events.lock().unwrap().clone();
    for kind in ["jobs:cancelled", "jobs:retried", "jobs:deleted"] {
        assert!(seen.contains(&kind), "{kind} in {seen:?}");
    }
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_redriven_with_their_keys() {
    let db = TestDb::new("mgmt_dlq");
    let q = db.queue(fast_options()).await;
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail.clone();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = done.clone();
    q.register(
        "charge",
        move |_ctx: JobContext| {
            let (fail, done) = (f.clone(), d.clone());
            async move {
                if fail.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(HandlerError::permanent("card declined"));
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    for i in 0..4 {
        let opts = EnqueueOptions {
            unique_key: (i % 2 == 0).then(|| format!("order-{i}")),
            ..Default::default()
        };
        q.enqueue("charge", json!({ "i": i }), opts).await.unwrap();
    }
    eventually(Duration::from_secs(5), "all failed", || async {
        count(&q, doc! { "status": "failed" }).await == 4
    })
    .await;
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let dead = JobSelector {
        name: Some("charge".into()),
        status: vec![JobStatus::Failed],
        ..Default::default()
    };
    assert_eq!(
        q.retry_jobs(&dead, Some(Duration::from_millis(200)))
            .await
            .unwrap(),
        4
    );
    eventually(Duration::from_secs(5), "all redriven", || async {
        count(&q, doc! { "status": "completed" }).await == 4
    })
    .await;
    q.stop(None).await.unwrap();
    assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 4);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_is_obeyed_by_another_instance_and_persists() {
    let db = TestDb::new("mgmt_pause");
    let admin = db.queue(fast_options()).await;
    let worker = db.queue(fast_options()).await;
    let runs = counting_worker(&worker, "sync", Duration::ZERO, WorkerOptions::default());
    let other = counting_worker(&worker, "other", Duration::ZERO, WorkerOptions::default());
    worker.start().unwrap();
    admin.pause(Some("sync")).await.unwrap();
    assert!(admin.is_paused(Some("sync")).await.unwrap());
    assert!(!admin.is_paused(Some("other")).await.unwrap());
    assert!(!admin.is_paused(None).await.unwrap());
    // The worker instance has seen the pause once a heartbeat started after it: two
    // presence updates after the pause (beats run one after another, presence last).
    let beat = || async {
        admin
            .instances()
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.names.iter().any(|n| n == "sync"))
            .map(|i| i.heartbeat_at)
    };
    let (mut seen, mut advances) = (beat().await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while advances < 2 {
        assert!(std::time::Instant::now() < deadline, "no heartbeats");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = beat().await;
        if now.is_some() && now != seen {
            advances += usize::from(seen.is_some());
            seen = now;
        }
    }
    admin.now("sync", json!({})).await.unwrap();
    admin.now("other", json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "the unpaused name ran", || async {
        other.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0, "paused");

    // A new instance starts paused too: the pause is stored.
    let fresh = db.queue(fast_options()).await;
    assert!(fresh.is_paused(Some("sync")).await.unwrap());

    admin.resume(Some("sync")).await.unwrap();
    eventually(Duration::from_secs(5), "resumed and ran", || async {
        runs.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;

    // Queue-wide pause covers every name.
    admin.pause(None).await.unwrap();
    assert!(admin.is_paused(Some("anything")).await.unwrap());
    admin.resume(None).await.unwrap();
    assert!(!admin.is_paused(Some("anything")).await.unwrap());
    worker.stop(None).await.unwrap();
    db.drop_db(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_finished_jobs_past_their_time_only() {
    let db = TestDb::new("mgmt_retention");
    let q = db
        .queue(MonqueOptions {
            job_retention: JobRetention {
                completed: Some(Duration::from_millis(300)),
                cancelled: Some(Duration::from_millis(300)),
                failed: None,
            },
            retention_interval: Duration::from_millis(100),
            ..fast_options()
        })
        .await;
    let expired = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let e = expired.clone();
    q.on_event(move |ev| {
        if let Event::JobsChanged {
            kind: "jobs:expired",
            count,
        } = ev
        {
            e.fetch_add(*count, std::sync::atomic::Ordering::SeqCst);
        }
    });
    counting_worker(&q, "ok", Duration::ZERO, WorkerOptions::default());
    q.register(
        "bad",
        |_ctx: JobContext| async { Err::<(), _>(HandlerError::permanent("x")) },
        WorkerOptions::default(),
    )
    .unwrap();
    let waiting = q.enqueue("ok", json!({}), later()).await.unwrap();
    let cancelled = q.enqueue("ok", json!({}), later()).await.unwrap();
    q.cancel_job(cancelled.id).await.unwrap();
    q.start().unwrap();
    let done = q.now("ok", json!({})).await.unwrap();
    let failed = q.now("bad", json!({})).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "completed and cancelled swept",
        || async { count(&q, doc! { "_id": { "$in": [done.id, cancelled.id] } }).await == 0 },
    )
    .await;
    q.stop(None).await.unwrap();
    assert_eq!(get(&q, failed.id).await.status, JobStatus::Failed, "kept");
    assert_eq!(get(&q, waiting.id).await.status, JobStatus::Pending, "kept");
    assert_eq!(expired.load(std::sync::atomic::Ordering::SeqCst), 2);
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_runs_and_report_depth() {
    let db = TestDb::new("mgmt_metrics");
    let q = db.queue(fast_options()).await;
    counting_worker(&q, "ok", Duration::from_millis(5), WorkerOptions::default());
    q.register(
        "bad",
        |_ctx: JobContext| async { Err::<(), _>(HandlerError::permanent("x")) },
        WorkerOptions::default(),
    )
    .unwrap();
    q.start().unwrap();
    for _ in 0..3 {
        q.now("ok", json!({})).await.unwrap();
    }
    q.now("bad", json!({})).await.unwrap();
    q.enqueue("idle", json!({}), later()).await.unwrap();
    eventually(Duration::from_secs(5), "ran", || async {
        count(&q, doc! { "status": { "$in": ["completed", "failed"] } }).await == 4
    })
    .await;
    q.stop(None).await.unwrap();
    let text = q.metrics().await.unwrap();
    for line in [
        "monque_jobs_enqueued_total{name=\"ok\"} 3",
        "monque_jobs_enqueued_total{name=\"idle\"} 1",
        "monque_jobs_started_total{name=\"ok\"} 3",
        "monque_jobs_completed_total{name=\"ok\"} 3",
        "monque_jobs_failed_total{name=\"bad\"} 1",
        "monque_job_duration_seconds_count{name=\"ok\"} 3",
        "monque_job_duration_seconds_bucket{name=\"ok\",le=\"+Inf\"} 3",
        "monque_active_jobs 0",
        "monque_queue_depth{name=\"ok\",status=\"completed\"} 3",
        "monque_queue_depth{name=\"bad\",status=\"failed\"} 1",
        "monque_queue_depth{name=\"idle\",status=\"pending\"} 1",
        "# TYPE monque_claim_duration_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_index_creation_and_a_custom_collection_are_respected() {
    let db = TestDb::new("mgmt_indexes");
    let q = db
        .queue(MonqueOptions {
            collection_name: "custom_jobs".into(),
            skip_index_creation: true,
            ..fast_options()
        })
        .await;
    let names = q.collection().list_index_names().await.unwrap_or_default();
    assert!(!names.iter().any(|n| n.starts_with("monque_")), "{names:?}");
    q.pause(Some("x")).await.unwrap();
    let job = q.enqueue("x", json!({}), later()).await.unwrap();
    q.cancel_job(job.id).await.unwrap();
    let client = mongodb::Client::with_uri_str(uri()).await.unwrap();
    let colls = client
        .database(&db.name)
        .list_collection_names()
        .await
        .unwrap();
    assert!(colls.contains(&"custom_jobs".to_owned()), "{colls:?}");
    assert!(
        colls.contains(&"custom_jobs_paused".to_owned()),
        "{colls:?}"
    );
    assert!(
        !colls.iter().any(|c| c.starts_with("monque_jobs")),
        "{colls:?}"
    );
    db.drop_db(&q).await;
}

/// The invariant: exactly one active job holds `key`, and its lock names it.
async fn one_active_holder(q: &Monque, key: &str) {
    let active: Vec<ObjectId> = q
        .get_jobs(JobQuery {
            selector: JobSelector {
                status: vec![JobStatus::Pending, JobStatus::Processing],
                ..Default::default()
            },
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.unique_key.as_deref() == Some(key))
        .map(|j| j.id)
        .collect();
    assert_eq!(active.len(), 1, "one active job for {key}: {active:?}");
    let lock = locks(q)
        .find_one(doc! { "_id": { "name": "mail", "key": key } })
        .await
        .unwrap()
        .expect("the active job has its lock");
    assert_eq!(lock.get_object_id("jobId").unwrap(), active[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_and_enqueues_keep_one_active_job_per_key_with_its_lock() {
    let db = TestDb::new("mgmt_races");
    let q = db.queue(fast_options()).await;
    for round in 0..15 {
        let key = format!("k{round}");
        let opts = EnqueueOptions {
            unique_key: Some(key.clone()),
            ..later()
        };
        let job = q.enqueue("mail", json!({}), opts.clone()).await.unwrap();
        q.cancel_job(job.id).await.unwrap();
        if round % 2 == 0 {
            // Two retries at once (a double click): one wins, the lock survives.
            let (a, b) = tokio::join!(q.retry_job(job.id), q.retry_job(job.id));
            assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
        } else {
            // A retry and an enqueue of the same key at once: one active job.
            let (_retry, enqueued) =
                tokio::join!(q.retry_job(job.id), q.enqueue("mail", json!({}), opts));
            enqueued.unwrap();
        }
        one_active_holder(&q, &key).await;
    }
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_does_not_take_a_key_from_an_enqueue_in_flight_and_is_undone() {
    let db = TestDb::new("mgmt_inflight");
    let q = db.queue(fast_options()).await;
    let opts = EnqueueOptions {
        unique_key: Some("k".into()),
        ..later()
    };
    let job = q.enqueue("mail", json!({}), opts).await.unwrap();
    q.cancel_job(job.id).await.unwrap();
    // Another enqueue has just written its lock and not yet its job.
    let in_flight = ObjectId::new();
    locks(&q)
        .insert_one(doc! { "_id": { "name": "mail", "key": "k" }, "jobId": in_flight, "createdAt": DateTime::now() })
        .await
        .unwrap();
    let err = q.retry_job(job.id).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_TRANSITION");
    let after = get(&q, job.id).await;
    assert_eq!(after.status, JobStatus::Cancelled, "the retry was undone");
    assert_eq!(after.next_run_at, job.next_run_at);
    let lock = locks(&q)
        .find_one(doc! { "_id": { "name": "mail", "key": "k" } })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lock.get_object_id("jobId").unwrap(), in_flight, "untouched");
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_past_the_end_still_leads_back() {
    let db = TestDb::new("mgmt_empty_page");
    let q = db.queue(fast_options()).await;
    let ids = enqueue_n(&q, "page", 6).await;
    let first = q
        .get_jobs_with_cursor(CursorQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    for id in &ids[3..] {
        q.delete_job(*id).await.unwrap();
    }
    let empty = q
        .get_jobs_with_cursor(CursorQuery {
            cursor: first.next_cursor.clone(),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(empty.jobs.is_empty() && !empty.has_next && empty.has_prev);
    let back = q
        .get_jobs_with_cursor(CursorQuery {
            cursor: empty.prev_cursor.clone(),
            limit: 3,
            direction: Direction::Backward,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        back.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids[..3].to_vec()
    );
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_sort_by_due_time_with_ties_broken_by_id_in_every_direction() {
    let db = TestDb::new("mgmt_sort");
    let q = db.queue(fast_options()).await;
    let base = DateTime::now().timestamp_millis() + 3_600_000;
    // 120 jobs on 7 due times, inserted out of order: many ties.
    let jobs: Vec<NewJob> = (0..120)
        .map(|i| NewJob {
            name: "sorted".into(),
            data: json!({ "i": i }),
            options: EnqueueOptions {
                run_at: Some(DateTime::from_millis(base + ((i * 5) % 7) * 1000)),
                ..Default::default()
            },
        })
        .collect();
    q.enqueue_many(jobs).await.unwrap();
    let mut expected: Vec<(DateTime, ObjectId)> = all_jobs(&q)
        .await
        .iter()
        .map(|j| (j.next_run_at, j.id))
        .collect();
    expected.sort();
    let soonest_first: Vec<ObjectId> = expected.iter().map(|(_, id)| *id).collect();
    let latest_first: Vec<ObjectId> = soonest_first.iter().rev().copied().collect();

    for limit in [13, 120] {
        for direction in [Direction::Forward, Direction::Backward] {
            let asc = walk_by(
                &q,
                SortField::NextRunAt,
                SortOrder::Ascending,
                direction,
                limit,
            );
            assert_eq!(asc.await, soonest_first, "asc {direction:?} by {limit}");
            let desc = walk_by(
                &q,
                SortField::NextRunAt,
                SortOrder::Descending,
                direction,
                limit,
            );
            assert_eq!(desc.await, latest_first, "desc {direction:?} by {limit}");
        }
    }
    let page = q
        .get_jobs(JobQuery {
            sort_by: SortField::NextRunAt,
            sort: SortOrder::Descending,
            limit: 10,
            skip: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<ObjectId> = page.iter().map(|j| j.id).collect();
    assert_eq!(ids, latest_first[5..15].to_vec());

    // Most recently changed first: the one just rescheduled leads.
    let touched = soonest_first[60];
    q.reschedule_job(touched, DateTime::from_millis(base + 99_000))
        .await
        .unwrap();
    let recent = q
        .get_jobs(JobQuery {
            selector: JobSelector {
                status: vec![JobStatus::Pending],
                ..Default::default()
            },
            sort_by: SortField::UpdatedAt,
            sort: SortOrder::Descending,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recent[0].id, touched);

    // A cursor belongs to its order: one from the due-time order is refused by another.
    let first = q
        .get_jobs_with_cursor(CursorQuery {
            sort_by: SortField::NextRunAt,
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let elsewhere = q
        .get_jobs_with_cursor(CursorQuery {
            sort_by: SortField::UpdatedAt,
            cursor: first.next_cursor,
            ..Default::default()
        })
        .await;
    assert!(matches!(elsewhere, Err(monque::Error::InvalidCursor(_))));
    db.drop_db(&q).await;
}
