//! Test keys from `tests/fixtures` (see its README) and helpers around them.

use std::path::{Path, PathBuf};

use crate::RsaSigner;

pub fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap()
}

/// Signs with `key-a.private.pem` (PKCS#8); its public key is `key-a.pem`.
pub fn signer_a(kid: Option<&str>) -> RsaSigner {
    RsaSigner::from_pem(&read("key-a.private.pem"), kid.map(str::to_owned)).unwrap()
}

/// Signs with `key-b.private.pem` (PKCS#1); its public key is `key-b.pem`.
pub fn signer_b(kid: Option<&str>) -> RsaSigner {
    RsaSigner::from_pem(&read("key-b.private.pem"), kid.map(str::to_owned)).unwrap()
}

/// A JWKS document with the signers' public keys.
pub fn jwks(signers: &[&RsaSigner]) -> String {
    let keys: Vec<_> = signers.iter().map(|s| s.public_jwk()).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

pub fn now() -> u64 {
    pushcluster_proto::delivery::now_ms() / 1000
}
