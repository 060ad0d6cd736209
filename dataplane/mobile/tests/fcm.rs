//! The FCM sender against the fake FCM (HTTP/2 over TLS on loopback, OAuth JWT grant
//! verified like Google does): every scripted reply ends in its documented state after its
//! documented attempts, never with two copies shown, on one cached access token.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Case, case, fast, metrics, metrics_text, request};
use pushcluster_mobile::MobileSender;
use pushcluster_mobile::fcm::{FcmConfig, FcmSender, auth::ServiceAccount};
use pushcluster_mobile::http::DirectConfig;
use pushcluster_proto::api::{MobileState, Platform};
use pushcluster_test_support::fcm::{FakeFcm, PROJECT, Reply, TokenReply};
use pushcluster_test_support::https::FakeVendor;

fn config(fcm: &FakeFcm, unknown_retries: u32) -> FcmConfig {
    let account = ServiceAccount::from_json(fcm.service_account_json().as_bytes()).unwrap();
    let mut direct = DirectConfig::new(fcm.url().parse().unwrap());
    fast(&mut direct, fcm.ca_pem());
    direct.retry.unknown_retries = unknown_retries;
    FcmConfig {
        project_id: PROJECT.into(),
        account,
        direct,
        quota_backoff: Duration::from_secs(60),
    }
}

fn token(n: u32) -> String {
    format!("fcm{n}:APA91b{}", "x".repeat(140))
}

#[tokio::test]
async fn scripted_replies_end_in_their_documented_state() {
    use MobileState::*;
    let fcm = FakeFcm::start().await;
    let (m, registry) = metrics();
    let sender = FcmSender::new(config(&fcm, 0), m).unwrap();
    let cases: Vec<Case<Reply>> = vec![
        case("200", vec![Reply::Ok], Accepted, 1, None, false),
        case(
            "404 UNREGISTERED",
            vec![Reply::Unregistered],
            Rejected,
            1,
            Some("UNREGISTERED"),
            true,
        ),
        case(
            "400 invalid token",
            vec![Reply::InvalidToken],
            Rejected,
            1,
            Some("invalid registration token"),
            true,
        ),
        case(
            "400 INVALID_ARGUMENT",
            vec![Reply::InvalidArgument],
            Rejected,
            1,
            Some("INVALID_ARGUMENT"),
            false,
        ),
        case(
            "403 SENDER_ID_MISMATCH",
            vec![Reply::SenderIdMismatch],
            Rejected,
            1,
            Some("SENDER_ID_MISMATCH"),
            false,
        ),
        case(
            "429 Retry-After 1, then 200",
            vec![Reply::Quota {
                retry_after: Some(1),
            }],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "429 without Retry-After: wait a minute",
            vec![Reply::Quota { retry_after: None }],
            Pending,
            1,
            Some("QUOTA_EXCEEDED"),
            false,
        ),
        case(
            "503 then 200",
            vec![Reply::Unavailable { retry_after: None }],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "500 four times",
            vec![Reply::Internal; 4],
            Pending,
            4,
            Some("INTERNAL"),
            false,
        ),
        case(
            "401 expired token, then 200",
            vec![Reply::ExpireToken],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "no answer",
            vec![Reply::Hang],
            Unknown,
            1,
            Some("timeout"),
            false,
        ),
    ];
    common::run_cases(
        &fcm,
        &sender,
        Platform::Fcm,
        &cases,
        token,
        |t, c| fcm.script(t, c.replies.clone()),
        |c, r, _| {
            if c.name.starts_with("429 without") {
                assert_eq!(r.retry_after, Some(Duration::from_secs(60)));
            }
        },
    )
    .await;
    // One token for everything but the expired one; the sends shared one HTTP/2 connection.
    assert_eq!(fcm.tokens_issued(), 2);
    assert_eq!(fcm.connections(), 1, "one connection, direct");
    let text = metrics_text(&registry);
    for line in [
        r#"pushd_mobile_token_refreshes_total{vendor="fcm",outcome="ok"} 2"#,
        r#"pushd_mobile_requests_total{vendor="fcm",outcome="auth_refused"} 1"#,
        r#"pushd_mobile_request_duration_seconds_count{vendor="fcm"}"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(!text.contains("ya29") && !text.contains(&token(0)));
}

#[tokio::test]
async fn an_unknown_outcome_is_resent_within_its_budget_and_shows_once() {
    let fcm = FakeFcm::start().await;
    let sender = FcmSender::new(config(&fcm, 1), metrics().0).unwrap();
    let t = token(1);
    fcm.script(&t, [Reply::Hang]);
    let r = sender.send(&request(Platform::Fcm, &t, "m1")).await;
    assert_eq!((r.state, r.attempts), (MobileState::Accepted, 2), "{r:?}");
    let copies = fcm.delivered_to(&t);
    assert_eq!(copies.len(), 2, "two copies reached the device");
    assert_eq!(copies[0].tag(), copies[1].tag());
    assert_eq!(
        fcm.shown_on(&t),
        1,
        "the second replaced the first (same tag)"
    );
}

#[tokio::test]
async fn the_access_token_is_cached_and_refreshed_before_it_expires() {
    let fcm = FakeFcm::start().await;
    fcm.set_token_lifetime(Duration::from_secs(2));
    let sender = FcmSender::new(config(&fcm, 0), metrics().0).unwrap();
    let sends = (0..20).map(|i| {
        let sender = sender.clone();
        async move { sender.send(&request(Platform::Fcm, &token(i), "m")).await }
    });
    for r in common::join_all(sends).await {
        assert_eq!(r.state, MobileState::Accepted, "{r:?}");
    }
    assert_eq!(fcm.tokens_issued(), 1, "20 concurrent sends, one token");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = sender.send(&request(Platform::Fcm, &token(99), "m")).await;
    assert_eq!((r.state, r.attempts), (MobileState::Accepted, 1));
    assert_eq!(fcm.tokens_issued(), 2, "replaced before expiry");
    assert!(
        fcm.requests().iter().all(|r| r.answer == "200"),
        "never a 401: {:?}",
        fcm.requests()
    );
}

#[tokio::test]
async fn a_failing_token_endpoint_leaves_it_pending_and_sends_nothing() {
    let fcm = FakeFcm::start().await;
    let sender = FcmSender::new(config(&fcm, 0), metrics().0).unwrap();
    fcm.script_token_endpoint([TokenReply::InvalidGrant, TokenReply::Unavailable]);
    let r = sender.send(&request(Platform::Fcm, &token(1), "m")).await;
    assert_eq!(r.state, MobileState::Pending, "{r:?}");
    assert!(
        r.reason.as_deref().unwrap().contains("invalid_grant"),
        "{r:?}"
    );
    let r = sender.send(&request(Platform::Fcm, &token(1), "m")).await;
    assert!(
        r.reason.as_deref().unwrap().contains("unreachable"),
        "{r:?}"
    );
    assert!(fcm.requests().is_empty(), "nothing sent without a token");
    let r = sender.send(&request(Platform::Fcm, &token(1), "m")).await;
    assert_eq!(r.state, MobileState::Accepted);
}

#[tokio::test]
async fn a_dead_token_is_never_sent_to_again() {
    let fcm = Arc::new(FakeFcm::start().await);
    let sender = Arc::new(FcmSender::new(config(&fcm, 0), metrics().0).unwrap());
    let t = token(7);
    fcm.script(&t, [Reply::Unregistered]);
    let (f, tt) = (fcm.clone(), t.clone());
    common::dead_token_is_never_sent_again(sender, Platform::Fcm, &t, move || {
        f.requests_for(&tt).len()
    })
    .await;
}
