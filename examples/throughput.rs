//! Processing throughput of the Rust core alone (no JavaScript crossing): enqueue N no-op
//! jobs in one batch, process them at the given concurrency, print jobs per second.
//!
//!     MONGODB_URI=mongodb://... cargo run --release --example throughput -- 1000 10
//!
//! Compare with `npm run bench` to see what the Node.js binding costs. Built with
//! `--features opentelemetry` and run with `OTEL=1`, every run is traced through a
//! `tracing-opentelemetry` layer into a batch exporter that keeps the spans in memory:
//! what tracing costs the Rust core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use monque::{HandlerError, JobContext, Monque, MonqueOptions, NewJob, ObjectId, WorkerOptions};

#[tokio::main]
async fn main() -> monque::Result<()> {
    let uri = std::env::var("MONGODB_URI").expect("set MONGODB_URI");
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("numbers"));
    #[cfg(feature = "opentelemetry")]
    let _tracing = std::env::var_os("OTEL").map(|_| otel::install());
    let total = args.next().unwrap_or(1000);
    let concurrency = args.next().unwrap_or(10);
    let claim_batch = args.next().unwrap_or(MonqueOptions::default().claim_batch);

    let database = format!("monque_example_{}", ObjectId::new().to_hex());
    let queue = Monque::connect(
        &uri,
        MonqueOptions {
            database: Some(database.clone()),
            worker_concurrency: concurrency,
            claim_batch,
            change_streams: std::env::var_os("NO_CS").is_none(),
            ..Default::default()
        },
    )
    .await?;
    queue.initialize().await?;

    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(tokio::sync::Notify::new());
    let (d, f) = (done.clone(), finished.clone());
    queue.register(
        "noop",
        move |_ctx: JobContext| {
            let (done, finished) = (d.clone(), f.clone());
            async move {
                if done.fetch_add(1, Ordering::SeqCst) + 1 == total {
                    finished.notify_one();
                }
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions::default(),
    )?;
    let jobs = (0..total)
        .map(|i| NewJob {
            name: "noop".into(),
            data: serde_json::json!({ "i": i }),
            options: Default::default(),
        })
        .collect();
    queue.enqueue_many(jobs).await?;

    let started = Instant::now();
    queue.start()?;
    finished.notified().await;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{total} jobs, concurrency {concurrency}, claim batch {claim_batch}: {:.0} jobs/s",
        total as f64 / seconds
    );
    queue.stop(None).await?;
    let dropped = queue.collection().client().database(&database).drop().await;
    dropped.map_err(|e| monque::Error::Database(Box::new(e)))
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;

    /// Installs the layer; the provider must live as long as the run.
    pub fn install() -> SdkTracerProvider {
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(InMemorySpanExporter::default())
            .build();
        tracing_subscriber::registry()
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("throughput"))
                    .with_filter(LevelFilter::INFO),
            )
            .init();
        provider
    }
}
