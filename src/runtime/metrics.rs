//! Prometheus metrics. Counters and histograms are this instance's (what it enqueued,
//! ran, how long claims and jobs took); queue depth per name and status is the whole
//! queue's, counted on the server at most once per `DEPTH_MAX_AGE` however often you
//! scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::events::Event;
use crate::store::{Depth, Orphans, Store};

/// Upper bounds of the histogram buckets, in seconds.
pub(crate) const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Queue depth older than this is counted again on the next scrape.
pub(crate) const DEPTH_MAX_AGE: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, metric: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{metric}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{metric}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{metric}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{metric}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default, Clone)]
struct PerName {
    enqueued: u64,
    started: u64,
    completed: u64,
    failed: u64,
    retried: u64,
    duration: Histogram,
}

/// A counter's name, help text and how to read it from a name's numbers.
type Counter = (&'static str, &'static str, fn(&PerName) -> u64);

/// What every instance reports alike, read from the server and cached.
#[derive(Clone)]
pub(crate) struct WholeQueue {
    pub(crate) depth: Depth,
    pub(crate) orphans: Vec<Orphans>,
    pub(crate) live_instances: usize,
    /// Per name: groups with due work, paused groups (store/groups.rs).
    pub(crate) groups: Vec<(String, u64, u64)>,
}

/// One job name's counters: enqueued, started, completed, failed, retried.
pub(crate) type NameCounters = (String, [u64; 5]);

/// Where observations also go when the queue's metrics are OpenTelemetry instruments
/// (otel_metrics.rs, feature `opentelemetry`).
pub(crate) trait DurationSink: Send + Sync {
    fn job_took(&self, name: &str, seconds: f64);
    fn claim_took(&self, seconds: f64);
}

/// Most observations kept for the next `telemetry` read; more are not kept (a reader
/// collects every few seconds, far below this at any rate the queue reaches).
const MAX_SAMPLES: usize = 100_000;

/// Run and claim durations not read yet by `telemetry` (the OpenTelemetry histograms of
/// the Node binding, which takes single observations, not buckets).
#[derive(Default)]
struct Samples {
    jobs: Vec<(String, f64)>,
    claims: Vec<f64>,
}

/// This instance's counters, plus the cached whole-queue numbers.
#[derive(Default)]
pub(crate) struct Metrics {
    per_name: Mutex<BTreeMap<String, PerName>>,
    claim: Mutex<Histogram>,
    whole_queue: tokio::sync::Mutex<Option<(Instant, WholeQueue)>>,
    /// The last count, readable without waiting for a recount in progress.
    last_count: Mutex<Option<(Instant, WholeQueue)>>,
    /// `None` until `keep_samples`: nobody pays for samples nobody reads.
    samples: Mutex<Option<Samples>>,
    /// Set once the metrics are OpenTelemetry instruments.
    sink: std::sync::OnceLock<Box<dyn DurationSink>>,
}

impl Metrics {
    pub(crate) fn enqueued(&self, name: &str, n: u64) {
        if n > 0 {
            self.with(name, |m| m.enqueued += n);
        }
    }

    /// From now on, keeps run and claim durations for `telemetry` to hand over.
    pub(crate) fn keep_samples(&self) {
        self.samples
            .lock()
            .expect("metrics lock")
            .get_or_insert_with(Samples::default);
    }

