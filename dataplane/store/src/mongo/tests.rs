use std::time::{Duration, Instant};

use pushcluster_test_support::mongo::Mongo;

use super::*;
use crate::Submitted;
use crate::conformance::{self, msg, new, one, stored};

async fn store(m: &Mongo) -> MongoStore {
    let s = MongoStore::connect(&m.uri, &m.database).await.unwrap();
    s.set_handoff_lease(Duration::ZERO);
    s
}

macro_rules! conformance_test {
    ($name:ident $(, $arg:expr)*) => {
        #[tokio::test]
        async fn $name() {
            let Some(m) = Mongo::start().await else {
                return;
            };
            conformance::$name(&store(&m).await $(, $arg)*).await;
        }
    };
}

conformance_test!(seqs_and_pending_order);
conformance_test!(ack_and_status);
conformance_test!(idempotency);
conformance_test!(outbox);
conformance_test!(expiry_and_purge, RETENTION_MS);
conformance_test!(backlog_includes_acked);
conformance_test!(fan_out, 2_000);

#[tokio::test]
async fn devices_and_mobile_records() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    conformance::devices(&s).await;
    conformance::mobile_records(&s, RETENTION_MS).await;
    conformance::retryable_mobile(&s).await;
}

#[tokio::test]
async fn survives_a_new_store_on_the_same_database() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let id = new(&store(&m).await, msg(&["u1"], "[1]", None, 60))
        .await
        .id;
    let s = store(&m).await; // the indexes again: idempotent; the seq cache empty
    let page = s.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, id);
    assert_eq!(page.items[0].payload.as_str(), "[1]");
    assert_eq!(page.high_seq, 1);
    let next = new(&s, msg(&["u1"], "2", None, 60)).await;
    assert_eq!(
        next.recipients[0].1, 2,
        "loaded from the rows, not restarted"
    );
}

/// Concurrent submits of one node are combined into batches; every seq once, no gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_get_distinct_gap_free_seqs() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..5 {
                    let sent = one(
                        &s,
                        msg(&["u", &format!("own{t}")], &i.to_string(), None, 60),
                    );
                    seqs.push(stored(&sent.await).recipients[0].1);
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
    let page = s.pending("u", 0, 100).await.unwrap();
    let listed: Vec<u64> = page.items.iter().map(|p| p.seq).collect();
    assert_eq!(listed, seqs);
    let own = s.pending("own3", 0, 100).await.unwrap();
    assert_eq!(
        own.items.iter().map(|p| p.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
}

/// Two collect nodes (two stores, two seq caches) writing to the same users: the rows'
/// unique ids arbitrate, the loser moves to the next seq; no seq twice, no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_share_a_seq() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let (a, b) = (store(&m).await, store(&m).await);
    // Both caches learn "shared" at seq 1, so both will hand out 2 next.
    new(&a, msg(&["shared"], "0", None, 60)).await;
    new(&b, msg(&["shared", "b-only"], "0", None, 60)).await;
    let mut tasks = Vec::new();
    for (n, s) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..6 {
                let m = new(&s, msg(&["shared"], &format!("\"{n}{i}\""), None, 60)).await;
                got.push((m.id, m.recipients[0].1));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut seqs: Vec<u64> = all.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (3..=14).collect::<Vec<u64>>());
    let page = a.backlog("shared", 0, 100).await.unwrap();
    let listed: Vec<u64> = page.items.iter().map(|p| p.seq).collect();
    assert_eq!(listed, (1..=14).collect::<Vec<u64>>());
    // What each node returned is what is stored.
    let status = b.status(&all[0].0).await.unwrap().unwrap();
    assert_eq!(status.recipients[0].seq, all[0].1);
    assert_eq!(b.pending("b-only", 0, 10).await.unwrap().items.len(), 1);
}

