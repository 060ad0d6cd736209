//! Mobile push end to end: devices registered over the HTTP API, messages with a
//! `notification` reaching a fake APNs — in the cluster through a real squid — and the
//! per-device records `GET /v1/messages/{id}` shows.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, local};
use common::*;
use pushcluster_test_support::apns::{FakeApns, Reply};
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use pushcluster_test_support::squid::Squid;
use serde_json::{Value, json};

const PROXY_USER: &str = "apns-relay";
const PROXY_PASSWORD: &str = "s3cret-proxy-pass";

async fn register(addr: std::net::SocketAddr, user: &str, token: &str) -> (u16, Value) {
    let body = json!({"user": user, "platform": "apns", "token": token});
    request(addr, "POST", "/v1/devices", Some(body)).await
}

async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, bytes) =
        http_request(addr, method, path, body.map(|b| b.to_string()), API_KEY).await;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

async fn status(addr: std::net::SocketAddr, id: &str) -> Value {
    let (code, body) = request(addr, "GET", &format!("/v1/messages/{id}"), None).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// The message's mobile records once none is pending.
async fn settled(addr: std::net::SocketAddr, id: &str, n: usize) -> Vec<Value> {
    eventually(|| async {
        let s = status(addr, id).await;
        let records = s["mobile"].as_array().cloned().unwrap_or_default();
        (records.len() == n && records.iter().all(|r| r["state"] != "pending")).then_some(records)
    })
    .await
}

async fn post(addr: std::net::SocketAddr, body: Value) -> String {
    let (code, body) = post_message(addr, &body).await;
    assert_eq!(code, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_users_get_apns_notifications_through_squid() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let apns = FakeApns::start().await;
    let Some(squid) = Squid::start(PROXY_USER, PROXY_PASSWORD, &[apns.port()]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("proxy-credentials");
    std::fs::write(&creds, format!("{PROXY_USER}:{PROXY_PASSWORD}")).unwrap();
    let mut options = local(redis.url.clone());
    options.dispatch_args = apns.flags(dir.path());
    options.dispatch_args.extend([
        format!("--apns-proxy=http://127.0.0.1:{}", squid.port),
        format!("--apns-proxy-credentials-file={}", creds.display()),
    ]);
    let cluster = Cluster::start(&mongo, &options).await;
    let api = cluster.collect.http();

    // An offline user's device, registered (201), then again (200: same device).
    let (t1, t2) = ("a1b2".repeat(16), "c3d4".repeat(16));
    let (code, body) = register(api, "ios-user", &t1.to_uppercase()).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        (body["user"].as_str(), body["token"].as_str()),
        (Some("ios-user"), Some(t1.as_str()))
    );
    let (code, body) = register(api, "ios-user", &t1).await;
    assert_eq!(code, 200, "{body}");

    let id = post(
        api,
        json!({"to": ["ios-user"], "payload": {"order": 42},
               "notification": {"title": "Hello", "body": "Your order shipped", "badge": 1}}),
    )
    .await;
    let records = settled(api, &id, 1).await;
    let r = &records[0];
    assert_eq!(r["state"], "accepted", "{r}");
    assert_eq!(r["attempts"], 1, "{r}");
    assert_eq!(
        (r["user"].as_str(), r["token"].as_str()),
        (Some("ios-user"), Some(t1.as_str()))
    );
    assert_eq!(r["platform"], "apns");
    let got = apns.requests_for(&t1);
    assert_eq!(got.len(), 1, "exactly one APNs request: {got:?}");
    assert_eq!(got[0].apns_id.as_deref(), r["apns_id"].as_str());
    assert_eq!(got[0].topic.as_deref(), Some(apns.topic.as_str()));
    let payload: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(payload["aps"]["alert"]["title"], "Hello", "{payload}");
    assert_eq!(payload["aps"]["badge"], 1, "{payload}");
    // The WebSocket side is untouched: the message waits for the user as before.
    let s = status(api, &id).await;
    assert_eq!(s["recipients"][0]["state"], "pending", "{s}");

    // 410: the device is marked dead and gets nothing more.
    assert_eq!(register(api, "gone-user", &t2).await.0, 201);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    apns.script(&t2, [Reply::Unregistered { timestamp_ms: now }]);
    let gone = post(
        api,
        json!({"to": ["gone-user"], "payload": 1, "notification": {"body": "one"}}),
    )
    .await;
    let records = settled(api, &gone, 1).await;
    assert_eq!(records[0]["state"], "rejected", "{records:?}");
    assert_eq!(records[0]["reason"], "Unregistered", "{records:?}");
    assert_eq!(records[0]["attempts"], 1, "{records:?}");

    // `mobile: never`, and the dead device, next to a marker that must arrive.
    let never = post(
        api,
        json!({"to": ["ios-user"], "payload": 2, "mobile": "never",
               "notification": {"body": "not for phones"}}),
    )
    .await;
    let again = post(
        api,
        json!({"to": ["gone-user", "ios-user"], "payload": 3, "notification": {"body": "two"}}),
    )
    .await;
    let records = settled(api, &again, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records_later = status(api, &again).await["mobile"].clone();
    assert_eq!(
        records_later.as_array().unwrap().len(),
        1,
        "{records_later}"
    );
    assert_eq!(records[0]["token"].as_str(), Some(t1.as_str()));
    assert_eq!(
        apns.requests_for(&t2).len(),
        1,
        "a dead device is not sent to again"
    );
    assert!(status(api, &never).await.get("mobile").is_none());
    assert_eq!(apns.requests_for(&t1).len(), 2, "`never` sent nothing");

    // Every connection the fake accepted came through squid as our user: the tunnels are
    // logged when they close, so stop the dispatchers first.
    for d in &cluster.dispatch {
        d.sigkill();
    }
    let connections = apns.connections() as usize;
    assert!(connections >= 1);
    let tunnels = eventually(|| async {
        let log = squid.access_log();
        let tunnels: Vec<String> = log
            .into_iter()
            .filter(|l| {
                l.contains("TCP_TUNNEL/200") && l.contains(&format!("127.0.0.1:{}", apns.port()))
            })
            .collect();
        (tunnels.len() >= connections).then_some(tunnels)
    })
    .await;
    assert_eq!(tunnels.len(), connections, "{tunnels:?}");
    assert!(
        tunnels.iter().all(|l| l.contains(PROXY_USER)),
        "{tunnels:?}"
    );
}

#[tokio::test]
async fn standalone_devices_api_validates_and_connected_users_get_no_push() {
    let apns = FakeApns::start().await;
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let flags = apns.flags(keys.path());
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(data.path(), &args).await;
    let ok = "0f".repeat(32);

    let (code, _) = server
        .request("POST", "/v1/devices", Some("{}".into()), "wrong-key")
        .await;
    assert_eq!(code, 401);
    let bad = [
        (json!({"platform": "apns", "token": ok}), "user"),
        (
            json!({"user": "u", "platform": "gcm", "token": ok}),
            "platform",
        ),
        (
            json!({"user": "u", "platform": "fcm", "token": ok}),
            "token",
        ),
        (json!({"user": "u", "token": ok}), "platform"),
        (json!({"user": "u", "platform": "apns"}), "token"),
        (
            json!({"user": "u", "platform": "apns", "token": "zz".repeat(32)}),
            "token",
        ),
        (
            json!({"user": "u", "platform": "apns", "token": "ab".repeat(16)}),
            "token",
        ),
        (
            json!({"user": "u", "platform": "apns", "token": format!("{ok}a")}),
            "token",
        ),
        (
            json!({"user": "u", "platform": "apns", "token": ok, "topic": ""}),
            "topic",
        ),
    ];
    for (body, field) in bad {
        let (code, resp) = server
            .request("POST", "/v1/devices", Some(body.to_string()), API_KEY)
            .await;
        assert_eq!(code, 400, "{body}: {resp}");
        assert_eq!(resp["field"], field, "{body}: {resp}");
        assert!(resp["error"].as_str().unwrap().contains(field), "{resp}");
    }
    let (code, resp) = server
        .request("POST", "/v1/devices", Some("{nope".into()), API_KEY)
        .await;
    assert_eq!(code, 400, "{resp}");
    let (code, resp) = server.request("GET", "/v1/devices", None, API_KEY).await;
    assert_eq!(
        (code, resp["field"].as_str()),
        (400, Some("user")),
        "{resp}"
    );
    let (code, _) = server.request("PUT", "/v1/devices", None, API_KEY).await;
    assert_eq!(code, 405);
    let (code, resp) = server
        .request("DELETE", "/v1/devices/not%20a%20token", None, API_KEY)
        .await;
    assert_eq!(
        (code, resp["field"].as_str()),
        (400, Some("token")),
        "{resp}"
    );
    for (body, field) in [
        (
            json!({"to": ["u"], "payload": 1, "mobile": "sometimes"}),
            "mobile",
        ),
        (
            json!({"to": ["u"], "payload": 1, "mobile": "always"}),
            "mobile",
        ),
        (
            json!({"to": ["u"], "payload": 1, "notification": {"badge": -1}}),
            "notification",
        ),
        (
            json!({"to": ["u"], "payload": 1, "notification": {"titel": "x"}}),
            "notification",
        ),
    ] {
        let (code, resp) = server.post(body.clone()).await;
        assert_eq!(
            (code, resp["field"].as_str()),
            (400, Some(field)),
            "{body}: {resp}"
        );
    }

    // Register, send to an offline and to a connected user, delete.
    let (on, off) = ("1a".repeat(32), "2b".repeat(32));
    assert_eq!(register(server.addr, "online", &on).await.0, 201);
    assert_eq!(register(server.addr, "offline", &off).await.0, 201);
    let mut client = server.connect("online").await;
    let id = server
        .post(json!({"to": ["online", "offline"], "payload": 1, "notification": {"title": "t"}}))
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client.receive_and_ack(1).await;
    let records = settled(server.addr, &id, 1).await;
    assert_eq!(records[0]["user"], "offline", "{records:?}");
    assert_eq!(records[0]["state"], "accepted", "{records:?}");
    assert!(
        apns.requests_for(&on).is_empty(),
        "a connected user gets no push"
    );
    assert_eq!(apns.requests_for(&off).len(), 1);

    let path = format!("/v1/devices/{}", off.to_uppercase());
    let (code, _) = server.raw_request("DELETE", &path, None, API_KEY).await;
    assert_eq!(code, 204);
    let (code, resp) = server.request("DELETE", &path, None, API_KEY).await;
    assert_eq!(
        (code, resp["field"].as_str()),
        (404, Some("token")),
        "{resp}"
    );
    client.close().await;
}
