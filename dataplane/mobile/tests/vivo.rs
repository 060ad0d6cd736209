//! The vivo sender against the fake vivo push (HTTP/1.1 over TLS on loopback, signed auth):
//! scripted faults end in their documented states; the daily quota is surfaced and not
//! retried; a resend carries the same `requestId`, which vivo does not show twice.

mod common;

use std::sync::Arc;

use common::{Case, case, fast, metrics, metrics_text, request};
use pushcluster_mobile::MobileSender;
use pushcluster_mobile::http::DirectConfig;
use pushcluster_mobile::secret::Secret;
use pushcluster_mobile::vivo::{VivoConfig, VivoSender};
use pushcluster_proto::api::{MobileState, Platform};
use pushcluster_test_support::https::FakeVendor;
use pushcluster_test_support::vivo::{APP_ID, APP_KEY, APP_SECRET, FakeVivo, Reply};

fn config(vivo: &FakeVivo, secret: &str, unknown_retries: u32) -> VivoConfig {
    let mut direct = DirectConfig::new(vivo.url().parse().unwrap());
    fast(&mut direct, vivo.ca_pem());
    direct.retry.unknown_retries = unknown_retries;
    VivoConfig {
        app_id: APP_ID,
        app_key: APP_KEY.into(),
        app_secret: Secret::new(secret),
        direct,
    }
}

fn reg_id(n: u32) -> String {
    format!("1550312507083116{n:07}")
}

#[tokio::test]
async fn scripted_replies_end_in_their_documented_state() {
    use MobileState::*;
    let vivo = FakeVivo::start().await;
    let (m, registry) = metrics();
    let sender = VivoSender::new(config(&vivo, APP_SECRET, 0), m).unwrap();
    let cases: Vec<Case<Reply>> = vec![
        case("0", vec![Reply::Ok], Accepted, 1, None, false),
        case(
            "10070 daily quota: surfaced, not retried",
            vec![Reply::Quota],
            Rejected,
            1,
            Some("10070"),
            false,
        ),
        case(
            "10302 invalid regId",
            vec![Reply::InvalidRegId],
            Rejected,
            1,
            Some("10302"),
            true,
        ),
        case(
            "10000 token expired, then 0",
            vec![Reply::ExpireToken],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "429 Retry-After 1, then 0",
            vec![Reply::TooManyRequests {
                retry_after: Some(1),
            }],
            Accepted,
            2,
            None,
            false,
        ),
        case(
            "500 four times",
            vec![Reply::ServerError; 4],
            Pending,
            4,
            Some("500"),
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
        &vivo,
        &sender,
        Platform::Vivo,
        &cases,
        reg_id,
        |t, c| vivo.script(t, c.replies.clone()),
        |c, _, t| {
            if c.name.starts_with("10070") {
                assert_eq!(vivo.requests_for(t).len(), 1, "quota is never retried");
            }
        },
    )
    .await;
    assert_eq!(vivo.tokens_issued(), 2, "cached; replaced once after 10000");
    let text = metrics_text(&registry);
    assert!(
        text.contains(r#"pushd_mobile_token_refreshes_total{vendor="vivo",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(!text.contains(APP_SECRET) && !text.contains("vivo-auth-"));
}

#[tokio::test]
async fn a_resend_after_no_answer_carries_the_same_request_id_and_shows_once() {
    let vivo = FakeVivo::start().await;
    let sender = VivoSender::new(config(&vivo, APP_SECRET, 1), metrics().0).unwrap();
    let t = reg_id(1);
    vivo.script(&t, [Reply::Hang]);
    let r = sender.send(&request(Platform::Vivo, &t, "m1")).await;
    assert_eq!((r.state, r.attempts), (MobileState::Accepted, 2), "{r:?}");
    let sent = vivo.requests_for(&t);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].request_id, sent[1].request_id);
    assert_eq!(sent[1].answer, "duplicate");
    assert_eq!(vivo.shown_on(&t), 1);
    assert!(r.vendor_id.is_some(), "the first taskId: {r:?}");
}

#[tokio::test]
async fn a_wrong_app_secret_leaves_it_pending() {
    let vivo = FakeVivo::start().await;
    let sender = VivoSender::new(config(&vivo, "wrong", 0), metrics().0).unwrap();
    let r = sender.send(&request(Platform::Vivo, &reg_id(1), "m")).await;
    assert_eq!((r.state, r.attempts), (MobileState::Pending, 0), "{r:?}");
    assert!(r.reason.as_deref().unwrap().contains("10200"), "{r:?}");
    assert!(vivo.requests().is_empty(), "nothing sent without a token");
}

#[tokio::test]
async fn a_dead_token_is_never_sent_to_again() {
    let vivo = Arc::new(FakeVivo::start().await);
    let sender = Arc::new(VivoSender::new(config(&vivo, APP_SECRET, 0), metrics().0).unwrap());
    let t = reg_id(9);
    vivo.script(&t, [Reply::InvalidRegId]);
    let (v, tt) = (vivo.clone(), t.clone());
    common::dead_token_is_never_sent_again(sender, Platform::Vivo, &t, move || {
        v.requests_for(&tt).len()
    })
    .await;
}
