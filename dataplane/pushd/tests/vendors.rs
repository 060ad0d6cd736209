//! Every push vendor end to end, with the real `pushd` binary and the fake vendors over TLS on
//! loopback: only APNs goes through the proxy (squid's log shows its tunnel and nothing else,
//! even with `HTTPS_PROXY` set), and in the cluster an offline user's devices on all five
//! platforms get one notification each while a connected user's get none.

mod common;

use std::path::Path;

use common::cluster::{Cluster, local};
use common::*;
use pushcluster_test_support::apns::FakeApns;
use pushcluster_test_support::fcm::FakeFcm;
use pushcluster_test_support::hms::{self, FakeHms};
use pushcluster_test_support::https::FakeVendor;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use pushcluster_test_support::squid::Squid;
use pushcluster_test_support::vivo::{self, FakeVivo};
use pushcluster_test_support::xiaomi::{self, FakeXiaomi};
use serde_json::{Value, json};

const PROXY_USER: &str = "apns-relay";
const PROXY_PASSWORD: &str = "s3cret-proxy-pass";

/// The five fake vendors.
struct Fakes {
    apns: FakeApns,
    fcm: FakeFcm,
    hms: FakeHms,
    xiaomi: FakeXiaomi,
    vivo: FakeVivo,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            apns: FakeApns::start().await,
            fcm: FakeFcm::start().await,
            hms: FakeHms::start().await,
            xiaomi: FakeXiaomi::start().await,
            vivo: FakeVivo::start().await,
        }
    }

    /// Copies delivered to `user`'s device on `platform` (see [`tokens`]).
    fn delivered(&self, platform: &str, token: &str) -> usize {
        match platform {
            "apns" => self.apns.delivered_to(token).len(),
            "fcm" => self.fcm.delivered_to(token).len(),
            "hms" => self.hms.delivered_to(token).len(),
            "xiaomi" => self.xiaomi.delivered_to(token).len(),
            "vivo" => self.vivo.delivered_to(token).len(),
            other => panic!("no platform {other}"),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The flags that send to the fakes of `platforms`, their files written to `dir`.
fn flags(f: &Fakes, dir: &Path, platforms: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for p in platforms {
        match *p {
            "apns" => v.extend(f.apns.flags(dir)),
            "fcm" => v.extend([
                format!(
                    "--fcm-credentials-file={}",
                    write(dir, "sa.json", &f.fcm.service_account_json())
                ),
                format!("--fcm-endpoint={}", f.fcm.url()),
                format!("--fcm-ca-file={}", write(dir, "fcm-ca.pem", f.fcm.ca_pem())),
                "--fcm-request-timeout=5s".into(),
            ]),
            "hms" => v.extend([
                format!("--hms-app-id={}", hms::APP_ID),
                format!(
                    "--hms-client-secret-file={}",
                    write(dir, "hms-secret", hms::CLIENT_SECRET)
                ),
                format!("--hms-endpoint={}", f.hms.url()),
                format!("--hms-oauth-endpoint={}", f.hms.url()),
                format!("--hms-ca-file={}", write(dir, "hms-ca.pem", f.hms.ca_pem())),
                "--hms-request-timeout=5s".into(),
            ]),
            "xiaomi" => v.extend([
                format!(
                    "--xiaomi-app-secret-file={}",
                    write(dir, "xiaomi-secret", xiaomi::APP_SECRET)
                ),
                format!("--xiaomi-package={}", xiaomi::PACKAGE),
                format!("--xiaomi-endpoint={}", f.xiaomi.url()),
                format!(
                    "--xiaomi-ca-file={}",
                    write(dir, "xiaomi-ca.pem", f.xiaomi.ca_pem())
                ),
                "--xiaomi-request-timeout=5s".into(),
            ]),
            "vivo" => v.extend([
                format!("--vivo-app-id={}", vivo::APP_ID),
                format!("--vivo-app-key={}", vivo::APP_KEY),
                format!(
                    "--vivo-app-secret-file={}",
                    write(dir, "vivo-secret", vivo::APP_SECRET)
                ),
                format!("--vivo-endpoint={}", f.vivo.url()),
                format!(
                    "--vivo-ca-file={}",
                    write(dir, "vivo-ca.pem", f.vivo.ca_pem())
                ),
                "--vivo-request-timeout=5s".into(),
            ]),
            other => panic!("no platform {other}"),
        }
    }
    v
}

/// A token per platform for user number `n`, each in its vendor's format.
fn tokens(n: u32) -> Vec<(&'static str, String)> {
    vec![
        ("apns", format!("{n:064x}")),
        ("fcm", format!("fcm{n}:APA91b{}", "Xy-_".repeat(30))),
        ("hms", format!("IQAAAACy0{n:04}AAAARd{}", "aB3-".repeat(25))),
        (
            "xiaomi",
            format!("d//igwEhgBGCI2TG6lWqlK8gRrx/VACnGKya{n:04}B7Fk="),
        ),
        ("vivo", format!("1550312507083116{n:07}")),
    ]
}

async fn register(api: std::net::SocketAddr, user: &str, platform: &str, token: &str) {
    let body = json!({"user": user, "platform": platform, "token": token}).to_string();
    let (code, resp) = http_request(api, "POST", "/v1/devices", Some(body), API_KEY).await;
    assert_eq!(code, 201, "{platform}: {}", String::from_utf8_lossy(&resp));
}

async fn status(api: std::net::SocketAddr, id: &str) -> Value {
    let (code, body) = http_request(api, "GET", &format!("/v1/messages/{id}"), None, API_KEY).await;
    assert_eq!(code, 200);
    serde_json::from_slice(&body).unwrap()
}

/// The message's mobile records once `n` exist and none is pending.
async fn settled(api: std::net::SocketAddr, id: &str, n: usize) -> Vec<Value> {
    eventually(|| async {
        let s = status(api, id).await;
        let records = s["mobile"].as_array().cloned().unwrap_or_default();
        (records.len() == n && records.iter().all(|r| r["state"] != "pending")).then_some(records)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_apns_goes_through_the_proxy_even_with_https_proxy_set() {
    let f = Fakes::start().await;
    // squid would tunnel to any of the three: a vendor client that used it would show.
    let ports = [f.apns.port(), f.fcm.port(), f.hms.port()];
    let Some(squid) = Squid::start(PROXY_USER, PROXY_PASSWORD, &ports).await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut args = flags(&f, files.path(), &["apns", "fcm", "hms"]);
    args.push(format!(
        "--apns-proxy=http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}",
        squid.port
    ));
    let proxy = squid.url_with_credentials();
    let envs = [
        ("HTTPS_PROXY", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start_with_env(data.path(), &args, &envs).await;
    let devices: Vec<_> = tokens(1).into_iter().take(3).collect();
    for (platform, token) in &devices {
        register(server.addr, "roamer", platform, token).await;
    }
    let (code, body) = server
        .post(json!({"to": ["roamer"], "payload": 1, "notification": {"title": "Hi", "body": "there"}}))
        .await;
    assert_eq!(code, 202, "{body}");
    let records = settled(server.addr, body["id"].as_str().unwrap(), 3).await;
    for r in &records {
        assert_eq!(
            (r["state"].as_str(), r["attempts"].as_u64()),
            (Some("accepted"), Some(1)),
            "{r}"
        );
        assert!(r["vendor_id"].is_string(), "{r}");
    }
    for (platform, token) in &devices {
        assert_eq!(
            f.delivered(platform, token),
            1,
            "{platform}: exactly one notification"
        );
    }
    // The tunnels are logged when they close: stop pushd first.
    server.child.kill().await.unwrap();
    let apns_connections = f.apns.connections() as usize;
    let log = eventually(|| async {
        let log = squid.access_log();
        let tunnels = log.iter().filter(|l| l.contains("TCP_TUNNEL/200")).count();
        (tunnels >= apns_connections).then_some(log)
    })
    .await;
    let to = |port: u16| format!("127.0.0.1:{port}");
    // squid also logs the harness's readiness probe (a connection without a request).
    let log: Vec<&String> = log
        .iter()
        .filter(|l| !l.contains("error:transaction-end-before-headers"))
        .collect();
    assert!(!log.is_empty());
    for line in &log {
        assert!(
            line.contains(&to(f.apns.port()))
                && line.contains("TCP_TUNNEL/200")
                && line.contains(PROXY_USER),
            "squid saw something other than the APNs tunnel: {line}"
        );
    }
    assert_eq!(log.len(), apns_connections, "{log:?}");
    assert!(
        f.fcm.connections() >= 1 && f.hms.connections() >= 1,
        "FCM and Huawei were reached directly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_devices_on_all_five_platforms_get_one_notification_and_connected_ones_none() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let f = Fakes::start().await;
    let files = tempfile::tempdir().unwrap();
    let mut options = local(redis.url.clone());
    // (Dispatch always has MongoDB: the outbox, and here the devices and records.)
    options.dispatch_args = flags(&f, files.path(), &["apns", "fcm", "hms", "xiaomi", "vivo"]);
    let cluster = Cluster::start(&mongo, &options).await;
    let api = cluster.collect.http();
    let (offline, online) = (tokens(10), tokens(20));
    for (platform, token) in &offline {
        register(api, "away", platform, token).await;
    }
    for (platform, token) in &online {
        register(api, "here", platform, token).await;
    }
    let (code, listed) = http_request(api, "GET", "/v1/devices?user=away", None, API_KEY).await;
    assert_eq!(code, 200);
    let listed: Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(listed["devices"].as_array().unwrap().len(), 5, "{listed}");
    assert_eq!(listed["truncated"], false);

    // "here" is connected to a push node (the welcome frame means it is routed).
    let url = format!(
        "ws://{}/ws?token={}",
        cluster.pushes[0].http(),
        token("here")
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let mut here = Client { ws };
    assert_eq!(here.next_frame().await.unwrap()["type"], "welcome");

    let (code, body) = cluster
        .post(
            json!({"to": ["away", "here"], "payload": {"n": 1}, "mobile": "offline",
                     "notification": {"title": "Order", "body": "shipped", "data": {"order": 42}}}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        here.next_message().await.id,
        id,
        "the connected user gets it on its socket"
    );
    let records = settled(api, &id, 5).await;
    let mut platforms: Vec<&str> = records
        .iter()
        .map(|r| r["platform"].as_str().unwrap())
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["apns", "fcm", "hms", "vivo", "xiaomi"]);
    for r in &records {
        assert_eq!(r["user"], "away", "{r}");
        assert_eq!(r["state"], "accepted", "{r}");
        assert!(r["vendor_id"].is_string(), "{r}");
    }
    for (platform, token) in &offline {
        assert_eq!(
            f.delivered(platform, token),
            1,
            "{platform}: one notification"
        );
    }
    for (platform, token) in &online {
        assert_eq!(
            f.delivered(platform, token),
            0,
            "{platform}: a connected user gets no push"
        );
    }
    here.close().await;
}
