//! The outbox end to end: what a 202 promises survives the death of the node that gave it
//! (collect, a dispatch replica, standalone itself), online devices get it without
//! reconnecting, and every mobile notification is sent exactly once.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{Cluster, local};
use common::*;
use futures_util::{SinkExt, StreamExt};
use pushcluster_test_support::apns::FakeApns;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// What each online device received (payload indices in arrival order), and how many times
/// it connected.
#[derive(Default)]
struct Devices {
    seen: Mutex<HashMap<String, Vec<u64>>>,
    connects: AtomicUsize,
}

/// One device per user, on `node`: acks (by seq) everything it gets.
async fn online(
    users: &[String],
    nodes: &[SocketAddr],
    devices: &Arc<Devices>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let url = format!("ws://{}/ws?token={}", nodes[i % nodes.len()], token(user));
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        devices.connects.fetch_add(1, Ordering::SeqCst);
        let (devices, user) = (devices.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let Some(m) = pushcluster_proto::frame::decode_message(&t) else {
                    continue;
                };
                let _ = ws
                    .send(Message::text(
                        json!({"type": "ack", "seq": m.seq}).to_string(),
                    ))
                    .await;
                let i = m.payload["i"].as_u64().unwrap_or(u64::MAX);
                devices
                    .seen
                    .lock()
                    .unwrap()
                    .entry(user.clone())
                    .or_default()
                    .push(i);
            }
        }));
    }
    // Every device routed (its welcome came before the route was written? no: after).
    tokio::time::sleep(Duration::from_millis(300)).await;
    tasks
}

