//! Helpers shared by the fuzz targets in `fuzz_targets/` (one per parser):
//!
//! - `client_frame`: client → server frames, and server frames round-tripping through the
//!   client-side decoder (`pushcluster_proto::frame`).
//! - `parse_submit`: `POST /v1/messages` bodies under random limits (`pushcluster_proto::api`).
//! - `devices`: `POST /v1/devices` bodies and device-token paths (`api::devices`).
//! - `jwt_parse`: arbitrary bytes as a client token through the verifier and its cache.
//! - `jwt_claims`: signed tokens with generated claims, checked against a model of the rules.
//!
//! Each target checks properties, not only "no panic": values that parse are within their
//! documented bounds, encodings round-trip, refusals are bounded and never quote a token.
#![forbid(unsafe_code)]

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use pushcluster_auth::keys::ReloadingVerifier;
use pushcluster_auth::{AuthError, ClaimRules, KeySources};

/// The HS256 secret of the fuzz verifier (the seed tokens in `corpus/jwt_parse` use it).
pub const SECRET: &[u8] = b"pushcluster-fuzz-secret-0123456789";
/// The issuer and audiences the fuzz verifier requires.
pub const ISSUER: &str = "https://idp.fuzz.test/";
pub const AUDIENCES: [&str; 2] = ["pushcluster", "pushcluster-staging"];
/// Longest reason a refusal may give (it goes into a 401 body and logs).
pub const MAX_REASON_BYTES: usize = 256;

/// Runs a future that never waits on anything (the verifiers' async methods do not).
pub fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future waited"),
    }
}

/// The verifier `jwt_parse` feeds: the HS256 secret plus the RS256 test key `key-a` (by
/// `kid` or alone), requiring [`ISSUER`] and one of [`AUDIENCES`].
pub fn verifier() -> &'static ReloadingVerifier {
    static V: OnceLock<ReloadingVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let key = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../dataplane/auth/tests/fixtures/key-a.pem");
        ReloadingVerifier::new(
            KeySources {
                hs256_secret: Some(SECRET.to_vec()),
                rsa_public_key_files: vec![key],
                ..KeySources::default()
            },
            ClaimRules {
                issuer: Some(ISSUER.into()),
                audiences: AUDIENCES.map(String::from).to_vec(),
                leeway_secs: 5,
            },
        )
        .expect("fuzz verifier keys")
    })
}

/// Checks what a refusal says: bounded, and not the token itself.
pub fn check_refusal(token: &str, e: &AuthError) {
    let reason = e.to_string();
    assert!(!reason.is_empty());
    assert!(
        reason.len() <= MAX_REASON_BYTES,
        "a {}-byte reason: {reason:?}",
        reason.len()
    );
    if token.len() >= 16 {
        assert!(!reason.contains(token), "the reason quotes the token");
    }
    assert!(!e.code().is_empty());
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    pushcluster_proto::delivery::now_ms() / 1000
}
