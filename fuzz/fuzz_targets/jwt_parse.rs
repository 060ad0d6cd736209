//! Arbitrary bytes as a client token, through the verifier standalone and the auth role use
//! (header parsing, key selection, signature and claims checks, the verdict cache).
//!
//! Properties: the cached answer equals the uncached one; an accepted token yields a valid
//! user id; a refusal is bounded, never quotes the token, and survives the trip through the
//! auth role's gRPC reply (`code|reason`) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushcluster_auth::{AuthError, TokenVerifier};
use pushcluster_fuzz::{check_refusal, ready, verifier};

fuzz_target!(|data: &[u8]| {
    // Tokens arrive as text: a query parameter or a header.
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let v = verifier();
    let direct = v.current().verify_sync(token);
    let first = ready(v.verify(token));
    let cached = ready(v.verify(token));
    assert_eq!(direct, first);
    assert_eq!(first, cached);
    match &first {
        Ok(user) => {
            pushcluster_proto::api::validate_user_id(user).expect("an accepted `sub`");
            assert_eq!(token.split('.').count(), 3);
        }
        Err(e) => {
            check_refusal(token, e);
            let wire = format!("{}|{}", e.code(), e);
            let (code, reason) = wire.split_once('|').unwrap();
            assert_eq!(&AuthError::from_code(code, reason), e, "{wire}");
        }
    }
});
