//! [`JwtVerifier`]: verification keys, each pinned to the one algorithm it may verify.
//!
//! The token's header only *selects* a key; it never decides how a key is used. An HS256
//! token is checked against the HS256 secret and nothing else, an RS256 token against an RSA
//! public key chosen by `kid` — so an RSA public key can never be used as an HMAC secret
//! (the "algorithm confusion" attack).

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rsa::RsaPublicKey;
use rsa::traits::PublicKeyParts;

use crate::{AuthError, Claims, TokenVerifier};

/// One verification key and the only algorithm it verifies.
pub struct PinnedKey {
    kid: Option<String>,
    key: DecodingKey,
    /// Accepts exactly one algorithm: the key's.
    validation: Validation,
    /// Where the key came from, for logs: `secret`, a file path, `jwks.json#2`.
    origin: String,
}

impl PinnedKey {
    /// An HS256 secret.
    pub fn hs256(secret: &[u8], origin: impl Into<String>) -> Self {
        PinnedKey {
            kid: None,
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256),
            origin: origin.into(),
        }
    }

    /// An RSA public key for RS256 tokens.
    pub fn rs256(kid: Option<String>, key: &RsaPublicKey, origin: impl Into<String>) -> Self {
        PinnedKey {
            kid,
            key: DecodingKey::from_rsa_raw_components(
                &key.n().to_bytes_be(),
                &key.e().to_bytes_be(),
            ),
            validation: validation(Algorithm::RS256),
            origin: origin.into(),
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_required_spec_claims(&["exp", "sub"]);
    v.leeway = 5;
    v
}

/// JWT verification: `sub` is the user id and `exp` is required (5 s leeway).
///
/// Accepts HS256 tokens if a secret is configured and RS256 tokens if RSA keys are. An RS256
/// token with a `kid` is checked against the key with that id only; one without a `kid`
/// against the single RSA key, and refused when several are configured.
pub struct JwtVerifier {
    hs256: Option<PinnedKey>,
    rs256: Vec<PinnedKey>,
}

impl JwtVerifier {
    /// Only an HS256 secret.
    pub fn hs256(secret: &[u8]) -> Self {
        JwtVerifier {
            hs256: Some(PinnedKey::hs256(secret, "secret")),
            rs256: Vec::new(),
        }
    }

    /// An optional HS256 secret plus RS256 keys. Key ids should be unique (see [`crate::load`]).
    pub fn new(hs256: Option<PinnedKey>, rs256: Vec<PinnedKey>) -> Self {
        JwtVerifier { hs256, rs256 }
    }

    /// Number of keys (the HS256 secret counts as one).
    pub fn key_count(&self) -> usize {
        self.rs256.len() + usize::from(self.hs256.is_some())
    }

    /// Every key, for logs.
    pub fn keys(&self) -> impl Iterator<Item = &PinnedKey> {
        self.hs256.iter().chain(&self.rs256)
    }

    /// Synchronous verification (pure CPU).
    pub fn verify_sync(&self, token: &str) -> Result<String, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("malformed token: {e}")))?;
        let key = self.select(&header)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Invalid(format!("missing claim `{c}`"))
                }
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        pushcluster_proto::api::validate_user_id(&data.claims.sub)
            .map_err(|m| AuthError::Invalid(format!("`sub` {m}")))?;
        Ok(data.claims.sub)
    }

    /// The key for a token's `alg` and `kid`.
    fn select(&self, header: &Header) -> Result<&PinnedKey, AuthError> {
        let refuse = |m: String| Err(AuthError::Invalid(m));
        match header.alg {
            Algorithm::HS256 => match &self.hs256 {
                Some(key) => Ok(key),
                None => refuse("HS256 tokens are not accepted".into()),
            },
            Algorithm::RS256 if self.rs256.is_empty() => {
                refuse("RS256 tokens are not accepted".into())
            }
            Algorithm::RS256 => match &header.kid {
                Some(kid) => match self.rs256.iter().find(|k| k.kid() == Some(kid)) {
                    Some(key) => Ok(key),
                    None => refuse(format!("unknown key id `{}`", shorten(kid))),
                },
                None => match self.rs256.as_slice() {
                    [only] => Ok(only),
                    _ => refuse("token has no `kid` and several RSA keys are configured".into()),
                },
            },
            other => refuse(format!("algorithm {other:?} is not accepted")),
        }
    }
}

/// A client-chosen string, cut short for an error message.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[async_trait::async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.verify_sync(token)
    }
}

#[cfg(test)]
mod tests;
