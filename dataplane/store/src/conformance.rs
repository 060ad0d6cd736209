//! Behaviour every [`MessageStore`] must show, run against each implementation's tests.

use pushcluster_proto::api::{
    Limits, Mobile, MobileRecord, MobileState, NewDevice, NewMessage, Platform, RecipientState,
    parse_submit,
};
use pushcluster_proto::delivery::now_ms;

use crate::{AckOutcome, DeviceSaved, MessageStore, StoredMessage, Submitted};

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

fn device(user: &str, token: &str, topic: Option<&str>) -> NewDevice {
    NewDevice {
        user: user.into(),
        platform: Platform::Apns,
        token: token.into(),
        topic: topic.map(str::to_owned),
    }
}

/// Devices: register (created, then updated), list by user, move to another user, mark
/// dead (not when registered after Apple's timestamp), revive by registering, delete.
pub async fn devices(store: &dyn MessageStore) {
    let (t1, t2) = ("a1".repeat(32), "b2".repeat(32));
    let saved = store.put_device(device("du", &t1, None)).await.unwrap();
    let DeviceSaved::Created(d1) = saved else {
        panic!("expected a new device: {saved:?}");
    };
    assert_eq!((d1.user.as_str(), d1.token.as_str()), ("du", t1.as_str()));
    assert!(d1.is_live());
    let again = store
        .put_device(device("du", &t1, Some("com.example.app")))
        .await
        .unwrap();
    let DeviceSaved::Updated(d1b) = again else {
        panic!("expected an update: {again:?}");
    };
    assert_eq!(d1b.topic.as_deref(), Some("com.example.app"));
    assert_eq!(d1b.created_at_ms, d1.created_at_ms);
    store.put_device(device("du", &t2, None)).await.unwrap();
    store
        .put_device(device("other", &"c3".repeat(32), None))
        .await
        .unwrap();
    let listed = store.devices("du").await.unwrap();
    let tokens: Vec<_> = listed.iter().map(|d| d.token.as_str()).collect();
    assert_eq!(tokens, [t1.as_str(), t2.as_str()]);
    assert_eq!(listed[0].topic.as_deref(), Some("com.example.app"));
    assert!(store.devices("nobody").await.unwrap().is_empty());

    // Apple's timestamp before the registration: the registration stands.
    assert!(store.mark_device_dead(&t2, 1).await.unwrap());
    assert!(store.devices("du").await.unwrap()[1].is_live());
    let at = now_ms() + 1000;
    assert!(store.mark_device_dead(&t2, at).await.unwrap());
    let dead = &store.devices("du").await.unwrap()[1];
    assert_eq!(dead.dead_at_ms, Some(at));
    assert!(!store.mark_device_dead(&"ff".repeat(32), at).await.unwrap());
    // Registering again revives it; a token moving to another user leaves the first.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.put_device(device("du2", &t2, None)).await.unwrap();
    let moved = store.devices("du2").await.unwrap();
    assert_eq!(moved.len(), 1);
    assert!(moved[0].is_live());
    assert_eq!(store.devices("du").await.unwrap().len(), 1);

    assert!(store.delete_device(&t1).await.unwrap());
    assert!(!store.delete_device(&t1).await.unwrap());
    assert!(store.devices("du").await.unwrap().is_empty());

    // Every vendor's token is stored as issued (case-sensitive), with its platform.
    for (platform, token) in [
        (Platform::Fcm, "cZx1:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"),
        (Platform::Hms, "IQAAAACy0kYqAAAAARd-_.b"),
        (
            Platform::Xiaomi,
            "d//igwEhgBGCI2TG6lWqlK8gRrx/VACnGKyaqfBB7Fk=",
        ),
        (Platform::Vivo, "15503125070831162371433"),
    ] {
        let mut d = device("vendors", token, None);
        d.platform = platform;
        store.put_device(d).await.unwrap();
    }
    let listed = store.devices("vendors").await.unwrap();
    let got: Vec<_> = listed
        .iter()
        .map(|d| (d.platform, d.token.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Platform::Vivo, "15503125070831162371433"),
            (Platform::Hms, "IQAAAACy0kYqAAAAARd-_.b"),
            (Platform::Fcm, "cZx1:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"),
            (
                Platform::Xiaomi,
                "d//igwEhgBGCI2TG6lWqlK8gRrx/VACnGKyaqfBB7Fk="
            ),
        ]
    );
    assert!(
        store
            .delete_device("d//igwEhgBGCI2TG6lWqlK8gRrx/VACnGKyaqfBB7Fk=")
            .await
            .unwrap()
    );
}

fn record(msg: &str, user: &str, token: &str) -> MobileRecord {
    MobileRecord::claim(msg, user, Platform::Apns, token, now_ms())
}

