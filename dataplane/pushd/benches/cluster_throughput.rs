//! End-to-end unicast throughput and latency of the cluster: collect → MongoDB (FerretDB, or
//! `MONGODB_URI`) → dispatch → push → client, with every role a local release process (the
//! harness of `tests/cluster.rs`: auth, collect, two dispatch replicas, three push nodes on
//! 127.0.0.2/3/4, real Redis).
//!
//! Each round: (1) saturation — `PUSHD_BENCH_MESSAGES` (default 1,000) messages posted by
//! `PUSHD_BENCH_POSTERS` (default 32) concurrent HTTP producers to `PUSHD_BENCH_USERS`
//! (default 300) connected clients; throughput = messages / (first post → last delivery).
//! (2) Half that rate, paced, for the same number of messages; delivery latency (post → the
//! client's receipt) p50 / p99. Then the per-stage histograms from every role's `/metrics`
//! (on its admin port).
//! Three rounds (`PUSHD_BENCH_ROUNDS`); prints every round and the medians.
//!
//! Run: `make bench-cluster` (= `cargo bench -p pushd --bench cluster_throughput`), after
//! `make tools`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{Cluster, local};
use common::{API_KEY, token};
use futures_util::StreamExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Http = Client<HttpConnector, Full<Bytes>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Connects one client per user (round-robin over the push nodes); every received message
/// sends `(round, latency µs)` to the returned channel and is acked.
async fn clients(nodes: &[SocketAddr], users: usize) -> mpsc::UnboundedReceiver<(u64, u64)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let ready = Arc::new(AtomicUsize::new(0));
    for u in 0..users {
        let url = format!(
            "ws://{}/ws?token={}",
            nodes[u % nodes.len()],
            token(&format!("bench-{u}"))
        );
        let (tx, ready) = (tx.clone(), ready.clone());
        tokio::spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            let (mut sink, mut stream) = ws.split();
            ready.fetch_add(1, Ordering::SeqCst);
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                let Some(m) = pushcluster_proto::frame::decode_message(&t) else {
                    continue;
                };
                let sent = m.payload["t"].as_u64().unwrap_or(0);
                let round = m.payload["r"].as_u64().unwrap_or(0);
                let _ = tx.send((round, now_us().saturating_sub(sent)));
                let ack = json!({"type": "ack", "id": m.id}).to_string();
                let _ = futures_util::SinkExt::send(&mut sink, Message::text(ack)).await;
            }
        });
    }
    while ready.load(Ordering::SeqCst) < users {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Routes are written after the welcome; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rx
}

async fn post(http: &Http, collect: SocketAddr, user: usize, round: u64) {
    let body = json!({"to": [format!("bench-{user}")], "payload": {"t": now_us(), "r": round}});
    let req = http::Request::post(format!("http://{collect}/v1/messages"))
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = http.request(req).await.expect("post");
    assert_eq!(resp.status(), 202, "collect refused a message");
}

/// Waits for `n` deliveries of `round`; returns their latencies (µs).
async fn receive(rx: &mut mpsc::UnboundedReceiver<(u64, u64)>, round: u64, n: usize) -> Vec<u64> {
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n {
        let got = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("deliveries stalled for 120 s")
            .expect("clients gone");
        if got.0 == round {
            lat.push(got.1);
        }
    }
    lat
}

struct Round {
    msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    paced_rate: f64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn round(
    cluster: &Cluster,
    http: &Http,
    rx: &mut mpsc::UnboundedReceiver<(u64, u64)>,
    r: u64,
    users: usize,
    messages: usize,
    posters: usize,
) -> Round {
    let collect = cluster.collect.http();
    // Saturation.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..posters {
        let (http, next) = (http.clone(), next.clone());
        tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= messages {
                    break;
                }
                post(&http, collect, k % users, r * 2).await;
            }
        });
    }
    receive(rx, r * 2, messages).await;
    let msgs_per_sec = messages as f64 / started.elapsed().as_secs_f64();

    // Half that rate, paced from one ticker spread over the posters.
    let paced_rate = msgs_per_sec / 2.0;
    let gap = Duration::from_secs_f64(1.0 / paced_rate);
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for k in 0..messages {
        tick.tick().await;
        let http = http.clone();
        tokio::spawn(async move { post(&http, collect, k % users, r * 2 + 1).await });
    }
    let mut lat = receive(rx, r * 2 + 1, messages).await;
    lat.sort_unstable();
    Round {
        msgs_per_sec,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        paced_rate,
    }
}

