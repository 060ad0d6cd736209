use super::*;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::value::RawValue;

/// Records deliveries; node "gone" holds nobody.
#[derive(Default)]
struct Recorder(Mutex<Vec<(NodeId, String, u64)>>);

#[async_trait]
impl NodeTransport for Recorder {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: Vec<Delivery>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let mut log = self.0.lock().unwrap();
        Ok(batch
            .into_iter()
            .map(|d| {
                if node.0 == "gone" {
                    Outcome::NotHere
                } else {
                    log.push((node.clone(), d.user, d.seq));
                    Outcome::Queued
                }
            })
            .collect())
    }
}

fn message(recipients: &[(&str, u64)]) -> StoredMessage {
    StoredMessage {
        id: "m1".into(),
        payload: Arc::from(RawValue::from_string("1".into()).unwrap()),
        created_at_ms: 0,
        expires_at_ms: u64::MAX,
        recipients: recipients
            .iter()
            .map(|(u, s)| (u.to_string(), *s))
            .collect(),
        notification: None,
        mobile: Default::default(),
    }
}

#[tokio::test]
async fn forwards_to_every_node_of_every_recipient_and_drops_stale_routes() {
    let routes = Arc::new(MemoryRouteTable::default());
    let (a, b, gone) = (
        NodeId("a".into()),
        NodeId("b".into()),
        NodeId("gone".into()),
    );
    routes.add("u1", &a).await.unwrap();
    routes.add("u1", &b).await.unwrap();
    routes.add("u2", &gone).await.unwrap();
    let transport = Arc::new(Recorder::default());
    let d = Dispatcher::new(routes.clone(), transport.clone());

    let report = d
        .dispatch(&message(&[("u1", 3), ("u2", 1), ("u3", 9)]))
        .await;
    assert_eq!(
        report,
        DispatchReport {
            forwarded: 2,
            offline: 2,
            failed: 0,
            mobile: 0,
        }
    );
    let mut log = transport.0.lock().unwrap().clone();
    log.sort();
    assert_eq!(log, vec![(a, "u1".into(), 3), (b, "u1".into(), 3)]);
    assert!(
        routes.lookup("u2").await.unwrap().is_empty(),
        "stale route removed"
    );
}

#[tokio::test]
async fn remove_is_per_node() {
    let routes = MemoryRouteTable::default();
    let (a, b) = (NodeId("a".into()), NodeId("b".into()));
    routes.add("u", &a).await.unwrap();
    routes.add("u", &b).await.unwrap();
    routes.remove("u", &a).await.unwrap();
    assert_eq!(routes.lookup("u").await.unwrap(), vec![b]);
}
