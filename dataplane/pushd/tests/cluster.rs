//! The cluster end to end: auth, collect, two dispatch replicas and three push nodes on
//! 127.0.0.2/3/4 as their "pod IPs", with real Redis and a MongoDB-compatible server.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{Cluster, Options, local};
use common::*;
use futures_util::{SinkExt, StreamExt};
use pushcluster_test_support::dnsmasq::Dnsmasq;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::{Redis, RedisCluster};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// What every device has received: device → (user, ordered list of payload indices, ids).
type Seen = Arc<Mutex<HashMap<usize, Vec<(String, u64)>>>>;

/// A device: connects to `nodes[home]`, acks everything, reconnects to the next node with
/// `last_seq` when its connection ends.
fn device(
    phase: u64,
    dev: usize,
    user: String,
    nodes: Vec<SocketAddr>,
    home: usize,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_seq = 0u64;
        let mut node = home;
        loop {
            let url = format!(
                "ws://{}/ws?token={}&last_seq={last_seq}",
                nodes[node % nodes.len()],
                token(&user)
            );
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let Some(m) = pushcluster_proto::frame::decode_message(&t) else {
                    continue;
                };
                let _ = ws
                    .send(Message::text(json!({"type":"ack","id": m.id}).to_string()))
                    .await;
                last_seq = last_seq.max(m.seq);
                if m.payload["phase"].as_u64() != Some(phase) {
                    continue; // an earlier phase's message, redelivered (at least once)
                }
                let i = m.payload["i"].as_u64().unwrap();
                seen.lock()
                    .unwrap()
                    .entry(dev)
                    .or_default()
                    .push((m.id.clone(), i));
            }
            node += 1; // reconnect elsewhere
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Runs clients and messages; returns (devices' users, messages per user) once everything
/// arrived, or panics with what is missing.
async fn scenario(
    cluster: &Cluster,
    phase: u64,
    strict_order: bool,
    users: usize,
    messages: usize,
    chaos: impl AsyncFnOnce(&Cluster),
) {
    let nodes: Vec<SocketAddr> = cluster.pushes.iter().map(|p| p.http()).collect();
    let seen: Seen = Arc::default();
    // Every user one device; every fifth user a second device on another node.
    let mut devices: Vec<(usize, String)> = Vec::new();
    let mut tasks = Vec::new();
    for u in 0..users {
        let user = format!("user-{u}");
        let homes = if u % 5 == 0 { vec![u, u + 1] } else { vec![u] };
        for home in homes {
            let dev = devices.len();
            devices.push((dev, user.clone()));
            tasks.push(device(
                phase,
                dev,
                user.clone(),
                nodes.clone(),
                home,
                seen.clone(),
            ));
        }
    }
    // Wait until every device is connected and routed (welcome → route written).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Messages: user-(k mod users) gets payload i=k; each user's messages are posted in order.
    let workers = 8;
    let (half, rest) = (messages / 2, messages - messages / 2);
    let ids: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
    let post_range = |from: usize, to: usize| {
        let mut handles = Vec::new();
        for w in 0..workers {
            let collects: Vec<SocketAddr> = (0..=cluster.more_collects.len())
                .map(|i| cluster.collect_http(i))
                .collect();
            let ids = ids.clone();
            handles.push(tokio::spawn(async move {
                for k in (from..to).filter(|k| (k % users) % workers == w) {
                    let body = json!({"to": [format!("user-{}", k % users)], "payload": {"phase": phase, "i": k}});
                    // A user's messages go to the collect nodes in turns, one after the other.
                    let collect = collects[(k / users) % collects.len()];
                    let (status, resp) = post_message(collect, &body).await;
                    assert_eq!(status, 202, "{resp}");
                    let id = resp["id"].as_str().unwrap_or_default().to_owned();
                    ids.lock().unwrap().insert(k as u64, id);
                }
            }));
        }
        handles
    };
    let started = std::time::Instant::now();
    for h in post_range(0, half) {
        h.await.unwrap();
    }
    eprintln!("posted {half} messages in {:?}", started.elapsed());
    let second = post_range(half, half + rest);
    chaos(cluster).await;
    for h in second {
        h.await.unwrap();
    }
    eprintln!("posted {messages} messages in {:?}", started.elapsed());

    // Every device of every recipient gets each of its user's messages, in order.
    let expected: BTreeMap<String, Vec<u64>> = (0..messages).fold(BTreeMap::new(), |mut m, k| {
        m.entry(format!("user-{}", k % users))
            .or_insert_with(Vec::new)
            .push(k as u64);
        m
    });
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(env_usize("PUSHD_E2E_DEADLINE_SECS", 90) as u64);
    loop {
        let snapshot = seen.lock().unwrap().clone();
        let mut missing = 0;
        for (dev, user) in &devices {
            let got: BTreeSet<u64> = snapshot
                .get(dev)
                .map(|v| v.iter().map(|(_, i)| *i).collect())
                .unwrap_or_default();
            missing += expected
                .get(user)
                .map(|e| e.iter().filter(|i| !got.contains(i)).count())
                .unwrap_or(0);
        }
        if missing == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for (dev, user) in &devices {
                let got: BTreeSet<u64> = snapshot
                    .get(dev)
                    .map(|v| v.iter().map(|(_, i)| *i).collect())
                    .unwrap_or_default();
                let lost: Vec<_> = expected[user].iter().filter(|i| !got.contains(i)).collect();
                if !lost.is_empty() {
                    eprintln!("device {dev} ({user}) misses {lost:?}");
                }
            }
            // The store's view of a few missing messages: pending (never forwarded),
            // delivered (written to a socket) or acked (by another device).
            let missing_ids: BTreeSet<u64> = devices
                .iter()
                .flat_map(|(dev, user)| {
                    let got: BTreeSet<u64> = snapshot
                        .get(dev)
                        .map(|v| v.iter().map(|(_, i)| *i).collect())
                        .unwrap_or_default();
                    expected[user]
                        .iter()
                        .filter(move |i| !got.contains(i))
                        .copied()
                })
                .collect();
            for i in missing_ids.iter().take(5) {
                let id = ids.lock().unwrap()[i].clone();
                let (_, body) = http_request(
                    cluster.collect.http(),
                    "GET",
                    &format!("/v1/messages/{id}"),
                    None,
                    API_KEY,
                )
                .await;
                eprintln!("message {i} ({id}): {}", String::from_utf8_lossy(&body));
            }
            panic!("{missing} deliveries missing");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let snapshot = seen.lock().unwrap().clone();
    for (dev, user) in &devices {
        // Dedupe by id, keep first arrival order: the user's messages in posting order.
        let mut ids = BTreeSet::new();
        let order: Vec<u64> = snapshot[dev]
            .iter()
            .filter(|(id, _)| ids.insert(id.clone()))
            .map(|(_, i)| *i)
            .collect();
        if strict_order {
            assert_eq!(
                &order, &expected[user],
                "device {dev} of {user}: per-user order"
            );
        } else if order != expected[user] {
            // Known limitation (see docs/cluster.md): around a Redis restart a message stored
            // while its user was unroutable can arrive after a later one. Nothing is lost.
            eprintln!("device {dev} of {user}: out of order across the Redis restart: {order:?}");
        }
    }
    for t in tasks {
        t.abort();
    }
}

async fn services() -> Option<(Redis, Mongo)> {
    Some((Redis::start().await?, Mongo::start().await?))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unicast_across_nodes_survives_a_push_node_kill() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let cluster = Cluster::start(&mongo, &local(redis.url.clone())).await;
    // 72 devices of 60 users, 300 messages (PUSHD_E2E_USERS / PUSHD_E2E_MESSAGES scale it up,
    // e.g. 250 / 3000 = 300 devices); one push node killed mid-stream.
    let users = env_usize("PUSHD_E2E_USERS", 60);
    let messages = env_usize("PUSHD_E2E_MESSAGES", 300);
    scenario(&cluster, 1, true, users, messages, async |c: &Cluster| {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.pushes[2].sigkill();
    })
    .await;
}

/// Two collect nodes, each user's messages posted to them in turns (each after the previous
/// one's 202): every device gets them in posting order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_posted_through_two_collect_nodes_arrive_in_posting_order() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let options = Options {
        collects: 2,
        ..local(redis.url.clone())
    };
    let cluster = Cluster::start(&mongo, &options).await;
    scenario(&cluster, 1, true, 40, 400, async |_: &Cluster| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_loses_nothing() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let cluster = Cluster::start(&mongo, &local(redis.url.clone())).await;
    let redis = tokio::sync::Mutex::new(redis);
    scenario(&cluster, 2, true, 60, 600, async |_: &Cluster| {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.lock().await.restart().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_on_redis_cluster_through_headless_dns_names() {
    let Some(redis) = RedisCluster::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    // dnsmasq serves the push pods' headless-Service names (a pod's name exists while it is
    // a ready endpoint).
    let records: Vec<(String, Ipv4Addr)> = [2u8, 3, 4]
        .iter()
        .map(|n| {
            (
                format!("127-0-0-{n}.push-headless.test.svc.cluster.local"),
                Ipv4Addr::new(127, 0, 0, *n),
            )
        })
        .collect();
    let refs: Vec<(&str, Ipv4Addr)> = records.iter().map(|(n, ip)| (n.as_str(), *ip)).collect();
    let Some(dns) = Dnsmasq::start(&refs).await else {
        return;
    };
    let cluster = Cluster::start(
        &mongo,
        &Options {
            redis_url: redis.urls().join(","),
            redis_cluster: true,
            template: "{ip_dashed}.{service}.{namespace}.svc.{cluster_domain}:{port}".into(),
            dns: Some(dns.addr),
            dispatch_args: Vec::new(),
            auth_args: Vec::new(),
            collect_args: Vec::new(),
            push_args: Vec::new(),
            all_args: Vec::new(),
            collects: 1,
        },
    )
    .await;
    scenario(&cluster, 1, true, 40, 400, async |_: &Cluster| {}).await;
}

#[tokio::test]
async fn mongo_down_is_503_and_nothing_is_accepted() {
    let Some((redis, mut mongo)) = services().await else {
        return;
    };
    if mongo.real {
        eprintln!("MONGODB_URI is a real server: not stopping it; 503 path covered with FerretDB");
        return;
    }
    let cluster = Cluster::start(&mongo, &local(redis.url.clone())).await;
    let (status, body) = cluster.post(json!({"to": ["u"], "payload": 1})).await;
    assert_eq!(status, 202, "{body}");
    mongo.kill();
    let (status, bytes) = http_request(
        cluster.collect.http(),
        "POST",
        "/v1/messages",
        Some(json!({"to": ["u"], "payload": 2}).to_string()),
        API_KEY,
    )
    .await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&bytes));
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("store unavailable")
    );
}
