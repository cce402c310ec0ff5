//! A worker process: handlers for the jobs `examples/producer.rs` enqueues, event
//! logging, and a graceful shutdown on Ctrl-C (running jobs get 10 s to finish, then
//! they are handed back to `pending` for another worker).
//!
//!     MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0 cargo run --example worker
//!
//! `-- --exit-after N` stops after N completed jobs (the test suite uses it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monque::{Event, HandlerError, JobContext, Monque, MonqueOptions, WorkerOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> monque::Result<()> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let args: Vec<String> = std::env::args().collect();
    let exit_after = args
        .iter()
        .position(|a| a == "--exit-after")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok());
    let options = MonqueOptions {
        database: Some(
            std::env::var("MONQUE_DATABASE").unwrap_or_else(|_| "monque_example".into()),
        ),
        shutdown_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let queue = Monque::connect(&uri, options).await?;
    queue.initialize().await?;

    // What the handler returns is stored on the job as `result`.
    queue.register(
        "send-email",
        |ctx: JobContext| async move {
            let to = ctx.job.data["to"]
                .as_str()
                .ok_or_else(|| HandlerError::permanent("`to` is required"))?
                .to_owned();
            tokio::time::sleep(Duration::from_millis(20)).await; // talk to the mail server
            Ok::<_, HandlerError>(json!({ "delivered": to }))
        },
        WorkerOptions {
            concurrency: Some(5),
            ..Default::default()
        },
    )?;
    // Long handlers report progress and watch the signal (shutdown or timeout).
    queue.register(
        "resize-image",
        |ctx: JobContext| async move {
            for step in 1..=3 {
                if ctx.signal.is_aborted() {
                    return Err(HandlerError::new("stopped before finishing"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                ctx.update_progress(json!({ "step": step, "of": 3 }))
                    .await?;
            }
            Ok(())
        },
        WorkerOptions {
            timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        },
    )?;

    let completed = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let (counter, done) = (completed.clone(), all_done.clone());
    queue.on_event(move |event| match event {
        Event::JobCompleted { job, duration } => {
            println!(
                "completed {} {} in {duration:?} -> {}",
                job.name,
                job.id,
                job.result.clone().unwrap_or_default()
            );
            if Some(counter.fetch_add(1, Ordering::SeqCst) + 1) == exit_after {
                done.notify_one();
            }
        }
        Event::JobFailed {
            job,
            error,
            will_retry,
        } => println!(
            "failed {} {}: {error} (retry: {will_retry})",
            job.name, job.id
        ),
        _ => {}
    });

    queue.start()?;
    println!(
        "worker {} started ({:?})",
        queue.instance_id(),
        queue.notify_mode()
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("Ctrl-C: stopping"),
        _ = all_done.notified() => println!("{} jobs completed: stopping", completed.load(Ordering::SeqCst)),
    }
    let handed_back = queue.stop(None).await?;
    println!("stopped; {handed_back} unfinished jobs handed back");
    Ok(())
}
