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
            format!(r#"{{"user":"u","platform":"gcm","token":"{ok}"}}"#),
            Some("platform"),
        ),
        (
            format!(r#"{{"user":"u","platform":"fcm","token":"{ok}"}}"#),
            Some("token"),
        ),
        (
            format!(
                r#"{{"user":"u","platform":"vivo","token":"{}","topic":"t"}}"#,
                "1".repeat(23)
            ),
            Some("topic"),
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

/// A token of `n` characters cycling through `chars`.
fn token_of(chars: &str, n: usize) -> String {
    chars.chars().cycle().take(n).collect()
}

#[test]
fn each_vendor_has_its_token_format() {
    let fcm = format!("cZx1:APA91b{}", token_of("AbC-_9z", 150));
    let hms = format!("IQAAAACy0{}", token_of("aB3-_.+/=", 120));
    let xiaomi = "d//igwEhgBGCI2TG6lWqlK8gRrx/VACnGKyaqfBB7Fk=";
    let vivo = "15503125070831162371433";
    let ok = [
        (Platform::Fcm, fcm.as_str()),
        (Platform::Hms, hms.as_str()),
        (Platform::Hms, "08665880213839173000014390000CN01"),
        (Platform::Xiaomi, xiaomi),
        (Platform::Vivo, vivo),
    ];
    for (platform, token) in ok {
        assert_eq!(
            validate_token(platform, token).as_deref(),
            Ok(token),
            "{platform:?}"
        );
        let body = serde_json::json!({"user": "u", "platform": platform.as_str(), "token": token});
        let d = parse_device(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            (d.platform, d.token.as_str()),
            (platform, token),
            "case kept"
        );
    }
    let bad = [
        (Platform::Fcm, "short:token".to_owned()),
        (Platform::Fcm, format!("{fcm} spaced")),
        (Platform::Fcm, token_of("a", MAX_TOKEN_BYTES + 1)),
        (Platform::Hms, "tooshort".to_owned()),
        (Platform::Hms, format!("{hms}!")),
        (Platform::Xiaomi, "d_igwEhgBGCI2TG6lWqlK8gRrx".to_owned()),
        (Platform::Xiaomi, "abc=".to_owned()),
        (Platform::Vivo, "1550-3125-0708".to_owned()),
        (Platform::Vivo, "1".repeat(65)),
    ];
    for (platform, token) in bad {
        let err = validate_token(platform, &token).expect_err(&token);
        assert!(err.contains("`token`"), "{err}");
    }
    for p in Platform::ALL {
        assert_eq!(Platform::parse(p.as_str()), Some(p));
    }
}

#[test]
fn path_tokens_are_decoded_and_bounded() {
    assert_eq!(validate_token_path("abcd").unwrap(), ["abcd"]);
    let apns = "AB".repeat(32);
    assert_eq!(
        validate_token_path(&apns).unwrap(),
        [apns.clone(), apns.to_lowercase()]
    );
    assert_eq!(
        validate_token_path("d%2F%2Figw%2BEh%3D").unwrap(),
        ["d//igw+Eh="]
    );
    assert!(validate_token_path("").is_err());
    assert!(validate_token_path("x y").is_err());
    assert!(validate_token_path("%zz").is_err());
    assert!(validate_token_path(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_err());
}

#[test]
fn the_device_query_names_one_valid_user() {
    assert_eq!(parse_device_query(Some("user=u1")).unwrap(), "u1");
    assert_eq!(parse_device_query(Some("user=a%2Fb+c")).unwrap(), "a/b c");
    for q in [
        None,
        Some(""),
        Some("user="),
        Some("user=a&user=b"),
        Some("who=a"),
        Some("user=%ff"),
    ] {
        let err = parse_device_query(q).expect_err(&format!("{q:?}"));
        assert_eq!((err.status, err.field), (400, Some("user")), "{q:?}: {err}");
    }
    let long = "u".repeat(300);
    assert!(parse_device_query(Some(&format!("user={long}"))).is_err());
}
