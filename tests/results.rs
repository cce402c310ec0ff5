//! Handler results against a real server: stored on the completed job and in
//! `job:complete`; a result too large or unstorable is reported and the job still
//! completes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use monque::{Event, HandlerError, JobContext, JobStatus, MonqueOptions, WorkerOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_stored_unless_too_large_or_unstorable() {
    let db = TestDb::new("results");
    let q = db
        .queue(MonqueOptions {
            max_result_size: 100,
            ..fast_options()
        })
        .await;
    q.register(
        "sum",
        |ctx: JobContext| async move {
            let (a, b) = (
                ctx.job.data["a"].as_i64().unwrap(),
                ctx.job.data["b"].as_i64().unwrap(),
            );
            Ok::<_, HandlerError>(match ctx.job.data["kind"].as_str() {
                Some("big") => json!({ "pad": "x".repeat(200) }),
                Some("operator") => json!({ "$set": 1 }),
                Some("none") => json!(null),
                _ => json!({ "sum": a + b, "at": [a, b] }),
            })
        },
        WorkerOptions::default(),
    )
    .unwrap();
    let completed: Arc<Mutex<Vec<Option<serde_json::Value>>>> = Arc::default();
    let c = completed.clone();
    let refused = count_events(&q, |e| {
        matches!(
            e,
            Event::JobError {
                code: "RESULT_NOT_STORED",
                ..
            }
        ) as usize
    });
    q.on_event(move |e| {
        if let Event::JobCompleted { job, .. } = e {
            c.lock().unwrap().push(job.result.clone());
        }
    });
    q.start().unwrap();
    let ok = q.now("sum", json!({ "a": 2, "b": 3 })).await.unwrap();
    let big = q
        .now("sum", json!({ "a": 0, "b": 0, "kind": "big" }))
        .await
        .unwrap();
    let op = q
        .now("sum", json!({ "a": 0, "b": 0, "kind": "operator" }))
        .await
        .unwrap();
    let none = q
        .now("sum", json!({ "a": 0, "b": 0, "kind": "none" }))
        .await
        .unwrap();
    for id in [ok.id, big.id, op.id, none.id] {
        eventually(Duration::from_secs(5), "completed", || async {
            get(&q, id).await.status == JobStatus::Completed
        })
        .await;
    }
    let stored = q.get_job(ok.id).await.unwrap().unwrap();
    assert_eq!(stored.result, Some(json!({ "sum": 5, "at": [2, 3] })));
    for id in [big.id, op.id, none.id] {
        assert_eq!(q.get_job(id).await.unwrap().unwrap().result, None);
    }
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(completed
        .lock()
        .unwrap()
        .contains(&Some(json!({ "sum": 5, "at": [2, 3] }))));
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}
