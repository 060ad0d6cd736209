use std::time::Duration;

use super::*;

const T0: u64 = 1_700_000_000_000;

fn small() -> VerdictCache {
    VerdictCache::new(CachePolicy {
        max_valid: 4,
        max_invalid: 4,
        valid_ttl_max: Duration::from_secs(60),
        invalid_ttl: Duration::from_secs(5),
    })
}

fn bad() -> Result<String, AuthError> {
    Err(AuthError::Invalid("bad signature".into()))
}

fn hits(c: &VerdictCache, verdict: &str) -> u64 {
    c.metrics()
        .hits
        .get_or_create(&HitLabels {
            verdict: verdict.into(),
        })
        .get()
}

#[test]
fn an_invalid_verdict_is_kept_for_its_ttl() {
    let c = small();
    let k = TokenHash::of("bad-token");
    assert_eq!(c.get_at(&k, T0), None);
    c.insert_at(k, &bad(), None, c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0 + 4_999), Some(bad()));
    assert_eq!(c.get_at(&k, T0 + 5_000), None);
    assert_eq!((hits(&c, "invalid"), c.metrics().misses.get()), (1, 2));
}

#[test]
fn a_valid_verdict_is_kept_until_exp_and_at_most_the_cap() {
    let c = small();
    let k = TokenHash::of("good-token");
    let ok = Ok("alice".to_owned());
    // Expires in 10 s: kept 10 s.
    c.insert_at(k, &ok, Some(T0 / 1000 + 10), c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0 + 9_999), Some(ok.clone()));
    assert_eq!(c.get_at(&k, T0 + 10_000), None);
    // Expires in a day: kept at most a minute.
    c.insert_at(k, &ok, Some(T0 / 1000 + 86_400), c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0 + 59_999), Some(ok.clone()));
    assert_eq!(c.get_at(&k, T0 + 60_000), None);
    // Already expired, or no expiry known: not kept.
    let k2 = TokenHash::of("other");
    c.insert_at(k2, &ok, Some(T0 / 1000 - 1), c.epoch(), T0);
    c.insert_at(k2, &ok, None, c.epoch(), T0);
    assert_eq!(c.get_at(&k2, T0), None);
    assert_eq!(hits(&c, "valid"), 2);
}

#[test]
fn verdicts_that_change_on_their_own_are_not_kept() {
    let c = small();
    for (i, e) in [
        AuthError::NotYetValid,
        AuthError::Missing,
        AuthError::Unavailable("down".into()),
    ]
    .into_iter()
    .enumerate()
    {
        let k = TokenHash::of(&i.to_string());
        c.insert_at(k, &Err(e), None, c.epoch(), T0);
        assert_eq!(c.get_at(&k, T0), None);
    }
    let k = TokenHash::of("expired");
    c.insert_at(k, &Err(AuthError::Expired), None, c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0), Some(Err(AuthError::Expired)));
}

#[test]
fn entries_are_bounded_per_verdict_and_recent_ones_survive() {
    let c = small();
    let good = TokenHash::of("good");
    let ok = Ok("alice".to_owned());
    c.insert_at(good, &ok, Some(T0 / 1000 + 30), c.epoch(), T0);
    for i in 0..1000 {
        c.insert_at(
            TokenHash::of(&format!("bad-{i}")),
            &bad(),
            None,
            c.epoch(),
            T0,
        );
        assert!(c.len() <= 4 + 1, "{} entries", c.len());
    }
    // A flood of distinct bad tokens does not push out the valid verdict…
    assert_eq!(c.get_at(&good, T0), Some(ok));
    // …and the newest bad ones are still there.
    assert_eq!(c.get_at(&TokenHash::of("bad-999"), T0), Some(bad()));
    assert_eq!(c.get_at(&TokenHash::of("bad-0"), T0), None);
    assert_eq!(c.metrics().entries.get(), c.len() as i64);
}

#[test]
fn a_policy_without_room_caches_nothing() {
    let c = VerdictCache::new(CachePolicy::LOCAL);
    let k = TokenHash::of("good");
    c.insert_at(k, &Ok("u".into()), Some(T0 / 1000 + 30), c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0), None);
    c.insert_at(k, &bad(), None, c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0), Some(bad()));
}

#[test]
fn clear_forgets_and_refuses_verdicts_of_the_previous_epoch() {
    let c = small();
    let k = TokenHash::of("unknown-kid");
    let before = c.epoch();
    c.insert_at(k, &bad(), None, before, T0);
    c.clear();
    assert_eq!(c.get_at(&k, T0), None);
    // A verdict reached with the old keys, stored after the reload: dropped.
    c.insert_at(k, &bad(), None, before, T0);
    assert_eq!(c.get_at(&k, T0), None);
    assert!(c.is_empty());
    c.insert_at(k, &bad(), None, c.epoch(), T0);
    assert_eq!(c.get_at(&k, T0), Some(bad()));
}

#[test]
fn the_key_is_a_hash_and_debug_shows_only_a_prefix() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
    let k = TokenHash::of(token);
    assert_eq!(k, TokenHash::of(token));
    assert_ne!(
        k,
        TokenHash::of("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ2In0.c2ln")
    );
    let debug = format!("{k:?}");
    assert!(!debug.contains("eyJ") && debug.len() < 24, "{debug}");
}
