use super::*;
use crate::conformance::{self, msg, stored};
use pushcluster_test_support::mongo::Mongo;

async fn store(m: &Mongo) -> MongoStore {
    MongoStore::connect(&m.uri, &m.database).await.unwrap()
}

#[tokio::test]
async fn conforms() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    conformance::seqs_and_pending_order(&s).await;
    let m2 = Mongo::start().await.unwrap();
    let s = store(&m2).await;
    conformance::ack_and_status(&s).await;
    conformance::idempotency(&s).await;
    conformance::expiry(&s).await;
}

#[tokio::test]
async fn survives_a_new_connection_and_concurrent_submits_get_distinct_seqs() {
    let Some(m) = Mongo::start().await else {
        return;
    };
    let s = store(&m).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            stored(
                &s.submit(msg(&["u"], &i.to_string(), None, 60))
                    .await
                    .unwrap(),
            )
            .recipients[0]
                .1
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let again = store(&m).await; // indexes are created idempotently
    let page = again.pending("u", 0, 100).await.unwrap();
    assert_eq!(page.items.iter().map(|p| p.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(page.high_seq, 8);
}

#[tokio::test]
async fn unreachable_mongodb_fails_fast() {
    let s = MongoStore::connect_lazy("mongodb://127.0.0.1:1/", "x")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = s.submit(msg(&["u"], "1", None, 60)).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by the selection timeout"
    );
}
