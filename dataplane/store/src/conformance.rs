//! Behaviour every [`MessageStore`] must show, run against each implementation's tests.

use std::time::Duration;

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

/// Submits messages and waits until their batch may be dispatched (so replays see them);
/// the results and the batch.
pub async fn submit(
    store: &dyn MessageStore,
    msgs: Vec<NewMessage>,
) -> (Vec<crate::Result<Submitted>>, Option<crate::OutboxBatch>) {
    let accepted = store.submit(msgs).await.unwrap();
    (accepted.results, accepted.batch)
}

/// Submits one message; its result, with the recipients' seqs as finally stored (a store
/// may move a seq another node took before its batch is ready).
pub async fn one(store: &dyn MessageStore, m: NewMessage) -> Submitted {
    let (mut results, batch) = submit(store, vec![m]).await;
    match (results.remove(0).unwrap(), batch) {
        (Submitted::New(m), Some(b)) => Submitted::New(
            b.messages
                .into_iter()
                .find(|x| x.id == m.id)
                .expect("a new message is in its batch"),
        ),
        (r, _) => r,
    }
}

/// Submits one message that must be new.
pub async fn new(store: &dyn MessageStore, m: NewMessage) -> StoredMessage {
    stored(&one(store, m).await)
}

fn seqs(p: &crate::PendingPage) -> Vec<u64> {
    p.items.iter().map(|i| i.seq).collect()
}

/// Seqs per user in batch order, no gaps; pages in order with payloads; one outbox batch per
/// submit holding its new messages.
pub async fn seqs_and_pending_order(store: &dyn MessageStore) {
    let (results, batch) = submit(
        store,
        vec![
            msg(&["u1", "u2"], "1", None, 60),
            msg(&["u1"], "2", None, 60),
        ],
    )
    .await;
    let batch = batch.expect("new messages make a batch");
    let results: Vec<StoredMessage> = results
        .iter()
        .map(|r| stored(r.as_ref().unwrap()))
        .collect();
    let (a, b) = (&results[0], &results[1]);
    assert_eq!(a.recipients, vec![("u1".into(), 1), ("u2".into(), 1)]);
    assert_eq!(b.recipients, vec![("u1".into(), 2)]);
    assert_eq!(
        batch
            .messages
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        [a.id.clone(), b.id.clone()]
    );
    assert_eq!(batch.deliveries(), 3);
    let c = new(store, msg(&["u1"], "3", None, 60)).await;
    assert_eq!(c.recipients, vec![("u1".into(), 3)]);

    let page = store.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.high_seq, 3);
    let ids: Vec<_> = page.items.iter().map(|p| (p.id.clone(), p.seq)).collect();
    assert_eq!(
        ids,
        vec![(a.id.clone(), 1), (b.id.clone(), 2), (c.id.clone(), 3)]
    );
    assert_eq!(page.items[1].payload.as_str(), "2");
    assert_eq!(seqs(&store.pending("u1", 1, 10).await.unwrap()), [2, 3]);
    assert_eq!(seqs(&store.pending("u1", 0, 1).await.unwrap()), [1]);
}

/// Acks are cumulative per user; status derives each recipient's state from watermarks.
pub async fn ack_and_status(store: &dyn MessageStore) {
    let m = new(store, msg(&["u1", "u2"], "{}", None, 60)).await;
    let later = new(store, msg(&["u2"], "{}", None, 60)).await;
    store.mark_delivered("u1", 1).await.unwrap();
    assert_eq!(store.ack("u2", 1).await.unwrap(), AckOutcome::Acked);
    assert_eq!(store.ack("u2", 1).await.unwrap(), AckOutcome::AlreadyFinal);
    assert_eq!(seqs(&store.pending("u2", 0, 10).await.unwrap()), [2]);
    assert_eq!(store.pending("u1", 0, 10).await.unwrap().items.len(), 1);
    // Cumulative: an ack of seq 2 covers seq 1 too.
    assert_eq!(store.ack("u2", 2).await.unwrap(), AckOutcome::Acked);
    assert!(store.pending("u2", 0, 10).await.unwrap().items.is_empty());
    // "delivered" is buffered: poll briefly.
    let mut states = Vec::new();
    for _ in 0..100 {
        let status = store.status(&m.id).await.unwrap().unwrap();
        states = status
            .recipients
            .iter()
            .map(|r| (r.user.clone(), r.seq, r.state))
            .collect();
        if states[0].2 == RecipientState::Delivered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        states,
        vec![
            ("u1".to_string(), 1, RecipientState::Delivered),
            ("u2".to_string(), 1, RecipientState::Acked)
        ]
    );
    let status = store.status(&later.id).await.unwrap().unwrap();
    assert_eq!(status.recipients[0].state, RecipientState::Acked);
    assert!(store.status("missing").await.unwrap().is_none());
}

