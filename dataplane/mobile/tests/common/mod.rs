//! Shared by the vendor tests and the benchmark: requests, fast retry settings, metrics, and
//! the dead-token check through the real fan-out (redb store, claim-before-send records).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use pushcluster_mobile::http::DirectConfig;
use pushcluster_mobile::{
    MobileMetrics, MobilePush, MobileRequest, MobileResult, MobileSender, Router,
};
use pushcluster_proto::api::{
    Device, Limits, MobileState, NewDevice, Notification, Platform, parse_submit,
};
use pushcluster_proto::delivery::now_ms;
use pushcluster_store::redb::RedbStore;
use pushcluster_store::{MessageStore, Submitted};
use pushcluster_test_support::https::FakeVendor;

/// A notification of message `message_id` for one device, an hour to live.
pub fn request(platform: Platform, token: &str, message_id: &str) -> MobileRequest {
    MobileRequest {
        message_id: message_id.into(),
        expires_at_ms: now_ms() + 3_600_000,
        device: Device {
            user: "u".into(),
            platform,
            token: token.into(),
            topic: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            dead_at_ms: None,
        },
        notification: Arc::new(Notification {
            title: Some("Your order".into()),
            body: Some("has shipped".into()),
            data: Some(serde_json::json!({"order": 42})),
            ..Notification::default()
        }),
    }
}

/// Short timeouts and back-offs for tests, a CA to trust.
pub fn fast(direct: &mut DirectConfig, ca_pem: &str) {
    direct.add_roots_pem(ca_pem.as_bytes()).expect("fake CA");
    direct.request_timeout = Duration::from_secs(1);
    direct.connect_timeout = Duration::from_secs(5);
    direct.retry.backoff_base = Duration::from_millis(20);
    direct.retry.backoff_max = Duration::from_millis(1500);
}

pub fn metrics() -> (MobileMetrics, Registry) {
    let mut registry = Registry::default();
    (MobileMetrics::new(&mut registry), registry)
}

pub fn metrics_text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encode");
    out
}

/// One scripted scenario and its documented end.
pub struct Case<R> {
    pub name: &'static str,
    pub replies: Vec<R>,
    pub state: MobileState,
    pub attempts: u32,
    /// A piece of the recorded reason.
    pub reason: Option<&'static str>,
    /// The token is reported dead.
    pub dead: bool,
}

pub fn case<R>(
    name: &'static str,
    replies: Vec<R>,
    state: MobileState,
    attempts: u32,
    reason: Option<&'static str>,
    dead: bool,
) -> Case<R> {
    Case {
        name,
        replies,
        state,
        attempts,
        reason,
        dead,
    }
}

/// Checks one result against its case.
pub fn check<R>(c: &Case<R>, r: &MobileResult) {
    assert_eq!(
        (r.state, r.attempts),
        (c.state, c.attempts),
        "{}: {r:?}",
        c.name
    );
    if let Some(reason) = c.reason {
        let got = r.reason.as_deref().unwrap_or_default();
        assert!(
            got.contains(reason),
            "{}: reason {got:?} lacks {reason:?}",
            c.name
        );
    }
    assert_eq!(
        r.unregistered_at_ms.is_some(),
        c.dead,
        "{}: dead? {r:?}",
        c.name
    );
    if c.state == MobileState::Accepted {
        assert!(
            r.vendor_id.is_some(),
            "{}: the vendor's id is recorded",
            c.name
        );
    }
}

/// Runs every case on its own token (`token(i)`): `script` sets the fake up, one send, then
/// the documented end, never two copies shown, exactly one delivered when accepted;
/// `extra` checks what is particular to a case.
pub async fn run_cases<F: FakeVendor, R>(
    fake: &F,
    sender: &dyn MobileSender,
    platform: Platform,
    cases: &[Case<R>],
    token: impl Fn(u32) -> String,
    script: impl Fn(&str, &Case<R>),
    extra: impl Fn(&Case<R>, &MobileResult, &str),
) {
    for (i, c) in cases.iter().enumerate() {
        let t = token(i as u32);
        script(&t, c);
        let r = sender.send(&request(platform, &t, &format!("m{i}"))).await;
        check(c, &r);
        assert!(fake.shown_on(&t) <= 1, "{}: never two copies", c.name);
        if c.state == MobileState::Accepted {
            assert_eq!(fake.delivered_to(&t).len(), 1, "{}", c.name);
        }
        extra(c, &r, &t);
    }
}

/// Through the real fan-out: a device the vendor calls dead is marked dead by the first
/// message and never sent to by the second. `sent` counts the fake's requests for `token`.
pub async fn dead_token_is_never_sent_again(
    sender: Arc<dyn MobileSender>,
    platform: Platform,
    token: &str,
    sent: impl Fn() -> usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    store
        .put_device(NewDevice {
            user: "gone".into(),
            platform,
            token: token.into(),
            topic: None,
        })
        .await
        .unwrap();
    let push = MobilePush::new(
        store.clone(),
        Arc::new(Router::default().with(platform, sender)),
        4,
    );
    for round in 0..2 {
        let body = serde_json::json!({"to": ["gone"], "payload": round, "notification": {"title": "t", "body": "b"}});
        let new = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
        let Submitted::New(m) = store.submit(vec![new]).await.unwrap().single().unwrap() else {
            panic!("duplicate");
        };
        push.spawn(&m, "gone").await.unwrap();
        let records = store.status(&m.id).await.unwrap().unwrap().mobile;
        if round == 0 {
            assert_eq!(records.len(), 1, "{records:?}");
            assert_eq!(records[0].state, MobileState::Rejected, "{records:?}");
            assert_eq!(records[0].platform, platform);
            let devices = store.devices("gone").await.unwrap();
            assert!(!devices[0].is_live(), "marked dead: {devices:?}");
        } else {
            assert!(
                records.is_empty(),
                "a dead device gets nothing: {records:?}"
            );
        }
    }
    assert_eq!(sent(), 1, "one request, never again");
}

/// Runs futures on their own tasks at once; their outputs in order.
pub async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