/// Waits until every user got exactly `expected[user]`, in order; panics with the
/// difference otherwise.
async fn all_arrive(devices: &Devices, expected: &BTreeMap<String, Vec<u64>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = devices.seen.lock().unwrap().clone();
        let done = expected
            .iter()
            .all(|(u, want)| got.get(u).map(|g| dedup(g)) == Some(want.clone()));
        if done {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(u, want)| got.get(*u).map(|g| dedup(g)).as_ref() != Some(*want))
                .take(5)
                .map(|(u, want)| (u.clone(), want.clone(), got.get(u).cloned()))
                .collect();
            panic!("deliveries missing or out of order (user, wanted, got): {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Arrival order with redeliveries (at least once) dropped.
fn dedup(v: &[u64]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    v.iter().copied().filter(|i| seen.insert(*i)).collect()
}

async fn register(api: SocketAddr, user: &str, token: &str) {
    let body = json!({"user": user, "platform": "apns", "token": token}).to_string();
    let (code, _) = http_request(api, "POST", "/v1/devices", Some(body), API_KEY).await;
    assert!(code == 200 || code == 201, "register: {code}");
}

/// Each token got exactly one APNs request per message — after waiting long enough for a
/// second one to show.
async fn one_notification_each(apns: &FakeApns, tokens: &[String], per_token: usize) {
    eventually(|| async {
        tokens
            .iter()
            .all(|t| apns.requests_for(t).len() >= per_token)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for t in tokens {
        let n = apns.requests_for(t).len();
        assert_eq!(n, per_token, "device {t}: {n} notifications");
    }
}

/// Collect's hand-offs never reach dispatch (a dead address) and collect is killed right
/// after a burst of 202s: dispatch workers claim the batches when their lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_collect_loses_neither_deliveries_nor_notifications() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let apns = FakeApns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = local(redis.url.clone());
    options.dispatch_args = apns.flags(dir.path());
    options.dispatch_args.push("--claim-every=200ms".into());
    options.collect_args = vec![
        "--dispatch-addr=http://127.0.0.1:9".into(),
        "--handoff-lease=1s".into(),
    ];
    let cluster = Cluster::start(&mongo, &options).await;
    let api = cluster.collect.http();
    let users: Vec<String> = (0..30).map(|u| format!("on-{u}")).collect();
    let tokens: Vec<String> = (0..5)
        .map(|i| format!("{:02x}", i + 1).repeat(32))
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        register(api, &format!("off-{i}"), t).await;
    }
    let devices = Arc::new(Devices::default());
    let nodes: Vec<SocketAddr> = cluster.pushes.iter().map(|p| p.http()).collect();
    let tasks = online(&users, &nodes, &devices).await;

    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..150u64 {
        let user = &users[i as usize % users.len()];
        let (code, body) = cluster
            .post(json!({"to": [user], "payload": {"i": i}}))
            .await;
        assert_eq!(code, 202, "{body}");
        expected.entry(user.clone()).or_default().push(i);
    }
    for (i, _) in tokens.iter().enumerate() {
        let body = json!({"to": [format!("off-{i}")], "payload": {"i": 1000 + i},
                          "notification": {"title": "t", "body": "b"}});
        assert_eq!(cluster.post(body).await.0, 202);
    }
    cluster.collect.sigkill();

    all_arrive(&devices, &expected).await;
    assert_eq!(
        devices.connects.load(Ordering::SeqCst),
        users.len(),
        "nobody reconnected"
    );
    one_notification_each(&apns, &tokens, 1).await;
    for t in tasks {
        t.abort();
    }
}

/// A dispatch replica killed while batches stream: the other one takes what it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_dispatch_replica_loses_nothing() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let mut options = local(redis.url.clone());
    options.dispatch_args = vec!["--claim-every=200ms".into(), "--outbox-lease=1s".into()];
    options.collect_args = vec!["--handoff-lease=1s".into()];
    let cluster = Cluster::start(&mongo, &options).await;
    let users: Vec<String> = (0..30).map(|u| format!("d-{u}")).collect();
    let devices = Arc::new(Devices::default());
    let nodes: Vec<SocketAddr> = cluster.pushes.iter().map(|p| p.http()).collect();
    let tasks = online(&users, &nodes, &devices).await;
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..300u64 {
        if i == 100 {
            cluster.dispatch[0].sigkill();
        }
        let user = &users[i as usize % users.len()];
        let (code, body) = cluster
            .post(json!({"to": [user], "payload": {"i": i}}))
            .await;
        assert_eq!(code, 202, "{body}");
        expected.entry(user.clone()).or_default().push(i);
    }
    all_arrive(&devices, &expected).await;
    assert_eq!(
        devices.connects.load(Ordering::SeqCst),
        users.len(),
        "nobody reconnected"
    );
    for t in tasks {
        t.abort();
    }
}

/// Standalone killed right after 202s: on restart, the outbox sends every notification once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_kill_and_restart_sends_every_notification_once() {
    let apns = FakeApns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = apns.flags(dir.path());
    args.push("--handoff-lease=1s".into());
    args.push("--claim-every=200ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&data, &refs).await;
    let tokens: Vec<String> = (0..5)
        .map(|i| format!("{:02x}", i + 0xa0).repeat(32))
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        register(server.addr, &format!("s-off-{i}"), t).await;
    }
    let mut ids = Vec::new();
    for (i, _) in tokens.iter().enumerate() {
        let body = json!({"to": [format!("s-off-{i}")], "payload": {"i": i},
                          "notification": {"body": "b"}});
        let (status, reply) = server.post(body).await;
        assert_eq!(status, 202);
        ids.push(reply["id"].as_str().unwrap().to_owned());
    }
    let server = server.crash_and_restart().await;
    // The sender itself died: a notification it had claimed but not yet answered may have
    // been written to APNs, which has no dedupe, so it is never sent again (at most once)
    // and its record says so (`pending`, no reason). Every other one is sent exactly once,
    // the ones not yet dispatched by the restarted process.
    let mut settled = Vec::new();
    let mut open = Vec::new();
    for _ in 0..200 {
        settled.clear();
        open.clear();
        for (id, token) in ids.iter().zip(&tokens) {
            let status = server.status(id).await;
            let record = status["mobile"]
                .as_array()
                .and_then(|m| m.first())
                .cloned()
                .unwrap_or(Value::Null);
            let sent = apns.requests_for(token).len();
            let in_doubt = record["state"] == "pending" && record["reason"].is_null();
            if sent == 1 || (sent == 0 && in_doubt) {
                settled.push((sent, in_doubt));
            } else {
                open.push((sent, status));
            }
        }
        if settled.len() == tokens.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        settled.len(),
        tokens.len(),
        "every notification settled; not: {open:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for t in &tokens {
        assert!(apns.requests_for(t).len() <= 1, "never twice: {t}");
    }
    let doubtful = settled.iter().filter(|(_, d)| *d).count();
    eprintln!(
        "after kill -9 of the sender: {doubtful} of {} notifications in doubt (not resent)",
        tokens.len()
    );
    drop(server);
}
