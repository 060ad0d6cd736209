//! Every door of the edge, on real processes: HTTP routing and errors, the admin port, load
//! shedding, connection limits, byte-bounded send queues (standalone); API keys on gRPC
//! `Submit`, the internal token on `Node`, `Dispatch` and `Auth`, and mutual TLS between the
//! roles (cluster roles with real Redis and a MongoDB-compatible server).

mod common;

use std::collections::BTreeSet;

use common::*;
use futures_util::StreamExt;
use pushcluster_proto::grpc::auth_client::AuthClient;
use pushcluster_proto::grpc::collect_client::CollectClient;
use pushcluster_proto::grpc::dispatch_client::DispatchClient;
use pushcluster_proto::grpc::node_client::NodeClient;
use pushcluster_proto::grpc::{SubmitRequest, VerifyRequest, WakeRequest};
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::pki::Ca;
use pushcluster_test_support::redis::Redis;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;
use tonic::transport::{Channel, Endpoint};

/// The refusal of a WebSocket connect: status, headers, JSON body.
async fn refused(url: &str) -> (u16, http::HeaderMap, Value) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(resp)) => {
            let body = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("a JSON body");
            (resp.status().as_u16(), resp.headers().clone(), body)
        }
        Ok(_) => panic!("{url}: connected, expected a refusal"),
        Err(e) => panic!("{url}: {e}"),
    }
}

async fn raw(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    server
        .request(method, path, body.map(str::to_owned), API_KEY)
        .await
}

#[tokio::test]
async fn paths_route_exactly_and_every_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let id = server.send(&["ann"], json!(1)).await;
    assert_eq!(
        raw(&server, "GET", &format!("/v1/messages/{id}"), None)
            .await
            .0,
        200
    );
    // Before: answered by prefix (`/v1/messagesZ<id>` gave the status, `X/<id>` a 405).
    for path in [
        format!("/v1/messagesZ{id}"),
        format!("/v1/messagesX/{id}"),
        format!("/v1/messages/{id}/more"),
        "/v1/devicesX".to_owned(),
        "/nowhere".to_owned(),
    ] {
        let (status, body) = raw(&server, "GET", &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], format!("no route for {path}"), "{path}");
    }
    // A known path with another method: 405, JSON, with Allow.
    let (status, bytes) = server
        .raw_request("DELETE", "/v1/messages", None, API_KEY)
        .await;
    assert_eq!(status, 405);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"], "method not allowed; use POST");
    // A body over the limit: 413 from axum's own rejection, made JSON.
    let (status, body) = raw(&server, "POST", "/v1/devices", Some(&"x".repeat(5000))).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("length limit"),
        "{body}"
    );
    // Not a WebSocket request on /ws: 400 JSON; another method: 405 JSON.
    let (status, body) = raw(&server, "GET", "/ws", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("WebSocket"));
    let (status, body) = raw(&server, "POST", "/ws", Some("")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method not allowed; use GET,HEAD"))
    );
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let (status, body) = raw(&server, "GET", "/metrics", None).await;
    assert_eq!(status, 404, "/metrics on the client port: {body}");
    assert!(metrics(server.admin).await.contains("pushd_connections "));
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            http_request(server.admin, "GET", path, None, "").await.0,
            200
        );
        // Kept on the public port for load balancers that probe it.
        assert_eq!(raw(&server, "GET", path, None).await.0, 200);
    }
    // The admin port serves nothing else.
    let (status, _) = http_request(server.admin, "GET", "/v1/messages/x", None, API_KEY).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_17th_connection_of_one_user_is_refused_with_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(server.connect("kim").await);
    }
    let (status, _, body) = refused(&server.ws_url(&token("kim"), None)).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("16 connections"),
        "{body}"
    );
    // Other users are not affected; a closed connection frees a place.
    held.push(server.connect("lee").await);
    held.remove(0).close().await;
    let _again = eventually(|| async {
        tokio_tungstenite::connect_async(server.ws_url(&token("kim"), None))
            .await
            .ok()
    })
    .await;
    let m = metrics(server.admin).await;
    assert_eq!(
        sample(&m, "pushd_connections_refused_total{reason=\"user_full\"}"),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn past_max_connections_the_node_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "3"]).await;
    let mut held = Vec::new();
    for u in ["n1", "n2", "n3"] {
        held.push(server.connect(u).await);
    }
    let (status, headers, body) = refused(&server.ws_url(&token("n4"), None)).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body["error"].as_str().unwrap().contains("node is full"),
        "{body}"
    );
}

