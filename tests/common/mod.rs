//! Shared helpers: each test gets its own database on the server named by MONGODB_URI
//! (`npm test` starts the embedded one) and drops it at the end.
#![allow(dead_code)]

use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, Document};
use monque::{Job, Monque, MonqueOptions};

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

pub async fn count(q: &Monque, filter: Document) -> u64 {
    q.collection().count_documents(filter).await.unwrap()
}
