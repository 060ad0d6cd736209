//! APNs sender throughput and proxy latency against the fake APNs (not a timed test).
//!
//! `cargo bench -p pushcluster-apns --bench apns_throughput` (release). Measures, each as the
//! median of a few rounds:
//! - notifications/s through squid on 1 HTTP/2 connection and on several (and direct, for
//!   comparison), with up to 256 requests in flight;
//! - the latency of one request at a time, direct and via squid: the difference is what the
//!   proxy hop adds.
//!
//! Environment: `APNS_BENCH_N` (notifications per throughput round, default 20000),
//! `APNS_BENCH_ROUNDS` (default 3), `APNS_BENCH_CONNECTIONS` (the "several", default 4).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Harness, notification};
use pushcluster_apns::{ApnsSender, DeliveryState};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn sender(h: &Harness, via_proxy: bool, connections: usize) -> ApnsSender {
    let mut config = h.config();
    if !via_proxy {
        config.proxy = None;
    }
    config.connections = connections;
    config.concurrency = 256;
    config.request_timeout = Duration::from_secs(30);
    h.sender(config).0
}

/// Notifications per second for `n` notifications sent at once (the sender limits in-flight).
async fn throughput(sender: &ApnsSender, n: usize, base: u32) -> f64 {
    // Warm up: open every connection before timing.
    for i in 0..8 {
        assert_eq!(
            sender.deliver(&notification(base + i)).await.state(),
            DeliveryState::Accepted
        );
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..n as u32)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move { sender.deliver(&notification(base + 100 + i)).await })
        })
        .collect();
    for t in tasks {
        let d = t.await.expect("task");
        assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
        assert_eq!(d.attempts, 1);
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Median latency (µs) of `n` requests sent one after the other.
async fn latency(sender: &ApnsSender, n: usize, base: u32) -> f64 {
    assert_eq!(
        sender.deliver(&notification(base)).await.state(),
        DeliveryState::Accepted
    );
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let started = Instant::now();
        let d = sender.deliver(&notification(base + 1 + i)).await;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(d.state(), DeliveryState::Accepted);
    }
    median(samples)
}

#[tokio::main]
async fn main() {
    let n = env("APNS_BENCH_N", 20000);
    let rounds = env("APNS_BENCH_ROUNDS", 3);
    let several = env("APNS_BENCH_CONNECTIONS", 4);
    let Some(h) = Harness::via_squid().await else {
        eprintln!("squid missing: benchmark skipped (run `make tools`)");
        return;
    };
    println!(
        "APNs sender benchmark: fake APNs (HTTP/2, TLS, ES256 check) on 127.0.0.1, squid with basic auth"
    );
    println!("{n} notifications per round, up to 256 in flight, median of {rounds} rounds\n");
    println!("{:<34} {:>14}", "throughput", "notifications/s");
    let mut base = 1_000_000u32;
    for (label, via_proxy, conns) in [
        ("direct, 1 connection", false, 1),
        ("via squid, 1 connection", true, 1),
        (&*format!("direct, {several} connections"), false, several),
        (&*format!("via squid, {several} connections"), true, several),
    ] {
        let mut results = Vec::new();
        for _ in 0..rounds {
            let s = sender(&h, via_proxy, conns);
            results.push(throughput(&s, n, base).await);
            base += n as u32 + 1000;
        }
        println!(
            "{label:<34} {:>14.0}   (rounds: {})",
            median(results.clone()),
            fmt_rounds(&results)
        );
    }
    println!(
        "\n{:<34} {:>14}",
        "latency, one request at a time", "median µs"
    );
    let per_round = 500;
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(latency(&sender(&h, false, 1), per_round, base).await);
        base += per_round as u32 + 10;
        proxied.push(latency(&sender(&h, true, 1), per_round, base).await);
        base += per_round as u32 + 10;
    }
    let (d, p) = (median(direct), median(proxied));
    println!("{:<34} {:>14.0}", "direct", d);
    println!("{:<34} {:>14.0}", "via squid", p);
    println!("{:<34} {:>14.0}", "added by the proxy hop", p - d);
    println!(
        "\nfake APNs saw {} requests on {} connections",
        h.apns.requests().len(),
        h.apns.connections()
    );
}

fn fmt_rounds(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
