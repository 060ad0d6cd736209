use super::*;

use crate::conformance::{self, msg, stored as new_id};

#[tokio::test]
async fn conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    conformance::seqs_and_pending_order(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    conformance::ack_and_status(&store).await;
    conformance::idempotency(&store).await;
    conformance::expiry(&store).await;
}

#[tokio::test]
async fn expiry_marks_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    conformance::purge_after_retention(&store, DEFAULT_RETENTION_MS).await;
}

#[tokio::test]
async fn backlog_includes_acked() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    conformance::backlog_includes_acked(&store, DEFAULT_RETENTION_MS).await;
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = RedbStore::open(dir.path()).unwrap();
        let id = store
            .submit(msg(&["u1"], "[1]", None, 60))
            .await
            .unwrap()
            .id()
            .to_owned();
        drop(store);
        id
    };
    // The writer thread holds the database until its channel closes; wait for the file lock.
    let mut attempts = 0;
    let store = loop {
        match RedbStore::open(dir.path()) {
            Ok(s) => break s,
            Err(e) if attempts < 250 => {
                attempts += 1;
                tracing::debug!(error = %e, "store still locked");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("store did not reopen: {e}"),
        }
    };
    let page = store.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, id);
    assert_eq!(page.high_seq, 1);
    let next = new_id(&store.submit(msg(&["u1"], "2", None, 60)).await.unwrap());
    assert_eq!(next.recipients[0].1, 2);
}

#[tokio::test]
async fn devices_and_mobile_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    conformance::devices(&store).await;
    conformance::mobile_records(&store, DEFAULT_RETENTION_MS).await;
    conformance::retryable_mobile(&store).await;
}
