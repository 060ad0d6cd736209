use super::*;

fn frame(payload: &str) -> String {
    format!(r#"{{"type":"message","id":"0193-abc","seq":17,"payload":{payload}}}"#)
}

#[test]
fn payload_has_the_asked_size_and_scans_back() {
    let tag = Tag {
        phase: 3,
        msg: 42,
        sent_us: 1_764_000_000_123_456,
    };
    let mut buf = Vec::new();
    write_payload(&mut buf, &tag, 100);
    assert_eq!(buf.len(), 100);
    let payload = std::str::from_utf8(&buf).unwrap();
    serde_json::from_str::<serde_json::Value>(payload).unwrap();
    let f = frame(payload);
    assert_eq!(
        scan(f.as_bytes()),
        Scanned::Message {
            id: Cow::Borrowed("0193-abc"),
            seq: 17,
            tag,
            slow: false,
        }
    );
}

#[test]
fn a_small_size_still_gives_a_valid_payload() {
    let mut buf = Vec::new();
    let tag = Tag {
        phase: 1,
        msg: 0,
        sent_us: 5,
    };
    write_payload(&mut buf, &tag, 3);
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["t"], 5);
}

#[test]
fn other_field_orders_take_the_slow_path() {
    let f = r#"{"seq":2,"type":"message","payload":{"t":9,"m":1,"b":4,"p":""},"id":"x"}"#;
    assert_eq!(
        scan(f.as_bytes()),
        Scanned::Message {
            id: Cow::Owned("x".into()),
            seq: 2,
            tag: Tag {
                phase: 4,
                msg: 1,
                sent_us: 9
            },
            slow: true,
        }
    );
}

#[test]
fn classifies_other_frames() {
    // pushd's welcome and error frames come with their keys sorted.
    let welcome = br#"{"node":"local","ping_interval_secs":25,"type":"welcome","user":"u1"}"#;
    assert_eq!(scan(welcome), Scanned::Welcome);
    let error = br#"{"code":"unknown_id","id":"x","message":"m","type":"error"}"#;
    assert_eq!(scan(error), Scanned::Error(error));
    assert_eq!(scan(frame(r#"{"other":1}"#).as_bytes()), Scanned::Other);
    assert_eq!(scan(b"not json"), Scanned::Other);
}

#[test]
fn ack_is_the_protocol_frame() {
    let ack: Vec<u8> = ack_parts(b"id-1").concat();
    let v: serde_json::Value = serde_json::from_slice(&ack).unwrap();
    assert_eq!(v, serde_json::json!({"type": "ack", "id": "id-1"}));
}

#[test]
fn cumulative_ack_frame() {
    let mut buf = b"stale".to_vec();
    ack_seq(&mut buf, 17);
    assert_eq!(buf, br#"{"type":"ack","seq":17}"#);
}