    /// Sends run and claim durations to `sink` too; false if one was set before.
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn set_sink(&self, sink: Box<dyn DurationSink>) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// Every name's counters.
    pub(crate) fn counters(&self) -> Vec<NameCounters> {
        let map = self.per_name.lock().expect("metrics lock");
        map.iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    [m.enqueued, m.started, m.completed, m.failed, m.retried],
                )
            })
            .collect()
    }

    /// The whole-queue numbers as last counted (none before the first count), and
    /// whether they are older than `DEPTH_MAX_AGE`. Never waits for a recount.
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn cached_whole_queue(&self) -> (Option<WholeQueue>, bool) {
        match self.last_count.lock().expect("metrics lock").as_ref() {
            Some((at, whole)) => (Some(whole.clone()), at.elapsed() >= DEPTH_MAX_AGE),
            None => (None, true),
        }
    }

    /// Counts the whole-queue numbers again if they are stale.
    #[cfg(feature = "opentelemetry")]
    pub(crate) async fn refresh_whole_queue(&self, store: &Store) -> Result<()> {
        self.whole_queue(store).await.map(|_| ())
    }

    pub(crate) fn claim_took(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        self.claim.lock().expect("metrics lock").observe(seconds);
        if let Some(sink) = self.sink.get() {
            sink.claim_took(seconds);
        }
        if let Some(samples) = self.samples.lock().expect("metrics lock").as_mut() {
            if samples.claims.len() < MAX_SAMPLES {
                samples.claims.push(seconds);
            }
        }
    }

    /// Counts what an event tells (subscribed to the event bus).
    pub(crate) fn record(&self, event: &Event) {
        match event {
            Event::JobStarted { job } => self.with(&job.name, |m| m.started += 1),
            Event::JobCompleted { job, duration } => {
                let seconds = duration.as_secs_f64();
                self.with(&job.name, |m| {
                    m.completed += 1;
                    m.duration.observe(seconds);
                });
                if let Some(sink) = self.sink.get() {
                    sink.job_took(&job.name, seconds);
                }
                if let Some(samples) = self.samples.lock().expect("metrics lock").as_mut() {
                    if samples.jobs.len() < MAX_SAMPLES {
                        samples.jobs.push((job.name.clone(), seconds));
                    }
                }
            }
            Event::JobFailed { job, .. } => self.with(&job.name, |m| m.failed += 1),
            Event::JobRetry { job, .. } => self.with(&job.name, |m| m.retried += 1),
            _ => {}
        }
    }

    fn with(&self, name: &str, f: impl FnOnce(&mut PerName)) {
        let mut map = self.per_name.lock().expect("metrics lock");
        match map.get_mut(name) {
            Some(m) => f(m),
            None => f(map.entry(name.to_owned()).or_default()),
        }
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Queue depth per (name, status), orphans and live instances, from the cache when
    /// fresh enough.
    async fn whole_queue(&self, store: &Store) -> Result<WholeQueue> {
        let mut cache = self.whole_queue.lock().await;
        if let Some((at, whole)) = cache.as_ref() {
            if at.elapsed() < DEPTH_MAX_AGE {
                return Ok(whole.clone());
            }
        }
        let live = store.live_instances().await?;
        let whole = WholeQueue {
            depth: store.queue_depth().await?,
            orphans: store.orphans(&live, store.now(), None).await?,
            live_instances: live.len(),
            groups: store.group_gauges().await?,
        };
        *cache = Some((Instant::now(), whole.clone()));
        *self.last_count.lock().expect("metrics lock") = cache.clone();
        Ok(whole)
    }

    /// The same numbers for OpenTelemetry instruments, as JSON: the counters per name,
    /// the gauges, and the run and claim durations observed since the previous read
    /// (so one reader should read them).
    pub(crate) async fn telemetry(
        &self,
        store: &Store,
        active: usize,
    ) -> Result<serde_json::Value> {
        use serde_json::json;
        let whole = self.whole_queue(store).await?;
        let samples = self
            .samples
            .lock()
            .expect("metrics lock")
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let counters: Vec<_> = self
            .counters()
            .into_iter()
            .map(|(name, [enqueued, started, completed, failed, retried])| {
                json!({ "name": name, "enqueued": enqueued, "started": started, "completed": completed, "failed": failed, "retried": retried })
            })
            .collect();
        Ok(json!({
            "counters": counters,
            "jobDurations": samples.jobs,
            "claimDurations": samples.claims,
            "activeJobs": active,
            "queueDepth": whole.depth,
            "orphanedJobs": whole.orphans.iter().map(|o| (&o.name, o.count)).collect::<Vec<_>>(),
            "liveInstances": whole.live_instances,
            "groups": whole.groups.iter().map(|(name, due, paused)| json!({ "name": name, "due": due, "paused": paused })).collect::<Vec<_>>(),
            "clockOffsetSeconds": store.clock().offset_ms() as f64 / 1000.0,
        }))
    }

    /// The metrics in Prometheus text exposition format (version 0.0.4).
    /// `active` is how many jobs run on this instance now.
    pub(crate) async fn render(&self, store: &Store, active: usize) -> Result<String> {
        let WholeQueue {
            depth,
            orphans,
            live_instances,
            groups,
        } = self.whole_queue(store).await?;
        let per_name = self.per_name.lock().expect("metrics lock").clone();
        let claim = self.claim.lock().expect("metrics lock").clone();
        let mut out = String::new();
        let counters: [Counter; 5] = [
            (
                "monque_jobs_enqueued_total",
                "Jobs written by enqueue calls on this instance.",
                |m| m.enqueued,
            ),
            (
                "monque_jobs_started_total",
                "Job runs started on this instance.",
                |m| m.started,
            ),
            (
                "monque_jobs_completed_total",
                "Job runs that succeeded on this instance.",
                |m| m.completed,
            ),
            (
                "monque_jobs_failed_total",
                "Job runs that failed on this instance (retried or not).",
                |m| m.failed,
            ),
            (
                "monque_jobs_retried_total",
                "Failed runs put back to pending for a retry.",
                |m| m.retried,
            ),
        ];
        for (metric, help, value) in counters {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (name, m) in &per_name {
                let _ = writeln!(out, "{metric}{{name=\"{}\"}} {}", label(name), value(m));
            }
        }
        let metric = "monque_job_duration_seconds";
        let _ = writeln!(out, "# HELP {metric} Time from a run's start to its end, successful runs.\n# TYPE {metric} histogram");
        for (name, m) in &per_name {
            m.duration
                .render(&mut out, metric, &format!("name=\"{}\"", label(name)));
        }
        let metric = "monque_claim_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {metric} Round trip of one claim query.\n# TYPE {metric} histogram"
        );
        claim.render(&mut out, metric, "");
        let _ = writeln!(
            out,
            "# HELP monque_active_jobs Jobs running on this instance now.\n# TYPE monque_active_jobs gauge\nmonque_active_jobs {}",
            active
        );
        let _ = writeln!(
            out,
            "# HELP monque_queue_depth Jobs in the queue per name and status, whole queue (every instance reports it: aggregate with max, not sum; cached up to {}s).\n# TYPE monque_queue_depth gauge",
            DEPTH_MAX_AGE.as_secs()
        );
        for (name, status, count) in depth {
            let _ = writeln!(
                out,
                "monque_queue_depth{{name=\"{}\",status=\"{}\"}} {count}",
                label(&name),
                label(&status)
            );
        }
        let _ = writeln!(
            out,
            "# HELP monque_orphaned_jobs Due pending jobs whose name no live instance handles, whole queue (aggregate with max).\n# TYPE monque_orphaned_jobs gauge"
        );
        for o in &orphans {
            let _ = writeln!(
                out,
                "monque_orphaned_jobs{{name=\"{}\"}} {}",
                label(&o.name),
                o.count
            );
        }
        if !groups.is_empty() {
            let _ = writeln!(
                out,
                "# HELP monque_groups_due Groups with due work per name, whole queue (aggregate with max).\n# TYPE monque_groups_due gauge"
            );
            for (name, due, _) in &groups {
                let _ = writeln!(out, "monque_groups_due{{name=\"{}\"}} {due}", label(name));
            }
            let _ = writeln!(
                out,
                "# HELP monque_groups_paused Paused groups per name, whole queue (aggregate with max).\n# TYPE monque_groups_paused gauge"
            );
            for (name, _, paused) in &groups {
                let _ = writeln!(
                    out,
                    "monque_groups_paused{{name=\"{}\"}} {paused}",
                    label(name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP monque_live_instances Started instances that heartbeated within a lease.\n# TYPE monque_live_instances gauge\nmonque_live_instances {live_instances}"
        );
        let _ = writeln!(
            out,
            "# HELP monque_clock_offset_seconds The server's clock minus this machine's, as last measured (every time the queue compares uses the server's).\n# TYPE monque_clock_offset_seconds gauge\nmonque_clock_offset_seconds {}",
            store.clock().offset_ms() as f64 / 1000.0
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut h = Histogram::default();
        h.observe(0.004);
        h.observe(0.2);
        h.observe(100.0);
        let mut out = String::new();
        h.render(&mut out, "m", "name=\"a\"");
        assert!(
            out.contains("m_bucket{name=\"a\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("m_bucket{name=\"a\",le=\"0.25\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("m_bucket{name=\"a\",le=\"60\"} 2\n"), "{out}");
        assert!(
            out.contains("m_bucket{name=\"a\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("m_count{name=\"a\"} 3\n"), "{out}");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
