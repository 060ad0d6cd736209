//! Each claim rule, on HS256 and RS256 tokens.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::fixtures::{now, signer_a};
use crate::load::KeySources;
use crate::{AuthError, ClaimRules, JwtVerifier};

const SECRET: &[u8] = b"rules-test-secret";
const ISSUER: &str = "https://idp.example.com/";

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: Some(ISSUER.into()),
        audiences: vec!["pushcluster".into(), "pushcluster-staging".into()],
        leeway_secs: 5,
    }
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn verifier(rules: ClaimRules) -> JwtVerifier {
    JwtVerifier::hs256(SECRET).with_rules(rules)
}

/// A token that passes [`rules`], with `patch` applied (a `null` removes the claim).
fn claims(patch: Value) -> Value {
    let mut c = json!({
        "sub": "alice",
        "exp": now() + 600,
        "iss": ISSUER,
        "aud": "pushcluster",
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn refused_naming(r: Result<String, AuthError>, claim: &str) {
    match r {
        Err(AuthError::Invalid(m)) => assert!(m.contains(&format!("`{claim}`")), "{m:?}"),
        other => panic!("expected a refusal naming `{claim}`, got {other:?}"),
    }
}

#[test]
fn a_token_meeting_every_rule_is_accepted() {
    let v = verifier(rules());
    assert_eq!(
        v.verify_sync(&hs256(&claims(json!({})))),
        Ok("alice".into())
    );
    // `aud` as an array naming one accepted audience among others.
    let t = hs256(&claims(
        json!({"aud": ["other-app", "pushcluster-staging"]}),
    ));
    assert_eq!(v.verify_sync(&t), Ok("alice".into()));
}

#[test]
fn wrong_issuer_is_refused() {
    let v = verifier(rules());
    let t = hs256(&claims(json!({"iss": "https://evil.example.com/"})));
    refused_naming(v.verify_sync(&t), "iss");
    // The issuer must match exactly (no prefix or case folding).
    let t = hs256(&claims(json!({"iss": "https://idp.example.com"})));
    refused_naming(v.verify_sync(&t), "iss");
}

#[test]
fn missing_issuer_is_refused_when_one_is_required() {
    let t = hs256(&claims(json!({"iss": null})));
    refused_naming(verifier(rules()).verify_sync(&t), "iss");
    // Without a configured issuer, `iss` is not looked at.
    let open = ClaimRules {
        issuer: None,
        ..rules()
    };
    assert_eq!(verifier(open.clone()).verify_sync(&t), Ok("alice".into()));
    let other = hs256(&claims(json!({"iss": "anyone"})));
    assert_eq!(verifier(open).verify_sync(&other), Ok("alice".into()));
}

#[test]
fn wrong_audience_is_refused() {
    let v = verifier(rules());
    for aud in [json!("another-app"), json!(["a", "b"]), json!([])] {
        let t = hs256(&claims(json!({ "aud": aud })));
        refused_naming(v.verify_sync(&t), "aud");
    }
}

#[test]
fn missing_audience_is_refused_when_one_is_required() {
    let t = hs256(&claims(json!({"aud": null})));
    refused_naming(verifier(rules()).verify_sync(&t), "aud");
}

#[test]
fn without_configured_audiences_any_aud_is_accepted() {
    let v = verifier(ClaimRules {
        audiences: Vec::new(),
        ..rules()
    });
    for aud in [json!("another-app"), json!(["x", "y"]), Value::Null] {
        let t = hs256(&claims(json!({ "aud": aud })));
        assert_eq!(v.verify_sync(&t), Ok("alice".into()), "aud {aud}");
    }
}

#[test]
fn nbf_in_the_future_beyond_the_leeway_is_refused() {
    let v = verifier(rules());
    let t = hs256(&claims(json!({"nbf": now() + 120})));
    assert_eq!(v.verify_sync(&t), Err(AuthError::NotYetValid));
    assert_eq!(AuthError::NotYetValid.code(), "token_not_yet_valid");
    // Within the leeway (clock skew) and in the past: accepted.
    for nbf in [now() + 2, now() - 60] {
        let t = hs256(&claims(json!({ "nbf": nbf })));
        assert_eq!(v.verify_sync(&t), Ok("alice".into()), "nbf {nbf}");
    }
    // A malformed nbf is refused, naming it.
    let t = hs256(&claims(json!({"nbf": "tomorrow"})));
    refused_naming(v.verify_sync(&t), "nbf");
}

#[test]
fn exp_within_the_leeway_is_accepted_and_beyond_it_refused() {
    let v = verifier(ClaimRules {
        leeway_secs: 30,
        ..rules()
    });
    let t = hs256(&claims(json!({"exp": now() - 10})));
    assert_eq!(v.verify_sync(&t), Ok("alice".into()));
    let t = hs256(&claims(json!({"exp": now() - 60})));
    assert_eq!(v.verify_sync(&t), Err(AuthError::Expired));
    // The default leeway is small.
    let strict = verifier(ClaimRules::default());
    let t = hs256(&claims(json!({"exp": now() - 10})));
    assert_eq!(strict.verify_sync(&t), Err(AuthError::Expired));
}

#[test]
fn claims_of_the_wrong_type_are_refused_by_name() {
    let v = verifier(rules());
    refused_naming(v.verify_sync(&hs256(&claims(json!({"sub": null})))), "sub");
    refused_naming(v.verify_sync(&hs256(&claims(json!({"exp": null})))), "exp");
    refused_naming(v.verify_sync(&hs256(&claims(json!({"iss": 7})))), "iss");
    match v.verify_sync(&hs256(&claims(json!({"sub": 42})))) {
        Err(AuthError::Invalid(m)) => assert!(m.contains("wrong type"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The rules apply to RS256 tokens too, and do not loosen the algorithm pinning.
#[test]
fn rs256_tokens_follow_the_rules_and_alg_confusion_is_still_refused() {
    let signer = signer_a(Some("a"));
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, crate::fixtures::jwks(&[&signer])).unwrap();
    let v = KeySources {
        jwks_file: Some(jwks),
        ..KeySources::default()
    }
    .load()
    .unwrap()
    .with_rules(rules());
    assert_eq!(
        v.verify_sync(&signer.sign(&claims(json!({})))),
        Ok("alice".into())
    );
    refused_naming(
        v.verify_sync(&signer.sign(&claims(json!({"aud": "another-app"})))),
        "aud",
    );
    refused_naming(
        v.verify_sync(&signer.sign(&claims(json!({"iss": "https://evil/"})))),
        "iss",
    );
    // The RSA public key used as an HMAC secret, on a token that meets every claim rule.
    let public = crate::fixtures::read("key-a.pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("a".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    match v.verify_sync(&forged) {
        Err(AuthError::Invalid(m)) => assert!(m.contains("HS256 tokens are not accepted"), "{m}"),
        other => panic!("{other:?}"),
    }
    // `alg: none` stays refused.
    let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    assert!(matches!(v.verify_sync(none), Err(AuthError::Invalid(_))));
}

#[test]
fn refusals_never_quote_the_token() {
    let v = verifier(rules());
    let tokens = [
        hs256(&claims(json!({"aud": "x"}))),
        hs256(&claims(json!({"iss": "x"}))),
        hs256(&claims(json!({"sub": 1}))),
        format!("{}.", hs256(&claims(json!({})))),
        "a.b.c".to_owned(),
        "not-a-token-at-all-but-long-enough".to_owned(),
    ];
    for t in &tokens {
        let e = v.verify_sync(t).unwrap_err().to_string();
        for part in t.split('.').filter(|p| p.len() >= 4) {
            assert!(!e.contains(part), "{e:?} quotes the token");
        }
    }
}

#[test]
fn bad_rules_are_reported() {
    let mut r = rules();
    r.issuer = Some(String::new());
    assert!(r.check().unwrap_err().contains("--jwt-issuer"));
    let mut r = rules();
    r.audiences.push(String::new());
    assert!(r.check().unwrap_err().contains("--jwt-audience"));
    let mut r = rules();
    r.leeway_secs = 301;
    assert!(r.check().unwrap_err().contains("--jwt-leeway"));
    assert_eq!(rules().check(), Ok(()));
}
