//! Progress against a real server: stored on the job (visible to another instance),
//! announced as `job:progress`, fenced by the execution's claim, size-limited.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mongodb::bson::{doc, oid::ObjectId};
use monque::{Event, HandlerError, JobContext, JobStatus, WorkerOptions};
use serde_json::json;
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_stored_announced_and_fenced() {
    let db = TestDb::new("progress");
    let q = db.queue(fast_options()).await;
    let other = db.queue(fast_options()).await;
    let gate = Arc::new(Semaphore::new(0));
    let outcomes: Arc<Mutex<Vec<Result<bool, &'static str>>>> = Arc::default();
    let (g, o) = (gate.clone(), outcomes.clone());
    q.register(
        "report",
        move |ctx: JobContext| {
            let (gate, outcomes) = (g.clone(), o.clone());
            async move {
                let first = ctx
                    .update_progress(json!({ "pct": 50 }))
                    .await
                    .map_err(|e| e.code());
                let too_big = ctx
                    .update_progress(json!("x".repeat(5000)))
                    .await
                    .map_err(|e| e.code());
                outcomes.lock().unwrap().extend([first, too_big]);
                gate.acquire().await.unwrap().forget();
                // By now another instance has taken the job over.
                let late = ctx
                    .update_progress(json!({ "pct": 99 }))
                    .await
                    .map_err(|e| e.code());
                outcomes.lock().unwrap().push(late);
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )
    .unwrap();
    let events: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let e = events.clone();
    q.on_event(move |ev| {
        if let Event::JobProgress { progress, .. } = ev {
            e.lock().unwrap().push(progress.clone());
        }
    });
    q.start().unwrap();
    let job = q.now("report", json!({})).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "progress visible to another instance",
        || async {
            other
                .get_job(job.id)
                .await
                .unwrap()
                .and_then(|j| j.progress)
                == Some(json!({ "pct": 50 }))
        },
    )
    .await;
    eventually(Duration::from_secs(5), "both reports made", || async {
        outcomes.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        *outcomes.lock().unwrap(),
        vec![Ok(true), Err("PAYLOAD_TOO_LARGE")]
    );
    assert_eq!(*events.lock().unwrap(), vec![json!({ "pct": 50 })]);

    let thief = ObjectId::new();
    q.collection()
        .update_one(doc! { "_id": job.id }, doc! { "$set": { "claimId": thief, "leaseExpiresAt": mongodb::bson::DateTime::from_millis(mongodb::bson::DateTime::now().timestamp_millis() + 600_000) } })
        .await
        .unwrap();
    gate.add_permits(1);
    eventually(Duration::from_secs(5), "the late report", || async {
        outcomes.lock().unwrap().len() == 3
    })
    .await;
    assert_eq!(outcomes.lock().unwrap()[2], Ok(false), "fenced off");
    let stored = get(&q, job.id).await;
    assert_eq!(stored.status, JobStatus::Processing);
    assert_eq!(
        stored.progress,
        Some(json!({ "pct": 50 })),
        "the late value was not written"
    );
    q.stop(Some(Duration::from_millis(200))).await.unwrap();
    db.drop_db(&q).await;
}
