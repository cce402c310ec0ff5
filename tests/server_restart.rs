//! The server goes away mid-run and comes back: the outage is reported once when it
//! starts and once when it ends (not as a `job:error` per poll), `is_healthy()` says so
//! at once, and workers reconnect by themselves and finish every job. Runs its own copy of the embedded server (path in
//! MONQUE_SERVER_BIN, set by `npm test`) so it can kill and restart it.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mongodb::bson::doc;
use monque::{Event, Monque, MonqueOptions, NewJob, WorkerOptions};
use serde_json::json;

struct Server {
    bin: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--cache-size",
                "64M",
                "--storage-path",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start on port {}", self.port);
    }

    /// Stops the server by PID with SIGTERM, as an operator or orchestrator would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            if wait_exit(&mut child, Duration::from_secs(5)).is_none() {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server of this test's own on a free port, started.
fn own_server() -> (Server, String) {
    let bin = std::env::var("MONQUE_SERVER_BIN").expect("MONQUE_SERVER_BIN is set by `npm test`");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("monque-restart-{port}"));
    let mut server = Server {
        bin,
        port,
        dir,
        child: None,
    };
    server.start();
    let uri = format!("mongodb://127.0.0.1:{port}/restart?directConnection=true");
    (server, uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_server_restart() {
    let (mut server, uri) = own_server();
    let opts = MonqueOptions {
        server_selection_timeout: Duration::from_millis(800),
        ..fast_options()
    };
    let q = Monque::connect(&uri, opts).await.unwrap();
    q.initialize().await.unwrap();
    // 400 ms runs, 5 at a time: when the server dies, 5 jobs are mid-run.
    let done = counting_worker(
        &q,
        "job",
        Duration::from_millis(400),
        WorkerOptions::default(),
    );
    // Claim and heartbeat failures (no job attached) used to come one per poll.
    let storm = count_events(&q, |e| {
        matches!(
            e,
            Event::JobError {
                code: "CONNECTION_ERROR",
                job: None,
                ..
            }
        ) as usize
    });
    let unreachable = count_events(&q, |e| {
        matches!(e, Event::ServerUnreachable { .. }) as usize
    });
    let downtimes = Arc::new(Mutex::new(Vec::new()));
    {
        let downtimes = downtimes.clone();
        q.on_event(move |e| {
            if let Event::ServerReachable { down_for } = e {
                downtimes.lock().unwrap().push(*down_for);
            }
        });
    }
    q.start().unwrap();
    let first: Vec<NewJob> = (0..10)
        .map(|i| NewJob {
            name: "job".into(),
            data: json!(i),
            options: Default::default(),
        })
        .collect();
    q.enqueue_many(first).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "first 5 done, the next 5 running",
        || async { done.load(Ordering::SeqCst) >= 5 },
    )
    .await;

    server.kill();
    let killed = std::time::Instant::now();
    // Enqueues during the outage fail with a typed error within the selection timeout.
    let started = std::time::Instant::now();
    let err = q.now("job", json!("during")).await.unwrap_err();
    assert_eq!(err.code(), "CONNECTION_ERROR");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    eventually(Duration::from_secs(10), "server:unreachable", || async {
        unreachable.load(Ordering::SeqCst) > 0
    })
    .await;
    let asked = std::time::Instant::now();
    assert!(!q.is_healthy().await, "unhealthy during the outage");
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "at once, not after a ping times out: {:?}",
        asked.elapsed()
    );

    // Back on the same data dir and port 2 s after it went away.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(killed.elapsed())).await;
    server.start();
    for i in 10..15 {
        q.now("job", json!(i)).await.expect("enqueue after restart");
    }
    // Runs cut by the outage could not write their result; their jobs come back after
    // the lease and run again.
    eventually(Duration::from_secs(20), "all 15 completed", || async {
        q.collection()
            .count_documents(doc! { "status": "completed" })
            .await
            .unwrap_or(0)
            == 15
    })
    .await;
    assert!(done.load(Ordering::SeqCst) >= 15);
    let completed = q
        .collection()
        .count_documents(doc! { "status": "completed" })
        .await
        .unwrap();
    assert_eq!(
        completed, 15,
        "data survived the restart and every job completed"
    );
    assert_eq!(
        unreachable.load(Ordering::SeqCst),
        1,
        "the outage reported once"
    );
    assert_eq!(storm.load(Ordering::SeqCst), 0, "no job:error per poll");
    let downtimes = downtimes.lock().unwrap().clone();
    assert_eq!(downtimes.len(), 1, "its end reported once");
    assert!(
        downtimes[0] >= Duration::from_millis(1500) && downtimes[0] < Duration::from_secs(20),
        "down for {:?}",
        downtimes[0]
    );
    assert!(q.is_healthy().await);
    q.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_from_the_server_longer_than_its_lease_is_aborted_by_then() {
    let (mut server, uri) = own_server();
    let opts = MonqueOptions {
        server_selection_timeout: Duration::from_millis(800),
        ..fast_options()
    };
    let lease = opts.lease_duration;
    let q = Monque::connect(&uri, opts).await.unwrap();
    q.initialize().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let runs = runs.clone();
        q.register(
            "long",
            move |ctx: monque::JobContext| {
                let (tx, run) = (tx.clone(), runs.fetch_add(1, Ordering::SeqCst));
                async move {
                    if run == 0 {
                        tx.send(None).unwrap();
                        ctx.signal.aborted().await;
                        tx.send(Some((ctx.signal.reason(), std::time::Instant::now())))
                            .unwrap();
                    }
                    Ok::<_, monque::HandlerError>(())
                }
            },
            WorkerOptions::default(),
        )
        .unwrap();
    }
    q.start().unwrap();
    let job = q.now("long", json!({})).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), None, "running");
    server.kill();
    // No renewal can land now (one may have landed while the server shut down): by the
    // end of its lease the run is told to stop, so it never runs beside the one another
    // instance could start after that.
    let killed = std::time::Instant::now();
    let (reason, aborted_at) = tokio::time::timeout(lease * 3, rx.recv())
        .await
        .expect("aborted while the server was still away")
        .unwrap()
        .unwrap();
    assert_eq!(reason, Some(monque::AbortReason::LeaseLost));
    let after_kill = aborted_at.saturating_duration_since(killed);
    assert!(
        after_kill <= lease + Duration::from_millis(700),
        "aborted {after_kill:?} after the server went away, lease {lease:?}"
    );
    server.start();
    eventually(
        Duration::from_secs(20),
        "recovered and run again",
        || async {
            q.get_job(job.id)
                .await
                .ok()
                .flatten()
                .is_some_and(|j| j.status == monque::JobStatus::Completed)
        },
    )
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    q.stop(None).await.unwrap();
}
