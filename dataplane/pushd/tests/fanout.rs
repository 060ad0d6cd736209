//! Fan-out at the default maximum (10,000 recipients, a 64 KiB payload), standalone and in
//! the cluster, and the drain of a push node holding thousands of connections.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, local};
use common::*;
use futures_util::StreamExt;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const RECIPIENTS: usize = 10_000;

fn names(prefix: &str) -> Vec<String> {
    (0..RECIPIENTS).map(|i| format!("{prefix}{i}")).collect()
}

/// A 64 KiB payload (the default maximum, as posted).
fn big_payload() -> Value {
    json!({"blob": "x".repeat(64 * 1024 - 16)})
}

/// Connects one device for each of `users`, round robin over `nodes`, and counts the
/// message frames whose payload has `blob`.
async fn connect_all(
    users: &[String],
    nodes: &[SocketAddr],
    got: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let url = format!("ws://{}/ws?token={}", nodes[i % nodes.len()], token(user));
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        // The welcome: routed.
        let _ = ws.next().await;
        let got = got.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg
                    && let Some(m) = pushcluster_proto::frame::decode_message(&t)
                    && m.payload["blob"].as_str().map(str::len) == Some(64 * 1024 - 16)
                {
                    got.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    tasks
}

async fn wait_for(got: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} connected devices got the message",
            got.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Some of the offline recipients connect later: each finds the message waiting.
async fn offline_find_it(nodes: &[SocketAddr], users: &[String]) {
    for user in users {
        let url = format!("ws://{}/ws?token={}", nodes[0], token(user));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let mut c = Client { ws };
        let _welcome = c.next_frame().await.expect("welcome");
        let m = c.next_message().await;
        assert_eq!(m.seq, 1, "{user}");
        assert_eq!(m.payload, big_payload(), "{user}");
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_recipients_of_a_64_kib_message_standalone() {
    let dir = tempfile::tempdir().unwrap();
    // Every test client connects from 127.0.0.1: no per-address connect rate here.
    let server = Server::start(dir.path(), &["--connect-rate-per-ip=0"]).await;
    let users = names("sf");
    let connected = 1_000;
    let got = Arc::new(AtomicUsize::new(0));
    let tasks = connect_all(&users[..connected], &[server.addr], &got).await;
    let (code, body) = server
        .post(json!({"to": users, "payload": big_payload()}))
        .await;
    assert_eq!(code, 202, "{body}");
    wait_for(&got, connected).await;
    let sample: Vec<String> = users[connected..].iter().step_by(450).cloned().collect();
    offline_find_it(&[server.addr], &sample).await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_recipients_of_a_64_kib_message_in_the_cluster() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let mut options = local(redis.url.clone());
    options.push_args = vec!["--connect-rate-per-ip=0".into()];
    let cluster = Cluster::start(&mongo, &options).await;
    let nodes: Vec<SocketAddr> = cluster.pushes.iter().map(|p| p.http()).collect();
    let users = names("cf");
    let connected = 600;
    let got = Arc::new(AtomicUsize::new(0));
    let tasks = connect_all(&users[..connected], &nodes, &got).await;
    let (code, body) = cluster
        .post(json!({"to": users, "payload": big_payload()}))
        .await;
    assert_eq!(code, 202, "{body}");
    wait_for(&got, connected).await;
    let sample: Vec<String> = users[connected..].iter().step_by(900).cloned().collect();
    offline_find_it(&nodes, &sample).await;
    for t in tasks {
        t.abort();
    }
}

/// A push node with thousands of connections is stopped: every client is told 1001 "going
/// away, reconnect" within the grace period (routes go in one pass, not one user at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draining_node_sends_every_client_1001_within_the_grace_period() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let mut options = local(redis.url.clone());
    let grace = Duration::from_secs(10);
    options.push_args = vec![
        format!("--grace-period={}s", grace.as_secs()),
        "--connect-rate-per-ip=0".into(),
    ];
    let cluster = Cluster::start(&mongo, &options).await;
    let node = cluster.pushes[0].http();
    let n = 3_000;
    let closes = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = format!("ws://{node}/ws?token={}", token(&format!("drain-{i}")));
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let _ = ws.next().await; // welcome
        let closes = closes.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Close(Some(f)) = msg
                    && u16::from(f.code) == 1001
                {
                    closes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let start = Instant::now();
    cluster.pushes[0].sigterm();
    while closes.load(Ordering::SeqCst) < n && start.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        closes.load(Ordering::SeqCst),
        n,
        "clients told 1001 within the {grace:?} grace period"
    );
    for t in tasks {
        t.abort();
    }
}
