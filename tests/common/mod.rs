//! Shared helpers: each test gets its own database on the server named by MONGODB_URI
//! (`npm test` starts the embedded one) and drops it at the end.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, Document};
use monque::{Event, HandlerError, Job, JobContext, Monque, MonqueOptions, WorkerOptions};

pub fn uri() -> String {
    std::env::var("MONGODB_URI").expect(
        "MONGODB_URI is not set: run `npm test` (starts the embedded server) or `eval $(scripts/test-server.sh start)` first",
    )
}

/// Options tuned for fast tests: short polls and leases.
pub fn fast_options() -> MonqueOptions {
    MonqueOptions {
        poll_interval: Duration::from_millis(50),
        lease_duration: Duration::from_millis(1500),
        heartbeat_interval: Duration::from_millis(300),
        shutdown_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// `fast_options()` with retries due within milliseconds.
pub fn quick_retries() -> MonqueOptions {
    MonqueOptions {
        backoff: monque::Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
            jitter: 0.0,
        },
        ..fast_options()
    }
}

/// Every job of the queue, up to 1,000, in creation order.
pub async fn all_jobs(q: &Monque) -> Vec<Job> {
    q.get_jobs(monque::JobQuery {
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(test: &str) -> TestDb {
        TestDb {
            name: format!("monque_rs_{test}_{}", ObjectId::new().to_hex()),
        }
    }

    pub async fn queue(&self, options: MonqueOptions) -> Monque {
        let q = Monque::connect(
            &uri(),
            MonqueOptions {
                database: Some(self.name.clone()),
                ..options
            },
        )
        .await
        .expect("connect");
        q.initialize().await.expect("initialize");
        q
    }

    pub async fn drop_db(self, q: &Monque) {
        let client = mongodb::Client::with_uri_str(uri()).await.unwrap();
        client.database(&self.name).drop().await.unwrap();
        let _ = q;
    }
}

pub async fn get(q: &Monque, id: ObjectId) -> Job {
    let doc: Document = q
        .collection()
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .expect("job exists");
    mongodb::bson::from_document(doc).unwrap()
}

/// Polls `check` every 20 ms until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The queue's uniqueKey lock collection (`<collection>_unique`).
pub fn locks(q: &Monque) -> mongodb::Collection<Document> {
    let jobs = q.collection();
    jobs.client()
        .database(&jobs.namespace().db)
        .collection(&format!("{}_unique", jobs.name()))
}

pub async fn count(q: &Monque, filter: Document) -> u64 {
    q.collection().count_documents(filter).await.unwrap()
}

/// Counts events: `pick` says how much each event adds (0 ignores it).
pub fn count_events(
    q: &Monque,
    pick: impl Fn(&Event) -> usize + Send + Sync + 'static,
) -> Arc<AtomicUsize> {
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    q.on_event(move |e| {
        c.fetch_add(pick(e), Ordering::SeqCst);
    });
    counter
}

/// Registers a handler for `name` that works for `work`, then counts the run.
pub fn counting_worker(
    q: &Monque,
    name: &str,
    work: Duration,
    opts: WorkerOptions,
) -> Arc<AtomicUsize> {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let handler = move |_ctx: JobContext| {
        let runs = r.clone();
        async move {
            tokio::time::sleep(work).await;
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(())
        }
    };
    q.register(name, handler, opts).unwrap();
    runs
}

pub fn stale_recovered(e: &Event) -> usize {
    match e {
        Event::StaleRecovered { count } => *count as usize,
        _ => 0,
    }
}
