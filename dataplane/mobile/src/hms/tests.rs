use pushcluster_proto::api::{Notification, Platform};
use serde_json::{Value, json};

use super::message::{body, classify};
use crate::retry::Verdict;
use crate::testing::{self, reply};

fn verdicts(status: u16, body: Value, tokens: &[&str]) -> Vec<Verdict> {
    let (s, h) = reply(status);
    classify(s, &h, body.to_string().as_bytes(), tokens)
}

#[test]
fn replies_are_classified_per_token() {
    let ok = verdicts(
        200,
        json!({"code": "80000000", "msg": "Success", "requestId": "r1"}),
        &["a", "b"],
    );
    assert_eq!(
        ok,
        vec![
            Verdict::Accepted {
                id: Some("r1".into())
            };
            2
        ]
    );
    let msg = json!({"success": 2, "failure": 1, "illegal_tokens": ["b"]}).to_string();
    let partial = verdicts(
        200,
        json!({"code": "80100000", "msg": msg, "requestId": "r2"}),
        &["a", "b", "c"],
    );
    assert_eq!(
        partial[0],
        Verdict::Accepted {
            id: Some("r2".into())
        }
    );
    assert!(
        matches!(&partial[1], Verdict::Retry { now: true, .. }),
        "{partial:?}"
    );
    assert_eq!(partial[2], partial[0]);
    assert!(
        verdicts(
            200,
            json!({"code": "80300007", "msg": "All the tokens are invalid"}),
            &["a"]
        )
        .iter()
        .all(|v| matches!(v, Verdict::Rejected { dead: true, .. }))
    );
    for code in ["80200001", "80200003"] {
        assert!(matches!(
            verdicts(401, json!({"code": code}), &["a"])[0],
            Verdict::AuthRefused { .. }
        ));
    }
    assert!(matches!(
        verdicts(503, json!({"code": "81000001"}), &["a"])[0],
        Verdict::Retry { now: false, .. }
    ));
    assert!(matches!(
        verdicts(429, json!({"code": "80300010"}), &["a"])[0],
        Verdict::Retry { now: false, .. }
    ));
    assert!(matches!(
        verdicts(200, json!({"code": "80300008"}), &["a"])[0],
        Verdict::Rejected { dead: false, .. }
    ));
    assert!(matches!(
        verdicts(502, json!("<html>"), &["a"])[0],
        Verdict::Retry { .. }
    ));
}

#[test]
fn the_notification_maps_to_a_push_kit_message() {
    let req = testing::with(
        Platform::Hms,
        "IQAAAAC",
        Notification {
            body: Some("only a body".into()),
            collapse_id: Some("c".into()),
            data: Some(json!({"k": 1})),
            ..Notification::default()
        },
    );
    let b: Value = serde_json::from_slice(&body(&req, &["t1", "t2"]).unwrap()).unwrap();
    let m = &b["message"];
    assert_eq!(b["validate_only"], false);
    assert_eq!(m["token"], json!(["t1", "t2"]));
    assert_eq!(m["data"], r#"{"k":1}"#);
    let n = &m["android"]["notification"];
    assert_eq!(
        (n["title"].as_str(), n["body"].as_str()),
        (Some("only a body"), Some("only a body"))
    );
    assert_eq!(n["click_action"]["type"], 3);
    assert_eq!(n["tag"], "c");
    assert!(m["android"]["collapse_key"].as_u64().unwrap() <= 100);
    let big = testing::with(
        Platform::Hms,
        "t",
        Notification {
            data: Some(json!("x".repeat(5000))),
            ..Notification::default()
        },
    );
    assert!(
        super::message::check(&big)
            .unwrap_err()
            .starts_with("80300008")
    );
}
