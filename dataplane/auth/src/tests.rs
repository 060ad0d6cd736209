use super::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::Duration;

const SECRET: &[u8] = b"test-secret";

fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> u64 {
    pushcluster_proto::delivery::now_ms() / 1000
}

#[test]
fn issued_token_verifies_to_its_user() {
    let v = JwtVerifier::hs256(SECRET);
    let t = issue(SECRET, "user-1", Duration::from_secs(60));
    assert_eq!(v.verify_sync(&t).unwrap(), "user-1");
}

#[test]
fn refuses_bad_tokens_with_reasons() {
    let v = JwtVerifier::hs256(SECRET);
    assert_eq!(v.verify_sync(""), Err(AuthError::Missing));
    let expired = sign(serde_json::json!({"sub":"u","exp": now() - 120}), SECRET);
    assert_eq!(v.verify_sync(&expired), Err(AuthError::Expired));
    let no_exp = sign(serde_json::json!({"sub":"u"}), SECRET);
    assert!(matches!(v.verify_sync(&no_exp), Err(AuthError::Invalid(m)) if m.contains("exp")));
    let wrong_key = sign(serde_json::json!({"sub":"u","exp": now() + 60}), b"other");
    assert!(matches!(
        v.verify_sync(&wrong_key),
        Err(AuthError::Invalid(_))
    ));
    let empty_sub = sign(serde_json::json!({"sub":"","exp": now() + 60}), SECRET);
    assert!(matches!(
        v.verify_sync(&empty_sub),
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        v.verify_sync("garbage"),
        Err(AuthError::Invalid(_))
    ));
    let none_alg = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    assert!(matches!(
        v.verify_sync(none_alg),
        Err(AuthError::Invalid(_))
    ));
}
