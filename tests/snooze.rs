//! Snoozing against a real server: a handler asks to run again later; the job goes
//! back to `pending` without counting a failure, then runs again after the delay.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use monque::{Event, HandlerError, JobContext, JobStatus, MonqueOptions, WorkerOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snoozed_job_runs_again_after_its_delay_without_a_failure() {
    let db = TestDb::new("snooze");
    let q = db
        .queue(MonqueOptions {
            max_retries: 0, // a counted failure would fail the job for good
            ..fast_options()
        })
        .await;
    // Long enough that the stored job is read below before it is due again.
    let delay = Duration::from_millis(1000);
    let runs: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let r = runs.clone();
    q.register(
        "not-ready",
        move |_ctx: JobContext| {
            let runs = r.clone();
            async move {
                let mut runs = runs.lock().unwrap();
                runs.push(Instant::now());
                if runs.len() < 3 {
                    return Err(HandlerError::snooze(delay));
                }
                Ok(json!({ "runs": runs.len() }))
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    let snoozes: Arc<Mutex<Vec<(Duration, JobStatus, u32)>>> = Arc::default();
    let s = snoozes.clone();
    q.on_event(move |e| {
        if let Event::JobSnoozed { job, delay, .. } = e {
            s.lock().unwrap().push((*delay, job.status, job.fail_count));
        }
    });
    let failures = count_events(&q, |e| matches!(e, Event::JobFailed { .. }) as usize);
    q.start().unwrap();
    let job = q.now("not-ready", json!({})).await.unwrap();

    eventually(Duration::from_secs(5), "first snooze", || async {
        !snoozes.lock().unwrap().is_empty()
    })
    .await;
    let stored = get(&q, job.id).await;
    assert_eq!((stored.status, stored.fail_count), (JobStatus::Pending, 0));
    assert_eq!(stored.claim_id, None);
    assert!(stored.next_run_at.timestamp_millis() >= stored.updated_at.timestamp_millis() + 1000);

    eventually(Duration::from_secs(10), "completed", || async {
        get(&q, job.id).await.status == JobStatus::Completed
    })
    .await;
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 3);
    for pair in runs.windows(2) {
        assert!(
            pair[1] - pair[0] >= delay,
            "ran again {:?} after a snooze",
            pair[1] - pair[0]
        );
    }
    let done = get(&q, job.id).await;
    assert_eq!((done.fail_count, done.fail_reason), (0, None));
    assert_eq!(done.result, Some(json!({ "runs": 3 })));
    assert_eq!(
        *snoozes.lock().unwrap(),
        vec![
            (delay, JobStatus::Pending, 0),
            (delay, JobStatus::Pending, 0)
        ]
    );
    assert_eq!(failures.load(std::sync::atomic::Ordering::SeqCst), 0);
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[test]
fn a_snooze_delay_is_kept_between_one_millisecond_and_a_year() {
    let snoozed = |d| HandlerError::snooze(d).snoozed_for().unwrap();
    assert_eq!(snoozed(Duration::ZERO), Duration::from_millis(1));
    assert_eq!(snoozed(Duration::MAX), monque::MAX_SNOOZE);
    assert_eq!(snoozed(Duration::from_secs(30)), Duration::from_secs(30));
}