#[tokio::test]
async fn a_source_connecting_too_fast_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--connect-rate-per-ip",
            "0.2",
            "--connect-burst-per-ip",
            "3",
        ],
    )
    .await;
    let mut held = Vec::new();
    for u in ["r1", "r2", "r3"] {
        held.push(server.connect(u).await);
    }
    let (status, headers, body) = refused(&server.ws_url(&token("r4"), None)).await;
    assert_eq!(status, 429, "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    // The token is not even verified: a flood costs no verification.
    let (status, _, _) = refused(&server.ws_url("not.a.token", None)).await;
    assert_eq!(status, 429);
    let m = metrics(server.admin).await;
    assert_eq!(
        sample(
            &m,
            "pushd_connections_refused_total{reason=\"connect_rate\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(sample(&m, "pushd_auth_failures_total"), 0.0, "{m}");
}

#[tokio::test]
async fn past_the_in_flight_limit_requests_are_shed_and_slow_ones_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--http-max-in-flight", "1", "--http-request-timeout", "6s"],
    )
    .await;
    // One request in flight: its body never finishes. (If a probe happened to hold the slot
    // when it arrived, it was the one shed: start again.)
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\":"
    );
    let mut attempts = 0;
    let (mut slow, shed) = loop {
        attempts += 1;
        assert!(attempts <= 10, "the slow request never held the slot");
        let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (status, bytes) = server
            .raw_request("GET", "/v1/messages/x", None, API_KEY)
            .await;
        if status == 503 {
            break (slow, bytes);
        }
    };
    let body: Value = serde_json::from_slice(&shed).unwrap();
    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
    let (status, headers, _) = http_response(server.addr, "GET", "/healthz", None, "").await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    // The admin port has its own limit: probes still answer.
    assert_eq!(
        http_request(server.admin, "GET", "/readyz", None, "")
            .await
            .0,
        200
    );
    // The slow request itself ends with 408 and a JSON reason.
    let mut answer = String::new();
    tokio::time::timeout(WAIT, slow.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"request timed out"), "{answer}");
    // Once it is gone, requests are served again.
    assert_eq!(raw(&server, "GET", "/healthz", None).await.0, 200);
}

#[tokio::test]
async fn a_slow_clients_queue_is_bounded_in_bytes_and_it_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The count bound (1024) would hold all 300 messages (~18 MB): only the byte bound
    // (256 KiB) can close this connection.
    let server = Server::start(
        dir.path(),
        &["--send-queue-bytes", "262144", "--write-timeout", "60s"],
    )
    .await;
    // A client with a tiny receive buffer that does not read.
    let mut slow = server.connect_slow("sam").await;

    let filler = "x".repeat(60_000);
    let mut sent = BTreeSet::new();
    let mut overflowed_after = None;
    for i in 0..300 {
        sent.insert(server.send(&["sam"], json!({"i": i, "fill": filler})).await);
        if overflowed_after.is_none() {
            let m = metrics(server.admin).await;
            if sample(&m, "pushd_queue_overflows_total") >= 1.0 {
                overflowed_after = Some(i + 1);
            }
        }
    }
    let overflowed_after = overflowed_after.expect("the slow connection's queue overflowed");
    // Kernel buffers hold some megabytes; the queue itself at most 256 KiB (~4 messages).
    assert!(
        overflowed_after < 200,
        "overflowed only after {overflowed_after} messages"
    );

    // The client reads what it got, then the close: 1013, reconnect to resume.
    let (got, end) = slow.ids_until_end().await;
    let Ended::Closed(Some(close)) = end else {
        panic!("expected a close frame with a code, got {end:?}");
    };
    assert_eq!(u16::from(close.code), 1013, "{close:?}");
    assert!(
        got.len() < sent.len(),
        "cut off ({} of {})",
        got.len(),
        sent.len()
    );
    // On reconnect everything not acked comes again: nothing is lost.
    assert_eq!(server.receive_all("sam", sent.len()).await, sent);
}

