//! End-to-end tests of `pushd standalone`: the real binary, real WebSocket and HTTP clients.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn every_device_of_every_recipient_receives_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut phone = server.connect("alice").await;
    let mut laptop = server.connect("alice").await;
    let mut bob = server.connect("bob").await;

    let id = server.send(&["alice", "bob"], json!({"text": "hi"})).await;
    for c in [&mut phone, &mut laptop, &mut bob] {
        let m = c.next_message().await;
        assert_eq!(m.id, id);
        assert_eq!(m.seq, 1);
        assert_eq!(m.payload, json!({"text": "hi"}));
    }
    // delivered, then acked by one of alice's devices.
    let status = eventually(|| async {
        let s = server.status(&id).await;
        (s["recipients"][0]["state"] == "delivered" && s["recipients"][1]["state"] == "delivered")
            .then_some(s)
    })
    .await;
    assert_eq!(status["recipients"][0]["user"], "alice");
    phone.ack(&id).await;
    eventually(|| async {
        (server.status(&id).await["recipients"][0]["state"] == "acked").then_some(())
    })
    .await;
}

/// A delivery is marked a moment after it is written (an ack that comes first marks it
/// instead); a device that leaves before that moment still leaves it marked, because the
/// connection's end writes the mark its timer would have. Without that write the timer dies
/// with the connection and the message stays "pending" for good.
#[tokio::test]
async fn a_device_that_leaves_at_once_still_leaves_its_message_marked_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut phone = server.connect("alice").await;
    let id = server.send(&["alice"], json!({"text": "hi"})).await;
    assert_eq!(phone.next_message().await.id, id);
    phone.close().await;
    eventually(|| async {
        (server.status(&id).await["recipients"][0]["state"] == "delivered").then_some(())
    })
    .await;
}

#[tokio::test]
async fn offline_messages_arrive_in_order_on_connect_and_acked_ones_are_not_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(server.send(&["carol"], json!(i)).await);
    }
    let status = server.status(&ids[0]).await;
    assert_eq!(status["recipients"][0]["state"], "pending");

    let mut c = server.connect("carol").await;
    let got = c.receive_and_ack(20).await;
    assert_eq!(got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(
        got.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    // Live messages keep the order after the replay.
    let live = server.send(&["carol"], json!("live")).await;
    assert_eq!(c.next_message().await.id, live);
    c.ack(&live).await;
    eventually(|| async {
        (server.status(&live).await["recipients"][0]["state"] == "acked").then_some(())
    })
    .await;
    c.close().await;

    // Everything was acked: a new connection gets only what is new.
    let mut again = server.connect("carol").await;
    let next = server.send(&["carol"], json!("next")).await;
    let m = again.next_message().await;
    assert_eq!((m.id, m.seq), (next, 22));
}

#[tokio::test]
async fn unacked_messages_are_redelivered_and_last_seq_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut c = server.connect("dave").await;
    for i in 1..=5 {
        server.send(&["dave"], json!(i)).await;
    }
    for want in 1..=5 {
        assert_eq!(c.next_message().await.seq, want); // written, not acked
    }
    c.close().await;

    // Resume after seq 3: only 4 and 5, in order.
    let mut resumed = server.connect_from("dave", Some(3)).await;
    assert_eq!(resumed.next_message().await.seq, 4);
    assert_eq!(resumed.next_message().await.seq, 5);
    resumed.close().await;

    // A plain reconnect gets all five again: a socket write is not proof of receipt.
    let mut fresh = server.connect("dave").await;
    let seqs: Vec<u64> = fresh
        .receive_and_ack(5)
        .await
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_resuming_device_gets_what_another_device_acked_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut phone = server.connect("gail").await;
    let mut laptop = server.connect("gail").await;
    let first = server.send(&["gail"], json!(1)).await;
    assert_eq!(laptop.next_message().await.id, first);
    laptop.close().await; // the laptop has seen seq 1 and goes offline

    let mut later = Vec::new();
    for i in 2..=4 {
        later.push(server.send(&["gail"], json!(i)).await);
    }
    // The phone acks everything while the laptop is away.
    let acked: Vec<String> = phone
        .receive_and_ack(4)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(acked[1..], later[..]);
    for id in &acked {
        eventually(|| async {
            (server.status(id).await["recipients"][0]["state"] == "acked").then_some(())
        })
        .await;
    }

    // The laptop resumes from its own position and still gets 2..=4, in order.
    let mut laptop = server.connect_from("gail", Some(1)).await;
    for (want, id) in (2..=4).zip(&later) {
        let m = laptop.next_message().await;
        assert_eq!((m.seq, &m.id), (want, id));
    }
    // A brand-new device gets nothing old: every message was acked by some device.
    let mut tablet = server.connect("gail").await;
    let next = server.send(&["gail"], json!(5)).await;
    assert_eq!(tablet.next_message().await.id, next);
}