/// Mobile records: claimed once, updated, shown in the status, purged with the message; the
/// notification and policy come back with the stored message.
pub async fn mobile_records(store: &dyn MessageStore, retention_ms: u64) {
    let body = serde_json::json!({
        "to": ["mu"], "payload": 1, "ttl_secs": 1, "mobile": "always",
        "notification": {"title": "T", "badge": 2},
    });
    let new = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
    let m = stored(&store.submit(new).await.unwrap());
    assert_eq!(m.mobile, Mobile::Always);
    let n = m.notification.as_deref().unwrap();
    assert_eq!((n.title.as_deref(), n.badge), (Some("T"), Some(2)));
    let plain = stored(&store.submit(msg(&["mu"], "1", None, 60)).await.unwrap());
    assert_eq!(
        (plain.mobile, plain.notification.is_none()),
        (Mobile::Offline, true)
    );

    let (t1, t2) = ("d1".repeat(32), "0IQAAAACy0kYqAAAAARd-_.b".to_owned());
    let mut r1 = record(&m.id, "mu", &t1);
    assert!(store.claim_mobile(&r1).await.unwrap());
    assert!(!store.claim_mobile(&r1).await.unwrap(), "claimed once only");
    let r2 = MobileRecord::claim(&m.id, "mu", Platform::Hms, &t2, now_ms());
    assert!(store.claim_mobile(&r2).await.unwrap());
    let status = store.status(&m.id).await.unwrap().unwrap();
    let states: Vec<_> = status
        .mobile
        .iter()
        .map(|r| (r.token.clone(), r.state))
        .collect();
    assert_eq!(
        states,
        [
            (t2.clone(), MobileState::Pending),
            (t1.clone(), MobileState::Pending)
        ]
    );

    r1.state = MobileState::Accepted;
    r1.attempts = 1;
    r1.apns_id = Some("6f2c3a1e-8d4b-4c1a-9e52-7b0d1f3a5c88".into());
    r1.vendor_id = r1.apns_id.clone();
    r1.updated_at_ms += 5;
    store.update_mobile(&r1).await.unwrap();
    let mut r2b = r2.clone();
    r2b.state = MobileState::Rejected;
    r2b.reason = Some("80300007 all tokens invalid".into());
    r2b.attempts = 2;
    r2b.vendor_id = Some("173476398735820631000601".into());
    store.update_mobile(&r2b).await.unwrap();
    assert!(
        !store.claim_mobile(&r1).await.unwrap(),
        "final: never again"
    );
    let status = store.status(&m.id).await.unwrap().unwrap();
    let mut want = vec![r2b, r1];
    for (got, want) in status.mobile.iter().zip(&mut want) {
        want.message = got.message.clone();
    }
    assert_eq!(status.mobile, want);
    assert!(
        store
            .status(&plain.id)
            .await
            .unwrap()
            .unwrap()
            .mobile
            .is_empty()
    );

    // Purged with the message.
    let later = m.expires_at_ms + 1;
    store.expire(later).await.unwrap();
    store.expire(later + retention_ms + 1).await.unwrap();
    assert!(store.status(&m.id).await.unwrap().is_none());
    assert!(store.claim_mobile(&record(&m.id, "mu", &t1)).await.unwrap());
}

/// Retryable mobile records: only `pending` ones with a reason (not delivered), older than
/// the cut-off, listed with their notification; a retake succeeds once.
pub async fn retryable_mobile(store: &dyn MessageStore) {
    let body = serde_json::json!({
        "to": ["ru"], "payload": 1, "mobile": "always", "notification": {"title": "R"},
    });
    let new = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
    let m = stored(&store.submit(new).await.unwrap());
    let (t1, t2, t3) = ("a1".repeat(32), "b2".repeat(32), "c3".repeat(32));
    // t1: the proxy was down (reason set). t2: claimed, sender died (no reason). t3: accepted.
    let mut r1 = record(&m.id, "ru", &t1);
    let r2 = record(&m.id, "ru", &t2);
    let mut r3 = record(&m.id, "ru", &t3);
    for r in [&r1, &r2, &r3] {
        assert!(store.claim_mobile(r).await.unwrap());
    }
    r1.reason = Some("proxy_error: unreachable".into());
    r1.attempts = 1;
    store.update_mobile(&r1).await.unwrap();
    r3.state = MobileState::Accepted;
    r3.reason = Some("ok".into());
    store.update_mobile(&r3).await.unwrap();

    assert!(
        store
            .retryable_mobile(r1.updated_at_ms, 10)
            .await
            .unwrap()
            .is_empty(),
        "not before the cut-off"
    );
    let due = store
        .retryable_mobile(r1.updated_at_ms + 1, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].record.token, t1);
    assert_eq!(due[0].record.attempts, 1);
    assert_eq!(due[0].notification.title.as_deref(), Some("R"));
    assert_eq!(due[0].expires_at_ms, m.expires_at_ms);
    let later = r1.updated_at_ms + 10;
    assert!(store.retake_mobile(&due[0].record, later).await.unwrap());
    assert!(
        !store
            .retake_mobile(&due[0].record, later + 1)
            .await
            .unwrap(),
        "taken once only"
    );
    assert!(
        store.retryable_mobile(later, 10).await.unwrap().is_empty(),
        "the retake moved it past the cut-off"
    );
}
