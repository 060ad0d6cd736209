use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::fixtures::{self, jwks, now, signer_a, signer_b};
use crate::{AuthError, KeySources};

const HOUR: Duration = Duration::from_secs(3600);

fn pem_verifier(files: &[&str]) -> crate::JwtVerifier {
    KeySources {
        rsa_public_key_files: files.iter().map(|f| fixtures::path(f)).collect(),
        ..KeySources::default()
    }
    .load()
    .unwrap()
}

/// A verifier over a JWKS file holding `doc` (the file is gone once loaded).
fn jwks_verifier(doc: &str, secret: Option<&[u8]>) -> crate::JwtVerifier {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, doc).unwrap();
    KeySources {
        jwks_file: Some(path),
        hs256_secret: secret.map(<[u8]>::to_vec),
        ..KeySources::default()
    }
    .load()
    .unwrap()
}

fn invalid_with(r: Result<String, AuthError>, text: &str) {
    match r {
        Err(AuthError::Invalid(m)) => assert!(m.contains(text), "{m:?} lacks {text:?}"),
        other => panic!("expected invalid token ({text}), got {other:?}"),
    }
}

#[test]
fn rs256_token_from_a_pem_key_is_accepted() {
    let v = pem_verifier(&["key-a.pem"]);
    assert_eq!(
        v.verify_sync(&signer_a(None).issue("alice", HOUR)),
        Ok("alice".into())
    );
    // A PEM file's key id is its name without the extension.
    let t = signer_a(Some("key-a")).issue("alice", HOUR);
    assert_eq!(v.verify_sync(&t), Ok("alice".into()));
    // PKCS#1 public keys work too.
    let v = pem_verifier(&["key-b.pem"]);
    assert_eq!(
        v.verify_sync(&signer_b(None).issue("bob", HOUR)),
        Ok("bob".into())
    );
}

#[test]
fn token_signed_with_another_key_is_rejected() {
    let v = pem_verifier(&["key-a.pem"]);
    invalid_with(
        v.verify_sync(&signer_b(None).issue("mallory", HOUR)),
        "bad signature",
    );
    // Claiming key-a's id does not help.
    let t = signer_b(Some("key-a")).issue("mallory", HOUR);
    invalid_with(v.verify_sync(&t), "bad signature");
}

#[test]
fn kid_selects_the_key_of_a_jwks() {
    let (a, b) = (signer_a(Some("a")), signer_b(Some("b")));
    let v = jwks_verifier(&jwks(&[&a, &b]), None);
    assert_eq!(v.key_count(), 2);
    assert_eq!(v.verify_sync(&a.issue("alice", HOUR)), Ok("alice".into()));
    assert_eq!(v.verify_sync(&b.issue("bob", HOUR)), Ok("bob".into()));
    // Key b's signature under key a's id: checked against key a only.
    let t = signer_b(Some("a")).issue("bob", HOUR);
    invalid_with(v.verify_sync(&t), "bad signature");
}

#[test]
fn unknown_kid_is_rejected() {
    let v = jwks_verifier(&jwks(&[&signer_a(Some("a"))]), None);
    let t = signer_a(Some("retired")).issue("alice", HOUR);
    invalid_with(v.verify_sync(&t), "unknown key id `retired`");
}

#[test]
fn token_without_kid_needs_exactly_one_rsa_key() {
    let one = jwks_verifier(&jwks(&[&signer_a(Some("a"))]), None);
    assert_eq!(
        one.verify_sync(&signer_a(None).issue("alice", HOUR)),
        Ok("alice".into())
    );
    let two = pem_verifier(&["key-a.pem", "key-b.pem"]);
    invalid_with(
        two.verify_sync(&signer_a(None).issue("alice", HOUR)),
        "no `kid`",
    );
    assert_eq!(
        two.verify_sync(&signer_b(Some("key-b")).issue("bob", HOUR)),
        Ok("bob".into())
    );
}

/// The classic attack: take the server's RSA *public* key, use its bytes as an HMAC secret,
/// sign an HS256 token. A verifier that lets the token's `alg` decide would accept it.
#[test]
fn hs256_token_signed_with_the_public_key_is_rejected() {
    let public_pem = fixtures::read("key-a.pem");
    let forge = |kid: Option<&str>, secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let claims = serde_json::json!({"sub": "admin", "exp": now() + 600});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    let rsa_only = pem_verifier(&["key-a.pem"]);
    for secret in [public_pem.as_bytes(), public_pem.trim().as_bytes()] {
        for kid in [None, Some("key-a")] {
            invalid_with(
                rsa_only.verify_sync(&forge(kid, secret)),
                "HS256 tokens are not accepted",
            );
        }
    }
    // With an HS256 secret configured too, the forged token is checked against that secret only.
    let jwk = signer_a(Some("key-a")).public_jwk();
    let both = jwks_verifier(
        &serde_json::json!({ "keys": [jwk] }).to_string(),
        Some(b"the-real-hs256-secret"),
    );
    invalid_with(
        both.verify_sync(&forge(Some("key-a"), public_pem.as_bytes())),
        "bad signature",
    );
    let good = crate::issue(b"the-real-hs256-secret", "u", HOUR);
    assert_eq!(both.verify_sync(&good), Ok("u".into()));
    // And the other direction: RS256 tokens are refused by a secret-only verifier.
    let hs_only = crate::JwtVerifier::hs256(b"the-real-hs256-secret");
    invalid_with(
        hs_only.verify_sync(&signer_a(None).issue("alice", HOUR)),
        "RS256 tokens are not accepted",
    );
}

#[test]
fn other_algorithms_are_rejected() {
    let v = jwks_verifier(&jwks(&[&signer_a(Some("a"))]), Some(b"secret"));
    let claims = serde_json::json!({"sub": "u", "exp": now() + 600});
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    invalid_with(v.verify_sync(&hs512), "HS512 is not accepted");
}

#[test]
fn expired_rs256_token_is_rejected() {
    let v = pem_verifier(&["key-a.pem"]);
    let a = signer_a(None);
    let expired = a.sign(&serde_json::json!({"sub": "alice", "exp": now() - 120}));
    assert_eq!(v.verify_sync(&expired), Err(AuthError::Expired));
    let no_exp = a.sign(&serde_json::json!({"sub": "alice"}));
    invalid_with(v.verify_sync(&no_exp), "exp");
    let bad_sub = a.sign(&serde_json::json!({"sub": "", "exp": now() + 60}));
    invalid_with(v.verify_sync(&bad_sub), "`sub`");
}