#[tokio::test]
async fn idempotency_key_returns_the_same_id_and_delivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut c = server.connect("erin").await;
    let body = json!({"to": ["erin"], "payload": {"n": 1}, "idempotency_key": "order-42"});
    let (s1, b1) = server.post(body.clone()).await;
    let (s2, b2) = server.post(body).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1["id"], b2["id"]);
    assert_eq!(b2["duplicate"], true);
    let first = c.next_message().await;
    assert_eq!(first.id, b1["id"].as_str().unwrap());
    // The next frame is the sentinel, not a second copy.
    let sentinel = server.send(&["erin"], json!("sentinel")).await;
    assert_eq!(c.next_message().await.id, sentinel);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--max-payload-bytes", "100", "--max-recipients", "3"],
    )
    .await;
    let cases = [
        ("{not json", 400, None),
        (r#"{"payload":1}"#, 400, Some("to")),
        (r#"{"to":[],"payload":1}"#, 400, Some("to")),
        (r#"{"to":"u","payload":1}"#, 400, Some("to")),
        (r#"{"to":[7],"payload":1}"#, 400, Some("to")),
        (r#"{"to":["u"]}"#, 400, Some("payload")),
        (
            r#"{"to":["u"],"payload":1,"ttl_secs":"soon"}"#,
            400,
            Some("ttl_secs"),
        ),
        (
            r#"{"to":["u"],"payload":1,"idempotency_key":[]}"#,
            400,
            Some("idempotency_key"),
        ),
        (r#"{"to":["a","b","c","d"],"payload":1}"#, 413, Some("to")),
    ];
    for (body, want, field) in cases {
        let (status, resp) = server
            .request("POST", "/v1/messages", Some(body.into()), API_KEY)
            .await;
        assert_eq!(status, want, "{body} → {resp}");
        assert!(
            resp["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{resp}"
        );
        assert_eq!(resp["field"].as_str(), field, "{body} → {resp}");
    }
    let big = json!({"to": ["u"], "payload": "x".repeat(200)}).to_string();
    let (status, resp) = server
        .request("POST", "/v1/messages", Some(big), API_KEY)
        .await;
    assert_eq!(
        (status, resp["field"].as_str()),
        (413, Some("payload")),
        "{resp}"
    );
    let huge = "x".repeat(20_000); // above the body limit, yet small enough to be written whole
    let (status, _) = server
        .request("POST", "/v1/messages", Some(huge), API_KEY)
        .await;
    assert_eq!(status, 413);

    let (status, resp) = server
        .request(
            "POST",
            "/v1/messages",
            Some(r#"{"to":["u"],"payload":1}"#.into()),
            "wrong-key",
        )
        .await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("API key"));
    let (status, resp) = server
        .request("GET", "/v1/messages/nope", None, API_KEY)
        .await;
    assert_eq!((status, resp["field"].as_str()), (404, Some("id")));
    let (status, _) = server.request("GET", "/nowhere", None, API_KEY).await;
    assert_eq!(status, 404);

    // WebSocket: refused before the upgrade with 401 and a JSON reason.
    let expired = {
        use std::time::{SystemTime, UNIX_EPOCH};
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"sub": "u", "exp": now - 600});
        sign_claims(&claims)
    };
    for (url, code) in [
        (format!("ws://{}/ws", server.addr), "missing_token"),
        (server.ws_url("not.a.jwt", None), "invalid_token"),
        (server.ws_url(&expired, None), "token_expired"),
        (
            server.ws_url(
                &pushcluster_auth::issue(b"another-secret-entirely", "u", Duration::from_secs(60)),
                None,
            ),
            "invalid_token",
        ),
    ] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{url}");
                let body: serde_json::Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["code"], code, "{url}: {body}");
                assert!(body["error"].as_str().is_some());
            }
            other => panic!("{url}: expected 401, got {other:?}"),
        }
    }
    let bad_seq = format!("{}&last_seq=abc", server.ws_url(&token("u"), None));
    match tokio_tungstenite::connect_async(&bad_seq).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

/// Signs an HS256 token with arbitrary claims and the server's secret.
fn sign_claims(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn binary_and_malformed_client_frames_are_closed_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut c = server.connect("frank").await;
    use futures_util::SinkExt;
    c.ws.send(tungstenite::Message::text(
        "{\"type\":\"ack\",\"id\":\"nope\"}",
    ))
    .await
    .unwrap();
    let err = c.next_frame().await.unwrap();
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("unknown_id"))
    );
    c.ws.send(tungstenite::Message::text("{\"type\":\"ping\"}"))
        .await
        .unwrap();
    assert_eq!(c.next_frame().await.unwrap()["type"], "pong");
    c.ws.send(tungstenite::Message::text("garbage"))
        .await
        .unwrap();
    match c.next_frame_or_end().await {
        Err(Ended::Closed(Some(f))) => assert_eq!(u16::from(f.code), 1007, "{f:?}"),
        other => panic!("expected close 1007, got {other:?}"),
    }
    let mut c = server.connect("frank").await;
    c.ws.send(tungstenite::Message::binary(vec![1, 2, 3]))
        .await
        .unwrap();
    match c.next_frame_or_end().await {
        Err(Ended::Closed(Some(f))) => assert_eq!(u16::from(f.code), 1003, "{f:?}"),
        other => panic!("expected close 1003, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_client_is_closed_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--send-queue",
            "4",
            "--write-timeout",
            "1s",
            "--max-payload-bytes",
            "65536",
        ],
    )
    .await;
    let mut slow = server.connect("gina").await;
    // ~12 MB: more than the socket buffers hold, so the server's writes block.
    let filler = "x".repeat(60_000);
    let mut sent = BTreeSet::new();
    for i in 0..200 {
        sent.insert(
            server
                .send(&["gina"], json!({"i": i, "fill": filler}))
                .await,
        );
    }
    let text = metrics(server.admin).await;
    let overflows: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pushd_queue_overflows_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        overflows >= 1,
        "the slow connection overflowed its queue:\n{text}"
    );

    // The slow client now reads what it got, until the server's close or EOF.
    let (got, _) = slow.ids_until_end().await;
    assert!(
        got.len() < sent.len(),
        "the client was cut off ({} of {})",
        got.len(),
        sent.len()
    );
    // Reconnect: everything not acked comes again; together nothing is missing.
    assert_eq!(server.receive_all("gina", sent.len()).await, sent);
}

