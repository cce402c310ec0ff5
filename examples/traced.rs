//! One trace from an enqueue to the end of its run, across processes and languages. With
//! the `opentelemetry` feature and a `tracing-opentelemetry` layer installed, a job
//! enqueued inside a span carries the trace, and its run continues it: a Node process
//! can enqueue what this one runs, and the other way round.
//!
//!     cargo run --example traced --features opentelemetry -- produce <database>
//!     cargo run --example traced --features opentelemetry -- work <database> <runs>
//!
//! `produce` enqueues inside a "POST /signup" span; `work` runs `send-mail` and `flaky`
//! (whose first attempt fails) until `<runs>` runs ended. Spans go to an in-memory
//! exporter here (use the OTLP exporter in a real app); the process prints those it
//! finished as one JSON line, which the test suite reads (__test__/tracing.test.mjs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use monque::{Event, HandlerError, JobContext, Monque, MonqueOptions, NewJob, WorkerOptions};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{json, Map};
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::main]
async fn main() -> monque::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, database) = (args[0].as_str(), args[1].clone());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("app"))
                .with_filter(LevelFilter::INFO),
        )
        .init();

    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let options = MonqueOptions {
        database: Some(database),
        poll_interval: std::time::Duration::from_millis(50),
        backoff: monque::Backoff {
            base: std::time::Duration::from_millis(10),
            ..Default::default()
        },
        ..Default::default()
    };
    let queue = Monque::connect(&uri, options).await?;
    queue.initialize().await?;
    let mut ids = Map::new();

    if role == "produce" {
        let request = tracing::info_span!("POST /signup", otel.kind = "server");
        async {
            let mail = queue.now("send-mail", json!({ "to": "ada" })).await?;
            ids.insert("mail".into(), mail.id.to_hex().into());
            let flaky = queue.now("flaky", json!({ "n": 1 })).await?;
            ids.insert("flaky".into(), flaky.id.to_hex().into());
            let batch = ["alan", "grace"].map(|to| NewJob {
                name: "send-mail".into(),
                data: json!({ "to": to }),
                options: Default::default(),
            });
            queue.enqueue_many(batch.to_vec()).await?;
            Ok::<_, monque::Error>(())
        }
        .instrument(request)
        .await?;
        // Outside any span: a root producer span, still carried to its run.
        let orphan = queue.now("send-mail", json!({ "to": "barbara" })).await?;
        ids.insert("orphan".into(), orphan.id.to_hex().into());
    } else {
        let runs: usize = args[2].parse().expect("<runs> is a number");
        queue.register(
            "send-mail",
            |ctx: JobContext| async move {
                // A span the handler starts nests under the run's.
                let to = ctx.job.data["to"].as_str().unwrap_or_default().to_owned();
                async {}
                    .instrument(tracing::info_span!("smtp.send", to))
                    .await;
                Ok::<_, HandlerError>(())
            },
            WorkerOptions::default(),
        )?;
        queue.register(
            "flaky",
            |ctx: JobContext| async move {
                if ctx.job.fail_count == 0 {
                    return Err(HandlerError::new("first attempt fails"));
                }
                Ok(json!("ok"))
            },
            WorkerOptions {
                max_retries: Some(3),
                ..Default::default()
            },
        )?;
        let ended = Arc::new(AtomicUsize::new(0));
        let all_ended = Arc::new(tokio::sync::Notify::new());
        let (count, done) = (ended.clone(), all_ended.clone());
        queue.on_event(move |event| {
            if matches!(event, Event::JobCompleted { .. } | Event::JobFailed { .. })
                && count.fetch_add(1, Ordering::SeqCst) + 1 == runs
            {
                done.notify_one();
            }
        });
        queue.start()?;
        all_ended.notified().await;
        queue.stop(None).await?;
        // A run's span closes when its task ends, just after the event: wait for them.
        let runs_exported = || {
            let spans = exporter.get_finished_spans().unwrap_or_default();
            spans
                .iter()
                .filter(|s| s.span_kind == SpanKind::Consumer)
                .count()
        };
        for _ in 0..200 {
            if runs_exported() >= runs {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    let _ = provider.force_flush();
    let spans: Vec<_> = exporter
        .get_finished_spans()
        .unwrap_or_default()
        .iter()
        .map(span_json)
        .collect();
    println!("{}", json!({ "ids": ids, "spans": spans }));
    Ok(())
}

/// A finished span as the test reads it (the same shape the Node side prints).
fn span_json(s: &SpanData) -> serde_json::Value {
    let value = |v: &Value| match v {
        Value::Bool(b) => json!(b),
        Value::I64(n) => json!(n),
        Value::F64(f) => json!(f),
        other => json!(other.as_str()),
    };
    let attributes = |kvs: &[opentelemetry::KeyValue]| {
        kvs.iter()
            .map(|kv| (kv.key.to_string(), value(&kv.value)))
            .collect::<Map<_, _>>()
    };
    let kind = match s.span_kind {
        SpanKind::Internal => 0,
        SpanKind::Server => 1,
        SpanKind::Client => 2,
        SpanKind::Producer => 3,
        SpanKind::Consumer => 4,
    };
    let status = match &s.status {
        Status::Unset => json!({ "code": 0 }),
        Status::Ok => json!({ "code": 1 }),
        Status::Error { description } => json!({ "code": 2, "message": description }),
    };
    let parent = (s.parent_span_id != opentelemetry::trace::SpanId::INVALID)
        .then(|| s.parent_span_id.to_string());
    json!({
        "name": s.name,
        "kind": kind,
        "traceId": s.span_context.trace_id().to_string(),
        "spanId": s.span_context.span_id().to_string(),
        "parentSpanId": parent,
        "attributes": attributes(&s.attributes),
        "events": s.events.events.iter().map(|e| json!({ "name": e.name, "attributes": attributes(&e.attributes) })).collect::<Vec<_>>(),
        "links": s.links.links.iter().map(|l| json!({
            "traceId": l.span_context.trace_id().to_string(),
            "spanId": l.span_context.span_id().to_string(),
            "attributes": attributes(&l.attributes),
        })).collect::<Vec<_>>(),
        "status": status,
    })
}
