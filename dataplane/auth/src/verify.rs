//! [`JwtVerifier`]: verification keys, each pinned to the one algorithm it may verify.
//!
//! The token's header only *selects* a key; it never decides how a key is used. An HS256
//! token is checked against the HS256 secret and nothing else, an RS256 token against an RSA
//! public key chosen by `kid` — so an RSA public key can never be used as an HMAC secret
//! (the "algorithm confusion" attack). Once the signature checks out, the claims must pass
//! the verifier's [`ClaimRules`].

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rsa::RsaPublicKey;
use rsa::traits::PublicKeyParts;

use crate::rules::{self, ClaimRules};
use crate::{AuthError, Claims, TokenVerifier};

/// One verification key and the only algorithm it verifies.
pub struct PinnedKey {
    kid: Option<String>,
    key: DecodingKey,
    /// Where the key came from, for logs: `secret`, a file path, `jwks.json#2`.
    origin: String,
}

impl PinnedKey {
    /// An HS256 secret.
    pub fn hs256(secret: &[u8], origin: impl Into<String>) -> Self {
        PinnedKey {
            kid: None,
            key: DecodingKey::from_secret(secret),
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

/// JWT verification: `sub` is the user id; `exp` is required and the other claims checked
/// by [`ClaimRules`] (default: no `iss`/`aud` requirement, 5 s leeway).
///
/// Accepts HS256 tokens if a secret is configured and RS256 tokens if RSA keys are. An RS256
/// token with a `kid` is checked against the key with that id only; one without a `kid`
/// against the single RSA key, and refused when several are configured.
pub struct JwtVerifier {
    hs256: Option<PinnedKey>,
    rs256: Vec<PinnedKey>,
    rules: ClaimRules,
    /// The rules for HS256 tokens, and for RS256 ones: each accepts exactly one algorithm.
    hs256_validation: Validation,
    rs256_validation: Validation,
}

impl JwtVerifier {
    /// Only an HS256 secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(Some(PinnedKey::hs256(secret, "secret")), Vec::new())
    }

    /// An optional HS256 secret plus RS256 keys, under the default [`ClaimRules`]. Key ids
    /// should be unique (see [`crate::load`]).
    pub fn new(hs256: Option<PinnedKey>, rs256: Vec<PinnedKey>) -> Self {
        let rules = ClaimRules::default();
        JwtVerifier {
            hs256,
            rs256,
            hs256_validation: rules.validation(Algorithm::HS256),
            rs256_validation: rules.validation(Algorithm::RS256),
            rules,
        }
    }

    /// The same keys under other claim rules.
    pub fn with_rules(mut self, rules: ClaimRules) -> Self {
        self.hs256_validation = rules.validation(Algorithm::HS256);
        self.rs256_validation = rules.validation(Algorithm::RS256);
        self.rules = rules;
        self
    }

    pub fn rules(&self) -> &ClaimRules {
        &self.rules
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
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| rules::malformed(&e))?;
        let (key, validation) = self.select(&header)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, validation)
            .map_err(|e| rules::refusal(&e))?;
        pushcluster_proto::api::validate_user_id(&data.claims.sub)
            .map_err(|m| AuthError::Invalid(format!("`sub` {m}")))?;
        Ok(data.claims.sub)
    }

    /// The key for a token's `alg` and `kid`, and the validation pinned to the key's algorithm.
    fn select(&self, header: &Header) -> Result<(&PinnedKey, &Validation), AuthError> {
        let key = self.select_key(header)?;
        let validation = match header.alg {
            Algorithm::HS256 => &self.hs256_validation,
            _ => &self.rs256_validation,
        };
        Ok((key, validation))
    }

    fn select_key(&self, header: &Header) -> Result<&PinnedKey, AuthError> {
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
