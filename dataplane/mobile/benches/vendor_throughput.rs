//! Throughput of each direct vendor's sender against its fake, over one connection (not a
//! timed test).
//!
//! `cargo bench -p pushcluster-mobile --bench vendor_throughput` (release). For each vendor,
//! the median of a few rounds of notifications/s and the process CPU time per notification
//! (sender and fake share the process and its tokio runtime, as in the APNs benchmark):
//! - FCM and Huawei speak HTTP/2: up to 256 requests in flight on one connection; Huawei
//!   also as one message to many devices (its batching: up to 1,000 tokens a request);
//! - Xiaomi and vivo fakes speak HTTP/1.1: one request at a time (`--…-concurrency 1`), on
//!   one keep-alive connection (hyper's pool may open a second when a response races the
//!   next request; the count is printed).
//!
//! Environment: `VENDOR_BENCH_N` (notifications per round, default 10000),
//! `VENDOR_BENCH_ROUNDS` (default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fast, request};
use pushcluster_mobile::fcm::{FcmConfig, FcmSender, auth::ServiceAccount};
use pushcluster_mobile::hms::{HmsConfig, HmsSender};
use pushcluster_mobile::http::DirectConfig;
use pushcluster_mobile::secret::Secret;
use pushcluster_mobile::vivo::{VivoConfig, VivoSender};
use pushcluster_mobile::xiaomi::{XiaomiConfig, XiaomiSender};
use pushcluster_mobile::{MobileMetrics, MobileSender};
use pushcluster_proto::api::{MobileState, Platform};
use pushcluster_test_support::https::FakeVendor;
use pushcluster_test_support::{fcm, hms, vivo, xiaomi};

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

/// User + system CPU seconds of this process so far (from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based); `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

fn direct(url: &str, ca: &str, concurrency: usize) -> DirectConfig {
    let mut d = DirectConfig::new(url.parse().unwrap());
    fast(&mut d, ca);
    d.request_timeout = Duration::from_secs(30);
    d.concurrency = concurrency;
    d
}

/// `n` notifications at once (the sender bounds what is in flight); `one_message`: all of
/// the same message (Huawei batches those). Returns (notifications/s, CPU µs each).
async fn round(
    sender: Arc<dyn MobileSender>,
    platform: Platform,
    token: fn(usize) -> String,
    n: usize,
    one_message: bool,
) -> (f64, f64) {
    for i in 0..4 {
        let r = sender.send(&request(platform, &token(i), "warm")).await;
        assert_eq!(r.state, MobileState::Accepted, "{r:?}");
    }
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let sender = sender.clone();
            let id = if one_message {
                "bulk".to_owned()
            } else {
                format!("m{i}")
            };
            let req = request(platform, &token(10 + i), &id);
            tokio::spawn(async move { sender.send(&req).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!((r.state, r.attempts), (MobileState::Accepted, 1), "{r:?}");
    }
    let secs = started.elapsed().as_secs_f64();
    (n as f64 / secs, (cpu_seconds() - cpu) * 1e6 / n as f64)
}

async fn report(
    name: &str,
    make: impl AsyncFn() -> Arc<dyn MobileSender>,
    platform: Platform,
    token: fn(usize) -> String,
    n: usize,
    rounds: usize,
    one_message: bool,
) {
    let (mut rates, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (rate, cpu) = round(make().await, platform, token, n, one_message).await;
        rates.push(rate);
        cpus.push(cpu);
    }
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "{name:<44} {:>9.0} notifications/s (rounds {}), {:.0} µs CPU each",
        median(rates),
        list.join(" / "),
        median(cpus)
    );
}

fn fcm_token(i: usize) -> String {
    format!("fcm{i}:APA91b{}", "x".repeat(140))
}
fn hms_token(i: usize) -> String {
    format!("IQAAAACy0kYq{i:06}{}", "Ab-_".repeat(24))
}
fn xiaomi_token(i: usize) -> String {
    format!("d//igwEhgBGCI2TG6lWqlK8gRrx/VAC{i:08}B7Fk=")
}
fn vivo_token(i: usize) -> String {
    format!("15503125070{i:012}")
}

