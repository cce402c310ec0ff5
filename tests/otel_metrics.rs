//! The metrics as OpenTelemetry instruments (feature `opentelemetry`) against a real
//! server: the same numbers as the Prometheus text of `metrics()`.
//!
//!     cargo test --features opentelemetry --test otel_metrics

mod common;

use std::time::Duration;

use common::*;
use monque::{EnqueueOptions, HandlerError, JobContext, WorkerOptions};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::json;

/// A counter's or gauge's value for the data point with these attributes.
fn value(metrics: &[ResourceMetrics], name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    let matches = |kvs: Vec<(String, String)>| {
        attrs
            .iter()
            .all(|(k, v)| kvs.contains(&(k.to_string(), v.to_string())))
    };
    let kv = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
        it.map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect::<Vec<_>>()
    };
    let metric = metrics
        .last()?
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)?;
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
            .data_points()
            .find(|p| matches(kv(&mut p.attributes())))
            .map(|p| p.value() as f64),
        AggregatedMetrics::U64(MetricData::Gauge(g)) => g
            .data_points()
            .find(|p| matches(kv(&mut p.attributes())))
            .map(|p| p.value() as f64),
        AggregatedMetrics::F64(MetricData::Gauge(g)) => g
            .data_points()
            .find(|p| matches(kv(&mut p.attributes())))
            .map(|p| p.value()),
        AggregatedMetrics::F64(MetricData::Histogram(h)) => h
            .data_points()
            .find(|p| matches(kv(&mut p.attributes())))
            .map(|p| p.count() as f64),
        _ => None,
    }
}

/// The number on the Prometheus line starting with `series `.
fn scraped(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{series} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instruments_carry_the_prometheus_numbers() {
    let db = TestDb::new("otel_metrics");
    let q = db.queue(quick_retries()).await;
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    assert!(q.observe_metrics(&provider.meter("monque")));
    assert!(
        !q.observe_metrics(&provider.meter("monque")),
        "registered once"
    );
    q.register(
        "resize",
        |ctx: JobContext| async move {
            if ctx.job.data["fail"].as_bool() == Some(true) && ctx.job.fail_count == 0 {
                return Err(HandlerError::new("once"));
            }
            Ok(())
        },
        WorkerOptions {
            max_retries: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    q.start().unwrap();
    for data in [json!({}), json!({}), json!({ "fail": true })] {
        q.enqueue("resize", data, EnqueueOptions::default())
            .await
            .unwrap();
    }
    q.enqueue("nobody-handles", json!({}), EnqueueOptions::default())
        .await
        .unwrap();
    // Groups of a name nobody handles: one with a due job, one paused.
    let tenant = EnqueueOptions {
        group: Some("tenant-1".into()),
        ..Default::default()
    };
    q.enqueue("tenanted", json!({}), tenant).await.unwrap();
    q.pause_group("tenanted", "tenant-2").await.unwrap();
    eventually(Duration::from_secs(10), "3 completed", || async {
        q.queue_stats(Some("resize")).await.unwrap().completed == 3
    })
    .await;
    // The gauges report the last count of the whole queue: the one registration started
    // is from before these jobs; a collection that finds it stale (after 5 s) starts a
    // recount for the next.
    eventually(
        Duration::from_secs(10),
        "a collection with the recount",
        || async {
            provider.force_flush().unwrap();
            let collected = exporter.get_finished_metrics().unwrap();
            value(
                &collected,
                "monque.queue_depth",
                &[("name", "resize"), ("status", "completed")],
            ) == Some(3.0)
        },
    )
    .await;
    let text = q.metrics().await.unwrap();
    let collected = exporter.get_finished_metrics().unwrap();

    for key in ["enqueued", "started", "completed", "failed", "retried"] {
        assert_eq!(
            value(
                &collected,
                &format!("monque.jobs.{key}"),
                &[("name", "resize")]
            ),
            Some(scraped(
                &text,
                &format!("monque_jobs_{key}_total{{name=\"resize\"}}")
            )),
            "{key}"
        );
    }
    assert_eq!(
        value(&collected, "monque.jobs.started", &[("name", "resize")]),
        Some(4.0)
    );
    assert_eq!(
        value(&collected, "monque.job.duration", &[("name", "resize")]),
        Some(3.0)
    );
    assert_eq!(
        scraped(&text, "monque_job_duration_seconds_count{name=\"resize\"}"),
        3.0
    );
    assert!(value(&collected, "monque.claim.duration", &[]).unwrap() >= 1.0);
    assert_eq!(
        value(
            &collected,
            "monque.queue_depth",
            &[("name", "resize"), ("status", "completed")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &collected,
            "monque.orphaned_jobs",
            &[("name", "nobody-handles")]
        ),
        Some(1.0)
    );
    for (gauge, series) in [
        ("monque.groups_due", "monque_groups_due{name=\"tenanted\"}"),
        (
            "monque.groups_paused",
            "monque_groups_paused{name=\"tenanted\"}",
        ),
    ] {
        assert_eq!(
            value(&collected, gauge, &[("name", "tenanted")]),
            Some(scraped(&text, series))
        );
        assert_eq!(scraped(&text, series), 1.0, "{series}");
    }
    assert_eq!(value(&collected, "monque.live_instances", &[]), Some(1.0));
    assert_eq!(value(&collected, "monque.active_jobs", &[]), Some(0.0));
    assert!(value(&collected, "monque.clock_offset", &[]).is_some());
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}
