//! The storage layer against the server alone: no workers, no events, no handle. Each
//! test gets its own database on the server named by `MONGODB_URI` (`npm test` starts
//! the embedded one) and drops it.

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};

use super::{new_job_document, Completion, Failure, Settled, Store, Upserted};
use crate::error::Error;
use crate::job::Job;
use crate::new_job::{EnqueueOptions, NewJob};
use crate::query::{JobQuery, JobSelector};
use crate::schedule::{Repeat, ScheduleOptions};
use crate::status::JobStatus;

const LEASE: Duration = Duration::from_secs(30);

struct TestStore {
    store: Store,
    db: mongodb::Database,
}

impl TestStore {
    async fn new(test: &str) -> TestStore {
        let uri = std::env::var("MONGODB_URI").expect(
            "MONGODB_URI is not set: run `npm test` (starts the embedded server) or `eval $(scripts/test-server.sh start)` first",
        );
        let client = mongodb::Client::with_uri_str(uri).await.expect("client");
        let db = client.database(&format!("monque_store_{test}_{}", ObjectId::new()));
        let store = Store::new(
            db.clone(),
            "jobs",
            "test-instance".into(),
            LEASE,
            Duration::from_secs(5),
            super::Durability::default(),
        );
        store.ensure_indexes().await.expect("indexes");
        TestStore { store, db }
    }

    async fn drop(self) {
        self.db.drop().await.expect("drop test database");
    }
}

fn new_job(name: &str, options: EnqueueOptions) -> NewJob {
    NewJob {
        name: name.into(),
        data: serde_json::json!({ "n": 1 }),
        options,
    }
}

/// Inserts a plain job and returns it.
async fn insert(store: &Store, name: &str, options: EnqueueOptions) -> Job {
    let doc = new_job_document(&new_job(name, options), 1 << 20, DateTime::now()).unwrap();
    store.insert(&doc).await.unwrap();
    Job::from_document(doc).unwrap()
}

#[tokio::test]
async fn claims_take_the_best_due_jobs_under_one_fencing_token() {
    let t = TestStore::new("claims").await;
    let s = &t.store;
    let low = insert(s, "mail", EnqueueOptions::default()).await;
    let high = insert(
        s,
        "mail",
        EnqueueOptions {
            priority: 5,
            ..Default::default()
        },
    )
    .await;
    let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 60_000);
    insert(
        s,
        "mail",
        EnqueueOptions {
            run_at: Some(later),
            ..Default::default()
        },
    )
    .await;
    insert(s, "other", EnqueueOptions::default()).await;

    let claimed = s.claim("mail", 10).await.unwrap();
    let ids: Vec<_> = claimed.jobs.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![high.id, low.id],
        "due jobs of the name, best first"
    );
    let claim = claimed.jobs[0].claim_id.unwrap();
    for job in &claimed.jobs {
        assert_eq!(job.status, JobStatus::Processing);
        assert_eq!(job.claim_id, Some(claim));
        assert_eq!(job.claimed_by.as_deref(), Some("test-instance"));
        assert!(job.lease_expires_at.is_some());
    }
    assert!(s.claim("mail", 10).await.unwrap().jobs.is_empty());
    t.drop().await;
}

#[tokio::test]
async fn outcome_writes_are_fenced_by_the_claim() {
    let t = TestStore::new("fenced").await;
    let s = &t.store;
    insert(s, "mail", EnqueueOptions::default()).await;
    let run = s.claim("mail", 1).await.unwrap().jobs.remove(0);
    // Another execution of the same job (as after a takeover): only it may write.
    let mut stale = run.clone();
    stale.claim_id = Some(ObjectId::new());
    let done = Completion {
        took: Duration::from_millis(5),
        span: None,
        result: None,
    };
    assert!(s.complete(&stale, done).await.unwrap().is_none());
    let failure = Failure {
        reason: "boom".into(),
        stack: Some("Error: boom\n    at handler".into()),
        took: Duration::from_millis(7),
        span: None,
        retry_at: Some(DateTime::now()),
    };
    let retried = s
        .fail(&run, &failure)
        .await
        .unwrap()
        .expect("its own claim");
    assert_eq!(retried.status, JobStatus::Pending);
    assert_eq!(retried.fail_count, 1);
    let stored = s.get_job(run.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Pending);
    assert_eq!(stored.claim_id, None);
    assert_eq!(stored.fail_reason.as_deref(), Some("boom"));
    assert_eq!(
        stored.fail_stack.as_deref(),
        Some("Error: boom\n    at handler")
    );
    assert_eq!(stored.attempts.len(), 1, "the failed run is in the history");
    assert_eq!(stored.attempts[0].duration_ms, 7);
    assert_eq!(stored.attempts[0].error.as_deref(), Some("boom"));
    // The old run's late completion lands nowhere.
    let late = Completion {
        took: Duration::from_millis(5),
        span: None,
        result: None,
    };
    assert!(s.complete(&run, late).await.unwrap().is_none());
    t.drop().await;
}

