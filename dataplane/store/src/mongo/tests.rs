use std::time::{Duration, Instant};

use pushcluster_test_support::mongo::Mongo;

use super::*;
use crate::conformance::{self, msg, stored};

async fn store(m: &Mongo) -> MongoStore {
    MongoStore::connect(&m.uri, &m.database).await.unwrap()
}

#[tokio::test]
async fn assigns_per_user_seqs_and_lists_pending_in_order() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    conformance::seqs_and_pending_order(&store(&m).await).await;
}

#[tokio::test]
async fn ack_removes_from_pending_and_status_moves_forward() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    conformance::ack_and_status(&store(&m).await).await;
}

#[tokio::test]
async fn idempotency_key_returns_the_same_id() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    conformance::idempotency(&store(&m).await).await;
}

#[tokio::test]
async fn expiry_marks_and_purges() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    conformance::expiry(&s).await;
    conformance::purge_after_retention(&s, RETENTION_MS).await;
}

#[tokio::test]
async fn backlog_includes_acked() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    conformance::backlog_includes_acked(&store(&m).await, RETENTION_MS).await;
}

#[tokio::test]
async fn survives_a_new_store_on_the_same_database() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let id = {
        let s = store(&m).await;
        let id = s.submit(msg(&["u1"], "[1]", None, 60)).await.unwrap();
        id.id().to_owned()
    };
    let s = store(&m).await; // the indexes again: idempotent
    let page = s.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, id);
    assert_eq!(page.items[0].payload.get(), "[1]");
    assert_eq!(page.high_seq, 1);
    let next = stored(&s.submit(msg(&["u1"], "2", None, 60)).await.unwrap());
    assert_eq!(next.recipients[0].1, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
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
                    let sent = s.submit(msg(&["u", &format!("own{t}")], &i.to_string(), None, 60));
                    seqs.push(stored(&sent.await.unwrap()).recipients[0].1);
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
    assert_eq!(page.high_seq, 40);
    let own = s.pending("own3", 0, 100).await.unwrap();
    assert_eq!(
        own.items.iter().map(|p| p.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_submits_with_one_key_store_one_message() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.submit(msg(&["k"], "1", Some("same"), 60)).await })
        })
        .collect();
    let mut new = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        new += usize::from(matches!(r, Submitted::New(_)));
        ids.push(r.id().to_owned());
    }
    assert_eq!(new, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let page = s.pending("k", 0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!((page.items[0].seq, page.high_seq), (1, 1));
}

/// A submit that crashed after storing the message but before one delivery: its client got
/// no 202, and its retry with the same key completes the delivery before saying `Duplicate`.
#[tokio::test]
async fn a_retry_completes_a_half_stored_message() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let first = stored(
        &s.submit(msg(&["c1", "c2"], "7", Some("k"), 60))
            .await
            .unwrap(),
    );
    let db = m.db().await;
    let gone = db
        .collection::<Document>("deliveries")
        .delete_one(doc! {"_id": delivery_id(&first.id, "c2")})
        .await
        .unwrap();
    assert_eq!(gone.deleted_count, 1);
    let reset = doc! {"_id": "c2"};
    db.collection::<Document>("user_seq")
        .delete_one(reset)
        .await
        .unwrap();
    assert!(s.pending("c2", 0, 10).await.unwrap().items.is_empty());

    let again = s
        .submit(msg(&["c1", "c2"], "7", Some("k"), 60))
        .await
        .unwrap();
    assert!(matches!(&again, Submitted::Duplicate { id } if *id == first.id));
    let page = s.pending("c2", 0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        (page.items[0].id.as_str(), page.items[0].seq),
        (first.id.as_str(), 1)
    );
    assert_eq!(page.items[0].payload.get(), "7");
    let status = s.status(&first.id).await.unwrap().unwrap();
    let users: Vec<_> = status
        .recipients
        .iter()
        .map(|r| (r.user.as_str(), r.seq))
        .collect();
    assert_eq!(users, [("c1", 1), ("c2", 1)]);
    assert_eq!(s.pending("c1", 0, 10).await.unwrap().items.len(), 1);
}

/// A seq allocated whose delivery is not inserted yet is not claimed by `high_seq`.
#[tokio::test]
async fn high_seq_never_claims_an_unseen_seq() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let a = stored(&s.submit(msg(&["h"], "1", None, 60)).await.unwrap());
    s.ack("h", &a.id).await.unwrap();
    let empty = s.pending("h", 0, 10).await.unwrap();
    assert!(empty.items.is_empty());
    assert_eq!(
        empty.high_seq, 0,
        "only what a page returns is claimed, even when lower seqs are acked"
    );

    // An in-flight submit: seq 2 allocated, its delivery not inserted yet.
    assert_eq!(submit::next_seq(&s, "h").await.unwrap(), 2);
    let page = s.pending("h", 0, 10).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.high_seq, 0, "nothing seen beyond `after`");
    let page = s.pending("h", 1, 10).await.unwrap();
    assert_eq!(page.high_seq, 1);

    // A later submit lands first (seq 3): seen, but seq 2 still is not.
    let c = stored(&s.submit(msg(&["h"], "3", None, 60)).await.unwrap());
    assert_eq!(c.recipients[0].1, 3);
    let page = s.pending("h", 1, 10).await.unwrap();
    assert_eq!(page.items.iter().map(|p| p.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(page.high_seq, 3);
    let page = s.pending("h", 3, 10).await.unwrap();
    assert_eq!(page.high_seq, 3);
}

#[tokio::test]
async fn corrupt_records_are_errors() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let a = stored(&s.submit(msg(&["x"], "1", None, 60)).await.unwrap());
    let db = m.db().await;
    let id = delivery_id(&a.id, "x");
    db.collection::<Document>("deliveries")
        .update_one(doc! {"_id": &id}, doc! {"$set": {"state": 9}})
        .await
        .unwrap();
    assert!(matches!(s.status(&a.id).await, Err(Error::Corrupt(_))));
    assert!(matches!(s.ack("x", &a.id).await, Err(Error::Corrupt(_))));
    db.collection::<Document>("deliveries")
        .update_one(doc! {"_id": &id}, doc! {"$set": {"state": 0, "msg": 5}})
        .await
        .unwrap();
    assert!(matches!(
        s.pending("x", 0, 10).await,
        Err(Error::Corrupt(_))
    ));
    db.collection::<Document>("deliveries")
        .update_one(doc! {"_id": &id}, doc! {"$set": {"msg": &a.id}})
        .await
        .unwrap();
    db.collection::<Document>("messages")
        .update_one(doc! {"_id": &a.id}, doc! {"$set": {"payload": "{not json"}})
        .await
        .unwrap();
    assert!(matches!(
        s.pending("x", 0, 10).await,
        Err(Error::Corrupt(_))
    ));
    db.collection::<Document>("user_seq")
        .update_one(doc! {"_id": "x"}, doc! {"$set": {"seq": -1_i64}})
        .await
        .unwrap();
    assert!(matches!(
        s.pending("x", 0, 10).await,
        Err(Error::Corrupt(_))
    ));
}

#[tokio::test]
async fn unreachable_mongodb_fails_fast() {
    let started = Instant::now();
    let lazy = MongoStore::connect_lazy("mongodb://127.0.0.1:1/", "x")
        .await
        .unwrap();
    let (connected, submitted) = tokio::join!(
        MongoStore::connect("mongodb://127.0.0.1:1/", "x"),
        lazy.submit(msg(&["u"], "1", None, 60)),
    );
    assert!(matches!(connected, Err(Error::Open { .. })));
    assert!(matches!(submitted, Err(Error::Backend(_))));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

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
