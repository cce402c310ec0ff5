//! Groups from Rust, against the server: two instances (as two processes would) share a
//! `group_concurrency` cap and take turns across groups; a paused group waits; a
//! shutdown hands a group's running jobs back with their slots.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, fast_options, TestDb};
use monque::{EnqueueOptions, HandlerError, JobContext, NewJob, WorkerOptions};
use serde_json::json;

fn in_group(name: &str, group: &str, i: usize) -> NewJob {
    NewJob {
        name: name.into(),
        data: json!({ "i": i }),
        options: EnqueueOptions {
            group: Some(group.into()),
            ..Default::default()
        },
    }
}

/// Jobs of each group running now, and the most seen at once.
#[derive(Default)]
struct Overlap {
    now: HashMap<String, usize>,
    peak: HashMap<String, usize>,
    order: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_group_cap_and_take_turns_across_groups() {
    let db = TestDb::new("groups_cap");
    let a = db.queue(fast_options()).await;
    let b = db.queue(fast_options()).await;
    let seen = Arc::new(Mutex::new(Overlap::default()));
    for q in [&a, &b] {
        let seen = seen.clone();
        q.register(
            "sync",
            move |ctx: JobContext| {
                let seen = seen.clone();
                async move {
                    let group = ctx.job.group.clone().unwrap_or_default();
                    {
                        let mut s = seen.lock().unwrap();
                        let n = s.now.entry(group.clone()).or_default();
                        *n += 1;
                        let n = *n;
                        let peak = s.peak.entry(group.clone()).or_default();
                        *peak = (*peak).max(n);
                        s.order.push(group.clone());
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    *seen.lock().unwrap().now.get_mut(&group).unwrap() -= 1;
                    Ok::<_, HandlerError>(())
                }
            },
            WorkerOptions {
                concurrency: Some(4),
                group_concurrency: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    }
    // A big group written first, then three small ones.
    let mut jobs: Vec<NewJob> = (0..20).map(|i| in_group("sync", "big", i)).collect();
    for g in ["s1", "s2", "s3"] {
        jobs.extend((0..2).map(|i| in_group("sync", g, i)));
    }
    a.enqueue_many(jobs).await.unwrap();
    a.start().unwrap();
    b.start().unwrap();
    eventually(Duration::from_secs(20), "all 26 jobs", || async {
        a.queue_stats(Some("sync")).await.unwrap().completed == 26
    })
    .await;
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.order.len(), 26, "each job ran once");
        for (group, peak) in &s.peak {
            assert!(*peak <= 2, "group {group} had {peak} running at once");
        }
        // Every small group started before big's 8th start (big alone would run 20 first).
        for g in ["s1", "s2", "s3"] {
            let first = s.order.iter().position(|x| x == g).unwrap();
            let big_before = s.order[..first].iter().filter(|x| *x == "big").count();
            assert!(big_before < 8, "{g} waited for {big_before} of big's jobs");
        }
    }
    // A run's slot goes back right after its end is written.
    eventually(Duration::from_secs(5), "every slot back", || async {
        a.groups("sync")
            .await
            .unwrap()
            .iter()
            .all(|g| g.running == 0)
    })
    .await;
    a.stop(None).await.unwrap();
    b.stop(None).await.unwrap();
    db.drop_db(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_group_waits_and_a_shutdown_hands_running_jobs_back_with_their_slots() {
    let db = TestDb::new("groups_pause");
    let q = db.queue(fast_options()).await;
    q.register(
        "slow",
        |ctx: JobContext| async move {
            // Runs until the shutdown aborts it.
            ctx.signal.aborted().await;
            Ok::<_, HandlerError>(())
        },
        WorkerOptions {
            concurrency: Some(4),
            group_concurrency: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    q.pause_group("slow", "held").await.unwrap();
    let jobs = (0..2)
        .map(|i| in_group("slow", "held", i))
        .chain((0..5).map(|i| in_group("slow", "open", i)))
        .collect();
    q.enqueue_many(jobs).await.unwrap();
    q.start().unwrap();
    eventually(
        Duration::from_secs(10),
        "the open group at its cap",
        || async { q.group_stats("slow", "open").await.unwrap().processing == 3 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let groups = q.groups("slow").await.unwrap();
    let held = groups.iter().find(|g| g.group == "held").unwrap();
    let open = groups.iter().find(|g| g.group == "open").unwrap();
    assert!(held.paused);
    assert_eq!((held.counts.pending, held.running), (2, 0));
    assert_eq!((open.counts.processing, open.running), (3, 3));
    assert!(open.oldest_due.is_some());
    let handed_back = q.stop(Some(Duration::from_millis(100))).await.unwrap();
    assert_eq!(handed_back, 3);
    let open = q
        .groups("slow")
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.group == "open")
        .unwrap();
    assert_eq!((open.counts.pending, open.running), (5, 0));
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_in_a_group_runs_in_it_and_can_leave_it() {
    let db = TestDb::new("groups_schedule");
    let q = db.queue(fast_options()).await;
    let groups_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = groups_seen.clone();
    q.register(
        "tick",
        move |ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(ctx.job.group.clone());
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions {
            group_concurrency: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let in_tenant = monque::ScheduleOptions {
        group: Some("tenant-7".into()),
        ..Default::default()
    };
    let scheduled = q
        .every(Duration::from_secs(1), "tick", json!({}), in_tenant.clone())
        .await
        .unwrap();
    assert_eq!(scheduled.group.as_deref(), Some("tenant-7"));
    // Scheduling again with the same options changes nothing.
    let again = q
        .every(Duration::from_secs(1), "tick", json!({}), in_tenant)
        .await
        .unwrap();
    assert_eq!(again.id, scheduled.id);
    q.start().unwrap();
    eventually(Duration::from_secs(10), "two runs in the group", || async {
        groups_seen.lock().unwrap().len() >= 2
    })
    .await;
    assert!(groups_seen
        .lock()
        .unwrap()
        .iter()
        .all(|g| g.as_deref() == Some("tenant-7")));
    let tenant = q.groups("tick").await.unwrap();
    assert_eq!(tenant.len(), 1);
    assert_eq!(tenant[0].group, "tenant-7");
    // Scheduled again without a group: its runs leave the group.
    let left = q
        .every(
            Duration::from_secs(1),
            "tick",
            json!({}),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(left.id, scheduled.id);
    assert_eq!(left.group, None);
    let before = groups_seen.lock().unwrap().len();
    eventually(Duration::from_secs(10), "an ungrouped run", || async {
        groups_seen.lock().unwrap()[before..]
            .iter()
            .any(Option::is_none)
    })
    .await;
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

/// A collection of `q` beside its jobs (`<collection>_<suffix>`).
fn other_collection(
    q: &monque::Monque,
    suffix: &str,
) -> mongodb::Collection<mongodb::bson::Document> {
    let jobs = q.collection();
    jobs.client()
        .database(&jobs.namespace().db)
        .collection(&format!("{}_{suffix}", jobs.name()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_an_idle_tenants_group_and_window_and_its_jobs_still_run() {
    use mongodb::bson::{doc, DateTime};
    let db = TestDb::new("groups_prune");
    let q = db
        .queue(monque::MonqueOptions {
            job_retention: monque::JobRetention {
                completed: Some(Duration::from_millis(1)),
                ..Default::default()
            },
            // The test sweeps when it wants to (purge_expired).
            retention_interval: Duration::from_secs(3600),
            ..fast_options()
        })
        .await;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = runs.clone();
    q.register(
        "sync",
        move |ctx: JobContext| {
            let seen = seen.clone();
            async move {
                let group = ctx.job.group.clone().unwrap_or_default();
                let first = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(group.clone());
                    seen.iter().filter(|g| **g == group).count() == 1
                };
                if group == "broke" && first {
                    return Err(HandlerError::permanent("tenant misconfigured"));
                }
                Ok::<_, HandlerError>(())
            }
        },
        WorkerOptions {
            group_concurrency: Some(1),
            group_limiter: Some(monque::RateLimit {
                max: 100,
                duration: Duration::from_secs(1),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    q.start().unwrap();
    // "broke"'s job fails for good on its first run; retention keeps failed jobs.
    let jobs = vec![
        in_group("sync", "gone", 0),
        in_group("sync", "recent", 1),
        in_group("sync", "broke", 2),
    ];
    q.enqueue_many(jobs).await.unwrap();
    let groups = other_collection(&q, "groups");
    // All ran, and the claims found their groups empty since.
    eventually(Duration::from_secs(10), "every group drained", || async {
        groups
            .count_documents(doc! { "idleSince": { "$exists": true }, "due": { "$exists": false }, "running": 0_i64 })
            .await
            .unwrap()
            == 3
    })
    .await;
    // "gone" and "broke" went idle two hours ago, "recent" a minute ago (as if the
    // clock had moved on).
    let ago = |ms: i64| DateTime::from_millis(DateTime::now().timestamp_millis() - ms);
    for (group, idle) in [
        ("gone", ago(2 * 3_600_000)),
        ("broke", ago(2 * 3_600_000)),
        ("recent", ago(60_000)),
    ] {
        groups
            .update_one(
                doc! { "group": group },
                doc! { "$set": { "idleSince": idle } },
            )
            .await
            .unwrap();
    }
    // So did their rate-limit windows: "gone"'s two hours ago.
    let windows = other_collection(&q, "rate_limits");
    windows
        .update_one(
            doc! { "_id": "sync\0gone" },
            doc! { "$set": { "endsAt": ago(2 * 3_600_000) } },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        q.purge_expired().await.unwrap(),
        2,
        "the completed jobs expired"
    );
    assert_eq!(
        groups.count_documents(doc! {}).await.unwrap(),
        1,
        "only recent's document is left"
    );
    let window_of = |group: &'static str| {
        let windows = windows.clone();
        async move {
            windows
                .count_documents(doc! { "_id": format!("sync\0{group}") })
                .await
                .unwrap()
        }
    };
    assert_eq!((window_of("gone").await, window_of("recent").await), (0, 1));
    let left: Vec<String> = q
        .groups("sync")
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.group)
        .collect();
    assert_eq!(
        left,
        ["broke", "recent"],
        "gone went; broke is listed by its failed job"
    );
    // The broken tenant is fixed: a bulk retry by group makes its document again and
    // its job runs (a retry that only marked existing documents due would leave it).
    let broke = monque::JobSelector {
        name: Some("sync".into()),
        group: Some("broke".into()),
        ..Default::default()
    };
    assert_eq!(
        q.retry_jobs(&broke, Some(Duration::from_millis(1)))
            .await
            .unwrap(),
        1
    );
    eventually(Duration::from_secs(10), "the retried job ran", || async {
        q.group_stats("sync", "broke").await.unwrap().completed == 1
    })
    .await;
    // Its next job makes it again and runs.
    q.enqueue_many(vec![in_group("sync", "gone", 2)])
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the tenant's next job ran",
        || async { runs.lock().unwrap().iter().filter(|g| *g == "gone").count() == 2 },
    )
    .await;
    assert_eq!(q.groups("sync").await.unwrap().len(), 3);
    assert_eq!(window_of("gone").await, 1, "its limiter counts again");
    q.stop(None).await.unwrap();
    db.drop_db(&q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_jobs_can_be_listed_cancelled_and_retried_alone() {
    use mongodb::bson::doc;
    use monque::{JobQuery, JobSelector, JobStatus};
    let db = TestDb::new("groups_select");
    let q = db.queue(fast_options()).await;
    let mut jobs: Vec<NewJob> = (0..3).map(|i| in_group("sync", "acme", i)).collect();
    jobs.extend((0..2).map(|i| in_group("sync", "globex", i)));
    jobs.push(in_group("report", "acme", 0));
    jobs.push(NewJob {
        name: "sync".into(),
        data: json!({}),
        options: Default::default(),
    });
    q.enqueue_many(jobs).await.unwrap();
    let select = |name: Option<&str>, group: &str| JobSelector {
        name: name.map(Into::into),
        group: Some(group.into()),
        ..Default::default()
    };
    let listed = |selector: JobSelector| {
        let q = q.clone();
        async move {
            q.get_jobs(JobQuery {
                selector,
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    // Across names, then of one name.
    let acme = listed(select(None, "acme")).await;
    assert_eq!(acme.len(), 4);
    assert!(acme.iter().all(|j| j.group.as_deref() == Some("acme")));
    assert_eq!(listed(select(Some("sync"), "acme")).await.len(), 3);

    // Cancel one tenant of one name: the others are untouched.
    assert_eq!(
        q.cancel_jobs(&select(Some("sync"), "acme")).await.unwrap(),
        3
    );
    let stats = |group: &'static str| {
        let q = q.clone();
        async move { q.group_stats("sync", group).await.unwrap() }
    };
    assert_eq!(
        (stats("acme").await.cancelled, stats("acme").await.pending),
        (3, 0)
    );
    assert_eq!(stats("globex").await.pending, 2);
    assert_eq!(
        listed(select(Some("report"), "acme")).await[0].status,
        JobStatus::Pending
    );

    // Retry them: only that tenant's group is made due (both were settled meanwhile).
    let groups = other_collection(&q, "groups");
    groups
        .update_many(doc! {}, doc! { "$unset": { "due": "" } })
        .await
        .unwrap();
    let retried = q
        .retry_jobs(
            &select(Some("sync"), "acme"),
            Some(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    assert_eq!(retried, 3);
    assert_eq!(stats("acme").await.pending, 3);
    let due = |group: &'static str| {
        let groups = groups.clone();
        async move {
            groups
                .count_documents(
                    doc! { "name": "sync", "group": group, "due": { "$exists": true } },
                )
                .await
                .unwrap()
        }
    };
    assert_eq!((due("acme").await, due("globex").await), (1, 0));

    // A bad group is refused and nothing is touched.
    let err = q.cancel_jobs(&select(None, "")).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_OPTION");
    assert_eq!(stats("acme").await.pending, 3);
    db.drop_db(&q).await;
}
