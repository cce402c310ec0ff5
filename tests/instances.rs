//! Live instances and orphaned jobs: what each started instance handles is visible, and
//! due jobs that no live instance handles are counted and reported.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mongodb::bson::{doc, DateTime, Document};
use monque::{EnqueueOptions, Event, HandlerError, JobContext, WorkerOptions};
use serde_json::json;

fn idle_worker() -> impl Fn(JobContext) -> futures_util::future::Ready<Result<(), HandlerError>> {
    |_ctx| futures_util::future::ready(Ok(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_say_what_they_handle_and_orphans_are_counted_and_reported() {
    let db = TestDb::new("instances");
    let a = db.queue(fast_options()).await;
    let b = db.queue(fast_options()).await;
    a.register("mail", idle_worker(), WorkerOptions::default())
        .unwrap();
    b.register("sms", idle_worker(), WorkerOptions::default())
        .unwrap();
    // Due two minutes ago, and nobody handles "report": orphans, overdue.
    let two_minutes_ago = DateTime::from_millis(DateTime::now().timestamp_millis() - 120_000);
    for _ in 0..3 {
        a.enqueue(
            "report",
            json!({}),
            EnqueueOptions {
                run_at: Some(two_minutes_ago),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let orphaned: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    {
        let orphaned = orphaned.clone();
        a.on_event(move |e| {
            if let Event::JobsOrphaned {
                name,
                count,
                oldest_due,
            } = e
            {
                assert!(
                    oldest_due.timestamp_millis() <= DateTime::now().timestamp_millis() - 60_000
                );
                orphaned.lock().unwrap().push((name.clone(), *count));
            }
        });
    }
    a.start().unwrap();
    b.start().unwrap();
    eventually(Duration::from_secs(5), "both instances listed", || async {
        a.instances().await.unwrap().len() == 2
    })
    .await;
    let listed = a.instances().await.unwrap();
    let names_of = |id: &str| {
        listed
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.names.clone())
            .unwrap()
    };
    assert_eq!(names_of(a.instance_id()), vec!["mail".to_owned()]);
    assert_eq!(names_of(b.instance_id()), vec!["sms".to_owned()]);

    // Stats count the due jobs nobody handles; a handled name's jobs are not orphans.
    a.now("mail", json!({})).await.unwrap();
    assert_eq!(a.queue_stats(None).await.unwrap().orphaned, 3);
    assert_eq!(a.queue_stats(Some("report")).await.unwrap().orphaned, 3);
    assert_eq!(a.queue_stats(Some("mail")).await.unwrap().orphaned, 0);
    eventually(Duration::from_secs(5), "jobs:orphaned reported", || async {
        orphaned.lock().unwrap().contains(&("report".to_owned(), 3))
    })
    .await;
    let metrics = a.metrics().await.unwrap();
    assert!(
        metrics.contains("monque_orphaned_jobs{name=\"report\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("monque_live_instances 2"), "{metrics}");

    // A stopped instance withdraws; one silent for a lease is not listed either.
    b.stop(None).await.unwrap();
    let raw = mongodb::Client::with_uri_str(uri()).await.unwrap();
    raw.database(&db.name)
        .collection::<Document>("monque_jobs_instances")
        .insert_one(doc! {
            "_id": "crashed:1",
            "names": ["report"],
            "startedAt": two_minutes_ago,
            "heartbeatAt": two_minutes_ago,
        })
        .await
        .unwrap();
    let ids: Vec<String> = a
        .instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, vec![a.instance_id().to_owned()]);
    assert_eq!(
        a.queue_stats(None).await.unwrap().orphaned,
        3,
        "a dead instance's names do not count as handled"
    );
    a.stop(None).await.unwrap();
    db.drop_db(&a).await;
}
