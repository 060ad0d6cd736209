//! The sender against the fake APNs directly (no proxy): runs everywhere, no service needed.

mod harness;

use std::time::Duration;

use harness::{Harness, device, notification};
use pushcluster_apns::{DeliveryState, Outcome, ProxyConfig, ProxyFailure, RetryCause};
use pushcluster_test_support::apns::Reply;

#[tokio::test]
async fn accepted_with_headers_apple_expects() {
    let h = Harness::direct().await;
    let (sender, _) = h.sender(h.config());
    let mut n = notification(1);
    n.expiration = Some(1_800_000_000);
    n.collapse_id = Some("news-42".into());
    let d = sender.deliver(&n).await;
    assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    assert_eq!(d.attempts, 1);
    assert_eq!(d.outcome, Outcome::Accepted { apns_id: n.apns_id });
    let reqs = h.apns.requests_for(&device(1));
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        r.apns_id.as_deref(),
        Some(n.apns_id.hyphenated().to_string().as_str())
    );
    assert_eq!(r.collapse_id.as_deref(), Some("news-42"));
    assert_eq!(r.topic.as_deref(), Some(h.apns.topic.as_str()));
    assert_eq!(r.push_type.as_deref(), Some("alert"));
    assert_eq!(r.priority.as_deref(), Some("10"));
    assert_eq!(r.expiration.as_deref(), Some("1800000000"));
    assert_eq!(r.payload, n.payload.to_vec());
    assert!(r.iat.is_some(), "the fake verified the ES256 token");
}

#[tokio::test]
async fn wrong_topic_is_rejected_by_the_fake() {
    let h = Harness::direct().await;
    let mut config = h.config();
    config.topic = "com.example.other".into();
    let (sender, _) = h.sender(config);
    let d = sender.deliver(&notification(2)).await;
    assert_eq!(d.state(), DeliveryState::Rejected, "{d:?}");
    assert!(
        matches!(&d.outcome, Outcome::Rejected { status: 400, reason, .. } if reason.as_str() == "TopicDisallowed")
    );
    assert_eq!(d.attempts, 1);
}

#[tokio::test]
async fn untrusted_certificate_is_never_sent_to() {
    let h = Harness::direct().await;
    let mut config = h.config();
    config.extra_roots.clear();
    let (sender, _) = h.sender(config);
    let d = sender.deliver(&notification(3)).await;
    assert_eq!(d.state(), DeliveryState::RetryLater, "{d:?}");
    assert!(
        matches!(&d.outcome, Outcome::Retryable { cause: RetryCause::Connect(e), .. } if e.contains("TLS")),
        "{d:?}"
    );
    assert!(h.apns.requests().is_empty());
}

#[tokio::test]
async fn unreachable_proxy_is_a_proxy_error() {
    let h = Harness::direct().await;
    let mut config = h.config();
    let closed = pushcluster_test_support::free_port();
    config.proxy = Some(ProxyConfig::parse(&format!("http://u:p@127.0.0.1:{closed}")).unwrap());
    let (sender, _) = h.sender(config);
    let d = sender.deliver(&notification(4)).await;
    assert_eq!(d.state(), DeliveryState::RetryLater, "{d:?}");
    assert!(
        matches!(
            &d.outcome,
            Outcome::ProxyError {
                failure: ProxyFailure::Unreachable,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(d.attempts, 1);
    assert!(h.apns.requests().is_empty());
}

#[tokio::test]
async fn goaway_before_processing_is_resent_at_once() {
    let h = Harness::direct().await;
    h.apns.goaway_next_connections(1);
    let (sender, _) = h.sender(h.config());
    let d = sender.deliver(&notification(5)).await;
    assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    assert_eq!(d.attempts, 2);
    assert_eq!(h.apns.connections(), 2);
    // The first connection processed nothing.
    assert_eq!(h.apns.requests_for(&device(5)).len(), 1);
}

#[tokio::test]
async fn refused_stream_is_resent_at_once() {
    let h = Harness::direct().await;
    h.apns.script(&device(6), [Reply::RefuseStream]);
    let (sender, _) = h.sender(h.config());
    let started = tokio::time::Instant::now();
    let d = sender.deliver(&notification(6)).await;
    assert_eq!(d.state(), DeliveryState::Accepted, "{d:?}");
    assert_eq!(d.attempts, 2);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "no back-off"
    );
}
