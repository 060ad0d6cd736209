//! Dispatch's side of mobile push: who is handed to [`MobilePush`] (policy, reach), and that
//! a redispatched message sends nothing twice. The fan-out itself is tested in
//! `pushcluster-mobile`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_node::{DeliveryBatch, NodeId, NodeTransport, Outcome, TransportError};
use pushcluster_proto::api::{
    Limits, MobileRecord, MobileState, NewDevice, Platform, parse_submit,
};
use pushcluster_proto::delivery::now_ms;
use pushcluster_routing::{MemoryRouteTable, RouteTable};
use pushcluster_store::redb::RedbStore;
use pushcluster_store::{BatchId, MessageStore, OutboxBatch, StoredMessage, Submitted};

use super::*;
use crate::{DispatchConfig, Dispatcher};

fn batch(m: &StoredMessage) -> OutboxBatch {
    OutboxBatch {
        id: BatchId::new(),
        messages: vec![m.clone()],
    }
}

/// Node "n" holds every user it is asked about; node "gone" nobody (a stale route).
struct Everyone;

#[async_trait]
impl NodeTransport for Everyone {
    async fn deliver(
        &self,
        node: &NodeId,
        b: DeliveryBatch,
    ) -> Result<Vec<Outcome>, TransportError> {
        let outcome = match node.0.as_str() {
            "gone" => Outcome::NotHere,
            _ => Outcome::Queued,
        };
        Ok(b.entries.iter().map(|_| outcome).collect())
    }
}

/// Answers from a script per token (default accepted), recording each request.
#[derive(Default)]
struct Fake {
    sent: Mutex<Vec<(String, String)>>,
    gone: Mutex<Vec<String>>,
}

#[async_trait]
impl MobileSender for Fake {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        let token = req.device.token.clone();
        self.sent
            .lock()
            .unwrap()
            .push((req.message_id.clone(), token.clone()));
        let gone = self.gone.lock().unwrap().contains(&token);
        MobileResult {
            state: if gone {
                MobileState::Rejected
            } else {
                MobileState::Accepted
            },
            reason: gone.then(|| "Unregistered".to_string()),
            attempts: 1,
            vendor_id: Some("id".into()),
            unregistered_at_ms: gone.then(now_ms),
            retry_after: None,
        }
    }
}

struct Setup {
    store: Arc<RedbStore>,
    sender: Arc<Fake>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let routes = Arc::new(MemoryRouteTable::default());
    routes.add(&NodeId("n".into()), &["online"]).await.unwrap();
    routes
        .add(&NodeId("gone".into()), &["stale"])
        .await
        .unwrap();
    let sender = Arc::new(Fake::default());
    let push = MobilePush::new(store.clone(), sender.clone(), 4);
    let dispatcher = Dispatcher::new(
        store.clone(),
        routes,
        Arc::new(Everyone),
        DispatchConfig::default(),
    )
    .with_mobile(push);
    for (user, token) in [
        ("online", "aa"),
        ("offline", "bb"),
        ("offline", "cc"),
        ("stale", "dd"),
    ] {
        let d = NewDevice {
            user: user.into(),
            platform: Platform::Apns,
            token: token.repeat(32),
            topic: None,
        };
        store.put_device(d).await.unwrap();
    }
    Setup {
        store,
        sender,
        dispatcher,
        _dir: dir,
    }
}

async fn submit(store: &RedbStore, body: serde_json::Value) -> StoredMessage {
    let new = parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap();
    match store.submit(vec![new]).await.unwrap().single().unwrap() {
        Submitted::New(m) => m,
        Submitted::Duplicate { .. } => panic!("duplicate"),
    }
}

/// Waits until the background sends recorded `n` final records for `id`.
async fn settled(store: &RedbStore, id: &str, n: usize) -> Vec<MobileRecord> {
    for _ in 0..200 {
        let status = store.status(id).await.unwrap().unwrap();
        let done: Vec<_> = status
            .mobile
            .iter()
            .filter(|r| r.state != MobileState::Pending)
            .cloned()
            .collect();
        if done.len() >= n {
            return status.mobile;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("mobile records of {id} did not settle");
}

#[tokio::test]
async fn offline_recipients_get_mobile_push_once() {
    let s = setup().await;
    let m = submit(
        &s.store,
        serde_json::json!({"to": ["online", "offline"], "payload": 1,
                           "notification": {"title": "hi"}}),
    )
    .await;
    let report = s.dispatcher.dispatch(&batch(&m)).await;
    assert_eq!((report.forwarded, report.offline, report.mobile), (1, 1, 1));
    let records = settled(&s.store, &m.id, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.user == "offline" && r.state == MobileState::Accepted && r.attempts == 1)
    );
    // Dispatched again (e.g. a retried handoff): nothing is sent twice.
    s.dispatcher.dispatch(&batch(&m)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.sender.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn policies_always_and_never_and_no_notification() {
    let s = setup().await;
    let always = submit(
        &s.store,
        serde_json::json!({"to": ["online", "offline"], "payload": 1, "mobile": "always",
                           "notification": {"body": "b"}}),
    )
    .await;
    assert_eq!(s.dispatcher.dispatch(&batch(&always)).await.mobile, 2);
    assert_eq!(settled(&s.store, &always.id, 3).await.len(), 3);

    let never = submit(
        &s.store,
        serde_json::json!({"to": ["offline"], "payload": 1, "mobile": "never",
                           "notification": {"body": "b"}}),
    )
    .await;
    let plain = submit(
        &s.store,
        serde_json::json!({"to": ["offline"], "payload": 1}),
    )
    .await;
    assert_eq!(s.dispatcher.dispatch(&batch(&never)).await.mobile, 0);
    assert_eq!(s.dispatcher.dispatch(&batch(&plain)).await.mobile, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.sender.sent.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn unregistered_devices_are_marked_dead_and_skipped() {
    let s = setup().await;
    s.sender.gone.lock().unwrap().push("bb".repeat(32));
    let body = serde_json::json!({"to": ["offline"], "payload": 1, "notification": {"title": "t"}});
    let first = submit(&s.store, body.clone()).await;
    s.dispatcher.dispatch(&batch(&first)).await;
    let records = settled(&s.store, &first.id, 2).await;
    let rejected = records.iter().find(|r| r.token == "bb".repeat(32)).unwrap();
    assert_eq!(rejected.state, MobileState::Rejected);
    assert_eq!(rejected.reason.as_deref(), Some("Unregistered"));
    let devices = s.store.devices("offline").await.unwrap();
    assert!(
        devices
            .iter()
            .any(|d| d.token == "bb".repeat(32) && !d.is_live())
    );

    let second = submit(&s.store, body).await;
    s.dispatcher.dispatch(&batch(&second)).await;
    let records = settled(&s.store, &second.id, 1).await;
    assert_eq!(
        records.len(),
        1,
        "the dead device gets nothing: {records:?}"
    );
    assert_eq!(records[0].token, "cc".repeat(32));
}

#[tokio::test]
async fn a_user_whose_nodes_all_answer_not_here_is_offline() {
    let s = setup().await;
    let m = submit(
        &s.store,
        serde_json::json!({"to": ["stale"], "payload": 1, "notification": {"title": "t"}}),
    )
    .await;
    let report = s.dispatcher.dispatch(&batch(&m)).await;
    assert_eq!((report.forwarded, report.offline, report.mobile), (0, 1, 1));
    let records = settled(&s.store, &m.id, 1).await;
    assert_eq!(records[0].token, "dd".repeat(32));
}