#[tokio::main]
async fn main() {
    let n = env("VENDOR_BENCH_N", 10_000);
    let rounds = env("VENDOR_BENCH_ROUNDS", 3);
    let serial = (n / 5).max(100);
    println!("{n} notifications per round ({serial} for HTTP/1.1), median of {rounds} rounds");

    let f = fcm::FakeFcm::start().await;
    let fcm_make = async || -> Arc<dyn MobileSender> {
        let account = ServiceAccount::from_json(f.service_account_json().as_bytes()).unwrap();
        let config = FcmConfig {
            project_id: fcm::PROJECT.into(),
            account,
            direct: direct(&f.url(), f.ca_pem(), 256),
            quota_backoff: Duration::from_secs(60),
        };
        let sender: Arc<dyn MobileSender> =
            Arc::new(FcmSender::new(config, MobileMetrics::default()).unwrap());
        sender
    };
    report(
        "FCM, HTTP/2, 1 connection, 256 in flight",
        fcm_make,
        Platform::Fcm,
        fcm_token,
        n,
        rounds,
        false,
    )
    .await;
    println!(
        "  (FCM: {} connections for {rounds} rounds)",
        f.connections()
    );

    let h = hms::FakeHms::start().await;
    let hms_make = async || -> Arc<dyn MobileSender> {
        let config = HmsConfig {
            app_id: hms::APP_ID.into(),
            client_id: hms::APP_ID.into(),
            client_secret: Secret::new(hms::CLIENT_SECRET),
            oauth: h.url().parse().unwrap(),
            direct: direct(&h.url(), h.ca_pem(), 256),
            linger: Duration::from_millis(10),
            max_batch: 1000,
        };
        let sender: Arc<dyn MobileSender> =
            Arc::new(HmsSender::new(config, MobileMetrics::default()).unwrap());
        sender
    };
    report(
        "Huawei, HTTP/2, 1 conn, 1 token a request",
        &hms_make,
        Platform::Hms,
        hms_token,
        n,
        rounds,
        false,
    )
    .await;
    report(
        "Huawei, HTTP/2, 1 conn, one message (batched)",
        &hms_make,
        Platform::Hms,
        hms_token,
        n,
        rounds,
        true,
    )
    .await;

    let x = xiaomi::FakeXiaomi::start().await;
    let xiaomi_make = async || -> Arc<dyn MobileSender> {
        let config = XiaomiConfig {
            package: xiaomi::PACKAGE.into(),
            app_secret: Secret::new(xiaomi::APP_SECRET),
            direct: direct(&x.url(), x.ca_pem(), 1),
        };
        let sender: Arc<dyn MobileSender> =
            Arc::new(XiaomiSender::new(config, MobileMetrics::default()).unwrap());
        sender
    };
    report(
        "Xiaomi, HTTP/1.1, 1 connection",
        xiaomi_make,
        Platform::Xiaomi,
        xiaomi_token,
        serial,
        rounds,
        false,
    )
    .await;
    println!(
        "  (Xiaomi: {} connections for {rounds} rounds)",
        x.connections()
    );

    let v = vivo::FakeVivo::start().await;
    let vivo_make = async || -> Arc<dyn MobileSender> {
        let config = VivoConfig {
            app_id: vivo::APP_ID,
            app_key: vivo::APP_KEY.into(),
            app_secret: Secret::new(vivo::APP_SECRET),
            direct: direct(&v.url(), v.ca_pem(), 1),
        };
        let sender: Arc<dyn MobileSender> =
            Arc::new(VivoSender::new(config, MobileMetrics::default()).unwrap());
        sender
    };
    report(
        "vivo, HTTP/1.1, 1 connection",
        vivo_make,
        Platform::Vivo,
        vivo_token,
        serial,
        rounds,
        false,
    )
    .await;
    println!(
        "  (vivo: {} connections for {rounds} rounds)",
        v.connections()
    );
}
