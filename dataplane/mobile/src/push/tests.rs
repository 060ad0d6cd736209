use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use prometheus_client::registry::Registry;
use pushcluster_proto::api::{Limits, NewDevice, parse_submit};
use pushcluster_store::Submitted;
use pushcluster_store::redb::RedbStore;

use super::*;
use crate::router::Router;
use crate::sender::MobileResult;
use crate::sweep::RETRY_AFTER;

/// Answers from a script per token (default accepted), recording each request.
#[derive(Default)]
struct Fake {
    sent: Mutex<Vec<(String, String)>>,
    gone: Mutex<Vec<String>>,
    /// The vendor (or the proxy) is unreachable: nothing is sent.
    down: AtomicBool,
}

#[async_trait]
impl MobileSender for Fake {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        let token = req.device.token.clone();
        self.sent
            .lock()
            .unwrap()
            .push((req.message_id.clone(), token.clone()));
        if self.down.load(Ordering::SeqCst) {
            return MobileResult {
                state: MobileState::Pending,
                reason: Some("proxy_error: unreachable".into()),
                attempts: 0,
                vendor_id: None,
                unregistered_at_ms: None,
                retry_after: Some(Duration::from_millis(10)),
            };
        }
        let gone = self.gone.lock().unwrap().contains(&token);
        MobileResult {
            state: if gone {
                MobileState::Rejected
            } else {
                MobileState::Accepted
            },
            reason: gone.then(|| "UNREGISTERED".to_string()),
            attempts: 1,
            vendor_id: Some(format!("id-{token}")),
            unregistered_at_ms: gone.then(now_ms),
            retry_after: None,
        }
    }
}

struct Setup {
    store: Arc<RedbStore>,
    sender: Arc<Fake>,
    push: MobilePush,
    registry: Registry,
    _dir: tempfile::TempDir,
}

/// User `u` with an FCM device (`f…`), an APNs device (`aa…`) and a vivo device, which this
/// server has no sender for.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let sender = Arc::new(Fake::default());
    let router = Router::default()
        .with(Platform::Apns, sender.clone())
        .with(Platform::Fcm, sender.clone());
    let mut registry = Registry::default();
    let push = MobilePush::new(store.clone(), Arc::new(router), 4)
        .with_metrics(MobileMetrics::new(&mut registry));
    for (platform, token) in [
        (Platform::Apns, "aa".repeat(32)),
        (Platform::Fcm, format!("f1:{}", "x".repeat(120))),
        (Platform::Vivo, "1".repeat(23)),
    ] {
        let d = NewDevice {
            user: "u".into(),
            platform,
            token,
            topic: None,
        };
        store.put_device(d).await.unwrap();
    }
    Setup {
        store,
        sender,
        push,
        registry,
        _dir: dir,
    }
}

async fn submit(store: &RedbStore) -> StoredMessage {
    let body = serde_json::json!({"to": ["u"], "payload": 1, "notification": {"title": "hi"}});
    let new = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
    match store.submit(vec![new]).await.unwrap().single().unwrap() {
        Submitted::New(m) => m,
        Submitted::Duplicate { .. } => panic!("duplicate"),
    }
}

async fn records(store: &RedbStore, id: &str) -> Vec<MobileRecord> {
    store.status(id).await.unwrap().unwrap().mobile
}

fn metrics_text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

