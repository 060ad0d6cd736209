use super::*;
use std::sync::Mutex;

use async_trait::async_trait;
use pushcluster_node::DeliveryBatch;
use pushcluster_proto::api::{Limits, parse_submit};
use pushcluster_routing::MemoryRouteTable;
use pushcluster_store::redb::RedbStore;

/// Records deliveries; node "gone" holds nobody; node "down" cannot be reached.
#[derive(Default)]
struct Recorder(Mutex<Vec<(NodeId, usize, String, u64)>>);

#[async_trait]
impl NodeTransport for Recorder {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: DeliveryBatch,
    ) -> Result<Vec<Outcome>, TransportError> {
        if node.0 == "down" {
            return Err(TransportError::Failed {
                node: node.clone(),
                reason: "test".into(),
            });
        }
        let mut log = self.0.lock().unwrap();
        let messages = batch.messages.len();
        Ok(batch
            .entries
            .into_iter()
            .map(|e| {
                if node.0 == "gone" {
                    Outcome::NotHere
                } else {
                    log.push((node.clone(), messages, e.user, e.seq));
                    Outcome::Queued
                }
            })
            .collect())
    }
}

fn msg(to: &[&str]) -> pushcluster_proto::api::NewMessage {
    let body = serde_json::json!({"to": to, "payload": {"k": 1}});
    parse_submit(body.to_string().as_bytes(), &Limits::default()).unwrap()
}

async fn setup() -> (
    tempfile::TempDir,
    Arc<RedbStore>,
    Arc<MemoryRouteTable>,
    Arc<Recorder>,
    Dispatcher,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    store.set_handoff_lease(Duration::ZERO);
    let routes = Arc::new(MemoryRouteTable::default());
    let transport = Arc::new(Recorder::default());
    let d = Dispatcher::new(
        store.clone(),
        routes.clone(),
        transport.clone(),
        DispatchConfig::default(),
    );
    (dir, store, routes, transport, d)
}

#[tokio::test]
async fn forwards_each_payload_once_per_node_and_drops_stale_routes() {
    let (_dir, store, routes, transport, d) = setup().await;
    let (a, b, gone) = (
        NodeId("a".into()),
        NodeId("b".into()),
        NodeId("gone".into()),
    );
    routes.add(&a, &["u1", "u3"]).await.unwrap();
    routes.add(&b, &["u1"]).await.unwrap();
    routes.add(&gone, &["u2"]).await.unwrap();
    let accepted = store
        .submit(vec![msg(&["u1", "u2", "u4"]), msg(&["u1", "u3"])])
        .await
        .unwrap();
    let batch = accepted.batch.unwrap();
    let report = d.dispatch_and_clear(&batch).await;
    assert_eq!(
        report,
        DispatchReport {
            forwarded: 5,
            offline: 2,
            failed: 0,
            mobile: 0,
        }
    );
    let mut log = transport.0.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        vec![
            (a.clone(), 2, "u1".into(), 1),
            (a.clone(), 2, "u1".into(), 2),
            (a, 2, "u3".into(), 1),
            (b.clone(), 2, "u1".into(), 1),
            (b, 2, "u1".into(), 2),
        ]
    );
    assert!(
        routes.lookup(&["u2"]).await.unwrap()[0].is_empty(),
        "stale route removed"
    );
    assert!(
        store.outbox_batch(&batch.id).await.unwrap().is_none(),
        "mark cleared"
    );
}

#[tokio::test]
async fn a_failed_forward_leaves_the_batch_in_the_outbox() {
    let (_dir, store, routes, transport, d) = setup().await;
    routes.add(&NodeId("down".into()), &["u1"]).await.unwrap();
    routes.add(&NodeId("a".into()), &["u2"]).await.unwrap();
    let batch = store
        .submit(vec![msg(&["u1", "u2"])])
        .await
        .unwrap()
        .batch
        .unwrap();
    let report = d.dispatch_and_clear(&batch).await;
    assert_eq!((report.forwarded, report.failed), (1, 1));
    assert!(
        store.outbox_batch(&batch.id).await.unwrap().is_some(),
        "kept for another round"
    );
    assert_eq!(transport.0.lock().unwrap().len(), 1);
    // Once the node is back, a claim dispatches it again (the node drops what it has seen).
    routes
        .remove(&NodeId("down".into()), &["u1"])
        .await
        .unwrap();
    let again = store
        .claim_outbox("w", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(d.dispatch_and_clear(&again[0]).await.failed, 0);
    assert!(store.outbox_batch(&batch.id).await.unwrap().is_none());
}

/// The worker dispatches hand-offs at once and claims what was never handed over.
#[tokio::test]
async fn the_worker_takes_hand_offs_and_lost_batches() {
    let (_dir, store, routes, transport, d) = setup().await;
    routes.add(&NodeId("a".into()), &["u"]).await.unwrap();
    let handed = store
        .submit(vec![msg(&["u"])])
        .await
        .unwrap()
        .batch
        .unwrap();
    let lost = store
        .submit(vec![msg(&["u"])])
        .await
        .unwrap()
        .batch
        .unwrap();
    let (tx, rx) = crate::worker::queue(16);
    let stop = tokio::sync::Notify::new();
    let worker = crate::worker::run(d, rx, stop.notified());
    let check = async {
        tx.send(crate::worker::Work::Batch(handed.clone()))
            .await
            .unwrap();
        for _ in 0..200 {
            let none = store.outbox_batch(&handed.id).await.unwrap().is_none()
                && store.outbox_batch(&lost.id).await.unwrap().is_none();
            if none {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.notify_one();
    };
    tokio::join!(worker, check);
    assert!(
        store.outbox_batch(&lost.id).await.unwrap().is_none(),
        "claimed and dispatched"
    );
    // With a zero hand-off lease, the claim may race the hand-off and send a batch twice:
    // harmless, the node drops what a connection has seen.
    let mut seqs: Vec<u64> = transport.0.lock().unwrap().iter().map(|e| e.3).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, [1, 2]);
}
