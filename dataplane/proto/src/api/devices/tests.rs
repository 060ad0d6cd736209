use super::*;

fn hex(n: usize) -> String {
    "aB".repeat(n / 2)
}

#[test]
fn accepts_a_registration_and_lowercases_the_token() {
    let body = format!(r#"{{"user":"u1","platform":"apns","token":"{}"}}"#, hex(64));
    let d = parse_device(body.as_bytes()).unwrap();
    assert_eq!(d.user, "u1");
    assert_eq!(d.platform, Platform::Apns);
    assert_eq!(d.token, "ab".repeat(32));
    assert_eq!(d.topic, None);
    let body = format!(
        r#"{{"user":"u1","platform":"apns","token":"{}","topic":"com.example.app"}}"#,
        hex(200)
    );
    let d = parse_device(body.as_bytes()).unwrap();
    assert_eq!(d.topic.as_deref(), Some("com.example.app"));
}

#[test]
fn names_the_field_of_each_bad_input() {
    let ok = hex(64);
    let cases = [
        (
            format!(r#"{{"platform":"apns","token":"{ok}"}}"#),
            Some("user"),
        ),
        (
            format!(r#"{{"user":"","platform":"apns","token":"{ok}"}}"#),
            Some("user"),
        ),
        (
            format!(r#"{{"user":7,"platform":"apns","token":"{ok}"}}"#),
            Some("user"),
        ),
        (
            format!(r#"{{"user":"u","token":"{ok}"}}"#),
            Some("platform"),
        ),
        (
            format!(r#"{{"user":"u","platform":"fcm","token":"{ok}"}}"#),
            Some("platform"),
        ),
        (
            format!(r#"{{"user":"u","platform":1,"token":"{ok}"}}"#),
            Some("platform"),
        ),
        (
            r#"{"user":"u","platform":"apns"}"#.to_string(),
            Some("token"),
        ),
        (
            r#"{"user":"u","platform":"apns","token":12}"#.to_string(),
            Some("token"),
        ),
        (
            format!(
                r#"{{"user":"u","platform":"apns","token":"{}"}}"#,
                "zz".repeat(32)
            ),
            Some("token"),
        ),
        (
            format!(r#"{{"user":"u","platform":"apns","token":"{}"}}"#, hex(62)),
            Some("token"),
        ),
        (
            format!(r#"{{"user":"u","platform":"apns","token":"{}"}}"#, hex(202)),
            Some("token"),
        ),
        (
            format!(r#"{{"user":"u","platform":"apns","token":"{}a"}}"#, hex(64)),
            Some("token"),
        ),
        (
            format!(r#"{{"user":"u","platform":"apns","token":"{ok}","topic":""}}"#),
            Some("topic"),
        ),
        (
            format!(r#"{{"user":"u","platform":"apns","token":"{ok}","topic":"a b"}}"#),
            Some("topic"),
        ),
        (
            format!(r#"{{"user":"u","platform":"apns","token":"{ok}","topic":3}}"#),
            Some("topic"),
        ),
        ("{nope".to_string(), None),
        ("[1]".to_string(), None),
    ];
    for (body, field) in cases {
        let err = parse_device(body.as_bytes()).expect_err(&body);
        assert_eq!((err.status, err.field), (400, field), "{body}: {err}");
    }
}

#[test]
fn path_tokens_are_hex() {
    assert_eq!(validate_token_path("ABcd").unwrap(), "abcd");
    assert!(validate_token_path("").is_err());
    assert!(validate_token_path("xyz").is_err());
    assert!(validate_token_path(&"a".repeat(201)).is_err());
}