/// A node that stored a batch in the outbox and died before its messages and rows: a worker
/// claims it and completes it; the client's retry with the same key gets the same id.
#[tokio::test]
async fn a_batch_cut_short_is_completed_once() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let (results, _) = conformance::submit(&s, vec![msg(&["c1", "c2"], "7", Some("k"), 60)]).await;
    let first = stored(results[0].as_ref().unwrap());
    // Undo everything but the outbox document: as if the node died right after it.
    let db = m.db().await;
    for c in ["msgs", "rows"] {
        db.collection::<Document>(c)
            .delete_many(doc! {})
            .await
            .unwrap();
    }
    let fresh = store(&m).await;
    assert!(fresh.pending("c2", 0, 10).await.unwrap().items.is_empty());
    let again = one(&fresh, msg(&["c1", "c2"], "7", Some("k"), 60)).await;
    assert!(matches!(&again, Submitted::Duplicate { id } if *id == first.id));
    let claimed = fresh
        .claim_outbox("w", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].messages[0].id, first.id);
    let page = fresh.pending("c2", 0, 10).await.unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|p| (p.id.as_str(), p.seq))
            .collect::<Vec<_>>(),
        [(first.id.as_str(), 1)]
    );
    assert_eq!(page.items[0].payload.as_str(), "7");
    let status = fresh.status(&first.id).await.unwrap().unwrap();
    let users: Vec<_> = status
        .recipients
        .iter()
        .map(|r| (r.user.as_str(), r.seq))
        .collect();
    assert_eq!(users, [("c1", 1), ("c2", 1)]);
    // Settling again (a second claim after the lease) changes nothing.
    fresh
        .outbox
        .update_one(doc! {}, doc! {"$set": {"lease": 0_i64}})
        .await
        .unwrap();
    fresh
        .claim_outbox("w2", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(fresh.backlog("c1", 0, 10).await.unwrap().items.len(), 1);
}

/// A key claimed by a submit that died before storing its batch: after the settle time, a
/// retry stores the message under the id the key was claimed for.
#[tokio::test]
async fn a_retry_takes_over_an_orphaned_key() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let old = ms(pushcluster_proto::delivery::now_ms() - 60_000);
    s.idem
        .insert_one(doc! {"_id": "orphan", "m": "0190aaaa-0000-7000-8000-000000000001", "b": "gone", "t": old})
        .await
        .unwrap();
    let r = stored(&one(&s, msg(&["o"], "1", Some("orphan"), 60)).await);
    assert_eq!(r.id, "0190aaaa-0000-7000-8000-000000000001");
    let again = one(&s, msg(&["o"], "1", Some("orphan"), 60)).await;
    assert!(matches!(&again, Submitted::Duplicate { id } if *id == r.id));
    assert_eq!(s.pending("o", 0, 10).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn corrupt_records_are_errors() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let a = new(&s, msg(&["x"], "1", None, 60)).await;
    s.rows
        .update_one(doc! {"u": "x"}, doc! {"$set": {"e": "never"}})
        .await
        .unwrap();
    assert!(matches!(
        s.pending("x", 0, 10).await,
        Err(Error::Corrupt(_))
    ));
    s.msgs
        .update_one(doc! {"_id": &a.id}, doc! {"$set": {"sq": ["x"]}})
        .await
        .unwrap();
    assert!(matches!(s.status(&a.id).await, Err(Error::Corrupt(_))));
}

#[tokio::test]
async fn unreachable_mongodb_fails_fast() {
    let started = Instant::now();
    let lazy = MongoStore::connect_lazy("mongodb://127.0.0.1:1/", "x")
        .await
        .unwrap();
    let (connected, submitted) = tokio::join!(
        MongoStore::connect("mongodb://127.0.0.1:1/", "x"),
        lazy.submit(vec![msg(&["u"], "1", None, 60)]),
    );
    assert!(matches!(connected, Err(Error::Open { .. })));
    let submitted = submitted.unwrap();
    assert!(matches!(submitted.results[0], Err(Error::Backend(_))));
    assert!(submitted.batch.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
