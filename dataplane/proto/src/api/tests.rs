use super::*;

fn parse(body: &str) -> Result<NewMessage, Invalid> {
    parse_submit(body.as_bytes(), &Limits::default())
}

#[test]
fn accepts_a_minimal_message_and_dedupes_recipients() {
    let m = parse(r#"{"to":["a","b","a"],"payload":{"x":1}}"#).unwrap();
    assert_eq!(m.to, vec!["a", "b"]);
    assert_eq!(m.payload.get(), r#"{"x":1}"#);
    assert_eq!(m.ttl_secs, Limits::default().default_ttl_secs);
    assert_eq!(m.idempotency_key, None);
}

#[test]
fn names_the_field_of_each_bad_input() {
    let cases = [
        (r#"{"payload":1}"#, 400, Some("to")),
        (r#"{"to":[],"payload":1}"#, 400, Some("to")),
        (r#"{"to":"a","payload":1}"#, 400, Some("to")),
        (r#"{"to":[1],"payload":1}"#, 400, Some("to")),
        (r#"{"to":[""],"payload":1}"#, 400, Some("to")),
        (r#"{"to":["a"]}"#, 400, Some("payload")),
        (
            r#"{"to":["a"],"payload":1,"ttl_secs":"x"}"#,
            400,
            Some("ttl_secs"),
        ),
        (
            r#"{"to":["a"],"payload":1,"ttl_secs":0}"#,
            400,
            Some("ttl_secs"),
        ),
        (
            r#"{"to":["a"],"payload":1,"ttl_secs":-5}"#,
            400,
            Some("ttl_secs"),
        ),
        (
            r#"{"to":["a"],"payload":1,"idempotency_key":3}"#,
            400,
            Some("idempotency_key"),
        ),
        (
            r#"{"to":["a"],"payload":1,"idempotency_key":""}"#,
            400,
            Some("idempotency_key"),
        ),
        (r#"{"to":["a"],"payload":"#, 400, None),
        (r#"[1,2]"#, 400, None),
    ];
    for (body, status, field) in cases {
        let err = parse(body).expect_err(body);
        assert_eq!((err.status, err.field), (status, field), "{body}: {err}");
    }
    let err = parse("{nope").unwrap_err();
    assert!(err.message.starts_with("malformed JSON"), "{}", err.message);
}

/// Found by the `parse_submit` / `client_frame` fuzz targets: a payload with a lone surrogate
/// escape passed as JSON, was accepted, and no client could decode the frame carrying it.
#[test]
fn a_payload_no_receiver_can_decode_is_refused() {
    for payload in [r#""\ud800""#, r#"{"\udfff":1}"#, r#"["ok","\ud83d"]"#] {
        // It passes as JSON, but cannot become a Value: `json!` with it panics (collect's
        // gRPC Submit did that before checking it).
        let raw = serde_json::value::RawValue::from_string(payload.to_owned()).unwrap();
        assert!(serde_json::to_value(&raw).is_err());
        assert!(check_payload(&raw).is_err());
        let err = parse(&format!(r#"{{"to":["a"],"payload":{payload}}}"#)).unwrap_err();
        assert_eq!((err.status, err.field), (400, Some("payload")), "{payload}");
        assert!(err.message.contains("cannot be decoded"), "{}", err.message);
    }
    // A surrogate pair is an ordinary character.
    let m = parse(r#"{"to":["a"],"payload":"\ud83d\ude00"}"#).unwrap();
    let frame = crate::frame::encode_message("id", 1, &m.payload);
    assert_eq!(crate::frame::decode_message(&frame).unwrap().payload, "😀");
}

/// Found by the `devices` fuzz target: a body that is one long JSON string got a 400 whose
/// message quoted all of it (serde's "invalid type: string …").
#[test]
fn error_messages_are_bounded_whatever_the_input_quotes() {
    let long = "é".repeat(5000);
    let string = format!("{long:?}");
    let errors = [
        parse(&string).unwrap_err(),
        devices::parse_device(string.as_bytes()).unwrap_err(),
        parse(&format!(r#"{{"to":["a"],"payload":1,"mobile":{string}}}"#)).unwrap_err(),
        parse(&format!(
            r#"{{"to":["a"],"payload":1,"notification":{{{string}:1}}}}"#
        ))
        .unwrap_err(),
        devices::parse_device(format!(r#"{{"user":"u","platform":{string}}}"#).as_bytes())
            .unwrap_err(),
    ];
    for err in errors {
        assert!(
            err.message.len() <= MAX_MESSAGE_BYTES,
            "{}",
            err.message.len()
        );
        assert!(err.message.ends_with('…'), "{}", err.message);
    }
    assert_eq!(bounded("short"), "short");
}

#[test]
fn oversized_inputs_are_413() {
    let limits = Limits {
        max_payload_bytes: 10,
        max_recipients: 2,
        ..Limits::default()
    };
    let err = parse_submit(br#"{"to":["a"],"payload":"0123456789abc"}"#, &limits).unwrap_err();
    assert_eq!((err.status, err.field), (413, Some("payload")));
    let err = parse_submit(br#"{"to":["a","b","c"],"payload":1}"#, &limits).unwrap_err();
    assert_eq!((err.status, err.field), (413, Some("to")));
}

#[test]
fn status_only_moves_forward() {
    use RecipientState::*;
    assert_eq!(Pending.advance(Delivered), Delivered);
    assert_eq!(Delivered.advance(Acked), Acked);
    assert_eq!(Pending.advance(Acked), Acked);
    assert_eq!(Acked.advance(Delivered), Acked);
    assert_eq!(Acked.advance(Expired), Acked);
    assert_eq!(Delivered.advance(Expired), Expired);
    assert_eq!(Expired.advance(Delivered), Expired);
    assert_eq!(Delivered.advance(Pending), Delivered);
    for s in [Pending, Delivered, Acked, Expired] {
        assert_eq!(RecipientState::from_u8(s.as_u8()), Some(s));
    }
    assert_eq!(RecipientState::from_u8(9), None);
}

#[test]
fn notification_and_mobile_are_optional_and_validated() {
    let m = parse(r#"{"to":["a"],"payload":1}"#).unwrap();
    assert_eq!((m.notification, m.mobile), (None, Mobile::Offline));
    let m = parse(
        r#"{"to":["a"],"payload":1,"mobile":"always",
            "notification":{"title":"T","body":"B","badge":3,"sound":"default",
                            "collapse_id":"c1","data":{"k":1}}}"#,
    )
    .unwrap();
    assert_eq!(m.mobile, Mobile::Always);
    let n = m.notification.unwrap();
    assert_eq!(
        (
            n.title.as_deref(),
            n.body.as_deref(),
            n.badge,
            n.sound.as_deref()
        ),
        (Some("T"), Some("B"), Some(3), Some("default"))
    );
    assert_eq!(n.collapse_id.as_deref(), Some("c1"));
    assert_eq!(n.data, Some(serde_json::json!({"k":1})));
    assert_eq!(
        parse(r#"{"to":["a"],"payload":1,"mobile":"never"}"#)
            .unwrap()
            .mobile,
        Mobile::Never
    );

    let long = "x".repeat(65);
    let cases = [
        (
            r#"{"to":["a"],"payload":1,"mobile":"sometimes"}"#.to_string(),
            "mobile",
        ),
        (
            r#"{"to":["a"],"payload":1,"mobile":1}"#.to_string(),
            "mobile",
        ),
        (
            r#"{"to":["a"],"payload":1,"mobile":"always"}"#.to_string(),
            "mobile",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":"hi"}"#.to_string(),
            "notification",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":{}}"#.to_string(),
            "notification",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":{"title":3}}"#.to_string(),
            "notification",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":{"title":""}}"#.to_string(),
            "notification",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":{"badge":-1}}"#.to_string(),
            "notification",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":{"badge":"1"}}"#.to_string(),
            "notification",
        ),
        (
            r#"{"to":["a"],"payload":1,"notification":{"titel":"x"}}"#.to_string(),
            "notification",
        ),
        (
            format!(
                r#"{{"to":["a"],"payload":1,"notification":{{"body":"b","collapse_id":"{long}"}}}}"#
            ),
            "notification",
        ),
    ];
    for (body, field) in cases {
        let err = parse(&body).expect_err(&body);
        assert_eq!((err.status, err.field), (400, Some(field)), "{body}: {err}");
    }
}

#[test]
fn batches_validate_each_message_on_its_own() {
    let limits = Limits {
        max_batch: 3,
        ..Limits::default()
    };
    let body =
        br#" [{"to":["a"],"payload":1}, {"to":[],"payload":1}, {"to":["b"],"payload":{"x":2}}]"#;
    assert!(is_batch(body));
    assert!(!is_batch(br#"{"to":["a"]}"#));
    let r = parse_batch(body, &limits).unwrap();
    assert_eq!(r.len(), 3);
    assert!(r[0].is_ok() && r[2].is_ok());
    assert_eq!(r[1].as_ref().unwrap_err().field, Some("to"));
    let four = br#"[{"to":["a"],"payload":1},{"to":["a"],"payload":1},{"to":["a"],"payload":1},{"to":["a"],"payload":1}]"#;
    assert_eq!(parse_batch(four, &limits).unwrap_err().status, 413);
    assert_eq!(parse_batch(b"[]", &limits).unwrap_err().status, 400);
    assert_eq!(parse_batch(b"[1", &limits).unwrap_err().status, 400);
    assert!(parse_batch(b"[1]", &limits).unwrap()[0].is_err());
}