// ---- gRPC: API keys on Submit, the internal token, mutual TLS (cluster roles) ----

async fn services() -> Option<(Redis, Mongo)> {
    Some((Redis::start().await?, Mongo::start().await?))
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// A tonic channel in clear, without credentials.
async fn plain(addr: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn with_bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// `msg`, with `authorization: Bearer <bearer>` if given.
fn req_of<T>(msg: T, bearer: Option<&str>) -> tonic::Request<T> {
    match bearer {
        None => tonic::Request::new(msg),
        Some(t) => with_bearer(msg, t),
    }
}

const KEY_A: &str = "api-key-a-0123456789";
const KEY_B: &str = "api-key-b-0123456789";

#[tokio::test]
async fn grpc_submit_needs_an_api_key_and_keys_rotate() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-keys");
    std::fs::write(&key_file, "# none yet\n").unwrap();
    let dispatch = Role::spawn(
        "dispatch",
        &[
            s("--grpc-listen=127.0.0.1:0"),
            format!("--redis-url={}", redis.url),
        ],
    )
    .await;
    let collect = collect_for(
        &dispatch,
        &mongo,
        &[
            format!("--api-key={KEY_A},{KEY_B}"),
            format!("--api-key-file={}", key_file.display()),
        ],
    )
    .await;
    let submit = || SubmitRequest {
        to: vec![s("gus")],
        payload: s("{\"n\":1}"),
        ..SubmitRequest::default()
    };
    let mut client = CollectClient::new(plain(collect.grpc).await);
    let err = client.submit(submit()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let err = client
        .submit(with_bearer(submit(), API_KEY))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::Unauthenticated,
        "not a configured key: {err}"
    );
    for key in [KEY_A, KEY_B] {
        let reply = client.submit(with_bearer(submit(), key)).await.unwrap();
        assert!(!reply.into_inner().id.is_empty());
        let (status, body) = http_request(
            collect.http(),
            "POST",
            "/v1/messages",
            Some(json!({"to": ["gus"], "payload": 2}).to_string()),
            key,
        )
        .await;
        assert_eq!(status, 202, "HTTP with {key}: {body:?}");
    }
    // A key added to the file works without a restart.
    let key_c = "api-key-c-0123456789";
    std::fs::write(&key_file, format!("{key_c}\n")).unwrap();
    eventually(|| async {
        client
            .clone()
            .submit(with_bearer(submit(), key_c))
            .await
            .ok()
    })
    .await;
    let m = metrics(collect.admin).await;
    let refused = "pushd_grpc_unauthenticated_total{service=\"pushcluster.v1.Collect\"";
    assert_eq!(
        sample(&m, &format!("{refused},reason=\"missing_token\"}}")),
        1.0,
        "{m}"
    );
    assert!(
        sample(&m, &format!("{refused},reason=\"invalid_token\"}}")) >= 1.0,
        "{m}"
    );
}

/// auth, dispatch and one push node.
async fn internal_roles(redis: &Redis, mongo: &Mongo, tls: &[String]) -> (Role, Role, Role) {
    let mut a = vec![s("--grpc-listen=127.0.0.1:0")];
    a.extend(tls.iter().cloned());
    let auth = Role::spawn("auth", &a).await;
    let mut d = vec![
        s("--grpc-listen=127.0.0.1:0"),
        format!("--redis-url={}", redis.url),
        s("--node-addr-template={ip}:{port}"),
        format!("--mongodb-uri={}", mongo.uri),
        format!("--mongodb-database={}", mongo.database),
    ];
    d.extend(tls.iter().cloned());
    let dispatch = Role::spawn("dispatch", &d).await;
    let mut p = vec![
        s("--listen=127.0.0.1:0"),
        s("--grpc-listen=127.0.0.1:0"),
        s("--node-ip=127.0.0.1"),
        format!("--auth-addr=http://{}", auth.grpc),
        format!("--redis-url={}", redis.url),
        format!("--mongodb-uri={}", mongo.uri),
        format!("--mongodb-database={}", mongo.database),
    ];
    p.extend(tls.iter().cloned());
    let push = Role::spawn("push", &p).await;
    (auth, dispatch, push)
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> tonic::Code {
    r.map(|_| ())
        .map_or_else(|e| e.code(), |()| tonic::Code::Ok)
}

#[tokio::test]
async fn internal_services_refuse_calls_without_the_internal_token() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let (auth, dispatch, push) = internal_roles(&redis, &mongo, &[]).await;
    let verify = || VerifyRequest {
        token: token("vic"),
    };
    let dispatch_req = || WakeRequest {
        batches: vec![s("forged")],
        ..Default::default()
    };
    let deliveries = || tokio_stream::iter(Vec::<pushcluster_proto::grpc::DeliverBatch>::new());
    for bearer in [None, Some("wrong-token-0123456789")] {
        let mut a = AuthClient::new(plain(auth.grpc).await);
        let r = a.verify(req_of(verify(), bearer)).await;
        assert_eq!(code(r), tonic::Code::Unauthenticated);
        let mut d = DispatchClient::new(plain(dispatch.grpc).await);
        let r = d.wake(req_of(dispatch_req(), bearer)).await;
        assert_eq!(code(r), tonic::Code::Unauthenticated);
        let mut n = NodeClient::new(plain(push.grpc).await);
        let r = n.deliver(req_of(deliveries(), bearer)).await;
        assert_eq!(code(r), tonic::Code::Unauthenticated);
    }
    for (role, service) in [
        (&auth, "pushcluster.v1.Auth"),
        (&dispatch, "pushcluster.v1.Dispatch"),
        (&push, "pushcluster.v1.Node"),
    ] {
        let m = metrics(role.admin).await;
        for reason in ["missing_token", "invalid_token"] {
            let name = format!(
                "pushd_grpc_unauthenticated_total{{service=\"{service}\",reason=\"{reason}\"}}"
            );
            assert_eq!(sample(&m, &name), 1.0, "{name} in\n{m}");
        }
    }
    // With the token: answered.
    let mut a = AuthClient::new(plain(auth.grpc).await);
    let user = a
        .verify(with_bearer(verify(), INTERNAL_TOKEN))
        .await
        .unwrap();
    assert_eq!(user.into_inner().user, "vic");
    // And the roles use it among themselves: a client connects (push → auth) and gets a
    // message from a collect (collect → dispatch → push).
    let collect = collect_for(&dispatch, &mongo, &[]).await;
    delivered_through(&push, &collect, "vic").await;
}

/// A collect role that hands to `dispatch` and stores in `mongo`, with `extra` flags.
async fn collect_for(dispatch: &Role, mongo: &Mongo, extra: &[String]) -> Role {
    let mut args = vec![
        s("--listen=127.0.0.1:0"),
        s("--grpc-listen=127.0.0.1:0"),
        format!("--dispatch-addr=http://{}", dispatch.grpc),
        format!("--mongodb-uri={}", mongo.uri),
        format!("--mongodb-database={}", mongo.database),
    ];
    args.extend(extra.iter().cloned());
    Role::spawn("collect", &args).await
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of `user` on `push`, past its welcome.
async fn connected(push: &Role, user: &str) -> Client {
    let url = format!("ws://{}/ws?token={}", push.http(), token(user));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("welcome"),
        "{welcome:?}"
    );
    ws
}

/// Posts a message to `user` through `collect`; the first message `ws` receives is that one.
async fn receives_posted(
    ws: &mut Client,
    collect: &Role,
    user: &str,
) -> pushcluster_proto::frame::MessageFrame {
    let (status, body) =
        post_message(collect.http(), &json!({"to": [user], "payload": "hi"})).await;
    assert_eq!(status, 202, "{body}");
    let m = next_message(ws, "the posted message arrives").await;
    assert_eq!(m.id, body["id"].as_str().unwrap());
    m
}

/// The next message frame `ws` receives (other frames are skipped).
async fn next_message(ws: &mut Client, what: &str) -> pushcluster_proto::frame::MessageFrame {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect(what)
            .unwrap()
            .unwrap();
        if let Some(m) = pushcluster_proto::frame::decode_message(msg.to_text().unwrap()) {
            return m;
        }
    }
}

