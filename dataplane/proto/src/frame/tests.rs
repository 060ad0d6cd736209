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
        ClientFrame::Ack { id: "x".into() }
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
