use super::*;

#[test]
fn message_frame_embeds_payload_verbatim() {
    let payload = RawValue::from_string(r#"{"a":[1,2,{"b":null}]}"#.into()).unwrap();
    let text = encode_message("m1", 7, &payload);
    assert_eq!(
        text,
        r#"{"type":"message","id":"m1","seq":7,"payload":{"a":[1,2,{"b":null}]}}"#
    );
    let back = decode_message(&text).unwrap();
    assert_eq!(back.id, "m1");
    assert_eq!(back.seq, 7);
    assert_eq!(back.payload["a"][2]["b"], serde_json::Value::Null);
}

#[test]
fn decodes_ack_and_ping() {
    assert_eq!(
        decode_client(r#"{"type":"ack","id":"x"}"#).unwrap(),
        ClientFrame::Ack(AckTarget::Id("x".into()))
    );
    assert_eq!(
        decode_client(r#"{"type":"ack","seq":17}"#).unwrap(),
        ClientFrame::Ack(AckTarget::Seq(17))
    );
    // Both: the seq wins (it says more).
    assert_eq!(
        decode_client(r#"{"type":"ack","id":"x","seq":3}"#).unwrap(),
        ClientFrame::Ack(AckTarget::Seq(3))
    );
    assert_eq!(
        decode_client(r#"{"type":"ping"}"#).unwrap(),
        ClientFrame::Ping
    );
}

#[test]
fn rejects_bad_client_frames() {
    assert!(decode_client("not json").is_err());
    assert!(decode_client(r#"{"type":"ack"}"#).is_err());
    assert!(decode_client(r#"{"type":"subscribe"}"#).is_err());
    assert!(decode_client(r#"{"type":"ack","id":5}"#).is_err());
    assert!(decode_client(r#"{"type":"ack","seq":-1}"#).is_err());
    assert!(decode_client(&format!(r#"{{"type":"ack","id":"{}"}}"#, "x".repeat(65))).is_err());
}

#[test]
fn welcome_and_error_frames_are_typed() {
    let w = encode_welcome(&Welcome {
        user: "u".into(),
        node: "n".into(),
        ping_interval_secs: 25,
    });
    let v: serde_json::Value = serde_json::from_str(&w).unwrap();
    assert_eq!(v["type"], "welcome");
    assert_eq!(v["ping_interval_secs"], 25);
    assert!(decode_message(&w).is_none());
    let e: serde_json::Value =
        serde_json::from_str(&encode_error("unknown_id", "no such message", Some("m"))).unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["id"], "m");
}

#[test]
fn template_renders_the_same_bytes_as_encode_message() {
    let raw = RawValue::from_string(r#"{"k":"v"}"#.into()).unwrap();
    let t = FrameTemplate::new("m\"1", &Payload::from_raw(&raw));
    for seq in [0, 7, 10, 99, u64::MAX] {
        assert_eq!(t.render(seq), encode_message("m\"1", seq, &raw));
    }
}
