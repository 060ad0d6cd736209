//! The Xiaomi sender against the fake MiPush (HTTP/1.1 over TLS on loopback, app-secret
//! key checked): scripted faults end in their documented states; a resend carries the same
//! `extra.jobkey`, so the device shows one copy.

mod common;

use std::sync::Arc;

use common::{Case, case, fast, metrics, metrics_text, request};
use pushcluster_mobile::MobileSender;
use pushcluster_mobile::http::DirectConfig;
use pushcluster_mobile::secret::Secret;
use pushcluster_mobile::xiaomi::{XiaomiConfig, XiaomiSender};
use pushcluster_proto::api::{MobileState, Platform};
use pushcluster_test_support::https::FakeVendor;
use pushcluster_test_support::xiaomi::{APP_SECRET, FakeXiaomi, PACKAGE, Reply};

fn config(xm: &FakeXiaomi, secret: &str, unknown_retries: u32) -> XiaomiConfig {
    let mut direct = DirectConfig::new(xm.url().parse().unwrap());
    fast(&mut direct, xm.ca_pem());
    direct.retry.unknown_retries = unknown_retries;
    XiaomiConfig {
        package: PACKAGE.into(),
        app_secret: Secret::new(secret),
        direct,
    }
}

fn regid(n: u32) -> String {
    format!("d//igwEhgBGCI2TG6lWqlK8gRrx/VACnGKya{n:04}B7Fk=")
}

#[tokio::test]
async fn scripted_replies_end_in_their_documented_state() {
    use MobileState::*;
    let xm = FakeXiaomi::start().await;
    let (m, registry) = metrics();
    let sender = XiaomiSender::new(config(&xm, APP_SECRET, 0), m).unwrap();
    let cases: Vec<Case<Reply>> = vec![
        case("ok", vec![Reply::Ok], Accepted, 1, None, false),
        case(
            "20301 no valid targets",
            vec![Reply::InvalidRegId],
            Rejected,
            1,
            Some("20301"),
            true,
        ),
        case(
            "ok with bad_regids",
            vec![Reply::BadRegId],
            Rejected,
            1,
            Some("bad_regids"),
            true,
        ),
        case(
            "daily quota: surfaced, not retried",
            vec![Reply::Quota],
            Rejected,
            1,
            Some("200002"),
            false,
        ),
        case(
            "429 Retry-After 1, then ok",
            vec![Reply::TooManyRequests {
                retry_after: Some(1),
            }],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "503 four times",
            vec![Reply::ServerError; 4],
            Pending,
            4,
            Some("503"),
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
        &xm,
        &sender,
        Platform::Xiaomi,
        &cases,
        regid,
        |t, c| xm.script(t, c.replies.clone()),
        |_, _, _| {},
    )
    .await;
    let sent = xm.requests();
    assert!(
        sent.iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("key={APP_SECRET}")))
    );
    assert_eq!(sent[0].field("title"), Some("Your order"));
    assert_eq!(sent[0].field("description"), Some("has shipped"));
    assert_eq!(sent[0].field("payload"), Some(r#"{"order":42}"#));
    let text = metrics_text(&registry);
    assert!(
        text.contains(r#"pushd_mobile_requests_total{vendor="xiaomi",outcome="accepted"} 2"#),
        "{text}"
    );
    assert!(!text.contains(APP_SECRET));
}

#[tokio::test]
async fn a_resend_after_no_answer_carries_the_same_jobkey_and_shows_once() {
    let xm = FakeXiaomi::start().await;
    let sender = XiaomiSender::new(config(&xm, APP_SECRET, 1), metrics().0).unwrap();
    let t = regid(1);
    xm.script(&t, [Reply::Hang]);
    let r = sender.send(&request(Platform::Xiaomi, &t, "m1")).await;
    assert_eq!((r.state, r.attempts), (MobileState::Accepted, 2), "{r:?}");
    let copies = xm.delivered_to(&t);
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].jobkey(), copies[1].jobkey());
    assert_eq!(
        xm.shown_on(&t),
        1,
        "one jobkey: the device shows the first only"
    );
    // Another message to the same device has its own jobkey.
    sender.send(&request(Platform::Xiaomi, &t, "m2")).await;
    assert_eq!(xm.shown_on(&t), 2);
}

#[tokio::test]
async fn a_wrong_app_secret_leaves_it_pending() {
    let xm = FakeXiaomi::start().await;
    let sender = XiaomiSender::new(config(&xm, "wrong", 0), metrics().0).unwrap();
    let t = regid(1);
    let r = sender.send(&request(Platform::Xiaomi, &t, "m")).await;
    assert_eq!((r.state, r.attempts), (MobileState::Pending, 1), "{r:?}");
    assert!(r.reason.as_deref().unwrap().contains("21301"), "{r:?}");
    assert!(xm.delivered_to(&t).is_empty());
}

#[tokio::test]
async fn a_dead_token_is_never_sent_to_again() {
    let xm = Arc::new(FakeXiaomi::start().await);
    let sender = Arc::new(XiaomiSender::new(config(&xm, APP_SECRET, 0), metrics().0).unwrap());
    let t = regid(9);
    xm.script(&t, [Reply::InvalidRegId]);
    let (x, tt) = (xm.clone(), t.clone());
    common::dead_token_is_never_sent_again(sender, Platform::Xiaomi, &t, move || {
        x.requests_for(&tt).len()
    })
    .await;
}
