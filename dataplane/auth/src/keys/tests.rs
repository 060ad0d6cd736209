use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cache::HitLabels;
use crate::fixtures::{jwks, signer_a, signer_b};
use crate::keys::{ReloadLabels, ReloadingVerifier};
use crate::{AuthError, ClaimRules, KeySources, TokenVerifier};

const HOUR: Duration = Duration::from_secs(3600);

/// Writes `text` with a distinct modification time (`version` seconds after a fixed instant),
/// so a change is seen whatever the file system's timestamp resolution.
fn write(path: &Path, text: &str, version: u64) {
    std::fs::write(path, text).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + version);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn reloads(v: &ReloadingVerifier, result: &str) -> u64 {
    v.metrics()
        .reloads
        .get_or_create(&ReloadLabels {
            result: result.into(),
        })
        .get()
}

fn jwks_verifier(dir: &Path, doc: &str) -> ReloadingVerifier {
    let path = dir.join("jwks.json");
    write(&path, doc, 1);
    ReloadingVerifier::new(
        KeySources {
            jwks_file: Some(path),
            ..KeySources::default()
        },
        ClaimRules::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn reload_picks_up_a_rotated_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (signer_a(Some("a")), signer_b(Some("b")));
    let v = jwks_verifier(dir.path(), &jwks(&[&a]));
    assert!(!v.reload_if_changed(), "nothing changed yet");
    assert_eq!(v.verify(&a.issue("alice", HOUR)).await, Ok("alice".into()));
    assert!(v.verify(&b.issue("bob", HOUR)).await.is_err());

    // Rotation, step 1: publish the new key next to the old one.
    write(&dir.path().join("jwks.json"), &jwks(&[&a, &b]), 2);
    assert!(v.reload_if_changed());
    assert_eq!(v.verify(&a.issue("alice", HOUR)).await, Ok("alice".into()));
    assert_eq!(v.verify(&b.issue("bob", HOUR)).await, Ok("bob".into()));
    // Step 2: retire the old key.
    write(&dir.path().join("jwks.json"), &jwks(&[&b]), 3);
    assert!(v.reload_if_changed());
    assert_eq!(
        v.verify(&a.issue("alice", HOUR)).await,
        Err(AuthError::Invalid("unknown key id `a`".into()))
    );
    assert_eq!(v.verify(&b.issue("bob", HOUR)).await, Ok("bob".into()));
    assert_eq!(reloads(&v, "ok"), 2);
    assert_eq!(v.metrics().keys.get(), 1);
}

#[tokio::test]
async fn bad_reload_keeps_the_last_good_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let a = signer_a(Some("a"));
    let v = jwks_verifier(dir.path(), &jwks(&[&a]));

    write(&path, r#"{"keys": [{"kty": "RSA", "kid": "half-writ"#, 2);
    assert!(!v.reload_if_changed());
    assert_eq!(v.verify(&a.issue("alice", HOUR)).await, Ok("alice".into()));
    assert_eq!(reloads(&v, "invalid"), 1);
    // Reported once per bad version, not on every poll.
    assert!(!v.reload_if_changed());
    assert_eq!(reloads(&v, "invalid"), 1);

    std::fs::remove_file(&path).unwrap();
    assert!(!v.reload_if_changed());
    assert_eq!(reloads(&v, "read_error"), 1);
    assert_eq!(v.verify(&a.issue("alice", HOUR)).await, Ok("alice".into()));

    // Fixed: the new keys are used.
    let b = signer_b(Some("b"));
    write(&path, &jwks(&[&b]), 3);
    assert!(v.reload_if_changed());
    assert_eq!(v.verify(&b.issue("bob", HOUR)).await, Ok("bob".into()));
    assert!(v.verify(&a.issue("alice", HOUR)).await.is_err());
}

#[tokio::test]
async fn reload_rereads_secret_and_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let pem = dir.path().join("signing.pem");
    write(&secret, "first-secret\n", 1);
    write(&pem, &crate::fixtures::read("key-a.pem"), 1);
    let v = ReloadingVerifier::new(
        KeySources {
            hs256_secret_file: Some(secret.clone()),
            rsa_public_key_files: vec![pem.clone()],
            ..KeySources::default()
        },
        ClaimRules::default(),
    )
    .unwrap();
    assert_eq!(v.metrics().keys.get(), 2);
    let hs = |s: &[u8]| crate::issue(s, "u", HOUR);
    assert_eq!(v.verify(&hs(b"first-secret")).await, Ok("u".into()));

    write(&secret, "second-secret", 2);
    write(&pem, &crate::fixtures::read("key-b.pem"), 2);
    assert!(v.reload_if_changed());
    assert!(v.verify(&hs(b"first-secret")).await.is_err());
    assert_eq!(v.verify(&hs(b"second-secret")).await, Ok("u".into()));
    let t = signer_b(Some("signing")).issue("bob", HOUR);
    assert_eq!(v.verify(&t).await, Ok("bob".into()));
}