/// The same key returns the same id, across submits and within one batch.
pub async fn idempotency(store: &dyn MessageStore) {
    let first = one(store, msg(&["i1"], "1", Some("k1"), 60)).await;
    let again = one(store, msg(&["i1"], "1", Some("k1"), 60)).await;
    assert!(matches!(again, Submitted::Duplicate { .. }));
    assert_eq!(first.id(), again.id());
    let (results, batch) = submit(
        store,
        vec![
            msg(&["i1"], "2", Some("k2"), 60),
            msg(&["i1"], "2", Some("k2"), 60),
            msg(&["i1"], "3", Some("k1"), 60),
        ],
    )
    .await;
    let r: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert!(matches!(r[0], Submitted::New(_)));
    assert!(matches!(&r[1], Submitted::Duplicate { id } if id == r[0].id()));
    assert!(matches!(&r[2], Submitted::Duplicate { id } if id == first.id()));
    assert_eq!(batch.map(|b| b.messages.len()), Some(1));
    assert_eq!(seqs(&store.pending("i1", 0, 10).await.unwrap()), [1, 2]);
    let (_, dup_only) = submit(store, vec![msg(&["i1"], "1", Some("k1"), 60)]).await;
    assert!(dup_only.is_none(), "nothing new, nothing to dispatch");
}

