use super::*;
use pushcluster_proto::api::{Limits, parse_submit};

fn msg(to: &[&str], payload: &str, key: Option<&str>, ttl: u64) -> NewMessage {
    let mut body = serde_json::json!({"to": to, "payload": serde_json::from_str::<serde_json::Value>(payload).unwrap(), "ttl_secs": ttl});
    if let Some(k) = key {
        body["idempotency_key"] = k.into();
    }
    parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap()
}

fn new_id(s: &Submitted) -> StoredMessage {
    match s {
        Submitted::New(m) => m.clone(),
        Submitted::Duplicate { .. } => panic!("expected a new message"),
    }
}

use crate::StoredMessage;

#[tokio::test]
async fn assigns_per_user_seqs_and_lists_pending_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let a = new_id(
        &store
            .submit(msg(&["u1", "u2"], "1", None, 60))
            .await
            .unwrap(),
    );
    let b = new_id(&store.submit(msg(&["u1"], "2", None, 60)).await.unwrap());
    assert_eq!(a.recipients, vec![("u1".into(), 1), ("u2".into(), 1)]);
    assert_eq!(b.recipients, vec![("u1".into(), 2)]);

    let page = store.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.high_seq, 2);
    let ids: Vec<_> = page.items.iter().map(|p| (p.id.clone(), p.seq)).collect();
    assert_eq!(ids, vec![(a.id.clone(), 1), (b.id.clone(), 2)]);
    assert_eq!(page.items[1].payload.get(), "2");

    let page = store.pending("u1", 1, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let page = store.pending("u1", 0, 1).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn ack_removes_from_pending_and_status_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let m = new_id(
        &store
            .submit(msg(&["u1", "u2"], "{}", None, 60))
            .await
            .unwrap(),
    );
    store.mark_delivered(&m.id, "u1").await.unwrap();
    assert_eq!(store.ack("u2", &m.id).await.unwrap(), AckOutcome::Acked);
    assert_eq!(
        store.ack("u2", &m.id).await.unwrap(),
        AckOutcome::AlreadyFinal
    );
    assert_eq!(store.ack("u3", &m.id).await.unwrap(), AckOutcome::Unknown);
    assert_eq!(store.ack("u1", "nope").await.unwrap(), AckOutcome::Unknown);
    assert!(store.pending("u2", 0, 10).await.unwrap().items.is_empty());
    assert_eq!(store.pending("u1", 0, 10).await.unwrap().items.len(), 1);

    let status = store.status(&m.id).await.unwrap().unwrap();
    let states: Vec<_> = status
        .recipients
        .iter()
        .map(|r| (r.user.as_str(), r.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("u1", RecipientState::Delivered),
            ("u2", RecipientState::Acked)
        ]
    );
    assert!(store.status("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn idempotency_key_returns_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let first = store
        .submit(msg(&["u1"], "1", Some("k1"), 60))
        .await
        .unwrap();
    let again = store
        .submit(msg(&["u1"], "1", Some("k1"), 60))
        .await
        .unwrap();
    assert!(matches!(again, Submitted::Duplicate { .. }));
    assert_eq!(first.id(), again.id());
    assert_eq!(store.pending("u1", 0, 10).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn expiry_marks_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let m = new_id(
        &store
            .submit(msg(&["u1", "u2"], "1", Some("k"), 1))
            .await
            .unwrap(),
    );
    store.ack("u2", &m.id).await.unwrap();
    let later = m.expires_at_ms + 1;
    assert_eq!(store.expire(later).await.unwrap(), 1);
    assert_eq!(store.expire(later).await.unwrap(), 0);
    let status = store.status(&m.id).await.unwrap().unwrap();
    assert_eq!(status.recipients[0].state, RecipientState::Expired);
    assert_eq!(status.recipients[1].state, RecipientState::Acked);
    // Purged after the retention: the id is gone and the key may be reused.
    store
        .expire(later + DEFAULT_RETENTION_MS + 1)
        .await
        .unwrap();
    assert!(store.status(&m.id).await.unwrap().is_none());
    let again = store
        .submit(msg(&["u1"], "1", Some("k"), 60))
        .await
        .unwrap();
    assert!(matches!(again, Submitted::New(_)));
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