/// A client of `user` on `push` receives a message posted to `collect`.
async fn delivered_through(push: &Role, collect: &Role, user: &str) {
    let mut ws = connected(push, user).await;
    receives_posted(&mut ws, collect, user).await;
}

#[tokio::test]
async fn with_mutual_tls_only_certificates_of_the_cluster_ca_get_in() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA").unwrap();
    let names = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let tls = ca.issue(&names, &dir.path().join("roles")).unwrap().flags();
    let (auth, dispatch, push) = internal_roles(&redis, &mongo, &tls).await;

    use pushcluster_server::grpc::{InternalClient, Tls, TlsFiles};
    let client = |files: pushcluster_test_support::pki::TlsFiles, token: &str| {
        let token = pushcluster_server::Secrets::new("t", "t", [token.to_owned()], None).unwrap();
        let tls = Tls::load(TlsFiles {
            cert: files.cert,
            key: files.key,
            ca: files.ca,
        })
        .unwrap();
        InternalClient::new(token, Some(tls), None)
    };
    let endpoint = |addr| Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let verify = || VerifyRequest {
        token: token("tia"),
    };

    // In clear: no TLS handshake, no call.
    let channel = endpoint(auth.grpc).connect().await.unwrap();
    let r = AuthClient::new(channel)
        .verify(with_bearer(verify(), INTERNAL_TOKEN))
        .await;
    assert_ne!(code(r), tonic::Code::Ok);
    // A certificate from another CA (even one that trusts the cluster's): refused.
    let other = Ca::new("another CA").unwrap();
    let stranger = other
        .issue(&["127.0.0.1"], &dir.path().join("stranger"))
        .unwrap();
    std::fs::write(&stranger.ca, format!("{}{}", other.pem, ca.pem)).unwrap();
    // (With TLS 1.3 the client learns of the refusal on its first read: connect, then call.)
    let c = client(stranger, INTERNAL_TOKEN);
    let refused = match c.connect(endpoint(auth.grpc), None).await {
        Err(_) => true,
        Ok(ch) => AuthClient::new(ch).verify(verify()).await.is_err(),
    };
    assert!(refused, "a certificate from another CA was let in");
    let m = metrics(auth.admin).await;
    assert!(
        sample(
            &m,
            "pushd_grpc_unauthenticated_total{service=\"tls\",reason=\"handshake\"}"
        ) >= 2.0,
        "{m}"
    );
    // A good certificate still needs the token.
    let good = ca
        .issue(&["test-client"], &dir.path().join("client"))
        .unwrap();
    let c = client(good.clone(), "wrong-token-0123456789");
    let ch = c.connect(endpoint(auth.grpc), None).await.unwrap();
    let r = AuthClient::new(ch).verify(verify()).await;
    assert_eq!(code(r), tonic::Code::Unauthenticated);
    // A good certificate and the token: answered.
    let c = client(good, INTERNAL_TOKEN);
    let ch = c.connect(endpoint(auth.grpc), None).await.unwrap();
    let reply = AuthClient::new(ch).verify(verify()).await.unwrap();
    assert_eq!(reply.into_inner().user, "tia");

    // The roles among themselves, over mutual TLS: connect (push → auth), deliver
    // (collect → dispatch → push).
    let collect = collect_for(&dispatch, &mongo, &tls).await;
    delivered_through(&push, &collect, "tia").await;
}