/// The commands a client sent, by name, with how many updates each `bulkWrite` carried.
#[derive(Default)]
struct Sent {
    commands: Vec<String>,
    bulk_sizes: Vec<usize>,
}

#[tokio::test]
async fn run_ends_ready_together_share_one_bulk_write_and_stay_fenced_one_by_one() {
    use mongodb::event::command::CommandEvent;
    use mongodb::event::EventHandler;
    use std::sync::{Arc, Mutex};

    let t = TestStore::new("batched").await;
    let sent = Arc::new(Mutex::new(Sent::default()));
    // The same database through a client that records what it sends.
    let mut options = mongodb::options::ClientOptions::parse(std::env::var("MONGODB_URI").unwrap())
        .await
        .unwrap();
    let record = sent.clone();
    options.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(started) = ev {
            let mut sent = record.lock().unwrap();
            if started.command_name == "bulkWrite" {
                let ops = started.command.get_array("ops").map_or(0, |a| a.len());
                sent.bulk_sizes.push(ops);
            }
            sent.commands.push(started.command_name);
        }
    }));
    let client = mongodb::Client::with_options(options).unwrap();
    let hello = client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .unwrap();
    let has_bulk_write = hello.get_i32("maxWireVersion").unwrap_or(0) >= 25; // 8.0
    let s = Store::new(
        client.database(t.db.name()),
        "jobs",
        "test-instance".into(),
        LEASE,
        Duration::from_secs(5),
        super::Durability::default(),
    );
    for _ in 0..4 {
        insert(&t.store, "mail", EnqueueOptions::default()).await;
    }
    let jobs = s.claim("mail", 4).await.unwrap().jobs;
    assert_eq!(jobs.len(), 4);
    // The first lost its lease and was claimed again elsewhere.
    let other_claim = ObjectId::new();
    t.db.collection::<mongodb::bson::Document>("jobs")
        .update_one(
            doc! { "_id": jobs[0].id },
            doc! { "$set": { "claimId": other_claim } },
        )
        .await
        .unwrap();
    *sent.lock().unwrap() = Sent::default();

    let done = || Completion {
        took: Duration::from_millis(3),
        span: None,
        result: None,
    };
    let failure = Failure {
        reason: "boom".into(),
        stack: None,
        took: Duration::from_millis(3),
        span: None,
        retry_at: Some(DateTime::now()),
    };
    let (lost, a, b, retried) = tokio::join!(
        s.complete(&jobs[0], done()),
        s.complete(&jobs[1], done()),
        s.complete(&jobs[2], done()),
        s.fail(&jobs[3], &failure),
    );
    assert!(
        lost.unwrap().is_none(),
        "the run that lost its lease writes nothing"
    );
    assert_eq!(a.unwrap().unwrap().status, JobStatus::Completed);
    assert_eq!(b.unwrap().unwrap().status, JobStatus::Completed);
    assert_eq!(retried.unwrap().unwrap().status, JobStatus::Pending);

    let first = t.store.get_job(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(
        first.status,
        JobStatus::Processing,
        "the other run keeps it"
    );
    assert_eq!(first.claim_id, Some(other_claim));
    for job in &jobs[1..3] {
        let stored = t.store.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(stored.status, JobStatus::Completed);
        assert_eq!(stored.claim_id, None);
    }
    let stored = t.store.get_job(jobs[3].id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.fail_count), (JobStatus::Pending, 1));

    let sent = std::mem::take(&mut *sent.lock().unwrap());
    if has_bulk_write {
        // The four run ends in one round trip; the refused one then looks again alone
        // (as a job with dependents, then reading its claim): two more.
        assert_eq!(sent.bulk_sizes, vec![4], "sent: {:?}", sent.commands);
        assert_eq!(sent.commands, vec!["bulkWrite", "update", "find"]);
    } else {
        assert_eq!(sent.commands.iter().filter(|c| *c == "update").count(), 5);
    }
    t.drop().await;
}

