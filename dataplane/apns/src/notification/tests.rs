use super::*;

#[test]
fn device_tokens_are_hex_of_sane_length() {
    let t = DeviceToken::parse(&"AB".repeat(32)).unwrap();
    assert_eq!(t.as_str(), "ab".repeat(32));
    assert_eq!(format!("{t:?}"), "DeviceToken(abababab…)");
    for bad in [
        "",
        "abc",
        &"zz".repeat(32),
        &"a".repeat(65),
        &"a".repeat(202),
    ] {
        assert!(DeviceToken::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn collapse_id_defaults_to_the_apns_id_and_is_stable() {
    let device = DeviceToken::parse(&"01".repeat(32)).unwrap();
    let id = apns_id_for("msg-1", &device);
    assert_eq!(id, apns_id_for("msg-1", &device), "deterministic");
    assert_ne!(id, apns_id_for("msg-2", &device));
    let mut n = Notification::new(device, id, Bytes::from_static(b"{}"));
    assert_eq!(n.collapse_id(), id.hyphenated().to_string());
    n.collapse_id = Some("c".repeat(64));
    n.validate().unwrap();
    n.collapse_id = Some("c".repeat(65));
    assert!(matches!(
        n.validate(),
        Err(NotificationError::CollapseIdTooLong)
    ));
}

#[test]
fn payload_limits_depend_on_the_push_type() {
    let device = DeviceToken::parse(&"01".repeat(32)).unwrap();
    let mut n = Notification::new(device, Uuid::nil(), Bytes::from(vec![b' '; 5000]));
    assert!(matches!(
        n.validate(),
        Err(NotificationError::PayloadTooLarge { max: 4096, .. })
    ));
    n.push_type = PushType::Voip;
    n.validate().unwrap();
}

#[test]
fn alert_payloads_are_built_with_a2() {
    let data = serde_json::json!({"message_id": "m1"});
    let json = alert_payload(&Alert {
        title: Some("Hello"),
        body: Some("World"),
        badge: Some(3),
        sound: Some("default"),
        data: Some(&data),
    })
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["aps"]["alert"]["title"], "Hello");
    assert_eq!(v["aps"]["alert"]["body"], "World");
    assert_eq!(v["aps"]["badge"], 3);
    assert_eq!(v["aps"]["sound"], "default");
    assert_eq!(v["data"]["message_id"], "m1");
    let big = "x".repeat(5000);
    assert!(
        alert_payload(&Alert {
            body: Some(&big),
            ..Default::default()
        })
        .is_err()
    );
}