#[tokio::test]
async fn a_whole_cluster_over_mutual_tls_with_one_server_name() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA").unwrap();
    // One certificate for every role, checked against one name instead of each address.
    let mut tls = ca
        .issue(&["pushcluster.internal"], &dir.path().join("all"))
        .unwrap()
        .flags();
    tls.push(s("--tls-server-name=pushcluster.internal"));
    let mut options = common::cluster::local(redis.url.clone());
    options.all_args = tls;
    let cluster = common::cluster::Cluster::start(&mongo, &options).await;
    for (i, push) in cluster.pushes.iter().enumerate() {
        delivered_through(push, &cluster.collect, &format!("tls-user-{i}")).await;
    }
}

#[tokio::test]
async fn a_wake_may_carry_its_batch_which_is_checked_and_dispatched_as_is() {
    use pushcluster_proto::grpc::{HandedBatch, HandedMessage, NodeMessage};
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let (_auth, dispatch, push) = internal_roles(&redis, &mongo, &[]).await;
    let mut ws = connected(&push, "gus").await;
    let now = pushcluster_proto::delivery::now_ms();
    let handed = |seqs: Vec<u64>| HandedBatch {
        id: s("carried-batch"),
        messages: vec![HandedMessage {
            message: Some(NodeMessage {
                id: s("carried-message"),
                payload: s("{\"carried\":true}"),
                created_at_ms: now,
                expires_at_ms: now + 60_000,
            }),
            users: vec![s("gus")],
            seqs,
            notification: String::new(),
            mobile: s("never"),
        }],
    };
    let mut d = DispatchClient::new(plain(dispatch.grpc).await);
    let malformed = WakeRequest {
        carried: vec![handed(vec![])],
        ..Default::default()
    };
    let err = d
        .wake(with_bearer(malformed, INTERNAL_TOKEN))
        .await
        .expect_err("uneven seqs are refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("uneven seqs"), "{err:?}");
    // Well formed: dispatched from the request itself, never read from the store (which
    // does not hold this batch, so a wake by id would deliver nothing).
    let wake = WakeRequest {
        carried: vec![handed(vec![1])],
        ..Default::default()
    };
    let queued = d
        .wake(with_bearer(wake, INTERNAL_TOKEN))
        .await
        .expect("accepted")
        .into_inner()
        .queued;
    assert_eq!(queued, 1);
    let m = next_message(&mut ws, "the carried message arrives").await;
    assert_eq!((m.id.as_str(), m.seq), ("carried-message", 1));
}

/// Even a caller with the internal token cannot make a connection skip real messages: a
/// `Node.Deliver` entry whose seq the store does not have is dropped and counted, and the
/// next real message still arrives.
#[tokio::test]
async fn a_forged_seq_on_node_deliver_never_moves_a_connection() {
    let Some((redis, mongo)) = services().await else {
        return;
    };
    let (_auth, dispatch, push) = internal_roles(&redis, &mongo, &[]).await;
    let collect = collect_for(&dispatch, &mongo, &[]).await;
    let mut ws = connected(&push, "fay").await;

    let now = pushcluster_proto::delivery::now_ms();
    let forged = pushcluster_proto::grpc::DeliverBatch {
        batch: 1,
        messages: vec![pushcluster_proto::grpc::NodeMessage {
            id: s("forged"),
            payload: s("{\"forged\":true}"),
            created_at_ms: now,
            expires_at_ms: now + 60_000,
        }],
        entries: vec![pushcluster_proto::grpc::NodeEntry {
            user: s("fay"),
            seq: 1_000_000,
            message: 0,
        }],
    };
    let mut node = NodeClient::new(plain(push.grpc).await);
    let mut results = node
        .deliver(with_bearer(
            tokio_stream::iter(vec![forged]),
            INTERNAL_TOKEN,
        ))
        .await
        .expect("the internal token is accepted")
        .into_inner();
    results.message().await.expect("a result").expect("one");
    let counted = "pushd_untrusted_deliveries_total";
    let admin = push.admin;
    eventually(|| async move { (sample(&metrics(admin).await, counted) >= 1.0).then_some(()) })
        .await;
    assert_eq!(sample(&metrics(admin).await, counted), 1.0, "{counted}");

    let real = receives_posted(&mut ws, &collect, "fay").await;
    assert_eq!(real.seq, 1, "the forged seq moved nothing");
}
