//! The Huawei sender against the fake Push Kit (HTTP/2 over TLS on loopback, OAuth client
//! credentials): scripted faults end in their documented states; the notifications of one
//! message share a request; a partial success resends only the failed tokens.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Case, case, fast, metrics, metrics_text, request};
use pushcluster_mobile::MobileSender;
use pushcluster_mobile::hms::{HmsConfig, HmsSender};
use pushcluster_mobile::http::DirectConfig;
use pushcluster_mobile::secret::Secret;
use pushcluster_proto::api::{MobileState, Platform};
use pushcluster_test_support::hms::{APP_ID, CLIENT_SECRET, FakeHms, Reply};
use pushcluster_test_support::https::FakeVendor;

fn config(hms: &FakeHms, secret: &str) -> HmsConfig {
    let mut direct = DirectConfig::new(hms.url().parse().unwrap());
    fast(&mut direct, hms.ca_pem());
    HmsConfig {
        app_id: APP_ID.into(),
        client_id: APP_ID.into(),
        client_secret: Secret::new(secret),
        oauth: hms.url().parse().unwrap(),
        direct,
        linger: Duration::from_millis(20),
        max_batch: 1000,
    }
}

fn token(n: u32) -> String {
    format!("IQAAAACy0kYq{n:04}AAAARd{}", "Ab-_".repeat(24))
}

#[tokio::test]
async fn scripted_replies_end_in_their_documented_state() {
    use MobileState::*;
    let hms = FakeHms::start().await;
    let (m, registry) = metrics();
    let sender = HmsSender::new(config(&hms, CLIENT_SECRET), m).unwrap();
    let cases: Vec<Case<Reply>> = vec![
        case("80000000", vec![Reply::Ok], Accepted, 1, None, false),
        case(
            "80300007 invalid token",
            vec![],
            Rejected,
            1,
            Some("80300007"),
            true,
        ),
        case(
            "80200003 expired token, then ok",
            vec![Reply::ExpireToken],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "429 Retry-After 1, then ok",
            vec![Reply::RateLimited {
                retry_after: Some(1),
            }],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "503 81000001 four times",
            vec![Reply::Overloaded; 4],
            Pending,
            4,
            Some("81000001"),
            false,
        ),
        case(
            "80300008 too large",
            vec![Reply::TooLarge],
            Rejected,
            1,
            Some("80300008"),
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
        &hms,
        &sender,
        Platform::Hms,
        &cases,
        token,
        |t, c| {
            if c.name.contains("invalid token") {
                hms.invalidate(t);
            }
            hms.script(t, c.replies.clone());
        },
        |_, _, _| {},
    )
    .await;
    assert_eq!(
        hms.tokens_issued(),
        2,
        "cached; replaced once after 80200003"
    );
    let text = metrics_text(&registry);
    assert!(
        text.contains(r#"pushd_mobile_token_refreshes_total{vendor="hms",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(!text.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn a_partial_success_resends_only_the_failed_tokens() {
    let hms = FakeHms::start().await;
    let sender = HmsSender::new(config(&hms, CLIENT_SECRET), metrics().0).unwrap();
    let (a, b, c, d) = (token(1), token(2), token(3), token(4));
    hms.fail_once(&b);
    hms.invalidate(&d);
    let sends = [&a, &b, &c, &d].map(|t| {
        let (sender, req) = (sender.clone(), request(Platform::Hms, t, "one-message"));
        async move { sender.send(&req).await }
    });
    let results = common::join_all(sends.into_iter()).await;
    let requests = hms.requests();
    let carried: Vec<_> = requests
        .iter()
        .map(|r| (r.tokens.clone(), r.answer.as_str()))
        .collect();
    assert_eq!(
        carried,
        [
            (vec![a.clone(), b.clone(), c.clone(), d.clone()], "80100000"),
            (vec![b.clone(), d.clone()], "80100000"),
            (vec![d.clone()], "80300007"),
        ],
        "one request for the message, then only the failed tokens"
    );
    let got: Vec<_> = results
        .iter()
        .map(|r| (r.state, r.attempts, r.unregistered_at_ms.is_some()))
        .collect();
    assert_eq!(
        got,
        [
            (MobileState::Accepted, 1, false),
            (MobileState::Accepted, 2, false),
            (MobileState::Accepted, 1, false),
            (MobileState::Rejected, 3, true),
        ]
    );
    for t in [&a, &b, &c] {
        assert_eq!(hms.delivered_to(t).len(), 1, "exactly one copy");
    }
    assert!(hms.delivered_to(&d).is_empty());
}

#[tokio::test]
async fn batches_hold_at_most_max_batch_tokens() {
    let hms = FakeHms::start().await;
    let mut c = config(&hms, CLIENT_SECRET);
    c.max_batch = 2;
    let sender = HmsSender::new(c, metrics().0).unwrap();
    let sends = (0..5).map(|i| {
        let (sender, req) = (sender.clone(), request(Platform::Hms, &token(i), "m"));
        async move { sender.send(&req).await }
    });
    for r in common::join_all(sends).await {
        assert_eq!(r.state, MobileState::Accepted);
    }
    let sizes: Vec<usize> = hms.requests().iter().map(|r| r.tokens.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 5);
    assert!(sizes.iter().all(|n| *n <= 2), "{sizes:?}");
}

#[tokio::test]
async fn refused_credentials_leave_it_pending_and_tokens_refresh_before_expiry() {
    let hms = FakeHms::start().await;
    let wrong = HmsSender::new(config(&hms, "wrong-secret"), metrics().0).unwrap();
    let r = wrong.send(&request(Platform::Hms, &token(1), "m")).await;
    assert_eq!(r.state, MobileState::Pending, "{r:?}");
    assert!(
        r.reason.as_deref().unwrap().contains("1101 invalid client"),
        "{r:?}"
    );
    assert!(hms.requests().is_empty());

    hms.set_token_lifetime(Duration::from_secs(2));
    let sender = HmsSender::new(config(&hms, CLIENT_SECRET), metrics().0).unwrap();
    assert_eq!(
        sender
            .send(&request(Platform::Hms, &token(2), "m"))
            .await
            .state,
        MobileState::Accepted
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        sender
            .send(&request(Platform::Hms, &token(3), "m2"))
            .await
            .state,
        MobileState::Accepted
    );
    assert_eq!(hms.tokens_issued(), 2);
    assert!(hms.requests().iter().all(|r| r.answer == "80000000"));
}

#[tokio::test]
async fn a_dead_token_is_never_sent_to_again() {
    let hms = Arc::new(FakeHms::start().await);
    let sender = Arc::new(HmsSender::new(config(&hms, CLIENT_SECRET), metrics().0).unwrap());
    let t = token(9);
    hms.invalidate(&t);
    let (h, tt) = (hms.clone(), t.clone());
    common::dead_token_is_never_sent_again(sender, Platform::Hms, &t, move || {
        h.requests_for(&tt).len()
    })
    .await;
}
