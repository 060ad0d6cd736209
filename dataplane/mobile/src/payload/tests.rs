use pushcluster_proto::api::Platform;
use serde_json::json;

use super::*;
use crate::testing;

fn request(token: &str, collapse_id: Option<&str>) -> MobileRequest {
    let mut r = testing::request(Platform::Fcm, token);
    std::sync::Arc::make_mut(&mut r.notification).collapse_id = collapse_id.map(str::to_owned);
    r
}

#[test]
fn ids_are_stable_per_message_and_device() {
    let a = request("tok-a", None);
    let b = request("tok-b", None);
    assert_eq!(device_key(&a, 20), device_key(&a.clone(), 20));
    assert_ne!(device_key(&a, 20), device_key(&b, 20));
    assert_eq!(device_key(&a, 20).len(), 20);
    assert!(device_key(&a, 32).bytes().all(|c| c.is_ascii_hexdigit()));
    // The tag is per message (a resend replaces the first copy), or the collapse id.
    assert_eq!(tag(&a), tag(&b));
    assert_eq!(tag(&request("x", Some("order-42"))), "order-42");
    assert_eq!(small_number("order-42"), small_number("order-42"));
    assert!(small_number("x") <= 0x7fff_ffff);
}

#[test]
fn data_becomes_a_string_map() {
    let m = data_map(&json!({"s": "text", "n": 1, "o": {"k": true}}));
    assert_eq!(m["s"], "text");
    assert_eq!(m["n"], "1");
    assert_eq!(m["o"], r#"{"k":true}"#);
    assert_eq!(data_map(&json!([1, 2]))["data"], "[1,2]");
}

#[test]
fn ttl_is_what_is_left_and_text_is_cut_by_width() {
    let r = request("t", None);
    let left = ttl(&r).as_secs();
    assert!((3590..=3600).contains(&left), "{left}");
    let mut expired = r.clone();
    expired.expires_at_ms = 1;
    assert_eq!(ttl(&expired), Duration::ZERO);
    assert_eq!(truncate_units("abcdef", 4), "abcd");
    assert_eq!(truncate_units("新消息来了", 5), "新消");
}
