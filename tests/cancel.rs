//! Cancelling a running job against a real server: from the instance running it, and
//! from another instance (the heartbeat path and the change-stream path). The job ends
//! `cancelled`, the run's signal aborts with `Cancelled`, and what the handler returns
//! afterwards is not written.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use monque::{
    AbortReason, EnqueueOptions, Event, HandlerError, JobContext, JobStatus, Monque, MonqueOptions,
    NotifyMode, WorkerOptions,
};
use serde_json::json;

/// When each run's signal aborted, and why.
type Aborts = Arc<Mutex<Vec<(Instant, Option<AbortReason>)>>>;

/// A handler that waits for its signal, records it, then returns a result anyway.
fn register_waiting(q: &Monque) -> Aborts {
    let aborts: Aborts = Arc::default();
    let a = aborts.clone();
    q.register(
        "long",
        move |ctx: JobContext| {
            let aborts = a.clone();
            async move {
                ctx.signal.aborted().await;
                aborts
                    .lock()
                    .unwrap()
                    .push((Instant::now(), ctx.signal.reason()));
                Ok::<_, HandlerError>(json!("finished anyway"))
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    aborts
}

async fn wait_running(q: &Monque, id: monque::ObjectId) {
    eventually(Duration::from_secs(5), "running", || async {
        get(q, id).await.status == JobStatus::Processing
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_where_it_runs_aborts_at_once_and_stays_cancelled() {
    let db = TestDb::new("cancel_local");
    let q = db.queue(fast_options()).await;
    let aborts = register_waiting(&q);
    let errors = count_events(&q, |e| matches!(e, Event::JobError { .. }) as usize);
    q.start().unwrap();
    let keyed = EnqueueOptions {
        unique_key: Some("only-one".into()),
        ..Default::default()
    };
    let job = q.enqueue("long", json!({}), keyed.clone()).await.unwrap();
    wait_running(&q, job.id).await;

    let cancelled = q.cancel_job(job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    eventually(Duration::from_secs(2), "run aborted", || async {
        !aborts.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(aborts.lock().unwrap()[0].1, Some(AbortReason::Cancelled));

    // Its key is free again, and the run's late result was never written.
    let next = q.enqueue("long", json!({}), keyed).await.unwrap();
    assert_ne!(next.id, job.id);
    q.cancel_job(next.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = get(&q, job.id).await;
    assert_eq!(stored.status, JobStatus::Cancelled);
    assert_eq!(stored.result, None);
    assert_eq!(
        errors.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no LEASE_LOST"
    );
    // Cancelling it again is an invalid transition.
    assert_eq!(
        q.cancel_job(job.id).await.unwrap_err().code(),
        "INVALID_TRANSITION"
    );
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

/// Another instance cancels; with change streams off, the worker learns it on its next
/// heartbeat (well before its lease would run out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_another_instance_aborts_the_run_within_one_heartbeat() {
    let db = TestDb::new("cancel_remote");
    let heartbeat = Duration::from_millis(1000);
    let options = MonqueOptions {
        change_streams: false,
        heartbeat_interval: heartbeat,
        lease_duration: Duration::from_secs(20),
        ..fast_options()
    };
    let worker = db.queue(options.clone()).await;
    let admin = db.queue(options).await;
    let aborts = register_waiting(&worker);
    worker.start().unwrap();
    let jobs = [
        admin.now("long", json!({ "n": 1 })).await.unwrap(),
        admin.now("long", json!({ "n": 2 })).await.unwrap(),
    ];
    for job in &jobs {
        wait_running(&admin, job.id).await;
    }

    admin.cancel_job(jobs[0].id).await.unwrap();
    let cancelled_at = Instant::now();
    eventually(Duration::from_secs(5), "run aborted", || async {
        !aborts.lock().unwrap().is_empty()
    })
    .await;
    let (aborted_at, reason) = aborts.lock().unwrap()[0];
    assert_eq!(reason, Some(AbortReason::Cancelled));
    let took = aborted_at - cancelled_at;
    assert!(
        // A heartbeat and its round trips, far below the 20 s lease, the only other way.
        took <= heartbeat + Duration::from_millis(1500),
        "aborted {took:?} after the cancel; heartbeat {heartbeat:?}"
    );
    // Only the cancelled job's run aborted; the other still runs and keeps its lease.
    tokio::time::sleep(heartbeat * 2).await;
    assert_eq!(aborts.lock().unwrap().len(), 1);
    assert_eq!(get(&admin, jobs[1].id).await.status, JobStatus::Processing);
    let stored = get(&admin, jobs[0].id).await;
    assert_eq!((stored.status, stored.result), (JobStatus::Cancelled, None));

    admin.cancel_job(jobs[1].id).await.unwrap();
    worker.stop(None).await.unwrap();
    assert_eq!(
        get(&admin, jobs[1].id).await.status,
        JobStatus::Cancelled,
        "stop() does not hand back a cancelled job"
    );
    admin.stop(None).await.unwrap();
    db.drop_db(&worker).await;
}

/// With a change stream the worker aborts long before its next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stream_carries_a_cancel_to_the_worker_at_once() {
    let db = TestDb::new("cancel_stream");
    let heartbeat = Duration::from_secs(10);
    let options = MonqueOptions {
        heartbeat_interval: heartbeat,
        lease_duration: Duration::from_secs(30),
        ..fast_options()
    };
    let worker = db.queue(options.clone()).await;
    let admin = db.queue(options).await;
    let aborts = register_waiting(&worker);
    worker.start().unwrap();
    eventually(Duration::from_secs(5), "change stream open", || async {
        worker.notify_mode() == NotifyMode::ChangeStream
    })
    .await;
    let job = admin.now("long", json!({})).await.unwrap();
    wait_running(&admin, job.id).await;

    let cancelled_at = Instant::now();
    admin.cancel_job(job.id).await.unwrap();
    eventually(Duration::from_secs(5), "run aborted", || async {
        !aborts.lock().unwrap().is_empty()
    })
    .await;
    let (aborted_at, reason) = aborts.lock().unwrap()[0];
    assert_eq!(reason, Some(AbortReason::Cancelled));
    assert!(aborted_at - cancelled_at < heartbeat / 2);
    worker.stop(None).await.unwrap();
    admin.stop(None).await.unwrap();
    db.drop_db(&worker).await;
}
