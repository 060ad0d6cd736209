//! The sender through a real squid (basic auth, ACL allowing only the fake APNs port) to the
//! fake APNs. Skipped loudly without squid, failed under CI / PUSHCLUSTER_REQUIRE_SERVICES=1.

mod harness;

use std::time::Duration;

use harness::{Harness, PROXY_PASSWORD, PROXY_USER, device, metrics_text, notification};
use pushcluster_apns::{
    DeliveryState, Outcome, ProxyConfig, ProxyCredentials, ProxyFailure, RetryCause,
};
use pushcluster_test_support::apns::Reply;

#[tokio::test]
async fn every_request_goes_through_squid_on_one_token() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let (sender, registry) = h.sender(h.config());
    let sends = (0..20).map(|i| {
        let sender = sender.clone();
        async move { sender.deliver(&notification(100 + i)).await }
    });
    let results = futures_join_all(sends).await;
    for d in &results {
        assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
        assert_eq!(d.attempts, 1);
    }
    assert_eq!(h.apns.requests().len(), 20);
    assert_eq!(
        h.apns.tokens_seen().len(),
        1,
        "one provider token for all requests"
    );
    let connections = h.apns.connections();
    assert_eq!(connections, 1, "one long-lived HTTP/2 connection");
    // squid logs a tunnel when it closes: close ours, then every connection the fake
    // accepted must be a tunnel squid authenticated.
    drop(sender);
    let log = h.tunnel_log(connections as usize).await;
    assert_eq!(log.len() as u64, connections, "{log:?}");
    for line in &log {
        assert!(
            line.contains("TCP_TUNNEL/200") && line.contains(PROXY_USER),
            "{line}"
        );
    }
    let text = metrics_text(&registry);
    assert!(
        text.contains("pushd_apns_connects_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pushd_apns_deliveries_total{result=\"accepted\",reason=\"\"} 20"),
        "{text}"
    );
    assert!(!text.contains(PROXY_PASSWORD));
}

/// One scenario: scripted replies for one device, and the documented result.
struct Case {
    name: &'static str,
    replies: Vec<Reply>,
    state: DeliveryState,
    attempts: u32,
    /// Apple's reason on the final outcome, if any.
    reason: Option<&'static str>,
}

fn case(
    name: &'static str,
    replies: Vec<Reply>,
    state: DeliveryState,
    attempts: u32,
    reason: Option<&'static str>,
) -> Case {
    Case {
        name,
        replies,
        state,
        attempts,
        reason,
    }
}

