use pushcluster_proto::api::{Notification, Platform};
use serde_json::{Value, json};

use super::message::{classify, form};
use crate::retry::Verdict;
use crate::testing::{self, reply};

fn verdict(status: u16, body: Value) -> Verdict {
    let (s, h) = reply(status);
    classify(s, &h, body.to_string().as_bytes(), "reg1")
}

#[test]
fn replies_are_classified_once() {
    assert_eq!(
        verdict(
            200,
            json!({"result": "ok", "code": 0, "data": {"id": "scm1"}})
        ),
        Verdict::Accepted {
            id: Some("scm1".into())
        }
    );
    assert!(matches!(
        verdict(
            200,
            json!({"result": "ok", "code": 0, "data": {"id": "x", "bad_regids": "reg1"}})
        ),
        Verdict::Rejected { dead: true, .. }
    ));
    assert!(matches!(
        verdict(
            200,
            json!({"result": "error", "code": 20301, "reason": "No valid targets!"})
        ),
        Verdict::Rejected { dead: true, .. }
    ));
    assert!(matches!(
        verdict(
            200,
            json!({"result": "error", "code": 21301, "reason": "Authentication failed"})
        ),
        Verdict::Later { .. }
    ));
    assert_eq!(
        verdict(
            200,
            json!({"result": "error", "code": 200002, "reason": "quota"})
        ),
        Verdict::Rejected {
            reason: "200002 quota".into(),
            dead: false
        }
    );
    assert!(matches!(
        verdict(429, json!({})),
        Verdict::Retry { now: false, .. }
    ));
    assert!(matches!(
        verdict(503, json!({})),
        Verdict::Retry { now: false, .. }
    ));
    assert!(matches!(
        verdict(200, json!("nonsense")),
        Verdict::Rejected { dead: false, .. }
    ));
}

#[test]
fn the_notification_maps_to_the_form_with_a_jobkey_per_device() {
    let n = Notification {
        title: Some("T".into()),
        body: Some("B".into()),
        data: Some(json!({"a": 1})),
        ..Notification::default()
    };
    let a = testing::with(Platform::Xiaomi, "regA", n.clone());
    let b = testing::with(Platform::Xiaomi, "regB", n);
    let parse = |req| pushcluster_test_support::https::form(&form(req, "com.example").unwrap());
    let (fa, fb) = (parse(&a), parse(&b));
    let get = |f: &[(String, String)], k: &str| {
        pushcluster_test_support::https::field(f, k).map(str::to_owned)
    };
    assert_eq!(get(&fa, "registration_id").as_deref(), Some("regA"));
    assert_eq!(
        get(&fa, "restricted_package_name").as_deref(),
        Some("com.example")
    );
    assert_eq!(get(&fa, "title").as_deref(), Some("T"));
    assert_eq!(get(&fa, "description").as_deref(), Some("B"));
    assert_eq!(get(&fa, "pass_through").as_deref(), Some("0"));
    assert_eq!(get(&fa, "payload").as_deref(), Some(r#"{"a":1}"#));
    let jobkey = get(&fa, "extra.jobkey").unwrap();
    assert_eq!(jobkey.len(), 20);
    assert_ne!(Some(jobkey.clone()), get(&fb, "extra.jobkey"), "per device");
    assert_eq!(Some(jobkey), get(&parse(&a), "extra.jobkey"), "stable");
    assert_eq!(
        get(&fa, "notify_id"),
        get(&fb, "notify_id"),
        "one notify_id per message"
    );
    let ttl: u64 = get(&fa, "time_to_live").unwrap().parse().unwrap();
    assert!(ttl > 3_500_000, "{ttl}");
    let data_only = testing::with(
        Platform::Xiaomi,
        "r",
        Notification {
            data: Some(json!(1)),
            ..Notification::default()
        },
    );
    assert_eq!(
        get(&parse(&data_only), "pass_through").as_deref(),
        Some("1")
    );
}