#[tokio::test]
async fn a_hand_back_releases_only_the_executions_still_held() {
    let t = TestStore::new("release").await;
    let s = &t.store;
    for _ in 0..3 {
        insert(s, "mail", EnqueueOptions::default()).await;
    }
    let jobs = s.claim("mail", 3).await.unwrap().jobs;
    assert_eq!(jobs.len(), 3);
    assert!(
        s.expired_leases(10).await.unwrap().is_empty(),
        "fresh leases"
    );
    // One of them lost its lease and was claimed again elsewhere.
    t.db.collection::<mongodb::bson::Document>("jobs")
        .update_one(
            doc! { "_id": jobs[0].id },
            doc! { "$set": { "claimId": ObjectId::new() } },
        )
        .await
        .unwrap();
    let executions: Vec<_> = jobs.iter().map(|j| (j.id, j.claim_id.unwrap())).collect();
    assert_eq!(s.renew_leases(&executions).await.unwrap(), 2);
    assert_eq!(s.release(&executions).await.unwrap(), 2);
    let first = s.get_job(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(
        first.status,
        JobStatus::Processing,
        "the other run keeps it"
    );
    for job in &jobs[1..] {
        let back = s.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(back.status, JobStatus::Pending);
        assert_eq!(back.claim_id, None);
    }
    t.drop().await;
}

#[tokio::test]
async fn an_active_unique_key_deduplicates_until_its_job_ends() {
    let t = TestStore::new("unique").await;
    let s = &t.store;
    let keyed = || EnqueueOptions {
        unique_key: Some("k".into()),
        ..Default::default()
    };
    let doc = |o| new_job_document(&new_job("mail", o), 1 << 20, DateTime::now()).unwrap();
    let (first, created) = s.enqueue_unique(doc(keyed())).await.unwrap();
    assert!(created);
    let (again, created) = s.enqueue_unique(doc(keyed())).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    let (cancelled_before, cancelled) = s.cancel(first.id).await.unwrap();
    assert_eq!(cancelled_before.status, JobStatus::Pending);
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    // Its lock is left behind (the caller frees it after aborting the run): the next
    // enqueue finds the holder finished and heals it.
    let (next, created) = s.enqueue_unique(doc(keyed())).await.unwrap();
    assert!(created, "a cancelled holder's key is taken by a new job");
    assert_ne!(next.id, first.id);
    t.drop().await;
}

#[tokio::test]
async fn waiting_jobs_settle_against_their_dependencies() {
    let t = TestStore::new("flows").await;
    let s = &t.store;
    let dep = insert(s, "a", EnqueueOptions::default()).await;
    let waiting = NewJob {
        name: "b".into(),
        data: serde_json::json!(null),
        options: EnqueueOptions {
            depends_on: vec![dep.id, dep.id],
            ..Default::default()
        },
    };
    let doc = new_job_document(&waiting, 1 << 20, DateTime::now()).unwrap();
    let id = doc.get_object_id("_id").unwrap();
    let deps = s
        .insert_waiting(&doc, &waiting.options.depends_on)
        .await
        .unwrap();
    assert_eq!(deps, vec![dep.id], "each dependency once");
    assert!(matches!(
        s.settle_one(id, &deps).await.unwrap(),
        Settled::Blocked
    ));
    let on_dep: Vec<_> = s.waiting_on(&[dep.id]).await.unwrap();
    assert_eq!(on_dep.len(), 1);
    assert_eq!(on_dep[0].0, id);
    let run = s.claim("a", 1).await.unwrap().jobs.remove(0);
    let done = Completion {
        took: Duration::from_millis(1),
        span: None,
        result: None,
    };
    let completed = s.complete(&run, done).await.unwrap().unwrap();
    assert!(completed.has_dependents, "the dependency was flagged");
    match s.settle_one(id, &deps).await.unwrap() {
        Settled::Pending(job) => assert_eq!(job.status, JobStatus::Pending),
        _ => panic!("a completed dependency frees the waiting job"),
    }
    assert!(matches!(
        s.settle_one(id, &deps).await.unwrap(),
        Settled::Gone
    ));
    let missing = s.insert_waiting(&doc, &[ObjectId::new()]).await;
    assert!(matches!(missing, Err(Error::InvalidDependency(_))));
    t.drop().await;
}

#[tokio::test]
async fn schedules_are_one_document_per_key() {
    let t = TestStore::new("schedules").await;
    let s = &t.store;
    let every = Repeat::every(Duration::from_secs(60)).unwrap();
    let upsert = |data: serde_json::Value| {
        s.upsert_schedule(
            "report",
            data,
            every.clone(),
            ScheduleOptions::default(),
            1 << 20,
        )
    };
    let (first, what) = upsert(serde_json::json!(1)).await.unwrap();
    assert_eq!(what, Upserted::Created);
    let (same, what) = upsert(serde_json::json!(1)).await.unwrap();
    assert_eq!((same.id, what), (first.id, Upserted::Unchanged));
    let (changed, what) = upsert(serde_json::json!(2)).await.unwrap();
    assert_eq!((changed.id, what), (first.id, Upserted::Updated));
    assert_eq!(changed.data, serde_json::json!(2));
    assert_eq!(s.list_schedules(Some("report")).await.unwrap().len(), 1);
    assert!(s.remove_schedule("report", None).await.unwrap());
    assert!(s.list_schedules(None).await.unwrap().is_empty());
    t.drop().await;
}

#[tokio::test]
async fn pauses_and_selectors() {
    let t = TestStore::new("pauses").await;
    let s = &t.store;
    s.pause(Some("mail")).await.unwrap();
    let paused = s.read_pauses().await.unwrap();
    assert!(paused.covers("mail") && !paused.covers("sms"));
    assert!(s.is_paused(Some("mail")).await.unwrap());
    s.resume(Some("mail")).await.unwrap();
    assert!(!s.read_pauses().await.unwrap().covers("mail"));

    insert(s, "mail", EnqueueOptions::default()).await;
    insert(s, "sms", EnqueueOptions::default()).await;
    let query = JobQuery {
        selector: JobSelector {
            name: Some("sms".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let found = s.get_jobs(query).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "sms");
    // A bulk change needs a selector: an empty one would touch every job.
    let everything = s.select(&JobSelector::default(), &[JobStatus::Pending]);
    assert!(matches!(everything, Err(Error::InvalidSelector(_))));
    let stats = s.queue_stats(None).await.unwrap();
    assert_eq!((stats.pending, stats.total), (2, 2));
    t.drop().await;
}

#[tokio::test]
async fn an_expired_lease_is_recovered_once_and_counted_only_while_still_expired() {
    let t = TestStore::new("stalls").await;
    let s = &t.store;
    insert(s, "mail", EnqueueOptions::default()).await;
    let run = s.claim("mail", 1).await.unwrap().jobs.remove(0);
    let jobs = t.db.collection::<mongodb::bson::Document>("jobs");
    let expire = |id| {
        jobs.update_one(
            doc! { "_id": id },
            doc! { "$set": { "leaseExpiresAt": DateTime::from_millis(DateTime::now().timestamp_millis() - 1000) } },
        )
    };
    expire(run.id).await.unwrap();
    let expired = s.expired_leases(10).await.unwrap();
    assert_eq!(expired.len(), 1);
    // Its worker renews just before the recovery writes: the guard keeps the job.
    s.renew_leases(&[(run.id, run.claim_id.unwrap())])
        .await
        .unwrap();
    assert!(!s.requeue_stalled(&expired[0]).await.unwrap());
    expire(run.id).await.unwrap();
    assert!(s.requeue_stalled(&expired[0]).await.unwrap());
    assert!(!s.requeue_stalled(&expired[0]).await.unwrap(), "once");
    let back = s.get_job(run.id).await.unwrap().unwrap();
    assert_eq!(
        (back.status, back.stall_count, back.claim_id),
        (JobStatus::Pending, 1, None)
    );
    t.drop().await;
}

fn in_group(group: &str) -> EnqueueOptions {
    EnqueueOptions {
        group: Some(group.into()),
        ..Default::default()
    }
}

async fn fair(s: &Store, max: usize, limits: super::GroupLimits) -> Vec<Job> {
    s.claim_fair("sync", max, limits, None)
        .await
        .unwrap()
        .claimed
        .jobs
}

fn groups_of(jobs: &[Job]) -> Vec<String> {
    let mut groups: Vec<_> = jobs.iter().filter_map(|j| j.group.clone()).collect();
    groups.sort();
    groups
}

#[tokio::test]
async fn group_claims_take_every_group_before_a_big_group_again() {
    let t = TestStore::new("groups").await;
    let s = &t.store;
    // "big" holds most of the backlog, written first.
    let big: Vec<_> = (0..30)
        .map(|_| {
            new_job_document(&new_job("sync", in_group("big")), 1 << 20, DateTime::now()).unwrap()
        })
        .collect();
    s.insert_many(big).await.unwrap();
    for g in ["a", "b", "c", "d"] {
        insert(s, "sync", in_group(g)).await;
    }
    let open = super::GroupLimits::default();
    // One round of 5 slots: one job from each of the 5 groups.
    let first = fair(s, 5, open).await;
    assert_eq!(groups_of(&first), ["a", "b", "big", "c", "d"]);
    // The small groups look due until a claim finds them empty (and settles them); the
    // slots they leave go to the group that filled its share, in the same round.
    let second = fair(s, 5, open).await;
    assert_eq!(groups_of(&second), ["big"; 5]);
    // A group alone with work gets every free slot.
    let third = fair(s, 5, open).await;
    assert_eq!(groups_of(&third), ["big"; 5]);
    let due_groups = s
        .groups
        .count_documents(doc! { "name": "sync", "due": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(due_groups, 1, "only big still has pending work");
    // A new job in an empty group makes it due again, and it goes first.
    insert(s, "sync", in_group("a")).await;
    let fourth = fair(s, 2, open).await;
    assert_eq!(groups_of(&fourth), ["a", "big"]);
    t.drop().await;
}

#[tokio::test]
async fn group_slots_cap_claims_and_come_back_once_per_run() {
    let t = TestStore::new("group_slots").await;
    let s = &t.store;
    for _ in 0..6 {
        insert(s, "sync", in_group("g")).await;
    }
    let capped = super::GroupLimits {
        concurrency: Some(2),
        limiter: None,
    };
    let running = |s: &Store| {
        let groups = s.groups.clone();
        async move {
            let g = groups
                .find_one(doc! { "name": "sync", "group": "g" })
                .await
                .unwrap()
                .unwrap();
            g.get_i64("running").unwrap()
        }
    };
    let first = fair(s, 5, capped).await;
    assert_eq!(first.len(), 2, "the cap, not the free slots");
    assert!(first.iter().all(|j| j.group_slot.as_deref() == Some("g")));
    assert_eq!(running(s).await, 2);
    assert!(fair(s, 5, capped).await.is_empty(), "full group is skipped");
    // A run's end gives its slot back, once: a second write of the same run is fenced off.
    let done = || Completion {
        took: Duration::from_millis(5),
        span: None,
        result: None,
    };
    assert!(s.complete(&first[0], done()).await.unwrap().is_some());
    assert!(s.complete(&first[0], done()).await.unwrap().is_none());
    assert_eq!(running(s).await, 1);
    // A cancel of a running job gives its slot back; its run's late end does not.
    s.cancel(first[1].id).await.unwrap();
    assert_eq!(running(s).await, 0);
    assert!(s.complete(&first[1], done()).await.unwrap().is_none());
    assert_eq!(running(s).await, 0);
    let next = fair(s, 5, capped).await;
    assert_eq!(next.len(), 2);
    // A lost count (a crash between a run's end and its slot's return) is set right by
    // the recount once the group has not been claimed from for a lease.
    s.groups
        .update_one(
            doc! { "name": "sync", "group": "g" },
            doc! { "$set": { "running": 2_i64, "servedAt": DateTime::from_millis(0) } },
        )
        .await
        .unwrap();
    s.complete(&next[0], done()).await.unwrap();
    s.groups
        .update_one(
            doc! { "name": "sync", "group": "g" },
            doc! { "$set": { "running": 2_i64 } },
        )
        .await
        .unwrap();
    assert_eq!(s.recount_groups().await.unwrap(), 1);
    assert_eq!(running(s).await, 1, "one job still holds a slot");
    t.drop().await;
}

#[tokio::test]
async fn a_group_noted_while_a_claim_settles_it_stays_due() {
    let t = TestStore::new("group_settle").await;
    let s = &t.store;
    let job = insert(s, "sync", in_group("g")).await;
    let read = s
        .groups
        .find_one(doc! { "name": "sync", "group": "g" })
        .await
        .unwrap()
        .unwrap();
    let noted = read.get("noted").cloned().unwrap();
    // A claim found the group empty (its one job was running) and is about to settle
    // it; meanwhile the job goes back to pending later than `due`, so the `$min` leaves
    // `due` as it was and only `noted` tells.
    let later = DateTime::from_millis(job.next_run_at.timestamp_millis() + 60_000);
    s.note_due(&[("sync".into(), "g".into(), later)])
        .await
        .unwrap();
    s.coll
        .update_one(
            doc! { "_id": job.id },
            doc! { "$set": { "status": "processing" } },
        )
        .await
        .unwrap();
    let due = read.get("due").cloned().unwrap();
    s.settle_due("sync", "g", noted, due).await.unwrap();
    let after = s
        .groups
        .find_one(doc! { "name": "sync", "group": "g" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.get_datetime("due").ok(),
        read.get_datetime("due").ok(),
        "the settle missed: the group still looks due"
    );
    t.drop().await;
}

async fn group_doc(s: &Store, group: &str) -> Option<Document> {
    s.groups
        .find_one(doc! { "name": "sync", "group": group })
        .await
        .unwrap()
}

#[tokio::test]
async fn only_idle_groups_are_pruned_and_come_back_with_their_next_job() {
    let t = TestStore::new("group_prune").await;
    let s = &t.store;
    for g in ["idle", "due", "held", "paused", "recent"] {
        insert(s, "sync", in_group(g)).await;
    }
    // Every group but "due" was drained an hour ago; "held" still holds a slot,
    // "recent" went idle a moment ago, "paused" is paused.
    s.coll
        .delete_many(doc! { "group": { "$ne": "due" } })
        .await
        .unwrap();
    let long_ago = DateTime::from_millis(DateTime::now().timestamp_millis() - 3_600_000);
    s.groups
        .update_many(
            doc! { "group": { "$ne": "due" } },
            doc! { "$unset": { "due": "" }, "$set": { "idleSince": long_ago } },
        )
        .await
        .unwrap();
    let set = |group: &'static str, update: Document| async move {
        s.groups
            .update_one(doc! { "group": group }, doc! { "$set": update })
            .await
            .unwrap();
    };
    set("held", doc! { "running": 1_i64 }).await;
    set("recent", doc! { "idleSince": DateTime::now() }).await;
    s.set_group_paused("sync", "paused", true).await.unwrap();

    let pruned = s.prune_idle_groups(Duration::from_secs(60)).await.unwrap();
    assert_eq!(pruned, 1);
    assert!(group_doc(s, "idle").await.is_none());
    for kept in ["due", "held", "paused", "recent"] {
        assert!(group_doc(s, kept).await.is_some(), "{kept} was kept");
    }

    // Its next job makes it again, due, and a fair claim takes it.
    let again = insert(s, "sync", in_group("idle")).await;
    let doc = group_doc(s, "idle").await.expect("made again");
    assert_eq!(doc.get_datetime("due").ok(), Some(&again.next_run_at));
    let claimed = fair(s, 4, super::GroupLimits::default()).await;
    assert!(claimed.iter().any(|j| j.id == again.id));
    t.drop().await;
}

#[tokio::test]
async fn a_settle_read_before_a_prune_misses_the_group_made_again() {
    let t = TestStore::new("group_prune_settle").await;
    let s = &t.store;
    let first = insert(s, "sync", in_group("g")).await;
    // A claim reads the group (noted 1, due), finds its job gone and no other pending,
    // and is slow to write that down.
    let read = group_doc(s, "g").await.unwrap();
    s.coll.delete_one(doc! { "_id": first.id }).await.unwrap();
    let guard = (
        read.get("noted").cloned().unwrap(),
        read.get("born").cloned().unwrap(),
    );
    let next = s.next_pending_at("sync", "g").await.unwrap();
    assert_eq!(next, None);
    // Meanwhile another claim settles it, retention prunes it, and a new job due at
    // the same moment makes it again: noted 1 and the same due once more.
    s.set_settled_due("sync", "g", guard.clone(), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(s.prune_idle_groups(Duration::ZERO).await.unwrap(), 1);
    let second = insert(
        s,
        "sync",
        EnqueueOptions {
            run_at: Some(first.next_run_at),
            ..in_group("g")
        },
    )
    .await;
    let again = group_doc(s, "g").await.unwrap();
    assert_eq!(
        (again.get("noted"), again.get("due")),
        (read.get("noted"), read.get("due"))
    );
    // The slow claim's write must not take the new job's due time away.
    s.set_settled_due("sync", "g", guard, next).await.unwrap();
    let after = group_doc(s, "g").await.unwrap();
    assert_eq!(
        after.get_datetime("due").ok(),
        Some(&second.next_run_at),
        "the new job's group is still due"
    );
    t.drop().await;
}

#[tokio::test]
async fn rate_limit_windows_that_ended_are_pruned_and_current_ones_kept() {
    use crate::options::RateLimit;
    let t = TestStore::new("window_prune").await;
    let s = &t.store;
    let per = |ms| RateLimit {
        max: 5,
        duration: Duration::from_millis(ms),
    };
    s.take_permits("ended", per(1), 5).await.unwrap();
    s.take_permits("current", per(3_600_000), 5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(s.prune_ended_windows(Duration::ZERO).await.unwrap(), 1);
    let left: Vec<_> = s
        .rate_limits
        .find(doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.get_str("_id").unwrap().to_owned())
        .collect();
    assert_eq!(left, vec!["current".to_string()]);
    // The full window that is still current still holds: nothing was reset.
    assert!(matches!(
        s.take_permits("current", per(3_600_000), 1).await.unwrap(),
        super::Permits::WaitUntil(_)
    ));
    // The pruned key starts a new window.
    assert!(matches!(
        s.take_permits("ended", per(3_600_000), 2).await.unwrap(),
        super::Permits::Granted { count: 2, .. }
    ));
    t.drop().await;
}

#[tokio::test]
async fn a_group_waiting_for_its_rate_limit_window_sits_out_the_rounds() {
    let t = TestStore::new("group_limited").await;
    let s = &t.store;
    for g in ["a", "b"] {
        for _ in 0..3 {
            insert(s, "sync", in_group(g)).await;
        }
    }
    let limited = super::GroupLimits {
        concurrency: None,
        limiter: Some(crate::options::RateLimit {
            max: 1,
            duration: Duration::from_secs(60),
        }),
    };
    let round = || s.claim_fair("sync", 1, limited, None);
    let first = round().await.unwrap().claimed.jobs;
    let second = round().await.unwrap().claimed.jobs;
    assert_eq!(groups_of(&[first, second].concat()), ["a", "b"]);
    // Both windows are full now: each group, when its turn comes, is held back until
    // its window ends and leaves the rounds meanwhile.
    let third = round().await.unwrap();
    assert!(third.claimed.jobs.is_empty() && third.wait_until.is_some());
    let fourth = round().await.unwrap();
    assert!(fourth.claimed.jobs.is_empty() && fourth.wait_until.is_some());
    let fifth = round().await.unwrap();
    assert!(
        fifth.claimed.jobs.is_empty() && fifth.wait_until.is_none(),
        "no group is offered while both wait for their windows"
    );
    let held = s
        .groups
        .count_documents(doc! { "name": "sync", "limitedUntil": { "$gt": DateTime::now() } })
        .await
        .unwrap();
    assert_eq!(held, 2);
    t.drop().await;
}
