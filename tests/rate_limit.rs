//! Rate limits against a real server: two instances share one limit through MongoDB.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use monque::{HandlerError, JobContext, MonqueOptions, NewJob, RateLimit, WorkerOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_rate_limit() {
    let db = TestDb::new("rate_limit");
    let limit = RateLimit {
        max: 4,
        duration: Duration::from_millis(250),
    };
    let starts: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let mut queues = Vec::new();
    for instance in 0..2 {
        let q = db.queue(fast_options()).await;
        let s = starts.clone();
        q.register(
            "limited",
            move |_ctx: JobContext| {
                let starts = s.clone();
                async move {
                    starts.lock().unwrap().push((Instant::now(), instance));
                    Ok::<_, HandlerError>(())
                }
            },
            WorkerOptions {
                concurrency: Some(8),
                limiter: Some(limit),
                ..Default::default()
            },
        )
        .unwrap();
        queues.push(q);
    }
    let jobs = (0..120)
        .map(|i| NewJob {
            name: "limited".into(),
            data: json!({ "i": i }),
            options: Default::default(),
        })
        .collect();
    queues[0].enqueue_many(jobs).await.unwrap();
    for q in &queues {
        q.start().unwrap();
    }
    let span = Duration::from_secs(3);
    eventually(Duration::from_secs(10), "3 s of starts", || async {
        let starts = starts.lock().unwrap();
        starts
            .first()
            .is_some_and(|(first, _)| first.elapsed() > span)
    })
    .await;
    for q in &queues {
        q.stop(None).await.unwrap();
    }

    let starts = starts.lock().unwrap().clone();
    let first = starts[0].0;
    let within: Vec<_> = starts.iter().filter(|(at, _)| *at - first < span).collect();
    // 12 windows of 250 ms fit in 3 s: 48 starts, give or take the drift of window
    // starts (a window begins when a worker asks after the last one ended; on a loaded
    // machine that drift can cost two windows of the twelve, hence 3/4 at least).
    let expected = (span.as_millis() / limit.duration.as_millis()) as usize * limit.max as usize;
    assert!(
        within.len() <= expected + limit.max as usize && within.len() * 4 >= expected * 3,
        "{} starts in {span:?}, expected about {expected}",
        within.len()
    );
    eprintln!(
        "rate limit: {} starts in {span:?} (expected about {expected})",
        within.len()
    );
    // A fixed window never lets more than 2 × max start within one window length.
    for (i, (at, _)) in starts.iter().enumerate() {
        let burst = starts[i..]
            .iter()
            .take_while(|(later, _)| *later - *at < limit.duration)
            .count();
        assert!(
            burst <= 2 * limit.max as usize,
            "{burst} starts within one window"
        );
    }
    assert!(
        within.iter().any(|(_, i)| *i == 0) && within.iter().any(|(_, i)| *i == 1),
        "both instances started jobs"
    );
    db.drop_db(&queues[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_limiter_is_refused() {
    let db = TestDb::new("rate_limit_bad");
    let q = db.queue(MonqueOptions::default()).await;
    for limit in [
        RateLimit {
            max: 0,
            duration: Duration::from_secs(1),
        },
        RateLimit {
            max: 1,
            duration: Duration::ZERO,
        },
    ] {
        let opts = WorkerOptions {
            limiter: Some(limit),
            ..Default::default()
        };
        let err = q
            .register(
                "x",
                |_ctx: JobContext| async { Ok::<_, HandlerError>(()) },
                opts,
            )
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_OPTION");
    }
    db.drop_db(&q).await;
}