/// Sums `pushd_stage_seconds` (sum, count) per stage over the given roles' `/metrics`.
async fn stages(addrs: &[SocketAddr]) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for addr in addrs {
        let (_, body) = common::http_request(*addr, "GET", "/metrics", None, "").await;
        for line in String::from_utf8_lossy(&body).lines() {
            let Some(rest) = line.strip_prefix("pushd_stage_seconds_") else {
                continue;
            };
            let (kind, rest) = rest.split_once('{').unwrap_or(("", ""));
            let Some(stage) = rest
                .strip_prefix("stage=\"")
                .and_then(|r| r.split_once('"'))
            else {
                continue;
            };
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap_or(0.0);
            let e = out.entry(stage.0.to_owned()).or_default();
            match kind {
                "sum" => e.0 += value,
                "count" => e.1 += value,
                _ => {}
            }
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn run() {
    let users = env_usize("PUSHD_BENCH_USERS", 300);
    let messages = env_usize("PUSHD_BENCH_MESSAGES", 1000);
    let posters = env_usize("PUSHD_BENCH_POSTERS", 32);
    let rounds = env_usize("PUSHD_BENCH_ROUNDS", 3);
    let redis = Redis::start()
        .await
        .expect("redis-server: run `make tools`");
    let mongo = Mongo::start()
        .await
        .expect("FerretDB (or MONGODB_URI): run `make tools`");
    // Every client connects from 127.0.0.1: no per-IP connect rate here.
    let mut options = local(redis.url.clone());
    options.push_args.push("--connect-rate-per-ip=0".into());
    let cluster = Cluster::start(&mongo, &options).await;
    let nodes: Vec<SocketAddr> = cluster.pushes.iter().map(|p| p.http()).collect();
    let mut rx = clients(&nodes, users).await;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    println!(
        "cluster_throughput: {users} clients on 3 push nodes, {messages} unicast messages per phase, {posters} producers, store {}",
        if std::env::var("MONGODB_URI").is_ok() {
            "MongoDB"
        } else {
            "FerretDB"
        }
    );
    let mut all = Vec::new();
    for r in 0..rounds as u64 {
        let res = round(&cluster, &http, &mut rx, r + 1, users, messages, posters).await;
        println!(
            "round {}: {:.0} msgs/s end to end; at {:.0} msgs/s: p50 {:.1} ms, p99 {:.1} ms",
            r + 1,
            res.msgs_per_sec,
            res.paced_rate,
            res.p50_ms,
            res.p99_ms
        );
        all.push(res);
    }
    println!(
        "median of {rounds}: {:.0} msgs/s; at half rate p50 {:.1} ms, p99 {:.1} ms",
        median(all.iter().map(|r| r.msgs_per_sec).collect()),
        median(all.iter().map(|r| r.p50_ms).collect()),
        median(all.iter().map(|r| r.p99_ms).collect()),
    );
    let mut roles: Vec<SocketAddr> = vec![cluster.collect.admin];
    roles.extend(cluster.dispatch.iter().map(|d| d.admin));
    roles.extend(cluster.pushes.iter().map(|p| p.admin));
    println!("where the time goes (all rounds, mean per observation):");
    for (stage, (sum, count)) in stages(&roles).await {
        println!(
            "  {stage:<13} {:>9.3} ms  ({count:.0} observations)",
            sum * 1000.0 / count.max(1.0)
        );
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
