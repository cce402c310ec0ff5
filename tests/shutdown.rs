//! stop() against handlers that return the moment their signal aborts: the race between
//! a late result and the hand-back. The rule: once stop() sends its abort, the hand-back
//! wins, every time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use monque::{AbortReason, Event, HandlerError, JobContext, JobStatus, WorkerOptions};
use serde_json::json;

const ROUNDS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_returned_after_the_shutdown_abort_are_never_written() {
    let db = TestDb::new("shutdown_race");
    for round in 0..ROUNDS {
        let q = db.queue(fast_options()).await;
        let released = Arc::new(Mutex::new(Vec::new()));
        {
            let released = released.clone();
            q.on_event(move |e| {
                if let Event::JobsReleased { count } = e {
                    released.lock().unwrap().push(*count);
                }
            });
        }
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let name = format!("race-{round}");
        q.register(
            &name,
            move |ctx: JobContext| {
                let started_tx = started_tx.clone();
                async move {
                    started_tx.send(()).unwrap();
                    ctx.signal.aborted().await;
                    assert_eq!(ctx.signal.reason(), Some(AbortReason::Shutdown));
                    // Succeeds at once, racing the hand-back.
                    Ok::<_, HandlerError>(json!("late"))
                }
            },
            WorkerOptions {
                concurrency: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        q.start().unwrap();
        let a = q.now(&name, json!({})).await.unwrap();
        let b = q.now(&name, json!({})).await.unwrap();
        started.recv().await.unwrap();
        started.recv().await.unwrap();
        let handed_back = q.stop(Some(Duration::from_millis(100))).await.unwrap();
        assert_eq!(handed_back, 2, "round {round}: both runs were handed back");
        for id in [a.id, b.id] {
            let job = q.get_job(id).await.unwrap().unwrap();
            assert_eq!(job.status, JobStatus::Pending, "round {round}");
            assert_eq!(
                job.result, None,
                "round {round}: the late result is not written"
            );
            assert_eq!(job.claim_id, None);
        }
        // Give a late write every chance to land, then look again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for id in [a.id, b.id] {
            let job = q.get_job(id).await.unwrap().unwrap();
            assert_eq!(
                job.status,
                JobStatus::Pending,
                "round {round}: still pending"
            );
        }
        assert_eq!(
            *released.lock().unwrap(),
            vec![2],
            "round {round}: jobs:released"
        );
    }
    let q = db.queue(fast_options()).await;
    db.drop_db(&q).await;
}
