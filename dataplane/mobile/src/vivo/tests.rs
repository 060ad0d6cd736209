use pushcluster_proto::api::{Notification, Platform};
use serde_json::{Value, json};

use super::message::{body, classify};
use super::sign;
use crate::retry::Verdict;
use crate::testing::{self, reply};

fn verdict(status: u16, body: Value) -> Verdict {
    let (s, h) = reply(status);
    classify(s, &h, body.to_string().as_bytes())
}

#[test]
fn replies_are_classified_once() {
    assert_eq!(
        verdict(
            200,
            json!({"result": 0, "desc": "请求成功", "taskId": "t1"})
        ),
        Verdict::Accepted {
            id: Some("t1".into())
        }
    );
    assert!(matches!(
        verdict(200, json!({"result": 10000, "desc": "权限认证失败"})),
        Verdict::AuthRefused { .. }
    ));
    assert_eq!(
        verdict(
            200,
            json!({"result": 10070, "desc": "超过当天推送总数限制"})
        ),
        Verdict::Rejected {
            reason: "10070 超过当天推送总数限制".into(),
            dead: false
        }
    );
    assert!(matches!(
        verdict(200, json!({"result": 10302})),
        Verdict::Rejected { dead: true, .. }
    ));
    assert!(matches!(
        verdict(429, json!({})),
        Verdict::Retry { now: false, .. }
    ));
    assert!(matches!(
        verdict(500, json!({})),
        Verdict::Retry { now: false, .. }
    ));
}

#[test]
fn the_signature_is_md5_of_the_documented_concatenation() {
    // md5("1" + "k" + "2" + "s") = md5("1k2s")
    assert_eq!(sign(1, "k", 2, "s"), "d5fbc1b551d03bdd9eb33777953b51c1");
    assert_eq!(
        sign(1, "k", 2, "s"),
        pushcluster_test_support::vivo::sign(1, "k", 2, "s")
    );
}

#[test]
fn the_notification_maps_to_a_vivo_message() {
    let req = testing::with(
        Platform::Vivo,
        "1550312507083116",
        Notification {
            title: Some("新消息来了新消息来了新消息来了新消息来了新消息来了".into()),
            body: Some("b".into()),
            data: Some(json!({"k": "v"})),
            ..Notification::default()
        },
    );
    let m: Value = serde_json::from_slice(&body(&req).unwrap()).unwrap();
    assert_eq!(m["regId"], "1550312507083116");
    assert_eq!(m["title"].as_str().unwrap().chars().count(), 20, "40 units");
    assert_eq!(m["content"], "b");
    assert_eq!(m["clientCustomMap"], json!({"k": "v"}));
    assert_eq!(m["requestId"].as_str().unwrap().len(), 32);
    assert_eq!(m["skipType"], 1);
    assert!(m["timeToLive"].as_u64().unwrap() > 3500);
    let again: Value = serde_json::from_slice(&body(&req).unwrap()).unwrap();
    assert_eq!(
        again["requestId"], m["requestId"],
        "the same requestId on every attempt"
    );
    let data_only = testing::with(
        Platform::Vivo,
        "1",
        Notification {
            data: Some(json!(1)),
            ..Notification::default()
        },
    );
    assert!(
        body(&data_only)
            .unwrap_err()
            .starts_with("NotificationNeedsText")
    );
}