/// A batch is leased to its submitter for the hand-off lease, then any worker claims it,
/// once per lease; completing clears it.
pub async fn outbox(store: &dyn MessageStore) {
    let (_, batch) = submit(store, vec![msg(&["o1", "o2"], "1", None, 60)]).await;
    let batch = batch.unwrap();
    let read = store.outbox_batch(&batch.id).await.unwrap().unwrap();
    assert_eq!(read.messages.len(), 1);
    assert_eq!(read.messages[0].recipients, batch.messages[0].recipients);
    assert_eq!(read.messages[0].payload.as_str(), "1");
    // The test store's hand-off lease is zero: claimable at once, then held by the claimer.
    let claimed = store
        .claim_outbox("worker-1", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, batch.id);
    assert_eq!(claimed[0].messages[0].id, batch.messages[0].id);
    assert!(
        store
            .claim_outbox("worker-2", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    store
        .complete_outbox(std::slice::from_ref(&batch.id))
        .await
        .unwrap();
    assert!(store.outbox_batch(&batch.id).await.unwrap().is_none());
    store.complete_outbox(&[batch.id]).await.unwrap(); // again: nothing to do
}

/// Expired messages are skipped by reads at once, purged (with their key) after retention.
pub async fn expiry_and_purge(store: &dyn MessageStore, retention_ms: u64) {
    let m = new(store, msg(&["p1", "p2"], "1", Some("pk"), 1)).await;
    let kept = new(store, msg(&["p1"], "2", None, 600)).await;
    store.ack("p2", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(
        m.expires_at_ms.saturating_sub(now_ms()) + 20,
    ))
    .await;
    assert_eq!(
        seqs(&store.backlog("p1", 0, 10).await.unwrap()),
        [2],
        "expired: not replayed"
    );
    let status = store.status(&m.id).await.unwrap().unwrap();
    let states: Vec<_> = status.recipients.iter().map(|r| r.state).collect();
    assert_eq!(states, [RecipientState::Expired, RecipientState::Acked]);
    assert_eq!(
        store.expire(now_ms()).await.unwrap(),
        0,
        "kept for the retention"
    );
    assert!(store.status(&m.id).await.unwrap().is_some());
    let later = m.expires_at_ms + retention_ms + 1;
    assert_eq!(store.expire(later).await.unwrap(), 1);
    assert!(store.status(&m.id).await.unwrap().is_none());
    assert!(store.status(&kept.id).await.unwrap().is_some());
    // The key is free again, and seqs never go back.
    let again = new(store, msg(&["p2"], "1", Some("pk"), 60)).await;
    assert_ne!(again.id, m.id);
    assert_eq!(again.recipients, vec![("p2".into(), 2)]);
}

/// The backlog lists acked messages too (another device may not have them), in seq order.
pub async fn backlog_includes_acked(store: &dyn MessageStore) {
    let a = new(store, msg(&["b1"], "1", None, 60)).await;
    let b = new(store, msg(&["b1"], "2", None, 60)).await;
    assert_eq!(store.ack("b1", 1).await.unwrap(), AckOutcome::Acked);
    assert_eq!(seqs(&store.pending("b1", 0, 10).await.unwrap()), [2]);
    let backlog = store.backlog("b1", 0, 10).await.unwrap();
    let ids: Vec<_> = backlog
        .items
        .iter()
        .map(|p| (p.id.clone(), p.seq))
        .collect();
    assert_eq!(ids, vec![(a.id.clone(), 1), (b.id.clone(), 2)]);
    assert_eq!(backlog.high_seq, 2);
    assert_eq!(seqs(&store.backlog("b1", 1, 10).await.unwrap()), [2]);
    assert_eq!(seqs(&store.backlog("b1", 0, 1).await.unwrap()), [1]);
}

/// One message to many users: every user's first seq, each finds it; small and large
/// messages read back the same.
pub async fn fan_out(store: &dyn MessageStore, users: usize) {
    let names: Vec<String> = (0..users).map(|i| format!("f{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let big = format!("\"{}\"", "x".repeat(20_000));
    let m = new(store, msg(&refs, &big, None, 60)).await;
    assert_eq!(m.recipients.len(), users);
    assert!(m.recipients.iter().all(|(_, s)| *s == 1));
    for u in [&names[0], &names[users / 2], &names[users - 1]] {
        let page = store.pending(u, 0, 10).await.unwrap();
        assert_eq!(seqs(&page), [1], "{u}");
        assert_eq!(page.items[0].payload.as_str(), big);
    }
    let status = store.status(&m.id).await.unwrap().unwrap();
    assert_eq!(status.recipients.len(), users);
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
    tokio::time::sleep(Duration::from_millis(5)).await;
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
    let n = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
    let m = new(store, n).await;
    assert_eq!(m.mobile, Mobile::Always);
    let n = m.notification.as_deref().unwrap();
    assert_eq!((n.title.as_deref(), n.badge), (Some("T"), Some(2)));
    let plain = new(store, msg(&["mu"], "1", None, 60)).await;
    assert_eq!(
        (plain.mobile, plain.notification.is_none()),
        (Mobile::Offline, true)
    );
    let from_outbox = store
        .claim_outbox("w", Duration::from_secs(60), 10)
        .await
        .unwrap();
    let again = from_outbox
        .iter()
        .flat_map(|b| &b.messages)
        .find(|x| x.id == m.id)
        .expect("in the outbox");
    assert_eq!(again.notification.as_deref().and_then(|n| n.badge), Some(2));
    assert_eq!(again.mobile, Mobile::Always);

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
    store
        .expire(m.expires_at_ms + retention_ms + 1)
        .await
        .unwrap();
    assert!(store.status(&m.id).await.unwrap().is_none());
    assert!(store.claim_mobile(&record(&m.id, "mu", &t1)).await.unwrap());
}

/// Retryable mobile records: only `pending` ones with a reason (not delivered), older than
/// the cut-off, listed with their notification; a retake succeeds once.
pub async fn retryable_mobile(store: &dyn MessageStore) {
    let body = serde_json::json!({
        "to": ["ru"], "payload": 1, "mobile": "always", "notification": {"title": "R"},
    });
    let n = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
    let m = new(store, n).await;
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