#[tokio::test]
async fn scripted_replies_lead_to_the_documented_state_and_attempts() {
    use DeliveryState::*;
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let (sender, _) = h.sender(h.config());
    let cases = vec![
        case("200", vec![Reply::Ok], Accepted, 1, None),
        case(
            "400 BadDeviceToken",
            vec![Reply::reject(400, "BadDeviceToken")],
            Rejected,
            1,
            Some("BadDeviceToken"),
        ),
        case(
            "403 InvalidProviderToken",
            vec![Reply::reject(403, "InvalidProviderToken")],
            Rejected,
            1,
            Some("InvalidProviderToken"),
        ),
        case(
            "410 Unregistered",
            vec![Reply::Unregistered {
                timestamp_ms: 1_770_000_000_123,
            }],
            Rejected,
            1,
            Some("Unregistered"),
        ),
        case(
            "413 PayloadTooLarge",
            vec![Reply::reject(413, "PayloadTooLarge")],
            Rejected,
            1,
            Some("PayloadTooLarge"),
        ),
        case(
            "429 then 200",
            vec![Reply::reject(429, "TooManyRequests")],
            Accepted,
            2,
            None,
        ),
        case(
            "429 TooManyProviderTokenUpdates then 200",
            vec![Reply::reject(429, "TooManyProviderTokenUpdates")],
            Accepted,
            2,
            None,
        ),
        case(
            "500, 503 then 200",
            vec![
                Reply::reject(500, "InternalServerError"),
                Reply::reject(503, "ServiceUnavailable"),
            ],
            Accepted,
            3,
            None,
        ),
        case(
            "429 four times",
            vec![Reply::reject(429, "TooManyRequests"); 4],
            RetryLater,
            4,
            Some("TooManyRequests"),
        ),
        case(
            "503 Shutdown then 200 on a new connection",
            vec![Reply::reject(503, "Shutdown")],
            Accepted,
            2,
            None,
        ),
        case(
            "REFUSED_STREAM then 200",
            vec![Reply::RefuseStream],
            Accepted,
            2,
            None,
        ),
        case(
            "REFUSED_STREAM three times",
            vec![Reply::RefuseStream; 3],
            RetryLater,
            3,
            None,
        ),
        case(
            "no response (unknown, budget 0)",
            vec![Reply::Hang],
            Unknown,
            1,
            None,
        ),
        case(
            "GOAWAY covering our stream, no response",
            vec![Reply::GoAwayAfterProcessing],
            Unknown,
            1,
            None,
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let n = notification(200 + i as u32);
        let token = device(200 + i as u32);
        h.apns.script(&token, c.replies.clone());
        let connections_before = h.apns.connections();
        let d = sender.deliver(&n).await;
        assert_eq!(d.state(), c.state, "{}: {d:?}", c.name);
        assert_eq!(d.attempts, c.attempts, "{}: {d:?}", c.name);
        let reason = match &d.outcome {
            Outcome::Rejected { reason, .. } => Some(reason.as_str().to_owned()),
            Outcome::Retryable {
                cause: RetryCause::Status { reason, .. },
                ..
            } => Some(reason.as_str().to_owned()),
            _ => None,
        };
        assert_eq!(reason.as_deref(), c.reason, "{}: {d:?}", c.name);
        // What the fake saw: every attempt, all with one apns-id and one collapse id, and
        // never two accepted copies.
        let seen = h.apns.requests_for(&token);
        assert_eq!(seen.len() as u32, c.attempts, "{}: {seen:?}", c.name);
        let id = n.apns_id.hyphenated().to_string();
        assert!(
            seen.iter()
                .all(|r| r.apns_id.as_deref() == Some(id.as_str())),
            "{}",
            c.name
        );
        assert!(
            seen.iter()
                .all(|r| r.collapse_id.as_deref() == Some(id.as_str())),
            "{}: the collapse id defaults to the apns-id",
            c.name
        );
        assert!(
            seen.iter().filter(|r| r.answer == "200").count() <= 1,
            "{}",
            c.name
        );
        if c.name.starts_with("410") {
            let at = d.unregistered_at().expect("410 gives the time of death");
            assert_eq!(
                at,
                std::time::UNIX_EPOCH + Duration::from_millis(1_770_000_000_123),
                "{}",
                c.name
            );
        }
        if c.name.contains("Shutdown") {
            assert_eq!(h.apns.connections(), connections_before + 1, "{}", c.name);
        }
    }
    assert_eq!(
        h.apns.tokens_seen().len(),
        1,
        "no token refresh in any scenario, TooManyProviderTokenUpdates included"
    );
}

#[tokio::test]
async fn unknown_is_resent_with_the_same_ids_only_within_its_budget() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let mut config = h.config();
    config.retry.unknown_retries = 1;
    let (sender, _) = h.sender(config);
    let token = device(300);
    h.apns.script(&token, [Reply::Hang]);
    let n = notification(300);
    let d = sender.deliver(&n).await;
    assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    assert_eq!((d.attempts, d.unknown_attempts), (2, 1));
    // Both copies reached the device with one collapse id: the second replaces the first.
    let copies = h.apns.delivered_to(&token);
    assert_eq!(copies.len(), 2);
    assert!(
        copies
            .iter()
            .all(|r| r.collapse_id == copies[0].collapse_id && r.apns_id == copies[0].apns_id)
    );
    assert_eq!(copies.iter().filter(|r| r.answer == "200").count(), 1);

    // Budget spent: two unknowns end as unknown after two attempts, not more.
    let token = device(301);
    h.apns.script(&token, [Reply::Hang, Reply::Hang]);
    let d = sender.deliver(&notification(301)).await;
    assert_eq!(d.state(), DeliveryState::Unknown, "{d:?}");
    assert_eq!((d.attempts, d.unknown_attempts), (2, 2));
}

