use std::path::{Path, PathBuf};

use crate::fixtures::{self, jwks, signer_a, signer_b};
use crate::{KeyError, KeySources};

fn pem(files: &[PathBuf]) -> Result<crate::JwtVerifier, KeyError> {
    KeySources {
        rsa_public_key_files: files.to_vec(),
        ..KeySources::default()
    }
    .load()
}

fn jwks_file(dir: &Path, doc: &str) -> KeySources {
    let path = dir.join("jwks.json");
    std::fs::write(&path, doc).unwrap();
    KeySources {
        jwks_file: Some(path),
        ..KeySources::default()
    }
}

/// The error is `Invalid`, names `path` and says `text`.
fn refused(r: Result<crate::JwtVerifier, KeyError>, path: &Path, text: &str) {
    let e = r.err().expect("refused");
    assert!(matches!(e, KeyError::Invalid { .. }), "{e}");
    assert_eq!(e.path(), Some(path));
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(text), "{msg:?} lacks {text:?}");
}

#[test]
fn bad_pem_files_are_refused_with_the_reason() {
    let e = pem(&[fixtures::path("missing.pem")]).err().unwrap();
    assert!(matches!(e, KeyError::Read { .. }));
    assert!(e.to_string().contains("missing.pem"), "{e}");

    let p = fixtures::path("key-a.private.pem");
    refused(pem(std::slice::from_ref(&p)), &p, "holds a private key");
    let p = fixtures::path("ec-p256.pem");
    refused(pem(std::slice::from_ref(&p)), &p, "not an RSA public key");
    let p = fixtures::path("weak-1024.pem");
    refused(pem(std::slice::from_ref(&p)), &p, "1024-bit");
    let p = fixtures::path("README.md");
    refused(pem(std::slice::from_ref(&p)), &p, "not a PEM file");

    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two.pem");
    let text = fixtures::read("key-a.pem") + &fixtures::read("key-b.pem");
    std::fs::write(&two, text).unwrap();
    refused(pem(std::slice::from_ref(&two)), &two, "several PEM blocks");
}

#[test]
fn pem_with_surrounding_text_loads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("2025-06.pem");
    std::fs::write(&p, format!("issuer key\n{}\n", fixtures::read("key-a.pem"))).unwrap();
    let v = pem(&[p]).unwrap();
    assert_eq!(v.keys().next().unwrap().kid(), Some("2025-06"));
}

#[test]
fn bad_jwks_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let cases = [
        ("{not json", "not valid JSON"),
        (r#"{"kes": []}"#, "no `keys` array"),
        (r#"{"keys": []}"#, "the set is empty"),
        (
            r#"{"keys": [{"kty":"EC","kid":"e"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#,
            "no usable RS256 signature key (skipped #0: key type EC; #1: `use` is enc)",
        ),
        (
            r#"{"keys": [{"kty":"RSA","kid":"x","n":"!!","e":"AQAB"}]}"#,
            "key #0: `n` is not base64url",
        ),
        (
            r#"{"keys": [{"kty":"RSA","kid":"x","e":"AQAB"}]}"#,
            "key #0: no `n`",
        ),
        (r#"{"keys": [{"kid":"x"}]}"#, "key #0: no `kty`"),
        (
            r#"{"keys": [{"kty":"RSA","kid":7}]}"#,
            "key #0: `kid` is not a string",
        ),
    ];
    for (doc, text) in cases {
        refused(jwks_file(dir.path(), doc).load(), &path, text);
    }
    // A 1024-bit key given as a JWK.
    let mut jwk = signer_a(Some("a")).public_jwk();
    jwk["n"] = "AQAB".repeat(32).into();
    let doc = serde_json::json!({ "keys": [jwk] }).to_string();
    refused(jwks_file(dir.path(), &doc).load(), &path, "key #0 is a ");
}

#[test]
fn jwks_skips_keys_for_other_uses() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = signer_b(Some("enc")).public_jwk();
    enc["use"] = "enc".into();
    enc["alg"] = "RSA-OAEP".into();
    let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec", "x": "", "y": ""});
    let sig = signer_a(Some("sig")).public_jwk();
    let doc = serde_json::json!({ "keys": [enc, ec, sig] }).to_string();
    let v = jwks_file(dir.path(), &doc).load().unwrap();
    let kids: Vec<_> = v.keys().map(|k| k.kid()).collect();
    assert_eq!(kids, [Some("sig")]);
}

#[test]
fn key_ids_must_be_unique_and_present_when_several_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = jwks_file(dir.path(), &jwks(&[&signer_b(Some("key-a"))]));
    sources.rsa_public_key_files = vec![fixtures::path("key-a.pem")];
    let path = sources.jwks_file.clone().unwrap();
    refused(sources.load(), &path, "key id `key-a` is already used by");

    let mut sources = jwks_file(dir.path(), &jwks(&[&signer_b(None)]));
    sources.rsa_public_key_files = vec![fixtures::path("key-a.pem")];
    refused(sources.load(), &path, "has no `kid`");
    // Alone, a key without a kid is fine.
    sources.rsa_public_key_files.clear();
    assert_eq!(sources.load().unwrap().key_count(), 1);
}

#[test]
fn secret_file_and_no_keys() {
    assert!(matches!(
        KeySources::default().load(),
        Err(KeyError::NoKeys)
    ));
    let empty = KeySources {
        hs256_secret: Some(Vec::new()),
        ..KeySources::default()
    };
    assert!(matches!(empty.load(), Err(KeyError::NoKeys)));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, " \n").unwrap();
    let sources = KeySources {
        hs256_secret_file: Some(path.clone()),
        hs256_secret: Some(b"ignored-when-a-file-is-given".to_vec()),
        ..KeySources::default()
    };
    refused(sources.load(), &path, "empty");
    std::fs::write(&path, "s3cret\n").unwrap();
    let v = sources.load().unwrap();
    let t = crate::issue(b"s3cret", "u", std::time::Duration::from_secs(60));
    assert_eq!(v.verify_sync(&t), Ok("u".into()));
}

#[test]
fn debug_output_hides_the_secret() {
    let s = KeySources {
        hs256_secret: Some(b"very-secret".to_vec()),
        ..KeySources::default()
    };
    assert!(!format!("{s:?}").contains("very-secret"));
}
