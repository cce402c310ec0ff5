//! The queue's metrics as OpenTelemetry instruments (feature `opentelemetry`), under the
//! names OpenTelemetry's Prometheus exporter turns into those of `metrics()`:
//! `monque.jobs.completed` (`{job}`) -> `monque_jobs_completed_total`,
//! `monque.job.duration` (`s`) -> `monque_job_duration_seconds`. Counters and gauges are
//! observed when the reader collects; run and claim durations are recorded as they
//! happen. The whole-queue gauges report the last count: a callback cannot wait for the
//! server, so a collection that finds the count older than `DEPTH_MAX_AGE` starts a
//! recount for the next one. The first count starts at registration.

use std::sync::Arc;

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::KeyValue;

use super::metrics::{DurationSink, Metrics, BUCKETS};
use super::running::Running;
use crate::store::Store;

const COUNTERS: [(&str, &str); 5] = [
    (
        "monque.jobs.enqueued",
        "Jobs written by enqueue calls on this instance.",
    ),
    ("monque.jobs.started", "Job runs started on this instance."),
    (
        "monque.jobs.completed",
        "Job runs that succeeded on this instance.",
    ),
    (
        "monque.jobs.failed",
        "Job runs that failed on this instance (retried or not).",
    ),
    (
        "monque.jobs.retried",
        "Failed runs put back to pending for a retry.",
    ),
];

struct Durations {
    job: Histogram<f64>,
    claim: Histogram<f64>,
}

impl DurationSink for Durations {
    fn job_took(&self, name: &str, seconds: f64) {
        self.job
            .record(seconds, &[KeyValue::new("name", name.to_owned())]);
    }

    fn claim_took(&self, seconds: f64) {
        self.claim.record(seconds, &[]);
    }
}

/// Registers the instruments on `meter`; false (and nothing registered) if they were.
pub(crate) fn observe(
    meter: &Meter,
    metrics: Arc<Metrics>,
    store: Arc<Store>,
    running: Arc<Running>,
    runtime: tokio::runtime::Handle,
) -> bool {
    let durations = Durations {
        job: meter
            .f64_histogram("monque.job.duration")
            .with_unit("s")
            .with_description("Time from a run's start to its end, successful runs.")
            .with_boundaries(BUCKETS.to_vec())
            .build(),
        claim: meter
            .f64_histogram("monque.claim.duration")
            .with_unit("s")
            .with_description("Round trip of one claim query.")
            .with_boundaries(BUCKETS.to_vec())
            .build(),
    };
    if !metrics.set_sink(Box::new(durations)) {
        return false;
    }
    for (i, (name, description)) in COUNTERS.into_iter().enumerate() {
        let metrics = metrics.clone();
        meter
            .u64_observable_counter(name)
            .with_unit("{job}")
            .with_description(description)
            .with_callback(move |observer| {
                for (job_name, counts) in metrics.counters() {
                    observer.observe(counts[i], &[KeyValue::new("name", job_name)]);
                }
            })
            .build();
    }
    meter
        .u64_observable_gauge("monque.active_jobs")
        .with_unit("{job}")
        .with_description("Jobs running on this instance now.")
        .with_callback(move |observer| observer.observe(running.snapshot().len() as u64, &[]))
        .build();
    let clock = store.clock();
    meter
        .f64_observable_gauge("monque.clock_offset")
        .with_unit("s")
        .with_description("The server's clock minus this machine's.")
        .with_callback(move |observer| observer.observe(clock.offset_ms() as f64 / 1000.0, &[]))
        .build();
    let recount = move |metrics: &Arc<Metrics>| {
        let (metrics, store) = (metrics.clone(), store.clone());
        runtime.spawn(async move {
            if let Err(err) = metrics.refresh_whole_queue(&store).await {
                tracing::debug!(%err, "queue depth for the metrics not counted");
            }
        });
    };
    recount(&metrics);
    let whole_queue = move |metrics: &Arc<Metrics>| {
        let (whole, stale) = metrics.cached_whole_queue();
        if stale {
            recount(metrics);
        }
        whole
    };
    let m = metrics.clone();
    meter
        .u64_observable_gauge("monque.queue_depth")
        .with_unit("{job}")
        .with_description("Jobs in the queue per name and status, whole queue (every instance reports it: aggregate with max, not sum).")
        .with_callback(move |observer| {
            for (name, status, count) in whole_queue(&m).map(|w| w.depth).unwrap_or_default() {
                observer.observe(count, &[KeyValue::new("name", name), KeyValue::new("status", status)]);
            }
        })
        .build();
    // The recount above serves these too: they read the same cache.
    let m = metrics.clone();
    meter
        .u64_observable_gauge("monque.orphaned_jobs")
        .with_unit("{job}")
        .with_description("Due pending jobs whose name no live instance handles, whole queue.")
        .with_callback(move |observer| {
            for o in m
                .cached_whole_queue()
                .0
                .map(|w| w.orphans)
                .unwrap_or_default()
            {
                observer.observe(o.count, &[KeyValue::new("name", o.name)]);
            }
        })
        .build();
    for (gauge, description, pick) in [
        (
            "monque.groups_due",
            "Groups with due work per name, whole queue (aggregate with max).",
            (|(_, due, _): &(String, u64, u64)| *due) as fn(&(String, u64, u64)) -> u64,
        ),
        (
            "monque.groups_paused",
            "Paused groups per name, whole queue (aggregate with max).",
            |(_, _, paused): &(String, u64, u64)| *paused,
        ),
    ] {
        let m = metrics.clone();
        meter
            .u64_observable_gauge(gauge)
            .with_unit("{group}")
            .with_description(description)
            .with_callback(move |observer| {
                for g in m
                    .cached_whole_queue()
                    .0
                    .map(|w| w.groups)
                    .unwrap_or_default()
                {
                    observer.observe(pick(&g), &[KeyValue::new("name", g.0.clone())]);
                }
            })
            .build();
    }
    meter
        .u64_observable_gauge("monque.live_instances")
        .with_unit("{instance}")
        .with_description("Started instances that heartbeated within a lease.")
        .with_callback(move |observer| {
            if let Some(w) = metrics.cached_whole_queue().0 {
                observer.observe(w.live_instances as u64, &[]);
            }
        })
        .build();
    true
}
