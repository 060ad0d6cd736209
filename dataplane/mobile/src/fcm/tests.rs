use std::time::Duration;

use pushcluster_proto::api::{Notification, Platform};
use serde_json::{Value, json};

use super::message::{body, classify};
use crate::retry::Verdict;
use crate::testing::{self, reply};

const MINUTE: Duration = Duration::from_secs(60);

fn verdict(status: u16, body: Value) -> Verdict {
    let (s, h) = reply(status);
    classify(s, &h, body.to_string().as_bytes(), MINUTE)
}

fn fcm_error(status: u16, s: &str, code: Option<&str>) -> Value {
    let mut details = vec![];
    if let Some(c) = code {
        details.push(
            json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}),
        );
    }
    json!({"error": {"code": status, "message": "m", "status": s, "details": details}})
}

#[test]
fn replies_are_classified_once() {
    assert_eq!(
        verdict(200, json!({"name": "projects/p/messages/0:1"})),
        Verdict::Accepted {
            id: Some("projects/p/messages/0:1".into())
        }
    );
    assert!(matches!(
        verdict(404, fcm_error(404, "NOT_FOUND", Some("UNREGISTERED"))),
        Verdict::Rejected { dead: true, .. }
    ));
    let bad_token = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token"}]}]}});
    assert!(matches!(
        verdict(400, bad_token),
        Verdict::Rejected { dead: true, .. }
    ));
    assert!(matches!(
        verdict(
            400,
            fcm_error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"))
        ),
        Verdict::Rejected { dead: false, .. }
    ));
    assert!(matches!(
        verdict(
            403,
            fcm_error(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"))
        ),
        Verdict::Rejected { dead: false, .. }
    ));
    assert!(matches!(
        verdict(401, fcm_error(401, "UNAUTHENTICATED", None)),
        Verdict::AuthRefused { .. }
    ));
    assert!(matches!(
        verdict(
            401,
            fcm_error(401, "UNAUTHENTICATED", Some("THIRD_PARTY_AUTH_ERROR"))
        ),
        Verdict::Rejected { .. }
    ));
    assert_eq!(
        verdict(
            429,
            fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"))
        ),
        Verdict::Retry {
            reason: "429 QUOTA_EXCEEDED".into(),
            after: Some(MINUTE),
            now: false
        }
    );
    let (s, mut h) = reply(503);
    h.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
    assert_eq!(
        classify(s, &h, b"{}", MINUTE),
        Verdict::Retry {
            reason: "503 503".into(),
            after: Some(Duration::from_secs(3)),
            now: false
        }
    );
    assert!(matches!(
        verdict(500, fcm_error(500, "INTERNAL", Some("INTERNAL"))),
        Verdict::Retry { after: None, .. }
    ));
}

#[test]
fn the_notification_maps_to_an_fcm_message() {
    let req = testing::with(
        Platform::Fcm,
        "tok:en",
        Notification {
            title: Some("Hello".into()),
            body: Some("World".into()),
            badge: Some(3),
            sound: Some("default".into()),
            collapse_id: Some("order-7".into()),
            data: Some(json!({"order": 7, "kind": "shipped"})),
        },
    );
    let m: Value = serde_json::from_slice(&body(&req).unwrap()).unwrap();
    let m = &m["message"];
    assert_eq!(m["token"], "tok:en");
    assert_eq!(
        m["notification"],
        json!({"title": "Hello", "body": "World"})
    );
    assert_eq!(m["data"], json!({"order": "7", "kind": "shipped"}));
    assert_eq!(m["android"]["collapse_key"], "order-7");
    assert_eq!(m["android"]["notification"]["tag"], "order-7");
    assert_eq!(m["android"]["notification"]["notification_count"], 3);
    let ttl = m["android"]["ttl"].as_str().unwrap();
    assert!(
        ttl.ends_with('s') && ttl.trim_end_matches('s').parse::<u64>().unwrap() > 3500,
        "{ttl}"
    );
    // Data only: no visible part.
    let data_only = testing::with(
        Platform::Fcm,
        "t",
        Notification {
            data: Some(json!(1)),
            ..Notification::default()
        },
    );
    let m: Value = serde_json::from_slice(&body(&data_only).unwrap()).unwrap();
    assert!(
        m["message"]["notification"].is_null() && m["message"]["android"]["notification"].is_null()
    );
    assert_eq!(m["message"]["data"]["data"], "1");
}

#[test]
fn the_key_file_is_checked_and_never_printed() {
    let key = pushcluster_test_support::fcm::KEY_PEM;
    let file = |over: Value| {
        let mut v = json!({"type": "service_account", "project_id": "p", "private_key_id": "k",
            "private_key": key, "client_email": "a@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"});
        for (k, x) in over.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    let account = super::auth::ServiceAccount::from_json(file(json!({})).as_bytes()).unwrap();
    let debug = format!("{account:?}");
    assert!(
        !debug.contains("PRIVATE KEY") && debug.contains("<redacted>"),
        "{debug}"
    );
    let jwt = account.grant(std::time::SystemTime::now()).unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (jsonwebtoken::Algorithm::RS256, Some("k"))
    );
    for (bad, what) in [
        (json!({"type": "authorized_user"}), "type"),
        (json!({"private_key": "nope"}), "private_key"),
        (json!({"token_uri": "http://x/token"}), "token_uri"),
        (json!({"client_email": ""}), "client_email"),
    ] {
        let err = super::auth::ServiceAccount::from_json(file(bad).as_bytes()).unwrap_err();
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}
