//! Client frames (`pushcluster_proto::frame`): the input as a frame a client sends, decoded as
//! the push node does; and as the id and payload of frames the server sends, decoded as a
//! client does.
//!
//! Properties: a decoded `ack` (by `seq` or by `id`) re-encodes to the same frame; `message`, `welcome` and `error`
//! frames built from any id, seq and JSON payload decode back to what went in, and are never
//! taken for a client frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushcluster_proto::api::check_payload;
use pushcluster_proto::frame::{
    AckTarget, ClientFrame, MessageFrame, Welcome, decode_client, decode_message, encode_error,
    encode_message, encode_welcome,
};
use serde_json::Value;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client(text) {
        Ok(ClientFrame::Ack(target)) => {
            let again = match &target {
                AckTarget::Seq(seq) => serde_json::json!({"type": "ack", "seq": seq}),
                AckTarget::Id(id) => serde_json::json!({"type": "ack", "id": id}),
            };
            assert_eq!(
                decode_client(&again.to_string()),
                Ok(ClientFrame::Ack(target))
            );
        }
        Ok(ClientFrame::Ping) => {}
        Err(e) => assert!(!e.0.is_empty()),
    }

    // Server frames with the input as id (any string) and, when it is a payload the API
    // accepts (JSON that decodes), as payload.
    let id = text;
    let seq = (data.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let payload = serde_json::from_str::<Box<RawValue>>(text)
        .ok()
        .filter(|p| check_payload(p).is_ok());
    if let Some(payload) = payload {
        let frame = encode_message(id, seq, &payload);
        let expected: Value = serde_json::from_str(payload.get()).unwrap();
        assert_eq!(
            decode_message(&frame),
            Some(MessageFrame {
                id: id.to_owned(),
                seq,
                payload: expected,
            })
        );
        assert!(decode_client(&frame).is_err());
    }
    let welcome = Welcome {
        user: id.to_owned(),
        node: id.chars().rev().collect(),
        ping_interval_secs: seq,
    };
    let frame = encode_welcome(&welcome);
    let w: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(w["type"], "welcome");
    assert_eq!(serde_json::from_value::<Welcome>(w).unwrap(), welcome);
    assert!(decode_message(&frame).is_none() && decode_client(&frame).is_err());
    let frame = encode_error("unknown_id", id, Some(id));
    let e: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(
        (e["type"].as_str(), e["message"].as_str(), e["id"].as_str()),
        (Some("error"), Some(id), Some(id))
    );
    assert!(decode_message(&frame).is_none() && decode_client(&frame).is_err());
});
