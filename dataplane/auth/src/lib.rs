//! Auth: turns the token a client connects with into a user id.
//!
//! - [`TokenVerifier`]: the seam push nodes call on every connect. Standalone mode verifies
//!   in process with [`JwtVerifier`]; the cluster calls the auth role over gRPC.
//! - [`issue`]: signs a token (for `pushd token` and tests).
//! - [`keys`]: an HS256 secret reloaded from a file without restart.
//! - [`grpc`]: the auth role's gRPC service and the push nodes' client with a verdict cache.
#![forbid(unsafe_code)]

pub mod grpc;
pub mod keys;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: pass ?token= or Authorization: Bearer")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("auth service unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// Short machine-readable code for JSON bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Expired => "token_expired",
            AuthError::Invalid(_) => "invalid_token",
            AuthError::Unavailable(_) => "auth_unavailable",
        }
    }
}

/// Verifies a client token.
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Returns the user id the token was issued for.
    async fn verify(&self, token: &str) -> Result<String, AuthError>;
}

/// Claims pushcluster reads and writes.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// HS256 JWT verification with a shared secret; `sub` is the user id and `exp` is required.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        JwtVerifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Synchronous verification (pure CPU).
    pub fn verify_sync(&self, token: &str) -> Result<String, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
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
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.verify_sync(token)
    }
}

/// Signs an HS256 token for `user`, valid for `ttl`.
pub fn issue(secret: &[u8], user: &str, ttl: std::time::Duration) -> String {
    let now = pushcluster_proto::delivery::now_ms() / 1000;
    let claims = Claims {
        sub: user.to_owned(),
        exp: now + ttl.as_secs(),
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

#[cfg(test)]
mod tests;