#[tokio::test]
async fn wrong_proxy_credentials_surface_407_then_recover_once_fixed() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy-credentials");
    std::fs::write(&file, format!("{PROXY_USER}:wrong-password\n")).unwrap();
    let mut config = h.config();
    let squid_port = h.squid.as_ref().unwrap().port;
    config.proxy = Some(ProxyConfig {
        host: "127.0.0.1".into(),
        port: squid_port,
        credentials: Some(ProxyCredentials::File(file.clone())),
        tls: false,
    });
    let (sender, registry) = h.sender(config.clone());
    let d = sender.deliver(&notification(400)).await;
    assert_eq!(d.state(), DeliveryState::RetryLater, "{d:?}");
    assert_eq!(d.attempts, 1);
    let Outcome::ProxyError { failure, detail } = &d.outcome else {
        panic!("expected a proxy error: {d:?}");
    };
    assert_eq!(*failure, ProxyFailure::AuthRequired);
    assert!(detail.contains("407"), "{detail}");
    assert!(h.apns.requests().is_empty(), "nothing reached APNs");
    let text = metrics_text(&registry);
    assert!(
        text.contains("pushd_apns_connects_total{result=\"proxy_auth\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "pushd_apns_deliveries_total{result=\"proxy_error\",reason=\"proxy_auth_required\"} 1"
        ),
        "{text}"
    );
    let log = h.tunnel_log(1).await;
    assert!(log.iter().any(|l| l.contains("TCP_DENIED/407")), "{log:?}");

    // Fix the mounted credentials: the same sender recovers, no restart.
    std::fs::write(&file, format!("{PROXY_USER}:{PROXY_PASSWORD}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // past the reconnect delay
    let d = sender.deliver(&notification(400)).await;
    assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    assert_eq!(h.apns.requests().len(), 1);

    // Secrets never show in Debug output, errors or metrics.
    let mut inline = config.clone();
    inline.proxy = Some(
        ProxyConfig::parse(&format!(
            "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{squid_port}"
        ))
        .unwrap(),
    );
    for text in [
        format!("{inline:?}"),
        format!("{d:?}"),
        metrics_text(&registry),
        inline.proxy.as_ref().unwrap().redacted_url(),
    ] {
        assert!(!text.contains(PROXY_PASSWORD), "{text}");
    }
}

#[tokio::test]
async fn the_proxy_acl_refusing_apns_is_a_proxy_error() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    // A second squid that allows some other port only.
    let other = pushcluster_test_support::free_port();
    let Some(squid) =
        pushcluster_test_support::squid::Squid::start(PROXY_USER, PROXY_PASSWORD, &[other]).await
    else {
        return;
    };
    let mut config = h.config();
    config.proxy = Some(
        ProxyConfig::parse(&format!(
            "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}",
            squid.port
        ))
        .unwrap(),
    );
    let (sender, _) = h.sender(config);
    let d = sender.deliver(&notification(500)).await;
    assert!(
        matches!(
            &d.outcome,
            Outcome::ProxyError {
                failure: ProxyFailure::Refused,
                ..
            }
        ),
        "{d:?}"
    );
    assert!(h.apns.requests().is_empty());
}

#[tokio::test]
async fn tls_is_verified_end_to_end_through_the_tunnel() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let mut config = h.config();
    config.extra_roots.clear(); // the fake's CA is not trusted: squid must not make it so
    let (sender, _) = h.sender(config);
    let d = sender.deliver(&notification(600)).await;
    assert!(
        matches!(&d.outcome, Outcome::Retryable { cause: RetryCause::Connect(e), .. } if e.contains("TLS")),
        "{d:?}"
    );
    assert!(h.apns.requests().is_empty());
    // The tunnel itself was fine (squid logged CONNECT 200): TLS failed inside it.
    let log = h.tunnel_log(1).await;
    assert!(log.iter().any(|l| l.contains("TCP_TUNNEL/200")), "{log:?}");
}