#[tokio::test(start_paused = true)]
async fn watch_polls_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (signer_a(Some("a")), signer_b(Some("b")));
    let v = std::sync::Arc::new(jwks_verifier(dir.path(), &jwks(&[&a])));
    let watcher = v.watch(Duration::from_secs(2));
    write(&dir.path().join("jwks.json"), &jwks(&[&b]), 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(v.verify(&b.issue("bob", HOUR)).await, Ok("bob".into()));
    watcher.abort();
}

fn cache_hits(v: &ReloadingVerifier, verdict: &str) -> u64 {
    v.cache()
        .metrics()
        .hits
        .get_or_create(&HitLabels {
            verdict: verdict.into(),
        })
        .get()
}

#[tokio::test]
async fn a_flood_of_one_bad_token_costs_one_verification() {
    let dir = tempfile::tempdir().unwrap();
    let a = signer_a(Some("a"));
    let v = jwks_verifier(dir.path(), &jwks(&[&a]));
    let forged = signer_b(Some("a")).issue("mallory", HOUR);
    for _ in 0..100 {
        assert_eq!(
            v.verify(&forged).await,
            Err(AuthError::Invalid("bad signature".into()))
        );
    }
    let misses = v.cache().metrics().misses.get();
    assert_eq!((misses, cache_hits(&v, "invalid")), (1, 99));
    // Valid tokens are verified every time (not cached locally) and still work.
    for _ in 0..3 {
        assert_eq!(v.verify(&a.issue("alice", HOUR)).await, Ok("alice".into()));
    }
    assert_eq!(cache_hits(&v, "valid"), 0);
    assert_eq!(v.cache().len(), 1);
}

#[tokio::test]
async fn a_reload_forgets_failed_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (signer_a(Some("a")), signer_b(Some("b")));
    let v = jwks_verifier(dir.path(), &jwks(&[&a]));
    // A client with a token of the new key arrives before the key is published…
    let early = b.issue("bob", HOUR);
    assert_eq!(
        v.verify(&early).await,
        Err(AuthError::Invalid("unknown key id `b`".into()))
    );
    assert_eq!(v.cache().len(), 1);
    // …and is accepted as soon as the key is, not once the cached refusal times out.
    write(&dir.path().join("jwks.json"), &jwks(&[&a, &b]), 2);
    assert!(v.reload_if_changed());
    assert!(v.cache().is_empty());
    assert_eq!(v.verify(&early).await, Ok("bob".into()));
}

#[tokio::test]
async fn claim_rules_survive_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (a, b) = (signer_a(Some("a")), signer_b(Some("b")));
    write(&path, &jwks(&[&a]), 1);
    let rules = ClaimRules {
        audiences: vec!["pushcluster".into()],
        ..ClaimRules::default()
    };
    let v = ReloadingVerifier::new(
        KeySources {
            jwks_file: Some(path.clone()),
            ..KeySources::default()
        },
        rules.clone(),
    )
    .unwrap();
    let exp = crate::fixtures::now() + 600;
    let claims = |aud: &str| serde_json::json!({"sub": "u", "exp": exp, "aud": aud});
    assert_eq!(
        v.verify(&a.sign(&claims("pushcluster"))).await,
        Ok("u".into())
    );
    write(&path, &jwks(&[&b]), 2);
    assert!(v.reload_if_changed());
    assert_eq!(v.current().rules(), &rules);
    assert_eq!(
        v.verify(&b.sign(&claims("pushcluster"))).await,
        Ok("u".into())
    );
    assert!(matches!(
        v.verify(&b.sign(&claims("other"))).await,
        Err(AuthError::Invalid(m)) if m.contains("`aud`")
    ));
}
