//! `POST /v1/devices` bodies and `DELETE /v1/devices/{token}` paths
//! (`pushcluster_proto::api::devices`).
//!
//! Properties: an accepted registration has a valid user, an APNs token of an even number of
//! 64–200 lowercase hex digits and a bounded topic; it parses again to itself; a registered
//! token can always be deleted by its path; normalizing is idempotent; errors are 400 naming
//! a field of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushcluster_proto::api::devices::{
    MAX_TOPIC_BYTES, parse_device, validate_token, validate_token_path,
};
use pushcluster_proto::api::{Platform, validate_user_id};

const FIELDS: [&str; 4] = ["user", "platform", "token", "topic"];
const MAX_REASON_BYTES: usize = 512;

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fuzz_target!(|data: &[u8]| {
    match parse_device(data) {
        Ok(d) => {
            validate_user_id(&d.user).expect("a valid user");
            assert_eq!(d.platform, Platform::Apns);
            assert!((64..=200).contains(&d.token.len()) && d.token.len() % 2 == 0);
            assert!(lower_hex(&d.token), "{:?}", d.token);
            if let Some(t) = &d.topic {
                assert!(!t.is_empty() && t.len() <= MAX_TOPIC_BYTES);
                assert!(t.bytes().all(|b| b.is_ascii_graphic()));
            }
            assert_eq!(
                validate_token(Platform::Apns, &d.token).as_ref(),
                Ok(&d.token)
            );
            assert_eq!(validate_token_path(&d.token).as_ref(), Ok(&d.token));
            let again = serde_json::json!({
                "user": d.user, "platform": d.platform.as_str(), "token": d.token, "topic": d.topic,
            });
            assert_eq!(parse_device(again.to_string().as_bytes()).as_ref(), Ok(&d));
        }
        Err(e) => {
            assert_eq!(e.status, 400);
            assert!(e.field.is_none_or(|f| FIELDS.contains(&f)), "{:?}", e.field);
            assert!(!e.message.is_empty());
            assert!(
                e.message.len() <= MAX_REASON_BYTES,
                "a {}-byte reason",
                e.message.len()
            );
        }
    }

    // The raw input as a device token, in a body and in a path.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match validate_token(Platform::Apns, text) {
        Ok(t) => {
            assert_eq!(t, text.to_ascii_lowercase());
            assert_eq!(validate_token(Platform::Apns, &t).as_ref(), Ok(&t));
            assert_eq!(validate_token_path(text).as_ref(), Ok(&t));
        }
        Err(m) => assert!(m.len() <= MAX_REASON_BYTES),
    }
    if let Ok(t) = validate_token_path(text) {
        assert!(!t.is_empty() && t.len() <= 200 && lower_hex(&t));
        assert_eq!(validate_token_path(&t).as_ref(), Ok(&t));
    }
});
