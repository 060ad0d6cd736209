//! `POST /v1/devices` bodies and `DELETE /v1/devices/{token}` paths
//! (`pushcluster_proto::api::devices`).
//!
//! Properties: an accepted registration has a valid user, a token its vendor's format allows
//! (APNs: an even number of 64–200 lowercase hex digits) and a topic only for APNs; it parses
//! again to itself; a registered token can always be deleted by its path; normalizing is
//! idempotent; errors are 400 naming a field of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushcluster_proto::api::devices::{
    MAX_TOKEN_BYTES, MAX_TOPIC_BYTES, parse_device, validate_token, validate_token_path,
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
            if d.platform == Platform::Apns {
                assert!((64..=200).contains(&d.token.len()) && d.token.len() % 2 == 0);
                assert!(lower_hex(&d.token), "{:?}", d.token);
            } else {
                assert!(d.topic.is_none(), "a topic only for APNs");
            }
            if let Some(t) = &d.topic {
                assert!(!t.is_empty() && t.len() <= MAX_TOPIC_BYTES);
                assert!(t.bytes().all(|b| b.is_ascii_graphic()));
            }
            assert_eq!(validate_token(d.platform, &d.token).as_ref(), Ok(&d.token));
            let path = validate_token_path(&d.token).expect("a registered token has a path");
            assert_eq!(path.first(), Some(&d.token));
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

    // The raw input as a device token of each vendor, and as a path.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for platform in Platform::ALL {
        match validate_token(platform, text) {
            Ok(t) => {
                if platform == Platform::Apns {
                    assert_eq!(t, text.to_ascii_lowercase());
                } else {
                    assert_eq!(t, text, "stored as issued");
                }
                assert_eq!(validate_token(platform, &t).as_ref(), Ok(&t));
                let path = validate_token_path(text).expect("a valid token has a path");
                assert!(path.contains(&t), "{path:?} finds {t:?}");
            }
            Err(m) => assert!(m.len() <= MAX_REASON_BYTES),
        }
    }
    if let Ok(candidates) = validate_token_path(text) {
        assert!(!candidates.is_empty() && candidates.len() <= 2);
        for t in &candidates {
            assert!(!t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
        }
    }
});
