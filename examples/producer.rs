//! Enqueues work for `examples/worker.rs`: single jobs, a deduplicated one, a delayed
//! one and a batch. Run it while the worker runs (or before: jobs wait in MongoDB).
//!
//!     MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0 cargo run --example producer -- 5

use std::time::Duration;

use monque::{DateTime, EnqueueOptions, Monque, MonqueOptions, NewJob};
use serde_json::json;

#[tokio::main]
async fn main() -> monque::Result<()> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let options = MonqueOptions {
        database: Some(
            std::env::var("MONQUE_DATABASE").unwrap_or_else(|_| "monque_example".into()),
        ),
        ..Default::default()
    };
    let queue = Monque::connect(&uri, options).await?;
    queue.initialize().await?;

    // Plain jobs: run as soon as a worker is free.
    for i in 0..count {
        let job = queue
            .now(
                "send-email",
                json!({ "to": format!("user{i}@example.com") }),
            )
            .await?;
        println!("enqueued {} {}", job.name, job.id);
    }

    // While a job with this uniqueKey is pending or running, enqueueing it again
    // returns the existing job instead of adding one.
    let welcome = EnqueueOptions {
        unique_key: Some("welcome:ada".into()),
        ..Default::default()
    };
    let first = queue
        .enqueue(
            "send-email",
            json!({ "to": "ada@example.com" }),
            welcome.clone(),
        )
        .await?;
    let again = queue
        .enqueue("send-email", json!({ "to": "ada@example.com" }), welcome)
        .await?;
    println!(
        "uniqueKey welcome:ada -> {} (second enqueue returned the same job: {})",
        first.id,
        first.id == again.id
    );

    // A delayed, high-priority job.
    let in_one_second = DateTime::from_millis(DateTime::now().timestamp_millis() + 1_000);
    let delayed = EnqueueOptions {
        run_at: Some(in_one_second),
        priority: 10,
        ..Default::default()
    };
    let reminder = queue
        .enqueue("send-email", json!({ "to": "grace@example.com" }), delayed)
        .await?;
    println!(
        "enqueued a reminder {} for {}",
        reminder.id, reminder.next_run_at
    );

    // A batch: one round trip.
    let batch = (0..3)
        .map(|i| NewJob {
            name: "resize-image".into(),
            data: json!({ "id": i, "width": 320 }),
            options: Default::default(),
        })
        .collect();
    let result = queue.enqueue_many(batch).await?;
    println!(
        "batch: {} inserted, {} deduplicated",
        result.inserted, result.deduplicated
    );

    let stats = queue.queue_stats(None).await?;
    println!(
        "queue: {} pending, {} processing, {} completed",
        stats.pending, stats.processing, stats.completed
    );
    queue.stop(Some(Duration::ZERO)).await?;
    Ok(())
}
