//! Behaviour every [`MessageStore`] must show, run against each implementation's tests.

use pushcluster_proto::api::{Limits, NewMessage, RecipientState, parse_submit};

use crate::{AckOutcome, MessageStore, StoredMessage, Submitted};

pub fn msg(to: &[&str], payload: &str, key: Option<&str>, ttl: u64) -> NewMessage {
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
    let mut body = serde_json::json!({"to": to, "payload": payload, "ttl_secs": ttl});
    if let Some(k) = key {
        body["idempotency_key"] = k.into();
    }
    parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap()
}

pub fn stored(s: &Submitted) -> StoredMessage {
    match s {
        Submitted::New(m) => m.clone(),
        Submitted::Duplicate { .. } => panic!("expected a new message"),
    }
}

pub async fn seqs_and_pending_order(store: &dyn MessageStore) {
    let a = stored(
        &store
            .submit(msg(&["u1", "u2"], "1", None, 60))
            .await
            .unwrap(),
    );
    let b = stored(&store.submit(msg(&["u1"], "2", None, 60)).await.unwrap());
    assert_eq!(a.recipients, vec![("u1".into(), 1), ("u2".into(), 1)]);
    assert_eq!(b.recipients, vec![("u1".into(), 2)]);

    let page = store.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.high_seq, 2);
    let ids: Vec<_> = page.items.iter().map(|p| (p.id.clone(), p.seq)).collect();
    assert_eq!(ids, vec![(a.id.clone(), 1), (b.id.clone(), 2)]);
    assert_eq!(page.items[1].payload.get(), "2");
    assert_eq!(store.pending("u1", 1, 10).await.unwrap().items.len(), 1);
    assert_eq!(store.pending("u1", 0, 1).await.unwrap().items.len(), 1);
}

pub async fn ack_and_status(store: &dyn MessageStore) {
    let m = stored(
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
    // "delivered" is buffered: poll briefly.
    let mut states = Vec::new();
    for _ in 0..100 {
        let status = store.status(&m.id).await.unwrap().unwrap();
        states = status
            .recipients
            .iter()
            .map(|r| (r.user.clone(), r.state))
            .collect();
        if states[0].1 == RecipientState::Delivered {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        states,
        vec![
            ("u1".to_string(), RecipientState::Delivered),
            ("u2".to_string(), RecipientState::Acked)
        ]
    );
    assert!(store.status("missing").await.unwrap().is_none());
}

pub async fn idempotency(store: &dyn MessageStore) {
    let first = store
        .submit(msg(&["i1"], "1", Some("k1"), 60))
        .await
        .unwrap();
    let again = store
        .submit(msg(&["i1"], "1", Some("k1"), 60))
        .await
        .unwrap();
    assert!(matches!(again, Submitted::Duplicate { .. }));
    assert_eq!(first.id(), again.id());
    assert_eq!(store.pending("i1", 0, 10).await.unwrap().items.len(), 1);
}

pub async fn expiry(store: &dyn MessageStore) {
    let m = stored(
        &store
            .submit(msg(&["e1", "e2"], "1", None, 1))
            .await
            .unwrap(),
    );
    store.ack("e2", &m.id).await.unwrap();
    let later = m.expires_at_ms + 1;
    assert_eq!(store.expire(later).await.unwrap(), 1);
    assert_eq!(store.expire(later).await.unwrap(), 0);
    let status = store.status(&m.id).await.unwrap().unwrap();
    assert_eq!(status.recipients[0].state, RecipientState::Expired);
    assert_eq!(status.recipients[1].state, RecipientState::Acked);
    assert_eq!(
        store.ack("e1", &m.id).await.unwrap(),
        AckOutcome::AlreadyFinal
    );
}

pub async fn purge_after_retention(store: &dyn MessageStore, retention_ms: u64) {
    let m = stored(
        &store
            .submit(msg(&["p1", "p2"], "1", Some("pk"), 1))
            .await
            .unwrap(),
    );
    store.ack("p2", &m.id).await.unwrap();
    let later = m.expires_at_ms + 1;
    assert_eq!(store.expire(later).await.unwrap(), 1);
    assert!(
        store.status(&m.id).await.unwrap().is_some(),
        "kept for the retention"
    );
    // Purged after the retention: the id is gone and the key may be reused.
    store.expire(later + retention_ms + 1).await.unwrap();
    assert!(store.status(&m.id).await.unwrap().is_none());
    assert_eq!(store.ack("p1", &m.id).await.unwrap(), AckOutcome::Unknown);
    let again = store
        .submit(msg(&["p1"], "1", Some("pk"), 60))
        .await
        .unwrap();
    assert!(matches!(again, Submitted::New(_)));
    assert_ne!(again.id(), m.id);
}

/// The backlog lists acked messages too (another device may not have them), in seq order,
/// and forgets them once the message is purged.
pub async fn backlog_includes_acked(store: &dyn MessageStore, retention_ms: u64) {
    let a = stored(&store.submit(msg(&["b1"], "1", None, 1)).await.unwrap());
    let b = stored(&store.submit(msg(&["b1"], "2", None, 1)).await.unwrap());
    assert_eq!(store.ack("b1", &a.id).await.unwrap(), AckOutcome::Acked);
    let pending: Vec<_> = store.pending("b1", 0, 10).await.unwrap().items;
    assert_eq!(pending.iter().map(|p| p.seq).collect::<Vec<_>>(), [2]);
    let backlog = store.backlog("b1", 0, 10).await.unwrap();
    let ids: Vec<_> = backlog
        .items
        .iter()
        .map(|p| (p.id.clone(), p.seq))
        .collect();
    assert_eq!(ids, vec![(a.id.clone(), 1), (b.id.clone(), 2)]);
    assert_eq!(backlog.high_seq, 2);
    assert_eq!(store.backlog("b1", 1, 10).await.unwrap().items.len(), 1);
    assert_eq!(store.backlog("b1", 0, 1).await.unwrap().items.len(), 1);
    // Expired messages are not replayed; purged ones are gone from the index.
    let later = b.expires_at_ms.max(a.expires_at_ms) + 1;
    store.expire(later).await.unwrap();
    store.expire(later + retention_ms + 1).await.unwrap();
    assert!(store.backlog("b1", 0, 10).await.unwrap().items.is_empty());
}