#[tokio::test]
async fn provider_token_is_reused_and_refreshed_on_schedule() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let (sender, registry) = h.sender(h.config());
    let period = 30 * 60;
    let start = harness::origin();
    let aligned = |t: std::time::SystemTime| {
        let s = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        s / period * period
    };
    for i in 0..3 {
        let d = sender.deliver(&notification(700 + i)).await;
        assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
        h.clock.advance(Duration::from_secs(9 * 60));
    }
    // 27 minutes in: still the first token, its iat on the grid.
    let reqs = h.apns.requests();
    assert_eq!(h.apns.tokens_seen().len(), 1);
    assert_eq!(reqs[0].iat, Some(aligned(start)));
    // Into the next period: one new token, iat on the next grid line; the fake (like Apple)
    // would answer 429 TooManyProviderTokenUpdates to a token less than 20 minutes newer.
    h.clock.advance(Duration::from_secs(5 * 60));
    for i in 0..3 {
        let d = sender.deliver(&notification(710 + i)).await;
        assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    }
    let reqs = h.apns.requests();
    assert_eq!(h.apns.tokens_seen().len(), 2);
    assert_eq!(reqs.last().unwrap().iat, Some(aligned(start) + period));
    assert!(metrics_text(&registry).contains("pushd_apns_token_refreshes_total 2"));
}

#[tokio::test]
async fn expired_provider_token_gets_one_new_token_within_the_floor() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    let (sender, _) = h.sender(h.config());
    assert_eq!(
        sender.deliver(&notification(800)).await.state(),
        DeliveryState::Accepted
    );

    // 5 minutes after the token was made: no new token yet (20-minute floor) → retry later.
    h.clock.advance(Duration::from_secs(5 * 60));
    h.apns
        .script(&device(801), [Reply::reject(403, "ExpiredProviderToken")]);
    let d = sender.deliver(&notification(801)).await;
    assert_eq!(d.state(), DeliveryState::RetryLater, "{d:?}");
    assert_eq!(d.attempts, 1);
    let Outcome::Retryable {
        cause: RetryCause::ProviderTokenFloor,
        retry_after: Some(wait),
    } = d.outcome
    else {
        panic!("{d:?}");
    };
    assert_eq!(wait, Duration::from_secs(15 * 60));

    // 21 minutes after: a new token and exactly one more try.
    h.clock.advance(Duration::from_secs(16 * 60));
    h.apns.script(
        &device(802),
        [
            Reply::reject(403, "ExpiredProviderToken"),
            Reply::reject(403, "ExpiredProviderToken"),
        ],
    );
    let d = sender.deliver(&notification(802)).await;
    assert_eq!(d.attempts, 2, "{d:?}");
    assert_eq!(d.state(), DeliveryState::Rejected, "{d:?}");
    let tokens = h.apns.tokens_seen();
    assert_eq!(tokens.len(), 2);
    let seen = h.apns.requests_for(&device(802));
    assert_ne!(seen[0].jwt, seen[1].jwt, "the retry carried the new token");
    // The next notification uses the new token without a further refresh.
    assert_eq!(
        sender.deliver(&notification(803)).await.state(),
        DeliveryState::Accepted
    );
    assert_eq!(h.apns.tokens_seen().len(), 2);
}

/// `futures::future::join_all` without the dependency.
async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn an_https_proxy_carries_the_tunnel_over_tls() {
    let Some(h) = Harness::via_squid().await else {
        return;
    };
    // TLS in front of squid makes it an HTTPS proxy; its certificate comes from the test CA.
    let squid_port = h.squid.as_ref().unwrap().port;
    let (front, _task) = h
        .apns
        .tls_front(std::net::SocketAddr::from(([127, 0, 0, 1], squid_port)))
        .await;
    let mut config = h.config();
    let proxy = config.proxy.as_mut().unwrap();
    proxy.tls = true;
    proxy.port = front.port();
    let (sender, _) = h.sender(config.clone());
    let d = sender.deliver(&notification(900)).await;
    assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    assert_eq!(h.apns.requests().len(), 1);
    drop(sender);
    let log = h.tunnel_log(1).await;
    assert!(
        log.iter()
            .any(|l| l.contains("TCP_TUNNEL/200") && l.contains(PROXY_USER)),
        "{log:?}"
    );

    // A proxy certificate nobody trusts is a proxy failure; nothing reaches APNs.
    config.extra_roots.clear();
    let (sender, _) = h.sender(config);
    let d = sender.deliver(&notification(901)).await;
    assert!(matches!(&d.outcome, Outcome::ProxyError { .. }), "{d:?}");
    assert_eq!(h.apns.requests().len(), 1);
}