#[tokio::test]
async fn a_crash_loses_no_accepted_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(server.send(&["hank"], json!(i)).await);
    }
    let server = server.crash_and_restart().await;
    let mut c = server.connect("hank").await;
    let got: Vec<String> = c
        .receive_and_ack(10)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(got, ids);
    let (status, body) = server.post(json!({"to": ["hank"], "payload": 1})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        c.next_message().await.seq,
        11,
        "seqs continue after the restart"
    );
}

#[tokio::test]
async fn sigterm_closes_clients_with_the_reconnect_code_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--grace-period", "5s"]).await;
    let mut clients = Vec::new();
    for u in ["i1", "i2", "i3"] {
        clients.push(server.connect(u).await);
    }
    server.sigterm();
    for mut c in clients {
        match c.next_frame_or_end().await {
            Err(Ended::Closed(Some(f))) => {
                assert_eq!(u16::from(f.code), 1001);
                assert_eq!(f.reason.as_str(), "going away, reconnect");
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn an_idle_connection_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--ping-interval", "200ms", "--idle-timeout", "1s"],
    )
    .await;
    let url = server.ws_url(&token("ivy"), None);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Do not read (so no pongs are sent) for longer than the idle timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut code = None;
    while let Some(Ok(msg)) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        if let tungstenite::Message::Close(Some(f)) = msg {
            code = Some(u16::from(f.code));
        }
    }
    assert_eq!(code, Some(4000));
}

#[tokio::test]
async fn ops_endpoints_and_send_tool() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    assert_eq!(server.raw_request("GET", "/healthz", None, "").await.0, 200);
    assert_eq!(server.raw_request("GET", "/readyz", None, "").await.0, 200);
    let mut c = server.connect("jo").await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushd"))
        .args(["send", "--to", "jo", "--payload", r#"{"hello":"world"}"#])
        .arg("--server")
        .arg(format!("http://{}", server.addr))
        .env("PUSHD_API_KEY", API_KEY)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = c.next_message().await;
    assert_eq!(m.id, reply["id"].as_str().unwrap());
    assert_eq!(m.payload, json!({"hello": "world"}));

    let metrics = metrics(server.admin).await;
    for name in [
        "pushd_connections 1",
        "pushd_messages_accepted_total 1",
        "pushd_messages_delivered_total 1",
        "pushd_delivery_latency_seconds_count 1",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
}

/// Acks commit without an fsync; a quiet store makes them durable within a second. Acked,
/// then killed (-9) a moment later: after the restart nothing acked is sent again.
#[tokio::test]
async fn acks_are_durable_a_second_after_a_quiet_store_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    // No sweeps (each is a durable commit that would cover the acks by itself).
    let server = Server::start(dir.path(), &["--sweep-interval=1h"]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.send(&["dave"], json!(i)).await);
    }
    let mut c = server.connect("dave").await;
    c.receive_and_ack(5).await;
    let last = ids.last().unwrap().clone();
    eventually(|| async {
        (server.status(&last).await["recipients"][0]["state"] == "acked").then_some(())
    })
    .await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = server.crash_and_restart().await;
    let mut c = server.connect("dave").await;
    let next = server.send(&["dave"], json!("after")).await;
    let m = c.next_message().await;
    assert_eq!((m.id, m.seq), (next, 6), "an acked message came again");
}
