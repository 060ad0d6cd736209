//! Signing tokens, for `pushd token` and tests: HS256 with a secret ([`issue`]) or RS256 with
//! an RSA private key ([`RsaSigner`]).

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Serialize;

use crate::Claims;
use crate::load::KeyError;

fn claims(user: &str, ttl: Duration) -> Claims {
    let now = pushcluster_proto::delivery::now_ms() / 1000;
    Claims {
        sub: user.to_owned(),
        exp: now + ttl.as_secs(),
        iat: Some(now),
    }
}

/// Signs an HS256 token for `user`, valid for `ttl`.
pub fn issue(secret: &[u8], user: &str, ttl: Duration) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(user, ttl),
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

/// An RSA private key that signs RS256 tokens, with an optional key id for the header.
pub struct RsaSigner {
    key: EncodingKey,
    public: RsaPublicKey,
    kid: Option<String>,
}

impl RsaSigner {
    /// From a PEM private key: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, String> {
        let pem = pem.trim();
        let private = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())?
        } else {
            RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| format!("not an unencrypted RSA private key in PEM: {e}"))?
        };
        let der = private.to_pkcs1_der().map_err(|e| e.to_string())?;
        Ok(RsaSigner {
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            public: private.to_public_key(),
            kid,
        })
    }

    /// From a PEM private key file.
    pub fn from_pem_file(path: &Path, kid: Option<String>) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|error| KeyError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_pem(&text, kid).map_err(|reason| KeyError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Signs an RS256 token for `user`, valid for `ttl`.
    pub fn issue(&self, user: &str, ttl: Duration) -> String {
        self.sign(&claims(user, ttl))
    }

    /// Signs arbitrary claims (tests).
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).expect("RS256 signing")
    }

    /// The public key as a JWK (`kty`, `use`, `alg`, `kid`, `n`, `e`), e.g. for a JWKS file.
    pub fn public_jwk(&self) -> serde_json::Value {
        let b64 = |n: &rsa::BigUint| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_bytes_be())
        };
        let mut jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "n": b64(self.public.n()),
            "e": b64(self.public.e()),
        });
        if let Some(kid) = &self.kid {
            jwk["kid"] = kid.clone().into();
        }
        jwk
    }
}