#[tokio::test]
async fn each_device_is_claimed_then_sent_once_through_its_vendor() {
    let s = setup().await;
    let m = submit(&s.store).await;
    s.push.spawn(&m, "u").await.unwrap();
    let records = records(&s.store, &m.id).await;
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.platform, r.state, r.attempts))
        .collect();
    assert_eq!(
        got,
        [
            (Platform::Vivo, MobileState::Rejected, 0),
            (Platform::Apns, MobileState::Accepted, 1),
            (Platform::Fcm, MobileState::Accepted, 1),
        ]
    );
    assert!(
        records[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("PlatformNotConfigured")
    );
    let apns = &records[1];
    assert_eq!(apns.apns_id, apns.vendor_id, "APNs keeps apns_id");
    assert_eq!(records[2].apns_id, None);
    assert_eq!(
        records[2].vendor_id.as_deref(),
        Some(format!("id-{}", records[2].token).as_str())
    );
    // Handed again (a redispatch): every record exists, nothing is sent twice.
    s.push.spawn(&m, "u").await.unwrap();
    assert_eq!(s.sender.sent.lock().unwrap().len(), 2);
    let text = metrics_text(&s.registry);
    for line in [
        r#"pushd_mobile_sends_total{vendor="fcm",outcome="accepted"} 1"#,
        r#"pushd_mobile_sends_total{vendor="apns",outcome="accepted"} 1"#,
        r#"pushd_mobile_sends_total{vendor="vivo",outcome="rejected"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[tokio::test]
async fn dead_tokens_mark_the_device_dead_and_get_nothing_more() {
    let s = setup().await;
    let fcm = format!("f1:{}", "x".repeat(120));
    s.sender.gone.lock().unwrap().push(fcm.clone());
    let first = submit(&s.store).await;
    s.push.spawn(&first, "u").await.unwrap();
    let r = records(&s.store, &first.id).await;
    let dead = r.iter().find(|r| r.token == fcm).unwrap();
    assert_eq!(
        (dead.state, dead.reason.as_deref()),
        (MobileState::Rejected, Some("UNREGISTERED"))
    );
    let devices = s.store.devices("u").await.unwrap();
    assert!(devices.iter().any(|d| d.token == fcm && !d.is_live()));

    let second = submit(&s.store).await;
    s.push.spawn(&second, "u").await.unwrap();
    let r = records(&s.store, &second.id).await;
    assert!(
        r.iter().all(|r| r.token != fcm),
        "the dead device gets nothing: {r:?}"
    );
    let to_fcm = s
        .sender
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t == fcm)
        .count();
    assert_eq!(to_fcm, 1, "never sent to again");
    assert!(
        metrics_text(&s.registry).contains(r#"pushd_mobile_dead_tokens_total{vendor="fcm"} 1"#)
    );
}

#[tokio::test]
async fn what_an_unreachable_vendor_left_pending_is_sent_by_the_sweep_once() {
    let s = setup().await;
    let m = submit(&s.store).await;
    s.sender.down.store(true, Ordering::SeqCst);
    s.push.spawn(&m, "u").await.unwrap();
    let pending: Vec<_> = records(&s.store, &m.id)
        .await
        .into_iter()
        .filter(|r| r.platform != Platform::Vivo)
        .collect();
    assert_eq!(pending.len(), 2);
    for r in &pending {
        assert_eq!(r.state, MobileState::Pending);
        assert_eq!(r.reason.as_deref(), Some("proxy_error: unreachable"));
    }
    let tried = s.sender.sent.lock().unwrap().len();
    assert_eq!(tried, 2 * PENDING_ROUNDS as usize);

    // Too fresh for the sweep; then the vendor is back and the sweep sends each once.
    assert_eq!(s.push.sweep(RETRY_AFTER).await, 0);
    s.sender.down.store(false, Ordering::SeqCst);
    assert_eq!(s.push.sweep(Duration::ZERO).await, 2);
    for r in records(&s.store, &m.id).await {
        if r.platform == Platform::Vivo {
            continue;
        }
        assert_eq!((r.state, r.attempts), (MobileState::Accepted, 1), "{r:?}");
        assert_eq!(r.reason, None);
    }
    assert_eq!(
        s.push.sweep(Duration::ZERO).await,
        0,
        "accepted: never again"
    );
    assert_eq!(s.sender.sent.lock().unwrap().len(), tried + 2);
}

#[test]
fn short_keeps_eight_characters() {
    assert_eq!(short("0123456789"), "01234567");
    assert_eq!(short("abc"), "abc");
    assert_eq!(short("ééééééééé"), "éééééééé");
}
