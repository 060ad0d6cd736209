use std::time::{Duration, SystemTime};

use jsonwebtoken::{DecodingKey, Validation};

use super::*;
use crate::clock::TokioClock;

/// 2026-03-01 10:07:00 UTC: seven minutes into a 30-minute period.
fn origin() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_359_200 + 7 * 60)
}

fn tokens(clock: Arc<dyn Clock>) -> (ProviderTokens, pushcluster_test_support::apns::Pki) {
    let pki = pushcluster_test_support::apns::Pki::generate().unwrap();
    let key = SigningKey::from_pem(pki.provider_key_pem.as_bytes()).unwrap();
    let t = ProviderTokens::new(
        &key,
        "KEY1234567",
        "TEAM123456",
        Duration::from_secs(30 * 60),
        clock,
        ApnsMetrics::default(),
    );
    (t, pki)
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
}

#[tokio::test]
async fn token_is_es256_with_kid_iss_and_aligned_iat() {
    let (t, pki) = tokens(Arc::new(TokioClock::new(origin())));
    let token = t.current().unwrap();
    let header = jsonwebtoken::decode_header(token.jwt()).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
    let mut v = Validation::new(Algorithm::ES256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<Claims>(
        token.jwt(),
        &DecodingKey::from_ec_der(&pki.provider_public_raw),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims.iss, "TEAM123456");
    assert_eq!(claims.iat, 1_772_359_200, "aligned down to the period");
    assert!(
        !format!("{token:?}").contains(token.jwt()),
        "Debug hides the JWT"
    );
}

#[tokio::test(start_paused = true)]
async fn reused_then_refreshed_on_the_grid_between_20_and_60_minutes() {
    let (t, _) = tokens(Arc::new(TokioClock::new(origin())));
    let mut last = t.current().unwrap();
    let mut changes = Vec::new();
    // Six hours, one look a minute (tokio's paused clock drives the wall clock).
    for minute in 1..=360u64 {
        tokio::time::advance(Duration::from_secs(60)).await;
        let now = unix_secs(origin()) + minute * 60;
        let token = t.current().unwrap();
        assert!(now - token.iat < 60 * 60, "never 60 minutes old");
        if token != last {
            assert!(token.iat >= last.iat + 20 * 60, "at least 20 minutes apart");
            assert_eq!(token.iat % (30 * 60), 0, "on the grid");
            changes.push(token.iat);
            last = token;
        }
    }
    assert_eq!(
        changes.len(),
        12,
        "one token per 30-minute period: {changes:?}"
    );
    assert_eq!(
        changes[0],
        1_772_359_200 + 30 * 60,
        "the first change is at the grid line"
    );
}

#[tokio::test(start_paused = true)]
async fn replicas_started_apart_agree_on_the_token_claims() {
    let (a, _) = tokens(Arc::new(TokioClock::new(origin())));
    tokio::time::advance(Duration::from_secs(11 * 60)).await;
    let (b, _) = tokens(Arc::new(TokioClock::new(
        origin() + Duration::from_secs(11 * 60),
    )));
    assert_eq!(a.current().unwrap().iat, b.current().unwrap().iat);
}

#[tokio::test(start_paused = true)]
async fn expired_token_is_replaced_only_past_the_floor_and_only_once() {
    let (t, _) = tokens(Arc::new(TokioClock::new(origin())));
    let first = t.current().unwrap();
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    assert_eq!(
        t.after_expired(&first).unwrap(),
        Err(Duration::from_secs(15 * 60)),
        "20-minute floor"
    );
    assert_eq!(t.current().unwrap(), first);
    tokio::time::advance(Duration::from_secs(16 * 60)).await;
    let second = t.after_expired(&first).unwrap().unwrap();
    assert_ne!(second, first);
    assert_eq!(
        second.iat,
        unix_secs(origin()) + 21 * 60,
        "off-grid: Apple found ours stale"
    );
    // Many requests rejected with the old token get the new one, not a third.
    assert_eq!(t.after_expired(&first).unwrap().unwrap(), second);
    assert_eq!(t.current().unwrap(), second);
    // The off-grid token waits for the floor before the schedule replaces it.
    tokio::time::advance(Duration::from_secs(10 * 60)).await; // grid line passed 2 min after
    assert_eq!(t.current().unwrap(), second);
    tokio::time::advance(Duration::from_secs(10 * 60)).await;
    let third = t.current().unwrap();
    assert_ne!(third, second);
    assert_eq!(third.iat % (30 * 60), 0, "back on the grid");
}
