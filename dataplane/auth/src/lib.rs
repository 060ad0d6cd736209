//! Auth: turns the token a client connects with into a user id.
//!
//! - [`TokenVerifier`]: the seam push nodes call on every connect. Standalone mode verifies
//!   in process; the cluster calls the auth role over gRPC.
//! - [`verify`]: [`JwtVerifier`], a set of keys each pinned to one algorithm (an HS256 secret,
//!   RS256 public keys); a token's `alg` and `kid` pick the key.
//! - [`rules`]: [`ClaimRules`] — `exp`, `nbf`, and the `iss` / `aud` a deployment requires,
//!   within a small leeway; refusals that name the claim.
//! - [`cache`]: [`VerdictCache`], bounded verdicts keyed by a hash of the token (never the
//!   token): a flood of one bad token costs one verification.
//! - [`load`]: [`KeySources`] — the secret, PEM files and JWKS file the keys come from — and
//!   the [`KeyError`]s that name the file and what is wrong with it.
//! - [`keys`]: [`ReloadingVerifier`](keys::ReloadingVerifier), which re-reads the key files
//!   when they change and keeps the last good keys if a new version is bad; it caches failed
//!   verdicts briefly and forgets them on every reload.
//! - [`sign`]: signs tokens (for `pushd token` and tests), HS256 or RS256.
//! - [`grpc`]: the auth role's gRPC service and the push nodes' client with a verdict cache.
#![forbid(unsafe_code)]

pub mod cache;
pub mod grpc;
pub mod keys;
pub mod load;
pub mod rules;
pub mod sign;
pub mod verify;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use cache::VerdictCache;
pub use load::{KeyError, KeySources};
pub use rules::ClaimRules;
pub use sign::{RsaSigner, issue};
pub use verify::JwtVerifier;

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: pass ?token= or Authorization: Bearer")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid: `nbf` is in the future")]
    NotYetValid,
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
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::Invalid(_) => "invalid_token",
            AuthError::Unavailable(_) => "auth_unavailable",
        }
    }
}

impl AuthError {
    /// The error a [`code`](AuthError::code) and message stand for (the auth role's gRPC
    /// replies carry both); unknown codes read as an invalid token.
    pub fn from_code(code: &str, message: &str) -> AuthError {
        match code {
            "missing_token" => AuthError::Missing,
            "token_expired" => AuthError::Expired,
            "token_not_yet_valid" => AuthError::NotYetValid,
            "auth_unavailable" => AuthError::Unavailable(message.to_owned()),
            _ => AuthError::Invalid(
                message
                    .strip_prefix("invalid token: ")
                    .unwrap_or(message)
                    .to_owned(),
            ),
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

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
